//! The CLI's errors: the SDK's, with an exit code and a hint for the user.

use std::io::ErrorKind;

use cachet_client::{human_duration, ClientError};

/// Exit codes (documented in `cachet --help`).
pub mod exit {
    /// Success.
    pub const OK: i32 = 0;
    /// Unexpected failure.
    pub const FAILURE: i32 = 1;
    /// Bad usage or input.
    pub const USAGE: i32 = 2;
    /// Locked: wrong PIN, lock-out, no PIN given.
    pub const LOCKED: i32 = 3;
    /// Something named does not exist.
    pub const NOT_FOUND: i32 = 4;
    /// The server cannot be reached.
    pub const UNREACHABLE: i32 = 5;
    /// The server refused.
    pub const SERVER: i32 = 6;
    /// Refused because the contact's verified keys changed without a signature by the
    /// verified key (KEY CHANGED): nothing was sent or shared.
    pub const TRUST: i32 = 7;
    /// Integrity failure.
    pub const INTEGRITY: i32 = 8;
    /// The server's trust log contradicts itself, the directory or a saved head.
    pub const TRUST_LOG: i32 = 9;
    /// Refused because the contact was never verified and `require_verified` is set.
    pub const NOT_VERIFIED: i32 = 10;
}

/// Everything a command can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// From the SDK.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// From the embedded server.
    #[error("server: {0}")]
    Server(#[from] cachet_server::Error),
    /// From the key server.
    #[error("key server: {0}")]
    KeyServer(#[from] cachet_keyserver::Error),
    /// Bad input caught by the CLI itself.
    #[error("{message}")]
    Usage {
        /// What is wrong.
        message: String,
        /// What to do.
        hint: Option<String>,
    },
    /// A demo step failed.
    #[error("demo failed: {0}")]
    Demo(String),
    /// A file of the CLI (config, output) could not be used.
    #[error("{0}")]
    Io(String),
}

impl CliError {
    /// Bad input with a hint.
    pub fn usage(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::Usage {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Client(e) => match e {
                ClientError::Locked
                | ClientError::WrongSecret { .. }
                | ClientError::LockedOut { .. }
                | ClientError::LockoutDamaged { .. } => exit::LOCKED,
                ClientError::WeakSecret(_)
                | ClientError::InvalidInput(_)
                | ClientError::InsecureUrl { .. } => exit::USAGE,
                ClientError::NoProfile(_)
                | ClientError::UnknownContact(_)
                | ClientError::NotFound { .. } => exit::NOT_FOUND,
                ClientError::Io { source, .. } if source.kind() == ErrorKind::NotFound => {
                    exit::NOT_FOUND
                }
                ClientError::Unreachable { .. }
                | ClientError::KeyServerUnreachable { .. }
                | ClientError::Tls { .. } => exit::UNREACHABLE,
                ClientError::Server { status: 404, .. } => exit::NOT_FOUND,
                ClientError::Server { .. } => exit::SERVER,
                ClientError::KeyChanged { .. } => exit::TRUST,
                ClientError::NotVerified { .. } => exit::NOT_VERIFIED,
                ClientError::TrustLog { .. } => exit::TRUST_LOG,
                ClientError::Decrypt
                | ClientError::Integrity(_)
                | ClientError::CorruptProfile(_) => exit::INTEGRITY,
                _ => exit::FAILURE,
            },
            Self::Usage { .. } => exit::USAGE,
            Self::Server(_) | Self::KeyServer(_) | Self::Demo(_) | Self::Io(_) => exit::FAILURE,
        }
    }

    /// A short name of the kind of error, for `--json`.
    pub fn kind(&self) -> &'static str {
        match self.exit_code() {
            exit::USAGE => "usage",
            exit::LOCKED => "locked",
            exit::NOT_FOUND => "not_found",
            exit::UNREACHABLE => "unreachable",
            exit::SERVER => "server",
            exit::TRUST => "key_changed",
            exit::INTEGRITY => "integrity",
            exit::TRUST_LOG => "trust_log",
            exit::NOT_VERIFIED => "not_verified",
            _ => "failure",
        }
    }

    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        let s = |h: &str| Some(h.to_owned());
        match self {
            Self::Usage { hint, .. } => hint.clone(),
            Self::Client(e) => match e {
                ClientError::Locked => s("run `cachet unlock`, or set CACHET_PIN / CACHET_PASSPHRASE for scripts"),
                ClientError::WrongSecret { locked_for: Some(d), .. } => Some(format!(
                    "try again in {}; every further wrong attempt waits longer",
                    human_duration(*d)
                )),
                ClientError::WrongSecret { .. } => {
                    s("check the PIN or passphrase; after 2 wrong attempts unlocking is delayed")
                }
                ClientError::LockedOut { retry_after } => Some(format!(
                    "wait {} and try again; nothing was lost",
                    human_duration(*retry_after)
                )),
                ClientError::LockoutDamaged { retry_after } => Some(format!(
                    "wait {} and unlock as usual (nothing was lost); sooner only by restoring lockout.json from a backup you trust, or by recovering the account into a new profile (`cachet recovery restore`)",
                    human_duration(*retry_after)
                )),
                ClientError::NoKeyring(_) => s(
                    "the PIN was right, but without a keyring every command asks for it (or reads CACHET_PIN / CACHET_PASSPHRASE); the master key is never written to disk instead",
                ),
                ClientError::WeakSecret(_) => {
                    s("choose 5 digits without a pattern (no repeated digit, no run such as 12345 or 13579), or a passphrase of at least 10 characters")
                }
                ClientError::NoProfile(_) => s(
                    "register first with `cachet register +33612345678 --name \"Your Name\"`, or pass --profile DIR",
                ),
                ClientError::ProfileExists(_) => {
                    s("use another --profile directory, or keep using this one")
                }
                ClientError::UnknownContact(_) => s(
                    "list contacts with `cachet contacts`; add one with `cachet contacts add +33612345678 --as NAME`",
                ),
                ClientError::NotFound { kind: "group", .. } => s("list groups with `cachet group`"),
                ClientError::NotFound { kind: "case", .. } => s("list cases with `cachet case list`"),
                ClientError::NotFound { kind: "attachment", .. } => {
                    s("list attachments with `cachet fetch`; receive new mail with `cachet inbox`")
                }
                ClientError::NotFound { .. } => None,
                ClientError::KeyChanged { contact } => Some(format!(
                    "compare safety numbers with `cachet verify {contact}` in person, then `cachet verify {contact} --confirm`; or, to trust the new keys without comparing, `cachet verify {contact} --accept`"
                )),
                ClientError::NotVerified { contact } => Some(format!(
                    "compare safety numbers with `cachet verify {contact}` in person, then `cachet verify {contact} --confirm`"
                )),
                ClientError::Unreachable { .. } => s(
                    "check that the server runs and the URL is right (--server or CACHET_SERVER); nothing local was changed",
                ),
                ClientError::KeyServerUnreachable { .. } => s(
                    "check that the key server runs and the URL is right (--key-server or CACHET_KEY_SERVER); no code was sent and nothing local was changed",
                ),
                ClientError::InsecureUrl { .. } => s(
                    "give the server's https:// address (--server, CACHET_SERVER or the config file's `server`)",
                ),
                ClientError::Tls { .. } => s(
                    "the certificate the server shows is not the one pinned for this profile (`--ca-cert` at registration, `server-ca.pem` in the profile): someone may be intercepting the connection, or the server's certificate was replaced; nothing was sent",
                ),
                ClientError::Server { status: 401, .. } => s(
                    "this installation's keys may have been replaced or revoked; check `cachet status`",
                ),
                ClientError::Server { reason, .. } if reason == "wrong_code" => {
                    s("check the one-time code and run `cachet register` again")
                }
                ClientError::Server { .. } => s("the request was not applied; nothing local was changed"),
                ClientError::Integrity(_) | ClientError::Decrypt => s(
                    "the data was altered or corrupted; ask the sender to send it again",
                ),
                ClientError::CorruptProfile(_) => s(
                    "the profile files were altered; restore them from a backup or register again in a new --profile",
                ),
                ClientError::Io { source, .. } if source.kind() == ErrorKind::NotFound => {
                    s("check the path")
                }
                ClientError::TrustLog { .. } => s(
                    "the server may be attacking this conversation: nothing was sent; keep the saved head (`cachet audit --export`) as evidence",
                ),
                ClientError::Cancelled => s("run the same command with --resume to continue"),
                _ => None,
            },
            Self::Server(_) => s("see `cachet server --help`"),
            Self::KeyServer(_) => s("see `cachet keyserver --help`"),
            Self::Demo(_) => s("the steps above show where it failed"),
            Self::Io(_) => None,
        }
    }
}
