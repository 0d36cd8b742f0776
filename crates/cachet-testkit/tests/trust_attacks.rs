//! A malicious server against the client's trust-chain checks, over HTTP: a proxy in
//! front of real servers rewrites answers (a substituted key, a replayed old key, a
//! hidden revocation) or shows two clients two servers that share one log key (a fork),
//! and the server itself registers an operator of its own to forge a revocation. Each
//! time the client refuses to encrypt, or marks the contact unverified, and says why.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use cachet_client::proto as v1;
use cachet_client::{
    Client, ClientError, ClientOptions, Conversation, Event, TrustError, TrustState, UnlockSecret,
};
use cachet_crypto::{BoxKeyPair, BoxPublicKey, SignKeyPair, SignPublicKey};
use cachet_testkit::{key_change, received_texts, send_text, test_options, TestServer, PIN};
use prost::Message;

/// Rewrites a successful answer: (path and query, caller, body) → body.
type Rewrite = Arc<dyn Fn(&str, &str, Vec<u8>) -> Vec<u8> + Send + Sync>;

#[derive(Default)]
struct Rules {
    /// Upstream per caller (user id); everyone else goes to `default`.
    routes: HashMap<String, String>,
    default: String,
    rewrite: Option<Rewrite>,
    /// Requests with this method and exact path are answered 503 without forwarding.
    fail: Option<(String, String)>,
}

#[derive(Clone)]
struct Proxy {
    url: String,
    rules: Arc<Mutex<Rules>>,
}

