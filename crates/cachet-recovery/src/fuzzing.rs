//! The body of this crate's fuzz target (`fuzz/fuzz_targets/recovery_wire.rs`), written
//! once: the fuzz target calls it on what the fuzzer makes, and `tests/fuzz_corpus.rs` on
//! every committed seed and corpus input. Not part of the API.

use crate::oprf::{self, Evaluation, PublicShare, PublicShares, RefreshDelta, ServerShare};
use crate::wire::{self, hex_field};

/// The data server's OPRF share the target evaluates with: a fixed, canonical scalar, as
/// the fuzzer drives the network side only.
pub fn share() -> ServerShare {
    let mut bytes = [0u8; 32];
    bytes[0] = 7;
    ServerShare::from_bytes(&bytes).expect("canonical scalar")
}

fn public(value: &str) -> Option<PublicShare> {
    let bytes = hex_field(value, oprf::ELEMENT_LEN, "share").ok()?;
    Some(PublicShare(bytes.try_into().ok()?))
}

/// The `recovery_wire` target: recovery messages (JSON, hex fields) as the data server
/// and the key server receive them, and the answers a recovering client reads back; each
/// body is tried as every message type, and what parses goes through the same field
/// checks and OPRF steps.
pub fn check_recovery_wire(data: &[u8]) {
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
