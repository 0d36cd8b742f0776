//! Known-answer tests: published vectors, run through cachet-crypto and, as a check on
//! the vector files themselves, through libsodium.
//!
//! Every vector is one JSON file under `tests/vectors/`, with a `kind` saying how to run
//! it, a `description`, its `source`, hex-encoded byte strings and, where it applies,
//! `valid`. Files for cases that must fail are named after the defect they carry
//! (`box_bad_tag.json`, `ed25519_small_order_key.json`, ...).
//!
//! Sources:
//! * `nacl_box.json`, `nacl_secretbox.json`: the classic NaCl vectors (NaCl's
//!   `tests/box.c`, `tests/secretbox.c`; expected output as in libsodium's
//!   `test/default/box.exp` and `secretbox.exp`).
//! * `rfc8032_*.json`: RFC 8032 section 7.1, Ed25519 TEST 1, 2, 3 and SHA(abc).
//! * `x25519_rfc7748_*.json`: RFC 7748 section 6.1 (Alice's and Bob's keys and their
//!   shared secret; the same key pairs the NaCl vectors use).

use std::collections::BTreeMap;
use std::path::PathBuf;

use cachet_crypto::boxes::{self, PrecomputedBox};
use cachet_crypto::secretbox::{self, SecretBox};
use cachet_crypto::sign::{self, BatchItem};
use cachet_crypto::{
    BoxPublicKey, BoxSecretKey, CryptoError, Nonce, SignKeyPair, SignPublicKey, SymmetricKey,
};
use cachet_sodium_ref as sodium;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Vector {
    /// crypto_box: `ciphertext` (tag || ciphertext) from sender to recipient.
    Box(BoxVector),
    /// crypto_box to a public key of small order, which must be refused.
    BoxSmallOrder(BoxSmallOrderVector),
    /// crypto_secretbox: `ciphertext` (tag || ciphertext) under `key`.
    Secretbox(SecretboxVector),
    /// Ed25519: `signature` over `message` under `public_key` (from `seed` when given).
    Ed25519(Ed25519Vector),
    /// X25519 base-point multiplication: `public` from `secret`.
    X25519Base(X25519BaseVector),
    /// X25519 key agreement and the crypto_box key derived from it.
    X25519Shared(X25519SharedVector),
}

#[derive(Debug, Deserialize)]
struct BoxVector {
    description: String,
    sender_sk: String,
    sender_pk: String,
    recipient_sk: String,
    recipient_pk: String,
    nonce: String,
    plaintext: String,
    ciphertext: String,
    valid: bool,
}

#[derive(Debug, Deserialize)]
struct BoxSmallOrderVector {
    description: String,
    sender_sk: String,
    recipient_pk: String,
    nonce: String,
    valid: bool,
}

#[derive(Debug, Deserialize)]
struct SecretboxVector {
    description: String,
    key: String,
    nonce: String,
    plaintext: String,
    ciphertext: String,
    valid: bool,
}

#[derive(Debug, Deserialize)]
struct Ed25519Vector {
    description: String,
    seed: Option<String>,
    public_key: String,
    message: String,
    signature: String,
    valid: bool,
}

#[derive(Debug, Deserialize)]
struct X25519BaseVector {
    description: String,
    secret: String,
    public: String,
}

#[derive(Debug, Deserialize)]
struct X25519SharedVector {
    description: String,
    alice_secret: String,
    alice_public: String,
    bob_secret: String,
    bob_public: String,
    shared: String,
    box_key: String,
}

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

/// Every vector file, by file name. Fails on a file that does not parse, so that no
/// vector can sit in the directory unrun.
fn all_vectors() -> BTreeMap<String, Vector> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(vectors_dir()).expect("tests/vectors exists") {
        let path = entry.expect("readable directory entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("UTF-8 file name")
            .to_owned();
        assert!(
            name.ends_with(".json"),
            "unexpected file {name} in tests/vectors"
        );
        let text = std::fs::read_to_string(&path).expect("readable vector file");
        let vector: Vector =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} does not parse: {e}"));
        out.insert(name, vector);
    }
    out
}

/// The vectors of one kind, checking that the named files are among them (a deleted
/// or renamed vector file fails the test instead of silently shrinking it).
/// [`vectors_of`] for the vectors of one `Vector` variant: `vectors_of!(Vector::Box, files)`.
macro_rules! vectors_of {
    ($variant:path, $files:expr $(,)?) => {
        vectors_of(
            |v| match v {
                $variant(x) => Some(x),
                _ => None,
            },
            $files,
        )
    };
}

