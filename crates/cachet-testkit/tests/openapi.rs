//! `docs/openapi.yaml` against the routers of the data server and the key server.
//!
//! axum cannot list a router's routes, so the document is checked from two sides:
//!
//! * **Source → document.** Every `.route(PATH, METHOD(..)…)` call in the servers' source
//!   (`crates/*/src/**/*.rs`, with `const …_ROUTE: &str` paths resolved) must be
//!   documented with that method. Parsing the calls is what catches a route added
//!   without documentation, wherever a router is assembled.
//! * **Document → servers.** Both servers are started on loopback and every documented
//!   operation is called on every server its `x-cachet-servers` names (unsigned, empty
//!   body): the answer must not be the router's own "no such route" (404 `unknown_route`
//!   or a body-less 404) or "no such method" (405). Every other method on a documented
//!   path must answer 405, so no server takes an undocumented method on a known path.
//!   Probing the running servers catches a documented route that was removed or renamed,
//!   or that a server does not mount, which reading the source alone would miss.
//!
//! Besides, the routes named in the `.proto` comments and in the summary table of
//! `docs/protocol.md` must be documented, and every `reason` of both servers' error enums
//! must appear in the document.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_norway::Value;

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn document() -> Value {
    let text = std::fs::read_to_string(root().join("docs/openapi.yaml")).unwrap();
    serde_norway::from_str(&text).unwrap()
}

