//! Several data-server nodes on one PostgreSQL database and one NATS server: a message
//! sent through one node is received through another, and a long poll on one node wakes
//! when mail arrives through another. Attachment chunks in an S3-compatible object store.
//!
//! PostgreSQL comes from `CACHET_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), NATS from `CACHET_TEST_NATS_URL`
//! (default `nats://127.0.0.1:4222`). The S3 store is `CACHET_TEST_S3_ENDPOINT` if set,
//! else a `moto_server` started on a free loopback port. A missing service skips the test
//! with a notice, except when `CI` is set: then it fails.
#![allow(clippy::unwrap_used)]

#[allow(dead_code, unused_imports)]
#[path = "http/common.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cachet_server::blob::{self, BlobStore, S3BlobStore};
use cachet_server::wake::{MailboxSignal, NatsSignal};
use cachet_server::{S3Settings, ServerConfig};
use cachet_server_common::testing::{announce_skip, TestDb};

/// Skips (returns `None`) or, under CI, fails when a service is missing.
fn missing(what: &'static str, why: &str) -> Option<std::convert::Infallible> {
    if std::env::var_os("CI").is_some() {
        panic!("{what} is required in CI but is not reachable: {why}");
    }
    announce_skip(
        what,
        &format!(
            "{what} tests of scale_out — not reachable ({why}); start it or set its \
             CACHET_TEST_* variable (with CI set this fails instead)"
        ),
    );
    None
}

fn nats_url() -> String {
    std::env::var("CACHET_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// A subject of its own per test, so parallel tests never wake each other.
fn fresh_subject() -> String {
    format!(
        "cachet.test.{}",
        hex::encode(cachet_crypto::random_bytes::<8>())
    )
}

async fn nats_signal(subject: &str) -> Option<NatsSignal> {
    match NatsSignal::connect(&nats_url(), subject).await {
        Ok(s) => Some(s),
        Err(e) => {
            missing("NATS", &e.to_string())?;
            None
        }
    }
}

#[tokio::test]
async fn nats_signal_wakes_a_waiter_on_another_connection() {
    let subject = fresh_subject();
    let Some(a) = nats_signal(&subject).await else {
        return;
    };
    let Some(b) = nats_signal(&subject).await else {
        return;
    };
    let woken = b.subscribe("u_bob").await;
    let local = a.subscribe("u_bob").await;
    a.notify(&["u_carol".to_owned(), "u_bob".to_owned()]).await;
    // Bounded only so that a broken bus fails instead of hanging.
    tokio::time::timeout(Duration::from_secs(10), woken)
        .await
        .expect("the waiter on the other connection is woken");
    tokio::time::timeout(Duration::from_secs(10), local)
        .await
        .expect("the local waiter is woken");
    // Another subject is another deployment: nothing crosses.
    let Some(other) = nats_signal(&fresh_subject()).await else {
        return;
    };
    let mut not_woken = b.subscribe("u_dave").await;
    other.notify(&["u_dave".to_owned()]).await;
    a.notify(&["u_erin".to_owned()]).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(200), &mut not_woken)
            .await
            .is_err()
    );
}

