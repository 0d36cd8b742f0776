//! The data server's schema history for SQLite and PostgreSQL, each table written once.
//!
//! `migrations/` holds the tables in SQLite's spelling; PostgreSQL reads `BLOB` as
//! `BYTEA`, the one type the two write differently. What the databases do differently
//! beyond that has a file per database (`*.sqlite.sql`, `*.postgres.sql`): the append-only
//! triggers, PostgreSQL's server-side functions, and two tables written before this rule.
//! `migrations/README.md` says how to add a step.
//!
//! A step already applied somewhere never changes: sqlx keeps each step's SHA-384 and
//! refuses a database whose recorded checksum differs. The text assembled here is byte for
//! byte what earlier releases applied from one file per database; the test below pins
//! every checksum.

use std::future::Future;
use std::pin::Pin;

use sqlx::error::BoxDynError;
use sqlx::migrate::{MigrateError, Migration, MigrationSource, MigrationType, Migrator};

/// Which database a schema is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// SQLite (the embedded default).
    Sqlite,
    /// PostgreSQL (several nodes).
    Postgres,
}

impl Dialect {
    /// Shared text in this database's spelling.
    fn spell(self, shared: &str) -> String {
        match self {
            Dialect::Sqlite => shared.to_owned(),
            Dialect::Postgres => shared.replace("BLOB", "BYTEA"),
        }
    }

    /// The text this database has its own file for.
    fn pick(self, sqlite: &str, postgres: &str) -> String {
        match self {
            Dialect::Sqlite => sqlite.to_owned(),
            Dialect::Postgres => postgres.to_owned(),
        }
    }
}

macro_rules! migration_file {
    ($name:literal) => {
        include_str!(concat!("../../migrations/", $name))
    };
}

/// Every step of `dialect` in order: version, description (as sqlx derived it from the
/// file names of the release that introduced it) and text.
fn steps(dialect: Dialect) -> Vec<(i64, &'static str, String)> {
    let initial = [
        dialect.pick(
            migration_file!("0001_initial.head.sqlite.sql"),
            migration_file!("0001_initial.head.postgres.sql"),
        ),
        dialect.spell(migration_file!("0001_initial.sql")),
        dialect.pick(
            migration_file!("0001_initial.triggers.sqlite.sql"),
            migration_file!("0001_initial.triggers.postgres.sql"),
        ),
    ]
    .concat();
    let mut steps = vec![
        (1, "initial", initial),
        (
            4,
            "recovery ",
            dialect.spell(migration_file!("0004_recovery.sql")),
        ),
        (
            10,
            "vault",
            dialect.spell(migration_file!("0010_vault.sql")),
        ),
        (
            100,
            "trust log",
            dialect.pick(
                migration_file!("0100_trust_log.sqlite.sql"),
                migration_file!("0100_trust_log.postgres.sql"),
            ),
        ),
    ];
    if dialect == Dialect::Postgres {
        let functions = migration_file!("0200_hot_path_functions.postgres.sql");
        steps.push((200, "hot path functions", functions.to_owned()));
    }
    steps.push((
        300,
        "discovery usage",
        dialect.pick(
            migration_file!("0300_discovery_usage.sqlite.sql"),
            migration_file!("0300_discovery_usage.postgres.sql"),
        ),
    ));
    steps
}

/// The migrator of `dialect` (sqlx's own, with its advisory lock on PostgreSQL).
pub(crate) async fn migrator(dialect: Dialect) -> Result<Migrator, MigrateError> {
    Migrator::new(Steps(dialect)).await
}

/// [`steps`] as sqlx reads migrations.
#[derive(Debug)]
struct Steps(Dialect);

