//! NaCl `crypto_secretbox` (xsalsa20poly1305) under a [`SymmetricKey`].
//!
//! Output layout is libsodium's `crypto_secretbox_easy`: 16-byte tag, then ciphertext.
//! [`seal_prefixed`] additionally prepends the random nonce, the layout the whitepaper
//! gives for local files (section 3.4) and that cachet uses wherever a nonce must travel
//! with its ciphertext.

use crypto_secretbox::aead::{Aead, AeadInPlace, KeyInit};
use crypto_secretbox::XSalsa20Poly1305;

use crate::{CryptoError, Nonce, SymmetricKey, MAC_LEN, NONCE_LEN};

/// A secretbox cipher keyed once, for sealing many messages under one key.
pub struct SecretBox {
    cipher: XSalsa20Poly1305,
}

impl SecretBox {
    /// Keys the cipher.
    pub fn new(key: &SymmetricKey) -> Self {
        Self {
            cipher: XSalsa20Poly1305::new(key.expose_secret().into()),
        }
    }

    /// Encrypts under `nonce`, returning `tag || ciphertext`.
    pub fn seal_with_nonce(&self, plaintext: &[u8], nonce: &Nonce) -> Vec<u8> {
        let mut buffer = Vec::with_capacity(MAC_LEN + plaintext.len());
        buffer.extend_from_slice(&[0u8; MAC_LEN]);
        buffer.extend_from_slice(plaintext);
        self.seal_in_place(&mut buffer, nonce);
        buffer
    }

    /// Encrypts `buffer[MAC_LEN..]` in place and writes the tag into `buffer[..MAC_LEN]`.
    /// Lets the attachment stream reuse one buffer per chunk.
    pub fn seal_in_place(&self, buffer: &mut [u8], nonce: &Nonce) {
        let tag = self
            .cipher
            .encrypt_in_place_detached(nonce.as_bytes().into(), b"", &mut buffer[MAC_LEN..])
            .expect("XSalsa20Poly1305 accepts any message shorter than 256 GiB");
        buffer[..MAC_LEN].copy_from_slice(&tag);
    }

    /// Decrypts and authenticates `tag || ciphertext`.
    pub fn open(&self, ciphertext: &[u8], nonce: &Nonce) -> Result<Vec<u8>, CryptoError> {
        if ciphertext.len() < MAC_LEN {
            return Err(CryptoError::Decrypt);
        }
        self.cipher
            .decrypt(nonce.as_bytes().into(), ciphertext)
            .map_err(|_| CryptoError::Decrypt)
    }

    /// Decrypts `tag || ciphertext` in place; on success the plaintext is `buffer[MAC_LEN..]`.
    pub fn open_in_place(&self, buffer: &mut [u8], nonce: &Nonce) -> Result<(), CryptoError> {
        if buffer.len() < MAC_LEN {
            return Err(CryptoError::Decrypt);
        }
        let (tag, body) = buffer.split_at_mut(MAC_LEN);
        self.cipher
            .decrypt_in_place_detached(nonce.as_bytes().into(), b"", body, (&*tag).into())
            .map_err(|_| CryptoError::Decrypt)
    }
}

/// Encrypts under a fresh random nonce; returns the nonce and `tag || ciphertext`.
pub fn seal(plaintext: &[u8], key: &SymmetricKey) -> (Nonce, Vec<u8>) {
    let nonce = Nonce::random();
    (
        nonce,
        SecretBox::new(key).seal_with_nonce(plaintext, &nonce),
    )
}

/// Decrypts `tag || ciphertext` under `nonce`.
pub fn open(ciphertext: &[u8], nonce: &Nonce, key: &SymmetricKey) -> Result<Vec<u8>, CryptoError> {
    SecretBox::new(key).open(ciphertext, nonce)
}

/// Encrypts under a fresh random nonce and returns `nonce || tag || ciphertext`.
pub fn seal_prefixed(plaintext: &[u8], key: &SymmetricKey) -> Vec<u8> {
    let (nonce, ciphertext) = seal(plaintext, key);
    let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    out.extend_from_slice(nonce.as_bytes());
    out.extend_from_slice(&ciphertext);
    out
}

/// Opens `nonce || tag || ciphertext` as written by [`seal_prefixed`].
pub fn open_prefixed(sealed: &[u8], key: &SymmetricKey) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < NONCE_LEN + MAC_LEN {
        return Err(CryptoError::Decrypt);
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    open(ciphertext, &Nonce::from_slice(nonce)?, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixed_round_trip_and_failures() {
        let key = SymmetricKey::generate();
        let sealed = seal_prefixed(b"local file", &key);
        assert_eq!(sealed.len(), NONCE_LEN + MAC_LEN + 10);
        assert_eq!(open_prefixed(&sealed, &key).unwrap(), b"local file");
        assert_eq!(
            open_prefixed(&sealed, &SymmetricKey::generate()),
            Err(CryptoError::Decrypt)
        );
        assert_eq!(
            open_prefixed(&sealed[..39], &key),
            Err(CryptoError::Decrypt)
        );
        let mut bad = sealed.clone();
        bad[0] ^= 1;
        assert_eq!(open_prefixed(&bad, &key), Err(CryptoError::Decrypt));
    }

    #[test]
    fn in_place_matches_allocating() {
        let key = SymmetricKey::generate();
        let nonce = Nonce::random();
        let sb = SecretBox::new(&key);
        let ct = sb.seal_with_nonce(b"chunk", &nonce);
        let mut buf = ct.clone();
        sb.open_in_place(&mut buf, &nonce).unwrap();
        assert_eq!(&buf[MAC_LEN..], b"chunk");
    }
}
