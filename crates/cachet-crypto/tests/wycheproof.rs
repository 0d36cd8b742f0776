//! Project Wycheproof vectors for the curves cachet relies on.
//!
//! * X25519 (`x25519_test.json`, 518 cases): the Montgomery-ladder arithmetic behind
//!   cachet's Box Keys, checked through `x25519-dalek` (which uses the same
//!   `curve25519-dalek` ladder as the `crypto_box` crate under cachet-crypto) and through
//!   libsodium's `crypto_scalarmult`; then cachet's own `crypto_box` key agreement,
//!   compared with libsodium's on every Wycheproof input.
//! * Ed25519 (`ed25519_test.json`, 151 cases): cachet's strict single verification and
//!   its batch verification; every "valid" case must verify and every "invalid" one must
//!   be rejected. libsodium's verdicts are checked alongside.
//!
//! XSalsa20-Poly1305, the AEAD of `crypto_box` and `crypto_secretbox`, is not part of
//! Wycheproof (it has XChaCha20-Poly1305, which cachet does not use). It is covered by
//! the NaCl known answers in `known_answers.rs` and by the byte-for-byte comparisons with
//! libsodium in `interop_libsodium.rs`.

use cachet_crypto::boxes::PrecomputedBox;
use cachet_crypto::sign::{self, BatchItem};
use cachet_crypto::{BoxPublicKey, BoxSecretKey, Nonce, SignPublicKey};
use cachet_sodium_ref as sodium;
use curve25519_dalek::montgomery::MontgomeryPoint;
use wycheproof::{eddsa, xdh, TestResult};

/// The X25519 base point, u = 9.
const BASE_POINT: [u8; 32] = {
    let mut u = [0u8; 32];
    u[0] = 9;
    u
};

struct XdhCase {
    id: usize,
    result: TestResult,
    flags: Vec<xdh::TestFlag>,
    private: [u8; 32],
    public: [u8; 32],
    shared: [u8; 32],
}

fn x25519_cases() -> Vec<XdhCase> {
    let set = xdh::TestSet::load(xdh::TestName::X25519).expect("X25519 vectors load");
    let cases: Vec<XdhCase> = set
        .test_groups
        .iter()
        .flat_map(|g| &g.tests)
        .map(|t| XdhCase {
            id: t.tc_id,
            result: t.result,
            flags: t.flags.clone(),
            private: t.private_key[..].try_into().expect("32-byte private key"),
            public: t.public_key[..].try_into().expect("32-byte public key"),
            shared: t.shared_secret[..]
                .try_into()
                .expect("32-byte shared secret"),
        })
        .collect();
    assert_eq!(cases.len(), 518, "the X25519 set changed: review this file");
    // The X25519 set has no "invalid" case: every u-coordinate is a legitimate X25519
    // input. "acceptable" marks inputs (twist points, non-canonical encodings, low-order
    // points) that a protocol may choose to refuse.
    assert!(cases.iter().all(|c| c.result != TestResult::Invalid));
    cases
}

#[test]
fn x25519_arithmetic_meets_wycheproof() {
    let mut refused_by_libsodium = Vec::new();
    for case in x25519_cases() {
        let id = case.id;
        // The RFC 7748 function, as curve25519-dalek computes it: exact on every case.
        assert_eq!(
            x25519_dalek::x25519(case.private, case.public),
            case.shared,
            "tcId {id} (x25519-dalek)"
        );
        // libsodium computes the same, except that it refuses an all-zero result.
        match sodium::scalarmult(&case.private, &case.public) {
            Some(shared) => assert_eq!(shared, case.shared, "tcId {id} (libsodium)"),
            None => {
                assert_eq!(case.shared, [0; 32], "tcId {id}");
                assert!(case.flags.contains(&xdh::TestFlag::ZeroSharedSecret));
                refused_by_libsodium.push(id);
            }
        }
    }
    // libsodium refuses exactly the low-order public keys, whose shared secret is zero.
    assert_eq!(refused_by_libsodium, ZERO_SHARED_SECRET_TC_IDS);
}

#[test]
fn box_public_keys_from_wycheproof_private_keys() {
    // Every Wycheproof private key (including the edge-case ones) through cachet's key
    // derivation, against RFC 7748 and libsodium.
    for case in x25519_cases() {
        let ours = BoxSecretKey::from_bytes(case.private).public_key();
        assert_eq!(
            ours.0,
            x25519_dalek::x25519(case.private, BASE_POINT),
            "tcId {}",
            case.id
        );
        assert_eq!(
            Some(ours.0),
            sodium::scalarmult_base(&case.private),
            "tcId {}",
            case.id
        );
    }
}

/// Wycheproof X25519 cases whose public key is of low order, so that the X25519 shared
/// secret is all zero. libsodium's `crypto_scalarmult` and `crypto_box` refuse them.
const ZERO_SHARED_SECRET_TC_IDS: &[usize] = &[
    32, 33, 63, 64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 83, 84,
    85, 86, 117, 118, 154, 165, 166,
];

fn in_prime_order_subgroup(u: &[u8; 32]) -> bool {
    // Points on the twist have no Edwards image; the sign bit does not affect torsion.
    MontgomeryPoint(*u)
        .to_edwards(0)
        .is_some_and(|p| p.is_torsion_free())
}

