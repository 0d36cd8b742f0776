//! The key server's storage: SQLite through sqlx (WAL, `synchronous=FULL`, one writer),
//! and code delivery through the development notifier.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::Row;

use cachet_proto::audit::{entry_hash, GENESIS_HASH};
use cachet_proto::v1::AuditEntry;

use crate::error::Result;
use crate::service::{Challenge, RecoveryBackend, RecoveryRow};

/// Database file inside the key server's data directory.
pub const DATABASE_FILE: &str = "keyserver.sqlite3";
/// File of the development notifier inside the data directory.
pub const DEV_CODES_FILE: &str = "dev-codes.txt";

/// `seq, timestamp, operator_id, action, subject, detail, prev_hash, hash`.
type AuditRow = (i64, i64, String, String, String, String, Vec<u8>, Vec<u8>);

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// SQLite storage of the key server, with the development code notifier.
#[derive(Debug)]
pub struct SqliteBackend {
    pool: SqlitePool,
    codes: PathBuf,
    codes_lock: tokio::sync::Mutex<()>,
}

const COLUMNS: &str = "user_id, identifier_hash, share, data_server_share, key_server_share, \
                       auth_public, envelope, updated_at, failures, last_failure_at, \
                       pending_delta, version";

fn row_from(r: &SqliteRow) -> Result<RecoveryRow> {
    Ok(RecoveryRow {
        user_id: r.try_get("user_id")?,
        identifier_hash: r.try_get("identifier_hash")?,
        share: r.try_get("share")?,
        data_server_share: r.try_get("data_server_share")?,
        key_server_share: r.try_get("key_server_share")?,
        auth_public: r.try_get("auth_public")?,
        envelope: r.try_get("envelope")?,
        updated_at: r.try_get("updated_at")?,
        failures: u32::try_from(r.try_get::<i64, _>("failures")?).unwrap_or(u32::MAX),
        last_failure_at: r.try_get("last_failure_at")?,
        pending_delta: r.try_get("pending_delta")?,
        version: r.try_get("version")?,
    })
}

