//! [`Store`] on PostgreSQL through sqlx, for several server nodes sharing one database.
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
//! The schema is the SQLite one with `BYTEA` for `BLOB`, in its own migration folder
//! (`migrations-postgres/`), applied by sqlx under its advisory lock, so that several
//! nodes may start at once.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use cachet_proto::v1::{AuditEntry, CaseRecord, KeyRecord, SealedCaseKey};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::Row;

use super::{
    AttachmentRow, AuditDraft, Challenge, EnvelopePage, NewInstallation, NewMessage, NewUser,
    Purged, RecoveryRow, SeenSignature, SendOutcome, Store, StoredEnvelope, UserRow,
};
use crate::audit::{entry_hash, GENESIS_HASH};
use crate::error::{Error, Result};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations-postgres");

/// Connections per server node unless [`PostgresStore::connect_with`] says otherwise.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;

/// How long a request waits for a connection unless told otherwise: past it, the request
/// fails with 503 `database_unavailable` instead of queueing while the database is down.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// First pause between connection attempts of a node starting while its database is
/// down; it doubles up to [`MAX_STARTUP_BACKOFF`].
const FIRST_STARTUP_BACKOFF: Duration = Duration::from_millis(500);
/// Longest pause between connection attempts at startup.
const MAX_STARTUP_BACKOFF: Duration = Duration::from_secs(30);

/// How many times a transaction aborted as a deadlock victim is run again.
const RETRIES: usize = 5;

/// Whether a URL names a PostgreSQL database (`postgres://` or `postgresql://`).
pub fn is_postgres_url(url: &str) -> bool {
    let lower = url.trim_start().to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// PostgreSQL implementation of [`Store`].
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn to_u32(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

/// Records a signature in the replay cache; false if it was there. A concurrent insert
/// of the same hash makes this wait for that transaction, then do nothing.
async fn remember_in(conn: &mut PgConnection, seen: &SeenSignature) -> Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO seen_signatures (signature_hash, expires_at) VALUES ($1, $2) \
         ON CONFLICT (signature_hash) DO NOTHING",
    )
    .bind(&seen.hash)
    .bind(seen.expires_at)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
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
        if let Err(e) = MIGRATOR.run(&pool).await {
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
        let mut pause = FIRST_STARTUP_BACKOFF;
        let mut attempt = 1u32;
        loop {
            match Self::connect_with_timeout(
                options.clone(),
                DEFAULT_MAX_CONNECTIONS,
                acquire_timeout,
            )
            .await
            {
                Err(e) if e.is_database_unavailable() => {
                    tracing::warn!(
                        error = %e,
                        attempt,
                        retry_in_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
                        "database unavailable at startup; waiting for it"
                    );
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_STARTUP_BACKOFF);
                    attempt = attempt.saturating_add(1);
                }
                Err(e) => return Err(e),
                Ok(store) => {
                    if attempt > 1 {
                        tracing::info!(attempt, "database reachable; starting");
                    }
                    return Ok(store);
                }
            }
        }
    }

    /// The connection pool (for administration and tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Starts a read-only transaction that sees one snapshot.
    async fn snapshot(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }
}

