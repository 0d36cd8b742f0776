//! Registration, one-time codes, directory, discovery and new installations.

use cachet_crypto::{BoxKeyPair, SignKeyPair};
use cachet_proto::v1::{
    ContactUpdateReason, DiscoverRequest, DiscoverResponse, KeyChange, KeyHistory, RegisterFinish,
    RegisterStart, UserProfile,
};

use crate::common::*;

fn finish_for(challenge_id: &str, code: &str) -> (RegisterFinish, BoxKeyPair, SignKeyPair) {
    let boxk = BoxKeyPair::generate();
    let sign = SignKeyPair::generate();
    let f = RegisterFinish {
        challenge_id: challenge_id.to_owned(),
        code: code.to_owned(),
        box_key: boxk.public.as_bytes().to_vec(),
        sign_key: sign.public().as_bytes().to_vec(),
        display_name: "Dr Who".into(),
        self_signature: self_signature(challenge_id, &boxk, &sign),
        previous_key_signature: Vec::new(),
    };
    (f, boxk, sign)
}

/// The key history of `user_id`, as `who` reads it from the directory.
async fn key_history(s: &Client, who: &TestUser, user_id: &str) -> KeyHistory {
    s.get(who, &format!("/api/v1/users/{user_id}/keys"))
        .await
        .decode()
}

#[tokio::test]
async fn a_new_user_registers_and_appears_in_the_directory() {
    let s = TestServer::start().await;
    let alice = s.register_as("Alice@Example.org", "Dr Alice").await;
    let bob = s.register("Dr Bob").await;
    assert!(alice.user_id.starts_with("u_") && alice.user_id.len() == 34);
    assert_eq!(alice.key_version, 1);

    let p: UserProfile = s
        .get(&bob, &format!("/api/v1/users/{}", alice.user_id))
        .await
        .decode();
    assert_eq!(p.display_name, "Dr Alice");
    assert!(!p.verified, "new users start unverified");
    let keys = p.current_keys.expect("keys");
    assert_eq!(keys.box_key, alice.boxk.public.as_bytes());
    assert_eq!(keys.sign_key, alice.sign.public().as_bytes());
    assert_eq!(keys.valid_until, 0);

    let h = key_history(&s, &bob, &alice.user_id).await;
    assert_eq!(h.keys.len(), 1);

    for (path, status, reason) in [
        (
            "/api/v1/users/u_ffffffffffffffffffffffffffffffff",
            404,
            "user_not_found",
        ),
        (
            "/api/v1/users/u_ffffffffffffffffffffffffffffffff/keys",
            404,
            "user_not_found",
        ),
        ("/api/v1/users/..%2F..%2Fetc", 400, "invalid_field"),
    ] {
        s.get(&bob, path).await.assert_error(status, reason);
    }

    // Discovery by hashed identifier: the normalised form matches, non-users do not.
    let req = DiscoverRequest {
        identifier_hashes: vec![
            cachet_proto::discovery_hash(" alice@EXAMPLE.org").to_vec(),
            cachet_proto::discovery_hash("+33100000000").to_vec(),
        ],
    };
    let found: DiscoverResponse = s
        .post(&bob, "/api/v1/directory/discover", &req)
        .await
        .decode();
    assert_eq!(found.contacts.len(), 1);
    assert_eq!(found.contacts[0].user_id, alice.user_id);
    let bad = DiscoverRequest {
        identifier_hashes: vec![vec![1; 5]],
    };
    s.post(&bob, "/api/v1/directory/discover", &bad)
        .await
        .assert_error(400, "invalid_field");
}