/// (path, method) → the servers that answer it.
fn documented() -> BTreeMap<(String, String), Vec<String>> {
    let doc = document();
    assert_eq!(doc["openapi"].as_str(), Some("3.1.0"));
    let mut out = BTreeMap::new();
    for (path, item) in doc["paths"].as_mapping().unwrap() {
        let path = path.as_str().unwrap().to_owned();
        for (method, op) in item.as_mapping().unwrap() {
            let method = method.as_str().unwrap().to_owned();
            assert!(METHODS.contains(&method.as_str()), "{path}: {method}");
            let servers: Vec<String> = op["x-cachet-servers"]
                .as_sequence()
                .unwrap_or_else(|| panic!("{method} {path} has no x-cachet-servers"))
                .iter()
                .map(|s| s.as_str().unwrap().to_owned())
                .collect();
            assert!(!servers.is_empty() && servers.iter().all(|s| s == "data" || s == "key"));
            assert!(op["responses"].as_mapping().is_some(), "{method} {path}");
            out.insert((path.clone(), method), servers);
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Source files with `.route(` calls that are not routes of a cachet server: the
/// benchmark's trivial loopback endpoint, which measures the HTTP stack's ceiling, and
/// the webhook sink that tests post one-time codes to.
const NOT_CACHET_ROUTES: [&str; 2] = [
    "crates/cachet-cli/src/bench.rs",
    "crates/cachet-http/src/testing.rs",
];

/// Functions that build a route's method router, and the method each gives: the data
/// server's vault splits (init, rotate, reshare) share one POST handler.
const ROUTE_HELPERS: [(&str, &str); 1] = [("split_route(", "post")];

/// Every `.route(…)` call of the workspace's library and binary sources, as (path, method).
fn source_routes() -> BTreeSet<(String, String)> {
    let mut files = Vec::new();
    for krate in std::fs::read_dir(root().join("crates")).unwrap() {
        let src = krate.unwrap().path().join("src");
        if src.is_dir() {
            rust_files(&src, &mut files);
        }
    }
    files.retain(|f| !NOT_CACHET_ROUTES.iter().any(|n| f.ends_with(n)));
    let sources: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    // `const NAME: &str = "/api/…";` anywhere: route paths kept in constants.
    let mut consts = BTreeMap::new();
    for text in &sources {
        for line in text.lines() {
            let line = line.trim();
            let Some(rest) = line
                .strip_prefix("pub const ")
                .or_else(|| line.strip_prefix("pub(crate) const "))
                .or_else(|| line.strip_prefix("const "))
            else {
                continue;
            };
            if let Some((name, value)) = rest.split_once(": &str = \"") {
                if let Some(value) = value.strip_suffix("\";") {
                    consts.insert(name.trim().to_owned(), value.to_owned());
                }
            }
        }
    }
    let mut routes = BTreeSet::new();
    for text in &sources {
        let mut rest = text.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            // The call's text, up to its closing parenthesis.
            let mut depth = 1;
            let mut end = 0;
            for (i, c) in rest.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let call = &rest[..end];
            let (first, handlers) = call
                .split_once(',')
                .unwrap_or_else(|| panic!("route call {call:?}"));
            let first = first.trim();
            let path = if let Some(literal) = first.strip_prefix('"') {
                literal.trim_end_matches('"').to_owned()
            } else {
                let name = first.rsplit("::").next().unwrap();
                consts
                    .get(name)
                    .unwrap_or_else(|| panic!("route path constant {first} not found"))
                    .clone()
            };
            let mut found = false;
            for method in METHODS {
                let token = format!("{method}(");
                let hit = handlers.match_indices(&token).any(|(i, _)| {
                    i == 0 || !handlers[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_')
                });
                if hit {
                    routes.insert((path.clone(), method.to_owned()));
                    found = true;
                }
            }
            for (helper, method) in ROUTE_HELPERS {
                if handlers.trim_start().starts_with(helper) {
                    routes.insert((path.clone(), method.to_owned()));
                    found = true;
                }
            }
            assert!(found, "no method in route {path}: {handlers}");
        }
    }
    routes
}

#[test]
fn every_route_in_the_source_is_documented() {
    let documented: BTreeSet<(String, String)> = documented().into_keys().collect();
    let source = source_routes();
    assert!(source.len() > 40, "the route parser found only {source:?}");
    let undocumented: Vec<_> = source.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from docs/openapi.yaml: {undocumented:?}"
    );
    let unknown: Vec<_> = documented.difference(&source).collect();
    assert!(
        unknown.is_empty(),
        "documented routes with no .route( call: {unknown:?}"
    );
}

/// Whether a documented template (`/users/{user_id}`) matches a concrete path.
fn matches(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter().zip(&p).all(|(t, p)| {
            (t.starts_with('{') && t.ends_with('}'))
                || (p.starts_with('{') && p.ends_with('}'))
                || t == p
        })
}

#[test]
fn routes_named_in_the_proto_files_and_protocol_md_are_documented() {
    let documented = documented();
    let mut named = Vec::new();
    let proto_dir = root().join("crates/cachet-proto/proto/cachet/v1");
    for entry in std::fs::read_dir(proto_dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines().filter(|l| l.trim_start().starts_with("//")) {
            for word in line.split_whitespace() {
                if let Some(at) = word.find("/api/v1/") {
                    let route = word[at..].trim_end_matches(|c: char| {
                        matches!(c, ',' | '.' | ';' | ')' | ':' | '"' | '`')
                    });
                    let route = route.split('?').next().unwrap();
                    named.push((
                        path.file_name().unwrap().to_string_lossy().into_owned(),
                        route.to_owned(),
                    ));
                }
            }
        }
    }
    let protocol = std::fs::read_to_string(root().join("docs/protocol.md")).unwrap();
    for line in protocol.lines() {
        for method in ["GET", "POST", "PUT"] {
            if let Some(rest) = line.strip_prefix(&format!("| {method} | `")) {
                let route = rest.split(['`', '?']).next().unwrap();
                let found = documented
                    .keys()
                    .any(|(p, m)| *m == method.to_lowercase() && matches(p, route));
                assert!(
                    found,
                    "docs/protocol.md names {method} {route}, not in docs/openapi.yaml"
                );
            }
        }
    }
    assert!(named.len() > 10, "{named:?}");
    for (file, route) in named {
        // A comment may name several routes of a family ("/init, /rotate and /reshare").
        let found = documented.keys().any(|(p, _)| matches(p, &route));
        assert!(
            found,
            "{file} names {route}, which is not a documented route"
        );
    }
}

#[test]
fn every_error_reason_is_documented() {
    let text = std::fs::read_to_string(root().join("docs/openapi.yaml")).unwrap();
    let doc = document();
    let mut reasons = BTreeSet::new();
    collect_reasons(&doc, &mut reasons);
    for file in [
        "crates/cachet-server/src/error.rs",
        "crates/cachet-keyserver/src/error.rs",
    ] {
        let source = std::fs::read_to_string(root().join(file)).unwrap();
        for line in source.lines().filter(|l| l.contains("=> (")) {
            let Some(reason) = line.rsplit('"').nth(1) else {
                continue;
            };
            if reason.chars().all(|c| c.is_ascii_lowercase() || c == '_') && !reason.is_empty() {
                assert!(
                    reasons.contains(reason),
                    "{file}: reason {reason:?} is not in any x-cachet-reasons of docs/openapi.yaml"
                );
            }
        }
    }
    assert!(text.contains("x-cachet-reasons"));
}

fn collect_reasons(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Mapping(m) => {
            for (k, v) in m {
                let key = k.as_str().unwrap_or_default();
                if key.starts_with("x-cachet-") && key.contains("reasons")
                    || key.chars().all(|c| c.is_ascii_digit()) && !key.is_empty()
                {
                    if let Some(seq) = v.as_sequence() {
                        out.extend(seq.iter().filter_map(|s| s.as_str().map(str::to_owned)));
                    }
                }
                collect_reasons(v, out);
            }
        }
        Value::Sequence(s) => s.iter().for_each(|v| collect_reasons(v, out)),
        _ => {}
    }
}

/// A concrete path for a template: sample values for the parameters.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|s| match s {
            "{index}" => "0",
            "{user_id}" => "u_00000000000000000000000000000000",
            "{case_id}" => "c0",
            s if s.starts_with('{') => "a_00000000000000000000000000000000",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// `None` when the router itself says there is no such route or method; otherwise the
/// status the request reached a handler (or a middleware) with.
async fn probe(
    http: &reqwest::Client,
    base: &str,
    method: &str,
    path: &str,
) -> Result<u16, String> {
    let url = format!("{base}{path}");
    let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    let response = http
        .request(method, &url)
        .body(Vec::new())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap();
    let reason = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["reason"].as_str().map(str::to_owned));
    match (status, reason.as_deref()) {
        (404, None | Some("unknown_route")) => Err(format!("404 {reason:?}")),
        (405, _) => Err("405".into()),
        _ => Ok(status),
    }
}