/// Two nodes on one database and one NATS subject: a message sent through A is received
/// through B, and a long poll (20 s) waiting on B returns with the message sent through A.
#[tokio::test]
async fn two_nodes_share_mail_and_wake_each_other() {
    let subject = fresh_subject();
    // Checked first so that a missing NATS is reported as such.
    if nats_signal(&subject).await.is_none() {
        return;
    }
    let Some(db) = TestDb::create(env!("CARGO_CRATE_NAME")).await else {
        return;
    };
    let url = db.url();
    let outcome = tokio::spawn(async move {
        let node = |url: String, subject: String| {
            common::TestServer::start_with(move |c: &mut ServerConfig| {
                c.database_url = Some(url);
                c.nats_url = Some(nats_url());
                c.nats_subject = Some(subject);
                c.long_poll_max_seconds = Some(20);
            })
        };
        let mut node_a = node(url.clone(), subject.clone()).await;
        let mut node_b = node(url.clone(), subject.clone()).await;
        let [alice, bob] = node_a.register_all(["Alice", "Bob"]).await;

        // Sent through A, received through B.
        let env = common::text_envelope(&alice, &[&bob], &common::mid(), "first");
        common::send_ok(&node_a, &alice, &env).await;
        let got = common::receive(&node_b, &bob, vec![], 0).await;
        assert_eq!(got.envelopes.len(), 1);
        assert_eq!(common::open_text(&got.envelopes[0], &bob, &alice), "first");
        let acked = got.envelopes[0].delivery_id;

        // Bob long-polls on B with an empty mailbox (the ack empties it first).
        let client_b = node_b.client.clone();
        let bob_b = bob.clone();
        let poll =
            tokio::spawn(async move { common::receive(&client_b, &bob_b, vec![acked], 20).await });
        // Give the poll time to reach its wait; if the send were first, the poll would
        // still find the message, just through its first read.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let env = common::text_envelope(&alice, &[&bob], &common::mid(), "wake up");
        common::send_ok(&node_a, &alice, &env).await;
        // Without a wake-up from A the poll would end at 20 s with an empty list.
        let woken = tokio::time::timeout(Duration::from_secs(15), poll)
            .await
            .expect("the long poll on B returns before its deadline")
            .expect("poll task");
        assert_eq!(
            woken.envelopes.len(),
            1,
            "the poll returns with the message"
        );
        assert_eq!(
            common::open_text(&woken.envelopes[0], &bob, &alice),
            "wake up"
        );

        node_b.stop().await;
        node_a.stop().await;
    })
    .await;
    db.drop_database().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// An S3-compatible server for the test: the given endpoint, or `moto_server` on a free
/// port (killed on drop).
struct S3Server {
    endpoint: String,
    child: Option<std::process::Child>,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn s3_server() -> Option<S3Server> {
    if let Ok(endpoint) = std::env::var("CACHET_TEST_S3_ENDPOINT") {
        return Some(S3Server {
            endpoint,
            child: None,
        });
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let child = std::process::Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => {
            missing("moto_server (pip install 'moto[server]')", &e.to_string())?;
            return None;
        }
    };
    let server = S3Server {
        endpoint: format!("http://127.0.0.1:{port}"),
        child: Some(child),
    };
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Some(server);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    missing("moto_server", "did not start listening")?;
    None
}

async fn create_bucket(endpoint: &str, bucket: &str) {
    // moto accepts unsigned requests; a real store would need the bucket made beforehand.
    let r = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .expect("create bucket");
    assert!(r.status().is_success(), "create bucket: {}", r.status());
}

/// The S3 server (as [`s3_server`]) with a new, empty bucket of its own for one test.
async fn s3_with_fresh_bucket() -> Option<(S3Server, String)> {
    let server = s3_server().await?;
    let bucket = format!("cachet-{}", hex::encode(cachet_crypto::random_bytes::<6>()));
    create_bucket(&server.endpoint, &bucket).await;
    Some((server, bucket))
}

fn s3_settings(endpoint: &str, bucket: &str) -> S3Settings {
    let mut s = S3Settings::from_url(&format!("s3://{bucket}/cachet/chunks")).unwrap();
    s.endpoint = Some(endpoint.to_owned());
    s.region = Some("us-east-1".into());
    s.access_key_id = Some("test".into());
    s.secret_access_key = Some("test".parse().unwrap());
    s
}

#[tokio::test]
async fn s3_blob_store_conforms() {
    let Some((server, bucket)) = s3_with_fresh_bucket().await else {
        return;
    };
    let store = S3BlobStore::new(&s3_settings(&server.endpoint, &bucket)).unwrap();
    blob::conformance(&store).await;

    // Deleting one attachment leaves another whose id extends it untouched.
    let store: Arc<dyn BlobStore> = Arc::new(store);
    store
        .put_chunk("a_same", 0, Bytes::from_static(b"x"))
        .await
        .unwrap();
    store
        .put_chunk("a_same_longer", 0, Bytes::from_static(b"y"))
        .await
        .unwrap();
    store.delete_attachment("a_same").await.unwrap();
    assert!(store.get_chunk("a_same", 0).await.unwrap().is_none());
    assert_eq!(
        store
            .get_chunk("a_same_longer", 0)
            .await
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );
}

/// A whole attachment through a server whose chunks live in the object store.
#[tokio::test]
async fn server_keeps_attachment_chunks_in_s3() {
    let Some((server, bucket)) = s3_with_fresh_bucket().await else {
        return;
    };
    let endpoint = server.endpoint.clone();
    let node = common::TestServer::start_with(|c: &mut ServerConfig| {
        c.s3_url = Some(format!("s3://{bucket}/chunks"));
        c.s3_endpoint = Some(endpoint);
        c.s3_region = Some("us-east-1".into());
        c.s3_access_key_id = Some("test".into());
        c.s3_secret_access_key = Some("test".parse().unwrap());
    })
    .await;
    let alice = node.register("Alice").await;
    let chunk = vec![7u8; 1000];
    let created: cachet_proto::v1::AttachmentStatus = node
        .post(
            &alice,
            "/api/v1/attachments",
            &cachet_proto::v1::CreateAttachment {
                sealed_size: chunk.len() as u64,
            },
        )
        .await
        .decode();
    let id = created.attachment_id;
    let path = format!("/api/v1/attachments/{id}/chunks/0");
    let r = node
        .call(&alice, reqwest::Method::PUT, &path, chunk.clone())
        .await;
    assert_eq!(r.status, 204, "upload");
    let done: cachet_proto::v1::AttachmentStatus = node
        .post(
            &alice,
            &format!("/api/v1/attachments/{id}/complete"),
            &cachet_proto::v1::CompleteAttachment {
                sha256: cachet_crypto::sha256(&chunk).to_vec(),
                readers: Vec::new(),
            },
        )
        .await
        .decode();
    assert!(done.complete);
    // The chunk is in the bucket under the configured prefix, not in the data directory.
    let mut under_prefix = s3_settings(&server.endpoint, &bucket);
    under_prefix.prefix = "chunks".into();
    let in_bucket = S3BlobStore::new(&under_prefix)
        .unwrap()
        .get_chunk(&id, 0)
        .await
        .unwrap();
    assert_eq!(in_bucket.as_deref(), Some(chunk.as_slice()));
    let blob_dir = node.data_dir().join(cachet_server::BLOB_DIR);
    assert!(!blob_dir.exists() || std::fs::read_dir(&blob_dir).unwrap().next().is_none());
    let back = node.get(&alice, &path).await;
    assert_eq!(back.status, 200);
    assert_eq!(back.body.as_ref(), chunk.as_slice());
}