#[tokio::test]
async fn one_time_codes_are_checked() {
    let s = TestServer::start_with(|c| c.code_max_attempts = Some(2)).await;
    s.post_unsigned(
        "/api/v1/register/start",
        &RegisterStart {
            identifier: "not an identifier".into(),
        },
    )
    .await
    .assert_error(400, "invalid_identifier");

    let id = phone();
    let (challenge, code) = s.start_registration(&id).await;
    let wrong = if code == "000000" { "000001" } else { "000000" };
    let (f, _, _) = finish_for(&challenge, wrong);
    s.post_unsigned("/api/v1/register/finish", &f)
        .await
        .assert_error(403, "wrong_code");
    s.post_unsigned("/api/v1/register/finish", &f)
        .await
        .assert_error(403, "wrong_code");
    // Attempts exhausted: even the right code is refused now.
    let (f, _, _) = finish_for(&challenge, &code);
    s.post_unsigned("/api/v1/register/finish", &f)
        .await
        .assert_error(429, "too_many_attempts");

    let (f, _, _) = finish_for("c_nope", "123456");
    s.post_unsigned("/api/v1/register/finish", &f)
        .await
        .assert_error(400, "unknown_challenge");

    // Expiry: move the challenge's deadline into the past.
    let (challenge, code) = s.start_registration(&id).await;
    let mut db = open_db(&s.data_dir()).await;
    sqlx::query("UPDATE challenges SET expires_at = 1 WHERE challenge_id = $1")
        .bind(&challenge)
        .execute(&mut db)
        .await
        .expect("update");
    let (f, _, _) = finish_for(&challenge, &code);
    s.post_unsigned("/api/v1/register/finish", &f)
        .await
        .assert_error(400, "challenge_expired");

    // Proof of possession: signed by another key, or for another challenge.
    let (challenge, code) = s.start_registration(&id).await;
    let (mut f, _, _) = finish_for(&challenge, &code);
    let (other, _, _) = finish_for("c_other", &code);
    f.self_signature = other.self_signature;
    s.post_unsigned("/api/v1/register/finish", &f)
        .await
        .assert_error(400, "bad_self_signature");
    let (mut f, _, _) = finish_for(&challenge, &code);
    f.box_key.truncate(31);
    s.post_unsigned("/api/v1/register/finish", &f)
        .await
        .assert_error(400, "invalid_key");

    // A challenge is used once.
    let (f, _, _) = finish_for(&challenge, &code);
    let r = s.post_unsigned("/api/v1/register/finish", &f).await;
    assert_eq!(r.status, 200);
    s.post_unsigned("/api/v1/register/finish", &f)
        .await
        .assert_error(400, "unknown_challenge");

    s.post_bytes_unsigned("/api/v1/register/start", vec![0xff, 0xff, 0xff])
        .await
        .assert_error(400, "malformed_protobuf");
}

