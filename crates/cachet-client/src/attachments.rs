//! Attachments (whitepaper 3.5, 8.2.2): a fresh Attachment Key per file, the file cut
//! into 2 MiB chunks sealed with `crypto_secretbox` under index-derived nonces (format
//! version 2 by default; version 1 is read), uploaded chunk by chunk, and the key shared
//! with each recipient inside a `crypto_box`ed [`v1::AttachmentPointer`] that also carries
//! the plaintext size and the SHA-256 of the stored object.
//!
//! Memory stays at a few chunks whatever the file size. Sealing and opening run on every
//! core (one 2 MiB buffer per worker, [`cachet_crypto::attachment::parallel`]), off the
//! async runtime, while the previous chunk uploads or is written out. Uploads resume from
//! the server's list of received chunks (the state, key included, is kept in the encrypted
//! database); downloads resume from the sealed chunks already on disk. The whole object's
//! SHA-256 is checked before anything is decrypted, and the chunk format itself rejects
//! truncation, reordering and substitution.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;

use cachet_crypto::attachment::{
    chunk_count, open_chunks, seal_chunks, sealed_len, FormatVersion, Parallelism, CHUNK_SIZE,
    SEALED_CHUNK_SIZE,
};
use cachet_crypto::{SymmetricKey, MAC_LEN};
use cachet_proto::v1::{self, payload::Body, AttachmentPointer, Envelope};
use cachet_proto::Message;
use rusqlite::{params, OptionalExtension};
use sha2::Digest;
use zeroize::Zeroizing;

use crate::error::{ClientError, Result};
use crate::messaging::{Conversation, MessageKind, StoredMessage};
use crate::state::{Client, Session};

/// Reports bytes done out of the total; returning `false` cancels the transfer, which
/// can be resumed later.
pub type Progress<'a> = &'a (dyn Fn(u64, u64) -> bool + Send + Sync);

/// A progress callback that never cancels and shows nothing.
pub fn no_progress(_: u64, _: u64) -> bool {
    true
}

/// A received attachment, as listed locally.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AttachmentInfo {
    /// The server's id.
    pub attachment_id: String,
    /// The file name the sender gave.
    pub file_name: String,
    /// Plaintext size in bytes.
    pub size: u64,
    /// Who sent it.
    pub sender_id: String,
    /// Chunk format version (1 or 2).
    pub format_version: u32,
}

/// An upload that was interrupted and can be resumed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PendingUpload {
    /// The server's id.
    pub attachment_id: String,
    /// The local file.
    pub path: PathBuf,
    /// Plaintext size.
    pub size: u64,
}

/// Seals the file at `path` on every core, sending each sealed chunk in order to the
/// uploader; returns the SHA-256 of the whole sealed object. Sealing is deterministic for
/// a given key, which is what lets an upload resume and still hash the whole object.
fn seal_file(
    path: &Path,
    key: &SymmetricKey,
    version: FormatVersion,
    size: u64,
    sealed_tx: tokio::sync::mpsc::Sender<Vec<u8>>,
) -> Result<[u8; 32]> {
    let mut file = File::open(path).map_err(|e| ClientError::io(path, e))?;
    let mut hasher = sha2::Sha256::new();
    seal_chunks(
        key,
        version,
        size,
        Parallelism::available(),
        |plaintext| {
            file.read_exact(plaintext)
                .map_err(|e| ClientError::io(path, e))
        },
        |sealed| {
            hasher.update(sealed);
            // A closed channel means the upload stopped (failed or was cancelled).
            sealed_tx
                .blocking_send(sealed.to_vec())
                .map_err(|_| ClientError::Cancelled)
        },
    )?;
    Ok(hasher.finalize().into())
}

/// Stored size of chunk `index` of an object of `sealed` bytes.
fn sealed_chunk_len(sealed: u64, index: u64) -> u64 {
    (sealed - index * SEALED_CHUNK_SIZE as u64).min(SEALED_CHUNK_SIZE as u64)
}

fn file_name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "attachment".into())
}

/// Keeps only a safe final path component of a name chosen by a sender.
fn sanitize_file_name(name: &str) -> String {
    cachet_proto::decode::safe_file_name(name)
}

