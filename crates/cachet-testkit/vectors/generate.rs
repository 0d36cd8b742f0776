//! Generates the test vectors of `docs/vectors/` from cachet's own code, with fixed keys,
//! nonces and randomness. Shared by `examples/vectors.rs` (which writes the files) and
//! `tests/vectors.rs` (which checks that the files still match the code).
//!
//! Every secret here is derived from a public label (`seed(label)`), so the vectors are
//! reproducible and worthless as keys.

use std::collections::BTreeMap;

use cachet_crypto::attachment::{self, ChunkSealer, FormatVersion, CHUNK_SIZE};
use cachet_crypto::boxes::{self, PrecomputedBox};
use cachet_crypto::fingerprint::{self, Identity};
use cachet_crypto::secretbox::SecretBox;
use cachet_crypto::{sign, BoxKeyPair, BoxSecretKey, Nonce, SignKeyPair, SymmetricKey};
use cachet_proto::auth::{self, Caller, ParsedSignature, RequestTarget};
use cachet_proto::v1::{self, payload::Body, ClientType};
use cachet_recovery::oprf::{self, PublicShares, ServerShare};
use cachet_recovery::{wire, HardeningParams, KeyRing, RecoveryKeys};
use cachet_trust::{Author, Block, BlockBody, Event, MerkleLog, Scope, SignedTreeHead};
use curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT as G;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use prost::Message;
use serde_json::{json, Value};
use sha2::{Digest, Sha256, Sha512};

/// One vector file: its name under `docs/vectors/` and its content.
pub struct VectorFile {
    /// File name, e.g. `request-signature.json`.
    pub name: &'static str,
    /// The JSON document.
    pub content: Value,
}

/// Every vector file, in a fixed order.
pub fn all() -> Vec<VectorFile> {
    vec![
        file("request-signature.json", "request signature (x-siilo-uid, x-siilo-sig)", "docs/protocol.md §3", request_signature()),
        file("envelope-box.json", "a 1:1 message: Payload boxed to one recipient inside an Envelope", "docs/protocol.md §4", envelope_box()),
        file("group-fanout.json", "a group: GroupInfo then a text, one box per member but the sender", "docs/protocol.md §4, Groups", group_fanout()),
        file("attachment-chunks.json", "attachment chunks, format versions 1 and 2", "docs/protocol.md §5", attachment_chunks()),
        file("attachment-pointer.json", "an AttachmentPointer inside a boxed Payload", "docs/protocol.md §5", attachment_pointer()),
        file("case.json", "a patient case: sealed case key, sealed fields, a signed case message", "docs/protocol.md, Patient cases", case()),
        file("key-change.json", "registration and key-change signatures over KeyChange", "docs/protocol.md §7", key_change()),
        file("trust-log.json", "trust blocks of every type, leaf hashes, a signed tree head, inclusion and consistency proofs", "docs/trust-chain.md §1, §2", trust_log()),
        file("safety-number.json", "fingerprints, safety number and QR payload", "docs/protocol.md §6", safety_number()),
        file("local-file.json", "a local file sealed under the Local File Key", "docs/client.md, Local files", local_file()),
        file("recovery.json", "the recovery OPRF (blind, evaluate with DLEQ proof, unblind), key derivation, key ring and signed messages", "docs/recovery.md", recovery()),
    ]
}

fn file(name: &'static str, construction: &str, spec: &str, vectors: Vec<Value>) -> VectorFile {
    VectorFile {
        name,
        content: json!({
            "construction": construction,
            "spec": spec,
            "generator": "cargo run -p cachet-testkit --example vectors -- --write",
            "vectors": vectors,
        }),
    }
}

// ---- fixed material ----

/// 32 bytes named by a label: `SHA-256("cachet test vector: " ‖ label)`.
fn seed(label: &str) -> [u8; 32] {
    Sha256::new()
        .chain_update(b"cachet test vector: ")
        .chain_update(label.as_bytes())
        .finalize()
        .into()
}

fn nonce(label: &str) -> Nonce {
    let mut n = [0u8; 24];
    n.copy_from_slice(&seed(label)[..24]);
    Nonce(n)
}

fn box_pair(label: &str) -> BoxKeyPair {
    BoxKeyPair::from_secret(BoxSecretKey::from_bytes(seed(label)))
}

fn sign_pair(label: &str) -> SignKeyPair {
    SignKeyPair::from_seed(seed(label))
}

fn h(bytes: impl AsRef<[u8]>) -> Value {
    Value::String(hex::encode(bytes))
}

/// Ed25519 seed and the public key, for a vector.
fn sign_key_json(k: &SignKeyPair) -> Value {
    json!({"seed": h(k.expose_seed()), "public": h(k.public().as_bytes())})
}

fn box_key_json(k: &BoxKeyPair) -> Value {
    json!({"secret": h(k.secret.expose_secret()), "public": h(k.public.as_bytes())})
}

/// A deterministic "random" source for the recovery vectors: the bytes of
/// `SHA-512(label ‖ be32(0)) ‖ SHA-512(label ‖ be32(1)) ‖ …`.
struct FixedRng {
    label: String,
    buffer: Vec<u8>,
    block: u32,
}

impl FixedRng {
    fn new(label: &str) -> Self {
        Self {
            label: label.to_owned(),
            buffer: Vec::new(),
            block: 0,
        }
    }
    /// The first `n` bytes this source yields, for the vector.
    fn peek(label: &str, n: usize) -> Vec<u8> {
        let mut rng = Self::new(label);
        let mut out = vec![0u8; n];
        rand_core::RngCore::fill_bytes(&mut rng, &mut out);
        out
    }
}

