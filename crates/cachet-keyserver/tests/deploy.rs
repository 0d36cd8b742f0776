//! A key server as deployed: TLS 1.3, codes by webhook or e-mail, a TOML file under
//! environment variables and flags, and JSON error bodies on every refusal.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use cachet_http::notify::NotifierKind;
use cachet_keyserver::{spawn, KeyServerConfig};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const PHONE: &str = "+33612345678";
const GUARD: Duration = Duration::from_secs(30);

/// POSTs JSON and returns the status and the JSON answer.
async fn post_json(http: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let r = http
        .post(url)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).unwrap())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn config(dir: &tempfile::TempDir) -> KeyServerConfig {
    KeyServerConfig::for_data_dir(dir.path())
}

/// Sends `request` on a new connection and reads the answer to the end.
async fn raw(addr: SocketAddr, request: &[u8]) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(GUARD, s.read_to_end(&mut answer))
        .await
        .expect("the server answers and closes")
        .unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test]
async fn refusals_carry_the_json_error_body() {
    let dir = tempfile::tempdir().unwrap();
    let ks = spawn(KeyServerConfig {
        max_header_bytes: Some(4096),
        ..config(&dir)
    })
    .await
    .unwrap();
    // A route that exists, with the wrong method.
    let (status, body) = raw(
        ks.addr,
        b"GET /api/v1/recovery/start HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 405);
    assert_eq!(body["reason"], "method_not_allowed", "{body}");
    // No such route.
    let (status, body) = raw(
        ks.addr,
        b"GET /nowhere HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["reason"], "unknown_route", "{body}");
    // Headers too large.
    let big = "b".repeat(8000);
    let (status, body) = raw(
        ks.addr,
        format!("GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\n\r\n").as_bytes(),
    )
    .await;
    assert_eq!(status, 431);
    assert_eq!(body["reason"], "headers_too_large", "{body}");
    // A control byte in a header.
    let (status, body) = raw(
        ks.addr,
        b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-note: a\x07b\r\n\r\n",
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["reason"], "invalid_header", "{body}");
    ks.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_key_server_serves_tls_1_3() {
    let dir = tempfile::tempdir().unwrap();
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert_pem = generated.cert.pem();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    let ks = spawn(KeyServerConfig {
        tls_cert: Some(cert),
        tls_key: Some(key),
        ..config(&dir)
    })
    .await
    .unwrap();
    assert!(ks.url().starts_with("https://"), "{}", ks.url());

    let http = reqwest::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .min_tls_version(reqwest::tls::Version::TLS_1_3)
        .build()
        .unwrap();
    let (status, body) = post_json(
        &http,
        format!("{}/api/v1/recovery/start", ks.url()),
        json!({ "identifier": PHONE }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["challenge_id"].as_str().unwrap().starts_with("c_"));
    // The code went out through the development notifier.
    let codes = std::fs::read_to_string(ks.dev_codes_path()).unwrap();
    assert!(codes.starts_with(PHONE), "{codes}");

    // Plain HTTP on the TLS port gets no answer.
    let plain = reqwest::Client::new()
        .get(format!("http://{}/healthz", ks.addr))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    ks.shutdown().await.unwrap();
}

type Received = Arc<Mutex<Vec<(Option<String>, Value)>>>;

#[tokio::test]
async fn codes_go_to_the_webhook_with_its_token() {
    let received: Received = Arc::default();
    let sink = Router::new()
        .route(
            "/sms",
            post(
                |State(r): State<Received>, headers: HeaderMap, Json(body): Json<Value>| async move {
                    let auth = headers
                        .get("authorization")
                        .map(|v| v.to_str().unwrap().to_owned());
                    r.lock().unwrap().push((auth, body));
                    "queued"
                },
            ),
        )
        .with_state(received.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sink_url = format!("http://{}/sms", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, sink).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let ks = spawn(KeyServerConfig {
        notifier: Some(NotifierKind::Webhook),
        webhook_url: Some(sink_url),
        webhook_token: Some("sms-gateway-token".parse().unwrap()),
        ..config(&dir)
    })
    .await
    .unwrap();
    let (status, body) = post_json(
        &reqwest::Client::new(),
        format!("{}/api/v1/recovery/start", ks.url()),
        json!({ "identifier": "+33 6 12 34 56 78" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    let (auth, body) = &got[0];
    assert_eq!(auth.as_deref(), Some("Bearer sms-gateway-token"));
    assert_eq!(body["to"], PHONE);
    assert_eq!(body["purpose"], "key_server_recovery");
    assert_eq!(body["code"].as_str().unwrap().len(), 6);
    // No development file when another notifier is configured.
    assert!(!ks.dev_codes_path().exists());
    ks.shutdown().await.unwrap();
}

/// Accepts one SMTP session and returns the message data it received.
async fn smtp_sink(listener: TcpListener) -> String {
    let (stream, _) = listener.accept().await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"220 sink ESMTP\r\n").await.unwrap();
    let mut data = String::new();
    let mut in_data = false;
    while let Some(line) = lines.next_line().await.unwrap() {
        if in_data {
            if line == "." {
                in_data = false;
                write.write_all(b"250 accepted\r\n").await.unwrap();
            } else {
                data.push_str(&line);
                data.push('\n');
            }
            continue;
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250 sink\r\n",
            "DATA" => {
                in_data = true;
                b"354 end with .\r\n"
            }
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await.unwrap();
                break;
            }
            _ => b"250 ok\r\n",
        };
        write.write_all(reply).await.unwrap();
    }
    data
}

#[tokio::test]
async fn codes_go_out_by_e_mail_and_phone_numbers_are_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mail = tokio::spawn(smtp_sink(listener));
    let dir = tempfile::tempdir().unwrap();
    let ks = spawn(KeyServerConfig {
        notifier: Some(NotifierKind::Smtp),
        smtp_url: Some(format!("smtp://127.0.0.1:{port}")),
        smtp_from: Some("cachet key server <no-reply@example.org>".into()),
        ..config(&dir)
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/recovery/start", ks.url());
    let (status, body) = post_json(
        &http,
        url.clone(),
        json!({ "identifier": "Nurse@Clinic.example" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let data = mail.await.unwrap();
    assert!(data.contains("nurse@clinic.example"), "{data}");
    assert!(
        data.contains("recovery code from the key server is "),
        "{data}"
    );

    let (status, body) = post_json(&http, url, json!({ "identifier": PHONE })).await;
    assert_eq!(status, 400);
    assert_eq!(body["reason"], "identifier_not_deliverable", "{body}");
    ks.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_config_file_sits_under_environment_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keyserver.toml");
    std::fs::write(
        &file,
        format!(
            r#"
listen = "127.0.0.1:0"
data_dir = "{}"
log_json = true
notifier = "webhook"
webhook_url = "https://sms.example.org/send"
webhook_token = "from-the-file"
free_attempts = 2
max_connections = 64
header_timeout_seconds = 5
"#,
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let flags = KeyServerConfig {
        config_file: Some(file.clone()),
        free_attempts: Some(4),
        ..KeyServerConfig::default()
    };
    let merged = flags.merged().unwrap();
    assert!(merged.log_json());
    assert_eq!(merged.notifier, Some(NotifierKind::Webhook));
    // The flag wins over the file.
    assert_eq!(merged.limits().unwrap().free_attempts, 4);
    let serve = merged.serve_options().unwrap();
    assert_eq!(serve.max_connections, 64);
    assert_eq!(serve.header_timeout, Duration::from_secs(5));
    assert_eq!(
        merged.notifier_settings().webhook_token.unwrap().expose(),
        "from-the-file"
    );
    // Secrets never print.
    assert!(!format!("{merged:?}").contains("from-the-file"));

    // Unknown keys and half a TLS setting are refused.
    assert!(KeyServerConfig::from_toml("listen_on = \"x\"").is_err());
    let half = KeyServerConfig {
        tls_cert: Some(dir.path().join("cert.pem")),
        ..config(&dir)
    };
    assert!(spawn(half).await.is_err());
    // So is a webhook notifier without a URL.
    let no_url = KeyServerConfig {
        notifier: Some(NotifierKind::Webhook),
        ..config(&dir)
    };
    assert!(spawn(no_url).await.is_err());
}

/// Runs in a child process with `CACHET_KEYSERVER_*` variables set (the parent's
/// environment is never modified: other tests run concurrently).
#[test]
fn environment_child() {
    if std::env::var_os("CACHET_KEYSERVER_TEST_ENV_CHILD").is_none() {
        return;
    }
    let c = KeyServerConfig::from_env().unwrap();
    assert_eq!(c.listen, Some("127.0.0.1:7002".parse().unwrap()));
    assert_eq!(c.notifier, Some(NotifierKind::Smtp));
    assert_eq!(c.smtp_url.as_deref(), Some("smtp://127.0.0.1:2525"));
    assert_eq!(c.log_json, Some(true));
    assert_eq!(c.max_connections, Some(99));
    assert_eq!(
        c.webhook_token.as_ref().map(|t| t.expose()),
        Some("env-token")
    );
}

#[test]
fn configuration_reads_cachet_keyserver_environment_variables() {
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["environment_child", "--exact", "--test-threads=1"])
        .env("CACHET_KEYSERVER_TEST_ENV_CHILD", "1")
        .env("CACHET_KEYSERVER_LISTEN", "127.0.0.1:7002")
        .env("CACHET_KEYSERVER_NOTIFIER", "smtp")
        .env("CACHET_KEYSERVER_SMTP_URL", "smtp://127.0.0.1:2525")
        .env("CACHET_KEYSERVER_LOG_JSON", "true")
        .env("CACHET_KEYSERVER_MAX_CONNECTIONS", "99")
        .env("CACHET_KEYSERVER_WEBHOOK_TOKEN", "env-token")
        .status()
        .unwrap();
    assert!(status.success());
}
