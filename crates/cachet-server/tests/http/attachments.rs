//! Chunked, resumable attachment upload and download.

use cachet_crypto::attachment::{self, FormatVersion, SEALED_CHUNK_SIZE};
use cachet_crypto::SymmetricKey;
use cachet_proto::v1::{AttachmentStatus, CompleteAttachment, CreateAttachment};
use reqwest::Method;

use crate::common::*;

/// Asks to create an attachment of `sealed_size` bytes; the answer.
pub async fn try_create(s: &Client, who: &TestUser, sealed_size: u64) -> Resp {
    s.post(
        who,
        "/api/v1/attachments",
        &CreateAttachment { sealed_size },
    )
    .await
}

pub async fn create(s: &Client, who: &TestUser, sealed_size: u64) -> AttachmentStatus {
    try_create(s, who, sealed_size).await.decode()
}

/// Completes attachment `id` (or adds readers to it) with `request`; the answer.
pub async fn complete(s: &Client, who: &TestUser, id: &str, request: &CompleteAttachment) -> Resp {
    s.post(who, &format!("/api/v1/attachments/{id}/complete"), request)
        .await
}

pub async fn put_chunk(s: &Client, who: &TestUser, id: &str, index: usize, bytes: &[u8]) -> Resp {
    s.call(
        who,
        Method::PUT,
        &format!("/api/v1/attachments/{id}/chunks/{index}"),
        bytes.to_vec(),
    )
    .await
}

/// Uploads a whole sealed object and completes it for `readers`.
pub async fn upload(s: &Client, who: &TestUser, sealed: &[u8], readers: &[&TestUser]) -> String {
    let status = create(s, who, sealed.len() as u64).await;
    for (i, chunk) in sealed.chunks(status.chunk_size as usize).enumerate() {
        assert_eq!(
            put_chunk(s, who, &status.attachment_id, i, chunk)
                .await
                .status,
            204
        );
    }
    let request = CompleteAttachment {
        sha256: cachet_crypto::sha256(sealed).to_vec(),
        readers: readers.iter().map(|r| r.user_id.clone()).collect(),
    };
    let done: AttachmentStatus = complete(s, who, &status.attachment_id, &request)
        .await
        .decode();
    assert!(done.complete);
    status.attachment_id
}