impl SqliteBackend {
    /// Opens (creating) `<data_dir>/keyserver.sqlite3`; codes go to `<data_dir>/dev-codes.txt`.
    pub async fn open_in(data_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(data_dir)?;
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(data_dir.join(DATABASE_FILE))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        // One connection: SQLite has one writer, and compare-and-swap updates stay simple.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self {
            pool,
            codes: data_dir.join(DEV_CODES_FILE),
            codes_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// Every enrolled account's user id, and those with a refresh in progress first.
    pub async fn enrolled_users(&self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT user_id FROM accounts WHERE length(auth_public) > 0 \
             ORDER BY length(pending_delta) DESC, user_id",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Deletes expired challenges and seen signatures past the clock window.
    pub async fn purge_expired(&self, now: i64) -> Result<u64> {
        sqlx::query("DELETE FROM seen_signatures WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(sqlx::query("DELETE FROM challenges WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// Number of recovery accounts.
    pub async fn account_count(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM accounts")
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    // ---- Key hierarchy, operators and audit log ----

    /// The stored vault document.
    pub async fn vault_config(&self) -> Result<Option<Vec<u8>>> {
        Ok(
            sqlx::query_scalar("SELECT config FROM vault_config WHERE id = 1")
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Compare-and-swap of the vault document (`expected` `None`: must be absent).
    pub async fn put_vault_config(&self, expected: Option<&[u8]>, config: &[u8]) -> Result<bool> {
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

    /// Registers an operator's public key; false if the name is taken.
    pub async fn add_operator(&self, name: &str, public_key: &[u8], now: i64) -> Result<bool> {
        Ok(sqlx::query(
            "INSERT INTO operators (name, public_key, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(public_key)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    /// An operator's public key.
    pub async fn operator_key(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(
            sqlx::query_scalar("SELECT public_key FROM operators WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Records a request signature; false if it was seen before (a replay).
    pub async fn remember_signature(&self, replay_id: &[u8], expires_at: i64) -> Result<bool> {
        Ok(sqlx::query(
            "INSERT INTO seen_signatures (replay_id, expires_at) VALUES ($1, $2) \
             ON CONFLICT (replay_id) DO NOTHING",
        )
        .bind(replay_id)
        .bind(expires_at)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    /// Appends an entry to the hash-chained audit log (`cachet_proto::audit`).
    pub async fn append_audit(
        &self,
        timestamp: i64,
        operator_id: &str,
        action: &str,
        detail: &str,
    ) -> Result<AuditEntry> {
        let mut tx = self.pool.begin().await?;
        let last: Option<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?;
        let (prev_seq, prev_hash) = last.unwrap_or((0, GENESIS_HASH.to_vec()));
        let mut entry = AuditEntry {
            seq: u64::try_from(prev_seq).unwrap_or(0) + 1,
            timestamp,
            operator_id: operator_id.to_owned(),
            action: action.to_owned(),
            subject: "vault".to_owned(),
            detail: detail.to_owned(),
            prev_hash: prev_hash.clone(),
            ..Default::default()
        };
        entry.hash = entry_hash(&prev_hash, &entry).to_vec();
        sqlx::query(
            "INSERT INTO audit_log (seq, timestamp, operator_id, action, subject, detail, \
             prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(i64::try_from(entry.seq).unwrap_or(i64::MAX))
        .bind(entry.timestamp)
        .bind(&entry.operator_id)
        .bind(&entry.action)
        .bind(&entry.subject)
        .bind(&entry.detail)
        .bind(&entry.prev_hash)
        .bind(&entry.hash)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(entry)
    }

    /// Audit entries after `after`, oldest first.
    pub async fn audit_entries(&self, after: u64, limit: u32) -> Result<Vec<AuditEntry>> {
        let rows: Vec<AuditRow> = sqlx::query_as(
            "SELECT seq, timestamp, operator_id, action, subject, detail, prev_hash, hash \
                 FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(i64::try_from(after).unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(seq, timestamp, operator_id, action, subject, detail, prev_hash, hash)| {
                    AuditEntry {
                        seq: u64::try_from(seq).unwrap_or(0),
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

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[async_trait]
impl RecoveryBackend for SqliteBackend {
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
        Ok(u64::try_from(n).unwrap_or(0))
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
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                    created_at,
                    expires_at,
                }
            },
        ))
    }

    async fn record_failed_attempt(&self, challenge_id: &str) -> Result<()> {
        sqlx::query("UPDATE challenges SET attempts = attempts + 1 WHERE challenge_id = $1")
            .bind(challenge_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete_challenge(&self, challenge_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM challenges WHERE challenge_id = $1")
            .bind(challenge_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn send_code(&self, identifier: &str, code: &str, _expires_at: i64) -> Result<()> {
        use tokio::io::AsyncWriteExt;
        tracing::info!(
            identifier,
            code,
            "key server development notifier: one-time code"
        );
        let _guard = self.codes_lock.lock().await;
        let mut f = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.codes)
            .await?;
        f.write_all(format!("{identifier}\t{code}\n").as_bytes())
            .await?;
        f.flush().await?;
        Ok(())
    }

    async fn user_for_identifier(&self, identifier_hash: &[u8]) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT user_id FROM accounts WHERE identifier_hash = $1")
                .bind(identifier_hash)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn account(&self, user_id: &str) -> Result<Option<RecoveryRow>> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM accounts WHERE user_id = $1"
        ))
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(row_from)
        .transpose()
    }

    async fn insert_account(&self, r: &RecoveryRow) -> Result<bool> {
        let done = sqlx::query(&format!(
            "INSERT INTO accounts ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
             $11, $12) ON CONFLICT DO NOTHING"
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

    async fn replace_account(&self, r: &RecoveryRow, expected_version: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE accounts SET share = $1, data_server_share = $2, key_server_share = $3, \
             auth_public = $4, envelope = $5, updated_at = $6, failures = $7, \
             last_failure_at = $8, pending_delta = $9, version = $10 \
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
}
