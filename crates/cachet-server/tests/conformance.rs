//! The storage conformance suites against the default implementations.

use cachet_server::blob::FsBlobStore;
use cachet_server::conformance;
use cachet_server::store::SqliteStore;

#[tokio::test]
async fn sqlite_store_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open_in(dir.path()).await.expect("open");
    conformance::run_all(&store).await;
    store.close().await;
    // Reopening runs no migration twice and keeps the data.
    let again = SqliteStore::open_in(dir.path()).await.expect("reopen");
    cachet_server::audit::verify_audit_log(&again)
        .await
        .expect("chain still verifies");
}

#[tokio::test]
async fn filesystem_blob_store_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blobs = FsBlobStore::new(dir.path().join("blobs")).expect("blobs");
    cachet_server::blob::conformance(&blobs).await;
}

/// The writer never checkpoints inside a commit; the checkpointer thread must keep the
/// write-ahead log bounded anyway. Without it, 3,000 one-send commits would leave tens of
/// megabytes of log.
#[tokio::test]
async fn sqlite_wal_stays_bounded_under_a_stream_of_sends() {
    use cachet_server::store::{Delivery, NewMessage, Store};
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open_in(dir.path()).await.expect("open");
    let (alice, bob) = conformance::two_users(&store).await;
    for i in 0..3000 {
        let msg = NewMessage {
            sender_id: alice.clone(),
            message_id: format!("m-{i}"),
            digest: vec![1; 32],
            created_at: 0,
            deliveries: vec![Delivery {
                recipient_id: bob.clone(),
                envelope: vec![7; 600],
            }],
            case_entry: None,
            contacts: vec![bob.clone()],
        };
        store.store_message(&msg).await.expect("send");
    }
    let wal = dir.path().join(format!(
        "{}-wal",
        cachet_server::store::sqlite::DATABASE_FILE
    ));
    let size = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert!(size < 8 << 20, "the WAL grew to {size} bytes");
    // Closed the way the server closes it, through the trait: the writer thread, the
    // checkpointer and every connection are gone when this returns.
    let as_trait: &dyn Store = &store;
    as_trait.close().await;
    assert!(
        !wal.exists(),
        "closing folds the WAL back into the database"
    );
    let again = SqliteStore::open_in(dir.path()).await.expect("reopen");
    let page = again.pending(&bob, 5000).await.expect("pending");
    assert_eq!(
        page.envelopes.len(),
        3000,
        "every send is in the database file"
    );
    again.close().await;
}
