//! NaCl `crypto_box`: public-key authenticated encryption between two Box Keys.
//!
//! Output layout is libsodium's `crypto_box_easy`: a 16-byte Poly1305 tag followed by
//! the ciphertext, the same length as the plaintext. The 24-byte nonce travels beside it.

use crypto_box::aead::{Aead, AeadInPlace};
use crypto_box::SalsaBox;

use crate::{BoxPublicKey, BoxSecretKey, CryptoError, Nonce, MAC_LEN};

/// Encrypts `plaintext` from `sender` to `recipient` under a fresh random nonce.
/// Returns the nonce and `tag || ciphertext`.
pub fn seal(
    plaintext: &[u8],
    recipient: &BoxPublicKey,
    sender: &BoxSecretKey,
) -> (Nonce, Vec<u8>) {
    let nonce = Nonce::random();
    let ciphertext = PrecomputedBox::new(recipient, sender).seal_with_nonce(plaintext, &nonce);
    (nonce, ciphertext)
}

/// Decrypts and authenticates `tag || ciphertext` sent by `sender` to `recipient`.
pub fn open(
    ciphertext: &[u8],
    nonce: &Nonce,
    sender: &BoxPublicKey,
    recipient: &BoxSecretKey,
) -> Result<Vec<u8>, CryptoError> {
    PrecomputedBox::new(sender, recipient).open(ciphertext, nonce)
}

/// A box with the X25519 + HSalsa20 step already done (libsodium's `crypto_box_beforenm`).
///
/// Sealing many messages to one contact with this is an order of magnitude cheaper than
/// calling [`seal`] each time; clients cache one per (own key, contact key) pair.
/// The shared key inside is zeroized on drop.
pub struct PrecomputedBox {
    inner: SalsaBox,
}

impl PrecomputedBox {
    /// Precomputes the shared key between `their_public` and `our_secret`.
    pub fn new(their_public: &BoxPublicKey, our_secret: &BoxSecretKey) -> Self {
        let public = crypto_box::PublicKey::from(*their_public.as_bytes());
        let secret = crypto_box::SecretKey::from(*our_secret.expose_secret());
        Self {
            inner: SalsaBox::new(&public, &secret),
        }
    }

    /// Encrypts under a fresh random nonce.
    pub fn seal(&self, plaintext: &[u8]) -> (Nonce, Vec<u8>) {
        let nonce = Nonce::random();
        (nonce, self.seal_with_nonce(plaintext, &nonce))
    }

    /// Encrypts under a caller-chosen nonce. The caller must never reuse a nonce with the
    /// same key pair; prefer [`Self::seal`].
    pub fn seal_with_nonce(&self, plaintext: &[u8], nonce: &Nonce) -> Vec<u8> {
        let mut buffer = Vec::with_capacity(MAC_LEN + plaintext.len());
        buffer.extend_from_slice(&[0u8; MAC_LEN]);
        buffer.extend_from_slice(plaintext);
        let tag = self
            .inner
            .encrypt_in_place_detached(nonce.as_bytes().into(), b"", &mut buffer[MAC_LEN..])
            .expect("XSalsa20Poly1305 accepts any message shorter than 256 GiB");
        buffer[..MAC_LEN].copy_from_slice(&tag);
        buffer
    }

    /// Decrypts and authenticates `tag || ciphertext`.
    pub fn open(&self, ciphertext: &[u8], nonce: &Nonce) -> Result<Vec<u8>, CryptoError> {
        if ciphertext.len() < MAC_LEN {
            return Err(CryptoError::Decrypt);
        }
        self.inner
            .decrypt(nonce.as_bytes().into(), ciphertext)
            .map_err(|_| CryptoError::Decrypt)
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
        let (nonce, mut ct) = seal(b"hello bob", &bob.public, &alice.secret);
        assert_eq!(ct.len(), 9 + MAC_LEN);
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
        let pre = PrecomputedBox::new(&bob.public, &alice.secret);
        let nonce = Nonce::random();
        let ct = pre.seal_with_nonce(b"same bytes", &nonce);
        let back = PrecomputedBox::new(&alice.public, &bob.secret);
        assert_eq!(back.open(&ct, &nonce).unwrap(), b"same bytes");
        assert_eq!(open(&ct, &nonce, &alice.public, &bob.secret).unwrap(), b"same bytes");
    }
}
