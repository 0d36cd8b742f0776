//! The local database (whitepaper 3.3): SQLCipher, keyed by the Database Key, holding
//! contacts and their key history, messages, receipts, groups, cases with their keys,
//! attachment pointers and upload state, and the trust log's pinned key, last head and
//! checked chains.
//!
//! The key is passed as a raw 256-bit key (`PRAGMA key = "x'…'"`), so SQLCipher skips its
//! own password derivation: the Database Key is already random.

use std::path::Path;

use cachet_crypto::SymmetricKey;
use rusqlite::Connection;
use zeroize::Zeroizing;

use crate::error::{ClientError, Result};

pub(crate) const DB_FILE: &str = "cachet.db";

const SCHEMA: &str = r"
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS contacts (
    user_id TEXT PRIMARY KEY,
    alias TEXT NOT NULL,
    display_name TEXT NOT NULL,
    identifier TEXT NOT NULL DEFAULT '',
    key_version INTEGER NOT NULL,
    box_key BLOB NOT NULL,
    sign_key BLOB NOT NULL,
    operator_verified INTEGER NOT NULL DEFAULT 0,
    trust TEXT NOT NULL DEFAULT 'unverified',
    verified_box_key BLOB,
    verified_sign_key BLOB,
    verified_at INTEGER,
    trust_note TEXT NOT NULL DEFAULT '',
    trust_changed_at INTEGER,
    added_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS contact_keys (
    user_id TEXT NOT NULL,
    key_version INTEGER NOT NULL,
    box_key BLOB NOT NULL,
    sign_key BLOB NOT NULL,
    valid_from INTEGER NOT NULL DEFAULT 0,
    valid_until INTEGER NOT NULL DEFAULT 0,
    previous_key_signature BLOB NOT NULL DEFAULT x'',
    PRIMARY KEY (user_id, key_version)
);
CREATE TABLE IF NOT EXISTS messages (
    local_id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation TEXT NOT NULL,
    message_id TEXT NOT NULL,
    sender_id TEXT NOT NULL,
    outgoing INTEGER NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    attachment_id TEXT,
    timestamp INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    read_at INTEGER,
    UNIQUE (sender_id, message_id)
);
CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages (conversation, local_id);
CREATE TABLE IF NOT EXISTS receipts (
    message_id TEXT NOT NULL,
    reader_id TEXT NOT NULL,
    read_at INTEGER NOT NULL,
    PRIMARY KEY (message_id, reader_id)
);
CREATE TABLE IF NOT EXISTS processed (
    sender_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    processed_at INTEGER NOT NULL,
    PRIMARY KEY (sender_id, message_id)
);
CREATE TABLE IF NOT EXISTS pending_acks (
    delivery_id INTEGER PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS groups (
    group_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    members TEXT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cases (
    case_id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    fields TEXT NOT NULL,
    created_by TEXT NOT NULL,
    participants TEXT NOT NULL,
    history_after INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS case_keys (
    case_id TEXT NOT NULL,
    key_epoch INTEGER NOT NULL,
    key BLOB NOT NULL,
    PRIMARY KEY (case_id, key_epoch)
);
CREATE TABLE IF NOT EXISTS attachments (
    attachment_id TEXT PRIMARY KEY,
    pointer BLOB NOT NULL,
    sender_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    local_file TEXT
);
CREATE TABLE IF NOT EXISTS uploads (
    attachment_id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    key BLOB NOT NULL,
    format INTEGER NOT NULL,
    plaintext_size INTEGER NOT NULL,
    sealed_size INTEGER NOT NULL,
    recipients TEXT NOT NULL,
    group_id TEXT NOT NULL,
    file_name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    message_id TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS trust_heads (
    server TEXT PRIMARY KEY,
    log_key BLOB NOT NULL,
    head BLOB
);
CREATE TABLE IF NOT EXISTS trust_chains (
    server TEXT NOT NULL,
    user_id TEXT NOT NULL,
    blocks TEXT NOT NULL,
    head_size INTEGER NOT NULL,
    box_key BLOB,
    sign_key BLOB,
    PRIMARY KEY (server, user_id)
);
";

/// The open, keyed database.
pub(crate) struct Store {
    pub conn: Connection,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Store {
    /// The one column that `sql` selects from the row whose key `?1` is `id`, or
    /// [`ClientError::NotFound`] naming `kind` and `id`: a lookup by id that must hit.
    pub(crate) fn value_of<T: rusqlite::types::FromSql>(
        &self,
        sql: &str,
        kind: &'static str,
        id: &str,
    ) -> Result<T> {
        use rusqlite::OptionalExtension;
        self.conn
            .query_row(sql, [id], |r| r.get(0))
            .optional()?
            .ok_or_else(|| ClientError::NotFound {
                kind,
                id: id.to_owned(),
            })
    }

    /// Every row that `sql` (without parameters) selects, mapped by `row`: a listing.
    pub(crate) fn all_rows<T>(
        &self,
        sql: &str,
        row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let mut stmt = self.conn.prepare(sql)?;
        let rows = stmt.query_map([], row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Opens (creating if needed) the database in `dir` under the Database Key.
    ///
    /// The file is created readable by the owner only before SQLite opens it; SQLite
    /// gives its journal the same mode.
    pub fn open(dir: &Path, key: &SymmetricKey) -> Result<Self> {
        let path = dir.join(DB_FILE);
        crate::vault::private_file_options()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| ClientError::io(&path, e))?;
        let conn = Connection::open(&path)?;
        let pragma = Zeroizing::new(format!(
            "PRAGMA key = \"x'{}'\";",
            hex::encode(key.expose_secret())
        ));
        conn.execute_batch(&pragma)?;
        // The first read fails if the key is wrong (SQLCipher reports "file is not a database").
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(|_| {
            ClientError::CorruptProfile(
                "the local database does not open with this profile's Database Key".into(),
            )
        })?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self { conn })
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        use rusqlite::OptionalExtension;
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [key, value],
        )?;
        Ok(())
    }

    /// The SQLCipher version linked in; empty if plain SQLite were linked by mistake.
    pub fn cipher_version(&self) -> Result<String> {
        use rusqlite::OptionalExtension;
        Ok(self
            .conn
            .query_row("PRAGMA cipher_version", [], |r| r.get::<_, String>(0))
            .optional()?
            .unwrap_or_default())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_database_is_encrypted_and_needs_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = SymmetricKey::generate();
        {
            let store = Store::open(dir.path(), &key).unwrap();
            assert!(!store.cipher_version().unwrap().is_empty());
            store.set_meta("marker", "plaintext-marker-value").unwrap();
        }
        let raw = std::fs::read(dir.path().join(DB_FILE)).unwrap();
        assert!(!raw.windows(6).any(|w| w == b"SQLite"));
        assert!(!raw.windows(22).any(|w| w == b"plaintext-marker-value"));
        assert!(Store::open(dir.path(), &SymmetricKey::generate()).is_err());
        let store = Store::open(dir.path(), &key).unwrap();
        assert_eq!(
            store.meta("marker").unwrap().as_deref(),
            Some("plaintext-marker-value")
        );
    }
}
