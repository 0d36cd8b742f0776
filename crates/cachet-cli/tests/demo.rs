//! The demo runs every flow and leaves no plaintext on the server: this test runs it,
//! then reads every row of every table of the server's database and every blob file.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use cachet_cli::demo::{self, DemoOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_passes_and_the_server_holds_no_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("demo");
    let mut out = Vec::new();
    let report = demo::run(
        DemoOptions {
            data_dir: Some(root.clone()),
            attachment_bytes: 5 * 1024 * 1024,
            show_progress: false,
        },
        &mut out,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", String::from_utf8_lossy(&out)));
    let text = String::from_utf8_lossy(&out).into_owned();
    assert_eq!(report.steps.len(), 10, "{text}");
    assert!(text.contains("All 10 steps passed."));
    assert!(report.found.is_empty());

    // Every message text appears in double quotes as sent and as received.
    for t in [
        "Your blood test results are in: everything is within normal ranges.",
        "Reminder: fasting blood test tomorrow at 8:00.",
        "Sent from my old phone just before reinstalling the app.",
    ] {
        let quoted = format!("\"{t}\"");
        assert!(
            text.matches(&quoted).count() >= 2,
            "{t} not shown sent and received"
        );
    }

    // Independently of the demo's own scan: every database row and every blob file.
    let server_dir = &report.server_data_dir;
    let conn = rusqlite::Connection::open_with_flags(
        server_dir.join(cachet_server::store::sqlite::DATABASE_FILE),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut needles: Vec<Vec<u8>> = report
        .plaintexts
        .iter()
        .map(|p| p.as_bytes().to_vec())
        .collect();
    needles.extend(
        report
            .attachment_samples
            .iter()
            .map(|h| hex::decode(h).unwrap()),
    );
    assert!(needles.len() >= 15);
    let mut cells = 0usize;
    for table in &tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
        let columns = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            for i in 0..columns {
                let bytes: Vec<u8> = match row.get_ref(i).unwrap() {
                    rusqlite::types::ValueRef::Blob(b) => b.to_vec(),
                    rusqlite::types::ValueRef::Text(t) => t.to_vec(),
                    _ => continue,
                };
                cells += 1;
                for n in &needles {
                    assert!(!demo::contains(&bytes, n), "plaintext in table {table}");
                }
            }
        }
    }
    assert!(cells > 50, "only {cells} cells read");
    let blobs = cachet_server::blob::files_under(&server_dir.join(cachet_server::BLOB_DIR));
    assert!(!blobs.is_empty());
    for f in blobs {
        let bytes = std::fs::read(&f).unwrap();
        for n in &needles {
            assert!(!demo::contains(&bytes, n), "plaintext in {}", f.display());
        }
    }
}
