//! Sending, receiving, acks, long polls, web-client retention and bad envelopes.

use cachet_proto::v1::{Ack, ContactUpdate, Envelope, EnvelopeList};
use reqwest::Method;

use crate::common::*;

const SEND: &str = "/api/v1/messages/send";

#[tokio::test]
async fn a_message_goes_through_and_is_deleted_once_acked() {
    let (s, [alice, bob]) = TestServer::with_users(["Alice", "Bob"]).await;
    let mut env = text_envelope(&alice, &[&bob], &mid(), "Patient in room 12 is stable");
    env.sender_id = bob.user_id.clone(); // a lie the server must overwrite
    env.delivery_id = 99;
    send_ok(&s, &alice, &env).await;

    let got = receive(&s, &bob, vec![], 0).await;
    assert_eq!(got.envelopes.len(), 1);
    assert!(!got.more);
    let e = &got.envelopes[0];
    assert_eq!(e.sender_id, alice.user_id);
    assert!(e.delivery_id > 0 && e.delivery_id != 99);
    assert!(e.server_timestamp > 0);
    assert_eq!(open_text(e, &bob, &alice), "Patient in room 12 is stable");

    // Not acked yet: delivered again.
    let again = receive(&s, &bob, vec![], 0).await;
    assert_eq!(again.envelopes, got.envelopes);
    // Acked: gone.
    let after = receive(&s, &bob, vec![e.delivery_id], 0).await;
    assert!(after.envelopes.is_empty());
    // A typing event is just another envelope.
    let typing = text_envelope(&bob, &[&alice], &mid(), "…");
    send_ok(&s, &bob, &typing).await;
    assert_eq!(receive(&s, &alice, vec![], 0).await.envelopes.len(), 1);
}

#[tokio::test]
async fn group_messages_fan_out_one_ciphertext_each() {
    let (s, [alice, bob, carol]) = TestServer::with_users(["Alice", "Bob", "Carol"]).await;
    let mut env = text_envelope(&alice, &[&bob, &carol], &mid(), "team meeting at 3");
    env.group_id = "g-cardio".into();
    send_ok(&s, &alice, &env).await;
    for who in [&bob, &carol] {
        let got = receive(&s, who, vec![], 0).await;
        assert_eq!(got.envelopes.len(), 1);
        let e = &got.envelopes[0];
        assert_eq!(e.group_id, "g-cardio");
        assert_eq!(e.recipients.len(), 1, "only the recipient's own ciphertext");
        assert_eq!(open_text(e, who, &alice), "team meeting at 3");
    }
}

#[tokio::test]
async fn resends_are_idempotent_and_ids_cannot_be_reused() {
    let (s, [alice, bob]) = TestServer::with_users(["Alice", "Bob"]).await;
    let id = mid();
    let env = text_envelope(&alice, &[&bob], &id, "first");
    send_ok(&s, &alice, &env).await;
    send_ok(&s, &alice, &env).await; // a retry after a lost response
    let got = receive(&s, &bob, vec![], 0).await;
    assert_eq!(got.envelopes.len(), 1, "no duplicate");

    let rewrite = text_envelope(&alice, &[&bob], &id, "rewritten history");
    s.post(&alice, SEND, &rewrite)
        .await
        .assert_error(409, "message_id_reused");
    // Even after the original was acked and deleted.
    receive(&s, &bob, vec![got.envelopes[0].delivery_id], 0).await;
    s.post(&alice, SEND, &rewrite)
        .await
        .assert_error(409, "message_id_reused");
    assert!(receive(&s, &bob, vec![], 0).await.envelopes.is_empty());
    // Another sender may use the same id.
    send_ok(&s, &bob, &text_envelope(&bob, &[&alice], &id, "mine")).await;
}

#[tokio::test]
async fn bad_envelopes_are_refused_with_reasons() {
    let s = TestServer::start_with(|c| c.max_body_bytes = Some(64 * 1024)).await;
    let [alice, bob] = s.register_all(["Alice", "Bob"]).await;

    s.call(&alice, Method::POST, SEND, vec![0x0a, 0xff, 0x01])
        .await
        .assert_error(400, "malformed_protobuf");

    let mut env = text_envelope(&alice, &[&bob], &mid(), "x");
    env.recipients[0].nonce = vec![0; 32];
    s.post(&alice, SEND, &env)
        .await
        .assert_error(400, "invalid_field");

    let mut env = text_envelope(&alice, &[&bob], &mid(), "x");
    env.version = 7;
    s.post(&alice, SEND, &env)
        .await
        .assert_error(400, "invalid_field");

    let mut ghost = bob.clone();
    ghost.user_id = "u_0123456789abcdef0123456789abcdef".into();
    let env = text_envelope(&alice, &[&bob, &ghost], &mid(), "x");
    s.post(&alice, SEND, &env)
        .await
        .assert_error(400, "unknown_recipient");
    assert!(
        receive(&s, &bob, vec![], 0).await.envelopes.is_empty(),
        "nothing delivered when one recipient is unknown"
    );

    let forged = Envelope {
        version: 1,
        message_id: mid(),
        contact_update: Some(ContactUpdate {
            user_id: bob.user_id.clone(),
            box_key: vec![6; 32],
            sign_key: vec![6; 32],
            key_version: 9,
            ..Default::default()
        }),
        ..Default::default()
    };
    s.post(&alice, SEND, &forged)
        .await
        .assert_error(403, "contact_update_forbidden");

    let mut big = text_envelope(&alice, &[&bob], &mid(), "x");
    big.recipients[0].ciphertext = vec![1; 100 * 1024];
    s.post(&alice, SEND, &big)
        .await
        .assert_error(413, "body_too_large");
    // Even unsigned endpoints are bounded.
    s.post_bytes_unsigned("/api/v1/register/start", vec![0; 100 * 1024])
        .await
        .assert_error(413, "body_too_large");

    let r = s
        .call(
            &alice,
            Method::POST,
            "/api/v1/messages/receive",
            vec![0xff; 4],
        )
        .await;
    r.assert_error(400, "malformed_protobuf");
}