#[tokio::test]
async fn upload_resume_complete_and_download() {
    let (s, [alice, bob, eve]) = TestServer::with_users(["Alice", "Bob", "Eve"]).await;
    let key = SymmetricKey::generate();
    let plain: Vec<u8> = (0..2_500_000u32).map(|i| (i % 251) as u8).collect();
    let sealed = attachment::seal_all(&plain, &key, FormatVersion::V2);
    let chunks: Vec<&[u8]> = sealed.chunks(SEALED_CHUNK_SIZE).collect();
    assert_eq!(chunks.len(), 2);

    let st = create(&s, &alice, sealed.len() as u64).await;
    assert_eq!(st.chunk_size as usize, SEALED_CHUNK_SIZE);
    assert!(st.attachment_id.starts_with("a_"));
    let id = st.attachment_id.clone();

    // Upload the last chunk first, "lose the connection", then resume from the status.
    assert_eq!(put_chunk(&s, &alice, &id, 1, chunks[1]).await.status, 204);
    let done = CompleteAttachment {
        sha256: cachet_crypto::sha256(&sealed).to_vec(),
        readers: vec![bob.user_id.clone()],
    };
    complete(&s, &alice, &id, &done)
        .await
        .assert_error(409, "missing_chunks");
    let st: AttachmentStatus = s
        .get(&alice, &format!("/api/v1/attachments/{id}"))
        .await
        .decode();
    assert_eq!(st.received_chunks, vec![1]);
    assert_eq!(put_chunk(&s, &alice, &id, 0, chunks[0]).await.status, 204);
    assert_eq!(
        put_chunk(&s, &alice, &id, 0, chunks[0]).await.status,
        204,
        "idempotent"
    );

    // Wrong sizes and indexes.
    put_chunk(&s, &alice, &id, 1, &chunks[1][1..])
        .await
        .assert_error(400, "bad_chunk_size");
    put_chunk(&s, &alice, &id, 2, chunks[1])
        .await
        .assert_error(400, "bad_chunk_index");
    put_chunk(&s, &bob, &id, 0, chunks[0])
        .await
        .assert_error(403, "attachment_forbidden");
    for (index, chunk, status, reason) in [
        ("x", vec![1], 400, "invalid_path"),
        ("0", vec![0; SEALED_CHUNK_SIZE + 1], 413, "body_too_large"),
    ] {
        let path = format!("/api/v1/attachments/{id}/chunks/{index}");
        s.call(&alice, Method::PUT, &path, chunk)
            .await
            .assert_error(status, reason);
    }

    // Readers may not download before completion.
    s.get(&bob, &format!("/api/v1/attachments/{id}/chunks/0"))
        .await
        .assert_error(403, "attachment_forbidden");

    let wrong = CompleteAttachment {
        sha256: vec![0; 32],
        readers: vec![],
    };
    complete(&s, &alice, &id, &wrong)
        .await
        .assert_error(400, "checksum_mismatch");
    let st: AttachmentStatus = complete(&s, &alice, &id, &done).await.decode();
    assert!(st.complete);
    assert_eq!(st.readers, vec![bob.user_id.clone()]);

    // Complete objects never change.
    let mut other = chunks[0].to_vec();
    other[0] ^= 1;
    put_chunk(&s, &alice, &id, 0, &other)
        .await
        .assert_error(409, "attachment_complete");

    // Bob downloads and decrypts; Eve may not.
    let mut downloaded = Vec::new();
    for i in 0..2 {
        let r = s
            .get(&bob, &format!("/api/v1/attachments/{id}/chunks/{i}"))
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.content_type, "application/octet-stream");
        downloaded.extend_from_slice(&r.body);
    }
    assert_eq!(cachet_crypto::sha256(&downloaded).to_vec(), done.sha256);
    assert_eq!(
        attachment::open_all(&downloaded, &key, FormatVersion::V2).expect("opens"),
        plain
    );
    for path in [
        format!("/api/v1/attachments/{id}/chunks/0"),
        format!("/api/v1/attachments/{id}"),
    ] {
        s.get(&eve, &path)
            .await
            .assert_error(403, "attachment_forbidden");
    }
    s.get(
        &bob,
        "/api/v1/attachments/a_00000000000000000000000000000000",
    )
    .await
    .assert_error(404, "attachment_not_found");

    // Forwarding: completing again with the same hash adds a reader.
    let fwd = CompleteAttachment {
        sha256: done.sha256.clone(),
        readers: vec![eve.user_id.clone()],
    };
    let st: AttachmentStatus = complete(&s, &alice, &id, &fwd).await.decode();
    assert_eq!(st.readers.len(), 2);
    assert_eq!(
        s.get(&eve, &format!("/api/v1/attachments/{id}/chunks/1"))
            .await
            .status,
        200
    );
    let ghost = CompleteAttachment {
        sha256: done.sha256.clone(),
        readers: vec!["u_0123456789abcdef0123456789abcdef".into()],
    };
    complete(&s, &alice, &id, &ghost)
        .await
        .assert_error(400, "unknown_recipient");
}

#[tokio::test]
async fn quotas_and_size_limits() {
    let s = TestServer::start_with(|c| {
        c.user_quota_bytes = Some(1000);
        c.max_attachment_bytes = Some(800);
    })
    .await;
    let [alice, bob] = s.register_all(["Alice", "Bob"]).await;
    try_create(&s, &alice, 801)
        .await
        .assert_error(413, "attachment_too_large");
    let first = create(&s, &alice, 600).await;
    try_create(&s, &alice, 401)
        .await
        .assert_error(413, "quota_exceeded");
    // The quota is per user.
    create(&s, &bob, 600).await;
    // A small object is a single short chunk.
    put_chunk(&s, &alice, &first.attachment_id, 0, &[7; 599])
        .await
        .assert_error(400, "bad_chunk_size");
    assert_eq!(
        put_chunk(&s, &alice, &first.attachment_id, 0, &[7; 600])
            .await
            .status,
        204
    );
}
