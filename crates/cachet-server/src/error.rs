//! The one error type of the server, and the one place that maps it to HTTP.
//!
//! Every failure answers with a JSON body `{"reason": "<stable_snake_case>", "message":
//! "<human text>"}`. Reasons are part of the API contract (`docs/protocol.md`, "HTTP API");
//! messages are for people and may change.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cachet_proto::ProtoError;

/// Everything that can go wrong in the server, from bad input to storage faults.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- Request shape ----
    /// The body is not valid protobuf for the expected message.
    #[error("malformed protobuf: {0}")]
    MalformedProtobuf(String),
    /// A field breaks a rule (length, alphabet, count...).
    #[error("invalid {field}: {reason}")]
    InvalidField {
        /// The offending field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A path segment or query parameter does not parse.
    #[error("invalid request target: {0}")]
    InvalidPath(String),
    /// The body exceeds the limit of this route.
    #[error("request body exceeds {0} bytes")]
    BodyTooLarge(usize),
    /// The body could not be read off the connection.
    #[error("could not read the request body: {0}")]
    BadBody(String),
    /// No route has this path.
    #[error("no such route")]
    UnknownRoute,
    /// The route exists but not with this method.
    #[error("method not allowed on this route")]
    MethodNotAllowed,

    // ---- Signed requests ----
    /// `x-siilo-uid` or `x-siilo-sig` is absent.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// `x-siilo-uid` or `x-siilo-sig` appears more than once.
    #[error("header {0} appears more than once")]
    DuplicateHeader(&'static str),
    /// `x-siilo-sig` cannot be decoded.
    #[error("malformed signature: {0}")]
    MalformedSignature(String),
    /// The signature is for another request: the user id, path (with query), method or
    /// body hash differs; the [`ProtoError`] (`UidMismatch`, `PathMismatch`,
    /// `MethodMismatch` or `BodyMismatch`) says which.
    #[error(transparent)]
    TargetMismatch(ProtoError),
    /// The signed timestamp is outside the five-minute window.
    #[error("signature timestamp is {0} ms away from the server clock (limit 300000)")]
    SignatureExpired(i64),
    /// No current, unrevoked key is known for the caller.
    #[error("unknown user: {0}")]
    UnknownUser(&'static str),
    /// The signature does not verify under the caller's current Sign Key.
    #[error("bad signature")]
    BadSignature,
    /// This exact signature was already accepted once.
    #[error("this signature was already used")]
    ReplayedSignature,
    /// A user called an operator route.
    #[error("operator credentials required")]
    OperatorOnly,
    /// An operator called a user route.
    #[error("this route is for users, not operators")]
    UserOnly,

    // ---- Registration ----
    /// The identifier is neither an E.164 phone number nor an e-mail address.
    #[error("invalid identifier: {0}")]
    InvalidIdentifier(&'static str),
    /// The configured notifier cannot reach this kind of identifier.
    #[error("no notifier for this kind of identifier: {0}")]
    IdentifierNotDeliverable(&'static str),
    /// The notifier failed to send the code.
    #[error("could not deliver the one-time code: {0}")]
    CodeDeliveryFailed(String),
    /// Too many unexpired codes were requested for this identifier.
    #[error("too many codes requested for this identifier; wait for the last ones to expire")]
    TooManyCodes,
    /// No pending challenge has this id (never issued, used, or expired and purged).
    #[error("unknown or already used challenge")]
    UnknownChallenge,
    /// The challenge's code expired.
    #[error("the one-time code expired")]
    ChallengeExpired,
    /// Too many wrong codes were tried for this challenge.
    #[error("too many wrong codes; start again")]
    TooManyAttempts,
    /// The code does not match.
    #[error("wrong one-time code")]
    WrongCode,
    /// A public key has the wrong length or is not a valid point.
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    /// The proof of possession of the new Sign Key does not verify.
    #[error("self_signature does not verify under the new sign key")]
    BadSelfSignature,
    /// The authorisation by the previous Sign Key does not verify.
    #[error("previous_key_signature does not verify under the previous sign key")]
    BadPreviousKeySignature,

    // ---- Directory and keys ----
    /// No such user.
    #[error("no such user")]
    UserNotFound,
    /// The user's keys are already revoked.
    #[error("the user's keys are already revoked")]
    AlreadyRevoked,
    /// The user's current keys have no block in the trust log (yet): not served, so that
    /// no client encrypts to keys the log does not vouch for.
    #[error("the user's current keys are not in the trust log yet")]
    KeysNotInLog,
    /// The user's keys changed while the request was processed; retry.
    #[error("the user's keys changed concurrently; retry")]
    ConcurrentKeyChange,

    // ---- Trust log ----
    /// A block breaks the rules of the user's chain (or is not the caller's to write).
    #[error("block refused: {0}")]
    TrustBlockRejected(String),
    /// Another block took this place in the user's chain first; fetch the chain and retry.
    #[error("another block is already at this place of the chain")]
    TrustBlockConflict,
    /// A proof or block range asked for a tree larger than the log.
    #[error("the log is smaller than requested: {0}")]
    LogTooSmall(String),

    // ---- Messages ----
    /// A recipient or reader does not exist.
    #[error("unknown recipient {0}")]
    UnknownRecipient(String),
    /// The sender already used this message id for different content.
    #[error("message id already used for different content")]
    MessageIdReused,
    /// Clients may not send contact updates; only the server issues them.
    #[error("contact updates are issued by the server only")]
    ContactUpdateForbidden,

    // ---- Attachments ----
    /// No such attachment.
    #[error("no such attachment")]
    AttachmentNotFound,
    /// The caller may not touch this attachment.
    #[error("not allowed to access this attachment")]
    AttachmentForbidden,
    /// The attachment exceeds the largest size allowed.
    #[error("attachment larger than the limit of {0} bytes")]
    AttachmentTooLarge(u64),
    /// The upload would exceed the user's storage quota.
    #[error("storage quota of {0} bytes exceeded")]
    QuotaExceeded(u64),
    /// The chunk index is outside the attachment.
    #[error("chunk index {0} out of range")]
    BadChunkIndex(u64),
    /// The chunk does not have the size its index requires.
    #[error("chunk has {got} bytes, expected {expected}")]
    BadChunkSize {
        /// Bytes received.
        got: u64,
        /// Bytes required at this index.
        expected: u64,
    },
    /// The chunk is not stored (yet).
    #[error("chunk {0} not uploaded")]
    ChunkNotFound(u32),
    /// Chunks are missing at completion.
    #[error("{0} chunk(s) missing")]
    MissingChunks(usize),
    /// The uploaded bytes do not hash to the announced SHA-256.
    #[error("sha256 of the stored chunks does not match")]
    ChecksumMismatch,
    /// The attachment is complete and can no longer change.
    #[error("attachment already complete")]
    AttachmentComplete,

    // ---- Cases ----
    /// No such case.
    #[error("no such case")]
    CaseNotFound,
    /// A case with this id exists already.
    #[error("a case with this id exists")]
    CaseExists,
    /// The caller is not a participant of the case.
    #[error("not a participant of this case")]
    NotAParticipant,

    // ---- Rate limits ----
    /// The caller looked up more identifier hashes than the discovery limit allows in the
    /// current window.
    #[error("discovery limit of {limit} hashes per {window_seconds} s reached; retry in {retry_after} s")]
    DiscoveryRateLimited {
        /// Hashes allowed per window.
        limit: u64,
        /// Length of the window.
        window_seconds: u64,
        /// Seconds until the next window opens.
        retry_after: u64,
    },

    // ---- Key hierarchy ----
    /// The server is sealed: its master key is not in memory.
    #[error("the server is sealed; operators must unseal it (cachet operator unseal)")]
    Sealed,
    /// A vault operation needs an initialised vault.
    #[error("no master key protects this server yet (cachet operator init)")]
    VaultNotInitialised,
    /// `init` or `import` on a server that already has a vault.
    #[error("this server already has a master key")]
    VaultAlreadyInitialised,
    /// `init` on a database that already holds users in the clear.
    #[error("the vault must be initialised before the first registration")]
    VaultNeedsEmptyDatabase,
    /// A share, sharing or sealed value was refused.
    #[error("{0}")]
    Vault(cachet_vault::VaultError),

    // ---- Internal ----
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A database migration failed.
    #[error("migration error: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A file operation failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The configuration is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// TLS setup failed.
    #[error("tls: {0}")]
    Tls(String),
    /// The audit log's hash chain is broken.
    #[error("audit chain broken at entry {seq}: {reason}")]
    AuditChainBroken {
        /// First entry that does not check.
        seq: u64,
        /// What does not check.
        reason: &'static str,
    },
    /// Anything else that is the server's fault.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result alias of the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for [`Error::InvalidField`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidField {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// HTTP status and stable reason, in one table.
    pub fn status_and_reason(&self) -> (StatusCode, &'static str) {
        use Error::*;
        use StatusCode as S;
        match self {
            MalformedProtobuf(_) => (S::BAD_REQUEST, "malformed_protobuf"),
            InvalidField { .. } => (S::BAD_REQUEST, "invalid_field"),
            InvalidPath(_) => (S::BAD_REQUEST, "invalid_path"),
            BodyTooLarge(_) => (S::PAYLOAD_TOO_LARGE, "body_too_large"),
            BadBody(_) => (S::BAD_REQUEST, "bad_body"),
            UnknownRoute => (S::NOT_FOUND, "unknown_route"),
            MethodNotAllowed => (S::METHOD_NOT_ALLOWED, "method_not_allowed"),

            MissingHeader(_) => (S::UNAUTHORIZED, "missing_header"),
            DuplicateHeader(_) => (S::BAD_REQUEST, "duplicate_header"),
            MalformedSignature(_) => (S::BAD_REQUEST, "malformed_signature"),
            TargetMismatch(ProtoError::UidMismatch) => (S::UNAUTHORIZED, "uid_mismatch"),
            TargetMismatch(ProtoError::PathMismatch) => (S::UNAUTHORIZED, "path_mismatch"),
            TargetMismatch(ProtoError::MethodMismatch) => (S::UNAUTHORIZED, "method_mismatch"),
            TargetMismatch(ProtoError::BodyMismatch) => (S::UNAUTHORIZED, "body_mismatch"),
            // Only the four above are ever wrapped (`From<ProtoError>`).
            TargetMismatch(_) => (S::UNAUTHORIZED, "bad_signature"),
            SignatureExpired(_) => (S::UNAUTHORIZED, "signature_expired"),
            UnknownUser(_) => (S::UNAUTHORIZED, "unknown_user"),
            BadSignature => (S::UNAUTHORIZED, "bad_signature"),
            ReplayedSignature => (S::UNAUTHORIZED, "replayed_signature"),
            OperatorOnly => (S::FORBIDDEN, "operator_only"),
            UserOnly => (S::FORBIDDEN, "user_only"),

            InvalidIdentifier(_) => (S::BAD_REQUEST, "invalid_identifier"),
            IdentifierNotDeliverable(_) => (S::BAD_REQUEST, "identifier_not_deliverable"),
            CodeDeliveryFailed(_) => (S::BAD_GATEWAY, "code_delivery_failed"),
            TooManyCodes => (S::TOO_MANY_REQUESTS, "too_many_codes"),
            UnknownChallenge => (S::BAD_REQUEST, "unknown_challenge"),
            ChallengeExpired => (S::BAD_REQUEST, "challenge_expired"),
            TooManyAttempts => (S::TOO_MANY_REQUESTS, "too_many_attempts"),
            WrongCode => (S::FORBIDDEN, "wrong_code"),
            InvalidKey(_) => (S::BAD_REQUEST, "invalid_key"),
            BadSelfSignature => (S::BAD_REQUEST, "bad_self_signature"),
            BadPreviousKeySignature => (S::BAD_REQUEST, "bad_previous_key_signature"),

            UserNotFound => (S::NOT_FOUND, "user_not_found"),
            AlreadyRevoked => (S::CONFLICT, "already_revoked"),
            KeysNotInLog => (S::CONFLICT, "keys_not_in_log"),
            ConcurrentKeyChange => (S::CONFLICT, "concurrent_key_change"),
            TrustBlockRejected(_) => (S::BAD_REQUEST, "block_rejected"),
            TrustBlockConflict => (S::CONFLICT, "block_conflict"),
            LogTooSmall(_) => (S::BAD_REQUEST, "log_too_small"),

            UnknownRecipient(_) => (S::BAD_REQUEST, "unknown_recipient"),
            MessageIdReused => (S::CONFLICT, "message_id_reused"),
            ContactUpdateForbidden => (S::FORBIDDEN, "contact_update_forbidden"),

            AttachmentNotFound => (S::NOT_FOUND, "attachment_not_found"),
            AttachmentForbidden => (S::FORBIDDEN, "attachment_forbidden"),
            AttachmentTooLarge(_) => (S::PAYLOAD_TOO_LARGE, "attachment_too_large"),
            QuotaExceeded(_) => (S::PAYLOAD_TOO_LARGE, "quota_exceeded"),
            BadChunkIndex(_) => (S::BAD_REQUEST, "bad_chunk_index"),
            BadChunkSize { .. } => (S::BAD_REQUEST, "bad_chunk_size"),
            ChunkNotFound(_) => (S::NOT_FOUND, "chunk_not_found"),
            MissingChunks(_) => (S::CONFLICT, "missing_chunks"),
            ChecksumMismatch => (S::BAD_REQUEST, "checksum_mismatch"),
            AttachmentComplete => (S::CONFLICT, "attachment_complete"),

            CaseNotFound => (S::NOT_FOUND, "case_not_found"),
            CaseExists => (S::CONFLICT, "case_exists"),
            NotAParticipant => (S::FORBIDDEN, "not_a_participant"),

            DiscoveryRateLimited { .. } => (S::TOO_MANY_REQUESTS, "discovery_rate_limited"),

            Sealed => (S::SERVICE_UNAVAILABLE, "sealed"),
            VaultNotInitialised => (S::CONFLICT, "vault_not_initialised"),
            VaultAlreadyInitialised => (S::CONFLICT, "vault_already_initialised"),
            VaultNeedsEmptyDatabase => (S::CONFLICT, "vault_needs_empty_database"),
            Vault(e) => cachet_server_common::errors::vault_status_and_reason(e),

            Database(e) if database_unavailable(e) => {
                (S::SERVICE_UNAVAILABLE, "database_unavailable")
            }
            Migration(sqlx::migrate::MigrateError::Execute(e)) if database_unavailable(e) => {
                (S::SERVICE_UNAVAILABLE, "database_unavailable")
            }
            Database(_)
            | Migration(_)
            | Io(_)
            | Config(_)
            | Tls(_)
            | AuditChainBroken { .. }
            | Internal(_) => (S::INTERNAL_SERVER_ERROR, "internal_error"),
        }
    }
}

impl From<ProtoError> for Error {
    fn from(e: ProtoError) -> Self {
        match e {
            ProtoError::MalformedProtobuf(m) => Error::MalformedProtobuf(m),
            ProtoError::Invalid { field, reason } => Error::invalid(field, reason),
            ProtoError::MissingHeader(h) => Error::MissingHeader(h),
            ProtoError::MalformedBase64 => Error::MalformedSignature("not valid base64".into()),
            ProtoError::SignatureTooShort => {
                Error::MalformedSignature("shorter than a signature".into())
            }
            ProtoError::MalformedSignatureHeader => {
                Error::MalformedSignature("does not hold a SignatureHeader".into())
            }
            e @ (ProtoError::UidMismatch
            | ProtoError::PathMismatch
            | ProtoError::MethodMismatch
            | ProtoError::BodyMismatch) => Error::TargetMismatch(e),
            ProtoError::Expired { skew_ms } => Error::SignatureExpired(skew_ms),
            ProtoError::UnknownUser => Error::UnknownUser("no keys known"),
            ProtoError::BadSignature => Error::BadSignature,
            other => Error::MalformedSignature(other.to_string()),
        }
    }
}

pub use cachet_server_common::errors::database_unavailable;

impl Error {
    /// Whether this is a database that cannot be reached (see [`database_unavailable`]).
    pub fn is_database_unavailable(&self) -> bool {
        match self {
            Error::Database(e) => database_unavailable(e),
            Error::Migration(sqlx::migrate::MigrateError::Execute(e)) => database_unavailable(e),
            _ => false,
        }
    }

    /// Seconds a client should wait before trying again, for the refusals that have one.
    fn retry_after(&self) -> Option<u64> {
        match self {
            Error::DiscoveryRateLimited { retry_after, .. } => Some((*retry_after).max(1)),
            e if e.is_database_unavailable() => Some(DATABASE_RETRY_AFTER_SECONDS),
            _ => None,
        }
    }
}

/// `Retry-After` of a 503 `database_unavailable`.
const DATABASE_RETRY_AFTER_SECONDS: u64 = 5;

pub(crate) use cachet_server_common::errors::json_error_response;

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, reason) = self.status_and_reason();
        if let Some(seconds) = self.retry_after() {
            let mut response = if status.is_server_error() {
                tracing::warn!(error = %self, reason, "request refused");
                json_error_response(status, reason, &unavailable_message(reason))
            } else {
                tracing::debug!(error = %self, reason, "request refused");
                json_error_response(status, reason, &self.to_string())
            };
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            return response;
        }
        if status.is_server_error() {
            // Internal details go to the log, not to the client.
            tracing::error!(error = %self, reason, "request failed");
            return json_error_response(status, reason, "internal server error");
        }
        tracing::debug!(error = %self, reason, "request refused");
        json_error_response(status, reason, &self.to_string())
    }
}

impl From<cachet_http::Error> for Error {
    fn from(e: cachet_http::Error) -> Self {
        use cachet_http::Error as H;
        match e {
            H::Tls(why) => Error::Tls(why),
            H::Config(why) => Error::Config(why),
            H::IdentifierNotDeliverable(why) => Error::IdentifierNotDeliverable(why),
            H::InvalidIdentifier(why) => Error::InvalidIdentifier(why),
            H::CodeDeliveryFailed(why) => Error::CodeDeliveryFailed(why),
            H::Io(e) => Error::Io(e),
            other => Error::Internal(other.to_string()),
        }
    }
}

/// The message of a 5xx that the client can do something about (wait), without details.
fn unavailable_message(reason: &str) -> String {
    match reason {
        "database_unavailable" => "the database is unavailable; retry later".to_owned(),
        _ => "service unavailable; retry later".to_owned(),
    }
}

impl cachet_server_common::errors::ServerError for Error {
    fn invalid_field(field: &'static str, reason: String) -> Self {
        Error::invalid(field, reason)
    }

    fn internal(reason: String) -> Self {
        Error::Internal(reason)
    }
}

impl From<cachet_vault::VaultError> for Error {
    /// The states of the vault keep their own variants (and HTTP statuses).
    fn from(e: cachet_vault::VaultError) -> Self {
        use cachet_vault::VaultError as V;
        match e {
            V::Sealed => Error::Sealed,
            V::NotInitialised => Error::VaultNotInitialised,
            V::AlreadyInitialised => Error::VaultAlreadyInitialised,
            V::NeedsEmptyDatabase => Error::VaultNeedsEmptyDatabase,
            V::BadConfig(why) => Error::invalid("sealed_root", why),
            other => Error::Vault(other),
        }
    }
}
