//! The notifiers against sinks on loopback: an HTTP server standing in for an SMS
//! gateway, and a minimal SMTP server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use cachet_http::notify::{NotifierKind, NotifierSettings, Purpose};
use cachet_http::{Error, Secret};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// What the HTTP sink received: (authorization header, JSON body).
type Received = Arc<Mutex<Vec<(Option<String>, Value)>>>;

/// An HTTP sink answering `status`; returns its URL and what it receives.
async fn http_sink(status: StatusCode) -> (String, Received) {
    let received: Received = Arc::default();
    let app =
        Router::new()
            .route(
                "/send",
                post(
                    move |State(r): State<Received>,
                          headers: HeaderMap,
                          Json(body): Json<Value>| async move {
                        let auth = headers
                            .get("authorization")
                            .map(|v| v.to_str().unwrap().to_owned());
                        r.lock().unwrap().push((auth, body));
                        status
                    },
                ),
            )
            .with_state(received.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/send", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

/// Accepts one SMTP session on `listener` and returns the message data it received.
pub async fn smtp_sink(listener: TcpListener) -> String {
    let (stream, _) = listener.accept().await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"220 sink ESMTP\r\n").await.unwrap();
    let mut data = String::new();
    let mut in_data = false;
    while let Some(line) = lines.next_line().await.unwrap() {
        if in_data {
            if line == "." {
                in_data = false;
                write.write_all(b"250 accepted\r\n").await.unwrap();
            } else {
                data.push_str(&line);
                data.push('\n');
            }
            continue;
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250 sink\r\n",
            "DATA" => {
                in_data = true;
                b"354 end with .\r\n"
            }
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await.unwrap();
                break;
            }
            _ => b"250 ok\r\n",
        };
        write.write_all(reply).await.unwrap();
    }
    data
}

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
    let (url, received) = http_sink(StatusCode::NO_CONTENT).await;
    let notifier = webhook(&url, Some("gateway-token")).build().unwrap();
    notifier
        .send_code(
            "+33612345678",
            "123456",
            Purpose::KeyServerRecovery,
            1_700_000_000_000,
        )
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
    let (url, _) = http_sink(StatusCode::INTERNAL_SERVER_ERROR).await;
    let notifier = webhook(&url, None).build().unwrap();
    let err = notifier
        .send_code("+33612345678", "123456", Purpose::Registration, 0)
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
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mail = tokio::spawn(smtp_sink(listener));
    let notifier = NotifierSettings {
        kind: NotifierKind::Smtp,
        smtp_url: Some(format!("smtp://127.0.0.1:{port}")),
        smtp_from: Some("cachet <no-reply@example.org>".into()),
        ..NotifierSettings::default()
    }
    .build()
    .unwrap();
    notifier
        .send_code("doctor@clinic.example", "654321", Purpose::Recovery, 0)
        .await
        .unwrap();
    let data = mail.await.unwrap();
    assert!(data.contains("doctor@clinic.example"), "{data}");
    assert!(
        data.contains("recovery code from the data server is 654321"),
        "{data}"
    );
}
