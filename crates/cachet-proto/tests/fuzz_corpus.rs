//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) and seeds
//! (`fuzz/seeds/<target>/`) of the targets over this crate's decoders (`envelope`,
//! `signature_header`, `ack`, `attachment_pointer`, `case_key`) through the same code
//! the fuzz targets run, so every input a fuzzer once found interesting stays a test.
//! Set `CACHET_WRITE_FUZZ_SEEDS=1` to (re)write the seed inputs with the real encoders.
#![allow(clippy::unwrap_used)]

use std::fs;

use cachet_crypto::{boxes, BoxSecretKey, SignKeyPair};
use cachet_proto::auth::{sign_request, Caller, RequestTarget};
use cachet_proto::decode;
use cachet_proto::fuzzing::{self, check_case_key, CASE_KEY_RECIPIENT};
use cachet_proto::v1::{
    payload::Body, Ack, AttachmentPointer, CaseKeyShare, CaseRecord, ClientType, Envelope, Payload,
    RecipientCiphertext, SealedCaseKey,
};
use cachet_proto::Message;

include!("../../../fuzz/replay.rs");

fn seeds(target: &str) -> std::path::PathBuf {
    fuzz_folder("seeds", target)
}

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

/// Writes two seeds for `target`: the message alone (`bare`, as `bare_name`) and inside a
/// payload as `body`, the two ways a client decodes it.
fn write_bare_and_in_payload(target: &str, bare_name: &str, bare: Vec<u8>, body: Body) {
    write_seed(target, bare_name, bare);
    let payload = Payload {
        body: Some(body),
        ..Default::default()
    };
    write_seed(target, "seed-payload", payload.encode_to_vec());
}

fn write_attachment_and_case_seeds() {
    let pointer = seed_pointer();
    let bare = pointer.encode_to_vec();
    write_bare_and_in_payload(
        "attachment_pointer",
        "seed-pointer",
        bare,
        Body::Attachment(pointer),
    );
    let share = seed_case_key_share();
    let bare = share.encode_to_vec();
    write_bare_and_in_payload("case_key", "seed-share", bare, Body::CaseKeyShare(share));
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
    write_seed("case_key", "seed-record", record.encode_to_vec());
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
    write_seed("envelope", "seed-text", envelope.encode_to_vec());
    let ack = Ack {
        delivery_ids: vec![1, 2, 300],
        wait_seconds: 30,
        limit: 100,
    };
    write_seed("ack", "seed-ack", ack.encode_to_vec());
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
    write_seed("signature_header", "seed-sig", headers.sig);
}

#[test]
fn corpus_replays_without_panic() {
    if writing_seeds() {
        write_seeds();
        write_attachment_and_case_seeds();
    }
    assert!(replay("envelope", fuzzing::check_envelope) > 0);
    replay("ack", fuzzing::check_ack);
    replay("signature_header", fuzzing::check_signature_header);
    assert!(replay("attachment_pointer", fuzzing::check_attachment_pointer) > 0);
    assert!(
        replay("case_key", |data| {
            check_case_key(data);
        }) > 0
    );
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
    let opened = check_case_key(&seed);
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