fn vectors_of<T>(pick: impl Fn(Vector) -> Option<T>, expected_files: &[&str]) -> Vec<(String, T)> {
    let picked: Vec<(String, T)> = all_vectors()
        .into_iter()
        .filter_map(|(name, v)| pick(v).map(|v| (name, v)))
        .collect();
    for file in expected_files {
        assert!(
            picked.iter().any(|(name, _)| name == file),
            "vector file {file} is missing or of another kind"
        );
    }
    picked
}

fn bytes(hex_text: &str) -> Vec<u8> {
    hex::decode(hex_text).expect("valid hex in vector file")
}

fn array<const N: usize>(hex_text: &str) -> [u8; N] {
    bytes(hex_text)
        .try_into()
        .unwrap_or_else(|v: Vec<u8>| panic!("expected {N} bytes, got {}", v.len()))
}

#[test]
fn crypto_box_vectors() {
    let vectors = vectors_of!(
        Vector::Box,
        &[
            "nacl_box.json",
            "box_bad_tag.json",
            "box_flipped_ciphertext_bit.json",
            "box_wrong_sender_key.json",
            "box_truncated.json",
        ],
    );
    for (name, v) in &vectors {
        let sender_sk = BoxSecretKey::from_bytes(array(&v.sender_sk));
        let sender_pk = BoxPublicKey(array(&v.sender_pk));
        let recipient_sk = BoxSecretKey::from_bytes(array(&v.recipient_sk));
        let recipient_pk = BoxPublicKey(array(&v.recipient_pk));
        let nonce = Nonce(array(&v.nonce));
        let plaintext = bytes(&v.plaintext);
        let ciphertext = bytes(&v.ciphertext);
        let ctx = format!("{name}: {}", v.description);

        // The key pairs in the file are consistent.
        assert_eq!(sender_sk.public_key(), sender_pk, "{ctx}");
        assert_eq!(recipient_sk.public_key(), recipient_pk, "{ctx}");

        let cachet = boxes::open(&ciphertext, &nonce, &sender_pk, &recipient_sk);
        let cachet_pre = PrecomputedBox::new(&sender_pk, &recipient_sk)
            .unwrap()
            .open(&ciphertext, &nonce);
        let libsodium = sodium::box_open_easy(
            &ciphertext,
            &nonce.0,
            sender_pk.as_bytes(),
            recipient_sk.expose_secret(),
        );
        if v.valid {
            assert_eq!(cachet.as_deref(), Ok(&plaintext[..]), "{ctx}");
            assert_eq!(cachet_pre.as_deref(), Ok(&plaintext[..]), "{ctx}");
            assert_eq!(libsodium.as_deref(), Some(&plaintext[..]), "{ctx}");
            // Sealing reproduces the ciphertext byte for byte, from either side's view.
            let sealed = PrecomputedBox::new(&recipient_pk, &sender_sk)
                .unwrap()
                .seal_with_nonce(&plaintext, &nonce);
            assert_eq!(sealed, ciphertext, "{ctx}");
            let by_libsodium = sodium::box_easy(
                &plaintext,
                &nonce.0,
                recipient_pk.as_bytes(),
                sender_sk.expose_secret(),
            );
            assert_eq!(by_libsodium.as_deref(), Some(&ciphertext[..]), "{ctx}");
        } else {
            assert_eq!(cachet, Err(CryptoError::Decrypt), "{ctx}");
            assert_eq!(cachet_pre, Err(CryptoError::Decrypt), "{ctx}");
            assert_eq!(libsodium, None, "{ctx}");
        }
    }
}

#[test]
fn crypto_box_to_a_small_order_key() {
    let vectors = vectors_of!(Vector::BoxSmallOrder, &["box_small_order_public_key.json"],);
    for (name, v) in &vectors {
        assert!(!v.valid, "{name}");
        let ctx = format!("{name}: {}", v.description);
        let sender_sk = BoxSecretKey::from_bytes(array(&v.sender_sk));
        let recipient_pk = BoxPublicKey(array(&v.recipient_pk));
        let nonce = Nonce(array(&v.nonce));

        // libsodium refuses the key outright.
        assert_eq!(
            sodium::box_beforenm(recipient_pk.as_bytes(), sender_sk.expose_secret()),
            None,
            "{ctx}"
        );
        assert_eq!(
            sodium::box_easy(
                b"x",
                &nonce.0,
                recipient_pk.as_bytes(),
                sender_sk.expose_secret()
            ),
            None,
            "{ctx}"
        );

        // cachet refuses it too: with a low-order key the box key would be a constant
        // that anyone can compute, so a substituted key would expose every message.
        assert_eq!(
            PrecomputedBox::new(&recipient_pk, &sender_sk).unwrap_err(),
            cachet_crypto::CryptoError::InvalidPublicKey("X25519 key of small order"),
            "{ctx}"
        );
        assert!(
            boxes::seal(b"x", &recipient_pk, &sender_sk).is_err(),
            "{ctx}"
        );
    }
}

