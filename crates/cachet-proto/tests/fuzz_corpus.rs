//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the same decoders
//! the fuzz targets call, so every input a fuzzer once found interesting stays a test.
//! Set `CACHET_WRITE_FUZZ_SEEDS=1` to (re)write the hand-made seed inputs.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};

use cachet_crypto::SignKeyPair;
use cachet_proto::auth::{sign_request, Caller, RequestTarget};
use cachet_proto::v1::{Ack, ClientType, Envelope, RecipientCiphertext};
use cachet_proto::Message;

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

/// Hand-made valid inputs, kept apart from the corpus so that `cargo fuzz cmin` (which
/// rewrites the corpus folder) cannot drop them.
fn seeds(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds")
        .join(target)
}

fn inputs(target: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(corpus(target)).expect("corpus folder exists") {
        let path = entry.expect("readable entry").path();
        if path.is_file() {
            out.push(fs::read(&path).expect("readable corpus file"));
        }
    }
    out
}

fn write_seeds() {
    let envelope = Envelope {
        version: 1,
        message_id: "0123456789abcdef".into(),
        timestamp: 1_790_000_000_000,
        recipients: vec![RecipientCiphertext {
            recipient_id: "u_bob".into(),
            nonce: vec![7; 24],
            ciphertext: vec![9; 64],
            sender_box_key: vec![1; 32],
            recipient_box_key: vec![2; 32],
        }],
        ..Default::default()
    };
    fs::write(
        seeds("envelope").join("seed-text"),
        envelope.encode_to_vec(),
    )
    .unwrap();
    let ack = Ack {
        delivery_ids: vec![1, 2, 300],
        wait_seconds: 30,
        limit: 100,
    };
    fs::write(seeds("ack").join("seed-ack"), ack.encode_to_vec()).unwrap();
    let caller = Caller {
        user_id: "u_fuzz".into(),
        build_number: 1,
        client_type: ClientType::Cli,
    };
    let target = RequestTarget {
        method: "POST",
        path: "/api/v1/messages/send",
        body: b"",
    };
    let headers = sign_request(
        &caller,
        &SignKeyPair::from_seed([3; 32]),
        &target,
        1_790_000_000_000,
    );
    fs::write(seeds("signature_header").join("seed-sig"), headers.sig).unwrap();
}

#[test]
fn corpus_replays_without_panic() {
    if std::env::var_os("CACHET_WRITE_FUZZ_SEEDS").is_some() {
        write_seeds();
    }
    let envelopes = inputs("envelope");
    assert!(!envelopes.is_empty());
    for data in &envelopes {
        let _ = cachet_proto::decode::envelope(data);
    }
    for data in inputs("ack") {
        let _ = cachet_proto::decode::ack(&data);
    }
    for data in inputs("signature_header") {
        if let Ok(text) = std::str::from_utf8(&data) {
            let _ = cachet_proto::auth::ParsedSignature::parse(Some("u_fuzz"), Some(text));
        }
    }
}

#[test]
fn seeds_are_valid_inputs() {
    let seed = fs::read(seeds("envelope").join("seed-text")).expect("seed committed");
    assert!(cachet_proto::decode::envelope(&seed).is_ok());
    let sig =
        fs::read_to_string(seeds("signature_header").join("seed-sig")).expect("seed committed");
    assert!(cachet_proto::auth::ParsedSignature::parse(Some("u_fuzz"), Some(&sig)).is_ok());
}
