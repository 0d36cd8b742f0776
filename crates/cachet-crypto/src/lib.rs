//! Sans-IO cryptographic core of cachet.
//!
//! Everything here is pure computation over bytes: no sockets, no files, no clocks.
//! The primitives are the NaCl ones the Connect protocol is built on, byte-compatible
//! with libsodium:
//!
//! * [`boxes`]: `crypto_box` (curve25519xsalsa20poly1305) with random 24-byte nonces,
//!   and a precomputed per-contact key ([`boxes::PrecomputedBox`]) that skips the X25519
//!   step for repeated messages.
//! * [`secretbox`]: `crypto_secretbox` (xsalsa20poly1305) for symmetric keys.
//! * [`sign`]: standard Ed25519 (what libsodium's `crypto_sign` ships), with batch verification.
//! * [`attachment`]: the chunked attachment format, version 1 (the whitepaper's) and
//!   version 2 (which also authenticates the end of the stream).
//! * [`fingerprint`]: safety numbers and QR payloads for face-to-face key verification.
//! * [`holder`]: master-key shares sealed to their holders' Ed25519 keys.
//!
//! Secrets live in newtypes that zeroize on drop, compare in constant time and never
//! print ([`keys`]).
#![forbid(unsafe_code)]

pub mod attachment;
pub mod boxes;
mod error;
pub mod fingerprint;
#[doc(hidden)]
pub mod fuzzing;
pub mod holder;
pub mod keys;
pub mod local_file;
pub mod secretbox;
pub mod sign;

pub use error::CryptoError;
pub use keys::{
    BoxKeyPair, BoxPublicKey, BoxSecretKey, Nonce, SignKeyPair, SignPublicKey, SymmetricKey,
};

/// Length of every NaCl nonce used here (XSalsa20): 24 bytes.
///
/// The whitepaper says 32 bytes in section 2.3.1; that is a slip, NaCl's box and
/// secretbox nonces are 24 bytes.
pub const NONCE_LEN: usize = 24;
/// Length of the Poly1305 authenticator that every box and secretbox adds.
pub const MAC_LEN: usize = 16;
/// Length of public and secret keys (X25519, Ed25519 seed, symmetric keys).
pub const KEY_LEN: usize = 32;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// Fills a fresh array with bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    use rand_core::RngCore;
    let mut out = [0u8; N];
    rand_core::OsRng.fill_bytes(&mut out);
    out
}

/// SHA-256 of `data`, used for content digests (attachments, request bodies).
pub fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}
