//! What the server writes to disk is its own account's only: directories 0700, files 0600.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use cachet_proto::v1::{AttachmentStatus, CreateAttachment};
use cachet_server::ServerConfig;
use reqwest::Method;

use crate::common::*;

/// Every entry under `root` (itself included) with its permission bits.
fn modes(root: &Path) -> Vec<(PathBuf, bool, u32)> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_owned()];
    while let Some(path) = todo.pop() {
        let meta = std::fs::symlink_metadata(&path).expect("metadata");
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).expect("read_dir") {
                todo.push(entry.expect("entry").path());
            }
        }
        out.push((path, meta.is_dir(), meta.permissions().mode() & 0o777));
    }
    out.sort();
    out
}

fn assert_private(root: &Path) {
    for (path, is_dir, mode) in modes(root) {
        let wanted = if is_dir { 0o700 } else { 0o600 };
        assert_eq!(
            mode,
            wanted,
            "{} is {mode:o}, expected {wanted:o}",
            path.display()
        );
    }
}

/// A data directory that others could read (as an older server left it, or as an
/// administrator made it) is tightened at start, and every file the server writes after a
/// registration and an attachment upload (database, WAL, codes, chunks) is 0600.
#[tokio::test]
async fn data_directory_and_files_are_private() {
    let s = TestServer::start_with(|c: &mut ServerConfig| {
        let dir = c.data_dir.clone().expect("data dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    })
    .await;
    let alice = s.register("Alice").await;
    let created: AttachmentStatus = s
        .post(
            &alice,
            "/api/v1/attachments",
            &CreateAttachment { sealed_size: 100 },
        )
        .await
        .decode();
    let r = s
        .call(
            &alice,
            Method::PUT,
            &format!("/api/v1/attachments/{}/chunks/0", created.attachment_id),
            vec![1; 100],
        )
        .await;
    assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));

    let dir = s.data_dir();
    let names: Vec<String> = modes(&dir)
        .iter()
        .filter(|(_, is_dir, _)| !is_dir)
        .filter_map(|(p, _, _)| Some(p.file_name()?.to_string_lossy().into_owned()))
        .collect();
    cachet_server_common::testing::assert_files_present(
        &names,
        &[
            "cachet.sqlite3",
            "cachet.sqlite3-wal",
            "cachet.sqlite3-shm",
            "dev-codes.txt",
            "0",
        ],
    );
    assert_private(&dir);
}

/// A data directory the server creates (with its missing parents) is 0700 from the start.
#[tokio::test]
async fn new_data_directory_is_created_private() {
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let data = root.path().join("srv").join("cachet");
    let mut config = ServerConfig::for_data_dir(&data);
    config.listen = Some("127.0.0.1:0".parse().expect("addr"));
    let server = cachet_server::spawn(config).await.expect("server starts");
    let client = Client::new(server.base_url());
    let r = client
        .post_unsigned(
            "/api/v1/register/start",
            &cachet_proto::v1::RegisterStart {
                identifier: phone(),
            },
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_private(&root.path().join("srv"));
    server.shutdown().await.expect("shutdown");
    assert_private(&root.path().join("srv"));
}
