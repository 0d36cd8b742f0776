//! The notifiers against sinks on loopback: an HTTP server standing in for an SMS
//! gateway, and a minimal SMTP server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::http::StatusCode;
use cachet_http::notify::{CodeMessage, NotifierKind, NotifierSettings, Purpose};
use cachet_http::{Error, Secret};

// The one copy of the test support, shared with the servers' tests (feature `testing`).
#[allow(dead_code)]
#[path = "../src/testing.rs"]
mod testing;

use testing::{spawn_smtp_sink, webhook_sink};

fn webhook(url: &str, token: Option<&str>) -> NotifierSettings {
    NotifierSettings {
        kind: NotifierKind::Webhook,
        webhook_url: Some(url.to_owned()),
        webhook_token: token.map(|t| t.parse::<Secret>().unwrap()),
        ..NotifierSettings::default()
    }
}

#[tokio::test]
async fn the_webhook_posts_the_code_with_the_bearer_token() {
    let (url, received) = webhook_sink("/send", StatusCode::NO_CONTENT).await;
    let notifier = webhook(&url, Some("gateway-token")).build().unwrap();
    notifier
        .send_code(CodeMessage {
            to: "+33612345678",
            code: "123456",
            purpose: Purpose::KeyServerRecovery,
            expires_at_ms: 1_700_000_000_000,
        })
        .await
        .unwrap();
    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    let (auth, body) = &got[0];
    assert_eq!(auth.as_deref(), Some("Bearer gateway-token"));
    assert_eq!(body["to"], "+33612345678");
    assert_eq!(body["code"], "123456");
    assert_eq!(body["purpose"], "key_server_recovery");
    assert_eq!(body["expires_at"], 1_700_000_000_000_i64);
    assert!(body["text"].as_str().unwrap().contains("123456"));
}

#[tokio::test]
async fn a_failing_webhook_fails_the_delivery() {
    let (url, _) = webhook_sink("/send", StatusCode::INTERNAL_SERVER_ERROR).await;
    let notifier = webhook(&url, None).build().unwrap();
    let err = notifier
        .send_code(CodeMessage {
            to: "+33612345678",
            code: "123456",
            purpose: Purpose::Registration,
            expires_at_ms: 0,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::CodeDeliveryFailed(_)), "{err:?}");
}

#[test]
fn notifiers_without_their_settings_are_refused() {
    for settings in [
        NotifierSettings {
            kind: NotifierKind::Webhook,
            ..NotifierSettings::default()
        },
        webhook("ftp://gateway.example/send", None),
        NotifierSettings {
            kind: NotifierKind::Smtp,
            smtp_url: Some("smtp://127.0.0.1:25".into()),
            ..NotifierSettings::default()
        },
    ] {
        assert!(
            matches!(settings.check(), Err(Error::Config(_))),
            "{settings:?}"
        );
    }
    // The token never prints.
    let settings = webhook("https://gateway.example/send", Some("very-secret"));
    assert!(!format!("{settings:?}").contains("very-secret"));
}

#[tokio::test]
async fn smtp_sends_the_code_by_e_mail() {
    let (port, mail) = spawn_smtp_sink().await;
    let notifier = NotifierSettings {
        kind: NotifierKind::Smtp,
        smtp_url: Some(format!("smtp://127.0.0.1:{port}")),
        smtp_from: Some("cachet <no-reply@example.org>".into()),
        ..NotifierSettings::default()
    }
    .build()
    .unwrap();
    notifier
        .send_code(CodeMessage {
            to: "doctor@clinic.example",
            code: "654321",
            purpose: Purpose::Recovery,
            expires_at_ms: 0,
        })
        .await
        .unwrap();
    let data = mail.await.unwrap();
    assert!(data.contains("doctor@clinic.example"), "{data}");
    assert!(
        data.contains("recovery code from the data server is 654321"),
        "{data}"
    );
}
