//! The storage conformance suite, concurrency checks and an HTTP round trip against a real
//! PostgreSQL.
//!
//! The server is found through `CACHET_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); that database is only used to create and
//! drop a fresh `cachet_test_<random>` database per test. When PostgreSQL cannot be reached
//! the tests are skipped with a notice, except when `CI` is set: then they fail.

#[allow(dead_code, unused_imports)]
#[path = "http/common.rs"]
mod common;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cachet_proto::v1::KeyRecord;
use cachet_server::conformance;
use cachet_server::store::{
    AuditDraft, Challenge, Delivery, NewMessage, NewUser, PostgresStore, SendOutcome, Store,
};
use cachet_server::ServerConfig;
use cachet_server_common::testing::{self, DatabaseRelay, TestDb};

/// A store on the test database, migrated.
async fn open_store(db: &TestDb, max_connections: u32) -> PostgresStore {
    PostgresStore::connect_with(db.options(), max_connections)
        .await
        .expect("store connects and migrates")
}

/// Runs `body` on a fresh database (skipped without PostgreSQL unless `CI` is set).
async fn with_database<F, Fut>(body: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    testing::with_database(env!("CARGO_CRATE_NAME"), body).await
}

#[tokio::test]
async fn postgres_store_conforms() {
    with_database(|db| async move {
        let store = open_store(&db, 8).await;
        conformance::run_all(&store).await;
        store.close().await;
        // Connecting again runs no migration twice and keeps the data.
        let again = open_store(&db, 2).await;
        cachet_server::audit::verify_audit_log(&again)
            .await
            .expect("chain still verifies");
        again.close().await;
    })
    .await;
}

#[tokio::test]
async fn history_tables_refuse_rewrites() {
    with_database(|db| async move {
        let store = open_store(&db, 2).await;
        store
            .append_audit(&draft("first"))
            .await
            .expect("audit append");
        for sql in [
            "UPDATE audit_log SET detail = 'rewritten'",
            "DELETE FROM audit_log",
            "TRUNCATE audit_log",
            "TRUNCATE case_messages",
        ] {
            let r = sqlx::query(sql).execute(store.pool()).await;
            assert!(r.is_err(), "{sql} must be refused");
        }
        cachet_server::audit::verify_audit_log(&store)
            .await
            .expect("chain intact");
        store.close().await;
    })
    .await;
}

fn draft(detail: &str) -> AuditDraft {
    AuditDraft {
        timestamp: 1_900_000_000_000,
        operator_id: "console".into(),
        action: "test".into(),
        subject: "nobody".into(),
        detail: detail.into(),
    }
}

async fn make_user(store: &dyn Store) -> String {
    let identifier_hash = cachet_crypto::random_bytes::<32>().to_vec();
    let challenge = Challenge {
        challenge_id: format!("c_{}", hex::encode(cachet_crypto::random_bytes::<16>())),
        identifier_hash: identifier_hash.clone(),
        code_hash: vec![7; 32],
        attempts: 0,
        created_at: 1_900_000_000_000,
        expires_at: 1_900_000_600_000,
    };
    store.insert_challenge(&challenge).await.expect("challenge");
    let user_id = format!("u_{}", hex::encode(cachet_crypto::random_bytes::<16>()));
    store
        .create_user(
            &challenge.challenge_id,
            &NewUser {
                user_id: user_id.clone(),
                identifier_hash,
                display_name: "Dr Concurrent".into(),
                created_at: 1_900_000_000_000,
                keys: KeyRecord {
                    key_version: 1,
                    box_key: vec![1; 32],
                    sign_key: vec![2; 32],
                    valid_from: 1_900_000_000_000,
                    ..Default::default()
                },
            },
        )
        .await
        .expect("user");
    user_id
}

fn message(sender: &str, id: &str, digest: u8, to: &[&String]) -> NewMessage {
    NewMessage {
        sender_id: sender.to_owned(),
        message_id: id.to_owned(),
        digest: vec![digest; 32],
        created_at: 1_900_000_000_000,
        deliveries: to
            .iter()
            .map(|r| Delivery {
                recipient_id: (*r).clone(),
                envelope: id.as_bytes().to_vec(),
            })
            .collect(),
        case_entry: None,
        contacts: to.iter().map(|r| (*r).clone()).collect(),
    }
}

