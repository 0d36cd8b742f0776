//! [`super::Store`] on PostgreSQL through sqlx, for several server nodes sharing one database.
//!
//! Every trait method is one transaction (a single statement is one by itself). Where the
//! SQLite store relies on its single writer, this one takes row locks:
//!
//! * per-mailbox delivery ids come from `users.last_delivery_id`, bumped with
//!   `UPDATE ... RETURNING` under the row lock, so they grow in commit order; a transaction
//!   that writes to several mailboxes locks their rows in user id order first;
//! * key changes lock the user's row before checking the expected key version;
//! * quota checks lock the owner's row;
//! * audit appends take `LOCK TABLE audit_log IN EXCLUSIVE MODE`, which serialises writers
//!   of the hash chain while leaving readers alone.
//!
//! Transactions that lock rows of several users retry, a few times, when PostgreSQL
//! aborts them as deadlock victims (SQLSTATE `40P01`) or on a serialisation failure
//! (`40001`); the retried work has no side effect outside the database.
//!
//! Multi-statement reads run in a `REPEATABLE READ, READ ONLY` transaction, so they see
//! one snapshot.
//!
//! The statements are the ones [`super::sql`] writes for both databases, except the hot
//! paths.
//!
//! The schema is the SQLite one with `BYTEA` for `BLOB`, assembled by [`super::schema`]
//! from the same files, applied by sqlx under its advisory lock, so that several nodes may
//! start at once.

use std::str::FromStr;
use std::time::Duration;

use cachet_proto::v1::KeyRecord;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};

use super::schema::{self, Dialect};
use super::sql;
use super::{EnvelopePage, NewMessage, SeenSignature, SendOutcome};
use crate::error::{Error, Result};

/// Connections per server node unless [`PostgresStore::connect_with`] says otherwise.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;

/// How long a request waits for a connection unless told otherwise: past it, the request
/// fails with 503 `database_unavailable` instead of queueing while the database is down.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Multi-statement reads see one snapshot.
const SNAPSHOT: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";