impl Client {
    /// Encrypts and uploads a file, then sends its pointer (with the fresh Attachment Key)
    /// to a contact, a group or a case. Refused for recipients whose verified keys changed.
    pub async fn send_file(
        &self,
        to: &Conversation,
        path: &Path,
        progress: Progress<'_>,
    ) -> Result<StoredMessage> {
        let s = self.session()?;
        let meta = fs::metadata(path).map_err(|e| ClientError::io(path, e))?;
        if !meta.is_file() {
            return Err(ClientError::InvalidInput(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
        let recipients = self.conversation_members(&s, to).await?;
        self.gate_new_keys(&recipients).await?;
        let version = self.options.attachment_format;
        let size = meta.len();
        let sealed_size = sealed_len(version, size);
        let key = SymmetricKey::generate();
        let status = self
            .api
            .create_attachment(&self.signer(&s), sealed_size)
            .await?;
        if status.chunk_size as usize != SEALED_CHUNK_SIZE {
            return Err(ClientError::Protocol(format!(
                "the server stores chunks of {} bytes, this client {SEALED_CHUNK_SIZE}",
                status.chunk_size
            )));
        }
        cachet_proto::decode::validate_id(&status.attachment_id, "attachment_id")?;
        let absolute = fs::canonicalize(path).map_err(|e| ClientError::io(path, e))?;
        s.db().conn.execute(
            "INSERT INTO uploads (attachment_id, path, key, format, plaintext_size, sealed_size,
             recipients, group_id, file_name, content_type, message_id, state, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, '', 'uploading', ?11)",
            params![
                status.attachment_id,
                absolute.to_string_lossy(),
                key.expose_secret().to_vec(),
                version.number(),
                size as i64,
                sealed_size as i64,
                serde_json::to_string(&recipients).unwrap_or_default(),
                to.key(),
                file_name_of(path),
                "application/octet-stream",
                self.now_ms()
            ],
        )?;
        self.finish_upload(&s, &status.attachment_id, progress)
            .await
    }

    /// Uploads waiting to be resumed.
    pub fn pending_uploads(&self) -> Result<Vec<PendingUpload>> {
        let sql = "SELECT attachment_id, path, plaintext_size FROM uploads WHERE state != 'sent' ORDER BY created_at";
        self.session()?.db().all_rows(sql, |r| {
            Ok(PendingUpload {
                attachment_id: r.get(0)?,
                path: PathBuf::from(r.get::<_, String>(1)?),
                size: r.get::<_, i64>(2)? as u64,
            })
        })
    }

    /// Resumes an interrupted upload: sends only the chunks the server lacks, completes
    /// it and sends the pointer.
    pub async fn resume_upload(
        &self,
        attachment_id: &str,
        progress: Progress<'_>,
    ) -> Result<StoredMessage> {
        let s = self.session()?;
        self.finish_upload(&s, attachment_id, progress).await
    }

    async fn conversation_members(&self, s: &Session, to: &Conversation) -> Result<Vec<String>> {
        Ok(match to {
            Conversation::Direct(id) => vec![id.clone()],
            Conversation::Group(g) => self
                .group_members(s, g)?
                .into_iter()
                .filter(|m| m != &self.profile.user_id)
                .collect(),
            Conversation::Case(c) => self
                .find_case(c)?
                .participants
                .into_iter()
                .filter(|m| m != &self.profile.user_id)
                .collect(),
        })
    }

    async fn finish_upload(
        &self,
        s: &Session,
        attachment_id: &str,
        progress: Progress<'_>,
    ) -> Result<StoredMessage> {
        #[allow(clippy::type_complexity)]
        let row: Option<(
            String,
            Vec<u8>,
            u32,
            i64,
            i64,
            String,
            String,
            String,
            String,
            String,
        )> = s
            .db()
            .conn
            .query_row(
                "SELECT path, key, format, plaintext_size, sealed_size, recipients, group_id,
                     file_name, content_type, state FROM uploads WHERE attachment_id = ?1",
                [attachment_id],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                        r.get(9)?,
                    ))
                },
            )
            .optional()?;
        let Some((
            path,
            key,
            format,
            size,
            sealed,
            recipients,
            conv,
            file_name,
            content_type,
            state,
        )) = row
        else {
            return Err(ClientError::NotFound {
                kind: "upload",
                id: attachment_id.to_owned(),
            });
        };
        let path = PathBuf::from(path);
        let key = SymmetricKey::from_slice(&Zeroizing::new(key))?;
        let version = FormatVersion::from_number(format)?;
        let (size, sealed) = (size as u64, sealed as u64);
        let recipients: Vec<String> = serde_json::from_str(&recipients).unwrap_or_default();
        let conversation = Conversation::parse(&conv).ok_or_else(|| {
            ClientError::CorruptProfile(format!("upload {attachment_id} has no conversation"))
        })?;
        if state == "sent" {
            return Err(ClientError::InvalidInput(format!(
                "attachment {attachment_id} was already sent"
            )));
        }
        let current = fs::metadata(&path).map_err(|e| ClientError::io(&path, e))?;
        if current.len() != size {
            return Err(ClientError::InvalidInput(format!(
                "{} changed size since the upload started; send it again",
                path.display()
            )));
        }
        let sha256 = self
            .upload_chunks(s, attachment_id, &path, &key, version, size, progress)
            .await?;
        let readers: Vec<String> = recipients
            .iter()
            .filter(|r| *r != &self.profile.user_id)
            .cloned()
            .collect();
        let status = self
            .api
            .attachment_status(&self.signer(s), attachment_id)
            .await?;
        if !status.complete {
            self.api
                .complete_attachment(
                    &self.signer(s),
                    attachment_id,
                    &v1::CompleteAttachment {
                        sha256: sha256.to_vec(),
                        readers: readers.clone(),
                    },
                )
                .await?;
        }
        let pointer = AttachmentPointer {
            attachment_id: attachment_id.to_owned(),
            key: key.expose_secret().to_vec(),
            format_version: version.number(),
            plaintext_size: size,
            ciphertext_sha256: sha256.to_vec(),
            file_name: file_name.clone(),
            content_type,
        };
        debug_assert_eq!(sealed, sealed_len(version, size));
        let (message_id, timestamp) = match &conversation {
            Conversation::Case(case_id) => {
                self.send_case_pointer(s, case_id, pointer.clone()).await?
            }
            Conversation::Group(g) => {
                self.send_payload(s, &recipients, g, Body::Attachment(pointer.clone()))
                    .await?
            }
            Conversation::Direct(_) => {
                self.send_payload(s, &recipients, "", Body::Attachment(pointer.clone()))
                    .await?
            }
        };
        s.db().conn.execute(
            "UPDATE uploads SET state = 'sent', message_id = ?2, key = x'' WHERE attachment_id = ?1",
            params![attachment_id, message_id],
        )?;
        let env = Envelope {
            message_id: message_id.clone(),
            sender_id: self.profile.user_id.clone(),
            timestamp,
            ..Default::default()
        };
        self.store_attachment_pointer(s, &conversation, &env, pointer)?
            .ok_or_else(|| ClientError::Database("message id collision".into()))
    }

    async fn send_case_pointer(
        &self,
        s: &Session,
        case_id: &str,
        pointer: AttachmentPointer,
    ) -> Result<(String, i64)> {
        self.send_case_payload(s, case_id, Body::Attachment(pointer))
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn upload_chunks(
        &self,
        s: &Session,
        attachment_id: &str,
        path: &Path,
        key: &SymmetricKey,
        version: FormatVersion,
        size: u64,
        progress: Progress<'_>,
    ) -> Result<[u8; 32]> {
        let signer = self.signer(s);
        let status = self.api.attachment_status(&signer, attachment_id).await?;
        if status.complete && status.sha256.len() == 32 {
            let mut out = [0u8; 32];
            out.copy_from_slice(&status.sha256);
            progress(size, size);
            return Ok(out);
        }
        let received: HashSet<u32> = status.received_chunks.iter().copied().collect();
        // Sealing (and hashing) runs on every core off the async runtime; the sealed chunks
        // come back in order, one at a time, while the previous one uploads.
        let (sealed_tx, mut sealed_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(1);
        let sealing = {
            let path = path.to_path_buf();
            let key = key.clone();
            tokio::task::spawn_blocking(move || seal_file(&path, &key, version, size, sealed_tx))
        };
        let mut done = 0u64;
        let mut index = 0u64;
        while let Some(sealed) = sealed_rx.recv().await {
            let chunk = u32::try_from(index)
                .map_err(|_| ClientError::InvalidInput("file too large".into()))?;
            let plain_len = (sealed.len() - MAC_LEN) as u64;
            if !received.contains(&chunk) {
                self.api
                    .put_chunk(&signer, attachment_id, index, sealed)
                    .await?;
            }
            index += 1;
            done += plain_len;
            if !progress(done, size) {
                return Err(ClientError::Cancelled);
            }
        }
        sealing
            .await
            .map_err(|e| ClientError::Protocol(format!("sealing task failed: {e}")))?
    }

    pub(crate) fn store_attachment_pointer(
        &self,
        s: &Session,
        conversation: &Conversation,
        env: &Envelope,
        mut pointer: AttachmentPointer,
    ) -> Result<Option<StoredMessage>> {
        if cachet_proto::decode::validate_attachment_pointer(&pointer).is_err() {
            return Ok(None);
        }
        pointer.file_name = sanitize_file_name(&pointer.file_name);
        s.db().conn.execute(
            "INSERT OR IGNORE INTO attachments (attachment_id, pointer, sender_id, message_id)
             VALUES (?1, ?2, ?3, ?4)",
            params![
                pointer.attachment_id,
                pointer.encode_to_vec(),
                env.sender_id,
                env.message_id
            ],
        )?;
        self.store_message(
            s,
            conversation,
            &env.message_id,
            &env.sender_id,
            MessageKind::Attachment,
            &pointer.file_name,
            Some(&pointer.attachment_id),
            env.timestamp,
        )
    }

    /// Attachments received or sent, newest first.
    pub fn attachments(&self) -> Result<Vec<AttachmentInfo>> {
        let sql = "SELECT pointer, sender_id FROM attachments ORDER BY rowid DESC";
        let rows: Vec<(Vec<u8>, String)> = self
            .session()?
            .db()
            .all_rows(sql, |r| Ok((r.get(0)?, r.get(1)?)))?;
        let mut out = Vec::new();
        for (bytes, sender_id) in rows {
            if let Ok(p) = AttachmentPointer::decode(bytes.as_slice()) {
                out.push(AttachmentInfo {
                    attachment_id: p.attachment_id,
                    file_name: p.file_name,
                    size: p.plaintext_size,
                    sender_id,
                    format_version: p.format_version,
                });
            }
        }
        Ok(out)
    }

    fn pointer(&self, s: &Session, attachment_id: &str) -> Result<AttachmentPointer> {
        let sql = "SELECT pointer FROM attachments WHERE attachment_id = ?1";
        let bytes: Vec<u8> = s.db().value_of(sql, "attachment", attachment_id)?;
        Ok(AttachmentPointer::decode(bytes.as_slice())?)
    }

    /// Downloads an attachment, checks it and decrypts it to `dest` (never overwriting an
    /// existing file unless `overwrite`), or, with `dest` `None`, into the profile's local
    /// file store (sealed under the Local File Key). An interrupted download resumes from
    /// the chunks already on disk. Returns the plaintext size.
    pub async fn fetch_attachment(
        &self,
        attachment_id: &str,
        dest: Option<&Path>,
        overwrite: bool,
        progress: Progress<'_>,
    ) -> Result<u64> {
        let s = self.session()?;
        let pointer = self.pointer(&s, attachment_id)?;
        if let Some(d) = dest {
            if d.exists() && !overwrite {
                return Err(ClientError::InvalidInput(format!(
                    "{} already exists",
                    d.display()
                )));
            }
        }
        let version = FormatVersion::from_number(pointer.format_version)?;
        let size = pointer.plaintext_size;
        let sealed = sealed_len(version, size);
        let n = chunk_count(version, size);
        let partial_dir = self.dir.join("partial");
        crate::vault::create_private_dir(&partial_dir)?;
        let partial = partial_dir.join(format!("{attachment_id}.sealed"));
        let have = fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
        let first_missing = if have >= sealed {
            n
        } else {
            have / SEALED_CHUNK_SIZE as u64
        };
        {
            let f = crate::vault::private_file_options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&partial)
                .map_err(|e| ClientError::io(&partial, e))?;
            f.set_len(first_missing * SEALED_CHUNK_SIZE as u64)
                .map_err(|e| ClientError::io(&partial, e))?;
        }
        let mut out = OpenOptions::new()
            .append(true)
            .open(&partial)
            .map_err(|e| ClientError::io(&partial, e))?;
        let signer = self.signer(&s);
        let mut done = (first_missing * CHUNK_SIZE as u64).min(size);
        if !progress(done, size) {
            return Err(ClientError::Cancelled);
        }
        for i in first_missing..n {
            let chunk = self.api.get_chunk(&signer, attachment_id, i).await?;
            let expected = sealed_chunk_len(sealed, i);
            if chunk.len() as u64 != expected {
                return Err(ClientError::Integrity(format!(
                    "chunk {i} has {} bytes, expected {expected}",
                    chunk.len()
                )));
            }
            out.write_all(&chunk)
                .map_err(|e| ClientError::io(&partial, e))?;
            done = (done + CHUNK_SIZE as u64).min(size);
            if !progress(done, size) {
                out.sync_all().map_err(|e| ClientError::io(&partial, e))?;
                return Err(ClientError::Cancelled);
            }
        }
        out.sync_all().map_err(|e| ClientError::io(&partial, e))?;
        drop(out);
        let key = SymmetricKey::from_slice(&pointer.key)?;
        let expected_sha = pointer.ciphertext_sha256.clone();
        let dest = dest.map(Path::to_path_buf);
        let files = s.files.clone();
        let name = attachment_id.to_owned();
        let partial_for_task = partial.clone();
        tokio::task::spawn_blocking(move || -> Result<u64> {
            let digest = sha256_file(&partial_for_task)?;
            if digest.as_slice() != expected_sha.as_slice() {
                let _ = fs::remove_file(&partial_for_task);
                return Err(ClientError::Integrity(
                    "the downloaded attachment does not match the SHA-256 its sender announced"
                        .into(),
                ));
            }
            let mut reader = OpenedAttachment::new(
                &partial_for_task,
                &key,
                version,
                sealed,
                Parallelism::available(),
            )?;
            let written = match dest {
                Some(dest) => {
                    let tmp = dest.with_extension("cachet-part");
                    let mut f = File::create(&tmp).map_err(|e| ClientError::io(&tmp, e))?;
                    let copied = std::io::copy(&mut reader, &mut f).map_err(|e| {
                        let _ = fs::remove_file(&tmp);
                        reader
                            .error
                            .take()
                            .unwrap_or_else(|| ClientError::io(&tmp, e))
                    })?;
                    f.sync_all().map_err(|e| ClientError::io(&tmp, e))?;
                    drop(f);
                    if copied != size {
                        let _ = fs::remove_file(&tmp);
                        return Err(ClientError::Integrity(format!(
                            "decrypted {copied} bytes, the sender announced {size}"
                        )));
                    }
                    fs::rename(&tmp, &dest).map_err(|e| ClientError::io(&dest, e))?;
                    copied
                }
                None => {
                    let copied = files
                        .write_from(&name, &mut reader)
                        .map_err(|e| reader.error.take().unwrap_or(e))?;
                    if copied != size {
                        let _ = files.remove(&name);
                        return Err(ClientError::Integrity(format!(
                            "decrypted {copied} bytes, the sender announced {size}"
                        )));
                    }
                    copied
                }
            };
            let _ = fs::remove_file(&partial_for_task);
            Ok(written)
        })
        .await
        .map_err(|e| ClientError::Protocol(format!("decryption task failed: {e}")))?
    }
}

