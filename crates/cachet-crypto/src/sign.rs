//! Ed25519 signatures, as libsodium's `crypto_sign` ships them.
//!
//! The whitepaper names `crypto_sign_edwards25519sha512batch`, NaCl's obsolete prototype;
//! cachet uses standard Ed25519 (RFC 8032). Single verification is strict (libsodium's
//! rules: canonical `S`, no small-order public key or `R`). Batch verification is an
//! optimisation only: a batch that fails is re-checked one by one so that the answer is
//! always the strict one.
//!
//! Signing goes through libsodium when the `libsodium` feature is on (its fixed-base
//! scalar multiplication is faster than ed25519-dalek's; see `docs/benchmarks.md`).
//! Ed25519 is deterministic, so both give the same bytes. Verification always stays on
//! ed25519-dalek: it is faster there, and it has batch verification.

use ed25519_dalek::{Signature, Signer};

use crate::{CryptoError, SignKeyPair, SignPublicKey, SIGNATURE_LEN};

/// The implementation behind [`sign_detached`]: `"libsodium"` with the `libsodium`
/// feature, `"ed25519-dalek"` without. Verification is always ed25519-dalek's.
pub const SIGNING_BACKEND: &str = if cfg!(feature = "libsodium") {
    "libsodium"
} else {
    "ed25519-dalek"
};

/// Signs `message`, returning the 64-byte detached signature.
pub fn sign_detached(message: &[u8], key: &SignKeyPair) -> [u8; SIGNATURE_LEN] {
    #[cfg(feature = "libsodium")]
    {
        sign_with_libsodium(message, key)
    }
    #[cfg(not(feature = "libsodium"))]
    {
        sign_with_dalek(message, key)
    }
}

#[cfg_attr(feature = "libsodium", allow(dead_code))] // the reference of the tests then
fn sign_with_dalek(message: &[u8], key: &SignKeyPair) -> [u8; SIGNATURE_LEN] {
    key.signing_key().sign(message).to_bytes()
}

#[cfg(feature = "libsodium")]
fn sign_with_libsodium(message: &[u8], key: &SignKeyPair) -> [u8; SIGNATURE_LEN] {
    // libsodium's secret key layout, seed || public key, wiped once signed.
    let secret = zeroize::Zeroizing::new(key.expose_libsodium_secret());
    cachet_sodium_ref::sign_detached(message, &secret)
}

/// Verifies a detached signature under the strict rules.
pub fn verify_detached(
    message: &[u8],
    signature: &[u8],
    key: &SignPublicKey,
) -> Result<(), CryptoError> {
    let signature = Signature::from_slice(signature).map_err(|_| CryptoError::BadSignature)?;
    key.verifying_key()?
        .verify_strict(message, &signature)
        .map_err(|_| CryptoError::BadSignature)
}

/// NaCl combined mode (`crypto_sign`): returns `signature || message`.
pub fn sign_combined(message: &[u8], key: &SignKeyPair) -> Vec<u8> {
    let mut out = Vec::with_capacity(SIGNATURE_LEN + message.len());
    out.extend_from_slice(&sign_detached(message, key));
    out.extend_from_slice(message);
    out
}

/// NaCl combined mode (`crypto_sign_open`): checks `signature || message` and returns
/// the message.
pub fn open_combined<'a>(signed: &'a [u8], key: &SignPublicKey) -> Result<&'a [u8], CryptoError> {
    if signed.len() < SIGNATURE_LEN {
        return Err(CryptoError::BadSignature);
    }
    let (signature, message) = signed.split_at(SIGNATURE_LEN);
    verify_detached(message, signature, key)?;
    Ok(message)
}

/// One item of a batch: message, signature and the key it should verify under.
#[derive(Debug, Clone, Copy)]
pub struct BatchItem<'a> {
    /// The signed bytes.
    pub message: &'a [u8],
    /// The 64-byte signature.
    pub signature: &'a [u8],
    /// The signer's public key.
    pub key: &'a SignPublicKey,
}