impl Proxy {
    async fn start(upstream: &str) -> Self {
        let rules = Arc::new(Mutex::new(Rules {
            default: upstream.trim_end_matches('/').to_owned(),
            ..Rules::default()
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .fallback(forward)
            .with_state((rules.clone(), reqwest::Client::new()));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, rules }
    }

    fn rewrite(&self, f: impl Fn(&str, &str, Vec<u8>) -> Vec<u8> + Send + Sync + 'static) {
        self.rules.lock().unwrap().rewrite = Some(Arc::new(f));
    }

    /// Edits the blocks of `user_id`'s chain on their way to clients.
    fn edit_chain(
        &self,
        user_id: &str,
        edit: impl Fn(&mut Vec<v1::LogBlock>) + Send + Sync + 'static,
    ) {
        let chain_path = format!("/api/v1/log/blocks?user_id={user_id}");
        self.rewrite(move |path, _, body| {
            if !path.starts_with(&chain_path) {
                return body;
            }
            let mut blocks = v1::LogBlocks::decode(body.as_slice()).unwrap();
            edit(&mut blocks.blocks);
            blocks.encode_to_vec()
        });
    }

    fn route(&self, user_id: &str, upstream: &str) {
        self.rules.lock().unwrap().routes.insert(
            user_id.to_owned(),
            upstream.trim_end_matches('/').to_owned(),
        );
    }

    /// Opens an existing profile so that it talks to the server through this proxy.
    fn open(&self, server: &TestServer, profile: &str, options: ClientOptions) -> Client {
        let client = Client::open(
            &server.profile_dir(profile),
            ClientOptions {
                server_url: Some(self.url.clone()),
                ..options
            },
        )
        .unwrap();
        client.unlock(&UnlockSecret::new(PIN)).unwrap();
        client
    }
}

async fn forward(
    State((rules, http)): State<(Arc<Mutex<Rules>>, reqwest::Client)>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let caller = parts
        .headers
        .get("x-siilo-uid")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let (upstream, rewrite, fail) = {
        let r = rules.lock().unwrap();
        (
            r.routes.get(&caller).unwrap_or(&r.default).clone(),
            r.rewrite.clone(),
            r.fail.clone(),
        )
    };
    if fail == Some((parts.method.to_string(), path.clone())) {
        return Response::builder()
            .status(503)
            .body(Body::from("unavailable"))
            .unwrap();
    }
    let mut out = http
        .request(parts.method.clone(), format!("{upstream}{path}"))
        .body(body.to_vec());
    for (k, v) in &parts.headers {
        if k != "host" && k != "content-length" {
            out = out.header(k, v);
        }
    }
    let answer = out.send().await.unwrap();
    let status = answer.status();
    let content_type = answer.headers().get("content-type").cloned();
    let mut bytes = answer.bytes().await.unwrap().to_vec();
    if status.is_success() {
        if let Some(rewrite) = rewrite {
            bytes = rewrite(&path, &caller, bytes);
        }
    }
    let mut response = Response::builder().status(status);
    if let Some(ct) = content_type {
        response = response.header("content-type", ct);
    }
    response.body(Body::from(bytes)).unwrap()
}

/// Replaces the current keys of `user_id` in directory answers with version
/// `key_version` of the keys `box_key` and `sign_key`.
fn substitute_directory(
    user_id: &str,
    key_version: u32,
    box_key: &BoxPublicKey,
    sign_key: &SignPublicKey,
) -> Rewrite {
    let keys = v1::KeyRecord {
        key_version,
        box_key: box_key.as_bytes().to_vec(),
        sign_key: sign_key.as_bytes().to_vec(),
        ..Default::default()
    };
    let profile_path = format!("/api/v1/users/{user_id}");
    let keys_path = format!("/api/v1/users/{user_id}/keys");
    Arc::new(move |path, _, body| {
        if path == profile_path {
            let mut p = v1::UserProfile::decode(body.as_slice()).unwrap();
            p.current_keys = Some(keys.clone());
            p.encode_to_vec()
        } else if path == keys_path {
            let mut h = v1::KeyHistory::decode(body.as_slice()).unwrap();
            h.keys.retain(|k| k.key_version < keys.key_version);
            h.keys.push(keys.clone());
            h.encode_to_vec()
        } else {
            body
        }
    })
}

fn refusal(e: ClientError) -> TrustError {
    match e {
        ClientError::TrustLog { source, .. } => source,
        other => panic!("expected a trust log refusal, got {other:?}"),
    }
}

/// Asserts that `err` is a trust-log refusal matching the pattern, whose message holds
/// each of the texts that follow.
macro_rules! assert_refused {
    ($err:expr, $pattern:pat $(if $guard:expr)? $(, $needle:expr)*) => {{
        let err = $err;
        let msg = err.to_string();
        assert!(matches!(&refusal(err), $pattern $(if $guard)?), "{msg}");
        $(assert!(msg.contains($needle), "{msg}");)*
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn substituted_public_key_is_refused() {
    let server = TestServer::start().await;
    let proxy = Proxy::start(&server.url()).await;
    let (_, bob) = server.register_alice_and_bob(90).await;
    let alice = proxy.open(&server, "alice", test_options());

    // The honest path first: the chain vouches for Bob's keys.
    alice.add_contact(bob.user_id(), Some("bob")).await.unwrap();
    send_text(&alice, &bob, "hello").await;

    // A new client of the same user meets a directory that hands out the server's key.
    let mallory = (BoxKeyPair::generate(), SignKeyPair::generate());
    let rewrite = substitute_directory(bob.user_id(), 1, &mallory.0.public, &mallory.1.public());
    proxy.rules.lock().unwrap().rewrite = Some(rewrite);
    server.register("carol", "+33600000903", "Carol").await;
    let carol = proxy.open(&server, "carol", test_options());
    let err = carol
        .send_text(bob.user_id(), "for Bob's eyes only")
        .await
        .unwrap_err();
    assert_refused!(err, TrustError::KeyNotInLog { .. }, "not in", "substituted");
    // Nothing reached Bob but Alice's honest message.
    assert_eq!(received_texts(&bob).await, ["hello"]);

    // The substitution as a key change pushed to Alice: unsigned by the key she
    // verified, and not in Bob's chain either, so she refuses them too.
    let rewrite = substitute_directory(bob.user_id(), 2, &mallory.0.public, &mallory.1.public());
    proxy.rules.lock().unwrap().rewrite = Some(rewrite);
    let bob_contact = alice.find_contact("bob").unwrap();
    alice.mark_verified(&bob_contact).unwrap();
    alice.refresh_contact(bob.user_id()).await.unwrap();
    assert!(matches!(
        alice.find_contact("bob").unwrap().trust,
        TrustState::KeyChanged { .. }
    ));
    let err = alice.send_text(bob.user_id(), "again").await.unwrap_err();
    assert!(matches!(refusal(err), TrustError::KeyNotInLog { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_the_server_made_up_unverify_the_contact() {
    // The server registers keys of its own for Bob (it controls the one-time codes): the
    // chain holds them, self-signed, visible to all, and authorised by nobody Alice knows.
    let server = TestServer::start().await;
    let (alice, bob) = server.register_alice_and_bob(91).await;
    let bob_id = bob.user_id().to_owned();
    let contact = alice.add_contact(&bob_id, Some("bob")).await.unwrap();
    alice.mark_verified(&contact).unwrap();
    alice.send_text(&bob_id, "verified hello").await.unwrap();

    let fake = server.register("bob-fake", "+33600000912", "Bob").await;
    assert_eq!(fake.key_version(), 2);
    let report = alice.refresh_contact(&bob_id).await.unwrap().unwrap();
    assert!(report.is_alarm(), "{report:?}");
    let TrustState::KeyChanged { note, .. } = alice.find_contact("bob").unwrap().trust else {
        panic!("Bob should be KEY CHANGED");
    };
    assert!(note.contains("not signed by"), "{note}");
    // Cardinal's rule: no new case key for the made-up keys.
    let err = alice
        .create_case("Results", &BTreeMap::new(), std::slice::from_ref(&bob_id))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::KeyChanged { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_revocation_is_refused() {
    let server = TestServer::start().await;
    let root = server.add_operator("root").await;
    let pinned = ClientOptions {
        operators: BTreeMap::from([(format!("op:{}", root.name), root.public_key())]),
        ..test_options()
    };
    let proxy = Proxy::start(&server.url()).await;
    let (_, bob) = server.register_alice_and_bob(92).await;
    let alice = proxy.open(&server, "alice", pinned);
    alice.add_contact(bob.user_id(), Some("bob")).await.unwrap();
    send_text(&alice, &bob, "before").await;

    // Support revokes Bob's keys (a stolen phone); the block is signed by the operator.
    root.on(&server)
        .revoke_keys(bob.user_id(), "phone stolen")
        .await
        .unwrap();
    alice.refresh_contact(bob.user_id()).await.unwrap();
    let err = alice.send_text(bob.user_id(), "after").await.unwrap_err();
    assert_refused!(err, TrustError::KeyRevoked { .. });

    // The server now hides the revocation from Alice.
    proxy.edit_chain(bob.user_id(), |blocks| {
        blocks.pop();
    });
    let err = alice.send_text(bob.user_id(), "after").await.unwrap_err();
    assert_refused!(
        err,
        TrustError::RevocationMissing { .. },
        "no longer shows the revocation"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_old_key_is_refused() {
    let server = TestServer::start().await;
    let proxy = Proxy::start(&server.url()).await;
    let bob = server.register("bob", "+33600000932", "Bob").await;
    let old = bob.export_key_history().unwrap();
    let v1_keys = old.installations[0].clone();
    // Bob moves to a new phone, carrying his keys: version 2, signed by version 1.
    let bob2 = server
        .register_with("bob-2", "+33600000932", "Bob", Some(old), test_options())
        .await
        .unwrap();
    assert_eq!(bob2.key_version(), 2);

    // The server replays Bob's old keys (whose secret it may have stolen) as current.
    let (box_key, sign_key) = (&v1_keys.box_keys.public, &v1_keys.sign_keys.public());
    let rewrite = substitute_directory(bob2.user_id(), 1, box_key, sign_key);
    proxy.rules.lock().unwrap().rewrite = Some(rewrite);
    server.register("carol", "+33600000933", "Carol").await;
    let carol = proxy.open(&server, "carol", test_options());
    let err = carol.send_text(bob2.user_id(), "hi").await.unwrap_err();
    assert_refused!(err, TrustError::StaleKey { .. }, "no longer current");

    // A client that saw version 2 is shown the chain rolled back to version 1.
    proxy.rules.lock().unwrap().rewrite = None;
    server.register("dave", "+33600000934", "Dave").await;
    let dave = proxy.open(&server, "dave", test_options());
    send_text(&dave, &bob2, "hi").await;
    proxy.edit_chain(bob2.user_id(), |blocks| {
        blocks.pop();
    });
    // The log moves on, so Dave fetches Bob's chain again.
    server.register("erin", "+33600000935", "Erin").await;
    dave.refresh_contact(bob2.user_id()).await.unwrap();
    let err = dave.send_text(bob2.user_id(), "hi").await.unwrap_err();
    assert_refused!(err, TrustError::ChainRollback { .. });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_operator_revocation_is_refused() {
    let server = TestServer::start().await;
    let root = server.add_operator("root").await;
    // The server's host registers an operator of its own (it controls that table).
    let mallory = server.add_operator("mallory").await;
    let pinned = ClientOptions {
        operators: BTreeMap::from([(format!("op:{}", root.name), root.public_key())]),
        ..test_options()
    };
    let (_, bob) = server.register_alice_and_bob(94).await;
    mallory
        .on(&server)
        .revoke_keys(bob.user_id(), "forged")
        .await
        .unwrap();
    let alice = Client::open(&server.profile_dir("alice"), pinned).unwrap();
    alice.unlock(&UnlockSecret::new(PIN)).unwrap();
    let err = alice.send_text(bob.user_id(), "hi").await.unwrap_err();
    assert_refused!(err, TrustError::UnknownOperator { operator } if operator == "op:mallory", "whose key this client does not know");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fork_between_two_clients_is_detected() {
    // Two servers with the same history and the same log key, then diverging: what a
    // server shows when it keeps one history for Alice and another for Bob.
    let mut server = TestServer::start().await;
    let root = server.add_operator("root").await;
    let (alice, bob) = server.register_alice_and_bob(95).await;
    let (alice_id, bob_id) = (alice.user_id().to_owned(), bob.user_id().to_owned());
    drop((alice, bob));
    server.stop().await;
    let twin_dir = tempfile::tempdir().unwrap();
    copy_dir(server.data_dir(), twin_dir.path());
    server.restart().await;
    let twin = cachet_server::spawn(cachet_server::ServerConfig {
        listen: Some(([127, 0, 0, 1], 0).into()),
        ..cachet_server::ServerConfig::for_data_dir(twin_dir.path())
    })
    .await
    .unwrap();

    let proxy = Proxy::start(&server.url()).await;
    proxy.route(&bob_id, &twin.base_url());
    // Alice's branch gets a new user; Bob's branch an operator block instead.
    server.register("carol", "+33600000953", "Carol").await;
    cachet_client::OperatorClient::new(&twin.base_url(), "root", root.key(), None)
        .unwrap()
        .log_revocation(&alice_id)
        .await
        .unwrap();

    let alice = proxy.open(&server, "alice", test_options());
    let bob = proxy.open(&server, "bob", test_options());
    let seen_by_alice = alice.audit_log(false).await.unwrap();
    let seen_by_bob = bob.audit_log(false).await.unwrap();
    assert_eq!(seen_by_alice.size, seen_by_bob.size);
    assert_ne!(seen_by_alice.root, seen_by_bob.root);

    // Comparing the heads they saved: two signed, contradicting histories.
    let (a, b) = (
        alice.saved_head().unwrap().unwrap(),
        bob.saved_head().unwrap().unwrap(),
    );
    let err = alice.compare_heads(&a, &b).await.unwrap_err();
    assert_refused!(err, TrustError::ForkDetected { .. }, "fork");

    // Bob, restarted and moved to Alice's branch, refuses to encrypt to anyone there:
    // the head he saved (in his database) is not extended by what he is shown.
    drop(bob);
    proxy.route(&bob_id, &server.url());
    let bob = proxy.open(&server, "bob", test_options());
    let err = bob.send_text(&alice_id, "hi").await.unwrap_err();
    assert_refused!(err, TrustError::ForkDetected { .. });
    let events = alice.receive(0).await.unwrap();
    assert!(events
        .iter()
        .all(|e| !matches!(e, Event::Message(m) if m.conversation == Conversation::Direct(bob_id.clone()))));
    twin.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authorised_new_installation_stays_verified() {
    // The honest path: keys signed by the verified key, in the log, keep verification.
    let server = TestServer::start().await;
    let (alice, bob) = server.register_alice_and_bob(96).await;
    let contact = alice.add_contact(bob.user_id(), Some("bob")).await.unwrap();
    alice.mark_verified(&contact).unwrap();
    send_text(&alice, &bob, "one").await;

    let bob2 = server
        .register_with(
            "bob-2",
            "+33600000962",
            "Bob",
            Some(bob.export_key_history().unwrap()),
            test_options(),
        )
        .await
        .unwrap();
    let events = alice.receive(0).await.unwrap();
    let report = key_change(&events);
    assert!(report.still_verified, "{report:?}");
    send_text(&alice, &bob, "two").await;
    let c = alice.find_contact("bob").unwrap();
    assert_eq!(c.key_version, 2);
    assert!(matches!(c.trust, TrustState::Verified { .. }));
    assert!(received_texts(&bob2).await.contains(&"two".to_owned()));
    // The case path checks the same chain, and the case's membership goes into Alice's.
    let case = alice
        .create_case("Follow-up", &BTreeMap::new(), &[bob2.user_id().to_owned()])
        .await
        .unwrap();
    let blocks = server
        .store()
        .trust_blocks_of(alice.user_id())
        .await
        .unwrap();
    let last = cachet_trust::Block::from_bytes(&blocks.last().unwrap().1).unwrap();
    assert_eq!(
        last.body.event,
        cachet_trust::Event::MembershipChanged {
            scope: cachet_trust::Scope::Case,
            id: case.case_id,
            member_id: bob2.user_id().to_owned(),
            added: true,
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_without_a_chain_are_refused() {
    // The directory serves Bob's keys, the log shows no block of his at all.
    let server = TestServer::start().await;
    let proxy = Proxy::start(&server.url()).await;
    let bob = server.register("bob", "+33600000972", "Bob").await;
    server.register("carol", "+33600000973", "Carol").await;
    proxy.edit_chain(bob.user_id(), Vec::clear);
    let carol = proxy.open(&server, "carol", test_options());
    let err = carol.send_text(bob.user_id(), "hi").await.unwrap_err();
    assert_refused!(err, TrustError::KeyNotInLog { .. }, "Bob");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_conversation_does_not_refetch_the_chain() {
    let server = TestServer::start().await;
    let proxy = Proxy::start(&server.url()).await;
    let (_, bob) = server.register_alice_and_bob(98).await;
    let log_calls = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = log_calls.clone();
    proxy.rewrite(move |path, _, body| {
        if path.starts_with("/api/v1/log/") {
            seen.lock().unwrap().push(path.to_owned());
        }
        body
    });
    let alice = proxy.open(&server, "alice", test_options());
    send_text(&alice, &bob, "first").await;
    let first = log_calls.lock().unwrap().len();
    assert!(first >= 2, "the first send checks the head and the chain");
    for i in 0..5 {
        alice
            .send_text(bob.user_id(), &format!("{i}"))
            .await
            .unwrap();
    }
    assert_eq!(
        log_calls.lock().unwrap().len(),
        first,
        "no log request while the keys stay the same"
    );
    // A reopened client (a new process) still has the chain in its database.
    drop(alice);
    let alice = proxy.open(&server, "alice", test_options());
    send_text(&alice, &bob, "later").await;
    assert_eq!(log_calls.lock().unwrap().len(), first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_block_lost_at_registration_is_published_later() {
    let server = TestServer::start().await;
    let proxy = Proxy::start(&server.url()).await;
    let alice = server.register("alice", "+33600000991", "Alice").await;
    // Bob registers, but his key block never reaches the log.
    proxy.rules.lock().unwrap().fail = Some(("POST".into(), "/api/v1/log/blocks".into()));
    let pending = Client::start_registration(&proxy.url, "+33600000992", test_options())
        .await
        .unwrap();
    let code = cachet_testkit::dev_code(server.data_dir(), "+33600000992").unwrap();
    let err = pending
        .finish(cachet_client::NewProfile {
            dir: &server.profile_dir("bob"),
            code: &code,
            display_name: "Bob",
            secret: &UnlockSecret::new(PIN),
            previous: None,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Server { status: 503, .. }),
        "{err}"
    );
    let bob = proxy.open(&server, "bob", test_options());
    // Until the block is in, nobody is given Bob's keys.
    let err = alice.add_contact(bob.user_id(), None).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Server { reason, .. } if reason == "keys_not_in_log"),
        "{err}"
    );
    // Bob's next send publishes it first.
    proxy.rules.lock().unwrap().fail = None;
    send_text(&bob, &alice, "hello").await;
    alice.add_contact(bob.user_id(), Some("bob")).await.unwrap();
    send_text(&alice, &bob, "hi Bob").await;
}

/// An operator's profile check is a block in the user's chain, signed by that operator:
/// clients pinning the operator replay it, and clients that do not pin it still talk to
/// the user (a verification they cannot check proves nothing and blocks nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_profile_check_is_logged_and_blocks_no_one() {
    let server = TestServer::start().await;
    let root = server.add_operator("root").await;
    let (alice, bob) = server.register_alice_and_bob(98).await;
    let before = alice.audit_log(true).await.unwrap().size;
    root.on(&server)
        .verify_profile(bob.user_id(), "RPPS card checked")
        .await
        .unwrap();

    // Alice pins no operator: she still writes to Bob.
    alice.add_contact(bob.user_id(), Some("bob")).await.unwrap();
    send_text(&alice, &bob, "hello").await;

    // Carol pins the operator: she replays the whole log, the check included.
    let pinned = ClientOptions {
        operators: BTreeMap::from([(format!("op:{}", root.name), root.public_key())]),
        ..test_options()
    };
    let carol = server
        .register_with("carol", "+33600000983", "Carol", None, pinned)
        .await
        .unwrap();
    let audit = carol.audit_log(true).await.unwrap();
    // Bob's check, and Carol's own creation block.
    assert_eq!(audit.size, before + 2);
    carol.add_contact(bob.user_id(), Some("bob")).await.unwrap();
    send_text(&carol, &bob, "hello too").await;
}
