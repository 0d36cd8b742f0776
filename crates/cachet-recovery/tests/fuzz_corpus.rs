//! Replays the fuzz corpus and seeds of the `recovery_wire` target
//! (`fuzz/corpus/recovery_wire/`, `fuzz/seeds/recovery_wire/`) through the same code the
//! fuzz target runs, so every input a fuzzer once found interesting stays a test. Set
//! `CACHET_WRITE_FUZZ_SEEDS=1` to (re)write the seeds with the real encoders.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;

use cachet_crypto::{sign, SignKeyPair};
use cachet_recovery::fuzzing::{check_recovery_wire, share};
use cachet_recovery::oprf::{self, RefreshDelta, ServerShare};
use cachet_recovery::wire::{self, hex_field};

include!("../../../fuzz/replay.rs");

fn folder(kind: &str) -> std::path::PathBuf {
    fuzz_folder(kind, "recovery_wire")
}

fn identity() -> wire::Identity {
    wire::Identity {
        challenge_id: "ch_0123456789".into(),
        code: "492817".into(),
    }
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let (_, blinded) = oprf::blind("u_patient", b"sunflower1987");
    let eval = share().evaluate(&blinded).unwrap();
    let public = share().public();
    let other = ServerShare::generate().public();
    let auth = SignKeyPair::from_seed([12; 32]);
    let envelope = vec![0x5a; 96];
    let enrol = wire::enrol_message(
        "ch_0123456789",
        "u_patient",
        &public.0,
        &other.0,
        auth.public().as_bytes(),
        &envelope,
    );
    let update = wire::update_message("u_patient", 1_790_000_000_000, &envelope);
    let success = wire::success_message("ch_0123456789", "u_patient");
    vec![
        (
            "start",
            json(&wire::StartRequest {
                identifier: "+33612345678".into(),
            }),
        ),
        (
            "start-response",
            json(&wire::StartResponse {
                challenge_id: "ch_0123456789".into(),
                expires_at: 1_790_000_600_000,
            }),
        ),
        (
            "evaluate",
            json(&wire::EvaluateRequest {
                identity: identity(),
                user_id: "u_patient".into(),
                blinded: hex::encode(blinded),
            }),
        ),
        (
            "evaluate-response",
            json(&wire::EvaluateResponse {
                user_id: "u_patient".into(),
                public_share: hex::encode(public.0),
                element: hex::encode(eval.element),
                proof: hex::encode(eval.proof),
            }),
        ),
        (
            "account",
            json(&wire::AccountResponse {
                user_id: "u_patient".into(),
                data_server_share: hex::encode(public.0),
                key_server_share: hex::encode(other.0),
                auth_public: hex::encode(auth.public().as_bytes()),
                envelope: hex::encode(&envelope),
                failures: 2,
            }),
        ),
        (
            "enrol",
            json(&wire::EnrolRequest {
                identity: identity(),
                user_id: "u_patient".into(),
                data_server_share: hex::encode(public.0),
                key_server_share: hex::encode(other.0),
                auth_public: hex::encode(auth.public().as_bytes()),
                envelope: hex::encode(&envelope),
                signature: hex::encode(sign::sign_detached(&enrol, &auth)),
                previous_signature: String::new(),
            }),
        ),
        (
            "success",
            json(&wire::SuccessRequest {
                identity: identity(),
                signature: hex::encode(sign::sign_detached(&success, &auth)),
            }),
        ),
        (
            "envelope-update",
            json(&wire::EnvelopeUpdate {
                user_id: "u_patient".into(),
                envelope: hex::encode(&envelope),
                timestamp: 1_790_000_000_000,
                signature: hex::encode(sign::sign_detached(&update, &auth)),
            }),
        ),
        (
            "refresh",
            json(&wire::RefreshRequest {
                user_id: "u_patient".into(),
                delta: hex::encode(RefreshDelta::generate().expose_secret()),
                old_data_server_share: hex::encode(public.0),
                old_key_server_share: hex::encode(other.0),
            }),
        ),
    ]
}

/// A wire message as a body on the network.
fn json<T: serde::Serialize>(message: &T) -> Vec<u8> {
    serde_json::to_vec_pretty(message).unwrap()
}

#[test]
fn corpus_replays_without_panic() {
    if writing_seeds() {
        for (name, bytes) in seeds() {
            write_seed("recovery_wire", &format!("seed-{name}.json"), bytes);
        }
    }
    assert!(replay("recovery_wire", check_recovery_wire) >= seeds().len());
}

#[test]
fn seeds_parse_and_their_fields_check() {
    let read = |name: &str| fs::read(folder("seeds").join(format!("seed-{name}.json"))).unwrap();
    let req: wire::EvaluateRequest = serde_json::from_slice(&read("evaluate")).unwrap();
    let blinded = hex_field(&req.blinded, oprf::ELEMENT_LEN, "blinded").unwrap();
    let eval = share().evaluate(&blinded).unwrap();
    let resp: wire::EvaluateResponse = serde_json::from_slice(&read("evaluate-response")).unwrap();
    assert_eq!(resp.public_share, hex::encode(share().public().0));
    assert_eq!(
        hex_field(&resp.element, 32, "element").unwrap(),
        eval.element
    );
    let enrol: wire::EnrolRequest = serde_json::from_slice(&read("enrol")).unwrap();
    let auth = cachet_crypto::SignPublicKey::from_slice(
        &hex_field(&enrol.auth_public, 32, "auth_public").unwrap(),
    )
    .unwrap();
    let message = wire::enrol_message(
        &enrol.identity.challenge_id,
        &enrol.user_id,
        &hex_field(&enrol.data_server_share, 32, "d").unwrap(),
        &hex_field(&enrol.key_server_share, 32, "k").unwrap(),
        auth.as_bytes(),
        &hex::decode(&enrol.envelope).unwrap(),
    );
    sign::verify_detached(
        &message,
        &hex_field(&enrol.signature, 64, "signature").unwrap(),
        &auth,
    )
    .unwrap();
    let refresh: wire::RefreshRequest = serde_json::from_slice(&read("refresh")).unwrap();
    assert!(RefreshDelta::from_bytes(&hex_field(&refresh.delta, 32, "delta").unwrap()).is_ok());
}
