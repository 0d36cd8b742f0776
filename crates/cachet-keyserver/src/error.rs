//! The one error type of the recovery service, and its mapping to HTTP. Bodies are the
//! data server's shape: `{"reason": "<stable_snake_case>", "message": "<text>"}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// What can go wrong in a recovery request or in the key server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A field breaks a rule.
    #[error("invalid {0}: {1}")]
    InvalidField(&'static str, String),
    /// Not a phone number or e-mail address.
    #[error("invalid identifier: {0}")]
    InvalidIdentifier(&'static str),
    /// The configured notifier cannot reach this kind of identifier.
    #[error("no notifier for this kind of identifier: {0}")]
    IdentifierNotDeliverable(&'static str),
    /// The notifier failed to hand the code on.
    #[error("code delivery failed: {0}")]
    CodeDeliveryFailed(String),
    /// Too many unexpired codes for this identifier.
    #[error("too many codes requested for this identifier; wait for them to expire")]
    TooManyCodes,
    /// No such challenge (or consumed).
    #[error("unknown challenge")]
    UnknownChallenge,
    /// The code expired.
    #[error("the code expired")]
    ChallengeExpired,
    /// Too many wrong codes for this challenge.
    #[error("too many wrong codes; request a new one")]
    TooManyAttempts,
    /// Wrong code.
    #[error("wrong code")]
    WrongCode,
    /// No recovery enrolment for this identifier.
    #[error("no recovery enrolment for this account")]
    NotEnrolled,
    /// The identifier belongs to another account than the one named.
    #[error("the identifier belongs to another account")]
    UserMismatch,
    /// The client's copy of this server's public share is not the server's.
    #[error("the public share given is not this server's")]
    ShareMismatch,
    /// A signature by the recovery auth key did not verify.
    #[error("bad signature by the recovery authentication key")]
    BadSignature,
    /// Replacing an enrolment needs the signature of the key being replaced.
    #[error("replacing an enrolment needs a signature by the current authentication key")]
    BadPreviousSignature,
    /// Rate limit: wait until the given time.
    #[error("too many failed recoveries; retry after {0} (ms since the epoch)")]
    RetryLater(i64),
    /// Rate limit: locked out until the given time.
    #[error("recovery locked after too many failures; retry after {0} (ms since the epoch)")]
    LockedOut(i64),
    /// A concurrent request changed the account; retry.
    #[error("concurrent change of this account; retry")]
    Concurrent,
    /// An update older than the stored one, or outside the clock window.
    #[error("stale or replayed update")]
    StaleUpdate,
    /// No encrypted message backup stored for this user.
    #[error("no backup stored")]
    NoBackup,
    /// The key server is sealed: its master key is not in memory.
    #[error("the key server is sealed; operators must unseal it (cachet operator --server <key server> unseal)")]
    Sealed,
    /// A vault operation refused (share, sharing, state of the vault).
    #[error("{0}")]
    Vault(cachet_vault::VaultError),
    /// An operator route without a valid operator signature.
    #[error("operator signature refused: {0}")]
    Unauthenticated(String),
    /// `x-siilo-uid` or `x-siilo-sig` appears more than once.
    #[error("header {0} appears more than once")]
    DuplicateHeader(&'static str),
    /// The same signed request was sent twice.
    #[error("this signed request was already used; sign a new one")]
    ReplayedSignature,
    /// Configuration refused.
    #[error("configuration: {0}")]
    Config(String),
    /// Database failure.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Migration failure.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// File-system failure.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The other server refused or failed (share refresh).
    #[error("peer server: {0}")]
    Peer(String),
    /// A bug or a broken invariant.
    #[error("internal: {0}")]
    Internal(String),
}

impl cachet_server_common::errors::ServerError for Error {
    fn invalid_field(field: &'static str, reason: String) -> Self {
        Error::InvalidField(field, reason)
    }

    fn internal(reason: String) -> Self {
        Error::Internal(reason)
    }
}

impl From<cachet_vault::VaultError> for Error {
    fn from(e: cachet_vault::VaultError) -> Self {
        match e {
            cachet_vault::VaultError::Sealed => Error::Sealed,
            cachet_vault::VaultError::BadConfig(why) => {
                Error::InvalidField("sealed_root", why.into())
            }
            other => Error::Vault(other),
        }
    }
}

impl From<cachet_http::Error> for Error {
    fn from(e: cachet_http::Error) -> Self {
        use cachet_http::Error as H;
        match e {
            H::IdentifierNotDeliverable(why) => Error::IdentifierNotDeliverable(why),
            H::InvalidIdentifier(why) => Error::InvalidIdentifier(why),
            H::CodeDeliveryFailed(why) => Error::CodeDeliveryFailed(why),
            H::Config(why) => Error::Config(why),
            H::Tls(why) => Error::Config(format!("tls: {why}")),
            H::Io(e) => Error::Io(e),
            other => Error::Internal(other.to_string()),
        }
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Status and stable reason.
    pub fn status_and_reason(&self) -> (StatusCode, &'static str) {
        use Error::*;
        match self {
            InvalidField(..) => (StatusCode::BAD_REQUEST, "invalid_field"),
            InvalidIdentifier(_) => (StatusCode::BAD_REQUEST, "invalid_identifier"),
            IdentifierNotDeliverable(_) => (StatusCode::BAD_REQUEST, "identifier_not_deliverable"),
            CodeDeliveryFailed(_) => (StatusCode::BAD_GATEWAY, "code_delivery_failed"),
            TooManyCodes => (StatusCode::TOO_MANY_REQUESTS, "too_many_codes"),
            UnknownChallenge => (StatusCode::NOT_FOUND, "unknown_challenge"),
            ChallengeExpired => (StatusCode::GONE, "challenge_expired"),
            TooManyAttempts => (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"),
            WrongCode => (StatusCode::FORBIDDEN, "wrong_code"),
            NotEnrolled => (StatusCode::NOT_FOUND, "not_enrolled"),
            UserMismatch => (StatusCode::CONFLICT, "user_mismatch"),
            ShareMismatch => (StatusCode::BAD_REQUEST, "share_mismatch"),
            BadSignature => (StatusCode::FORBIDDEN, "bad_signature"),
            BadPreviousSignature => (StatusCode::FORBIDDEN, "bad_previous_signature"),
            RetryLater(_) => (StatusCode::TOO_MANY_REQUESTS, "retry_later"),
            LockedOut(_) => (StatusCode::LOCKED, "locked_out"),
            Concurrent => (StatusCode::CONFLICT, "concurrent_change"),
            StaleUpdate => (StatusCode::CONFLICT, "stale_update"),
            NoBackup => (StatusCode::NOT_FOUND, "no_backup"),
            Peer(_) => (StatusCode::BAD_GATEWAY, "peer_failed"),
            Sealed => (StatusCode::SERVICE_UNAVAILABLE, "sealed"),
            Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            ReplayedSignature => (StatusCode::UNAUTHORIZED, "replayed_signature"),
            Vault(e) => cachet_server_common::errors::vault_status_and_reason(e),
            DuplicateHeader(_) => (StatusCode::BAD_REQUEST, "duplicate_header"),
            Database(e) if database_unavailable(e) => {
                (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable")
            }
            Config(_) | Database(_) | Migrate(_) | Io(_) | Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal_error")
            }
        }
    }
}

pub use cachet_server_common::errors::database_unavailable;

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, reason) = self.status_and_reason();
        let message = if status == StatusCode::SERVICE_UNAVAILABLE && reason != "sealed" {
            tracing::warn!(error = %self, reason, "recovery request refused");
            "the database is unavailable; retry later".to_owned()
        } else if status.is_server_error() {
            tracing::error!(error = %self, reason, "recovery request failed");
            "internal server error".to_owned()
        } else {
            tracing::debug!(error = %self, reason, "recovery request refused");
            self.to_string()
        };
        cachet_server_common::errors::json_error_response(status, reason, &message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_database_is_503_not_500() {
        for e in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::Io(std::io::ErrorKind::ConnectionRefused.into()),
        ] {
            assert_eq!(
                Error::Database(e).status_and_reason(),
                (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable")
            );
        }
        assert_eq!(
            Error::Database(sqlx::Error::RowNotFound).status_and_reason(),
            (StatusCode::INTERNAL_SERVER_ERROR, "internal_error")
        );
    }
}