#[test]
fn crypto_secretbox_vectors() {
    let vectors = vectors_of!(
        Vector::Secretbox,
        &[
            "nacl_secretbox.json",
            "secretbox_bad_tag.json",
            "secretbox_wrong_nonce.json",
            "secretbox_truncated_tag.json",
            "secretbox_empty_ciphertext.json",
        ],
    );
    for (name, v) in &vectors {
        let key = SymmetricKey::from_bytes(array(&v.key));
        let nonce = Nonce(array(&v.nonce));
        let plaintext = bytes(&v.plaintext);
        let ciphertext = bytes(&v.ciphertext);
        let ctx = format!("{name}: {}", v.description);

        let mut prefixed = nonce.0.to_vec();
        prefixed.extend_from_slice(&ciphertext);
        let cachet = secretbox::open(&ciphertext, &nonce, &key);
        let cachet_prefixed = secretbox::open_prefixed(&prefixed, &key);
        let mut in_place = ciphertext.clone();
        let cachet_in_place = SecretBox::new(&key).open_in_place(&mut in_place, &nonce);
        let libsodium = sodium::secretbox_open_easy(&ciphertext, &nonce.0, key.expose_secret());
        if v.valid {
            assert_eq!(cachet.as_deref(), Ok(&plaintext[..]), "{ctx}");
            assert_eq!(cachet_prefixed.as_deref(), Ok(&plaintext[..]), "{ctx}");
            assert_eq!(cachet_in_place, Ok(()), "{ctx}");
            assert_eq!(&in_place[16..], &plaintext[..], "{ctx}");
            assert_eq!(libsodium.as_deref(), Some(&plaintext[..]), "{ctx}");
            assert_eq!(
                SecretBox::new(&key).seal_with_nonce(&plaintext, &nonce),
                ciphertext,
                "{ctx}"
            );
            assert_eq!(
                sodium::secretbox_easy(&plaintext, &nonce.0, key.expose_secret()),
                ciphertext,
                "{ctx}"
            );
        } else {
            assert_eq!(cachet, Err(CryptoError::Decrypt), "{ctx}");
            assert_eq!(cachet_prefixed, Err(CryptoError::Decrypt), "{ctx}");
            assert_eq!(cachet_in_place, Err(CryptoError::Decrypt), "{ctx}");
            assert_eq!(libsodium, None, "{ctx}");
        }
    }
}

#[test]
fn the_nacl_box_and_secretbox_vectors_share_one_ciphertext() {
    // NaCl's secretbox vector uses crypto_box_beforenm(bob_pk, alice_sk) as its key, so
    // both vectors must hold the same bytes: a check that the two files agree.
    let all = all_vectors();
    let (Some(Vector::Box(b)), Some(Vector::Secretbox(s))) =
        (all.get("nacl_box.json"), all.get("nacl_secretbox.json"))
    else {
        panic!("nacl_box.json and nacl_secretbox.json must exist with their kinds");
    };
    assert_eq!(b.ciphertext, s.ciphertext);
    assert_eq!(b.plaintext, s.plaintext);
    assert_eq!(b.nonce, s.nonce);
    assert_eq!(bytes(&b.plaintext).len(), 131);
}

