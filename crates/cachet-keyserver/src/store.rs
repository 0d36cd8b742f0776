//! The key server's storage: SQLite through sqlx by default (WAL, `synchronous=FULL`, one
//! writer), or PostgreSQL for operators who keep their databases there; and code delivery
//! through the configured notifier.
//!
//! Both databases run the same SQL text (`$n` parameters, `ON CONFLICT`, no dialect
//! extras), so each query is written once and [`on_pool!`] runs it on whichever pool is
//! open. Each dialect has its own migrations (`migrations/`, `migrations-postgres/`).

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cachet_http::notify::{CodeMessage, CodeNotifier, DevNotifier, Purpose};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::ConnectOptions;

use cachet_proto::v1::AuditEntry;
use cachet_server_common::recovery::{AccountTuple, KEY_SERVER_ACCOUNTS};
use cachet_server_common::vault::{self as vault_sql, VaultBackend};
use cachet_server_common::{
    audit, bind_account_update, bind_challenge, bind_new_account, challenge,
};

use crate::error::Result;
use crate::service::{Challenge, RecoveryBackend, RecoveryRow};

/// Database file inside the key server's data directory.
pub const DATABASE_FILE: &str = "keyserver.sqlite3";
/// File of the development notifier inside the data directory.
pub const DEV_CODES_FILE: &str = cachet_http::notify::DEV_CODES_FILE;

/// How long a request waits for a PostgreSQL connection before it is refused with 503.
pub(crate) const POSTGRES_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

// Directories `0700` and files `0600`, whatever the umask: the key server's files hold
// key shares and one-time codes. More open existing ones are tightened.
use cachet_server_common::private_files as private;

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations-postgres");

/// The open database.
#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs one expression, written once, on whichever pool is open: `$p` is bound to the
/// `SqlitePool` or the `PgPool`, and the expression is compiled for each.
macro_rules! on_pool {
    ($pool:expr, |$p:ident| $body:expr) => {
        match $pool {
            Pool::Sqlite($p) => $body,
            Pool::Postgres($p) => $body,
        }
    };
}

/// Storage of the key server (SQLite or PostgreSQL), with its code notifier (the
/// development notifier unless [`KeyStore::with_notifier`] names another).
pub struct KeyStore {
    pool: Pool,
    notifier: Arc<dyn CodeNotifier>,
}

cachet_http::debug_some_fields!(KeyStore { pool });

impl KeyStore {
    /// Opens (creating) `<data_dir>/keyserver.sqlite3`; codes go to `<data_dir>/dev-codes.txt`.
    ///
    /// The data directory is the key server account's only (`0700`), and so are the
    /// database (with its `-wal` and `-shm` files) and the codes file (`0600`).
    pub async fn open_in(data_dir: &Path) -> Result<Self> {
        private::create_dir(data_dir)?;
        let database = data_dir.join(DATABASE_FILE);
        private::create_file(&database)?;
        for side in [
            format!("{DATABASE_FILE}-wal"),
            format!("{DATABASE_FILE}-shm"),
        ] {
            private::tighten_if_present(&data_dir.join(side))?;
        }
        private::tighten_if_present(&data_dir.join(DEV_CODES_FILE))?;
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(database)
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
        SQLITE_MIGRATOR.run(&pool).await?;
        Ok(Self::with_pool(Pool::Sqlite(pool), data_dir))
    }

