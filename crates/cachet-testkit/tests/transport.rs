//! End-to-end: the client's transport. A send whose answer is lost on the way back is
//! retried with the same message id and lands once; a pinned TLS certificate is kept in
//! the profile and is the only one trusted; plain `http://` goes nowhere but loopback.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cachet_client::{
    no_progress, Client, ClientError, ClientOptions, Conversation, Event, MessageKind, NewProfile,
    RetryPolicy, UnlockSecret, PINNED_CERTIFICATE_FILE,
};
use cachet_server::{RunningServer, ServerConfig};
use cachet_testkit::{dev_code, received_texts, send_text, test_options, texts, TestServer, PIN};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Retries without long waits (the policy's shape is what is tested, not its timing).
fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        ..RetryPolicy::default()
    }
}

/// A loopback proxy that forwards HTTP/1.1 requests one by one to a server, and for the
/// first `POST /api/v1/messages/send` lets the server handle the request but closes the
/// client's connection instead of passing the answer on: a lost answer.
struct LosesFirstSendAnswer {
    url: String,
    sends: Arc<AtomicUsize>,
}

const SEND_PATH: &str = "/api/v1/messages/send";

impl LosesFirstSendAnswer {
    async fn start(upstream: &str) -> Self {
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let sends = Arc::new(AtomicUsize::new(0));
        let counter = sends.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let server = TcpStream::connect(&upstream).await.unwrap();
                tokio::spawn(relay(client, server, counter.clone()));
            }
        });
        Self { url, sends }
    }

    fn sends(&self) -> usize {
        self.sends.load(Ordering::SeqCst)
    }
}

/// Reads one HTTP/1.1 message head (up to the empty line) and its `Content-Length` body.
/// `None` at the end of the stream.
async fn read_message(stream: &mut BufReader<TcpStream>) -> Option<(String, Vec<u8>)> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let mut length = 0;
    for line in head.lines() {
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim().to_ascii_lowercase();
            assert_ne!(
                name, "transfer-encoding",
                "the proxy reads sized bodies only"
            );
            if name == "content-length" {
                length = value.trim().parse().unwrap();
            }
        }
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await.ok()?;
    Some((head, body))
}

