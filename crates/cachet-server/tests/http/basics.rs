//! Health, routing errors, configuration and graceful shutdown.

use std::time::Duration;

use cachet_proto::v1::{Ack, EnvelopeList};
use cachet_server::{NotifierKind, ServerConfig};
use reqwest::Method;

use crate::common::*;

/// `/healthz` checks the database and says whether the key hierarchy is sealed, as JSON.
#[tokio::test]
async fn healthz_checks_the_database() {
    let s = TestServer::start().await;
    let r = s.raw(Method::GET, "/healthz", &[], Vec::new()).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type, "application/json");
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(v["status"], "ok", "{v}");
    assert_eq!(v["database"], "ok", "{v}");
    assert_eq!(v["sealed"], false, "{v}");
    assert_eq!(v["initialised"], false, "{v}");
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let s = TestServer::start().await;
    for (method, path, status, reason) in [
        (Method::GET, "/nope", 404, "unknown_route"),
        (
            Method::POST,
            "/api/v1/messages/unknown",
            404,
            "unknown_route",
        ),
        (
            Method::GET,
            "/api/v1/messages/send",
            405,
            "method_not_allowed",
        ),
        (
            Method::DELETE,
            "/api/v1/register/start",
            405,
            "method_not_allowed",
        ),
    ] {
        s.raw(method, path, &[], Vec::new())
            .await
            .assert_error(status, reason);
    }
}

#[test]
fn configuration_layers_flags_over_environment_over_file_over_defaults() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("cachet.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:9999\"\nlong_poll_max_seconds = 7\nweb_retention_seconds = 60\n\
         notifier = \"dev\"\nmax_body_bytes = 65536\n",
    )
    .expect("write");
    let flags = ServerConfig {
        config_file: Some(file.clone()),
        long_poll_max_seconds: Some(3),
        ..ServerConfig::for_data_dir(dir.path())
    };
    let s = flags.resolve().expect("resolves");
    assert_eq!(s.listen.port(), 9999, "from the file");
    assert_eq!(s.long_poll_max, Duration::from_secs(3), "flag wins");
    assert_eq!(s.web_retention, Duration::from_secs(60));
    assert_eq!(s.max_body_bytes, 65536);
    assert_eq!(s.receive_max_envelopes, 500, "default");
    assert_eq!(s.notifier.kind, NotifierKind::Dev);

    // Unknown keys in the file are refused rather than silently ignored.
    assert!(ServerConfig::from_toml("listn = \"x\"").is_err());
    // The smtp notifier needs its relay.
    let smtp = ServerConfig {
        notifier: Some(NotifierKind::Smtp),
        ..ServerConfig::for_data_dir(dir.path())
    };
    assert!(smtp.resolve().is_err());
    // TLS needs both halves.
    let half = ServerConfig {
        tls_cert: Some(file),
        ..ServerConfig::for_data_dir(dir.path())
    };
    assert!(half.resolve().is_err());
}

/// Runs in a child process with `CACHET_*` variables set (the parent's environment is
/// never modified: other tests run concurrently).
#[test]
fn environment_child() {
    if std::env::var_os("CACHET_TEST_ENV_CHILD").is_none() {
        return;
    }
    let c = ServerConfig::from_env().expect("env");
    assert_eq!(c.receive_max_envelopes, Some(42));
    assert_eq!(c.notifier, Some(NotifierKind::Smtp));
    assert_eq!(c.listen, Some("127.0.0.1:7001".parse().expect("addr")));
    let s = c.resolve().expect("resolves");
    assert_eq!(s.receive_max_envelopes, 42);
    assert_eq!(
        s.notifier.smtp_url.as_deref(),
        Some("smtp://127.0.0.1:2525")
    );
}

#[test]
fn configuration_reads_cachet_environment_variables() {
    let status = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["basics::environment_child", "--exact", "--test-threads=1"])
        .env("CACHET_TEST_ENV_CHILD", "1")
        .env("CACHET_RECEIVE_MAX_ENVELOPES", "42")
        .env("CACHET_NOTIFIER", "smtp")
        .env("CACHET_LISTEN", "127.0.0.1:7001")
        .env("CACHET_SMTP_URL", "smtp://127.0.0.1:2525")
        .env("CACHET_SMTP_FROM", "cachet <no-reply@example.org>")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("child runs");
    assert!(status.success(), "settings from the environment");
}

/// A wake-up signal that reports each subscription, so the test knows when a long poll
/// is parked inside the server.
struct Observed {
    inner: cachet_server::wake::LocalSignal,
    subscribed: tokio::sync::mpsc::UnboundedSender<String>,
}

#[async_trait::async_trait]
impl cachet_server::wake::MailboxSignal for Observed {
    async fn subscribe(&self, user_id: &str) -> cachet_server::wake::Wakeup {
        let w = self.inner.subscribe(user_id).await;
        let _ = self.subscribed.send(user_id.to_owned());
        w
    }
    async fn notify(&self, user_ids: &[String]) {
        self.inner.notify(user_ids).await;
    }
}

#[tokio::test]
async fn graceful_shutdown_answers_the_request_in_flight() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = ServerConfig::for_data_dir(dir.path());
    config.listen = Some("127.0.0.1:0".parse().expect("addr"));
    let settings = config.resolve().expect("settings");
    let mut components = cachet_server::Components::local(&settings)
        .await
        .expect("components");
    let (tx, mut subscribed) = tokio::sync::mpsc::unbounded_channel();
    components.signal = std::sync::Arc::new(Observed {
        inner: cachet_server::wake::LocalSignal::new(),
        subscribed: tx,
    });
    let server = cachet_server::spawn_with(settings, components)
        .await
        .expect("server");
    let mut s = TestServer {
        client: Client::new(server.base_url()),
        server: Some(server),
        dir,
    };
    let alice = s.register("Alice").await;
    let client = s.client.clone();
    let who = alice.clone();
    let poll = tokio::spawn(async move {
        client
            .post(
                &who,
                "/api/v1/messages/receive",
                &Ack {
                    delivery_ids: vec![],
                    wait_seconds: 25,
                    limit: 0,
                },
            )
            .await
    });
    assert_eq!(
        subscribed.recv().await.as_deref(),
        Some(alice.user_id.as_str())
    );
    let base = s.base.clone();
    s.stop().await;
    let r = poll.await.expect("task");
    assert_eq!(r.status, 200, "the in-flight long poll got its answer");
    assert!(r.decode::<EnvelopeList>().envelopes.is_empty());
    // And the listener is closed.
    assert!(reqwest::get(format!("{base}/healthz")).await.is_err());
}
