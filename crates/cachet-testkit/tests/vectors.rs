//! The test vectors of `docs/vectors/` against the code.
//!
//! Two checks: every file is exactly what the generator (`examples/vectors.rs`, from
//! cachet's own functions with fixed keys, nonces and randomness) produces today, and the
//! published bytes open, verify and parse with cachet's code, read from the files alone.
//! A change to any construction fails here until the vectors (and the documentation)
//! follow: `cargo run -p cachet-testkit --example vectors -- --write`.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

#[path = "../vectors/generate.rs"]
#[allow(dead_code)] // each of the example and the test uses a part
mod generate;

use std::collections::BTreeSet;
use std::path::PathBuf;

use cachet_crypto::attachment::{self, FormatVersion};
use cachet_crypto::{boxes, BoxPublicKey, BoxSecretKey, Nonce, SignPublicKey, SymmetricKey};
use cachet_proto::auth::{ParsedSignature, RequestTarget};
use cachet_trust::merkle::{verify_consistency, verify_inclusion, Hash};
use cachet_trust::{Block, SignedTreeHead};
use serde_json::Value;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/vectors")
}

fn load(name: &str) -> Value {
    let text = std::fs::read_to_string(dir().join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

fn arr<const N: usize>(v: &Value) -> [u8; N] {
    bytes(v).try_into().unwrap()
}

fn vectors(name: &str) -> Vec<Value> {
    load(name)["vectors"].as_array().unwrap().clone()
}

#[test]
fn vector_files_match_the_generator() {
    let generated = generate::all();
    let names: BTreeSet<String> = generated.iter().map(|f| f.name.to_owned()).collect();
    for file in &generated {
        assert!(
            load(file.name) == file.content,
            "docs/vectors/{} differs from the code; regenerate with \
             `cargo run -p cachet-testkit --example vectors -- --write` and check why",
            file.name
        );
    }
    let on_disk: BTreeSet<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    assert_eq!(
        on_disk, names,
        "vector files without a generator, or missing"
    );
}

#[test]
fn request_signatures_verify() {
    for v in vectors("request-signature.json") {
        let parsed =
            ParsedSignature::parse(v["x-siilo-uid"].as_str(), v["x-siilo-sig"].as_str()).unwrap();
        let body = bytes(&v["body"]);
        let target = RequestTarget {
            method: v["method"].as_str().unwrap(),
            path: v["uri_path"].as_str().unwrap(),
            body: &body,
        };
        parsed
            .check_target(&target, v["header"]["timestamp"].as_i64().unwrap())
            .unwrap();
        let key = SignPublicKey(arr(&v["sign_key"]["public"]));
        parsed.verify(&key).unwrap();
        assert_eq!(bytes(&v["sm"])[..64], bytes(&v["signature"]));
    }
}

fn open_recipients(v: &Value) -> Vec<Vec<u8>> {
    let sender = BoxPublicKey(arr(&v["sender_box_key"]["public"]));
    v["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let secret = BoxSecretKey::from_bytes(arr(&r["recipient_box_key"]["secret"]));
            boxes::open(
                &bytes(&r["ciphertext"]),
                &Nonce(arr(&r["nonce"])),
                &sender,
                &secret,
            )
            .unwrap()
        })
        .collect()
}

#[test]
fn boxes_open_to_the_payload() {
    for file in [
        "envelope-box.json",
        "group-fanout.json",
        "attachment-pointer.json",
    ] {
        for v in vectors(file) {
            for opened in open_recipients(&v) {
                assert_eq!(opened, bytes(&v["payload"]), "{file}");
            }
        }
    }
}

#[test]
fn attachments_open() {
    for v in vectors("attachment-chunks.json") {
        let version =
            FormatVersion::from_number(v["format_version"].as_u64().unwrap() as u32).unwrap();
        let key = SymmetricKey::from_bytes(arr(&v["key"]));
        if let Some(stored) = v.get("stored") {
            let opened = attachment::open_all(&bytes(stored), &key, version).unwrap();
            assert_eq!(opened, bytes(&v["plaintext"]));
        }
        for c in v["chunks"].as_array().unwrap() {
            let nonce = attachment::chunk_nonce(
                version,
                c["index"].as_u64().unwrap(),
                c["final"].as_bool().unwrap(),
            );
            assert_eq!(nonce.0.to_vec(), bytes(&c["nonce"]));
        }
    }
}

#[test]
fn case_material_opens() {
    for v in vectors("case.json") {
        let case_key = bytes(&v["case_key"]);
        let creator = BoxPublicKey(arr(&v["creator_box_key"]["public"]));
        for k in v["sealed_case_keys"].as_array().unwrap() {
            let secret = BoxSecretKey::from_bytes(arr(&k["recipient_box_key"]["secret"]));
            let opened = boxes::open(
                &bytes(&k["ciphertext"]),
                &Nonce(arr(&k["nonce"])),
                &creator,
                &secret,
            )
            .unwrap();
            assert_eq!(opened, case_key);
        }
        let key = SymmetricKey::from_slice(&case_key).unwrap();
        let (title, fields) =
            cachet_client::open_case_fields(&bytes(&v["fields"]["sealed_fields"]), &key).unwrap();
        assert_eq!(title, v["fields"]["title"].as_str().unwrap());
        assert_eq!(serde_json::to_value(fields).unwrap(), v["fields"]["fields"]);
    }
}

#[test]
fn trust_blocks_and_proofs_verify() {
    let v = vectors("trust-log.json");
    let mut leaves: Vec<Hash> = Vec::new();
    for b in v[0]["blocks"].as_array().unwrap() {
        let block = Block::from_bytes(&bytes(&b["block"])).unwrap();
        block.verify_signature().unwrap();
        assert_eq!(block.hash().to_vec(), bytes(&b["leaf_hash"]));
        leaves.push(block.hash());
    }
    let log = &v[1];
    let sth = SignedTreeHead::from_bytes(&bytes(&log["signed_tree_head"]["sth"])).unwrap();
    sth.verify(&SignPublicKey(arr(&log["log_key"]["public"])))
        .unwrap();
    assert_eq!(sth.size, leaves.len() as u64);
    let roots: Vec<Hash> = log["roots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| arr(&r["root"]))
        .collect();
    assert_eq!(roots[leaves.len()], sth.root);
    for p in log["inclusion_proofs"].as_array().unwrap() {
        let i = p["index"].as_u64().unwrap();
        let proof: Vec<Hash> = p["proof"].as_array().unwrap().iter().map(arr).collect();
        verify_inclusion(&leaves[i as usize], i, sth.size, &proof, &sth.root).unwrap();
    }
    for p in log["consistency_proofs"].as_array().unwrap() {
        let m = p["from"].as_u64().unwrap();
        let proof: Vec<Hash> = p["proof"].as_array().unwrap().iter().map(arr).collect();
        verify_consistency(m, sth.size, &proof, &roots[m as usize], &sth.root).unwrap();
    }
}

#[test]
fn local_files_open() {
    for v in vectors("local-file.json") {
        let Some(file) = v.get("file") else { continue };
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f.sealed"), bytes(file)).unwrap();
        let store =
            cachet_client::LocalFiles::new(dir.path(), SymmetricKey::from_bytes(arr(&v["key"])));
        assert_eq!(
            store.read("f").unwrap().as_slice(),
            bytes(&v["data"]).as_slice()
        );
    }
}

/// The keys come from the hardened output by HKDF with the documented salt: without
/// it (as `docs/recovery.md` once wrote the formula) the rings of two implementations
/// would not open each other.
#[test]
fn recovery_keys_follow_the_documented_hkdf() {
    for v in vectors("recovery.json") {
        let d = &v["derive"];
        assert_eq!(d["hkdf"]["salt"], "cachet recovery v1");
        let (wrap, auth) = generate::hkdf_keys(&bytes(&d["hardened"]));
        assert_eq!(wrap.to_vec(), bytes(&d["wrap_key"]));
        assert_eq!(auth.to_vec(), bytes(&d["auth_seed"]));
        let unsalted = hkdf::Hkdf::<sha2::Sha256>::new(None, &bytes(&d["hardened"]));
        let mut wrong = [0u8; 32];
        unsalted
            .expand(b"key ring wrapping key", &mut wrong)
            .unwrap();
        assert_ne!(wrong.to_vec(), bytes(&d["wrap_key"]));
    }
}

/// The signed tree head is 113 bytes, as documented (it was once written as 137).
#[test]
fn a_signed_tree_head_is_113_bytes() {
    let v = vectors("trust-log.json");
    let head = &v[1]["signed_tree_head"];
    assert_eq!(bytes(&head["sth"]).len(), 113);
    assert_eq!(cachet_trust::sth::STH_LEN, 113);
    let doc = std::fs::read_to_string(dir().join("../trust-chain.md")).unwrap();
    assert!(
        doc.contains("signature (64)   113 bytes"),
        "docs/trust-chain.md §2 gives another length"
    );
    let proto =
        std::fs::read_to_string(dir().join("../../crates/cachet-proto/proto/cachet/v1/api.proto"))
            .unwrap();
    assert!(proto.contains("SignedTreeHead, 113 bytes"));
    assert!(!doc.contains("137") && !proto.contains("137"));
}

#[test]
fn the_key_ring_opens_with_the_derived_wrap_key() {
    for v in vectors("recovery.json") {
        let key = SymmetricKey::from_bytes(arr(&v["derive"]["wrap_key"]));
        let user_id = v["user_id"].as_str().unwrap();
        let ring =
            cachet_recovery::KeyRing::open(&bytes(&v["key_ring"]["envelope"]), &key, user_id)
                .unwrap();
        assert_eq!(ring.generations.len(), 2);
        let auth = SignPublicKey(arr(&v["derive"]["auth_public"]));
        for m in ["enrol", "success", "update"] {
            let s = &v["signed_messages"][m];
            cachet_crypto::sign::verify_detached(
                &bytes(&s["message"]),
                &arr::<64>(&s["signature"]),
                &auth,
            )
            .unwrap();
        }
    }
}
