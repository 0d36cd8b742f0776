//! A key server as deployed: TLS 1.3, codes by webhook or e-mail, a TOML file under
//! environment variables and flags, and JSON error bodies on every refusal.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::http::StatusCode;
use cachet_http::notify::NotifierKind;
use cachet_http::testing::{assert_refusals, post_json, spawn_smtp_sink, webhook_sink};
use cachet_keyserver::{spawn, KeyServerConfig};
use serde_json::json;

const PHONE: &str = "+33612345678";

fn config(dir: &tempfile::TempDir) -> KeyServerConfig {
    KeyServerConfig::for_data_dir(dir.path())
}

#[tokio::test]
async fn refusals_carry_the_json_error_body() {
    let dir = tempfile::tempdir().unwrap();
    let ks = spawn(KeyServerConfig {
        max_header_bytes: Some(4096),
        ..config(&dir)
    })
    .await
    .unwrap();
    let big = "b".repeat(8000);
    let big_head = format!("GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\n\r\n");
    assert_refusals(
        ks.addr,
        &[
            // A route that exists, with the wrong method.
            (
                b"GET /api/v1/recovery/start HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
                405,
                "method_not_allowed",
            ),
            // No such route.
            (
                b"GET /nowhere HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
                404,
                "unknown_route",
            ),
            // Headers too large.
            (big_head.as_bytes(), 431, "headers_too_large"),
            // A control byte in a header.
            (
                b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-note: a\x07b\r\n\r\n",
                400,
                "invalid_header",
            ),
        ],
    )
    .await;
    ks.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_key_server_serves_tls_1_3() {
    let dir = tempfile::tempdir().unwrap();
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert_pem = generated.cert.pem();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    let ks = spawn(KeyServerConfig {
        tls_cert: Some(cert),
        tls_key: Some(key),
        ..config(&dir)
    })
    .await
    .unwrap();
    assert!(ks.url().starts_with("https://"), "{}", ks.url());

    let http = reqwest::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .min_tls_version(reqwest::tls::Version::TLS_1_3)
        .build()
        .unwrap();
    let (status, body) = post_json(
        &http,
        format!("{}/api/v1/recovery/start", ks.url()),
        json!({ "identifier": PHONE }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["challenge_id"].as_str().unwrap().starts_with("c_"));
    // The code went out through the development notifier.
    let codes = std::fs::read_to_string(ks.dev_codes_path()).unwrap();
    assert!(codes.starts_with(PHONE), "{codes}");

    // Plain HTTP on the TLS port gets no answer.
    let plain = reqwest::Client::new()
        .get(format!("http://{}/healthz", ks.addr))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    ks.shutdown().await.unwrap();
}

#[tokio::test]
async fn codes_go_to_the_webhook_with_its_token() {
    let (sink_url, received) = webhook_sink("/sms", StatusCode::OK).await;

    let dir = tempfile::tempdir().unwrap();
    let ks = spawn(KeyServerConfig {
        notifier: Some(NotifierKind::Webhook),
        webhook_url: Some(sink_url),
        webhook_token: Some("sms-gateway-token".parse().unwrap()),
        ..config(&dir)
    })
    .await
    .unwrap();
    let (status, body) = post_json(
        &reqwest::Client::new(),
        format!("{}/api/v1/recovery/start", ks.url()),
        json!({ "identifier": "+33 6 12 34 56 78" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    let (auth, body) = &got[0];
    assert_eq!(auth.as_deref(), Some("Bearer sms-gateway-token"));
    assert_eq!(body["to"], PHONE);
    assert_eq!(body["purpose"], "key_server_recovery");
    assert_eq!(body["code"].as_str().unwrap().len(), 6);
    // No development file when another notifier is configured.
    assert!(!ks.dev_codes_path().exists());
    ks.shutdown().await.unwrap();
}

#[tokio::test]
async fn codes_go_out_by_e_mail_and_phone_numbers_are_refused() {
    let (port, mail) = spawn_smtp_sink().await;
    let dir = tempfile::tempdir().unwrap();
    let ks = spawn(KeyServerConfig {
        notifier: Some(NotifierKind::Smtp),
        smtp_url: Some(format!("smtp://127.0.0.1:{port}")),
        smtp_from: Some("cachet key server <no-reply@example.org>".into()),
        ..config(&dir)
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/recovery/start", ks.url());
    let (status, body) = post_json(
        &http,
        url.clone(),
        json!({ "identifier": "Nurse@Clinic.example" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let data = mail.await.unwrap();
    assert!(data.contains("nurse@clinic.example"), "{data}");
    assert!(
        data.contains("recovery code from the key server is "),
        "{data}"
    );

    let (status, body) = post_json(&http, url, json!({ "identifier": PHONE })).await;
    assert_eq!(status, 400);
    assert_eq!(body["reason"], "identifier_not_deliverable", "{body}");
    ks.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_config_file_sits_under_environment_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keyserver.toml");
    std::fs::write(
        &file,
        format!(
            r#"
listen = "127.0.0.1:0"
data_dir = "{}"
log_json = true
notifier = "webhook"
webhook_url = "https://sms.example.org/send"
webhook_token = "from-the-file"
free_attempts = 2
max_connections = 64
header_timeout_seconds = 5
"#,
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let flags = KeyServerConfig {
        config_file: Some(file.clone()),
        free_attempts: Some(4),
        ..KeyServerConfig::default()
    };
    let merged = flags.merged().unwrap();
    assert!(merged.log_json());
    assert_eq!(merged.notifier, Some(NotifierKind::Webhook));
    // The flag wins over the file.
    assert_eq!(merged.limits().unwrap().free_attempts, 4);
    let serve = merged.serve_options().unwrap();
    assert_eq!(serve.max_connections, 64);
    assert_eq!(serve.header_timeout, Duration::from_secs(5));
    assert_eq!(
        merged.notifier_settings().webhook_token.unwrap().expose(),
        "from-the-file"
    );
    // Secrets never print.
    assert!(!format!("{merged:?}").contains("from-the-file"));

    // Unknown keys and half a TLS setting are refused.
    assert!(KeyServerConfig::from_toml("listen_on = \"x\"").is_err());
    let half = KeyServerConfig {
        tls_cert: Some(dir.path().join("cert.pem")),
        ..config(&dir)
    };
    assert!(spawn(half).await.is_err());
    // So is a webhook notifier without a URL.
    let no_url = KeyServerConfig {
        notifier: Some(NotifierKind::Webhook),
        ..config(&dir)
    };
    assert!(spawn(no_url).await.is_err());
}

/// Runs in a child process with `CACHET_KEYSERVER_*` variables set (the parent's
/// environment is never modified: other tests run concurrently).
#[test]
fn environment_child() {
    if std::env::var_os("CACHET_KEYSERVER_TEST_ENV_CHILD").is_none() {
        return;
    }
    let c = KeyServerConfig::from_env().unwrap();
    assert_eq!(c.listen, Some("127.0.0.1:7002".parse().unwrap()));
    assert_eq!(c.notifier, Some(NotifierKind::Smtp));
    assert_eq!(c.smtp_url.as_deref(), Some("smtp://127.0.0.1:2525"));
    assert_eq!(c.log_json, Some(true));
    assert_eq!(c.max_connections, Some(99));
    assert_eq!(
        c.webhook_token.as_ref().map(|t| t.expose()),
        Some("env-token")
    );
}

#[test]
fn configuration_reads_cachet_keyserver_environment_variables() {
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["environment_child", "--exact", "--test-threads=1"])
        .env("CACHET_KEYSERVER_TEST_ENV_CHILD", "1")
        .env("CACHET_KEYSERVER_LISTEN", "127.0.0.1:7002")
        .env("CACHET_KEYSERVER_NOTIFIER", "smtp")
        .env("CACHET_KEYSERVER_SMTP_URL", "smtp://127.0.0.1:2525")
        .env("CACHET_KEYSERVER_LOG_JSON", "true")
        .env("CACHET_KEYSERVER_MAX_CONNECTIONS", "99")
        .env("CACHET_KEYSERVER_WEBHOOK_TOKEN", "env-token")
        .status()
        .unwrap();
    assert!(status.success());
}
