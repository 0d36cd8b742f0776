//! The one error type of this crate.

/// What can go wrong in recovery.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
#[non_exhaustive]
pub enum RecoveryError {
    /// A server's evaluation did not come with a valid proof for its published share: that
    /// server answered wrongly (or is corrupt).
    #[error("server {0} returned an evaluation that does not match its published key")]
    BadEvaluation(usize),
    /// The two servers disagree on the published key shares of this user.
    #[error("the servers disagree on this user's recovery keys")]
    InconsistentPublicShares,
    /// A point or scalar did not decode, or was the identity.
    #[error("invalid group element or scalar")]
    InvalidElement,
    /// The key ring did not open: wrong password, or tampered envelope.
    #[error("the key ring did not open: wrong password or damaged envelope")]
    WrongPasswordOrDamaged,
    /// The key ring opened but its contents are malformed.
    #[error("malformed key ring: {0}")]
    MalformedKeyRing(String),
    /// Argon2 or HKDF refused the parameters.
    #[error("invalid hardening parameters")]
    Parameters,
}