/// Whether a URL names a PostgreSQL database (`postgres://` or `postgresql://`).
pub fn is_postgres_url(url: &str) -> bool {
    let lower = url.trim_start().to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// PostgreSQL implementation of [`super::Store`].
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/database?...`) and runs
    /// pending migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)?;
        Self::connect_with(options, DEFAULT_MAX_CONNECTIONS).await
    }

    /// Connects with explicit options and pool size, and runs pending migrations.
    pub async fn connect_with(options: PgConnectOptions, max_connections: u32) -> Result<Self> {
        Self::connect_with_timeout(options, max_connections, DEFAULT_ACQUIRE_TIMEOUT).await
    }

    /// Connects with explicit options, pool size and connection wait, and runs pending
    /// migrations. A request that gets no connection within `acquire_timeout` (the
    /// database is down or unreachable) fails with 503 `database_unavailable`.
    pub async fn connect_with_timeout(
        options: PgConnectOptions,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(acquire_timeout)
            .connect_with(options)
            .await?;
        let migrator = schema::migrator(Dialect::Postgres).await?;
        if let Err(e) = migrator.run(&pool).await {
            pool.close().await;
            return Err(e.into());
        }
        Ok(PostgresStore { pool })
    }

    /// Connects like [`PostgresStore::connect`] (with `acquire_timeout`), but while the
    /// database cannot be reached it logs why and tries again, pausing 0.5 s, 1 s, 2 s...
    /// up to 30 s between attempts: a node started before its database begins serving
    /// once the database is up. Other failures (bad URL, wrong password, a failing
    /// migration) end it at once.
    pub async fn connect_waiting(url: &str, acquire_timeout: Duration) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)?;
        cachet_http::health::wait_for_database(
            || {
                Self::connect_with_timeout(
                    options.clone(),
                    DEFAULT_MAX_CONNECTIONS,
                    acquire_timeout,
                )
            },
            |e: &crate::Error| e.is_database_unavailable(),
        )
        .await
    }

    /// The connection pool (for administration and tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// How the hot-path functions of migration 0200 answer, besides success.
enum Refusal {
    /// The same envelope was stored before (`CA002`); nothing was written.
    Duplicate,
    /// A refusal of cachet's own (`CA001`, `CA003`..`CA005`) or a database error.
    Error(Error),
}

fn refusal(e: sqlx::Error) -> Refusal {
    if let sqlx::Error::Database(db) = &e {
        match db.code().as_deref() {
            Some("CA001") => return Refusal::Error(Error::ReplayedSignature),
            Some("CA002") => return Refusal::Duplicate,
            Some("CA003") => return Refusal::Error(Error::MessageIdReused),
            Some("CA004") => {
                return Refusal::Error(Error::UnknownRecipient(db.message().to_owned()))
            }
            Some("CA005") => return Refusal::Error(Error::CaseNotFound),
            _ => {}
        }
    }
    Refusal::Error(Error::Database(e))
}

// The hooks of `sql_store!`.
impl PostgresStore {
    /// A send, with the request's replay-cache entry when given: one function call.
    async fn send(&self, msg: &NewMessage, seen: Option<&SeenSignature>) -> Result<SendOutcome> {
        retrying(|| self.store_message_attempt(msg, seen)).await
    }

    /// Acks, with the request's replay-cache entry when given: one function call.
    async fn acknowledge(&self, acks: sql::Acks<'_>) -> Result<u64> {
        retrying(|| self.ack_attempt(acks.user_id, &acks.ids, acks.keep_acked_at, acks.seen)).await
    }

    /// Locks the rows of these users, in user id order (the one order every transaction
    /// uses, so that two of them never wait for each other in a cycle). Unknown ids are
    /// skipped.
    async fn lock_users(conn: &mut PgConnection, user_ids: &[String]) -> Result<()> {
        if user_ids.is_empty() {
            return Ok(());
        }
        let mut ids = user_ids.to_vec();
        ids.sort();
        ids.dedup();
        sqlx::query(
            "SELECT user_id FROM users WHERE user_id = ANY($1) ORDER BY user_id \
             FOR NO KEY UPDATE",
        )
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await?;
        Ok(())
    }

    /// One writer of `table` at a time, across all nodes; plain reads are not blocked.
    async fn lock_table(conn: &mut PgConnection, table: &str) -> Result<()> {
        sqlx::query(&format!("LOCK TABLE {table} IN EXCLUSIVE MODE"))
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// One send: one call of `cachet_send` (migration 0200), one round trip.
    async fn store_message_attempt(
        &self,
        msg: &NewMessage,
        seen: Option<&SeenSignature>,
    ) -> Result<SendOutcome> {
        let (recipients, envelopes): (Vec<&str>, Vec<&[u8]>) = msg
            .deliveries
            .iter()
            .map(|d| (d.recipient_id.as_str(), d.envelope.as_slice()))
            .unzip();
        let (case_id, case_envelope) = match &msg.case_entry {
            Some((id, envelope)) => (Some(id.as_str()), Some(envelope.as_slice())),
            None => (None, None),
        };
        let done = sqlx::query("SELECT cachet_send($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
            .bind(&msg.sender_id)
            .bind(&msg.message_id)
            .bind(&msg.digest)
            .bind(msg.created_at)
            .bind(&recipients)
            .bind(&envelopes)
            .bind(case_id)
            .bind(case_envelope)
            .bind(&msg.contacts)
            .bind(seen.map(|s| s.hash.as_slice()))
            .bind(seen.map_or(0, |s| s.expires_at))
            .execute(&self.pool)
            .await;
        match done.map_err(refusal) {
            Ok(_) => Ok(SendOutcome::Stored),
            Err(Refusal::Duplicate) => Ok(SendOutcome::Duplicate),
            Err(Refusal::Error(e)) => Err(e),
        }
    }

    /// One ack: one call of `cachet_ack` (migration 0200), one round trip.
    async fn ack_attempt(
        &self,
        user_id: &str,
        ids: &[i64],
        keep_acked_at: Option<i64>,
        seen: Option<&SeenSignature>,
    ) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT cachet_ack($1, $2, $3, $4, $5)")
            .bind(user_id)
            .bind(ids)
            .bind(keep_acked_at)
            .bind(seen.map(|s| s.hash.as_slice()))
            .bind(seen.map_or(0, |s| s.expires_at))
            .fetch_one(&self.pool)
            .await
            .map_err(|e| match refusal(e) {
                Refusal::Error(e) => e,
                Refusal::Duplicate => Error::Internal("an ack answered 'duplicate'".into()),
            })?;
        Ok(to_u64(n))
    }
}

// The hot paths stay special: sends and acks are one call of a server-side function
// (migration 0200), one round trip each, and lists are bound as arrays.
sql::sql_store! {
    PostgresStore, sqlx::Postgres, PgConnection,
    read: pool begun with SNAPSHOT,
    write: pool begun with "BEGIN";
    async fn current_keys(&self, user_id: &str) -> Result<Option<KeyRecord>> {
        let row: Option<sql::KeyTuple> = sqlx::query_as(sql::CURRENT_KEYS_SQL)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(sql::key_record))
    }

    async fn key_history(&self, user_id: &str) -> Result<Vec<KeyRecord>> {
        let rows: Vec<sql::KeyTuple> = sqlx::query_as(sql::KEY_HISTORY_SQL)
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(sql::key_record).collect())
    }

    async fn discover(&self, hashes: &[Vec<u8>]) -> Result<Vec<(Vec<u8>, String)>> {
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        let found: Vec<(Vec<u8>, String)> = sqlx::query_as(
            "SELECT identifier_hash, user_id FROM users WHERE identifier_hash = ANY($1)",
        )
        .bind(hashes)
        .fetch_all(&self.pool)
        .await?;
        Ok(sorted_unique(found))
    }

    async fn existing_users(&self, user_ids: &[String]) -> Result<Vec<String>> {
        if user_ids.is_empty() {
            return Ok(Vec::new());
        }
        let found: Vec<String> =
            sqlx::query_scalar("SELECT user_id FROM users WHERE user_id = ANY($1)")
                .bind(user_ids)
                .fetch_all(&self.pool)
                .await?;
        Ok(sorted_unique(found))
    }

    async fn remember_signature(&self, signature_hash: &[u8], expires_at: i64) -> Result<bool> {
        // A concurrent insert of the same hash makes this wait for that transaction, then
        // do nothing.
        let inserted = sqlx::query(
            "INSERT INTO seen_signatures (signature_hash, expires_at) VALUES ($1, $2) \
             ON CONFLICT (signature_hash) DO NOTHING",
        )
        .bind(signature_hash)
        .bind(expires_at)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }

    async fn pending(&self, user_id: &str, limit: u32) -> Result<EnvelopePage> {
        let rows: Vec<(i64, Vec<u8>, Option<i64>)> = sqlx::query_as(sql::PENDING_SQL)
            .bind(user_id)
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.pool)
            .await?;
        Ok(page(rows, limit))
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

/// Sorts and deduplicates rows matched by `= ANY($1)`, which may repeat when the input did.
fn sorted_unique<T: Ord>(mut rows: Vec<T>) -> Vec<T> {
    rows.sort();
    rows.dedup();
    rows
}
