//! NaCl `crypto_box`: public-key authenticated encryption between two Box Keys.
//!
//! Output layout is libsodium's `crypto_box_easy`: a 16-byte Poly1305 tag followed by
//! the ciphertext, the same length as the plaintext. The 24-byte nonce travels beside it.
//!
//! The box key is computed as libsodium does: `k = HSalsa20(X25519(sk, pk), 0^16)`, then
//! XSalsa20-Poly1305 under `k`. X25519 comes from `x25519-dalek` (which matches every
//! Wycheproof vector) and a result of all zeros is refused, as libsodium refuses it: a
//! low-order public key would otherwise make the box key a constant that anyone can
//! compute, so a server that substituted such a key for a contact could read every
//! message sealed to it.

use crate::secretbox::SecretBox;
use crate::{BoxPublicKey, BoxSecretKey, CryptoError, Nonce};

/// Encrypts `plaintext` from `sender` to `recipient` under a fresh random nonce.
/// Returns the nonce and `tag || ciphertext`; fails only for a low-order `recipient` key.
pub fn seal(
    plaintext: &[u8],
    recipient: &BoxPublicKey,
    sender: &BoxSecretKey,
) -> Result<(Nonce, Vec<u8>), CryptoError> {
    Ok(PrecomputedBox::new(recipient, sender)?.seal(plaintext))
}

/// Decrypts and authenticates `tag || ciphertext` sent by `sender` to `recipient`.
pub fn open(
    ciphertext: &[u8],
    nonce: &Nonce,
    sender: &BoxPublicKey,
    recipient: &BoxSecretKey,
) -> Result<Vec<u8>, CryptoError> {
    PrecomputedBox::new(sender, recipient)
        .map_err(|_| CryptoError::Decrypt)?
        .open(ciphertext, nonce)
}

/// A box with the X25519 + HSalsa20 step already done (libsodium's `crypto_box_beforenm`).
///
/// Sealing many messages to one contact with this is an order of magnitude cheaper than
/// calling [`seal`] each time; clients cache one per (own key, contact key) pair.
/// The shared key inside is zeroized on drop.
pub struct PrecomputedBox {
    inner: SecretBox,
}

impl PrecomputedBox {
    /// Precomputes the shared key between `their_public` and `our_secret`. Refuses a
    /// low-order public key ([`CryptoError::InvalidPublicKey`]).
    pub fn new(
        their_public: &BoxPublicKey,
        our_secret: &BoxSecretKey,
    ) -> Result<Self, CryptoError> {
        let secret = x25519_dalek::StaticSecret::from(*our_secret.expose_secret());
        let shared =
            secret.diffie_hellman(&x25519_dalek::PublicKey::from(*their_public.as_bytes()));
        if !shared.was_contributory() {
            return Err(CryptoError::InvalidPublicKey("X25519 key of small order"));
        }
        let mut key = salsa20::hsalsa::<salsa20::cipher::consts::U10>(
            shared.as_bytes().into(),
            &Default::default(),
        );
        let inner = SecretBox::from_raw_key(&key.into());
        zeroize::Zeroize::zeroize(key.as_mut_slice());
        Ok(Self { inner })
    }

    /// Encrypts under a fresh random nonce.
    pub fn seal(&self, plaintext: &[u8]) -> (Nonce, Vec<u8>) {
        let nonce = Nonce::random();
        (nonce, self.seal_with_nonce(plaintext, &nonce))
    }

    /// Encrypts under a caller-chosen nonce. The caller must never reuse a nonce with the
    /// same key pair; prefer [`Self::seal`].
    pub fn seal_with_nonce(&self, plaintext: &[u8], nonce: &Nonce) -> Vec<u8> {
        self.inner.seal_with_nonce(plaintext, nonce)
    }

    /// Decrypts and authenticates `tag || ciphertext`.
    pub fn open(&self, ciphertext: &[u8], nonce: &Nonce) -> Result<Vec<u8>, CryptoError> {
        self.inner.open(ciphertext, nonce)
    }
}

impl core::fmt::Debug for PrecomputedBox {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("PrecomputedBox(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BoxKeyPair;

    #[test]
    fn round_trip_and_tamper() {
        let alice = BoxKeyPair::generate();
        let bob = BoxKeyPair::generate();
        let (nonce, mut ct) = seal(b"hello bob", &bob.public, &alice.secret).unwrap();
        assert_eq!(ct.len(), 9 + crate::MAC_LEN);
        assert_eq!(
            open(&ct, &nonce, &alice.public, &bob.secret).unwrap(),
            b"hello bob"
        );
        // The wrong sender key fails: crypto_box authenticates the sender.
        let mallory = BoxKeyPair::generate();
        assert_eq!(
            open(&ct, &nonce, &mallory.public, &bob.secret),
            Err(CryptoError::Decrypt)
        );
        ct[20] ^= 1;
        assert_eq!(
            open(&ct, &nonce, &alice.public, &bob.secret),
            Err(CryptoError::Decrypt)
        );
        assert_eq!(
            open(&ct[..10], &nonce, &alice.public, &bob.secret),
            Err(CryptoError::Decrypt)
        );
    }

    #[test]
    fn precomputed_matches_plain() {
        let alice = BoxKeyPair::generate();
        let bob = BoxKeyPair::generate();
        let pre = PrecomputedBox::new(&bob.public, &alice.secret).unwrap();
        let nonce = Nonce::random();
        let ct = pre.seal_with_nonce(b"same bytes", &nonce);
        let back = PrecomputedBox::new(&alice.public, &bob.secret).unwrap();
        assert_eq!(back.open(&ct, &nonce).unwrap(), b"same bytes");
        assert_eq!(
            open(&ct, &nonce, &alice.public, &bob.secret).unwrap(),
            b"same bytes"
        );
    }

    #[test]
    fn low_order_keys_are_refused() {
        let alice = BoxKeyPair::generate();
        // The all-zero point and the point of order 8 with u = 1 both give an all-zero X25519 result.
        for bad in [[0u8; 32], {
            let mut one = [0u8; 32];
            one[0] = 1;
            one
        }] {
            assert!(PrecomputedBox::new(&BoxPublicKey(bad), &alice.secret).is_err());
            assert!(seal(b"x", &BoxPublicKey(bad), &alice.secret).is_err());
        }
    }
}
