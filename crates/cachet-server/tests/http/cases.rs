//! Patient cases: creation, sealed keys per participant, history and access control.

use cachet_crypto::SymmetricKey;
use cachet_proto::v1::{
    payload, AddParticipants, CaseCiphertext, CaseList, CaseRecord, CreateCase, Envelope,
    EnvelopeList, Payload, SealedCaseKey, SignedPayload, Text,
};
use cachet_proto::Message;

use crate::common::*;

/// The case key sealed by `sealer` for `to` (whitepaper 3.6).
pub fn seal_case_key(sealer: &TestUser, to: &TestUser, key: &SymmetricKey) -> SealedCaseKey {
    let (nonce, ciphertext) =
        cachet_crypto::boxes::seal(key.expose_secret(), &to.boxk.public, &sealer.boxk.secret)
            .expect("seal");
    SealedCaseKey {
        participant_id: to.user_id.clone(),
        key_epoch: 0,
        sealed_by: String::new(),
        sealer_box_key: sealer.boxk.public.as_bytes().to_vec(),
        recipient_box_key: to.boxk.public.as_bytes().to_vec(),
        nonce: nonce.as_bytes().to_vec(),
        ciphertext,
    }
}

pub fn open_case_key(k: &SealedCaseKey, me: &TestUser) -> SymmetricKey {
    let sealer = cachet_crypto::BoxPublicKey::from_slice(&k.sealer_box_key).expect("key");
    let nonce = cachet_crypto::Nonce::from_slice(&k.nonce).expect("nonce");
    let raw = cachet_crypto::boxes::open(&k.ciphertext, &nonce, &sealer, &me.boxk.secret)
        .expect("case key opens");
    SymmetricKey::from_slice(&raw).expect("32 bytes")
}

/// Creates a case with sealed `fields` for the creator and `others`.
pub async fn create_case_with(
    s: &Client,
    creator: &TestUser,
    others: &[&TestUser],
    case_id: &str,
    fields: &str,
) -> (CaseRecord, SymmetricKey) {
    let key = SymmetricKey::generate();
    let mut keys = vec![seal_case_key(creator, creator, &key)];
    keys.extend(others.iter().map(|o| seal_case_key(creator, o, &key)));
    let req = CreateCase {
        case_id: case_id.to_owned(),
        sealed_fields: cachet_crypto::secretbox::seal_prefixed(fields.as_bytes(), &key),
        keys,
    };
    let record: CaseRecord = s.post(creator, "/api/v1/cases", &req).await.decode();
    (record, key)
}

pub async fn create_case(
    s: &Client,
    creator: &TestUser,
    others: &[&TestUser],
    case_id: &str,
) -> (CaseRecord, SymmetricKey) {
    create_case_with(s, creator, others, case_id, "{\"patient\":\"anonymous\"}").await
}

/// A case message: a signed text payload under the case key.
pub fn case_envelope(author: &TestUser, case_id: &str, key: &SymmetricKey, text: &str) -> Envelope {
    let message_id = mid();
    let timestamp = now_ms();
    let payload = Payload {
        message_id: message_id.clone(),
        sender_id: author.user_id.clone(),
        timestamp,
        body: Some(payload::Body::Text(Text { body: text.into() })),
        ..Default::default()
    }
    .encode_to_vec();
    let signed = SignedPayload {
        signature: cachet_crypto::sign::sign_detached(&payload, &author.sign).to_vec(),
        payload,
        sign_key: author.sign.public().as_bytes().to_vec(),
    };
    let (nonce, ciphertext) = cachet_crypto::secretbox::seal(&signed.encode_to_vec(), key);
    Envelope {
        version: 1,
        message_id,
        timestamp,
        case_message: Some(CaseCiphertext {
            case_id: case_id.into(),
            nonce: nonce.as_bytes().to_vec(),
            ciphertext,
            key_epoch: 0,
        }),
        ..Default::default()
    }
}

/// Sends a case message from `author` (see [`case_envelope`]) and returns the answer.
pub async fn send_case_text(
    s: &Client,
    author: &TestUser,
    case_id: &str,
    key: &SymmetricKey,
    text: &str,
) -> Resp {
    let env = case_envelope(author, case_id, key, text);
    s.post(author, "/api/v1/messages/send", &env).await
}

pub fn open_case_text(env: &Envelope, key: &SymmetricKey) -> String {
    let cm = env.case_message.as_ref().expect("case message");
    let nonce = cachet_crypto::Nonce::from_slice(&cm.nonce).expect("nonce");
    let plain = cachet_crypto::secretbox::open(&cm.ciphertext, &nonce, key).expect("opens");
    let signed = SignedPayload::decode(plain.as_slice()).expect("signed");
    let payload = Payload::decode(signed.payload.as_slice()).expect("payload");
    match payload.body {
        Some(payload::Body::Text(t)) => t.body,
        other => panic!("not text: {other:?}"),
    }
}

