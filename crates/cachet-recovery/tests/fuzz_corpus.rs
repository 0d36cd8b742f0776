//! Replays the fuzz corpus and seeds of the `recovery_wire` target
//! (`fuzz/corpus/recovery_wire/`, `fuzz/seeds/recovery_wire/`) through the same code the
//! fuzz target runs, so every input a fuzzer once found interesting stays a test. Set
//! `CACHET_WRITE_FUZZ_SEEDS=1` to (re)write the seeds with the real encoders.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

use cachet_crypto::{sign, SignKeyPair};
use cachet_recovery::oprf::{
    self, Evaluation, PublicShare, PublicShares, RefreshDelta, ServerShare,
};
use cachet_recovery::wire::{self, hex_field};

fn folder(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz")
        .join(kind)
        .join("recovery_wire")
}

fn inputs() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for kind in ["seeds", "corpus"] {
        let Ok(entries) = fs::read_dir(folder(kind)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_file() {
                out.push(fs::read(&path).unwrap());
            }
        }
    }
    out
}

fn share() -> ServerShare {
    // A fixed, canonical scalar: the fuzzer drives the network side only.
    let mut bytes = [0u8; 32];
    bytes[0] = 7;
    ServerShare::from_bytes(&bytes).expect("canonical scalar")
}

fn public(value: &str) -> Option<PublicShare> {
    let bytes = hex_field(value, oprf::ELEMENT_LEN, "share").ok()?;
    Some(PublicShare(bytes.try_into().ok()?))
}

/// What the `recovery_wire` fuzz target runs.
fn recovery_wire(data: &[u8]) {
    let _ = serde_json::from_slice::<wire::StartRequest>(data);
    let _ = serde_json::from_slice::<wire::StartResponse>(data);
    if let Ok(req) = serde_json::from_slice::<wire::EvaluateRequest>(data) {
        if let Ok(blinded) = hex_field(&req.blinded, oprf::ELEMENT_LEN, "blinded") {
            let _ = share().evaluate(&blinded);
        }
    }
    if let Ok(resp) = serde_json::from_slice::<wire::EvaluateResponse>(data) {
        let element = hex_field(&resp.element, oprf::ELEMENT_LEN, "element");
        let proof = hex_field(&resp.proof, oprf::PROOF_LEN, "proof");
        if let (Some(k), Ok(element), Ok(proof)) = (public(&resp.public_share), element, proof) {
            let eval = Evaluation {
                element: element.try_into().expect("checked length"),
                proof: proof.try_into().expect("checked length"),
            };
            let shares = PublicShares {
                data_server: k,
                key_server: k,
            };
            let _ = shares.joint();
            let (state, _) = oprf::blind(&resp.user_id, b"fuzz password");
            let _ = oprf::finalize(state, &shares, &eval, &eval);
        }
    }
    if let Ok(resp) = serde_json::from_slice::<wire::AccountResponse>(data) {
        if let (Some(a), Some(b)) = (
            public(&resp.data_server_share),
            public(&resp.key_server_share),
        ) {
            let shares = PublicShares {
                data_server: a,
                key_server: b,
            };
            let _ = PublicShares::agree(&shares, &shares);
        }
        let _ = hex_field(&resp.auth_public, 32, "auth_public");
        let _ = hex::decode(&resp.envelope);
    }
    if let Ok(req) = serde_json::from_slice::<wire::EnrolRequest>(data) {
        let fields = (
            hex_field(
                &req.data_server_share,
                oprf::ELEMENT_LEN,
                "data_server_share",
            ),
            hex_field(&req.key_server_share, oprf::ELEMENT_LEN, "key_server_share"),
            hex_field(&req.auth_public, 32, "auth_public"),
            hex::decode(&req.envelope),
        );
        if let (Ok(d), Ok(k), Ok(a), Ok(e)) = fields {
            let message =
                wire::enrol_message(&req.identity.challenge_id, &req.user_id, &d, &k, &a, &e);
            verify(&message, &req.signature, &a);
            verify(&message, &req.previous_signature, &a);
        }
    }
    if let Ok(req) = serde_json::from_slice::<wire::SuccessRequest>(data) {
        let message = wire::success_message(&req.identity.challenge_id, "u_fuzz");
        verify(&message, &req.signature, &[9; 32]);
    }
    if let Ok(req) = serde_json::from_slice::<wire::EnvelopeUpdate>(data) {
        if let Ok(envelope) = hex::decode(&req.envelope) {
            let message = wire::update_message(&req.user_id, req.timestamp, &envelope);
            verify(&message, &req.signature, &[9; 32]);
        }
    }
    if let Ok(req) = serde_json::from_slice::<wire::RefreshRequest>(data) {
        let delta = hex_field(&req.delta, 32, "delta")
            .ok()
            .and_then(|d| RefreshDelta::from_bytes(&d).ok());
        let old = (
            public(&req.old_data_server_share),
            public(&req.old_key_server_share),
        );
        if let (Some(delta), (Some(a), Some(b))) = (delta, old) {
            let shares = PublicShares {
                data_server: a,
                key_server: b,
            };
            let _ = shares.refreshed(&delta);
        }
    }
}

fn verify(message: &[u8], signature_hex: &str, key: &[u8]) {
    let (Ok(signature), Ok(key)) = (
        hex_field(signature_hex, 64, "signature"),
        cachet_crypto::SignPublicKey::from_slice(key),
    ) else {
        return;
    };
    let _ = cachet_crypto::sign::verify_detached(message, &signature, &key);
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
    if std::env::var_os("CACHET_WRITE_FUZZ_SEEDS").is_some() {
        fs::create_dir_all(folder("seeds")).unwrap();
        for (name, bytes) in seeds() {
            fs::write(folder("seeds").join(format!("seed-{name}.json")), bytes).unwrap();
        }
    }
    let all = inputs();
    assert!(all.len() >= seeds().len());
    for data in &all {
        recovery_wire(data);
    }
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