/// Two stores on one database stand for two server nodes: concurrent writes through both
/// keep delivery ids dense and ordered, message ids idempotent and the audit chain whole.
#[tokio::test]
async fn two_nodes_write_concurrently() {
    with_database(|db| async move {
        let a: Arc<dyn Store> = Arc::new(open_store(&db, 6).await);
        let b: Arc<dyn Store> = Arc::new(open_store(&db, 6).await);
        let alice = make_user(a.as_ref()).await;
        let bob = make_user(b.as_ref()).await;
        let carol = make_user(a.as_ref()).await;

        // Alice and Bob write to each other and both to Carol, crossing lock orders.
        const PER_SENDER: usize = 25;
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..PER_SENDER {
            for (node, from, to) in [(&a, &alice, &bob), (&b, &bob, &alice)] {
                let (node, from, to, carol) =
                    (node.clone(), from.clone(), to.clone(), carol.clone());
                tasks.spawn(async move {
                    let msg = message(&from, &format!("m{i}"), 1, &[&to, &carol]);
                    node.store_message(&msg).await.expect("send")
                });
            }
        }
        while let Some(r) = tasks.join_next().await {
            assert_eq!(r.expect("task"), SendOutcome::Stored);
        }
        let page = a.pending(&carol, 1000).await.expect("pending");
        let ids: Vec<u64> = page.envelopes.iter().map(|e| e.delivery_id).collect();
        assert_eq!(ids, (1..=2 * PER_SENDER as u64).collect::<Vec<_>>());
        assert_eq!(
            conformance::pending_count(b.as_ref(), &alice).await,
            PER_SENDER
        );
        assert_eq!(a.contacts_of(&alice).await.expect("contacts"), {
            let mut c = vec![bob.clone(), carol.clone()];
            c.sort();
            c
        });

        // The same message id through both nodes at once: stored once.
        let mut outcomes = Vec::new();
        for _ in 0..5 {
            let msg = message(&alice, "same-id", 9, &[&bob]);
            let (ra, rb) = tokio::join!(a.store_message(&msg), b.store_message(&msg));
            outcomes.push(ra.expect("send a"));
            outcomes.push(rb.expect("send b"));
        }
        assert_eq!(
            outcomes
                .iter()
                .filter(|o| **o == SendOutcome::Stored)
                .count(),
            1
        );
        assert_eq!(conformance::pending_count(b.as_ref(), &bob).await, 26);

        // Audit appends through both nodes form one chain.
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..20u32 {
            let node = if i.is_multiple_of(2) {
                a.clone()
            } else {
                b.clone()
            };
            tasks.spawn(async move { node.append_audit(&draft(&format!("n{i}"))).await });
        }
        while let Some(r) = tasks.join_next().await {
            r.expect("task").expect("append");
        }
        let (count, _) = cachet_server::audit::verify_audit_log(a.as_ref())
            .await
            .expect("chain verifies");
        assert_eq!(count, 20);
    })
    .await;
}

/// A message sent through a server on PostgreSQL is received through it, and through a
/// second server on the same database.
#[tokio::test]
async fn http_send_and_receive_on_postgres() {
    with_database(|db| async move {
        let url = db.url();
        let node_a = common::TestServer::start_with(|c: &mut ServerConfig| {
            c.database_url = Some(url.clone());
        })
        .await;
        let [alice, bob] = node_a.register_all(["Alice", "Bob"]).await;
        let env = common::text_envelope(
            &alice,
            &[&bob],
            &common::mid(),
            "Bed 4: allergy to penicillin",
        );
        common::send_ok(&node_a, &alice, &env).await;

        let got = common::receive(&node_a, &bob, vec![], 0).await;
        assert_eq!(got.envelopes.len(), 1);
        let e = &got.envelopes[0];
        assert_eq!(e.sender_id, alice.user_id);
        assert_eq!(
            common::open_text(e, &bob, &alice),
            "Bed 4: allergy to penicillin"
        );

        // A second node on the same database sees the same mailbox, and the ack there
        // empties it for both.
        let node_b = common::TestServer::start_with(|c: &mut ServerConfig| {
            c.database_url = Some(url.clone());
        })
        .await;
        let via_b = common::receive(&node_b, &bob, vec![], 0).await;
        assert_eq!(via_b.envelopes, got.envelopes);
        let acked = common::receive(&node_b, &bob, vec![e.delivery_id], 0).await;
        assert!(acked.envelopes.is_empty());
        assert!(common::receive(&node_a, &bob, vec![], 0)
            .await
            .envelopes
            .is_empty());

        let (mut node_a, mut node_b) = (node_a, node_b);
        node_b.stop().await;
        node_a.stop().await;
    })
    .await;
}

async fn healthz(client: &common::Client) -> (u16, serde_json::Value) {
    let r = client
        .raw(reqwest::Method::GET, "/healthz", &[], Vec::new())
        .await;
    assert_eq!(r.content_type, "application/json");
    (
        r.status,
        serde_json::from_slice(&r.body).expect("JSON health"),
    )
}

