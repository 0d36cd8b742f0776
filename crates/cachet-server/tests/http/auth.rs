//! Every way a signed request can fail, each with its own reason.

use base64::Engine;
use cachet_proto::auth::{MAX_SKEW_MS, SIG_HEADER, UID_HEADER};
use cachet_proto::v1::Ack;
use cachet_proto::Message;
use reqwest::Method;

use crate::common::*;

const RECEIVE: &str = "/api/v1/messages/receive";

fn ack() -> Vec<u8> {
    Ack::default().encode_to_vec()
}

#[tokio::test]
async fn each_bad_signature_has_its_own_reason() {
    let s = TestServer::start().await;
    let alice = s.register("Alice").await;
    let body = ack();
    let good = Client::headers_at(&alice, &Method::POST, RECEIVE, &body, now_ms());

    // Sanity: the good headers work once...
    let r = s.raw(Method::POST, RECEIVE, &good, body.clone()).await;
    assert_eq!(r.status, 200);
    // ...and never again.
    s.raw(Method::POST, RECEIVE, &good, body.clone())
        .await
        .assert_error(401, "replayed_signature");

    let signed_for = |method: Method, path: &str, body: &[u8]| {
        Client::headers_at(&alice, &method, path, body, now_ms())
    };
    let fresh = || signed_for(Method::POST, RECEIVE, &body);

    s.raw(Method::POST, RECEIVE, &[], body.clone())
        .await
        .assert_error(401, "missing_header");
    let only_uid = vec![fresh()[0].clone()];
    s.raw(Method::POST, RECEIVE, &only_uid, body.clone())
        .await
        .assert_error(401, "missing_header");
    let only_sig = vec![fresh()[1].clone()];
    s.raw(Method::POST, RECEIVE, &only_sig, body.clone())
        .await
        .assert_error(401, "missing_header");

    let h = fresh();
    for junk in [
        "!!!not base64",
        "AAAA",
        &base64::engine::general_purpose::STANDARD.encode([0xff; 90]),
    ] {
        let bad = vec![h[0].clone(), (SIG_HEADER, junk.to_owned())];
        s.raw(Method::POST, RECEIVE, &bad, body.clone())
            .await
            .assert_error(400, "malformed_signature");
    }
    let too_long = vec![h[0].clone(), (SIG_HEADER, "A".repeat(5000))];
    s.raw(Method::POST, RECEIVE, &too_long, body.clone())
        .await
        .assert_error(400, "malformed_signature");

    let mut other_uid = fresh();
    other_uid[0] = (UID_HEADER, "u_someone_else".into());
    s.raw(Method::POST, RECEIVE, &other_uid, body.clone())
        .await
        .assert_error(401, "uid_mismatch");

    // Signed for another path (a query string counts as part of the path).
    let h = signed_for(Method::POST, "/api/v1/messages/send", &body);
    s.raw(Method::POST, RECEIVE, &h, body.clone())
        .await
        .assert_error(401, "path_mismatch");
    let h = signed_for(Method::GET, "/api/v1/messages/history", &[]);
    s.raw(
        Method::GET,
        "/api/v1/messages/history?after=0",
        &h,
        Vec::new(),
    )
    .await
    .assert_error(401, "path_mismatch");

    let h = signed_for(Method::PUT, RECEIVE, &body);
    s.raw(Method::POST, RECEIVE, &h, body.clone())
        .await
        .assert_error(401, "method_mismatch");

    let h = fresh();
    let swapped = Ack {
        delivery_ids: vec![1, 2, 3],
        ..Default::default()
    }
    .encode_to_vec();
    s.raw(Method::POST, RECEIVE, &h, swapped)
        .await
        .assert_error(401, "body_mismatch");

    for skew in [-MAX_SKEW_MS - 10_000, MAX_SKEW_MS + 10_000] {
        let h = Client::headers_at(&alice, &Method::POST, RECEIVE, &body, now_ms() + skew);
        s.raw(Method::POST, RECEIVE, &h, body.clone())
            .await
            .assert_error(401, "signature_expired");
    }

    let mut ghost = alice.clone();
    ghost.user_id = "u_00000000000000000000000000000000".into();
    let r = s.call(&ghost, Method::POST, RECEIVE, body.clone()).await;
    r.assert_error(401, "unknown_user");

    let mut impostor = alice.clone();
    impostor.sign = cachet_crypto::SignKeyPair::generate();
    let r = s.call(&impostor, Method::POST, RECEIVE, body.clone()).await;
    r.assert_error(401, "bad_signature");

    // A signature refused as bad is not remembered: the real one still works afterwards.
    let r = s.call(&alice, Method::POST, RECEIVE, body.clone()).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn users_and_operators_stay_on_their_own_routes() {
    let s = TestServer::start().await;
    let alice = s.register("Alice").await;
    let op = s.operator("olga").await;
    s.revoke_user(&alice, &alice.user_id, "")
        .await
        .assert_error(403, "operator_only");
    s.get(&alice, "/api/v1/operator/audit")
        .await
        .assert_error(403, "operator_only");
    s.post(&op, RECEIVE, &Ack::default())
        .await
        .assert_error(403, "user_only");
    for (name, reason) in [
        // An operator name nobody registered.
        ("mallory", "unknown_user"),
        // A registered operator name with the wrong key.
        ("olga", "bad_signature"),
    ] {
        let unknown_key = TestOperator {
            name: name.into(),
            sign: cachet_crypto::SignKeyPair::generate(),
        };
        s.get(&unknown_key, "/api/v1/operator/audit")
            .await
            .assert_error(401, reason);
    }
}

#[tokio::test]
async fn seen_signatures_live_in_the_database_and_survive_a_restart() {
    let mut s = TestServer::start().await;
    let alice = s.register("Alice").await;
    let body = ack();
    let h = Client::headers_at(&alice, &Method::POST, RECEIVE, &body, now_ms());
    assert_eq!(
        s.raw(Method::POST, RECEIVE, &h, body.clone()).await.status,
        200
    );
    s.stop().await;

    let mut config = cachet_server::ServerConfig::for_data_dir(s.dir.path());
    config.listen = Some("127.0.0.1:0".parse().expect("addr"));
    let again = cachet_server::spawn(config).await.expect("restart");
    let client = Client::new(again.base_url());
    client
        .raw(Method::POST, RECEIVE, &h, body)
        .await
        .assert_error(401, "replayed_signature");
    again.shutdown().await.expect("shutdown");
}

/// Sends and acks record their signature in the same commit as their write; a replay of
/// either is refused and changes nothing, and so is the replay of a refused send.
#[tokio::test]
async fn replayed_sends_and_acks_are_refused_and_change_nothing() {
    const SEND: &str = "/api/v1/messages/send";
    let (s, [alice, bob]) = TestServer::with_users(["Alice", "Bob"]).await;

    let body = text_envelope(&alice, &[&bob], &mid(), "once").encode_to_vec();
    let h = Client::headers_at(&alice, &Method::POST, SEND, &body, now_ms());
    assert_eq!(
        s.raw(Method::POST, SEND, &h, body.clone()).await.status,
        204
    );
    s.raw(Method::POST, SEND, &h, body)
        .await
        .assert_error(401, "replayed_signature");

    let list = receive(&s, &bob, vec![], 0).await;
    assert_eq!(list.envelopes.len(), 1);
    let id = list.envelopes[0].delivery_id;

    // An ack replayed after new mail arrived acks nothing more.
    let ack_body = Ack {
        delivery_ids: vec![id],
        wait_seconds: 0,
        limit: 0,
    }
    .encode_to_vec();
    let h = Client::headers_at(&bob, &Method::POST, RECEIVE, &ack_body, now_ms());
    assert_eq!(
        s.raw(Method::POST, RECEIVE, &h, ack_body.clone())
            .await
            .status,
        200
    );
    send_ok(&s, &alice, &text_envelope(&alice, &[&bob], &mid(), "twice")).await;
    s.raw(Method::POST, RECEIVE, &h, ack_body)
        .await
        .assert_error(401, "replayed_signature");
    assert_eq!(receive(&s, &bob, vec![], 0).await.envelopes.len(), 1);

    // A send refused for an unknown recipient stays refused when replayed.
    let mut env = text_envelope(&alice, &[&bob], &mid(), "later");
    env.recipients[0].recipient_id = "u_nobody_yet".into();
    let body = env.encode_to_vec();
    let h = Client::headers_at(&alice, &Method::POST, SEND, &body, now_ms());
    s.raw(Method::POST, SEND, &h, body.clone())
        .await
        .assert_error(400, "unknown_recipient");
    s.raw(Method::POST, SEND, &h, body)
        .await
        .assert_error(401, "replayed_signature");
}

/// A second `x-siilo-uid` or `x-siilo-sig` is refused with 400 `duplicate_header`, whether
/// it names someone else, repeats the same value or carries another signature: which copy
/// counts must not depend on the framework or a proxy in front.
#[tokio::test]
async fn duplicate_authentication_headers_are_refused() {
    let (s, [alice, mallory]) = TestServer::with_users(["Alice", "Mallory"]).await;
    let path = format!("/api/v1/users/{}", alice.user_id);
    let signed = |who: &TestUser| Client::headers_at(who, &Method::GET, &path, &[], now_ms());

    let mut two_uids = signed(&alice);
    two_uids.push((UID_HEADER, mallory.user_id.clone()));
    s.raw(Method::GET, &path, &two_uids, Vec::new())
        .await
        .assert_error(400, "duplicate_header");

    let mut same_twice = signed(&alice);
    same_twice.push((UID_HEADER, alice.user_id.clone()));
    s.raw(Method::GET, &path, &same_twice, Vec::new())
        .await
        .assert_error(400, "duplicate_header");

    let mut two_sigs = signed(&alice);
    let other = signed(&mallory);
    two_sigs.push((SIG_HEADER, other[1].1.clone()));
    s.raw(Method::GET, &path, &two_sigs, Vec::new())
        .await
        .assert_error(400, "duplicate_header");

    // The same request with one copy of each is accepted.
    let r = s.raw(Method::GET, &path, &signed(&alice), Vec::new()).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}
