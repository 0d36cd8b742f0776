//! The storage conformance suites against the default implementations.

use cachet_server::blob::FsBlobStore;
use cachet_server::store::{conformance, SqliteStore};

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
