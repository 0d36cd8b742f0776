//! [`Store`] on SQLite through sqlx.
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
//! The SQL is kept portable to PostgreSQL: `$n` parameters, `ON CONFLICT`, `RETURNING`,
//! explicit casts of aggregates, no SQLite-only syntax.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use cachet_proto::v1::{AuditEntry, CaseRecord, KeyRecord, SealedCaseKey};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::Row;

use super::sqlite_writer::{self as hot, GroupCommit, Readers, Savepoint};
use super::{
    AttachmentRow, AuditDraft, Challenge, EnvelopePage, NewInstallation, NewMessage, NewUser,
    Purged, RecoveryRow, SeenSignature, SendOutcome, Store, StoredEnvelope, UserRow,
};
use crate::audit::{entry_hash, GENESIS_HASH};
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

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// SQLite implementation of [`Store`].
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    group: GroupCommit,
    hot_reads: std::sync::Arc<Readers>,
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
        MIGRATOR.run(&writer).await?;
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

/// A row of `key_columns!()`.
fn key_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<KeyRecord> {
    Ok(KeyRecord {
        key_version: to_u32(r.get("key_version")?),
        box_key: r.get("box_key")?,
        sign_key: r.get("sign_key")?,
        valid_from: r.get("valid_from")?,
        valid_until: r.get("valid_until")?,
        reason: i32::try_from(r.get::<_, i64>("reason")?).unwrap_or(0),
        previous_key_signature: r.get("previous_key_signature")?,
        revoked_by_operator: r.get("revoked_by_operator")?,
    })
}

/// The columns of a key generation, in the order `key_record` reads them by name.
macro_rules! key_columns {
    () => {
        "key_version, box_key, sign_key, valid_from, valid_until, reason, \
         previous_key_signature, revoked_by_operator"
    };
}
/// The current keys of a user: read on every signed request, so one literal statement.
const CURRENT_KEYS_SQL: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM user_keys WHERE user_id = ?1 ORDER BY key_version DESC LIMIT 1"
);
const KEY_HISTORY_SQL: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM user_keys WHERE user_id = ?1 ORDER BY key_version"
);

async fn insert_keys(conn: &mut SqliteConnection, user_id: &str, k: &KeyRecord) -> Result<()> {
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

/// Puts one envelope in one mailbox under the next delivery id of that mailbox.
async fn enqueue(
    conn: &mut SqliteConnection,
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

async fn contacts_in(conn: &mut SqliteConnection, user_id: &str) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(CONTACTS_SQL)
        .bind(user_id)
        .fetch_all(&mut *conn)
        .await?)
}

/// Queues `envelope` for every contact of `user_id`.
async fn fan_out_to_contacts(
    conn: &mut SqliteConnection,
    user_id: &str,
    envelope: &[u8],
    now: i64,
) -> Result<u64> {
    let contacts = contacts_in(conn, user_id).await?;
    for c in &contacts {
        enqueue(conn, c, envelope, now).await?;
    }
    Ok(contacts.len() as u64)
}