impl<'s> MigrationSource<'s> for Steps {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 's>> {
        let migrations = steps(self.0)
            .into_iter()
            .map(|(version, description, sql)| {
                let no_tx = false;
                Migration::new(
                    version,
                    description.into(),
                    MigrationType::Simple,
                    sql.into(),
                    no_tx,
                )
            })
            .collect();
        Box::pin(std::future::ready(Ok(migrations)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SHA-384 of every step as the releases before the shared schema applied it (from
    /// `migrations/` and `migrations-postgres/`). A failure here means a database made by an
    /// earlier release would refuse to open.
    const APPLIED: &[(Dialect, i64, &str)] = &[
        (Dialect::Sqlite, 1, "f3935e719dc4d0e313f3647fb13b1cd4b8d2cde0f8a1a08c5f9809f9410948bb9ccfa78eee1aa5c216d1a6eb58fb36a7"),
        (Dialect::Sqlite, 4, "971105c838382bcf6dcc083affcd635e5d85d3ffca665b48380c67444979f0ae0f84858cdb3887c3b40e662d59b5bfb8"),
        (Dialect::Sqlite, 10, "2a98561ff32f57ec62c6fbe800191d940e84d464fb686f84803ee06a13ab8d2bf6fba8f78aac60bc8f72a7b988dc916e"),
        (Dialect::Sqlite, 100, "4eb3e6ee43323f8ce64400cafcbb5f63cf77a683d4551df7f7d289f02fd16eea72f67f2117ec36ce7fbc59edf12dc8c9"),
        (Dialect::Sqlite, 300, "4e27ceb9599c36f8780a706b7e94bf8b3afaa29374b57ca676973f8b5a8bece577f35b71903e236f10a45e22689f8e3b"),
        (Dialect::Postgres, 1, "f36517fb376fe32c256623692f54fa4731bfc0ad62184ad89f73d7e2b80eea46ef416e40e6b486c9187a1b88c9cb94e9"),
        (Dialect::Postgres, 4, "3c0198d4565a64e7c227a6e4a1e408c4d58a25be7ba8b729a5360573268c089680cac001fa479cf9beb842124db85373"),
        (Dialect::Postgres, 10, "1a220262cc6fb8aa4d3c3d7de382d20601d04900238d8bf39e24f70b924ca656aeb832cd1bdc354c1fa30b90ea7c74fa"),
        (Dialect::Postgres, 100, "4ba1995b6820e9d942855c50fc36814e50604b472e2305c75defffe47d25ec20006313b233a2cbd55f17cb61560e21ba"),
        (Dialect::Postgres, 200, "d897cc35512446ad76746b0b583cd83c660d789d078fb561a534751496dd6b1860a055ba461b80338ee49d76fb022ab1"),
        (Dialect::Postgres, 300, "ec9f2f8430f0c63baf0030dbefe4987de1f4a637d17369faac67e1cb50c1faebfda535dc4a7af81e9bf2b1a34fac8f63"),
    ];

    #[tokio::test]
    async fn applied_steps_keep_their_checksums() {
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            let migrator = migrator(dialect).await.expect("migrations resolve");
            let pinned: Vec<(i64, &str)> = APPLIED
                .iter()
                .filter(|(d, _, _)| *d == dialect)
                .map(|(_, version, sum)| (*version, *sum))
                .collect();
            let assembled: Vec<(i64, String)> = migrator
                .iter()
                .map(|m| (m.version, hex::encode(&m.checksum)))
                .collect();
            // Every applied step keeps its text; a new step is appended after them.
            for (version, sum) in &pinned {
                let found = assembled.iter().find(|(v, _)| v == version);
                assert_eq!(
                    found.map(|(_, s)| s.as_str()),
                    Some(*sum),
                    "{dialect:?} step {version} changed or went missing"
                );
            }
        }
    }

    #[test]
    fn postgres_spells_blob_as_bytea_and_sqlite_never_says_bytea() {
        for (_, _, sql) in steps(Dialect::Postgres) {
            assert!(!sql.contains(" BLOB"), "{sql}");
        }
        for (_, _, sql) in steps(Dialect::Sqlite) {
            assert!(!sql.contains("BYTEA NOT"), "{sql}");
        }
    }
}
