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

use crate::error::Result;
use crate::service::{Challenge, RecoveryBackend, RecoveryRow};

/// Database file inside the key server's data directory.
pub const DATABASE_FILE: &str = "keyserver.sqlite3";
/// File of the development notifier inside the data directory.
pub const DEV_CODES_FILE: &str = "dev-codes.txt";

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

    /// Deletes expired challenges.
    pub async fn purge_expired(&self, now: i64) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM challenges WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected())
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