#[tokio::test]
async fn every_documented_route_answers_on_its_servers() {
    let documented = documented();
    let mut data = cachet_testkit::TestServer::start().await;
    let key_dir = tempfile::tempdir().unwrap();
    let key = cachet_keyserver::spawn(cachet_keyserver::KeyServerConfig::for_data_dir(
        key_dir.path(),
    ))
    .await
    .unwrap();
    let bases = [("data", data.url()), ("key", key.url())];
    let http = reqwest::Client::new();
    let mut failures = Vec::new();
    let paths: BTreeSet<&String> = documented.keys().map(|(p, _)| p).collect();
    for path in paths {
        for (server, base) in &bases {
            let on_server: BTreeSet<&str> = documented
                .iter()
                .filter(|((p, _), s)| p == path && s.iter().any(|s| s == server))
                .map(|((_, m), _)| m.as_str())
                .collect();
            if on_server.is_empty() {
                continue;
            }
            for method in METHODS {
                let answer = probe(&http, base, method, &concrete(path)).await;
                match (on_server.contains(method), answer) {
                    (true, Err(e)) => failures.push(format!(
                        "{server}: {method} {path} is documented but answers {e}"
                    )),
                    (false, Ok(status)) => failures.push(format!(
                        "{server}: {method} {path} is not documented but answers {status}"
                    )),
                    _ => {}
                }
            }
        }
    }
    key.shutdown().await.unwrap();
    data.stop().await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