impl rand_core::RngCore for FixedRng {
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }
    fn next_u64(&mut self) -> u64 {
        rand_core::impls::next_u64_via_fill(self)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for b in dest {
            if self.buffer.is_empty() {
                let block: [u8; 64] = Sha512::new()
                    .chain_update(self.label.as_bytes())
                    .chain_update(self.block.to_be_bytes())
                    .finalize()
                    .into();
                self.block += 1;
                self.buffer = block.iter().rev().copied().collect();
            }
            *b = self.buffer.pop().unwrap_or_default();
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rand_core::CryptoRng for FixedRng {}

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

// ---- request signature ----

fn request_signature() -> Vec<Value> {
    let key = sign_pair("alice sign key");
    let caller = Caller {
        user_id: "u_0123456789abcdef0123456789abcdef".into(),
        build_number: 42,
        client_type: ClientType::Cli,
    };
    let ack = v1::Ack {
        delivery_ids: vec![7, 8],
        wait_seconds: 25,
        limit: 100,
    }
    .encode_to_vec();
    let cases: [(&str, &str, &str, Vec<u8>); 2] = [
        ("post with a body", "POST", "/api/v1/messages/receive", ack),
        (
            "get with a query and no body",
            "GET",
            "/api/v1/cases/c1/messages?after=3&limit=50",
            Vec::new(),
        ),
    ];
    cases
        .into_iter()
        .enumerate()
        .map(|(i, (name, method, path, body))| {
            let request_nonce: [u8; 16] = seed(&format!("request nonce {i}"))[..16]
                .try_into()
                .expect("16 bytes");
            let target = RequestTarget {
                method,
                path,
                body: &body,
            };
            let timestamp = T0 + i as i64;
            let headers =
                auth::sign_request_with_nonce(&caller, &key, &target, timestamp, request_nonce);
            let sm = base64_decode(&headers.sig);
            let (signature, bm) = sm.split_at(64);
            let header = v1::SignatureHeader::decode(bm).expect("header decodes");
            let parsed =
                ParsedSignature::parse(Some(&headers.uid), Some(&headers.sig)).expect("parses");
            parsed
                .check_target(&target, timestamp)
                .expect("target matches");
            parsed.verify(&key.public()).expect("verifies");
            json!({
                "name": name,
                "sign_key": sign_key_json(&key),
                "method": method,
                "uri_path": path,
                "body": h(&body),
                "header": {
                    "timestamp": header.timestamp,
                    "user_id": header.user_id,
                    "build_number": header.build_number,
                    "uri_path": header.uri_path,
                    "client_type": header.client_type,
                    "method": header.method,
                    "body_sha256": h(&header.body_sha256),
                    "request_nonce": h(&header.request_nonce),
                },
                "bm": h(bm),
                "signature": h(signature),
                "sm": h(&sm),
                "x-siilo-uid": headers.uid,
                "x-siilo-sig": headers.sig,
            })
        })
        .collect()
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("base64")
}

// ---- envelopes ----

const ALICE: &str = "u_a11ce000000000000000000000000000";
const BOB: &str = "u_b0b00000000000000000000000000000";
const CAROL: &str = "u_ca701000000000000000000000000000";

fn boxed(
    payload: &[u8],
    sender: &BoxKeyPair,
    recipient_id: &str,
    recipient: &BoxKeyPair,
    nonce_label: &str,
) -> (v1::RecipientCiphertext, Value) {
    let n = nonce(nonce_label);
    let ciphertext = PrecomputedBox::new(&recipient.public, &sender.secret)
        .expect("valid key")
        .seal_with_nonce(payload, &n);
    let opened = boxes::open(&ciphertext, &n, &sender.public, &recipient.secret).expect("opens");
    assert_eq!(opened, payload);
    let rc = v1::RecipientCiphertext {
        recipient_id: recipient_id.into(),
        nonce: n.0.to_vec(),
        ciphertext: ciphertext.clone(),
        sender_box_key: sender.public.as_bytes().to_vec(),
        recipient_box_key: recipient.public.as_bytes().to_vec(),
    };
    let v = json!({
        "recipient_id": recipient_id,
        "recipient_box_key": box_key_json(recipient),
        "nonce": h(n.0),
        "ciphertext": h(&ciphertext),
        "recipient_ciphertext": h(rc.encode_to_vec()),
    });
    (rc, v)
}

fn payload(
    message_id: &str,
    sender: &str,
    timestamp: i64,
    group_id: &str,
    body: Body,
    padding: usize,
) -> v1::Payload {
    v1::Payload {
        message_id: message_id.into(),
        sender_id: sender.into(),
        timestamp,
        group_id: group_id.into(),
        body: Some(body),
        padding: vec![0; padding],
    }
}

/// Adds to `v` the lengths of a vector's `input` and `output` (named `<name>_len`), the
/// SHA-256 of the output, and the bytes themselves only when `full` (a large vector
/// gives instead the rule that regenerates its input).
fn add_sized_bytes(
    v: &mut Value,
    full: bool,
    (input_name, input): (&str, &[u8]),
    (output_name, output): (&str, &[u8]),
    output_hash_name: &str,
) {
    v[format!("{input_name}_len")] = json!(input.len());
    v[format!("{output_name}_len")] = json!(output.len());
    v[output_hash_name] = sha256_hex(output);
    if full {
        v[input_name] = h(input);
        v[output_name] = h(output);
    } else {
        v[format!("{input_name}_pattern")] = json!("byte i is i mod 251");
    }
}

/// A 1:1 payload from Alice at `T0`: the shape of every direct-message vector.
fn direct_from_alice(message_id: &str, body: Body, padding: usize) -> v1::Payload {
    payload(message_id, ALICE, T0, "", body, padding)
}

/// A text body.
fn text_body(text: &str) -> Body {
    Body::Text(v1::Text { body: text.into() })
}

fn envelope_box() -> Vec<Value> {
    let (alice, bob) = (box_pair("alice box key"), box_pair("bob box key"));
    let message_id = "0123456789abcdef0123456789abcdef";
    let p = direct_from_alice(message_id, text_body("Your results are normal."), 7);
    let bytes = p.encode_to_vec();
    let (rc, boxed_json) = boxed(&bytes, &alice, BOB, &bob, "envelope box nonce");
    let envelope = v1::Envelope {
        version: 1,
        message_id: message_id.into(),
        timestamp: T0,
        recipients: vec![rc],
        ..Default::default()
    };
    vec![json!({
        "name": "text message from alice to bob",
        "sender_id": ALICE,
        "sender_box_key": box_key_json(&alice),
        "payload_fields": {"message_id": message_id, "sender_id": ALICE, "timestamp": T0, "group_id": "", "text": "Your results are normal.", "padding": "7 zero bytes"},
        "payload": h(&bytes),
        "recipients": [boxed_json],
        "envelope": h(envelope.encode_to_vec()),
    })]
}

fn group_fanout() -> Vec<Value> {
    let alice = box_pair("alice box key");
    let members = [
        (BOB, box_pair("bob box key")),
        (CAROL, box_pair("carol box key")),
    ];
    let group_id = "g0123456789abcdef01234567";
    let mut member_ids = vec![ALICE.to_owned(), BOB.to_owned(), CAROL.to_owned()];
    member_ids.sort();
    let messages = [
        (
            "group created",
            "00000000000000000000000000000001",
            Body::GroupInfo(v1::GroupInfo {
                group_id: group_id.into(),
                name: "Cardiology ward".into(),
                member_ids: member_ids.clone(),
            }),
        ),
        (
            "text to the group",
            "00000000000000000000000000000002",
            Body::Text(v1::Text {
                body: "Rounds at nine.".into(),
            }),
        ),
    ];
    messages
        .into_iter()
        .enumerate()
        .map(|(i, (name, message_id, body))| {
            let p = payload(message_id, ALICE, T0 + i as i64, group_id, body, 3);
            let bytes = p.encode_to_vec();
            let (rcs, jsons): (Vec<_>, Vec<_>) = members
                .iter()
                .map(|(id, k)| boxed(&bytes, &alice, id, k, &format!("group nonce {i} {id}")))
                .unzip();
            let envelope = v1::Envelope {
                version: 1,
                message_id: message_id.into(),
                timestamp: T0 + i as i64,
                group_id: group_id.into(),
                recipients: rcs,
                ..Default::default()
            };
            json!({
                "name": name,
                "sender_id": ALICE,
                "sender_box_key": box_key_json(&alice),
                "group_id": group_id,
                "member_ids": member_ids,
                "payload": h(&bytes),
                "recipients": jsons,
                "envelope": h(envelope.encode_to_vec()),
            })
        })
        .collect()
}

// ---- attachments ----

/// The plaintext of the large attachment vectors: byte `i` is `i mod 251`.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn sha256_hex(bytes: &[u8]) -> Value {
    h(cachet_crypto::sha256(bytes))
}

fn attachment_chunks() -> Vec<Value> {
    let key = SymmetricKey::from_bytes(seed("attachment key"));
    let mut out = Vec::new();
    let small = b"lab report: all values in range\n".to_vec();
    let cases: Vec<(&str, FormatVersion, Vec<u8>, bool)> = vec![
        ("v2 small", FormatVersion::V2, small.clone(), true),
        ("v2 empty", FormatVersion::V2, Vec::new(), true),
        ("v1 small", FormatVersion::V1, small, true),
        ("v1 empty", FormatVersion::V1, Vec::new(), true),
        (
            "v2 two chunks",
            FormatVersion::V2,
            pattern(CHUNK_SIZE + 100),
            false,
        ),
        (
            "v2 exactly one full chunk",
            FormatVersion::V2,
            pattern(CHUNK_SIZE),
            false,
        ),
        (
            "v1 two chunks",
            FormatVersion::V1,
            pattern(CHUNK_SIZE + 100),
            false,
        ),
    ];
    for (name, version, plaintext, full) in cases {
        let mut sealer = ChunkSealer::new(&key, version);
        let count = attachment::chunk_count(version, plaintext.len() as u64) as usize;
        let mut stored = Vec::new();
        let mut chunks = Vec::new();
        for i in 0..count {
            let start = i * CHUNK_SIZE;
            let end = (start + CHUNK_SIZE).min(plaintext.len());
            let is_final = i + 1 == count;
            let sealed = sealer
                .seal_chunk(&plaintext[start..end], is_final)
                .expect("seals");
            let n = attachment::chunk_nonce(version, i as u64 + 1, is_final);
            let mut c = json!({
                "index": i + 1,
                "final": is_final,
                "nonce": h(n.0),
                "plaintext_len": end - start,
                "sealed_len": sealed.len(),
                "tag": h(&sealed[..16]),
                "sealed_sha256": sha256_hex(&sealed),
            });
            if full {
                c["sealed"] = h(&sealed);
            }
            chunks.push(c);
            stored.extend_from_slice(&sealed);
        }
        assert_eq!(stored, attachment::seal_all(&plaintext, &key, version));
        assert_eq!(
            attachment::open_all(&stored, &key, version).expect("opens"),
            plaintext
        );
        assert_eq!(
            stored.len() as u64,
            attachment::sealed_len(version, plaintext.len() as u64)
        );
        let mut v = json!({
            "name": name,
            "format_version": version.number(),
            "key": h(key.expose_secret()),
            "chunks": chunks,
        });
        let (input, output) = (("plaintext", &plaintext[..]), ("stored", &stored[..]));
        add_sized_bytes(&mut v, full, input, output, "ciphertext_sha256");
        out.push(v);
    }
    out
}

fn attachment_pointer() -> Vec<Value> {
    let (alice, bob) = (box_pair("alice box key"), box_pair("bob box key"));
    let key = SymmetricKey::from_bytes(seed("attachment key"));
    let plaintext = b"lab report: all values in range\n";
    let stored = attachment::seal_all(plaintext, &key, FormatVersion::V2);
    let pointer = v1::AttachmentPointer {
        attachment_id: "a_00112233445566778899aabbccddeeff".into(),
        key: key.expose_secret().to_vec(),
        format_version: 2,
        plaintext_size: plaintext.len() as u64,
        ciphertext_sha256: cachet_crypto::sha256(&stored).to_vec(),
        file_name: "report.txt".into(),
        content_type: "text/plain".into(),
    };
    let message_id = "00000000000000000000000000000003";
    let p = direct_from_alice(message_id, Body::Attachment(pointer.clone()), 0);
    let bytes = p.encode_to_vec();
    let (_, boxed_json) = boxed(&bytes, &alice, BOB, &bob, "attachment pointer nonce");
    vec![json!({
        "name": "a small v2 attachment sent to bob",
        "sender_box_key": box_key_json(&alice),
        "pointer_fields": {
            "attachment_id": pointer.attachment_id,
            "key": h(&pointer.key),
            "format_version": 2,
            "plaintext_size": pointer.plaintext_size,
            "ciphertext_sha256": h(&pointer.ciphertext_sha256),
            "file_name": pointer.file_name,
            "content_type": pointer.content_type,
        },
        "pointer": h(pointer.encode_to_vec()),
        "payload": h(&bytes),
        "recipients": [boxed_json],
    })]
}

// ---- cases ----

fn case() -> Vec<Value> {
    let (alice, bob) = (box_pair("alice box key"), box_pair("bob box key"));
    let alice_sign = sign_pair("alice sign key");
    let case_key = SymmetricKey::from_bytes(seed("case key"));
    let case_id = "c0123456789abcdef01234567";
    // Sealed case keys: the raw 32-byte key, boxed by the creator to each participant,
    // the creator included.
    let sealed_keys: Vec<Value> = [(ALICE, &alice), (BOB, &bob)]
        .into_iter()
        .map(|(id, k)| {
            let n = nonce(&format!("case key nonce {id}"));
            let ciphertext = PrecomputedBox::new(&k.public, &alice.secret)
                .expect("valid key")
                .seal_with_nonce(case_key.expose_secret(), &n);
            let sealed = v1::SealedCaseKey {
                participant_id: id.into(),
                key_epoch: 1,
                sealed_by: ALICE.into(),
                sealer_box_key: alice.public.as_bytes().to_vec(),
                recipient_box_key: k.public.as_bytes().to_vec(),
                nonce: n.0.to_vec(),
                ciphertext: ciphertext.clone(),
            };
            assert_eq!(
                boxes::open(&ciphertext, &n, &alice.public, &k.secret).expect("opens"),
                case_key.expose_secret()
            );
            json!({
                "participant_id": id,
                "recipient_box_key": box_key_json(k),
                "key_epoch": 1,
                "nonce": h(n.0),
                "ciphertext": h(&ciphertext),
                "sealed_case_key": h(sealed.encode_to_vec()),
            })
        })
        .collect();
    // Sealed fields.
    let mut fields = BTreeMap::new();
    fields.insert("reason".to_owned(), "persistent cough".to_owned());
    fields.insert("patient".to_owned(), "P-1024".to_owned());
    let title = "Persistent cough";
    let fields_nonce = nonce("case fields nonce");
    let sealed_fields =
        cachet_client::seal_case_fields(title, &fields, &case_key, &fields_nonce).expect("seals");
    let (t, f) = cachet_client::open_case_fields(&sealed_fields, &case_key).expect("opens");
    assert_eq!((t.as_str(), &f), (title, &fields));
    let fields_plain = SecretBox::new(&case_key)
        .open(&sealed_fields[24..], &fields_nonce)
        .expect("opens");
    // A case message.
    let message_id = "00000000000000000000000000000004";
    let p = direct_from_alice(message_id, text_body("X-ray booked for Monday."), 5);
    let payload_bytes = p.encode_to_vec();
    let signed = v1::SignedPayload {
        signature: sign::sign_detached(&payload_bytes, &alice_sign).to_vec(),
        sign_key: alice_sign.public().as_bytes().to_vec(),
        payload: payload_bytes.clone(),
    };
    let signed_bytes = signed.encode_to_vec();
    let msg_nonce = nonce("case message nonce");
    let ciphertext = SecretBox::new(&case_key).seal_with_nonce(&signed_bytes, &msg_nonce);
    let envelope = v1::Envelope {
        version: 1,
        message_id: message_id.into(),
        timestamp: T0,
        case_message: Some(v1::CaseCiphertext {
            case_id: case_id.into(),
            nonce: msg_nonce.0.to_vec(),
            ciphertext: ciphertext.clone(),
            key_epoch: 1,
        }),
        ..Default::default()
    };
    vec![json!({
        "name": "a case opened by alice with bob",
        "case_id": case_id,
        "case_key": h(case_key.expose_secret()),
        "creator_box_key": box_key_json(&alice),
        "creator_sign_key": sign_key_json(&alice_sign),
        "sealed_case_keys": sealed_keys,
        "fields": {
            "title": title,
            "fields": fields,
            "nonce": h(fields_nonce.0),
            "plaintext_json": String::from_utf8(fields_plain).expect("utf-8"),
            "sealed_fields": h(&sealed_fields),
        },
        "message": {
            "payload": h(&payload_bytes),
            "signature": h(&signed.signature),
            "signed_payload": h(&signed_bytes),
            "nonce": h(msg_nonce.0),
            "ciphertext": h(&ciphertext),
            "envelope": h(envelope.encode_to_vec()),
        },
    })]
}

// ---- key changes ----

fn key_change() -> Vec<Value> {
    let old_sign = sign_pair("alice sign key");
    let new_box = box_pair("alice box key 2");
    let new_sign = sign_pair("alice sign key 2");
    let challenge_id = "c_00112233445566778899aabbccddeeff";
    let proof = v1::KeyChange {
        user_id: challenge_id.into(),
        key_version: 0,
        box_key: new_box.public.as_bytes().to_vec(),
        sign_key: new_sign.public().as_bytes().to_vec(),
        previous_sign_key: Vec::new(),
    };
    let proof_bytes = cachet_proto::key_change_bytes(&proof);
    let self_signature = sign::sign_detached(&proof_bytes, &new_sign);
    let change = v1::KeyChange {
        user_id: ALICE.into(),
        key_version: 2,
        box_key: new_box.public.as_bytes().to_vec(),
        sign_key: new_sign.public().as_bytes().to_vec(),
        previous_sign_key: old_sign.public().as_bytes().to_vec(),
    };
    let change_bytes = cachet_proto::key_change_bytes(&change);
    let previous_key_signature = sign::sign_detached(&change_bytes, &old_sign);
    sign::verify_detached(&change_bytes, &previous_key_signature, &old_sign.public())
        .expect("verifies");
    let finish = v1::RegisterFinish {
        challenge_id: challenge_id.into(),
        code: "123456".into(),
        box_key: new_box.public.as_bytes().to_vec(),
        sign_key: new_sign.public().as_bytes().to_vec(),
        display_name: "Dr Martin".into(),
        self_signature: self_signature.to_vec(),
        previous_key_signature: previous_key_signature.to_vec(),
    };
    vec![json!({
        "name": "a new installation of alice, authorised by her previous Sign Key",
        "user_id": ALICE,
        "challenge_id": challenge_id,
        "new_box_key": box_key_json(&new_box),
        "new_sign_key": sign_key_json(&new_sign),
        "previous_sign_key": sign_key_json(&old_sign),
        "proof_of_possession": {
            "key_change": h(&proof_bytes),
            "self_signature": h(self_signature),
        },
        "authorised_change": {
            "key_version": 2,
            "key_change": h(&change_bytes),
            "previous_key_signature": h(previous_key_signature),
        },
        "register_finish": h(finish.encode_to_vec()),
    })]
}

// ---- trust log ----

fn trust_log() -> Vec<Value> {
    let box1 = box_pair("alice box key");
    let sign1 = sign_pair("alice sign key");
    let box2 = box_pair("alice box key 2");
    let sign2 = sign_pair("alice sign key 2");
    let recovery = sign_pair("alice recovery key");
    let operator = sign_pair("operator key");
    let log_key = sign_pair("log key");
    let op = || Author::Operator {
        id: "op:alice-admin".into(),
        key: operator.public(),
    };
    let steps: Vec<(&str, Event, Author, &SignKeyPair)> = vec![
        (
            "UserCreated",
            Event::UserCreated {
                box_key: *box1.public.as_bytes(),
                sign_key: *sign1.public().as_bytes(),
            },
            Author::Key(sign1.public()),
            &sign1,
        ),
        (
            "RecoveryKeySet",
            Event::RecoveryKeySet {
                recovery_key: *recovery.public().as_bytes(),
            },
            Author::Key(sign1.public()),
            &sign1,
        ),
        ("ProfileVerified", Event::ProfileVerified, op(), &operator),
        (
            "MembershipChanged",
            Event::MembershipChanged {
                scope: Scope::Case,
                id: "c0123456789abcdef01234567".into(),
                member_id: BOB.into(),
                added: true,
            },
            Author::Key(sign1.public()),
            &sign1,
        ),
        (
            "KeysAdded",
            Event::KeysAdded {
                key_version: 2,
                box_key: *box2.public.as_bytes(),
                sign_key: *sign2.public().as_bytes(),
            },
            Author::Key(sign1.public()),
            &sign1,
        ),
        (
            "KeysRevoked",
            Event::KeysRevoked { key_version: 2 },
            op(),
            &operator,
        ),
    ];
    let mut prev = [0u8; 32];
    let mut log = MerkleLog::new();
    let mut blocks = Vec::new();
    let mut out = Vec::new();
    for (seq, (name, event, author, key)) in steps.into_iter().enumerate() {
        let body = BlockBody {
            user_id: ALICE.into(),
            seq: seq as u64,
            prev,
            timestamp_ms: T0 + seq as i64,
            event,
            author,
        };
        let signing_input = body.signing_input();
        let block = body.sign(key);
        block.verify_signature().expect("verifies");
        let bytes = block.to_bytes();
        assert_eq!(Block::from_bytes(&bytes).expect("parses"), block);
        let leaf = block.hash();
        assert_eq!(leaf, cachet_trust::merkle::leaf_hash(&bytes));
        log.append(&bytes);
        prev = leaf;
        blocks.push(json!({
            "name": name,
            "seq": seq,
            "body": h(block.body.encode()),
            "signing_input": h(&signing_input),
            "signature": h(block.signature),
            "block": h(&bytes),
            "leaf_hash": h(leaf),
        }));
    }
    out.push(json!({
        "name": "one chain with a block of every type",
        "keys": {
            "box_key_1": box_key_json(&box1),
            "sign_key_1": sign_key_json(&sign1),
            "box_key_2": box_key_json(&box2),
            "sign_key_2": sign_key_json(&sign2),
            "recovery_key": sign_key_json(&recovery),
            "operator": {"id": "op:alice-admin", "key": sign_key_json(&operator)},
        },
        "blocks": blocks,
    }));
    let n = log.size();
    let roots: Vec<Value> = (0..=n)
        .map(|m| json!({"size": m, "root": h(log.root_at(m).expect("root"))}))
        .collect();
    let sth = SignedTreeHead::sign(n, log.root(), T0 + 100, &log_key);
    sth.verify(&log_key.public()).expect("verifies");
    let sth_bytes = sth.to_bytes();
    assert_eq!(sth_bytes.len(), cachet_trust::sth::STH_LEN);
    let mut signed = b"cachet-trust-sth-v1\0".to_vec();
    signed.extend_from_slice(&sth_bytes[..49]);
    sign::verify_detached(&signed, &sth.signature, &log_key.public())
        .expect("documented signed part");
    let inclusion: Vec<Value> = (0..n)
        .map(|i| {
            let proof = log.inclusion_proof(i, n).expect("proof");
            json!({"index": i, "size": n, "leaf_hash": h(log.leaf(i).expect("leaf")), "proof": proof.iter().map(h).collect::<Vec<_>>()})
        })
        .collect();
    let consistency: Vec<Value> = (0..=n)
        .map(|m| {
            let proof = log.consistency_proof(m, n).expect("proof");
            json!({"from": m, "to": n, "proof": proof.iter().map(h).collect::<Vec<_>>()})
        })
        .collect();
    out.push(json!({
        "name": "the log of those blocks, in that order",
        "log_key": sign_key_json(&log_key),
        "roots": roots,
        "signed_tree_head": {
            "size": n,
            "root": h(sth.root),
            "timestamp_ms": sth.timestamp_ms,
            "signed_message": h(&signed),
            "signature": h(sth.signature),
            "sth": h(&sth_bytes),
            "length": sth_bytes.len(),
        },
        "inclusion_proofs": inclusion,
        "consistency_proofs": consistency,
    }));
    out
}

// ---- safety numbers ----

fn safety_number() -> Vec<Value> {
    let (ab, asg) = (box_pair("alice box key"), sign_pair("alice sign key"));
    let (bb, bsg) = (box_pair("bob box key"), sign_pair("bob sign key"));
    let (asp, bsp) = (asg.public(), bsg.public());
    let alice = Identity {
        user_id: ALICE,
        box_key: &ab.public,
        sign_key: &asp,
    };
    let bob = Identity {
        user_id: BOB,
        box_key: &bb.public,
        sign_key: &bsp,
    };
    let party = |i: &Identity<'_>| {
        let f = fingerprint::fingerprint(i);
        json!({
            "user_id": i.user_id,
            "box_key": h(i.box_key.as_bytes()),
            "sign_key": h(i.sign_key.as_bytes()),
            "fingerprint": h(f),
            "digits": fingerprint::digits(&f),
        })
    };
    let number = fingerprint::safety_number(&bob, &alice);
    assert_eq!(number, fingerprint::safety_number(&alice, &bob));
    let qr = fingerprint::qr_payload(&bob, &alice);
    fingerprint::verify_qr_payload(&qr, &alice, &bob).expect("matches");
    vec![json!({
        "name": "alice and bob",
        "parties": [party(&alice), party(&bob)],
        "safety_number": number,
        "qr_payload": h(qr),
    })]
}

