//! The one error type of the SDK.

use std::path::PathBuf;
use std::time::Duration;

use cachet_crypto::CryptoError;
use cachet_proto::ProtoError;

/// Everything that can go wrong in the client.
///
/// Variants are coarse on purpose: an application maps each to one message for its user
/// (the `cachet` CLI adds a hint per variant). A failed decryption carries no detail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The profile is locked: unlock it with the PIN or passphrase first.
    #[error("the profile is locked")]
    Locked,
    /// The PIN or passphrase was wrong.
    #[error("wrong PIN or passphrase ({failures} failed attempt(s) in a row)")]
    WrongSecret {
        /// Consecutive failures so far, this one included.
        failures: u32,
        /// How long unlocking is now refused, if at all.
        locked_for: Option<Duration>,
    },
    /// Too many wrong PINs: unlocking is refused for a while (whitepaper 10.2).
    #[error("too many wrong attempts: unlocking is refused for another {}", human_duration(*retry_after))]
    LockedOut {
        /// Time left before the next attempt is allowed.
        retry_after: Duration,
    },
    /// The wrong-PIN counter (`lockout.json`) was found damaged or unreadable: it counts
    /// as the longest lock-out, from when the damage was found.
    #[error("the wrong-PIN counter of this profile (lockout.json) was found damaged, so it counts as the longest lock-out: unlocking is refused for another {}", human_duration(*retry_after))]
    LockoutDamaged {
        /// Time left before the next attempt is allowed.
        retry_after: Duration,
    },
    /// An unlock cannot be remembered: no keyring outside the profile is available, and a
    /// usable key is never written into the profile.
    #[error("the unlock cannot be remembered: {0}")]
    NoKeyring(String),
    /// The PIN or passphrase does not have the required form.
    #[error("{0}")]
    WeakSecret(&'static str),
    /// There is no profile in this directory.
    #[error("no cachet profile in {}", .0.display())]
    NoProfile(PathBuf),
    /// A profile already exists where a new one would be created.
    #[error("a cachet profile already exists in {}", .0.display())]
    ProfileExists(PathBuf),
    /// The profile's files are unreadable or inconsistent.
    #[error("the profile is damaged: {0}")]
    CorruptProfile(String),
    /// No contact matches the name, identifier or user id given.
    #[error("unknown contact {0:?}")]
    UnknownContact(String),
    /// A group, case, attachment or message that does not exist locally.
    #[error("unknown {kind} {id:?}")]
    NotFound {
        /// What was looked up.
        kind: &'static str,
        /// The id given.
        id: String,
    },
    /// The contact's keys changed since they were verified, without a signature by the
    /// verified key: nothing is sent to them (no message, typing event, case key,
    /// attachment key or recovery data) until they are verified again or the user accepts
    /// the new keys ([`Client::accept_key_change`](crate::Client::accept_key_change)).
    #[error("the keys of {contact} changed since you verified them, without a signature by the key you verified; nothing was sent: compare safety numbers again, or accept the new keys")]
    KeyChanged {
        /// The contact's user id.
        contact: String,
    },
    /// Strict mode refuses to share new keys with contacts never verified.
    #[error("{contact} is not verified; compare safety numbers first")]
    NotVerified {
        /// The contact's user id.
        contact: String,
    },
    /// The server's trust log contradicts what it serves elsewhere, or itself: a key not in
    /// the user's chain (substituted), a bad proof, a head inconsistent with one seen
    /// before (a fork or a rewritten history), a hidden revocation, a forged operator block.
    /// Nothing is encrypted to the keys concerned.
    #[error("trust log check failed for {context}: {source}")]
    TrustLog {
        /// Whose chain or which head.
        context: String,
        /// What is wrong, naming the attack.
        #[source]
        source: cachet_trust::TrustError,
    },
    /// The server could not be reached.
    #[error("cannot reach the server at {url}: {detail}")]
    Unreachable {
        /// The server's URL.
        url: String,
        /// What the network layer said.
        detail: String,
    },
    /// The key server (the second party of password recovery) could not be reached.
    #[error("cannot reach the key server at {url}: {detail}")]
    KeyServerUnreachable {
        /// The key server's URL.
        url: String,
        /// What the network layer said.
        detail: String,
    },
    /// A plain `http://` URL to a host other than this machine: refused before any
    /// connection, since requests and their signatures would cross the network in clear.
    #[error("refusing the plain http:// URL {url}: requests would cross the network unencrypted; use https:// (plain http:// is accepted only for 127.0.0.0/8, ::1 and localhost)")]
    InsecureUrl {
        /// The URL given.
        url: String,
    },
    /// The TLS connection to the server failed: its certificate is not vouched for by
    /// the pinned certificate (or the system's roots), or the handshake was refused.
    /// Nothing was sent; never retried.
    #[error("refusing the server at {url}: its TLS certificate is not trusted ({detail})")]
    Tls {
        /// The server's URL.
        url: String,
        /// What the TLS layer said.
        detail: String,
    },
    /// The server answered with an error.
    #[error("the server refused the request ({status} {reason}): {message}")]
    Server {
        /// HTTP status.
        status: u16,
        /// Machine-readable reason from the server.
        reason: String,
        /// Human-readable message from the server.
        message: String,
    },
    /// The server's answer broke the protocol.
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
    /// Password recovery failed: wrong password, or a server answered wrongly.
    #[error("recovery: {0}")]
    Recovery(#[from] cachet_recovery::RecoveryError),
    /// A ciphertext did not open with any of the keys tried.
    #[error("decryption failed")]
    Decrypt,
    /// Downloaded or stored data failed an integrity check.
    #[error("integrity check failed: {0}")]
    Integrity(String),
    /// An argument was not acceptable.
    #[error("{0}")]
    InvalidInput(String),
    /// A local file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The encrypted local database failed.
    #[error("local database: {0}")]
    Database(String),
    /// A cryptographic operation failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The operation was cancelled by the caller (it can be resumed).
    #[error("cancelled")]
    Cancelled,
}

impl ClientError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<rusqlite::Error> for ClientError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Database(e.to_string())
    }
}

impl From<ProtoError> for ClientError {
    fn from(e: ProtoError) -> Self {
        Self::Protocol(e.to_string())
    }
}

impl From<prost::DecodeError> for ClientError {
    fn from(e: prost::DecodeError) -> Self {
        Self::Protocol(format!("malformed protobuf: {e}"))
    }
}

/// Formats a duration for people: `45 s`, `5 min`, `2 h 30 min`.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    if secs < 60 {
        format!("{secs} s")
    } else if secs < 3600 {
        format!("{} min", secs.div_ceil(60))
    } else {
        let mins = secs.div_ceil(60);
        match mins % 60 {
            0 => format!("{} h", mins / 60),
            m => format!("{} h {m} min", mins / 60),
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;
