//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) and seeds
//! (`fuzz/seeds/<target>/`) of the targets over this crate's decoders (`envelope`,
//! `signature_header`, `ack`, `attachment_pointer`, `case_key`) through the same code
//! the fuzz targets run, so every input a fuzzer once found interesting stays a test.
//! Set `CACHET_WRITE_FUZZ_SEEDS=1` to (re)write the seed inputs with the real encoders.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};

use cachet_crypto::{boxes, BoxPublicKey, BoxSecretKey, Nonce, SignKeyPair, SymmetricKey};
use cachet_proto::auth::{sign_request, Caller, RequestTarget};
use cachet_proto::decode;
use cachet_proto::v1::{
    payload::Body, Ack, AttachmentPointer, CaseKeyShare, CaseRecord, ClientType, Envelope, Payload,
    RecipientCiphertext, SealedCaseKey,
};
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

/// The seeds, then the corpus, of one target (either folder may be missing).
fn seeds_and_corpus(target: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for dir in [seeds(target), corpus(target)] {
        let Ok(entries) = fs::read_dir(dir) else {
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

/// The recipient of the sealed case key in the `case_key` seeds; the fuzz target opens
/// sealed keys with it.
const CASE_KEY_RECIPIENT: [u8; 32] = [0x42; 32];

fn seed_pointer() -> AttachmentPointer {
    AttachmentPointer {
        attachment_id: "att-0123456789abcdef".into(),
        key: vec![8; 32],
        format_version: 2,
        plaintext_size: 123_456,
        ciphertext_sha256: vec![9; 32],
        file_name: "scan of the left knee.pdf".into(),
        content_type: "application/pdf".into(),
    }
}

fn seed_case_key_share() -> CaseKeyShare {
    CaseKeyShare {
        case_id: "case-42".into(),
        case_key: vec![10; 32],
        key_epoch: 3,
        title: "Knee".into(),
    }
}

fn write_attachment_and_case_seeds() {
    for target in ["attachment_pointer", "case_key"] {
        fs::create_dir_all(seeds(target)).unwrap();
    }
    fs::write(
        seeds("attachment_pointer").join("seed-pointer"),
        seed_pointer().encode_to_vec(),
    )
    .unwrap();
    let payload = Payload {
        body: Some(Body::Attachment(seed_pointer())),
        ..Default::default()
    };
    fs::write(
        seeds("attachment_pointer").join("seed-payload"),
        payload.encode_to_vec(),
    )
    .unwrap();
    fs::write(
        seeds("case_key").join("seed-share"),
        seed_case_key_share().encode_to_vec(),
    )
    .unwrap();
    let payload = Payload {
        body: Some(Body::CaseKeyShare(seed_case_key_share())),
        ..Default::default()
    };
    fs::write(
        seeds("case_key").join("seed-payload"),
        payload.encode_to_vec(),
    )
    .unwrap();
    let sealer = BoxSecretKey::from_bytes([0x24; 32]);
    let recipient = BoxSecretKey::from_bytes(CASE_KEY_RECIPIENT).public_key();
    let (nonce, ciphertext) = boxes::seal(&[10; 32], &recipient, &sealer).unwrap();
    let record = CaseRecord {
        case_id: "case-42".into(),
        created_by: "u_alice".into(),
        sealed_fields: vec![0; 60],
        participants: vec!["u_alice".into(), "u_bob".into()],
        my_keys: vec![SealedCaseKey {
            participant_id: "u_bob".into(),
            key_epoch: 3,
            sealed_by: "u_alice".into(),
            sealer_box_key: sealer.public_key().as_bytes().to_vec(),
            recipient_box_key: recipient.as_bytes().to_vec(),
            nonce: nonce.as_bytes().to_vec(),
            ciphertext,
        }],
        created_at: 1_790_000_000_000,
    };
    fs::write(
        seeds("case_key").join("seed-record"),
        record.encode_to_vec(),
    )
    .unwrap();
}

/// What the `attachment_pointer` fuzz target runs.
fn attachment_pointer(data: &[u8]) {
    if let Ok(pointer) = decode::attachment_pointer(data) {
        let name = decode::safe_file_name(&pointer.file_name);
        assert!(!name.is_empty() && !name.contains(['/', '\\']) && !name.starts_with('.'));
    }
    if let Ok(Payload {
        body: Some(Body::Attachment(pointer)),
        ..
    }) = decode::message::<Payload>(data)
    {
        if decode::validate_attachment_pointer(&pointer).is_ok() {
            let _ = decode::safe_file_name(&pointer.file_name);
        }
    }
}

/// What the `case_key` fuzz target runs; returns the case keys it opened.
fn case_key(data: &[u8]) -> Vec<SymmetricKey> {
    let mut opened = Vec::new();
    if let Ok(share) = decode::case_key_share(data) {
        assert!(SymmetricKey::from_slice(&share.case_key).is_ok());
    }
    if let Ok(Payload {
        body: Some(Body::CaseKeyShare(share)),
        ..
    }) = decode::message::<Payload>(data)
    {
        let _ = decode::validate_case_key_share(&share);
    }
    if let Ok(record) = decode::message::<CaseRecord>(data) {
        let _ = decode::validate_id(&record.case_id, "case_id");
        let mine = BoxSecretKey::from_bytes(CASE_KEY_RECIPIENT);
        for sealed in &record.my_keys {
            let (Ok(nonce), Ok(sealer)) = (
                Nonce::from_slice(&sealed.nonce),
                BoxPublicKey::from_slice(&sealed.sealer_box_key),
            ) else {
                continue;
            };
            if let Ok(bytes) = boxes::open(&sealed.ciphertext, &nonce, &sealer, &mine) {
                if let Ok(key) = SymmetricKey::from_slice(&bytes) {
                    opened.push(key);
                }
            }
        }
    }
    opened
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
        write_attachment_and_case_seeds();
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
    let pointers = seeds_and_corpus("attachment_pointer");
    assert!(!pointers.is_empty());
    for data in &pointers {
        attachment_pointer(data);
    }
    let case_keys = seeds_and_corpus("case_key");
    assert!(!case_keys.is_empty());
    for data in &case_keys {
        case_key(data);
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

#[test]
fn attachment_and_case_key_seeds_are_valid_inputs() {
    let seed = fs::read(seeds("attachment_pointer").join("seed-pointer")).expect("seed committed");
    assert_eq!(decode::attachment_pointer(&seed).unwrap(), seed_pointer());
    let seed = fs::read(seeds("attachment_pointer").join("seed-payload")).unwrap();
    let payload: Payload = decode::message(&seed).unwrap();
    assert_eq!(payload.body, Some(Body::Attachment(seed_pointer())));
    let seed = fs::read(seeds("case_key").join("seed-share")).unwrap();
    assert_eq!(
        decode::case_key_share(&seed).unwrap(),
        seed_case_key_share()
    );
    let seed = fs::read(seeds("case_key").join("seed-record")).unwrap();
    let opened = case_key(&seed);
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0].expose_secret(), &[10; 32]);
}

#[test]
fn malformed_pointers_and_case_key_shares_are_refused() {
    let mut p = seed_pointer();
    p.key.pop();
    assert!(decode::attachment_pointer(&p.encode_to_vec()).is_err());
    let mut p = seed_pointer();
    p.format_version = 3;
    assert!(decode::attachment_pointer(&p.encode_to_vec()).is_err());
    let mut p = seed_pointer();
    p.attachment_id = "../x".into();
    assert!(decode::attachment_pointer(&p.encode_to_vec()).is_err());
    let mut p = seed_pointer();
    p.ciphertext_sha256 = vec![];
    assert!(decode::attachment_pointer(&p.encode_to_vec()).is_err());
    assert_eq!(decode::safe_file_name("../../etc/passwd"), "passwd");
    assert_eq!(decode::safe_file_name("..\\x.pdf"), "x.pdf");
    assert_eq!(decode::safe_file_name(".."), "attachment");
    let mut c = seed_case_key_share();
    c.case_key = vec![1; 31];
    assert!(decode::case_key_share(&c.encode_to_vec()).is_err());
    let mut c = seed_case_key_share();
    c.case_id = String::new();
    assert!(decode::case_key_share(&c.encode_to_vec()).is_err());
}