// ---- local files ----

fn local_file() -> Vec<Value> {
    let key = SymmetricKey::from_bytes(seed("local file key"));
    let cases: [(&str, Vec<u8>, bool); 3] = [
        (
            "one record",
            b"draft note: call the lab back".to_vec(),
            true,
        ),
        ("empty file", Vec::new(), true),
        ("two records", pattern(2 * 1024 * 1024 + 3), false),
    ];
    cases
        .into_iter()
        .map(|(name, data, full)| {
            let chunks: Vec<&[u8]> = if data.is_empty() {
                vec![&[][..]]
            } else {
                data.chunks(2 * 1024 * 1024).collect()
            };
            let mut file = cachet_client::LOCAL_FILE_MAGIC.to_vec();
            let mut records = Vec::new();
            for (i, chunk) in chunks.iter().enumerate() {
                let is_final = i + 1 == chunks.len();
                let n = nonce(&format!("local file nonce {name} {i}"));
                let record = cachet_client::seal_local_record(&key, i as u64, is_final, chunk, &n);
                let mut r = json!({
                    "index": i,
                    "final": is_final,
                    "nonce": h(n.0),
                    "data_len": chunk.len(),
                    "record_len": record.len(),
                    "record_sha256": sha256_hex(&record),
                });
                if full {
                    r["record"] = h(&record);
                }
                records.push(r);
                file.extend_from_slice(&record);
            }
            let dir = tempfile::tempdir().expect("temp dir");
            std::fs::write(dir.path().join("v.sealed"), &file).expect("writes");
            let store = cachet_client::LocalFiles::new(
                dir.path(),
                SymmetricKey::from_bytes(seed("local file key")),
            );
            assert_eq!(store.read("v").expect("opens").as_slice(), data.as_slice());
            let mut v = json!({
                "name": name,
                "key": h(key.expose_secret()),
                "records": records,
            });
            let (input, output) = (("data", &data[..]), ("file", &file[..]));
            add_sized_bytes(&mut v, full, input, output, "file_sha256");
            v
        })
        .collect()
}