#[tokio::test]
async fn a_new_installation_keeps_history_and_tells_every_contact() {
    let (s, [alice, bob, carol, stranger]) =
        TestServer::with_users(["Alice", "Bob", "Carol", "Stranger"]).await;
    // Bob is a contact through a message, Carol through a case.
    send_ok(&s, &bob, &text_envelope(&bob, &[&alice], &mid(), "hello")).await;
    crate::cases::create_case(&s, &carol, &[&alice], "case-contacts").await;

    let alice2 = s.reinstall(&alice, true).await;
    assert_eq!(alice2.key_version, 2);

    let h = key_history(&s, &bob, &alice.user_id).await;
    assert_eq!(h.keys.len(), 2);
    assert_eq!(h.keys[0].sign_key, alice.sign.public().as_bytes());
    assert_ne!(h.keys[0].valid_until, 0, "old generation closed");
    assert_eq!(h.keys[1].sign_key, alice2.sign.public().as_bytes());
    assert_eq!(h.keys[1].valid_until, 0);
    assert_eq!(
        h.keys[1].reason,
        ContactUpdateReason::NewInstallation as i32
    );

    for contact in [&bob, &carol] {
        let got = receive(&s, contact, vec![], 0).await;
        let update = got
            .envelopes
            .iter()
            .find_map(|e| e.contact_update.clone())
            .expect("contact update delivered");
        assert_eq!(update.user_id, alice.user_id);
        assert_eq!(update.key_version, 2);
        assert_eq!(update.reason, ContactUpdateReason::NewInstallation as i32);
        assert_eq!(update.box_key, alice2.boxk.public.as_bytes());
        // The contact can check that the old key authorised the new one.
        let change = KeyChange {
            user_id: alice.user_id.clone(),
            key_version: 2,
            box_key: update.box_key.clone(),
            sign_key: update.sign_key.clone(),
            previous_sign_key: alice.sign.public().as_bytes().to_vec(),
        };
        cachet_crypto::sign::verify_detached(
            &cachet_proto::key_change_bytes(&change),
            &update.previous_key_signature,
            &alice.sign.public(),
        )
        .expect("authorised by the previous key");
    }
    assert!(receive(&s, &stranger, vec![], 0).await.envelopes.is_empty());

    // The old installation no longer authenticates; the new one does.
    s.get(&alice, &format!("/api/v1/users/{}", bob.user_id))
        .await
        .assert_error(401, "bad_signature");
    assert_eq!(
        s.get(&alice2, &format!("/api/v1/users/{}", bob.user_id))
            .await
            .status,
        200
    );

    // A lost device: no authorisation, still allowed, version 3.
    let alice3 = s.reinstall(&alice2, false).await;
    assert_eq!(alice3.key_version, 3);

    // A present but wrong authorisation is refused.
    let (challenge, code) = s.start_registration(&alice.identifier).await;
    let (mut f, boxk, sign) = finish_for(&challenge, &code);
    f.previous_key_signature = previous_signature(&alice, &boxk, &sign); // alice's key is two generations old
    s.post_unsigned("/api/v1/register/finish", &f)
        .await
        .assert_error(400, "bad_previous_key_signature");
}

#[tokio::test]
async fn codes_per_identifier_are_rate_limited() {
    let s = TestServer::start().await;
    let id = phone();
    for _ in 0..5 {
        s.start_registration(&id).await;
    }
    let start = RegisterStart {
        identifier: id.clone(),
    };
    s.post_unsigned("/api/v1/register/start", &start)
        .await
        .assert_error(429, "too_many_codes");
    // Other identifiers are not affected.
    s.start_registration(&phone()).await;
    // Once the codes expire, new ones can be asked for.
    let mut db = open_db(&s.data_dir()).await;
    sqlx::query("UPDATE challenges SET expires_at = 1 WHERE identifier_hash = $1")
        .bind(cachet_proto::discovery_hash(&id).to_vec())
        .execute(&mut db)
        .await
        .expect("expire");
    let (challenge, code) = s.start_registration(&id).await;
    let (f, _, _) = finish_for(&challenge, &code);
    assert_eq!(
        s.post_unsigned("/api/v1/register/finish", &f).await.status,
        200
    );
}

#[tokio::test]
async fn low_order_box_keys_are_refused() {
    let s = TestServer::start().await;
    let (challenge, code) = s.start_registration(&phone()).await;
    let sign = SignKeyPair::generate();
    let mut f = RegisterFinish {
        challenge_id: challenge.clone(),
        code,
        // The identity point: every shared secret with it is zero.
        box_key: {
            let mut k = vec![0u8; 32];
            k[0] = 1;
            k
        },
        sign_key: sign.public().as_bytes().to_vec(),
        display_name: String::new(),
        self_signature: Vec::new(),
        previous_key_signature: Vec::new(),
    };
    let proof = KeyChange {
        user_id: challenge,
        key_version: 0,
        box_key: f.box_key.clone(),
        sign_key: f.sign_key.clone(),
        previous_sign_key: Vec::new(),
    };
    f.self_signature =
        cachet_crypto::sign::sign_detached(&cachet_proto::key_change_bytes(&proof), &sign).to_vec();
    s.post_unsigned("/api/v1/register/finish", &f)
        .await
        .assert_error(400, "invalid_key");
}