#[tokio::test]
async fn cases_share_fields_keys_and_history() {
    let (s, [alice, bob, carol, eve]) =
        TestServer::with_users(["Alice", "Bob", "Carol", "Eve"]).await;

    let (record, key) = create_case_with(&s, &alice, &[&bob], "case-1", "fields").await;
    assert_eq!(record.created_by, alice.user_id);
    assert_eq!(record.participants.len(), 2);
    assert_eq!(record.my_keys.len(), 1, "only the caller's own sealed key");
    assert_eq!(record.my_keys[0].participant_id, alice.user_id);
    assert_eq!(record.my_keys[0].sealed_by, alice.user_id);

    // Bob opens his key and the fields.
    let bobs: CaseRecord = s.get(&bob, "/api/v1/cases/case-1").await.decode();
    assert_eq!(bobs.my_keys.len(), 1);
    let bob_key = open_case_key(&bobs.my_keys[0], &bob);
    assert_eq!(
        cachet_crypto::secretbox::open_prefixed(&bobs.sealed_fields, &bob_key).expect("opens"),
        b"fields"
    );

    // Case messages: stored in the history and fanned out to the other participants.
    send_ok(
        &s,
        &alice,
        &case_envelope(&alice, "case-1", &key, "first note"),
    )
    .await;
    send_ok(
        &s,
        &bob,
        &case_envelope(&bob, "case-1", &key, "second note"),
    )
    .await;
    let inbox = receive(&s, &bob, vec![], 0).await;
    assert_eq!(inbox.envelopes.len(), 1, "not to the author");
    assert_eq!(open_case_text(&inbox.envelopes[0], &bob_key), "first note");

    // Carol joins later and reads the history from the start.
    let added: CaseRecord = s
        .post(
            &bob,
            "/api/v1/cases/case-1/participants",
            &AddParticipants {
                keys: vec![seal_case_key(&bob, &carol, &bob_key)],
            },
        )
        .await
        .decode();
    assert_eq!(added.participants.len(), 3);
    let carols: CaseRecord = s.get(&carol, "/api/v1/cases/case-1").await.decode();
    let carol_key = open_case_key(&carols.my_keys[0], &carol);
    let history: EnvelopeList = s
        .get(&carol, "/api/v1/cases/case-1/messages")
        .await
        .decode();
    let texts: Vec<String> = history
        .envelopes
        .iter()
        .map(|e| open_case_text(e, &carol_key))
        .collect();
    assert_eq!(texts, ["first note", "second note"]);
    let tail: EnvelopeList = s
        .get(
            &carol,
            &format!(
                "/api/v1/cases/case-1/messages?after={}",
                history.envelopes[0].delivery_id
            ),
        )
        .await
        .decode();
    assert_eq!(tail.envelopes.len(), 1);

    let list: CaseList = s.get(&carol, "/api/v1/cases").await.decode();
    assert_eq!(list.cases.len(), 1);
    assert_eq!(list.cases[0].my_keys.len(), 1);
    let none: CaseList = s.get(&eve, "/api/v1/cases").await.decode();
    assert!(none.cases.is_empty());

    // Outsiders can neither read, write nor join.
    for path in ["/api/v1/cases/case-1", "/api/v1/cases/case-1/messages"] {
        s.get(&eve, path)
            .await
            .assert_error(403, "not_a_participant");
    }
    send_case_text(&s, &eve, "case-1", &key, "x")
        .await
        .assert_error(403, "not_a_participant");
    s.post(
        &eve,
        "/api/v1/cases/case-1/participants",
        &AddParticipants {
            keys: vec![seal_case_key(&eve, &eve, &key)],
        },
    )
    .await
    .assert_error(403, "not_a_participant");
    s.get(&eve, "/api/v1/cases/case-unknown")
        .await
        .assert_error(404, "case_not_found");
    send_case_text(&s, &alice, "case-unknown", &key, "x")
        .await
        .assert_error(404, "case_not_found");
}

#[tokio::test]
async fn bad_case_requests_are_refused() {
    let (s, [alice, bob]) = TestServer::with_users(["Alice", "Bob"]).await;
    create_case(&s, &alice, &[&bob], "case-dup").await;
    let key = SymmetricKey::generate();
    let mut ghost = bob.clone();
    ghost.user_id = "u_0123456789abcdef0123456789abcdef".into();
    for (case_id, sealed_for, status, reason) in [
        ("case-dup", vec![&alice], 409, "case_exists"),
        // No key for the creator.
        ("case-2", vec![&bob], 400, "invalid_field"),
        ("case-3", vec![&alice, &ghost], 400, "unknown_recipient"),
        ("../case", vec![&alice], 400, "invalid_field"),
    ] {
        let req = CreateCase {
            case_id: case_id.into(),
            sealed_fields: cachet_crypto::secretbox::seal_prefixed(b"x", &key),
            keys: sealed_for
                .iter()
                .map(|to| seal_case_key(&alice, to, &key))
                .collect(),
        };
        s.post(&alice, "/api/v1/cases", &req)
            .await
            .assert_error(status, reason);
    }
}