async fn append_audit_in(conn: &mut SqliteConnection, d: &AuditDraft) -> Result<AuditEntry> {
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

fn case_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<CaseRecord> {
    Ok(CaseRecord {
        case_id: row.try_get("case_id")?,
        created_by: row.try_get("created_by")?,
        sealed_fields: row.try_get("sealed_fields")?,
        participants: Vec::new(),
        my_keys: Vec::new(),
        created_at: row.try_get("created_at")?,
    })
}

async fn insert_participants_and_keys(
    conn: &mut SqliteConnection,
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

#[async_trait]
impl Store for SqliteStore {
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
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn live_challenges(&self, identifier_hash: &[u8], now: i64) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM challenges WHERE identifier_hash = $1 AND expires_at >= $2",
        )
        .bind(identifier_hash)
        .bind(now)
        .fetch_one(&self.reader)
        .await?;
        Ok(to_u64(n))
    }

    async fn get_challenge(&self, challenge_id: &str) -> Result<Option<Challenge>> {
        let row: Option<(String, Vec<u8>, Vec<u8>, i64, i64, i64)> = sqlx::query_as(
            "SELECT challenge_id, identifier_hash, code_hash, attempts, created_at, expires_at \
             FROM challenges WHERE challenge_id = $1",
        )
        .bind(challenge_id)
        .fetch_optional(&self.reader)
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
        .fetch_optional(&self.writer)
        .await?;
        Ok(n.map_or(0, to_u32))
    }

    async fn delete_challenge(&self, challenge_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM challenges WHERE challenge_id = $1")
            .bind(challenge_id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn create_user(&self, challenge_id: &str, user: &NewUser) -> Result<()> {
        let mut tx = self.writer.begin_with(WRITE_TX).await?;
        let consumed = sqlx::query("DELETE FROM challenges WHERE challenge_id = $1")
            .bind(challenge_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if consumed == 0 {
            return Err(Error::UnknownChallenge);
        }
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
        let mut tx = self.writer.begin_with(WRITE_TX).await?;
        let consumed = sqlx::query("DELETE FROM challenges WHERE challenge_id = $1")
            .bind(challenge_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if consumed == 0 {
            return Err(Error::UnknownChallenge);
        }
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

    async fn user_by_identifier_hash(&self, hash: &[u8]) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT user_id FROM users WHERE identifier_hash = $1")
                .bind(hash)
                .fetch_optional(&self.reader)
                .await?,
        )
    }

    async fn get_user(&self, user_id: &str) -> Result<Option<UserRow>> {
        let row: Option<(String, String, bool, i64)> = sqlx::query_as(
            "SELECT user_id, display_name, verified, created_at FROM users WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_optional(&self.reader)
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
        use rusqlite::OptionalExtension;
        self.hot_reads.with(|conn| {
            conn.prepare_cached(CURRENT_KEYS_SQL)?
                .query_row([user_id], key_record)
                .optional()
        })
    }

    async fn key_history(&self, user_id: &str) -> Result<Vec<KeyRecord>> {
        self.hot_reads.with(|conn| {
            conn.prepare_cached(KEY_HISTORY_SQL)?
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

    async fn contacts_of(&self, user_id: &str) -> Result<Vec<String>> {
        let mut conn = self.reader.acquire().await?;
        contacts_in(&mut conn, user_id).await
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

    async fn operator_key(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(
            sqlx::query_scalar("SELECT sign_key FROM operators WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.reader)
                .await?,
        )
    }

    async fn put_operator(&self, name: &str, sign_key: &[u8], audit: &AuditDraft) -> Result<()> {
        let mut tx = self.writer.begin_with(WRITE_TX).await?;
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
        let mut tx = self.writer.begin_with(WRITE_TX).await?;
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

    async fn set_verified(&self, user_id: &str, audit: &AuditDraft) -> Result<bool> {
        let mut tx = self.writer.begin_with(WRITE_TX).await?;
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
        let mut tx = self.writer.begin_with(WRITE_TX).await?;
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
            .fetch_all(&self.reader)
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
        let msg = msg.clone();
        self.group
            .run(Savepoint::Own, move |conn| hot::store_message(conn, &msg))
            .await
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
        let user_id = user_id.to_owned();
        // Acks are idempotent: a failure after some chunks leaves nothing to undo.
        self.group
            .run(Savepoint::None, move |conn| {
                hot::ack(conn, &user_id, &ids, keep_acked_at)
            })
            .await
    }

    async fn store_message_and_remember(
        &self,
        msg: &NewMessage,
        seen: &SeenSignature,
    ) -> Result<SendOutcome> {
        let (msg, seen) = (msg.clone(), seen.clone());
        self.group
            .run(Savepoint::Own, move |conn| {
                if !hot::remember(conn, &seen)? {
                    return Err(Error::ReplayedSignature);
                }
                hot::store_message(conn, &msg)
            })
            .await
    }

    async fn ack_and_remember(
        &self,
        user_id: &str,
        delivery_ids: &[u64],
        keep_acked_at: Option<i64>,
        seen: &SeenSignature,
    ) -> Result<u64> {
        let ids = super::delivery_ids_in(delivery_ids);
        let (user_id, seen) = (user_id.to_owned(), seen.clone());
        // A replay writes nothing; a failure after the entry only burns the signature.
        self.group
            .run(Savepoint::None, move |conn| {
                if !hot::remember(conn, &seen)? {
                    return Err(Error::ReplayedSignature);
                }
                hot::ack(conn, &user_id, &ids, keep_acked_at)
            })
            .await
    }

    async fn pending(&self, user_id: &str, limit: u32) -> Result<EnvelopePage> {
        let rows = self.hot_reads.with(|conn| {
            let mut s = conn.prepare_cached(
                "SELECT delivery_id, envelope, acked_at FROM mailbox \
                 WHERE recipient_id = ?1 AND acked_at IS NULL ORDER BY delivery_id LIMIT ?2",
            )?;
            let rows = s.query_map(rusqlite::params![user_id, i64::from(limit) + 1], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
            rows.collect::<rusqlite::Result<Vec<(i64, Vec<u8>, Option<i64>)>>>()
        })?;
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
        .fetch_all(&self.reader)
        .await?;
        Ok(page(rows, limit))
    }

    async fn create_attachment(&self, row: &AttachmentRow, quota: u64) -> Result<()> {
        let mut tx = self.writer.begin_with(WRITE_TX).await?;
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
        let mut conn = self.reader.acquire().await?;
        let row: Option<(String, String, i64, i64, bool, Vec<u8>, i64)> = sqlx::query_as(
            "SELECT attachment_id, owner_id, sealed_size, chunk_size, complete, sha256, \
             created_at FROM attachments WHERE attachment_id = $1",
        )
        .bind(attachment_id)
        .fetch_optional(&mut *conn)
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
        .fetch_all(&mut *conn)
        .await?;
        let readers: Vec<String> = sqlx::query_scalar(
            "SELECT reader_id FROM attachment_readers WHERE attachment_id = $1 \
             ORDER BY reader_id",
        )
        .bind(&attachment_id)
        .fetch_all(&mut *conn)
        .await?;
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
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn complete_attachment(
        &self,
        attachment_id: &str,
        sha256: &[u8],
        readers: &[String],
    ) -> Result<()> {
        let mut tx = self.writer.begin_with(WRITE_TX).await?;
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
        let mut tx = self.writer.begin_with(WRITE_TX).await?;
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
        let mut conn = self.reader.acquire().await?;
        let row = sqlx::query(
            "SELECT case_id, created_by, sealed_fields, created_at FROM cases WHERE case_id = $1",
        )
        .bind(case_id)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut case = case_from_row(&row)?;
        case.participants = sqlx::query_scalar(
            "SELECT user_id FROM case_participants WHERE case_id = $1 ORDER BY added_at, user_id",
        )
        .bind(case_id)
        .fetch_all(&mut *conn)
        .await?;
        Ok(Some(case))
    }

    async fn cases_of(&self, user_id: &str) -> Result<Vec<CaseRecord>> {
        let mut conn = self.reader.acquire().await?;
        let rows = sqlx::query(
            "SELECT c.case_id, c.created_by, c.sealed_fields, c.created_at FROM cases c \
             JOIN case_participants p ON p.case_id = c.case_id WHERE p.user_id = $1 \
             ORDER BY c.created_at, c.case_id",
        )
        .bind(user_id)
        .fetch_all(&mut *conn)
        .await?;
        let mut cases = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut case = case_from_row(row)?;
            case.participants = sqlx::query_scalar(
                "SELECT user_id FROM case_participants WHERE case_id = $1 \
                 ORDER BY added_at, user_id",
            )
            .bind(&case.case_id)
            .fetch_all(&mut *conn)
            .await?;
            cases.push(case);
        }
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
        .fetch_all(&self.reader)
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
        let mut tx = self.writer.begin_with(WRITE_TX).await?;
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
        .fetch_all(&self.reader)
        .await?;
        Ok(page(
            rows.into_iter().map(|(s, e)| (s, e, None)).collect(),
            limit,
        ))
    }

    async fn purge_expired(&self, now: i64, acked_before: i64) -> Result<Purged> {
        let mut tx = self.writer.begin_with(WRITE_TX).await?;
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

    async fn vault_config(&self) -> Result<Option<Vec<u8>>> {
        Ok(
            sqlx::query_scalar("SELECT config FROM vault_config WHERE id = 1")
                .fetch_optional(&self.writer)
                .await?,
        )
    }

    async fn put_vault_config(&self, expected: Option<&[u8]>, config: &[u8]) -> Result<bool> {
        let changed = match expected {
            None => sqlx::query(
                "INSERT INTO vault_config (id, config) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
            )
            .bind(config)
            .execute(&self.writer)
            .await?
            .rows_affected(),
            Some(old) => {
                sqlx::query("UPDATE vault_config SET config = $1 WHERE id = 1 AND config = $2")
                    .bind(config)
                    .bind(old)
                    .execute(&self.writer)
                    .await?
                    .rows_affected()
            }
        };
        Ok(changed == 1)
    }

    async fn user_count(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.reader)
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
        let mut tx = self.writer.begin_with(WRITE_TX).await?;
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

    async fn trust_blocks(&self, from: u64, limit: u32) -> Result<Vec<(u64, Vec<u8>)>> {
        let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT idx, block FROM trust_blocks WHERE idx >= $1 ORDER BY idx LIMIT $2",
        )
        .bind(to_i64(from))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(|(i, b)| (to_u64(i), b)).collect())
    }

    async fn trust_blocks_of(&self, user_id: &str) -> Result<Vec<(u64, Vec<u8>)>> {
        let rows: Vec<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT idx, block FROM trust_blocks WHERE user_id = $1 ORDER BY idx")
                .bind(user_id)
                .fetch_all(&self.reader)
                .await?;
        Ok(rows.into_iter().map(|(i, b)| (to_u64(i), b)).collect())
    }

    async fn close(&self) {
        SqliteStore::close(self).await;
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
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
        // One statement on the single writer: atomic by itself.
        let counted = sqlx::query(super::TAKE_DISCOVERY_BUDGET_SQL)
            .bind(user_id)
            .bind(window_start)
            .bind(window_end)
            .bind(to_i64(hashes))
            .bind(to_i64(limit))
            .execute(&self.writer)
            .await?
            .rows_affected();
        Ok(counted == 1)
    }

    async fn trust_log_seed(&self, candidate: &[u8]) -> Result<Vec<u8>> {
        let mut tx = self.writer.begin_with(WRITE_TX).await?;
        sqlx::query(
            "INSERT INTO trust_log_key (id, seed) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
        )
        .bind(candidate)
        .execute(&mut *tx)
        .await?;
        let seed: Vec<u8> = sqlx::query_scalar("SELECT seed FROM trust_log_key WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(seed)
    }

    // Recovery

    async fn recovery_account(&self, user_id: &str) -> Result<Option<RecoveryRow>> {
        sqlx::query(&format!(
            "SELECT {RECOVERY_COLUMNS} FROM recovery_accounts WHERE user_id = $1"
        ))
        .bind(user_id)
        .fetch_optional(&self.reader)
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
        .execute(&self.writer)
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
        .execute(&self.writer)
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
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn get_backup(&self, user_id: &str) -> Result<Option<Vec<u8>>> {
        Ok(
            sqlx::query_scalar("SELECT backup FROM recovery_backups WHERE user_id = $1")
                .bind(user_id)
                .fetch_optional(&self.reader)
                .await?,
        )
    }
}

/// Columns of `recovery_accounts`, in [`RecoveryRow`] order.
const RECOVERY_COLUMNS: &str = "user_id, identifier_hash, share, data_server_share, \
                                key_server_share, auth_public, envelope, updated_at, failures, \
                                last_failure_at, pending_delta, version";
