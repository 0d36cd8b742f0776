//! The one error type of this crate.

/// Everything that can go wrong in the cryptographic core.
///
/// A failed decryption is deliberately a single variant without detail: telling a caller
/// *why* a ciphertext did not open helps an attacker more than it helps the caller.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
#[non_exhaustive]
pub enum CryptoError {
    /// A ciphertext did not authenticate under the given key (wrong key, tampered or truncated).
    #[error("decryption failed: wrong key or corrupted ciphertext")]
    Decrypt,
    /// A signature did not verify under the given public key.
    #[error("signature verification failed")]
    BadSignature,
    /// A byte string had the wrong length for the type it should become.
    #[error("invalid length for {what}: expected {expected} bytes, got {got}")]
    InvalidLength {
        /// What was being decoded.
        what: &'static str,
        /// Required length.
        expected: usize,
        /// Length received.
        got: usize,
    },
    /// A public key was rejected (for example an Ed25519 key of small order).
    #[error("invalid public key: {0}")]
    InvalidPublicKey(&'static str),
    /// An attachment stream was malformed: truncated, extended past its end, or out of order.
    #[error("attachment stream: {0}")]
    Stream(&'static str),
    /// A share sealed to its holder was malformed ([`crate::holder`]).
    #[error("not a cachet key share: {0}")]
    SealedShare(&'static str),
    /// An unknown format version.
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u32),
}
