//! Chunked, resumable attachment upload and download (whitepaper 8.2.2). The client
//! encrypts; the server stores opaque chunks.

use axum::extract::State;
use axum::response::Response;
use cachet_proto::v1::{AttachmentStatus, CompleteAttachment, CreateAttachment};
use sha2::Digest;

use super::check_id;
use super::register::random_id;
use crate::config::CHUNK_SIZE;
use crate::error::{Error, Result};
use crate::extract::{no_content, octet_stream, ApiPath, Proto, Protobuf, RawBody, UserCaller};
use crate::state::{now_ms, AppState};
use crate::store::AttachmentRow;

/// Number of chunks of a stored object.
pub(crate) fn chunk_count(sealed_size: u64, chunk_size: u32) -> u64 {
    sealed_size.div_ceil(u64::from(chunk_size.max(1)))
}

/// Size chunk `index` must have: `chunk_size`, or the remainder for the last one.
pub(crate) fn expected_chunk_size(sealed_size: u64, chunk_size: u32, index: u64) -> u64 {
    let n = chunk_count(sealed_size, chunk_size);
    if index + 1 < n {
        u64::from(chunk_size)
    } else {
        sealed_size - u64::from(chunk_size) * (n - 1)
    }
}

fn status_of(row: AttachmentRow) -> AttachmentStatus {
    AttachmentStatus {
        attachment_id: row.attachment_id,
        sealed_size: row.sealed_size,
        chunk_size: row.chunk_size,
        received_chunks: row.received_chunks,
        complete: row.complete,
        sha256: row.sha256,
        readers: row.readers,
    }
}

async fn load(state: &AppState, id: &str) -> Result<AttachmentRow> {
    check_id(id, "attachment_id")?;
    state
        .store
        .get_attachment(id)
        .await?
        .ok_or(Error::AttachmentNotFound)
}

fn may_read(row: &AttachmentRow, user_id: &str) -> bool {
    row.owner_id == user_id
        || row
            .readers
            .binary_search_by(|r| r.as_str().cmp(user_id))
            .is_ok()
}

pub(crate) async fn create(
    State(state): State<AppState>,
    caller: UserCaller,
    Proto(req): Proto<CreateAttachment>,
) -> Result<Protobuf<AttachmentStatus>> {
    let max = state.settings.max_attachment_bytes;
    if req.sealed_size > max {
        return Err(Error::AttachmentTooLarge(max));
    }
    let row = AttachmentRow {
        attachment_id: random_id("a_"),
        owner_id: caller.user_id,
        sealed_size: req.sealed_size,
        chunk_size: CHUNK_SIZE,
        complete: false,
        sha256: Vec::new(),
        created_at: now_ms(),
        received_chunks: Vec::new(),
        readers: Vec::new(),
    };
    state
        .store
        .create_attachment(&row, state.settings.user_quota_bytes)
        .await?;
    Ok(Protobuf(status_of(row)))
}

pub(crate) async fn status(
    State(state): State<AppState>,
    caller: UserCaller,
    ApiPath(id): ApiPath<String>,
) -> Result<Protobuf<AttachmentStatus>> {
    let row = load(&state, &id).await?;
    if !may_read(&row, &caller.user_id) {
        return Err(Error::AttachmentForbidden);
    }
    Ok(Protobuf(status_of(row)))
}

pub(crate) async fn upload_chunk(
    State(state): State<AppState>,
    caller: UserCaller,
    ApiPath((id, index)): ApiPath<(String, u32)>,
    RawBody(bytes): RawBody,
) -> Result<Response> {
    let row = load(&state, &id).await?;
    if row.owner_id != caller.user_id {
        return Err(Error::AttachmentForbidden);
    }
    if u64::from(index) >= chunk_count(row.sealed_size, row.chunk_size) {
        return Err(Error::BadChunkIndex(u64::from(index)));
    }
    let expected = expected_chunk_size(row.sealed_size, row.chunk_size, u64::from(index));
    if bytes.len() as u64 != expected {
        return Err(Error::BadChunkSize {
            got: bytes.len() as u64,
            expected,
        });
    }
    if row.complete {
        // A late retry of an identical chunk is fine; anything else would change a
        // finished object.
        let stored = state.blobs.get_chunk(&id, index).await?;
        return if stored.as_deref() == Some(&bytes[..]) {
            Ok(no_content())
        } else {
            Err(Error::AttachmentComplete)
        };
    }
    state.blobs.put_chunk(&id, index, bytes).await?;
    state.store.record_chunk(&id, index, expected).await?;
    Ok(no_content())
}

pub(crate) async fn download_chunk(
    State(state): State<AppState>,
    caller: UserCaller,
    ApiPath((id, index)): ApiPath<(String, u32)>,
) -> Result<Response> {
    let row = load(&state, &id).await?;
    let allowed =
        row.owner_id == caller.user_id || (row.complete && may_read(&row, &caller.user_id));
    if !allowed {
        return Err(Error::AttachmentForbidden);
    }
    if u64::from(index) >= chunk_count(row.sealed_size, row.chunk_size) {
        return Err(Error::BadChunkIndex(u64::from(index)));
    }
    let bytes = state
        .blobs
        .get_chunk(&id, index)
        .await?
        .ok_or(Error::ChunkNotFound(index))?;
    Ok(octet_stream(bytes))
}

pub(crate) async fn complete(
    State(state): State<AppState>,
    caller: UserCaller,
    ApiPath(id): ApiPath<String>,
    Proto(req): Proto<CompleteAttachment>,
) -> Result<Protobuf<AttachmentStatus>> {
    let row = load(&state, &id).await?;
    if row.owner_id != caller.user_id {
        return Err(Error::AttachmentForbidden);
    }
    if req.sha256.len() != 32 {
        return Err(Error::invalid("sha256", "must be 32 bytes"));
    }
    if req.readers.len() > cachet_proto::decode::MAX_RECIPIENTS {
        return Err(Error::invalid("readers", "too many readers"));
    }
    let mut readers = req.readers;
    for r in &readers {
        check_id(r, "readers")?;
    }
    readers.sort_unstable();
    readers.dedup();
    let existing = state.store.existing_users(&readers).await?;
    if let Some(missing) = readers.iter().find(|r| existing.binary_search(r).is_err()) {
        return Err(Error::UnknownRecipient(missing.clone()));
    }
    if row.complete {
        // Completing again with the same hash only adds readers (forwarding).
        if row.sha256 != req.sha256 {
            return Err(Error::AttachmentComplete);
        }
    } else {
        let n = chunk_count(row.sealed_size, row.chunk_size);
        let missing = usize::try_from(n)
            .unwrap_or(usize::MAX)
            .saturating_sub(row.received_chunks.len());
        if missing > 0 {
            return Err(Error::MissingChunks(missing));
        }
        let mut hasher = sha2::Sha256::new();
        for index in 0..n {
            let index = u32::try_from(index).map_err(|_| Error::BadChunkIndex(index))?;
            let chunk = state
                .blobs
                .get_chunk(&id, index)
                .await?
                .ok_or(Error::MissingChunks(1))?;
            hasher.update(&chunk);
        }
        if hasher.finalize().as_slice() != req.sha256.as_slice() {
            return Err(Error::ChecksumMismatch);
        }
    }
    state
        .store
        .complete_attachment(&id, &req.sha256, &readers)
        .await?;
    Ok(Protobuf(status_of(load(&state, &id).await?)))
}
