//! NaCl `crypto_secretbox` (xsalsa20poly1305) under a [`SymmetricKey`].
//!
//! Output layout is libsodium's `crypto_secretbox_easy`: 16-byte tag, then ciphertext.
//! [`seal_prefixed`] additionally prepends the random nonce, the layout the whitepaper
//! gives for local files (section 3.4) and that cachet uses wherever a nonce must travel
//! with its ciphertext.

use crate::{CryptoError, Nonce, SymmetricKey, MAC_LEN, NONCE_LEN};

/// The XSalsa20-Poly1305 implementation behind [`SecretBox`] (and so behind
/// [`crate::boxes::PrecomputedBox`] and the attachment stream). Pure Rust (RustCrypto)
/// by default; with the `libsodium` feature, libsodium's, which is about three times
/// faster on bulk data on x86-64 (see `docs/benchmarks.md`). Both produce the same bytes.
pub const BACKEND: &str = if cfg!(feature = "libsodium") {
    "libsodium"
} else {
    "rustcrypto"
};

#[cfg(not(feature = "libsodium"))]
mod backend {
    use crypto_secretbox::aead::{AeadInPlace, KeyInit};
    use crypto_secretbox::XSalsa20Poly1305;

    use crate::{CryptoError, Nonce, MAC_LEN};

    pub(super) struct Cipher(XSalsa20Poly1305);

    impl Cipher {
        pub(super) fn new(key: &[u8; 32]) -> Self {
            Self(XSalsa20Poly1305::new(key.into()))
        }
        pub(super) fn seal_in_place(&self, buffer: &mut [u8], nonce: &Nonce) {
            let tag = self
                .0
                .encrypt_in_place_detached(nonce.as_bytes().into(), b"", &mut buffer[MAC_LEN..])
                .expect("XSalsa20Poly1305 accepts any message shorter than 256 GiB");
            buffer[..MAC_LEN].copy_from_slice(&tag);
        }
        pub(super) fn open_detached(
            &self,
            tag: &[u8; MAC_LEN],
            body: &mut [u8],
            nonce: &Nonce,
        ) -> Result<(), CryptoError> {
            self.0
                .decrypt_in_place_detached(nonce.as_bytes().into(), b"", body, tag.into())
                .map_err(|_| CryptoError::Decrypt)
        }
    }
}

#[cfg(feature = "libsodium")]
mod backend {
    use zeroize::Zeroizing;

    use crate::{CryptoError, Nonce};

    pub(super) struct Cipher(Zeroizing<[u8; 32]>);

    impl Cipher {
        pub(super) fn new(key: &[u8; 32]) -> Self {
            Self(Zeroizing::new(*key))
        }
        pub(super) fn seal_in_place(&self, buffer: &mut [u8], nonce: &Nonce) {
            cachet_sodium_ref::secretbox_seal_in_place(buffer, nonce.as_bytes(), &self.0);
        }
        pub(super) fn open_detached(
            &self,
            tag: &[u8; crate::MAC_LEN],
            body: &mut [u8],
            nonce: &Nonce,
        ) -> Result<(), CryptoError> {
            cachet_sodium_ref::secretbox_open_detached_in_place(
                tag,
                body,
                nonce.as_bytes(),
                &self.0,
            )
            .then_some(())
            .ok_or(CryptoError::Decrypt)
        }
    }
}

/// A secretbox cipher keyed once, for sealing many messages under one key.
pub struct SecretBox {
    cipher: backend::Cipher,
}

impl SecretBox {
    /// Keys the cipher.
    pub fn new(key: &SymmetricKey) -> Self {
        Self::from_raw_key(key.expose_secret())
    }

    pub(crate) fn from_raw_key(key: &[u8; 32]) -> Self {
        Self {
            cipher: backend::Cipher::new(key),
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
    ///
    /// # Panics
    /// If `buffer` is shorter than the tag.
    pub fn seal_in_place(&self, buffer: &mut [u8], nonce: &Nonce) {
        assert!(buffer.len() >= MAC_LEN, "buffer shorter than the tag");
        self.cipher.seal_in_place(buffer, nonce);
    }

    /// Decrypts and authenticates `tag || ciphertext`.
    pub fn open(&self, ciphertext: &[u8], nonce: &Nonce) -> Result<Vec<u8>, CryptoError> {
        if ciphertext.len() < MAC_LEN {
            return Err(CryptoError::Decrypt);
        }
        let (tag, body) = ciphertext.split_at(MAC_LEN);
        let mut plaintext = body.to_vec();
        let tag: &[u8; MAC_LEN] = tag.try_into().map_err(|_| CryptoError::Decrypt)?;
        self.cipher.open_detached(tag, &mut plaintext, nonce)?;
        Ok(plaintext)
    }

    /// Decrypts `tag || ciphertext` in place; on success the plaintext is `buffer[MAC_LEN..]`.
    pub fn open_in_place(&self, buffer: &mut [u8], nonce: &Nonce) -> Result<(), CryptoError> {
        if buffer.len() < MAC_LEN {
            return Err(CryptoError::Decrypt);
        }
        let (tag, body) = buffer.split_at_mut(MAC_LEN);
        let tag: [u8; MAC_LEN] = (&*tag).try_into().map_err(|_| CryptoError::Decrypt)?;
        self.cipher.open_detached(&tag, body, nonce)
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
