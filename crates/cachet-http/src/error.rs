//! The one error type of the shared HTTP plumbing.

/// What can go wrong while setting up a server or delivering a code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A TLS certificate or key could not be loaded.
    #[error("tls: {0}")]
    Tls(String),
    /// A setting is refused.
    #[error("configuration: {0}")]
    Config(String),
    /// The configured notifier cannot reach this kind of identifier.
    #[error("no notifier for this kind of identifier: {0}")]
    IdentifierNotDeliverable(&'static str),
    /// The identifier is not something a notifier can address.
    #[error("invalid identifier: {0}")]
    InvalidIdentifier(&'static str),
    /// The notifier failed to hand the code on.
    #[error("code delivery failed: {0}")]
    CodeDeliveryFailed(String),
    /// File-system or socket failure.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
