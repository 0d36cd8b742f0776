//! The webhook notifier: codes POSTed as JSON to an HTTP sink on loopback (standing in
//! for an SMS gateway).

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use cachet_proto::v1::RegisterStart;
use cachet_server::NotifierKind;
use tokio::net::TcpListener;

use crate::common::*;

type Received = Arc<Mutex<Vec<(Option<String>, serde_json::Value)>>>;

#[tokio::test]
async fn codes_go_to_the_webhook_with_its_token() {
    let received: Received = Arc::default();
    let sink = Router::new()
        .route(
            "/sms",
            post(
                |State(r): State<Received>,
                 headers: HeaderMap,
                 Json(body): Json<serde_json::Value>| async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    r.lock().expect("lock").push((auth, body));
                    "queued"
                },
            ),
        )
        .with_state(received.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/sms", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, sink).await });

    let s = TestServer::start_with(|c| {
        c.notifier = Some(NotifierKind::Webhook);
        c.webhook_url = Some(url);
        c.webhook_token = Some("gateway-secret".parse().expect("token"));
    })
    .await;
    let identifier = phone();
    let r = s
        .post_unsigned(
            "/api/v1/register/start",
            &RegisterStart {
                identifier: identifier.clone(),
            },
        )
        .await;
    assert_eq!(r.status, 200);
    let got = received.lock().expect("lock").clone();
    assert_eq!(got.len(), 1);
    let (auth, body) = &got[0];
    assert_eq!(auth.as_deref(), Some("Bearer gateway-secret"));
    assert_eq!(body["to"], identifier.as_str());
    assert_eq!(body["purpose"], "registration");
    assert_eq!(body["code"].as_str().expect("code").len(), 6);
}