/// Polls `/healthz` until it answers 200 (bounded, so that a server that never recovers
/// fails the test instead of hanging it).
async fn until_healthy(client: &common::Client) {
    for _ in 0..100 {
        if healthz(client).await.0 == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the server did not become healthy again");
}

/// While PostgreSQL cannot be reached, `/healthz` says so with 503 and requests fail with
/// 503 `database_unavailable` (not a 500 after a long wait); once it is back, both recover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_answers_503_and_recovers() {
    with_database(|db| async move {
        let mut relay = DatabaseRelay::new(&db);
        relay.restore().await;
        let url = relay.url();
        let mut node = common::TestServer::start_with(|c: &mut ServerConfig| {
            c.database_url = Some(url);
            c.database_timeout_seconds = Some(1);
        })
        .await;
        let alice = node.register("Alice").await;
        let profile = format!("/api/v1/users/{}", alice.user_id);
        let (status, health) = healthz(&node.client).await;
        assert_eq!(status, 200, "{health}");
        assert_eq!(health["database"], "ok");
        assert_eq!(health["sealed"], false);

        relay.cut().await;
        // Bounded generously: the point is the status and the reason, not the delay.
        let bounded = Duration::from_secs(30);
        let (status, health) = tokio::time::timeout(bounded, healthz(&node.client))
            .await
            .expect("healthz answers while the database is down");
        assert_eq!(status, 503, "{health}");
        assert_eq!(health["database"], "unavailable");
        assert_eq!(health["reason"], "database_unavailable");
        assert_eq!(health["sealed"], false);
        let r = tokio::time::timeout(bounded, node.get(&alice, &profile))
            .await
            .expect("a signed request answers while the database is down");
        r.assert_error(503, "database_unavailable");
        let r = tokio::time::timeout(
            bounded,
            node.post_unsigned(
                "/api/v1/register/start",
                &cachet_proto::v1::RegisterStart {
                    identifier: common::phone(),
                },
            ),
        )
        .await
        .expect("registration answers while the database is down");
        r.assert_error(503, "database_unavailable");

        relay.restore().await;
        until_healthy(&node.client).await;
        let r = node.get(&alice, &profile).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        node.stop().await;
        relay.cut().await;
    })
    .await;
}

/// A server started while PostgreSQL cannot be reached waits for it (with backoff, in its
/// log) instead of exiting, and serves once it is up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_started_before_its_database_waits_for_it() {
    with_database(|db| async move {
        let mut relay = DatabaseRelay::new(&db);
        let url = relay.url();
        let starting = tokio::spawn(common::TestServer::start_with(
            move |c: &mut ServerConfig| {
                c.database_url = Some(url);
                // Shorter than the outage below: each connection attempt fails.
                c.database_timeout_seconds = Some(1);
            },
        ));
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(!starting.is_finished(), "the server is still waiting");
        relay.restore().await;
        let mut node = tokio::time::timeout(Duration::from_secs(60), starting)
            .await
            .expect("the server starts once the database is up")
            .expect("server task");
        let (status, health) = healthz(&node.client).await;
        assert_eq!(status, 200, "{health}");
        let alice = node.register("Alice").await;
        let r = node
            .get(&alice, &format!("/api/v1/users/{}", alice.user_id))
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        node.stop().await;
        relay.cut().await;
    })
    .await;
}

/// Two nodes on one database count discovery lookups against one budget per user: the
/// limit cannot be multiplied by spreading requests over nodes.
#[tokio::test]
async fn nodes_share_the_discovery_budget() {
    with_database(|db| async move {
        let url = db.url();
        let node = |url: String| {
            common::TestServer::start_with(move |c: &mut ServerConfig| {
                c.database_url = Some(url);
                c.discover_max_hashes = Some(10);
            })
        };
        let mut node_a = node(url.clone()).await;
        let mut node_b = node(url.clone()).await;
        let alice = node_a.register("Alice").await;
        let hashes = |n: usize| cachet_proto::v1::DiscoverRequest {
            identifier_hashes: (0..n)
                .map(|_| cachet_crypto::random_bytes::<32>().to_vec())
                .collect(),
        };
        const DISCOVER: &str = "/api/v1/directory/discover";
        for (node, count, within_budget) in [
            (&node_a, 6, true),
            (&node_b, 6, false),
            (&node_b, 4, true),
            (&node_a, 1, false),
        ] {
            let r = node.post(&alice, DISCOVER, &hashes(count)).await;
            if within_budget {
                assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            } else {
                r.assert_error(429, "discovery_rate_limited");
            }
        }
        node_b.stop().await;
        node_a.stop().await;
    })
    .await;
}