// ---- recovery ----

fn point(bytes: &[u8]) -> RistrettoPoint {
    CompressedRistretto::from_slice(bytes)
        .expect("32 bytes")
        .decompress()
        .expect("a point")
}

fn recovery() -> Vec<Value> {
    let user_id = ALICE;
    let password = b"correct horse battery staple";
    // x = be32|uid| ‖ uid ‖ be32|pw| ‖ pw
    let mut x = (user_id.len() as u32).to_be_bytes().to_vec();
    x.extend_from_slice(user_id.as_bytes());
    x.extend_from_slice(&(password.len() as u32).to_be_bytes());
    x.extend_from_slice(password);
    let h1_input = [b"cachet 2HashDH v1 H1".as_slice(), &x].concat();
    let h1_hash: [u8; 64] = Sha512::digest(&h1_input).into();
    let h1 = RistrettoPoint::from_uniform_bytes(&h1_hash);

    // Shares: scalars from labels.
    let share = |label: &str| {
        let wide: [u8; 64] = Sha512::digest(seed(label)).into();
        ServerShare::from_bytes(&Scalar::from_bytes_mod_order_wide(&wide).to_bytes())
            .expect("canonical")
    };
    let (k1, k2) = (share("data server share"), share("key server share"));
    let shares = PublicShares {
        data_server: k1.public(),
        key_server: k2.public(),
    };

    // Blind.
    let blind_random = FixedRng::peek("blind", 64);
    let r = Scalar::from_bytes_mod_order_wide(&blind_random.clone().try_into().expect("64"));
    let (state, blinded) = oprf::blind_with_rng(user_id, password, &mut FixedRng::new("blind"));
    assert_eq!(blinded, (h1 * r).compress().to_bytes());

    // Evaluate at both servers.
    let a = point(&blinded);
    let eval = |k: &ServerShare, label: &str| {
        let e = k
            .evaluate_with_rng(&blinded, &mut FixedRng::new(label))
            .expect("evaluates");
        let t_random = FixedRng::peek(label, 64);
        let t = Scalar::from_bytes_mod_order_wide(&t_random.clone().try_into().expect("64"));
        let kk = Option::<Scalar>::from(Scalar::from_canonical_bytes(k.expose_secret()))
            .expect("canonical");
        let (t1, t2) = (G * t, a * t);
        let mut ch = b"cachet 2HashDH v1 DLEQ".to_vec();
        for p in [G, G * kk, a, point(&e.element), t1, t2] {
            ch.extend_from_slice(p.compress().as_bytes());
        }
        let c_hash: [u8; 64] = Sha512::digest(&ch).into();
        let c = Scalar::from_bytes_mod_order_wide(&c_hash);
        let s = t - c * kk;
        assert_eq!(e.proof[..32], c.to_bytes());
        assert_eq!(e.proof[32..], s.to_bytes());
        let v = json!({
            "share": h(k.expose_secret()),
            "public_share": h(k.public().0),
            "element": h(e.element),
            "proof_random": h(&t_random),
            "t": h(t.to_bytes()),
            "t1": h(t1.compress().as_bytes()),
            "t2": h(t2.compress().as_bytes()),
            "challenge_input": h(&ch),
            "challenge_hash": h(c_hash),
            "c": h(c.to_bytes()),
            "s": h(s.to_bytes()),
            "proof": h(e.proof),
        });
        (v, e)
    };
    let (eval1, e1) = eval(&k1, "data server proof");
    let (eval2, e2) = eval(&k2, "key server proof");

    // Unblind.
    let y = (point(&e1.element) + point(&e2.element)) * r.invert();
    let output = oprf::finalize(state, &shares, &e1, &e2).expect("finalizes");
    let direct = oprf::evaluate_with_both_shares(user_id, password, &k1, &k2);
    assert_eq!(output.expose_secret(), direct.expose_secret());
    let mut h2_input = b"cachet 2HashDH v1 H2".to_vec();
    h2_input.extend_from_slice(&(x.len() as u32).to_be_bytes());
    h2_input.extend_from_slice(&x);
    h2_input.extend_from_slice(y.compress().as_bytes());
    assert_eq!(Sha512::digest(&h2_input).as_slice(), output.expose_secret());

    // Keys.
    let params = HardeningParams::RECOMMENDED;
    let keys = RecoveryKeys::derive(&output, user_id, params).expect("derives");
    let salt = cachet_crypto::sha256(
        &[b"cachet recovery salt v1:".as_slice(), user_id.as_bytes()].concat(),
    );
    // The documented derivation, step by step, must give the keys the code derives.
    let mut hardened = [0u8; 32];
    argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(65_536, 3, 1, Some(32)).expect("params"),
    )
    .hash_password_into(output.expose_secret(), &salt, &mut hardened)
    .expect("argon2id");
    let (wrap, auth_seed) = hkdf_keys(&hardened);
    assert_eq!(&wrap, keys.wrap_key.expose_secret());
    assert_eq!(auth_seed, keys.auth_key.expose_seed());

    // Key ring.
    let ring = KeyRing {
        user_id: user_id.into(),
        generations: vec![
            cachet_recovery::keyring::KeyGeneration {
                key_version: 1,
                box_keys: box_pair("alice box key"),
                sign_keys: sign_pair("alice sign key"),
            },
            cachet_recovery::keyring::KeyGeneration {
                key_version: 2,
                box_keys: box_pair("alice box key 2"),
                sign_keys: sign_pair("alice sign key 2"),
            },
        ],
        backup_key: SymmetricKey::from_bytes(seed("backup key")),
    };
    let ring_nonce = nonce("key ring nonce");
    let envelope = ring.seal_with_nonce(&keys.wrap_key, &ring_nonce);
    assert_eq!(
        KeyRing::open(&envelope, &keys.wrap_key, user_id).expect("opens"),
        ring
    );
    let ring_plain = SecretBox::new(&keys.wrap_key)
        .open(&envelope[24..], &ring_nonce)
        .expect("opens");

    // Signed messages.
    let challenge_id = "c_00112233445566778899aabbccddeeff";
    let enrol = wire::enrol_message(
        challenge_id,
        user_id,
        &shares.data_server.0,
        &shares.key_server.0,
        keys.auth_key.public().as_bytes(),
        &envelope,
    );
    let success = wire::success_message(challenge_id, user_id);
    let update = wire::update_message(user_id, T0, &envelope);
    let signed =
        |m: &[u8]| json!({"message": h(m), "signature": h(sign::sign_detached(m, &keys.auth_key))});
    let enrol_request = wire::EnrolRequest {
        identity: wire::Identity {
            challenge_id: challenge_id.into(),
            code: "123456".into(),
        },
        user_id: user_id.into(),
        data_server_share: hex::encode(shares.data_server.0),
        key_server_share: hex::encode(shares.key_server.0),
        auth_public: hex::encode(keys.auth_key.public().as_bytes()),
        envelope: hex::encode(&envelope),
        signature: hex::encode(sign::sign_detached(&enrol, &keys.auth_key)),
        previous_signature: String::new(),
    };
    let evaluate_request = wire::EvaluateRequest {
        identity: wire::Identity {
            challenge_id: challenge_id.into(),
            code: "123456".into(),
        },
        user_id: user_id.into(),
        blinded: hex::encode(blinded),
    };
    let evaluate_response = wire::EvaluateResponse {
        user_id: user_id.into(),
        public_share: hex::encode(shares.data_server.0),
        element: hex::encode(e1.element),
        proof: hex::encode(e1.proof),
    };

    vec![json!({
        "name": "enrolment of alice",
        "user_id": user_id,
        "password": String::from_utf8_lossy(password),
        "input": h(&x),
        "h1": {"hash_input": h(&h1_input), "sha512": h(h1_hash), "point": h(h1.compress().as_bytes())},
        "blind": {"random": h(&blind_random), "r": h(r.to_bytes()), "blinded": h(blinded)},
        "data_server": eval1,
        "key_server": eval2,
        "joint_public_key": h(shares.joint().expect("joint")),
        "unblind": {"r_inverse": h(r.invert().to_bytes()), "y": h(y.compress().as_bytes()), "h2_input": h(&h2_input), "output": h(output.expose_secret())},
        "derive": {
            "argon2id": {"memory_kib": params.memory_kib, "iterations": params.iterations, "lanes": 1, "version": "0x13", "output_len": 32, "salt": h(salt)},
            "hkdf": {"hash": "SHA-256", "salt": "cachet recovery v1", "wrap_info": "key ring wrapping key", "auth_info": "recovery authentication key"},
            "hardened": h(hardened),
            "wrap_key": h(keys.wrap_key.expose_secret()),
            "auth_seed": h(keys.auth_key.expose_seed()),
            "auth_public": h(keys.auth_key.public().as_bytes()),
        },
        "key_ring": {
            "backup_key": h(seed("backup key")),
            "plaintext": h(&ring_plain),
            "nonce": h(ring_nonce.0),
            "envelope": h(&envelope),
        },
        "signed_messages": {
            "challenge_id": challenge_id,
            "update_timestamp": T0,
            "enrol": signed(&enrol),
            "success": signed(&success),
            "update": signed(&update),
        },
        "json_bodies": {
            "evaluate_request": serde_json::to_value(&evaluate_request).expect("json"),
            "evaluate_response_data_server": serde_json::to_value(&evaluate_response).expect("json"),
            "enrol_request": serde_json::to_value(&enrol_request).expect("json"),
        },
    })]
}

/// `wrap_key` and the auth key's seed from the hardened output, as docs/recovery.md
/// specifies them: HKDF-SHA-256 with the salt "cachet recovery v1".
pub fn hkdf_keys(hardened: &[u8]) -> ([u8; 32], [u8; 32]) {
    let hk = hkdf::Hkdf::<Sha256>::new(Some(b"cachet recovery v1"), hardened);
    let (mut wrap, mut auth) = ([0u8; 32], [0u8; 32]);
    hk.expand(b"key ring wrapping key", &mut wrap)
        .expect("32 bytes");
    hk.expand(b"recovery authentication key", &mut auth)
        .expect("32 bytes");
    (wrap, auth)
}

/// The text of a vector file: pretty JSON with a final newline.
pub fn render(content: &Value) -> String {
    let mut text = serde_json::to_string_pretty(content).unwrap_or_default();
    text.push('\n');
    text
}
