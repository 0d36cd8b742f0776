//! [`super::Store`] on SQLite through sqlx.
//!
//! Durability: WAL journal with `synchronous=FULL`, so a transaction is on disk when its
//! commit returns, and an envelope answered with 204 survives `kill -9`.
//!
//! All writes go through one connection (SQLite has one writer anyway); this serialises
//! read-modify-write transactions without `SQLITE_BUSY` retries. Reads use a separate pool.
//!
//! The writes of every request (seen signatures, sends, acks) are group-committed by a
//! writer thread of their own ([`super::sqlite_writer`]): it takes whatever queued while
//! the previous commit was syncing and runs it as one transaction, so that one fsync
//! covers many requests. Each caller still gets its answer only after the commit that
//! holds its write, so durability is unchanged. The rarer writes (registration, keys,
//! cases, attachments) go through sqlx's writer connection with `BEGIN IMMEDIATE`.
//!
//! Every other statement is the one [`super::sql`] writes for both databases.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use cachet_proto::v1::KeyRecord;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};

use super::schema::{self, Dialect};
use super::sql;
use super::sqlite_writer::{self as hot, GroupCommit, Readers, Savepoint};
use super::{EnvelopePage, NewMessage, SeenSignature, SendOutcome};
use crate::error::{Error, Result};

/// File name of the database inside the data directory.
pub const DATABASE_FILE: &str = "cachet.sqlite3";

/// Most values bound in one `IN (...)` list; SQLite's limit is far higher, PostgreSQL's too,
/// but smaller statements plan faster.
const IN_CHUNK: usize = 500;

/// Writes through sqlx take SQLite's write lock up front: a deferred transaction that read
/// first could find its snapshot stale once the writer thread commits
/// (`SQLITE_BUSY_SNAPSHOT`, which no busy timeout waits out).
const WRITE_TX: &str = "BEGIN IMMEDIATE";

/// SQLite implementation of [`super::Store`].
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    group: GroupCommit,
    hot_reads: std::sync::Arc<Readers>,
}

fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and runs pending migrations.
    /// The database file is the server account's only (`0600`); SQLite gives its `-wal`
    /// and `-shm` files the same mode, and older ones are tightened.
    pub async fn open(path: &Path) -> Result<Self> {
        crate::private_files::create_file(path)?;
        for suffix in ["-wal", "-shm"] {
            let mut side = path.as_os_str().to_owned();
            side.push(suffix);
            crate::private_files::tighten_if_present(Path::new(&side))?;
        }
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await?;
        schema::migrator(Dialect::Sqlite)
            .await?
            .run(&writer)
            .await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.read_only(true))
            .await?;
        let group = GroupCommit::start(path)?;
        let hot_reads = std::sync::Arc::new(Readers::open(path, 4)?);
        Ok(SqliteStore {
            writer,
            reader,
            group,
            hot_reads,
        })
    }

    /// Opens the database of a data directory (`<data_dir>/cachet.sqlite3`).
    pub async fn open_in(data_dir: &Path) -> Result<Self> {
        crate::private_files::create_dir(data_dir)?;
        Self::open(&data_dir.join(DATABASE_FILE)).await
    }

    /// Stops the writer thread and closes both pools, flushing the WAL into the
    /// database file.
    pub async fn close(&self) {
        self.group.stop().await;
        self.hot_reads.close();
        self.reader.close().await;
        self.writer.close().await;
    }
}

/// A row of [`sql::CURRENT_KEYS_SQL`] or [`sql::KEY_HISTORY_SQL`], by position.
fn key_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<KeyRecord> {
    sql::KeyTuple::try_from(r).map(sql::key_record)
}

// The hooks of `sql_store!`.
impl SqliteStore {
    /// A send, with the request's replay-cache entry when given, in one group commit.
    async fn send(&self, msg: &NewMessage, seen: Option<&SeenSignature>) -> Result<SendOutcome> {
        let (msg, seen) = (msg.clone(), seen.cloned());
        self.group
            .run(Savepoint::Own, move |conn| {
                if let Some(seen) = &seen {
                    if !hot::remember(conn, seen)? {
                        return Err(Error::ReplayedSignature);
                    }
                }
                hot::store_message(conn, &msg)
            })
            .await
    }