async fn relay(client: TcpStream, server: TcpStream, sends: Arc<AtomicUsize>) {
    let mut client = BufReader::new(client);
    let mut server = BufReader::new(server);
    while let Some((head, body)) = read_message(&mut client).await {
        let is_send = head.starts_with(&format!("POST {SEND_PATH} "));
        server.get_mut().write_all(head.as_bytes()).await.unwrap();
        server.get_mut().write_all(&body).await.unwrap();
        let Some((answer, answer_body)) = read_message(&mut server).await else {
            return;
        };
        if is_send && sends.fetch_add(1, Ordering::SeqCst) == 0 {
            // The server stored and delivered the message; its answer is lost.
            assert!(answer.starts_with("HTTP/1.1 2"), "{answer}");
            return;
        }
        client.get_mut().write_all(answer.as_bytes()).await.unwrap();
        client.get_mut().write_all(&answer_body).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_whose_answer_is_lost_is_retried_and_lands_once() {
    let server = TestServer::start().await;
    let (_, bob) = server.register_alice_and_bob(70).await;
    let proxy = LosesFirstSendAnswer::start(&server.url()).await;
    let alice = Client::open(
        &server.profile_dir("alice"),
        ClientOptions {
            server_url: Some(proxy.url.clone()),
            retry: quick_retries(),
            ..test_options()
        },
    )
    .unwrap();
    alice.unlock(&UnlockSecret::new(PIN)).unwrap();
    alice.add_contact(bob.user_id(), Some("bob")).await.unwrap();

    let sent = alice
        .send_text(bob.user_id(), "take 5 mg, not 50")
        .await
        .unwrap();
    // Two attempts reached the server: the one whose answer was lost, and the retry.
    assert_eq!(proxy.sends(), 2);

    // The recipient gets exactly one copy, with the id the sender recorded.
    let events = bob.receive(0).await.unwrap();
    assert_eq!(texts(&events), ["take 5 mg, not 50"]);
    let Some(Event::Message(received)) = events.iter().find(|e| matches!(e, Event::Message(_)))
    else {
        panic!("no message in {events:?}");
    };
    assert_eq!(received.message_id, sent.message_id);
    assert!(bob.receive(0).await.unwrap().is_empty());

    // The sender's history has it once.
    let history = alice
        .messages(&Conversation::Direct(bob.user_id().to_owned()), 10)
        .unwrap();
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0].message_id, sent.message_id);
    assert!(history[0].outgoing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_that_keeps_failing_is_reported_after_bounded_retries() {
    let mut server = TestServer::start().await;
    let (alice, bob) = server.register_alice_and_bob(71).await;
    alice.add_contact(bob.user_id(), Some("bob")).await.unwrap();
    send_text(&alice, &bob, "first").await;
    server.stop().await;
    let err = alice.send_text(bob.user_id(), "second").await.unwrap_err();
    assert!(matches!(err, ClientError::Unreachable { .. }), "{err:?}");
    server.restart().await;
    // Nothing of the failed send was recorded as sent.
    let history = alice
        .messages(&Conversation::Direct(bob.user_id().to_owned()), 10)
        .unwrap();
    assert_eq!(history.len(), 1, "{history:?}");
}

// ---- TLS ----

struct Tls {
    cert_pem: String,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
}

/// A self-signed certificate for 127.0.0.1 and localhost, written to `dir`.
fn certificate(dir: &Path, name: &str) -> Tls {
    let generated =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    Tls {
        cert_pem: generated.cert.pem(),
        cert,
        key,
    }
}

async fn tls_server(data: &Path, tls: &Tls) -> RunningServer {
    let config = ServerConfig {
        listen: Some(([127, 0, 0, 1], 0).into()),
        tls_cert: Some(tls.cert.clone()),
        tls_key: Some(tls.key.clone()),
        ..ServerConfig::for_data_dir(data)
    };
    cachet_server::spawn(config).await.unwrap()
}

async fn register(
    server: &RunningServer,
    data: &Path,
    dir: &Path,
    identifier: &str,
    options: ClientOptions,
) -> Result<Client, ClientError> {
    let pending = Client::start_registration(&server.base_url(), identifier, options).await?;
    let mut code = None;
    for _ in 0..50 {
        code = dev_code(data, identifier);
        if code.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pending
        .finish(NewProfile {
            dir,
            code: &code.unwrap(),
            display_name: identifier,
            secret: &UnlockSecret::new(PIN),
            previous: None,
        })
        .await
}

fn pinned(tls: &Tls) -> ClientOptions {
    ClientOptions {
        root_certificate_pem: Some(tls.cert_pem.as_bytes().to_vec()),
        ..test_options()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_certificate_pinned_at_registration_is_the_only_one_trusted() {
    let work = tempfile::tempdir().unwrap();
    let (data, other_data) = (work.path().join("data"), work.path().join("other"));
    let ours = certificate(work.path(), "ours");
    let theirs = certificate(work.path(), "theirs");
    let server = tls_server(&data, &ours).await;
    assert!(server.base_url().starts_with("https://"));

    // Without the pin, the system's roots do not vouch for the server.
    let err = Client::start_registration(&server.base_url(), "+33600000721", test_options())
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Tls { .. }), "{err:?}");

    // Registration with the pin stores it in the profile.
    let (alice_dir, bob_dir) = (work.path().join("alice"), work.path().join("bob"));
    let alice = register(&server, &data, &alice_dir, "+33600000721", pinned(&ours))
        .await
        .unwrap();
    let bob = register(&server, &data, &bob_dir, "+33600000722", pinned(&ours))
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(alice_dir.join(PINNED_CERTIFICATE_FILE)).unwrap(),
        ours.cert_pem.as_bytes()
    );
    let bob_id = bob.user_id().to_owned();
    drop(alice);

    // Every later request of the profile uses it, with no option given: messages and
    // attachments.
    let alice = Client::open(&alice_dir, test_options()).unwrap();
    alice.unlock(&UnlockSecret::new(PIN)).unwrap();
    assert_eq!(alice.pinned_certificate(), Some(ours.cert_pem.as_bytes()));
    alice.add_contact(&bob_id, Some("bob")).await.unwrap();
    alice.send_text(&bob_id, "over TLS").await.unwrap();
    let file = work.path().join("scan.txt");
    std::fs::write(&file, b"an encrypted attachment over TLS").unwrap();
    alice
        .send_file(&Conversation::Direct(bob_id.clone()), &file, &no_progress)
        .await
        .unwrap();
    let events = bob.receive(0).await.unwrap();
    assert_eq!(texts(&events), ["over TLS"]);
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Message(m) if m.kind == MessageKind::Attachment)));

    // A server showing another certificate (an interception, or a replaced server) is
    // refused with a clear error, and the send is not retried into it. A pin given as an
    // option does not override the profile's.
    let impostor = tls_server(&other_data, &theirs).await;
    let redirected = Client::open(
        &alice_dir,
        ClientOptions {
            server_url: Some(impostor.base_url()),
            ..pinned(&theirs)
        },
    )
    .unwrap();
    redirected.unlock(&UnlockSecret::new(PIN)).unwrap();
    let err = redirected
        .send_text(&bob_id, "not for the impostor")
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ClientError::Tls { .. }), "{err:?}");
    assert!(msg.contains("certificate is not trusted"), "{msg}");
    // Registering with the wrong pin fails the same way, before any code is sent.
    let err = register(
        &server,
        &data,
        &work.path().join("carol"),
        "+33600000723",
        pinned(&theirs),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ClientError::Tls { .. }), "{err:?}");
    assert!(dev_code(&data, "+33600000723").is_none());
    assert!(received_texts(&bob).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_is_refused_except_to_loopback() {
    // Nothing listens on these addresses: a refusal that came from a connection attempt
    // would be `Unreachable` (after the connect timeout), not an immediate invalid input.
    for url in [
        "http://192.0.2.10:7780",
        "http://cachet.example.org",
        "http://[2001:db8::1]:7780",
        "http://127.0.0.1.example.org:7780",
    ] {
        let err = Client::start_registration(url, "+33600000731", test_options())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ClientError::InsecureUrl { url: u } if u == url),
            "{url}: {err:?}"
        );
        assert!(err.to_string().contains("plain http://"), "{err}");
    }
    let err = cachet_client::recovery::RecoveryServers::new(
        "https://cachet.example.org",
        "http://keys.example.org",
        cachet_recovery::HardeningParams::RECOMMENDED,
    )
    .unwrap_err();
    assert!(matches!(err, ClientError::InsecureUrl { .. }), "{err:?}");

    // Loopback over plain http works (a local development server).
    let server = TestServer::start().await;
    let alice = server.register("alice", "+33600000732", "Alice").await;
    drop(alice);
    for url in [server.url(), server.url().replace("127.0.0.1", "localhost")] {
        let client = Client::open(
            &server.profile_dir("alice"),
            ClientOptions {
                server_url: Some(url.clone()),
                ..test_options()
            },
        )
        .unwrap();
        client.unlock(&UnlockSecret::new(PIN)).unwrap();
        client.receive(0).await.unwrap();
    }
    // An existing profile pointed at a plain http:// address elsewhere does not open.
    let err = Client::open(
        &server.profile_dir("alice"),
        ClientOptions {
            server_url: Some("http://10.1.2.3:7780".into()),
            ..test_options()
        },
    )
    .unwrap_err();
    assert!(matches!(err, ClientError::InsecureUrl { .. }), "{err:?}");
}