#[tokio::test]
async fn acks_only_touch_the_callers_mailbox() {
    let (s, [alice, bob, carol]) = TestServer::with_users(["Alice", "Bob", "Carol"]).await;
    send_ok(
        &s,
        &alice,
        &text_envelope(&alice, &[&bob, &carol], &mid(), "x"),
    )
    .await;
    let bobs = receive(&s, &bob, vec![], 0).await;
    let carols = receive(&s, &carol, vec![], 0).await;
    // Carol acks Bob's delivery ids, and her own differ; Bob's mail stays.
    let mut ids: Vec<u64> = bobs.envelopes.iter().map(|e| e.delivery_id).collect();
    ids.extend(carols.envelopes.iter().map(|e| e.delivery_id + 1000));
    receive(&s, &carol, ids, 0).await;
    assert_eq!(receive(&s, &bob, vec![], 0).await.envelopes.len(), 1);
}

#[tokio::test]
async fn pages_follow_delivery_order_with_a_more_flag() {
    let (s, [alice, bob]) = TestServer::with_users(["Alice", "Bob"]).await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let id = format!("m{i:02}-{}", mid());
        send_ok(
            &s,
            &alice,
            &text_envelope(&alice, &[&bob], &id, &format!("n{i}")),
        )
        .await;
        ids.push(id);
    }
    let mut seen = Vec::new();
    let mut ack = vec![];
    loop {
        let page: EnvelopeList = s
            .post(
                &bob,
                "/api/v1/messages/receive",
                &Ack {
                    delivery_ids: ack,
                    wait_seconds: 0,
                    limit: 3,
                },
            )
            .await
            .decode();
        assert!(page.envelopes.len() <= 3);
        seen.extend(page.envelopes.iter().map(|e| e.message_id.clone()));
        ack = page.envelopes.iter().map(|e| e.delivery_id).collect();
        if !page.more {
            break;
        }
    }
    assert_eq!(seen, ids);
}

#[tokio::test]
async fn a_long_poll_wakes_when_mail_arrives() {
    let (s, [alice, bob]) = TestServer::with_users(["Alice", "Bob"]).await;
    let client = s.client.clone();
    let who = bob.clone();
    let poll = tokio::spawn(async move { receive(&client, &who, vec![], 20).await });
    // Whether the poll is already parked or not, the message must reach it promptly
    // (parked: woken; not yet parked: found on its first read).
    send_ok(
        &s,
        &alice,
        &text_envelope(&alice, &[&bob], &mid(), "wake up"),
    )
    .await;
    let got = tokio::time::timeout(std::time::Duration::from_secs(15), poll)
        .await
        .expect("woken before the 20 s wait")
        .expect("task");
    assert_eq!(got.envelopes.len(), 1);
    assert_eq!(open_text(&got.envelopes[0], &bob, &alice), "wake up");

    // An empty poll returns after the (capped) wait with nothing.
    let capped = TestServer::start_with(|c| c.long_poll_max_seconds = Some(0)).await;
    let carol = capped.register("Carol").await;
    assert!(receive(&capped, &carol, vec![], 600)
        .await
        .envelopes
        .is_empty());
}

#[tokio::test]
async fn web_clients_keep_acked_mail_readable_in_the_history() {
    let (s, [alice, bob]) = TestServer::with_users(["Alice", "Bob"]).await;
    let web = bob.as_web();
    for i in 0..3 {
        send_ok(
            &s,
            &alice,
            &text_envelope(&alice, &[&bob], &mid(), &format!("w{i}")),
        )
        .await;
    }
    let got = receive(&s, &web, vec![], 0).await;
    let ids: Vec<u64> = got.envelopes.iter().map(|e| e.delivery_id).collect();
    assert!(receive(&s, &web, ids.clone(), 0).await.envelopes.is_empty());

    let history: EnvelopeList = s
        .get(&web, "/api/v1/messages/history?after=0")
        .await
        .decode();
    assert_eq!(history.envelopes.len(), 3);
    assert_eq!(open_text(&history.envelopes[2], &bob, &alice), "w2");
    let tail: EnvelopeList = s
        .get(
            &web,
            &format!("/api/v1/messages/history?after={}&limit=1", ids[0]),
        )
        .await
        .decode();
    assert_eq!(tail.envelopes.len(), 1);
    assert!(tail.more);
    assert_eq!(tail.envelopes[0].delivery_id, ids[1]);
    s.get(&web, "/api/v1/messages/history?after=x")
        .await
        .assert_error(400, "invalid_path");

    // A mobile client's ack deletes for good.
    send_ok(
        &s,
        &alice,
        &text_envelope(&alice, &[&bob], &mid(), "mobile"),
    )
    .await;
    let got = receive(&s, &bob, vec![], 0).await;
    receive(&s, &bob, vec![got.envelopes[0].delivery_id], 0).await;
    let history: EnvelopeList = s.get(&bob, "/api/v1/messages/history").await.decode();
    assert_eq!(history.envelopes.len(), 3, "the mobile-acked one is gone");
}
