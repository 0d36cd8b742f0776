//! What both servers answer at `/healthz`, and how both wait for a database that is not up
//! yet when they start.

use std::future::Future;
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The first pause after a failed connection at startup; it doubles up to
/// [`MAX_STARTUP_BACKOFF`].
pub const FIRST_STARTUP_BACKOFF: Duration = Duration::from_millis(500);
/// The longest pause between two connection attempts at startup.
pub const MAX_STARTUP_BACKOFF: Duration = Duration::from_secs(30);

/// The `/healthz` answer: `200` with `{"status":"ok","database":"ok",…}` when the database
/// answered (`database` is `Ok`), else `503` with reason `database_unavailable`. The vault's
/// state is reported either way: a sealed server is up but refuses data routes.
pub fn health_answer(database: Result<(), String>, initialised: bool, sealed: bool) -> Response {
    let up = database.is_ok();
    let mut body = serde_json::json!({
        "status": if up { "ok" } else { "unavailable" },
        "database": if up { "ok" } else { "unavailable" },
        "initialised": initialised,
        "sealed": sealed,
    });
    let status = match database {
        Ok(()) => StatusCode::OK,
        Err(why) => {
            tracing::warn!(error = %why, "health check: the database does not answer");
            body["reason"] = "database_unavailable".into();
            body["message"] = "the database is unavailable".into();
            StatusCode::SERVICE_UNAVAILABLE
        }
    };
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Runs `ping` within `timeout` and turns a timeout into an error text, for
/// [`health_answer`].
pub async fn ping_within<E: std::fmt::Display>(
    timeout: Duration,
    ping: impl Future<Output = Result<(), E>>,
) -> Result<(), String> {
    match tokio::time::timeout(timeout, ping).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    }
}

/// Calls `connect` until it succeeds or fails for a reason other than the database being
/// unreachable (`unavailable` says which errors those are): a server started before its
/// database waits for it, saying so in its log with the attempt and the next pause, instead
/// of exiting. Pauses double from [`FIRST_STARTUP_BACKOFF`] to [`MAX_STARTUP_BACKOFF`].
pub async fn wait_for_database<T, E, F, Fut>(
    mut connect: F,
    unavailable: impl Fn(&E) -> bool,
) -> Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut pause = FIRST_STARTUP_BACKOFF;
    let mut attempt = 1u32;
    loop {
        match connect().await {
            Err(e) if unavailable(&e) => {
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
            Ok(connected) => {
                if attempt > 1 {
                    tracing::info!(attempt, "database reachable; starting");
                }
                return Ok(connected);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn waits_through_unavailable_errors_and_stops_at_others() {
        let calls = AtomicU32::new(0);
        let connected: Result<u32, String> = wait_for_database(
            || async {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                if n < 3 {
                    Err("down".to_owned())
                } else {
                    Ok(n)
                }
            },
            |e: &String| e == "down",
        )
        .await;
        assert_eq!(connected, Ok(3));

        let refused: Result<(), String> =
            wait_for_database(|| async { Err("bad password".to_owned()) }, |e| e == "down").await;
        assert_eq!(refused, Err("bad password".to_owned()));
    }

    #[tokio::test]
    async fn an_unanswered_database_is_503_with_a_reason() {
        let down = health_answer(Err("refused".into()), true, false);
        assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(down.into_body(), 4096).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["reason"], "database_unavailable");
        assert_eq!(body["initialised"], true);
        let up = health_answer(Ok(()), false, false);
        assert_eq!(up.status(), StatusCode::OK);
    }
}