    /// Connects to PostgreSQL at `url` and runs pending migrations; codes of the
    /// development notifier still go to `<data_dir>/dev-codes.txt`.
    ///
    /// Accounts change by compare-and-swap on their version and the audit log is
    /// appended under a table lock, so several connections (or key server processes)
    /// may share the database.
    ///
    /// A request that gets no connection within 5 s (the database is down) fails with 503
    /// `database_unavailable` instead of waiting.
    pub async fn connect(url: &str, data_dir: &Path) -> Result<Self> {
        private::create_dir(data_dir)?;
        private::tighten_if_present(&data_dir.join(DEV_CODES_FILE))?;
        let options = PgConnectOptions::from_str(url)?.disable_statement_logging();
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(POSTGRES_ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        POSTGRES_MIGRATOR.run(&pool).await?;
        Ok(Self::with_pool(Pool::Postgres(pool), data_dir))
    }

    /// SQLite in `data_dir`, or PostgreSQL when `database_url` is given.
    pub async fn open(database_url: Option<&str>, data_dir: &Path) -> Result<Self> {
        match database_url {
            Some(url) => Self::connect(url, data_dir).await,
            None => Self::open_in(data_dir).await,
        }
    }

    /// As [`KeyStore::open`], but a PostgreSQL database that cannot be reached yet is
    /// waited for (logged, with backoff) instead of failing the start.
    pub async fn open_waiting(database_url: Option<&str>, data_dir: &Path) -> Result<Self> {
        match database_url {
            Some(url) => cachet_http::health::wait_for_database(
                || Self::connect(url, data_dir),
                |e| matches!(e, crate::Error::Database(d) if crate::error::database_unavailable(d)),
            )
            .await,
            None => Self::open_in(data_dir).await,
        }
    }

    /// One round trip to the database, for `/healthz`.
    pub async fn ping(&self) -> Result<()> {
        on_pool!(&self.pool, |p| {
            sqlx::query("SELECT 1").execute(p).await?;
        });
        Ok(())
    }

    fn with_pool(pool: Pool, data_dir: &Path) -> Self {
        Self {
            pool,
            notifier: Arc::new(DevNotifier::new(data_dir.join(DEV_CODES_FILE))),
        }
    }

    /// Delivers codes through `notifier` instead of the development file.
    pub fn with_notifier(mut self, notifier: Arc<dyn CodeNotifier>) -> Self {
        self.notifier = notifier;
        self
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn kind(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    /// Every enrolled account's user id, and those with a refresh in progress first.
    pub async fn enrolled_users(&self) -> Result<Vec<String>> {
        Ok(on_pool!(&self.pool, |p| sqlx::query_scalar(
            "SELECT user_id FROM accounts WHERE length(auth_public) > 0 \
             ORDER BY length(pending_delta) DESC, user_id",
        )
        .fetch_all(p)
        .await?))
    }

    /// Deletes expired challenges and seen signatures past the clock window.
    pub async fn purge_expired(&self, now: i64) -> Result<u64> {
        on_pool!(&self.pool, |p| {
            sqlx::query("DELETE FROM seen_signatures WHERE expires_at < $1")
                .bind(now)
                .execute(p)
                .await?;
            Ok(sqlx::query(challenge::PURGE_SQL)
                .bind(now)
                .execute(p)
                .await?
                .rows_affected())
        })
    }

    /// Number of recovery accounts.
    pub async fn account_count(&self) -> Result<u64> {
        let n: i64 = on_pool!(&self.pool, |p| sqlx::query_scalar(
            "SELECT COUNT(*) FROM accounts"
        )
        .fetch_one(p)
        .await?);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Runs a challenge statement whose only parameter is the challenge id (`$1`).
    async fn execute_for_challenge(&self, sql: &'static str, challenge_id: &str) -> Result<()> {
        on_pool!(&self.pool, |p| sqlx::query(sql)
            .bind(challenge_id)
            .execute(p)
            .await
            .map(|_| ())?);
        Ok(())
    }

    // ---- Key hierarchy, operators and audit log ----

    /// Registers an operator's public key; false if the name is taken.
    pub async fn add_operator(&self, name: &str, public_key: &[u8], now: i64) -> Result<bool> {
        let added = on_pool!(&self.pool, |p| sqlx::query(
            "INSERT INTO operators (name, public_key, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(public_key)
        .bind(now)
        .execute(p)
        .await?
        .rows_affected());
        Ok(added == 1)
    }

    /// An operator's public key.
    pub async fn operator_key(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(on_pool!(&self.pool, |p| sqlx::query_scalar(
            "SELECT public_key FROM operators WHERE name = $1"
        )
        .bind(name)
        .fetch_optional(p)
        .await?))
    }

    /// Records a request signature; false if it was seen before (a replay).
    pub async fn remember_signature(&self, replay_id: &[u8], expires_at: i64) -> Result<bool> {
        let inserted = on_pool!(&self.pool, |p| sqlx::query(
            "INSERT INTO seen_signatures (replay_id, expires_at) VALUES ($1, $2) \
             ON CONFLICT (replay_id) DO NOTHING",
        )
        .bind(replay_id)
        .bind(expires_at)
        .execute(p)
        .await?
        .rows_affected());
        Ok(inserted == 1)
    }

    /// The stored vault document.
    pub async fn vault_config(&self) -> Result<Option<Vec<u8>>> {
        Ok(on_pool!(&self.pool, |p| sqlx::query_scalar(
            vault_sql::CONFIG_SQL
        )
        .fetch_optional(p)
        .await?))
    }

    /// Compare-and-swap of the vault document (`expected` `None`: must be absent).
    pub async fn put_vault_config(&self, expected: Option<&[u8]>, config: &[u8]) -> Result<bool> {
        let changed = on_pool!(&self.pool, |p| match expected {
            None => sqlx::query(vault_sql::INSERT_CONFIG_SQL)
                .bind(config)
                .execute(p)
                .await?
                .rows_affected(),
            Some(old) => sqlx::query(vault_sql::SWAP_CONFIG_SQL)
                .bind(config)
                .bind(old)
                .execute(p)
                .await?
                .rows_affected(),
        });
        Ok(changed == 1)
    }

    /// Appends an entry about the vault to the hash-chained audit log
    /// (`cachet_proto::audit`).
    pub async fn append_audit(
        &self,
        timestamp: i64,
        operator_id: &str,
        action: &str,
        detail: &str,
    ) -> Result<AuditEntry> {
        self.append_action(audit::Action {
            timestamp,
            operator_id,
            action,
            subject: "vault",
            detail,
        })
        .await
    }

    async fn append_action(&self, action: audit::Action<'_>) -> Result<AuditEntry> {
        on_pool!(&self.pool, |p| {
            let mut tx = p.begin().await?;
            if self.kind() == "postgres" {
                sqlx::query(audit::POSTGRES_LOCK_SQL)
                    .execute(&mut *tx)
                    .await?;
            }
            let last: Option<(i64, Vec<u8>)> = sqlx::query_as(audit::LAST_ENTRY_SQL)
                .fetch_optional(&mut *tx)
                .await?;
            let entry = audit::next_entry(last, action);
            cachet_server_common::bind_audit_entry!(sqlx::query(audit::INSERT_ENTRY_SQL), entry)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(entry)
        })
    }

    /// Audit entries after `after`, oldest first.
    pub async fn audit_entries(&self, after: u64, limit: u32) -> Result<Vec<AuditEntry>> {
        let rows: Vec<audit::AuditRow> =
            on_pool!(&self.pool, |p| sqlx::query_as(audit::ENTRIES_AFTER_SQL)
                .bind(i64::try_from(after).unwrap_or(i64::MAX))
                .bind(i64::from(limit))
                .fetch_all(p)
                .await?);
        Ok(rows.into_iter().map(audit::entry_from_row).collect())
    }

    /// Closes the pool (SQLite folds its WAL back into the database file).
    pub async fn close(&self) {
        on_pool!(&self.pool, |p| p.close().await);
    }
}

#[async_trait]
impl RecoveryBackend for KeyStore {
    async fn insert_challenge(&self, c: &Challenge) -> Result<()> {
        on_pool!(&self.pool, |p| bind_challenge!(
            sqlx::query(challenge::INSERT_SQL),
            c
        )
        .execute(p)
        .await
        .map(|_| ())?);
        Ok(())
    }

    async fn live_challenges(&self, identifier_hash: &[u8], now: i64) -> Result<u64> {
        let n: i64 = on_pool!(&self.pool, |p| sqlx::query_scalar(
            challenge::LIVE_COUNT_SQL
        )
        .bind(identifier_hash)
        .bind(now)
        .fetch_one(p)
        .await?);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn get_challenge(&self, challenge_id: &str) -> Result<Option<Challenge>> {
        let row: Option<challenge::ChallengeTuple> =
            on_pool!(&self.pool, |p| sqlx::query_as(challenge::SELECT_SQL)
                .bind(challenge_id)
                .fetch_optional(p)
                .await?);
        Ok(row.map(Challenge::from))
    }

    async fn record_failed_attempt(&self, challenge_id: &str) -> Result<()> {
        self.execute_for_challenge(challenge::FAILED_ATTEMPT_SQL, challenge_id)
            .await
    }

    async fn delete_challenge(&self, challenge_id: &str) -> Result<()> {
        self.execute_for_challenge(challenge::DELETE_SQL, challenge_id)
            .await
    }

    async fn send_code(&self, identifier: &str, code: &str, expires_at: i64) -> Result<()> {
        self.notifier
            .send_code(CodeMessage {
                to: identifier,
                code,
                purpose: Purpose::KeyServerRecovery,
                expires_at_ms: expires_at,
            })
            .await?;
        Ok(())
    }

    async fn user_for_identifier(&self, identifier_hash: &[u8]) -> Result<Option<String>> {
        Ok(on_pool!(&self.pool, |p| sqlx::query_scalar(
            "SELECT user_id FROM accounts WHERE identifier_hash = $1"
        )
        .bind(identifier_hash)
        .fetch_optional(p)
        .await?))
    }

    async fn account(&self, user_id: &str) -> Result<Option<RecoveryRow>> {
        let row: Option<AccountTuple> =
            on_pool!(&self.pool, |p| sqlx::query_as(KEY_SERVER_ACCOUNTS.select)
                .bind(user_id)
                .fetch_optional(p)
                .await?);
        Ok(row.map(RecoveryRow::from))
    }

    async fn insert_account(&self, r: &RecoveryRow) -> Result<bool> {
        let inserted = on_pool!(&self.pool, |p| bind_new_account!(
            sqlx::query(KEY_SERVER_ACCOUNTS.insert),
            r
        )
        .execute(p)
        .await?
        .rows_affected());
        Ok(inserted == 1)
    }

    async fn replace_account(&self, r: &RecoveryRow, expected_version: i64) -> Result<bool> {
        let replaced = on_pool!(&self.pool, |p| bind_account_update!(
            sqlx::query(KEY_SERVER_ACCOUNTS.replace),
            r,
            expected_version
        )
        .execute(p)
        .await?
        .rows_affected());
        Ok(replaced == 1)
    }
}

// The key hierarchy's view of the key server's database.
#[async_trait]
impl VaultBackend for KeyStore {
    type Error = crate::error::Error;

    async fn stored_vault_config(&self) -> Result<Option<Vec<u8>>> {
        self.vault_config().await
    }

    async fn swap_vault_config(&self, expected: Option<&[u8]>, config: &[u8]) -> Result<bool> {
        self.put_vault_config(expected, config).await
    }

    async fn record_count(&self) -> Result<u64> {
        self.account_count().await
    }

    async fn audit(&self, action: audit::Action<'_>) -> Result<()> {
        self.append_action(action).await.map(|_| ())
    }
}