fn sha256_file(path: &Path) -> Result<[u8; 32]> {
    let mut f = File::open(path).map_err(|e| ClientError::io(path, e))?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1024 * 1024];
    loop {
        let n = f.read(&mut buf).map_err(|e| ClientError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().into())
}

/// Reads the plaintext of a sealed attachment file. A thread of its own opens the chunks
/// on every core ([`open_chunks`]); they arrive here in order, at most one waiting.
struct OpenedAttachment {
    chunks: mpsc::Receiver<Zeroizing<Vec<u8>>>,
    opening: Option<thread::JoinHandle<Result<()>>>,
    current: Zeroizing<Vec<u8>>,
    pos: usize,
    failed: bool,
    /// Why reading failed, for the caller to report instead of the bare I/O error.
    error: Option<ClientError>,
}

impl OpenedAttachment {
    fn new(
        path: &Path,
        key: &SymmetricKey,
        version: FormatVersion,
        sealed: u64,
        parallelism: Parallelism,
    ) -> Result<Self> {
        let mut file = File::open(path).map_err(|e| ClientError::io(path, e))?;
        let (chunk_tx, chunks) = mpsc::sync_channel(1);
        let key = key.clone();
        let source = path.to_path_buf();
        let opening = thread::Builder::new()
            .name("attachment-open".into())
            .spawn(move || {
                open_chunks(
                    &key,
                    version,
                    sealed,
                    parallelism,
                    |chunk| {
                        file.read_exact(chunk)
                            .map_err(|e| ClientError::io(&source, e))
                    },
                    |plaintext| {
                        // A closed channel means the reader was dropped: stop quietly.
                        chunk_tx
                            .send(Zeroizing::new(plaintext.to_vec()))
                            .map_err(|_| ClientError::Cancelled)
                    },
                )
                .map_err(|e| match e {
                    ClientError::Crypto(e) => ClientError::Integrity(e.to_string()),
                    other => other,
                })
            })
            .map_err(|e| ClientError::io(path, e))?;
        Ok(Self {
            chunks,
            opening: Some(opening),
            current: Zeroizing::new(Vec::new()),
            pos: 0,
            failed: false,
            error: None,
        })
    }

