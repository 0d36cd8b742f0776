//! The webhook notifier: codes POSTed as JSON to an HTTP sink on loopback (standing in
//! for an SMS gateway).

use axum::http::StatusCode;
use cachet_http::testing::webhook_sink;
use cachet_proto::v1::RegisterStart;
use cachet_server::NotifierKind;

use crate::common::*;

#[tokio::test]
async fn codes_go_to_the_webhook_with_its_token() {
    let (url, received) = webhook_sink("/sms", StatusCode::OK).await;

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
