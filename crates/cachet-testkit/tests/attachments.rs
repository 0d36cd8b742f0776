//! End-to-end: attachments streamed in chunks, resumed after interruption, checked at the
//! end, and refused to a contact whose verified keys changed.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use cachet_client::{no_progress, Client, ClientError, Conversation, Event, MessageKind};
use cachet_crypto::attachment::CHUNK_SIZE;
use cachet_testkit::{file_in_temp_dir, TestServer};

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn attachment_id(events: &[Event]) -> String {
    events
        .iter()
        .find_map(|e| match e {
            Event::Message(m) if m.kind == MessageKind::Attachment => m.attachment_id.clone(),
            _ => None,
        })
        .expect("an attachment arrived")
}

/// `from` sends the file at `path` to `to`, who receives it; the attachment's id.
async fn send_and_receive(from: &Client, to: &Client, path: &Path) -> String {
    from.send_file(
        &Conversation::Direct(to.user_id().to_owned()),
        path,
        &no_progress,
    )
    .await
    .unwrap();
    attachment_id(&to.receive(0).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_attachment_round_trips_to_a_file_and_to_the_local_store() {
    let server = TestServer::start().await;
    let (alice, bob) = server.register_alice_and_bob(10).await;
    let data = pattern(70_000, 7);
    let (work, src) = file_in_temp_dir("scan.pdf", &data);

    let sent = alice
        .send_file(
            &Conversation::Direct(bob.user_id().to_owned()),
            &src,
            &no_progress,
        )
        .await
        .unwrap();
    assert_eq!(sent.body, "scan.pdf");
    let events = bob.receive(0).await.unwrap();
    let id = attachment_id(&events);
    let out = work.path().join("received.pdf");
    assert_eq!(
        bob.fetch_attachment(&id, Some(&out), false, &no_progress)
            .await
            .unwrap(),
        data.len() as u64
    );
    assert_eq!(std::fs::read(&out).unwrap(), data);
    // An existing file is never overwritten unless asked.
    assert!(matches!(
        bob.fetch_attachment(&id, Some(&out), false, &no_progress)
            .await,
        Err(ClientError::InvalidInput(_))
    ));
    // Into the local store, sealed under the Local File Key.
    bob.fetch_attachment(&id, None, false, &no_progress)
        .await
        .unwrap();
    let files = bob.local_files().unwrap();
    assert_eq!(*files.read(&id).unwrap(), data);
    let raw = std::fs::read(files.path_of(&id).unwrap()).unwrap();
    assert!(!raw.windows(64).any(|w| w == &data[1000..1064]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_chunk_attachment_resumes_upload_and_download() {
    let server = TestServer::start().await;
    let (alice, bob) = server.register_alice_and_bob(11).await;
    let data = pattern(2 * CHUNK_SIZE + 12_345, 3);
    let (work, src) = file_in_temp_dir("mri.bin", &data);
    let to = Conversation::Direct(bob.user_id().to_owned());

    // Cancel after the first chunk.
    let calls = AtomicU32::new(0);
    let cancel_after_one = |done: u64, _total: u64| {
        calls.fetch_add(1, Ordering::SeqCst);
        done < CHUNK_SIZE as u64
    };
    assert!(matches!(
        alice.send_file(&to, &src, &cancel_after_one).await,
        Err(ClientError::Cancelled)
    ));
    let pending = alice.pending_uploads().unwrap();
    assert_eq!(pending.len(), 1);
    let status = server
        .store()
        .get_attachment(&pending[0].attachment_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.received_chunks, vec![0]);

    // Resume: only the missing chunks go up, then the pointer is sent.
    let seen = std::sync::Mutex::new(Vec::new());
    let record = |done: u64, _| {
        seen.lock().unwrap().push(done);
        true
    };
    alice
        .resume_upload(&pending[0].attachment_id, &record)
        .await
        .unwrap();
    assert!(alice.pending_uploads().unwrap().is_empty());

    let id = attachment_id(&bob.receive(0).await.unwrap());
    let out = work.path().join("mri-copy.bin");
    assert!(matches!(
        bob.fetch_attachment(&id, Some(&out), false, &|done, _| done < CHUNK_SIZE as u64)
            .await,
        Err(ClientError::Cancelled)
    ));
    assert!(!out.exists());
    let first = std::sync::Mutex::new(None);
    bob.fetch_attachment(&id, Some(&out), false, &|done, _| {
        first.lock().unwrap().get_or_insert(done);
        true
    })
    .await
    .unwrap();
    // The second download started where the first stopped.
    assert_eq!(first.lock().unwrap().unwrap(), CHUNK_SIZE as u64);
    assert_eq!(std::fs::read(&out).unwrap(), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_stored_attachment_is_rejected() {
    let server = TestServer::start().await;
    let (alice, bob) = server.register_alice_and_bob(12).await;
    let (work, src) = file_in_temp_dir("lab.txt", &pattern(5000, 1));
    let id = send_and_receive(&alice, &bob, &src).await;
    // Flip a byte in every stored blob file of the server.
    for entry in cachet_server::blob::files_under(&server.data_dir().join("blobs")) {
        let mut bytes = std::fs::read(&entry).unwrap();
        bytes[20] ^= 1;
        std::fs::write(&entry, bytes).unwrap();
    }
    let out = work.path().join("lab-copy.txt");
    assert!(matches!(
        bob.fetch_attachment(&id, Some(&out), false, &no_progress)
            .await,
        Err(ClientError::Integrity(_))
    ));
    assert!(!out.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whitepaper_chunk_format_is_still_read() {
    let server = TestServer::start().await;
    let options = cachet_client::ClientOptions {
        attachment_format: cachet_client::FormatVersion::V1,
        ..cachet_testkit::test_options()
    };
    let alice = server
        .register_with("alice", "+33600000131", "Alice", None, options)
        .await
        .unwrap();
    let bob = server.register("bob", "+33600000132", "Bob").await;
    let data = pattern(3000, 9);
    let (work, src) = file_in_temp_dir("old-format.bin", &data);
    let id = send_and_receive(&alice, &bob, &src).await;
    assert_eq!(bob.attachments().unwrap()[0].format_version, 1);
    let out = work.path().join("copy.bin");
    bob.fetch_attachment(&id, Some(&out), false, &no_progress)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), data);
}