    /// Takes the next chunk; `false` at the end of a stream that opened completely.
    fn refill(&mut self) -> std::io::Result<bool> {
        if self.failed {
            return Err(invalid_data("the attachment failed to open"));
        }
        if let Ok(chunk) = self.chunks.recv() {
            self.current = chunk;
            self.pos = 0;
            return Ok(true);
        }
        // The opening thread has ended: with every chunk handed over, or with an error.
        let Some(opening) = self.opening.take() else {
            return Ok(false);
        };
        let outcome = opening.join().unwrap_or_else(|_| {
            Err(ClientError::Protocol(
                "the attachment decryption thread panicked".into(),
            ))
        });
        match outcome {
            Ok(()) => Ok(false),
            Err(e) => {
                let io = invalid_data(&e.to_string());
                self.failed = true;
                self.error = Some(e);
                Err(io)
            }
        }
    }
}

fn invalid_data(message: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message.to_owned())
}

impl Read for OpenedAttachment {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.current.len() {
            if !self.refill()? {
                return Ok(0);
            }
        }
        let n = out.len().min(self.current.len() - self.pos);
        out[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use cachet_crypto::attachment::seal_all;

    fn open_file(
        path: &Path,
        key: &SymmetricKey,
        sealed: usize,
        workers: usize,
    ) -> (Result<Vec<u8>>, OpenedAttachment) {
        let mut reader = OpenedAttachment::new(
            path,
            key,
            FormatVersion::V2,
            sealed as u64,
            Parallelism::workers(workers),
        )
        .unwrap();
        let mut back = Vec::new();
        let result = reader.read_to_end(&mut back).map(|_| back).map_err(|e| {
            reader
                .error
                .take()
                .unwrap_or_else(|| ClientError::io(path, e))
        });
        (result, reader)
    }

    #[test]
    fn opened_attachment_reads_on_any_number_of_workers_and_rejects_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let key = SymmetricKey::generate();
        let data: Vec<u8> = (0..(3 * CHUNK_SIZE + 7)).map(|i| (i % 13) as u8).collect();
        let sealed = seal_all(&data, &key, FormatVersion::V2);
        let path = dir.path().join("a.sealed");
        for workers in [1, 2, 4] {
            fs::write(&path, &sealed).unwrap();
            let (back, _) = open_file(&path, &key, sealed.len(), workers);
            assert!(back.unwrap() == data, "{workers} workers");

            let cut = 2 * SEALED_CHUNK_SIZE;
            fs::write(&path, &sealed[..cut]).unwrap();
            let (result, mut reader) = open_file(&path, &key, cut, workers);
            assert!(
                matches!(result, Err(ClientError::Integrity(_))),
                "{workers} workers: {result:?}"
            );
            // Reading on after the failure never turns into a clean end of file.
            assert!(reader.read(&mut [0u8; 8]).is_err());

            // The file is shorter than the pointer says: an I/O error, not a short read.
            let (result, _) = open_file(&path, &key, sealed.len(), workers);
            assert!(
                matches!(result, Err(ClientError::Io { .. })),
                "{workers} workers: {result:?}"
            );
        }
    }

    #[test]
    fn sender_file_names_are_sanitised() {
        assert_eq!(sanitize_file_name("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_file_name("..\\x.pdf"), "x.pdf");
        assert_eq!(sanitize_file_name(".."), "attachment");
        assert_eq!(sanitize_file_name("scan.pdf"), "scan.pdf");
    }
}
