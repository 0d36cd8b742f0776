//! A fresh PostgreSQL database per test, on the server `CACHET_TEST_POSTGRES_URL` names
//! (default `postgres://postgres@127.0.0.1:5432/postgres`, used only to create and drop
//! `cachet_test_<random>`). When PostgreSQL cannot be reached the test is skipped with a
//! notice, except when `CI` is set: then it fails.
#![allow(clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection, Executor};

/// The administration database used when `CACHET_TEST_POSTGRES_URL` is not set.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Says that a suite is skipped, once per service and test binary, where a reader of the
/// test output cannot miss it: written to the process's stderr directly, because the test
/// harness captures `eprintln!` of passing tests and would hide it.
pub fn announce_skip(service: &'static str, banner: &str) {
    use std::io::Write;
    static SHOWN: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut shown = SHOWN.lock().unwrap_or_else(|e| e.into_inner());
    if shown.contains(&service) {
        return;
    }
    shown.push(service);
    let _ = writeln!(std::io::stderr().lock(), "\n*** SKIPPED: {banner} ***\n");
}

/// A fresh database on the test server.
#[derive(Debug, Clone)]
pub struct TestDb {
    admin: PgConnectOptions,
    admin_url: String,
    name: String,
}

impl TestDb {
    /// Creates the database, or returns `None` (after a notice naming `suite`) when
    /// PostgreSQL is not there and `CI` is not set.
    pub async fn create(suite: &str) -> Option<TestDb> {
        let admin_url =
            std::env::var("CACHET_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
        let admin = PgConnectOptions::from_str(&admin_url)
            .expect("CACHET_TEST_POSTGRES_URL is a valid PostgreSQL URL")
            .disable_statement_logging();
        let conn = tokio::time::timeout(Duration::from_secs(10), admin.connect()).await;
        let mut conn = match conn {
            Ok(Ok(conn)) => conn,
            failure => {
                // Never print a password.
                let shown = reqwest::Url::parse(&admin_url)
                    .map(|mut u| {
                        let _ = u.set_password(None);
                        u.to_string()
                    })
                    .unwrap_or_else(|_| "CACHET_TEST_POSTGRES_URL".to_owned());
                let why = match failure {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".to_owned(),
                };
                if std::env::var_os("CI").is_some() {
                    panic!(
                        "PostgreSQL is required in CI but cannot be reached at {shown} \
                         ({why}); start it or set CACHET_TEST_POSTGRES_URL"
                    );
                }
                announce_skip(
                    "PostgreSQL",
                    &format!(
                        "PostgreSQL tests ({suite}) — cannot reach {shown} ({why}); start it \
                         or set CACHET_TEST_POSTGRES_URL (with CI set this fails instead)"
                    ),
                );
                return None;
            }
        };
        let name = format!(
            "cachet_test_{}",
            hex::encode(cachet_crypto::random_bytes::<8>())
        );
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create test database");
        conn.close().await.ok();
        Some(TestDb {
            admin,
            admin_url,
            name,
        })
    }

    /// Connection options of the test database.
    pub fn options(&self) -> PgConnectOptions {
        self.admin.clone().database(&self.name)
    }

    /// The URL of the test database, for a server's `database_url`.
    pub fn url(&self) -> String {
        let mut url = reqwest::Url::parse(&self.admin_url).expect("a PostgreSQL URL");
        url.set_path(&self.name);
        url.to_string()
    }

    /// Drops the database (closing its connections).
    pub async fn drop_database(&self) {
        let mut conn: PgConnection = self.admin.connect().await.expect("admin connection");
        conn.execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str())
            .await
            .expect("drop test database");
        conn.close().await.ok();
    }
}

/// Runs `body` on a fresh database and drops the database afterwards, even if `body`
/// panics (the panic is then passed on). Skipped as [`TestDb::create`] says.
pub async fn with_database<F, Fut>(suite: &str, body: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(db) = TestDb::create(suite).await else {
        return;
    };
    let outcome = tokio::spawn(body(db.clone())).await;
    db.drop_database().await;
    if let Err(e) = outcome {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("test task failed: {e}"),
        }
    }
}

/// A TCP relay on a loopback port in front of a test database, to play a PostgreSQL outage:
/// the test can cut it (every relayed connection dropped, the port closed) and restore it
/// on the same port. Both servers' outage tests use it.
#[derive(Debug)]
pub struct DatabaseRelay {
    port: u16,
    upstream: String,
    url: String,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl DatabaseRelay {
    /// A relay to `db`; nothing listens on its port until [`DatabaseRelay::restore`].
    pub fn new(db: &TestDb) -> DatabaseRelay {
        let mut url = reqwest::Url::parse(&db.url()).expect("a PostgreSQL URL");
        let host = url.host_str().unwrap_or("127.0.0.1").to_owned();
        let upstream = format!("{host}:{}", url.port().unwrap_or(5432));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        url.set_host(Some("127.0.0.1")).expect("host");
        url.set_port(Some(port)).expect("port");
        DatabaseRelay {
            port,
            upstream,
            url: url.to_string(),
            task: None,
        }
    }

    /// The test database's URL through the relay, for a server's `database_url`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Listens on the relay's port (again) and relays every connection to the database.
    pub async fn restore(&mut self) {
        // The port of an earlier listener may take a moment to be free again.
        let mut listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await;
        for _ in 0..50 {
            if listener.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await;
        }
        let listener = listener.expect("relay port free again");
        let upstream = self.upstream.clone();
        self.task = Some(tokio::spawn(async move {
            // Dropped with the task: every relayed connection ends with it.
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                let upstream = upstream.clone();
                connections.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }

    /// Closes the port and drops every relayed connection.
    pub async fn cut(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for DatabaseRelay {
    /// A relay left running would outlive its test's database.
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Checks that each of `needed` is among the file `names` of a data directory, naming the
/// one missing (both servers' tests of what their data directory holds).
pub fn assert_files_present(names: &[String], needed: &[&str]) {
    for needed in needed {
        assert!(
            names.iter().any(|n| n == needed),
            "{needed} missing: {names:?}"
        );
    }
}