/// Whether PostgreSQL aborted the transaction in a way that running it again may fix.
fn is_retryable(e: &Error) -> bool {
    match e {
        Error::Database(sqlx::Error::Database(db)) => {
            matches!(db.code().as_deref(), Some("40P01") | Some("40001"))
        }
        _ => false,
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

/// Runs `attempt` again while it fails as a deadlock victim or on a serialisation failure.
async fn retrying<T, F, Fut>(attempt: F) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut tries = 0;
    loop {
        match attempt().await {
            Err(e) if tries < RETRIES && is_retryable(&e) => {
                tries += 1;
                tracing::debug!(error = %e, tries, "transaction aborted by the database; retrying");
                tokio::time::sleep(Duration::from_millis(2 * tries as u64)).await;
            }
            other => return other,
        }
    }
}

fn key_record_from_row(row: &PgRow) -> Result<KeyRecord> {
    Ok(KeyRecord {
        key_version: to_u32(row.try_get("key_version")?),
        box_key: row.try_get("box_key")?,
        sign_key: row.try_get("sign_key")?,
        valid_from: row.try_get("valid_from")?,
        valid_until: row.try_get("valid_until")?,
        reason: i32::try_from(row.try_get::<i64, _>("reason")?).unwrap_or(0),
        previous_key_signature: row.try_get("previous_key_signature")?,
        revoked_by_operator: row.try_get("revoked_by_operator")?,
    })
}

const KEY_COLUMNS: &str = "key_version, box_key, sign_key, valid_from, valid_until, reason, \
                           previous_key_signature, revoked_by_operator";

async fn insert_keys(conn: &mut PgConnection, user_id: &str, k: &KeyRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO user_keys (user_id, key_version, box_key, sign_key, valid_from, \
         valid_until, reason, previous_key_signature, revoked_by_operator) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(user_id)
    .bind(i64::from(k.key_version))
    .bind(&k.box_key)
    .bind(&k.sign_key)
    .bind(k.valid_from)
    .bind(k.valid_until)
    .bind(i64::from(k.reason))
    .bind(&k.previous_key_signature)
    .bind(&k.revoked_by_operator)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Locks the rows of these users, in user id order (the one order every transaction uses,
/// so that two of them never wait for each other in a cycle). Unknown ids are skipped.
async fn lock_users(conn: &mut PgConnection, user_ids: &[String]) -> Result<()> {
    if user_ids.is_empty() {
        return Ok(());
    }
    let mut ids = user_ids.to_vec();
    ids.sort();
    ids.dedup();
    sqlx::query(
        "SELECT user_id FROM users WHERE user_id = ANY($1) ORDER BY user_id FOR NO KEY UPDATE",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    Ok(())
}

/// Puts one envelope in one mailbox under the next delivery id of that mailbox.
async fn enqueue(
    conn: &mut PgConnection,
    recipient_id: &str,
    envelope: &[u8],
    now: i64,
) -> Result<u64> {
    let id: Option<i64> = sqlx::query_scalar(
        "UPDATE users SET last_delivery_id = last_delivery_id + 1 WHERE user_id = $1 \
         RETURNING last_delivery_id",
    )
    .bind(recipient_id)
    .fetch_optional(&mut *conn)
    .await?;
    let id = id.ok_or_else(|| Error::UnknownRecipient(recipient_id.to_owned()))?;
    sqlx::query(
        "INSERT INTO mailbox (recipient_id, delivery_id, envelope, created_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(recipient_id)
    .bind(id)
    .bind(envelope)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(to_u64(id))
}

const CONTACTS_SQL: &str =
    "SELECT contact_id AS c FROM contacts WHERE user_id = $1 AND contact_id <> $1 \
     UNION \
     SELECT b.user_id AS c FROM case_participants a \
     JOIN case_participants b ON a.case_id = b.case_id \
     WHERE a.user_id = $1 AND b.user_id <> $1 \
     ORDER BY c";

async fn contacts_in(conn: &mut PgConnection, user_id: &str) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(CONTACTS_SQL)
        .bind(user_id)
        .fetch_all(&mut *conn)
        .await?)
}

/// Queues `envelope` for every contact of `user_id`.
async fn fan_out_to_contacts(
    conn: &mut PgConnection,
    user_id: &str,
    envelope: &[u8],
    now: i64,
) -> Result<u64> {
    let contacts = contacts_in(conn, user_id).await?;
    lock_users(conn, &contacts).await?;
    for c in &contacts {
        enqueue(conn, c, envelope, now).await?;
    }
    Ok(contacts.len() as u64)
}

async fn append_audit_in(conn: &mut PgConnection, d: &AuditDraft) -> Result<AuditEntry> {
    // One writer of the chain at a time, across all nodes; plain reads are not blocked.
    sqlx::query("LOCK TABLE audit_log IN EXCLUSIVE MODE")
        .execute(&mut *conn)
        .await?;
    let last: Option<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await?;
    let (prev_seq, prev_hash) = last.unwrap_or((0, GENESIS_HASH.to_vec()));
    let mut entry = AuditEntry {
        seq: to_u64(prev_seq) + 1,
        timestamp: d.timestamp,
        operator_id: d.operator_id.clone(),
        action: d.action.clone(),
        subject: d.subject.clone(),
        detail: d.detail.clone(),
        prev_hash: prev_hash.clone(),
        hash: Vec::new(),
        ..Default::default()
    };
    entry.hash = entry_hash(&prev_hash, &entry).to_vec();
    sqlx::query(
        "INSERT INTO audit_log (seq, timestamp, operator_id, action, subject, detail, \
         prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(to_i64(entry.seq))
    .bind(entry.timestamp)
    .bind(&entry.operator_id)
    .bind(&entry.action)
    .bind(&entry.subject)
    .bind(&entry.detail)
    .bind(&entry.prev_hash)
    .bind(&entry.hash)
    .execute(&mut *conn)
    .await?;
    Ok(entry)
}

fn page(rows: Vec<(i64, Vec<u8>, Option<i64>)>, limit: u32) -> EnvelopePage {
    let limit = limit as usize;
    let more = rows.len() > limit;
    let envelopes = rows
        .into_iter()
        .take(limit)
        .map(|(id, envelope, acked_at)| StoredEnvelope {
            delivery_id: to_u64(id),
            envelope,
            acked: acked_at.is_some(),
        })
        .collect();
    EnvelopePage { envelopes, more }
}

fn case_from_row(row: &PgRow) -> Result<CaseRecord> {
    Ok(CaseRecord {
        case_id: row.try_get("case_id")?,
        created_by: row.try_get("created_by")?,
        sealed_fields: row.try_get("sealed_fields")?,
        participants: Vec::new(),
        my_keys: Vec::new(),
        created_at: row.try_get("created_at")?,
    })
}

async fn participants_in(conn: &mut PgConnection, case_id: &str) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT user_id FROM case_participants WHERE case_id = $1 ORDER BY added_at, user_id",
    )
    .bind(case_id)
    .fetch_all(&mut *conn)
    .await?)
}

async fn insert_participants_and_keys(
    conn: &mut PgConnection,
    case_id: &str,
    added_by: &str,
    added_at: i64,
    keys: &[SealedCaseKey],
) -> Result<()> {
    for k in keys {
        sqlx::query(
            "INSERT INTO case_participants (case_id, user_id, added_by, added_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (case_id, user_id) DO NOTHING",
        )
        .bind(case_id)
        .bind(&k.participant_id)
        .bind(added_by)
        .bind(added_at)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "INSERT INTO case_keys (case_id, participant_id, key_epoch, sealed_by, \
             sealer_box_key, recipient_box_key, nonce, ciphertext) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (case_id, participant_id, key_epoch) DO NOTHING",
        )
        .bind(case_id)
        .bind(&k.participant_id)
        .bind(i64::from(k.key_epoch))
        .bind(&k.sealed_by)
        .bind(&k.sealer_box_key)
        .bind(&k.recipient_box_key)
        .bind(&k.nonce)
        .bind(&k.ciphertext)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_foreign_key_violation())
}

