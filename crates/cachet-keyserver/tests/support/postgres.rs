//! A fresh PostgreSQL database per test, on the server `CACHET_TEST_POSTGRES_URL` names
//! (default `postgres://postgres@127.0.0.1:5432/postgres`, used only to create and drop
//! `cachet_ks_test_<random>`). When PostgreSQL cannot be reached the test is skipped with
//! a notice, except when `CI` is set: then it fails.

use std::future::Future;

/// Says that the suite is skipped, once per test binary, where a reader of the test output
/// cannot miss it: written to the process's stderr directly, because the test harness
/// captures `eprintln!` of passing tests and would hide it.
fn announce_skip(banner: &str) {
    use std::io::Write;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = writeln!(std::io::stderr().lock(), "\n*** SKIPPED: {banner} ***\n");
    });
}

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Runs `body` with the URL of a fresh database, then drops the database, even if `body`
/// panics (the panic is then passed on).
pub async fn with_database<F, Fut>(body: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    use sqlx::{Connection, Executor};
    let admin_url =
        std::env::var("CACHET_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    let connect = || sqlx::PgConnection::connect(&admin_url);
    let mut admin = match tokio::time::timeout(std::time::Duration::from_secs(10), connect()).await
    {
        Ok(Ok(conn)) => conn,
        failure => {
            let why = match failure {
                Ok(Err(e)) => e.to_string(),
                _ => "timed out".to_owned(),
            };
            if std::env::var_os("CI").is_some() {
                panic!("PostgreSQL is required in CI but cannot be reached ({why}); start it or set CACHET_TEST_POSTGRES_URL");
            }
            announce_skip(&format!(
                "PostgreSQL tests of the key server ({}) — cannot reach the server ({why}); \
                 start it or set CACHET_TEST_POSTGRES_URL (with CI set this fails instead)",
                env!("CARGO_CRATE_NAME")
            ));
            return;
        }
    };
    let name = format!(
        "cachet_ks_test_{}",
        hex::encode(cachet_crypto::random_bytes::<8>())
    );
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("create the test database");
    let mut url = reqwest::Url::parse(&admin_url).expect("a PostgreSQL URL");
    url.set_path(&name);
    let outcome = tokio::spawn(body(url.to_string())).await;
    let mut admin = connect().await.expect("admin connection");
    admin
        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await
        .expect("drop the test database");
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