/// The `crypto_box` key derived from a shared point: HSalsa20 under a zero input.
fn box_key_from(shared: &[u8; 32]) -> [u8; 32] {
    sodium::core_hsalsa20(&[0; 16], shared)
}

#[test]
fn crypto_box_key_agreement_over_wycheproof_inputs() {
    // cachet's box key is HSalsa20(X25519(sk, pk)) with x25519-dalek's RFC 7748 X25519,
    // and an all-zero shared secret (a low-order public key) is refused, as libsodium
    // refuses it. So over every Wycheproof input, on the subgroup or not, cachet seals
    // exactly what libsodium seals, and refuses exactly where libsodium refuses.
    let nonce = Nonce([0x24; 24]);
    let message = b"wycheproof";
    let mut refused = Vec::new();
    for case in x25519_cases() {
        let id = case.id;
        let ours = PrecomputedBox::new(
            &BoxPublicKey(case.public),
            &BoxSecretKey::from_bytes(case.private),
        )
        .map(|b| b.seal_with_nonce(message, &nonce));
        let x25519_box = sodium::box_easy_afternm(message, &nonce.0, &box_key_from(&case.shared));
        match sodium::box_easy(message, &nonce.0, &case.public, &case.private) {
            None => {
                assert!(
                    ours.is_err(),
                    "tcId {id}: libsodium refuses, cachet must too"
                );
                refused.push(id);
            }
            Some(libsodium) => {
                assert_eq!(libsodium, x25519_box, "tcId {id}: libsodium is X25519");
                assert_eq!(
                    ours.as_ref().ok(),
                    Some(&libsodium),
                    "tcId {id}: cachet must equal libsodium"
                );
            }
        }
        let _ = in_prime_order_subgroup(&case.public);
    }
    assert_eq!(refused, ZERO_SHARED_SECRET_TC_IDS);
}

// ---------------------------------------------------------------------------------------
// Ed25519
// ---------------------------------------------------------------------------------------

struct EdCase {
    id: usize,
    result: TestResult,
    comment: String,
    key: Vec<u8>,
    message: Vec<u8>,
    signature: Vec<u8>,
}

fn ed25519_cases() -> Vec<EdCase> {
    let set = eddsa::TestSet::load(eddsa::TestName::Ed25519).expect("Ed25519 vectors load");
    let cases: Vec<EdCase> = set
        .test_groups
        .iter()
        .flat_map(|g| g.tests.iter().map(move |t| (g, t)))
        .map(|(g, t)| EdCase {
            id: t.tc_id,
            result: t.result,
            comment: t.comment.clone(),
            key: g.key.pk.to_vec(),
            message: t.msg.to_vec(),
            signature: t.sig.to_vec(),
        })
        .collect();
    assert_eq!(
        cases.len(),
        151,
        "the Ed25519 set changed: review this file"
    );
    cases
}

#[test]
fn ed25519_strict_verification_meets_wycheproof() {
    let mut disagreements = Vec::new();
    for case in ed25519_cases() {
        let key = SignPublicKey::from_slice(&case.key).expect("32-byte keys in this set");
        let ours = sign::verify_detached(&case.message, &case.signature, &key).is_ok();
        let libsodium = sodium::sign_verify_detached(&case.signature, &case.message, &key.0);
        let expected = match case.result {
            TestResult::Valid => Some(true),
            TestResult::Invalid => Some(false),
            // No case of this set is "acceptable"; if one appears, it is listed below.
            TestResult::Acceptable => None,
        };
        if expected != Some(ours) || expected != Some(libsodium) {
            disagreements.push(format!(
                "tcId {} ({:?}, {}): cachet {ours}, libsodium {libsodium}",
                case.id, case.result, case.comment
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "Ed25519 verdicts differ from Wycheproof:\n{}",
        disagreements.join("\n")
    );
}

#[test]
fn ed25519_batch_verification_meets_wycheproof() {
    let cases = ed25519_cases();
    let keys: Vec<SignPublicKey> = cases
        .iter()
        .map(|c| SignPublicKey::from_slice(&c.key).expect("32-byte keys"))
        .collect();
    let item = |i: usize| BatchItem {
        message: &cases[i].message,
        signature: &cases[i].signature,
        key: &keys[i],
    };
    let valid: Vec<usize> = (0..cases.len())
        .filter(|&i| cases[i].result == TestResult::Valid)
        .collect();
    assert_eq!(valid.len(), 88);

    // All valid cases in one batch.
    let batch: Vec<BatchItem<'_>> = valid.iter().map(|&i| item(i)).collect();
    let results = sign::verify_batch(&batch);
    for (r, &i) in results.iter().zip(&valid) {
        assert!(r.is_ok(), "tcId {} rejected in a batch", cases[i].id);
    }

    // Each invalid case hidden in the middle of the valid ones: exactly it must fail.
    for bad in (0..cases.len()).filter(|&i| cases[i].result == TestResult::Invalid) {
        let mut indices = valid.clone();
        indices.insert(valid.len() / 2, bad);
        let batch: Vec<BatchItem<'_>> = indices.iter().map(|&i| item(i)).collect();
        let results = sign::verify_batch(&batch);
        for (r, &i) in results.iter().zip(&indices) {
            assert_eq!(
                r.is_err(),
                i == bad,
                "tcId {} in a batch with invalid tcId {} ({})",
                cases[i].id,
                cases[bad].id,
                cases[bad].comment
            );
        }
    }
}