/// Verifies many signatures at once; returns one result per item, in order.
///
/// When all are valid (the common case) this costs about half of verifying them one by
/// one. When the batch fails, every item is verified alone to say which ones are bad.
pub fn verify_batch(items: &[BatchItem<'_>]) -> Vec<Result<(), CryptoError>> {
    let mut decoded = Vec::with_capacity(items.len());
    for item in items {
        let sig = Signature::from_slice(item.signature).map_err(|_| CryptoError::BadSignature);
        let key = item.key.verifying_key();
        match (sig, key) {
            // Non-canonical S would be accepted by some batch equations; keep strict semantics.
            (Ok(sig), Ok(key)) if sig.s_bytes()[31] & 0xf0 == 0 => decoded.push((sig, key)),
            _ => return items.iter().map(verify_one).collect(),
        }
    }
    let messages: Vec<&[u8]> = items.iter().map(|i| i.message).collect();
    let signatures: Vec<Signature> = decoded.iter().map(|(s, _)| *s).collect();
    let keys: Vec<ed25519_dalek::VerifyingKey> = decoded.iter().map(|(_, k)| *k).collect();
    if ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok() {
        // The batch equation is cofactored; confirm the strict single-signature rules
        // only where they can differ (small-order R), which valid signers never produce.
        items.iter().map(|i| strict_r_check(i.signature)).collect()
    } else {
        items.iter().map(verify_one).collect()
    }
}

fn verify_one(item: &BatchItem<'_>) -> Result<(), CryptoError> {
    verify_detached(item.message, item.signature, item.key)
}

fn strict_r_check(signature: &[u8]) -> Result<(), CryptoError> {
    let r: [u8; 32] = signature[..32]
        .try_into()
        .map_err(|_| CryptoError::BadSignature)?;
    match curve25519_point_is_small_order(&r) {
        true => Err(CryptoError::BadSignature),
        false => Ok(()),
    }
}

fn curve25519_point_is_small_order(encoded: &[u8; 32]) -> bool {
    // A VerifyingKey built from R lets us reuse dalek's small-order test.
    ed25519_dalek::VerifyingKey::from_bytes(encoded)
        .map(|p| p.is_weak())
        .unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signing_backend_gives_the_bytes_of_dalek_and_libsodium() {
        // Ed25519 is deterministic: whichever backend signs, the signature is the same.
        for round in 0u8..64 {
            let key = SignKeyPair::from_seed(crate::random_bytes());
            let message: Vec<u8> = (0..usize::from(round) * 37)
                .map(|i| i as u8 ^ round)
                .collect();
            let ours = sign_detached(&message, &key);
            assert_eq!(ours, sign_with_dalek(&message, &key), "round {round}");
            let sodium_secret = zeroize::Zeroizing::new(key.expose_libsodium_secret());
            assert_eq!(
                ours,
                cachet_sodium_ref::sign_detached(&message, &sodium_secret),
                "round {round}"
            );
            assert_eq!(verify_detached(&message, &ours, &key.public()), Ok(()));
        }
    }

    #[test]
    fn combined_round_trip() {
        let key = SignKeyPair::generate();
        let sm = sign_combined(b"request header", &key);
        assert_eq!(
            open_combined(&sm, &key.public()).unwrap(),
            b"request header"
        );
        let mut bad = sm.clone();
        bad[70] ^= 1;
        assert_eq!(
            open_combined(&bad, &key.public()),
            Err(CryptoError::BadSignature)
        );
        assert_eq!(
            open_combined(&sm[..63], &key.public()),
            Err(CryptoError::BadSignature)
        );
        let other = SignKeyPair::generate();
        assert_eq!(
            open_combined(&sm, &other.public()),
            Err(CryptoError::BadSignature)
        );
    }

    #[test]
    fn batch_names_the_bad_signature() {
        let keys: Vec<SignKeyPair> = (0..8).map(|_| SignKeyPair::generate()).collect();
        let publics: Vec<SignPublicKey> = keys.iter().map(|k| k.public()).collect();
        let messages: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; 10]).collect();
        let mut sigs: Vec<[u8; 64]> = keys
            .iter()
            .zip(&messages)
            .map(|(k, m)| sign_detached(m, k))
            .collect();
        let items = |sigs: &[[u8; 64]]| -> Vec<Result<(), CryptoError>> {
            let batch: Vec<BatchItem<'_>> = (0..8)
                .map(|i| BatchItem {
                    message: &messages[i],
                    signature: &sigs[i],
                    key: &publics[i],
                })
                .collect();
            verify_batch(&batch)
        };
        assert!(items(&sigs).iter().all(Result::is_ok));
        sigs[5][3] ^= 1;
        let results = items(&sigs);
        for (i, r) in results.iter().enumerate() {
            assert_eq!(r.is_err(), i == 5, "item {i}");
        }
    }
}