// One attempt of each transaction that [`retrying`] may run again.
impl PostgresStore {
    async fn add_installation_once(
        &self,
        challenge_id: &str,
        inst: &NewInstallation,
    ) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let consumed = sqlx::query("DELETE FROM challenges WHERE challenge_id = $1")
            .bind(challenge_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if consumed == 0 {
            return Err(Error::UnknownChallenge);
        }
        // Key changes of one user are serialised on the user's row.
        sqlx::query("SELECT user_id FROM users WHERE user_id = $1 FOR NO KEY UPDATE")
            .bind(&inst.user_id)
            .fetch_optional(&mut *tx)
            .await?;
        let current: Option<i64> = sqlx::query_scalar(
            "SELECT CAST(MAX(key_version) AS BIGINT) FROM user_keys WHERE user_id = $1",
        )
        .bind(&inst.user_id)
        .fetch_one(&mut *tx)
        .await?;
        if current != Some(i64::from(inst.expected_version)) {
            return Err(Error::ConcurrentKeyChange);
        }
        let now = inst.keys.valid_from;
        sqlx::query(
            "UPDATE user_keys SET valid_until = $3 \
             WHERE user_id = $1 AND key_version = $2 AND valid_until = 0",
        )
        .bind(&inst.user_id)
        .bind(i64::from(inst.expected_version))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        insert_keys(&mut tx, &inst.user_id, &inst.keys).await?;
        if let Some(name) = &inst.display_name {
            sqlx::query("UPDATE users SET display_name = $2 WHERE user_id = $1")
                .bind(&inst.user_id)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        let n = fan_out_to_contacts(&mut tx, &inst.user_id, &inst.contact_update, now).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn revoke_keys_once(
        &self,
        user_id: &str,
        expected_version: u32,
        contact_update: &[u8],
        audit: &AuditDraft,
    ) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT user_id FROM users WHERE user_id = $1 FOR NO KEY UPDATE")
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?;
        let current: Option<(i64, String)> = sqlx::query_as(
            "SELECT key_version, revoked_by_operator FROM user_keys WHERE user_id = $1 \
             ORDER BY key_version DESC LIMIT 1",
        )
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?;
        let (version, revoked_by) = current.ok_or(Error::UserNotFound)?;
        if version != i64::from(expected_version) {
            return Err(Error::ConcurrentKeyChange);
        }
        if !revoked_by.is_empty() {
            return Err(Error::AlreadyRevoked);
        }
        sqlx::query(
            "UPDATE user_keys SET revoked_by_operator = $3, \
             valid_until = CASE WHEN valid_until = 0 THEN $4 ELSE valid_until END \
             WHERE user_id = $1 AND key_version = $2",
        )
        .bind(user_id)
        .bind(version)
        .bind(&audit.operator_id)
        .bind(audit.timestamp)
        .execute(&mut *tx)
        .await?;
        let n = fan_out_to_contacts(&mut tx, user_id, contact_update, audit.timestamp).await?;
        append_audit_in(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(n)
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

    async fn append_trust_block_once(
        &self,
        user_id: &str,
        seq: u64,
        block: &[u8],
        created_at: i64,
    ) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        // Indexes must be dense and in commit order on every node: one appender at a time.
        sqlx::query("LOCK TABLE trust_blocks IN EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        let idx: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(idx) + 1, 0) FROM trust_blocks")
            .fetch_one(&mut *tx)
            .await?;
        let inserted = sqlx::query(
            "INSERT INTO trust_blocks (idx, user_id, seq, block, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(idx)
        .bind(user_id)
        .bind(to_i64(seq))
        .bind(block)
        .bind(created_at)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Err(Error::TrustBlockConflict),
            Err(e) => return Err(e.into()),
        }
        tx.commit().await?;
        Ok(to_u64(idx))
    }

    async fn purge_expired_once(&self, now: i64, acked_before: i64) -> Result<Purged> {
        let mut tx = self.pool.begin().await?;
        let challenges = sqlx::query("DELETE FROM challenges WHERE expires_at < $1")
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let signatures = sqlx::query("DELETE FROM seen_signatures WHERE expires_at < $1")
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let acked_envelopes =
            sqlx::query("DELETE FROM mailbox WHERE acked_at IS NOT NULL AND acked_at < $1")
                .bind(acked_before)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        let discovery_windows = sqlx::query("DELETE FROM discovery_usage WHERE window_end < $1")
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(Purged {
            challenges,
            signatures,
            acked_envelopes,
            discovery_windows,
        })
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn insert_challenge(&self, c: &Challenge) -> Result<()> {
        sqlx::query(
            "INSERT INTO challenges (challenge_id, identifier_hash, code_hash, attempts, \
             created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&c.challenge_id)
        .bind(&c.identifier_hash)
        .bind(&c.code_hash)
        .bind(i64::from(c.attempts))
        .bind(c.created_at)
        .bind(c.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn live_challenges(&self, identifier_hash: &[u8], now: i64) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM challenges WHERE identifier_hash = $1 AND expires_at >= $2",
        )
        .bind(identifier_hash)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(to_u64(n))
    }

    async fn get_challenge(&self, challenge_id: &str) -> Result<Option<Challenge>> {
        let row: Option<(String, Vec<u8>, Vec<u8>, i64, i64, i64)> = sqlx::query_as(
            "SELECT challenge_id, identifier_hash, code_hash, attempts, created_at, expires_at \
             FROM challenges WHERE challenge_id = $1",
        )
        .bind(challenge_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(
            |(challenge_id, identifier_hash, code_hash, attempts, created_at, expires_at)| {
                Challenge {
                    challenge_id,
                    identifier_hash,
                    code_hash,
                    attempts: to_u32(attempts),
                    created_at,
                    expires_at,
                }
            },
        ))
    }

    async fn record_failed_attempt(&self, challenge_id: &str) -> Result<u32> {
        let n: Option<i64> = sqlx::query_scalar(
            "UPDATE challenges SET attempts = attempts + 1 WHERE challenge_id = $1 \
             RETURNING attempts",
        )
        .bind(challenge_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(n.map_or(0, to_u32))
    }

    async fn delete_challenge(&self, challenge_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM challenges WHERE challenge_id = $1")
            .bind(challenge_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn create_user(&self, challenge_id: &str, user: &NewUser) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let consumed = sqlx::query("DELETE FROM challenges WHERE challenge_id = $1")
            .bind(challenge_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if consumed == 0 {
            return Err(Error::UnknownChallenge);
        }
        // A concurrent registration of the same identifier makes this wait for its outcome,
        // then fail on the unique constraint.
        let inserted = sqlx::query(
            "INSERT INTO users (user_id, identifier_hash, display_name, verified, created_at) \
             VALUES ($1, $2, $3, FALSE, $4)",
        )
        .bind(&user.user_id)
        .bind(&user.identifier_hash)
        .bind(&user.display_name)
        .bind(user.created_at)
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => return Err(Error::ConcurrentKeyChange),
            other => {
                other?;
            }
        }
        insert_keys(&mut tx, &user.user_id, &user.keys).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn add_installation(&self, challenge_id: &str, inst: &NewInstallation) -> Result<u64> {
        retrying(|| self.add_installation_once(challenge_id, inst)).await
    }

    async fn user_by_identifier_hash(&self, hash: &[u8]) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT user_id FROM users WHERE identifier_hash = $1")
                .bind(hash)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn get_user(&self, user_id: &str) -> Result<Option<UserRow>> {
        let row: Option<(String, String, bool, i64)> = sqlx::query_as(
            "SELECT user_id, display_name, verified, created_at FROM users WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(
            row.map(|(user_id, display_name, verified, created_at)| UserRow {
                user_id,
                display_name,
                verified,
                created_at,
            }),
        )
    }

    async fn current_keys(&self, user_id: &str) -> Result<Option<KeyRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM user_keys WHERE user_id = $1 \
             ORDER BY key_version DESC LIMIT 1"
        ))
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(key_record_from_row).transpose()
    }

    async fn key_history(&self, user_id: &str) -> Result<Vec<KeyRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM user_keys WHERE user_id = $1 ORDER BY key_version"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key_record_from_row).collect()
    }

    async fn discover(&self, hashes: &[Vec<u8>]) -> Result<Vec<(Vec<u8>, String)>> {
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        let mut found: Vec<(Vec<u8>, String)> = sqlx::query_as(
            "SELECT identifier_hash, user_id FROM users WHERE identifier_hash = ANY($1)",
        )
        .bind(hashes)
        .fetch_all(&self.pool)
        .await?;
        found.sort();
        found.dedup();
        Ok(found)
    }

    async fn existing_users(&self, user_ids: &[String]) -> Result<Vec<String>> {
        if user_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut found: Vec<String> =
            sqlx::query_scalar("SELECT user_id FROM users WHERE user_id = ANY($1)")
                .bind(user_ids)
                .fetch_all(&self.pool)
                .await?;
        found.sort();
        found.dedup();
        Ok(found)
    }

    async fn contacts_of(&self, user_id: &str) -> Result<Vec<String>> {
        let mut conn = self.pool.acquire().await?;
        contacts_in(&mut conn, user_id).await
    }

    async fn remember_signature(&self, signature_hash: &[u8], expires_at: i64) -> Result<bool> {
        let mut conn = self.pool.acquire().await?;
        remember_in(
            &mut conn,
            &SeenSignature {
                hash: signature_hash.to_vec(),
                expires_at,
            },
        )
        .await
    }

    async fn operator_key(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(
            sqlx::query_scalar("SELECT sign_key FROM operators WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn put_operator(&self, name: &str, sign_key: &[u8], audit: &AuditDraft) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO operators (name, sign_key, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET sign_key = excluded.sign_key",
        )
        .bind(name)
        .bind(sign_key)
        .bind(audit.timestamp)
        .execute(&mut *tx)
        .await?;
        append_audit_in(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn revoke_keys(
        &self,
        user_id: &str,
        expected_version: u32,
        contact_update: &[u8],
        audit: &AuditDraft,
    ) -> Result<u64> {
        retrying(|| self.revoke_keys_once(user_id, expected_version, contact_update, audit)).await
    }

    async fn set_verified(&self, user_id: &str, audit: &AuditDraft) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query("UPDATE users SET verified = TRUE WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        append_audit_in(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn append_audit(&self, audit: &AuditDraft) -> Result<AuditEntry> {
        let mut tx = self.pool.begin().await?;
        let entry = append_audit_in(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(entry)
    }

    async fn audit_entries(&self, after: u64, limit: u32) -> Result<Vec<AuditEntry>> {
        let rows: Vec<(i64, i64, String, String, String, String, Vec<u8>, Vec<u8>)> =
            sqlx::query_as(
                "SELECT seq, timestamp, operator_id, action, subject, detail, prev_hash, hash \
                 FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
            )
            .bind(to_i64(after))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(
                |(seq, timestamp, operator_id, action, subject, detail, prev_hash, hash)| {
                    AuditEntry {
                        seq: to_u64(seq),
                        timestamp,
                        operator_id,
                        action,
                        subject,
                        detail,
                        prev_hash,
                        hash,
                        ..Default::default()
                    }
                },
            )
            .collect())
    }

    async fn store_message(&self, msg: &NewMessage) -> Result<SendOutcome> {
        retrying(|| self.store_message_attempt(msg, None)).await
    }

    async fn store_message_and_remember(
        &self,
        msg: &NewMessage,
        seen: &SeenSignature,
    ) -> Result<SendOutcome> {
        retrying(|| self.store_message_attempt(msg, Some(seen))).await
    }

    async fn ack_and_remember(
        &self,
        user_id: &str,
        delivery_ids: &[u64],
        keep_acked_at: Option<i64>,
        seen: &SeenSignature,
    ) -> Result<u64> {
        let ids = super::delivery_ids_in(delivery_ids);
        retrying(|| self.ack_attempt(user_id, &ids, keep_acked_at, Some(seen))).await
    }

    async fn ack(
        &self,
        user_id: &str,
        delivery_ids: &[u64],
        keep_acked_at: Option<i64>,
    ) -> Result<u64> {
        let ids = super::delivery_ids_in(delivery_ids);
        if ids.is_empty() {
            return Ok(0);
        }
        retrying(|| self.ack_attempt(user_id, &ids, keep_acked_at, None)).await
    }

    async fn pending(&self, user_id: &str, limit: u32) -> Result<EnvelopePage> {
        let rows: Vec<(i64, Vec<u8>, Option<i64>)> = sqlx::query_as(
            "SELECT delivery_id, envelope, acked_at FROM mailbox \
             WHERE recipient_id = $1 AND acked_at IS NULL ORDER BY delivery_id LIMIT $2",
        )
        .bind(user_id)
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.pool)
        .await?;
        Ok(page(rows, limit))
    }

    async fn mailbox_history(&self, user_id: &str, after: u64, limit: u32) -> Result<EnvelopePage> {
        let rows: Vec<(i64, Vec<u8>, Option<i64>)> = sqlx::query_as(
            "SELECT delivery_id, envelope, acked_at FROM mailbox \
             WHERE recipient_id = $1 AND delivery_id > $2 ORDER BY delivery_id LIMIT $3",
        )
        .bind(user_id)
        .bind(to_i64(after))
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.pool)
        .await?;
        Ok(page(rows, limit))
    }

    async fn create_attachment(&self, row: &AttachmentRow, quota: u64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        // Quota checks of one owner are serialised on the owner's row. An unknown owner
        // has no row; the insert below then fails on the foreign key.
        sqlx::query("SELECT user_id FROM users WHERE user_id = $1 FOR NO KEY UPDATE")
            .bind(&row.owner_id)
            .fetch_optional(&mut *tx)
            .await?;
        let used: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(sealed_size), 0) AS BIGINT) FROM attachments \
             WHERE owner_id = $1",
        )
        .bind(&row.owner_id)
        .fetch_one(&mut *tx)
        .await?;
        if to_u64(used).saturating_add(row.sealed_size) > quota {
            return Err(Error::QuotaExceeded(quota));
        }
        sqlx::query(
            "INSERT INTO attachments (attachment_id, owner_id, sealed_size, chunk_size, \
             complete, sha256, created_at) VALUES ($1, $2, $3, $4, FALSE, $5, $6)",
        )
        .bind(&row.attachment_id)
        .bind(&row.owner_id)
        .bind(to_i64(row.sealed_size))
        .bind(i64::from(row.chunk_size))
        .bind(&row.sha256)
        .bind(row.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_attachment(&self, attachment_id: &str) -> Result<Option<AttachmentRow>> {
        let mut tx = self.snapshot().await?;
        let row: Option<(String, String, i64, i64, bool, Vec<u8>, i64)> = sqlx::query_as(
            "SELECT attachment_id, owner_id, sealed_size, chunk_size, complete, sha256, \
             created_at FROM attachments WHERE attachment_id = $1",
        )
        .bind(attachment_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((attachment_id, owner_id, sealed_size, chunk_size, complete, sha256, created_at)) =
            row
        else {
            return Ok(None);
        };
        let chunks: Vec<i64> = sqlx::query_scalar(
            "SELECT chunk_index FROM attachment_chunks WHERE attachment_id = $1 \
             ORDER BY chunk_index",
        )
        .bind(&attachment_id)
        .fetch_all(&mut *tx)
        .await?;
        let readers: Vec<String> = sqlx::query_scalar(
            "SELECT reader_id FROM attachment_readers WHERE attachment_id = $1 \
             ORDER BY reader_id",
        )
        .bind(&attachment_id)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(AttachmentRow {
            attachment_id,
            owner_id,
            sealed_size: to_u64(sealed_size),
            chunk_size: to_u32(chunk_size),
            complete,
            sha256,
            created_at,
            received_chunks: chunks.into_iter().map(to_u32).collect(),
            readers,
        }))
    }

    async fn record_chunk(&self, attachment_id: &str, index: u32, size: u64) -> Result<()> {
        sqlx::query(
            "INSERT INTO attachment_chunks (attachment_id, chunk_index, size) \
             VALUES ($1, $2, $3) ON CONFLICT (attachment_id, chunk_index) DO NOTHING",
        )
        .bind(attachment_id)
        .bind(i64::from(index))
        .bind(to_i64(size))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn complete_attachment(
        &self,
        attachment_id: &str,
        sha256: &[u8],
        readers: &[String],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE attachments SET complete = TRUE, sha256 = $2 WHERE attachment_id = $1",
        )
        .bind(attachment_id)
        .bind(sha256)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(Error::AttachmentNotFound);
        }
        for r in readers {
            let res = sqlx::query(
                "INSERT INTO attachment_readers (attachment_id, reader_id) VALUES ($1, $2) \
                 ON CONFLICT (attachment_id, reader_id) DO NOTHING",
            )
            .bind(attachment_id)
            .bind(r)
            .execute(&mut *tx)
            .await;
            match res {
                Err(e) if is_foreign_key_violation(&e) => {
                    return Err(Error::UnknownRecipient(r.clone()))
                }
                other => {
                    other?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn create_case(&self, case: &CaseRecord, keys: &[SealedCaseKey]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "INSERT INTO cases (case_id, created_by, sealed_fields, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (case_id) DO NOTHING",
        )
        .bind(&case.case_id)
        .bind(&case.created_by)
        .bind(&case.sealed_fields)
        .bind(case.created_at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(Error::CaseExists);
        }
        insert_participants_and_keys(
            &mut tx,
            &case.case_id,
            &case.created_by,
            case.created_at,
            keys,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_case(&self, case_id: &str) -> Result<Option<CaseRecord>> {
        let mut tx = self.snapshot().await?;
        let row = sqlx::query(
            "SELECT case_id, created_by, sealed_fields, created_at FROM cases WHERE case_id = $1",
        )
        .bind(case_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut case = case_from_row(&row)?;
        case.participants = participants_in(&mut tx, case_id).await?;
        tx.commit().await?;
        Ok(Some(case))
    }

    async fn cases_of(&self, user_id: &str) -> Result<Vec<CaseRecord>> {
        let mut tx = self.snapshot().await?;
        let rows = sqlx::query(
            "SELECT c.case_id, c.created_by, c.sealed_fields, c.created_at FROM cases c \
             JOIN case_participants p ON p.case_id = c.case_id WHERE p.user_id = $1 \
             ORDER BY c.created_at, c.case_id",
        )
        .bind(user_id)
        .fetch_all(&mut *tx)
        .await?;
        let mut cases = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut case = case_from_row(row)?;
            case.participants = participants_in(&mut tx, &case.case_id).await?;
            cases.push(case);
        }
        tx.commit().await?;
        Ok(cases)
    }

    async fn case_keys(&self, case_id: &str, participant_id: &str) -> Result<Vec<SealedCaseKey>> {
        let rows: Vec<(String, i64, String, Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>)> = sqlx::query_as(
            "SELECT participant_id, key_epoch, sealed_by, sealer_box_key, recipient_box_key, \
             nonce, ciphertext FROM case_keys WHERE case_id = $1 AND participant_id = $2 \
             ORDER BY key_epoch",
        )
        .bind(case_id)
        .bind(participant_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(participant_id, epoch, sealed_by, sealer, recipient, nonce, ciphertext)| {
                    SealedCaseKey {
                        participant_id,
                        key_epoch: to_u32(epoch),
                        sealed_by,
                        sealer_box_key: sealer,
                        recipient_box_key: recipient,
                        nonce,
                        ciphertext,
                    }
                },
            )
            .collect())
    }

    async fn add_case_participants(
        &self,
        case_id: &str,
        added_by: &str,
        added_at: i64,
        keys: &[SealedCaseKey],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let exists: Option<String> =
            sqlx::query_scalar("SELECT case_id FROM cases WHERE case_id = $1")
                .bind(case_id)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() {
            return Err(Error::CaseNotFound);
        }
        insert_participants_and_keys(&mut tx, case_id, added_by, added_at, keys).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn case_history(&self, case_id: &str, after: u64, limit: u32) -> Result<EnvelopePage> {
        let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT seq, envelope FROM case_messages WHERE case_id = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3",
        )
        .bind(case_id)
        .bind(to_i64(after))
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.pool)
        .await?;
        Ok(page(
            rows.into_iter().map(|(s, e)| (s, e, None)).collect(),
            limit,
        ))
    }

    async fn purge_expired(&self, now: i64, acked_before: i64) -> Result<Purged> {
        retrying(|| self.purge_expired_once(now, acked_before)).await
    }

    async fn vault_config(&self) -> Result<Option<Vec<u8>>> {
        Ok(
            sqlx::query_scalar("SELECT config FROM vault_config WHERE id = 1")
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn put_vault_config(&self, expected: Option<&[u8]>, config: &[u8]) -> Result<bool> {
        let changed = match expected {
            None => sqlx::query(
                "INSERT INTO vault_config (id, config) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
            )
            .bind(config)
            .execute(&self.pool)
            .await?
            .rows_affected(),
            Some(old) => {
                sqlx::query("UPDATE vault_config SET config = $1 WHERE id = 1 AND config = $2")
                    .bind(config)
                    .bind(old)
                    .execute(&self.pool)
                    .await?
                    .rows_affected()
            }
        };
        Ok(changed == 1)
    }

    async fn user_count(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
    // ---- Trust log ----

    async fn append_trust_block(
        &self,
        user_id: &str,
        seq: u64,
        block: &[u8],
        created_at: i64,
    ) -> Result<u64> {
        retrying(|| self.append_trust_block_once(user_id, seq, block, created_at)).await
    }

    async fn trust_blocks(&self, from: u64, limit: u32) -> Result<Vec<(u64, Vec<u8>)>> {
        let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT idx, block FROM trust_blocks WHERE idx >= $1 ORDER BY idx LIMIT $2",
        )
        .bind(to_i64(from))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(i, b)| (to_u64(i), b)).collect())
    }

    async fn trust_blocks_of(&self, user_id: &str) -> Result<Vec<(u64, Vec<u8>)>> {
        let rows: Vec<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT idx, block FROM trust_blocks WHERE user_id = $1 ORDER BY idx")
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(i, b)| (to_u64(i), b)).collect())
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn take_discovery_budget(
        &self,
        user_id: &str,
        window_start: i64,
        window_end: i64,
        hashes: u64,
        limit: u64,
    ) -> Result<bool> {
        if hashes == 0 {
            return Ok(true);
        }
        if hashes > limit {
            return Ok(false);
        }
        // One statement: the row lock of ON CONFLICT serialises nodes counting at once.
        let counted = sqlx::query(super::TAKE_DISCOVERY_BUDGET_SQL)
            .bind(user_id)
            .bind(window_start)
            .bind(window_end)
            .bind(to_i64(hashes))
            .bind(to_i64(limit))
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(counted == 1)
    }

    async fn trust_log_seed(&self, candidate: &[u8]) -> Result<Vec<u8>> {
        sqlx::query(
            "INSERT INTO trust_log_key (id, seed) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
        )
        .bind(candidate)
        .execute(&self.pool)
        .await?;
        Ok(
            sqlx::query_scalar("SELECT seed FROM trust_log_key WHERE id = 1")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    // Recovery

    async fn recovery_account(&self, user_id: &str) -> Result<Option<RecoveryRow>> {
        sqlx::query(&format!(
            "SELECT {RECOVERY_COLUMNS} FROM recovery_accounts WHERE user_id = $1"
        ))
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(|r| -> Result<RecoveryRow> {
            Ok(RecoveryRow {
                user_id: r.try_get("user_id")?,
                identifier_hash: r.try_get("identifier_hash")?,
                share: r.try_get("share")?,
                data_server_share: r.try_get("data_server_share")?,
                key_server_share: r.try_get("key_server_share")?,
                auth_public: r.try_get("auth_public")?,
                envelope: r.try_get("envelope")?,
                updated_at: r.try_get("updated_at")?,
                failures: to_u32(r.try_get("failures")?),
                last_failure_at: r.try_get("last_failure_at")?,
                pending_delta: r.try_get("pending_delta")?,
                version: r.try_get("version")?,
            })
        })
        .transpose()
    }

    async fn recovery_insert(&self, r: &RecoveryRow) -> Result<bool> {
        let done = sqlx::query(&format!(
            "INSERT INTO recovery_accounts ({RECOVERY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, \
             $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING"
        ))
        .bind(&r.user_id)
        .bind(&r.identifier_hash)
        .bind(&r.share)
        .bind(&r.data_server_share)
        .bind(&r.key_server_share)
        .bind(&r.auth_public)
        .bind(&r.envelope)
        .bind(r.updated_at)
        .bind(i64::from(r.failures))
        .bind(r.last_failure_at)
        .bind(&r.pending_delta)
        .bind(r.version)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn recovery_replace(&self, r: &RecoveryRow, expected_version: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE recovery_accounts SET share = $1, data_server_share = $2, \
             key_server_share = $3, auth_public = $4, envelope = $5, updated_at = $6, \
             failures = $7, last_failure_at = $8, pending_delta = $9, version = $10 \
             WHERE user_id = $11 AND version = $12",
        )
        .bind(&r.share)
        .bind(&r.data_server_share)
        .bind(&r.key_server_share)
        .bind(&r.auth_public)
        .bind(&r.envelope)
        .bind(r.updated_at)
        .bind(i64::from(r.failures))
        .bind(r.last_failure_at)
        .bind(&r.pending_delta)
        .bind(r.version)
        .bind(&r.user_id)
        .bind(expected_version)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn put_backup(&self, user_id: &str, backup: &[u8], now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO recovery_backups (user_id, backup, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id) DO UPDATE SET backup = excluded.backup, \
             updated_at = excluded.updated_at",
        )
        .bind(user_id)
        .bind(backup)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get_backup(&self, user_id: &str) -> Result<Option<Vec<u8>>> {
        Ok(
            sqlx::query_scalar("SELECT backup FROM recovery_backups WHERE user_id = $1")
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }
}

/// Columns of `recovery_accounts`, in [`RecoveryRow`] order.
const RECOVERY_COLUMNS: &str = "user_id, identifier_hash, share, data_server_share, \
                                key_server_share, auth_public, envelope, updated_at, failures, \
                                last_failure_at, pending_delta, version";