    /// Acks, with the request's replay-cache entry when given, in one group commit.
    async fn acknowledge(&self, acks: sql::Acks<'_>) -> Result<u64> {
        let (user_id, ids, keep_acked_at) = (acks.user_id.to_owned(), acks.ids, acks.keep_acked_at);
        let seen = acks.seen.cloned();
        // Acks are idempotent, so no savepoint: a failure after some chunks leaves nothing
        // to undo, and one after the replay-cache entry only burns the signature. A replay
        // writes nothing.
        self.group
            .run(Savepoint::None, move |conn| {
                if let Some(seen) = &seen {
                    if !hot::remember(conn, seen)? {
                        return Err(Error::ReplayedSignature);
                    }
                }
                hot::ack(conn, &user_id, &ids, keep_acked_at)
            })
            .await
    }

    /// Nothing to lock: the single writer connection serialises writers.
    async fn lock_users(_conn: &mut SqliteConnection, _user_ids: &[String]) -> Result<()> {
        Ok(())
    }

    /// Nothing to lock: the single writer connection serialises writers.
    async fn lock_table(_conn: &mut SqliteConnection, _table: &str) -> Result<()> {
        Ok(())
    }
}

// The hot paths stay special: the writes of every request are group-committed by the
// rusqlite writer thread, and the reads of every request are cached rusqlite statements
// run inline (no pool round trip through sqlx's worker).
sql::sql_store! {
    SqliteStore, sqlx::Sqlite, SqliteConnection,
    read: reader begun with "BEGIN",
    write: writer begun with WRITE_TX;
    async fn current_keys(&self, user_id: &str) -> Result<Option<KeyRecord>> {
        use rusqlite::OptionalExtension;
        self.hot_reads.with(|conn| {
            conn.prepare_cached(sql::CURRENT_KEYS_SQL)?
                .query_row([user_id], key_record)
                .optional()
        })
    }

    async fn key_history(&self, user_id: &str) -> Result<Vec<KeyRecord>> {
        self.hot_reads.with(|conn| {
            conn.prepare_cached(sql::KEY_HISTORY_SQL)?
                .query_map([user_id], key_record)?
                .collect()
        })
    }

    async fn discover(&self, hashes: &[Vec<u8>]) -> Result<Vec<(Vec<u8>, String)>> {
        let mut found = Vec::new();
        for chunk in hashes.chunks(IN_CHUNK) {
            let sql = format!(
                "SELECT identifier_hash, user_id FROM users WHERE identifier_hash IN ({})",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query_as::<_, (Vec<u8>, String)>(&sql);
            for h in chunk {
                q = q.bind(h);
            }
            found.extend(q.fetch_all(&self.reader).await?);
        }
        found.sort();
        found.dedup();
        Ok(found)
    }

    async fn existing_users(&self, user_ids: &[String]) -> Result<Vec<String>> {
        use rusqlite::OptionalExtension;
        // One cached point lookup per id: the same statement for any number of ids.
        let mut found = self.hot_reads.with(|conn| {
            let mut s = conn.prepare_cached("SELECT user_id FROM users WHERE user_id = ?1")?;
            let mut found = Vec::with_capacity(user_ids.len());
            for id in user_ids {
                if let Some(id) = s.query_row([id], |r| r.get::<_, String>(0)).optional()? {
                    found.push(id);
                }
            }
            Ok(found)
        })?;
        found.sort();
        found.dedup();
        Ok(found)
    }

    async fn remember_signature(&self, signature_hash: &[u8], expires_at: i64) -> Result<bool> {
        let seen = SeenSignature {
            hash: signature_hash.to_vec(),
            expires_at,
        };
        // One statement: nothing to undo if it fails.
        self.group
            .run(Savepoint::None, move |conn| hot::remember(conn, &seen))
            .await
    }

    async fn pending(&self, user_id: &str, limit: u32) -> Result<EnvelopePage> {
        let rows = self.hot_reads.with(|conn| {
            let mut s = conn.prepare_cached(sql::PENDING_SQL)?;
            let rows = s.query_map(rusqlite::params![user_id, i64::from(limit) + 1], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
            rows.collect::<rusqlite::Result<Vec<(i64, Vec<u8>, Option<i64>)>>>()
        })?;
        Ok(page(rows, limit))
    }

    async fn close(&self) {
        SqliteStore::close(self).await;
    }
}