#[test]
fn ed25519_vectors() {
    let vectors = vectors_of!(
        Vector::Ed25519,
        &[
            "rfc8032_test1.json",
            "rfc8032_test2.json",
            "rfc8032_test3.json",
            "rfc8032_test_sha_abc.json",
            "ed25519_small_order_key.json",
            "ed25519_non_canonical_s.json",
            "ed25519_wrong_message.json",
            "ed25519_wrong_public_key.json",
            "ed25519_truncated_signature.json",
            "ed25519_flipped_r_bit.json",
        ],
    );
    for (name, v) in &vectors {
        let public = SignPublicKey(array(&v.public_key));
        let message = bytes(&v.message);
        let signature = bytes(&v.signature);
        let ctx = format!("{name}: {}", v.description);

        if let Some(seed) = &v.seed {
            let seed: [u8; 32] = array(seed);
            let pair = SignKeyPair::from_seed(seed);
            assert_eq!(pair.public(), public, "{ctx}");
            // Ed25519 is deterministic: signing reproduces the published signature.
            assert_eq!(
                sign::sign_detached(&message, &pair).to_vec(),
                signature,
                "{ctx}"
            );
            let (sodium_pk, sodium_sk) = sodium::sign_seed_keypair(&seed);
            assert_eq!(&sodium_pk, public.as_bytes(), "{ctx}");
            assert_eq!(sodium_sk, pair.expose_libsodium_secret(), "{ctx}");
            assert_eq!(
                sodium::sign_detached(&message, &sodium_sk).to_vec(),
                signature,
                "{ctx}"
            );
            assert_eq!(
                sign::sign_combined(&message, &pair),
                sodium::sign(&message, &sodium_sk),
                "{ctx}"
            );
        }

        let mut combined = signature.clone();
        combined.extend_from_slice(&message);
        let cachet = sign::verify_detached(&message, &signature, &public);
        let cachet_combined = sign::open_combined(&combined, &public);
        let cachet_batch = sign::verify_batch(&[BatchItem {
            message: &message,
            signature: &signature,
            key: &public,
        }]);
        let libsodium = sodium::sign_verify_detached(&signature, &message, public.as_bytes());
        let libsodium_combined = sodium::sign_open(&combined, public.as_bytes());
        if v.valid {
            assert_eq!(cachet, Ok(()), "{ctx}");
            assert_eq!(cachet_combined, Ok(&message[..]), "{ctx}");
            assert_eq!(cachet_batch, vec![Ok(())], "{ctx}");
            assert!(libsodium, "{ctx}");
            assert_eq!(libsodium_combined.as_deref(), Some(&message[..]), "{ctx}");
        } else {
            assert!(cachet.is_err(), "{ctx}");
            assert!(cachet_combined.is_err(), "{ctx}");
            assert!(cachet_batch[0].is_err(), "{ctx}");
            assert!(!libsodium, "{ctx}");
            assert_eq!(libsodium_combined, None, "{ctx}");
        }
    }
}

#[test]
fn x25519_base_point_vectors() {
    let vectors = vectors_of!(
        Vector::X25519Base,
        &["x25519_rfc7748_alice.json", "x25519_rfc7748_bob.json"],
    );
    for (name, v) in &vectors {
        let ctx = format!("{name}: {}", v.description);
        let secret: [u8; 32] = array(&v.secret);
        let public: [u8; 32] = array(&v.public);
        assert_eq!(
            BoxSecretKey::from_bytes(secret).public_key(),
            BoxPublicKey(public),
            "{ctx}"
        );
        assert_eq!(sodium::scalarmult_base(&secret), Some(public), "{ctx}");
    }
}

#[test]
fn x25519_shared_secret_vectors() {
    let vectors = vectors_of!(Vector::X25519Shared, &["x25519_rfc7748_shared.json"],);
    for (name, v) in &vectors {
        let ctx = format!("{name}: {}", v.description);
        let alice_sk: [u8; 32] = array(&v.alice_secret);
        let alice_pk: [u8; 32] = array(&v.alice_public);
        let bob_sk: [u8; 32] = array(&v.bob_secret);
        let bob_pk: [u8; 32] = array(&v.bob_public);
        let shared: [u8; 32] = array(&v.shared);
        let box_key: [u8; 32] = array(&v.box_key);

        assert_eq!(
            sodium::scalarmult(&alice_sk, &bob_pk),
            Some(shared),
            "{ctx}"
        );
        assert_eq!(
            sodium::scalarmult(&bob_sk, &alice_pk),
            Some(shared),
            "{ctx}"
        );
        assert_eq!(
            x25519_dalek::x25519(alice_sk, bob_pk),
            shared,
            "{ctx} (x25519-dalek)"
        );
        assert_eq!(
            sodium::box_beforenm(&bob_pk, &alice_sk),
            Some(box_key),
            "{ctx}"
        );
        assert_eq!(
            sodium::box_beforenm(&alice_pk, &bob_sk),
            Some(box_key),
            "{ctx}"
        );

        // cachet does not expose the precomputed key, but a PrecomputedBox must seal
        // exactly as a secretbox under it does, from both sides.
        let nonce = Nonce([0x5a; 24]);
        let message = b"the box key is HSalsa20 of the X25519 shared secret";
        let expected =
            SecretBox::new(&SymmetricKey::from_bytes(box_key)).seal_with_nonce(message, &nonce);
        for pre in [
            PrecomputedBox::new(&BoxPublicKey(bob_pk), &BoxSecretKey::from_bytes(alice_sk))
                .unwrap(),
            PrecomputedBox::new(&BoxPublicKey(alice_pk), &BoxSecretKey::from_bytes(bob_sk))
                .unwrap(),
        ] {
            assert_eq!(pre.seal_with_nonce(message, &nonce), expected, "{ctx}");
        }
    }
}
