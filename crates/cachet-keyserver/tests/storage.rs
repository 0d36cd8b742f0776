//! The key server's storage suite, run against SQLite and against a real PostgreSQL: the
//! same behaviour from both, and PostgreSQL's concurrent writers kept in line.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use cachet_keyserver::service::Challenge;
use cachet_keyserver::{KeyStore, RecoveryBackend, RecoveryRow};

fn account(user: &str, identifier: u8, version: i64) -> RecoveryRow {
    RecoveryRow {
        user_id: user.to_owned(),
        identifier_hash: vec![identifier; 32],
        share: vec![1; 48],
        data_server_share: vec![2; 32],
        key_server_share: vec![3; 32],
        auth_public: vec![4; 32],
        envelope: vec![5; 100],
        updated_at: 1_000,
        failures: 0,
        last_failure_at: 0,
        pending_delta: Vec::new(),
        version,
    }
}

/// What every key-server store must do.
async fn conformance(store: &KeyStore) {
    // Challenges: stored, counted while live, attempts counted, deleted, purged.
    let c = Challenge {
        challenge_id: "c1".into(),
        identifier_hash: vec![9; 32],
        code_hash: vec![8; 32],
        attempts: 0,
        created_at: 100,
        expires_at: 200,
    };
    store.insert_challenge(&c).await.unwrap();
    store
        .insert_challenge(&Challenge {
            challenge_id: "c2".into(),
            expires_at: 50,
            ..c.clone()
        })
        .await
        .unwrap();
    assert_eq!(
        store
            .live_challenges(&c.identifier_hash, 100)
            .await
            .unwrap(),
        1
    );
    store.record_failed_attempt("c1").await.unwrap();
    let got = store.get_challenge("c1").await.unwrap().unwrap();
    assert_eq!((got.attempts, got.expires_at), (1, 200));
    assert_eq!(got.code_hash, c.code_hash);
    assert_eq!(store.purge_expired(100).await.unwrap(), 1, "c2 expired");
    store.delete_challenge("c1").await.unwrap();
    assert!(store.get_challenge("c1").await.unwrap().is_none());
    assert!(store.get_challenge("c2").await.unwrap().is_none());

    // Accounts: one per user and per identifier; replaced only at the expected version.
    assert!(store.insert_account(&account("u1", 1, 1)).await.unwrap());
    assert!(!store.insert_account(&account("u1", 2, 1)).await.unwrap());
    assert!(!store.insert_account(&account("u2", 1, 1)).await.unwrap());
    assert_eq!(store.account_count().await.unwrap(), 1);
    assert_eq!(
        store
            .user_for_identifier(&[1; 32])
            .await
            .unwrap()
            .as_deref(),
        Some("u1")
    );
    assert!(store.user_for_identifier(&[7; 32]).await.unwrap().is_none());
    let mut next = account("u1", 1, 2);
    next.failures = 3;
    next.pending_delta = vec![6; 32];
    assert!(
        !store.replace_account(&next, 5).await.unwrap(),
        "stale version"
    );
    assert!(store.replace_account(&next, 1).await.unwrap());
    assert!(
        !store.replace_account(&next, 1).await.unwrap(),
        "already moved on"
    );
    let row = store.account("u1").await.unwrap().unwrap();
    assert_eq!((row.failures, row.version), (3, 2));
    assert_eq!(row.pending_delta, vec![6; 32]);
    assert_eq!(row.envelope, vec![5; 100]);
    assert!(store.account("nobody").await.unwrap().is_none());

    // Enrolled users, those with a refresh in progress first.
    assert!(store.insert_account(&account("u0", 3, 1)).await.unwrap());
    let mut unenrolled = account("u9", 4, 1);
    unenrolled.auth_public = Vec::new();
    assert!(store.insert_account(&unenrolled).await.unwrap());
    assert_eq!(store.enrolled_users().await.unwrap(), ["u1", "u0"]);

    // The vault document: compare-and-swap.
    assert!(store.vault_config().await.unwrap().is_none());
    assert!(store.put_vault_config(None, b"v1").await.unwrap());
    assert!(!store.put_vault_config(None, b"v1bis").await.unwrap());
    assert!(!store.put_vault_config(Some(b"v0"), b"v2").await.unwrap());
    assert!(store.put_vault_config(Some(b"v1"), b"v2").await.unwrap());
    assert_eq!(store.vault_config().await.unwrap().unwrap(), b"v2");

    // Operators and the replay cache.
    assert!(store.add_operator("kim", &[1; 32], 5).await.unwrap());
    assert!(!store.add_operator("kim", &[2; 32], 6).await.unwrap());
    assert_eq!(store.operator_key("kim").await.unwrap().unwrap(), [1; 32]);
    assert!(store.operator_key("lee").await.unwrap().is_none());
    assert!(store.remember_signature(b"sig-1", 300).await.unwrap());
    assert!(
        !store.remember_signature(b"sig-1", 300).await.unwrap(),
        "a replay"
    );
    store.purge_expired(301).await.unwrap();
    assert!(
        store.remember_signature(b"sig-1", 900).await.unwrap(),
        "window passed"
    );

    // The audit log is a verifying hash chain.
    for action in ["init", "unseal", "rotate"] {
        store
            .append_audit(10, "op:kim", action, "detail")
            .await
            .unwrap();
    }
    let entries = store.audit_entries(0, 10).await.unwrap();
    assert_eq!(entries.len(), 3);
    cachet_proto::audit::verify_entries(None, &entries).unwrap();
    assert_eq!(store.audit_entries(2, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn sqlite_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let store = KeyStore::open_in(dir.path()).await.unwrap();
    assert_eq!(store.kind(), "sqlite");
    conformance(&store).await;
    store.close().await;
}

#[tokio::test]
async fn postgres_store_conforms() {
    cachet_server_common::testing::with_database(env!("CARGO_CRATE_NAME"), |db| async move {
        let url = db.url();
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::connect(&url, dir.path()).await.unwrap();
        assert_eq!(store.kind(), "postgres");
        conformance(&store).await;
        store.close().await;
        // Reopening runs no migration twice and finds the data.
        let again = KeyStore::open(Some(&url), dir.path()).await.unwrap();
        assert_eq!(again.account_count().await.unwrap(), 3);
        again.close().await;
    })
    .await;
}

/// Several connections write at once: the audit chain stays one chain, and of two
/// replacements from the same version exactly one wins.
#[tokio::test]
async fn postgres_concurrent_writers_keep_the_chain_and_the_versions() {
    cachet_server_common::testing::with_database(env!("CARGO_CRATE_NAME"), |db| async move {
        let url = db.url();
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(KeyStore::connect(&url, dir.path()).await.unwrap());
        let mut appends = tokio::task::JoinSet::new();
        for i in 0..16 {
            let store = store.clone();
            appends.spawn(async move {
                store
                    .append_audit(i, "op:kim", "unseal", &format!("attempt {i}"))
                    .await
                    .unwrap()
            });
        }
        while let Some(done) = appends.join_next().await {
            done.unwrap();
        }
        let entries = store.audit_entries(0, 100).await.unwrap();
        assert_eq!(entries.len(), 16);
        cachet_proto::audit::verify_entries(None, &entries).unwrap();

        assert!(store.insert_account(&account("u1", 1, 1)).await.unwrap());
        let mut racers = tokio::task::JoinSet::new();
        for failures in 0..8u32 {
            let store = store.clone();
            racers.spawn(async move {
                let mut next = account("u1", 1, 2);
                next.failures = failures;
                store.replace_account(&next, 1).await.unwrap()
            });
        }
        let mut won = 0;
        while let Some(done) = racers.join_next().await {
            won += usize::from(done.unwrap());
        }
        assert_eq!(won, 1, "one compare-and-swap wins");
        store.close().await;
    })
    .await;
}
