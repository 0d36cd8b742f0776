//! How both servers classify failures and answer them: databases that cannot be reached,
//! refusals of the vault, and the JSON error body
//! `{"reason": "<stable_snake_case>", "message": "<text>"}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cachet_vault::VaultError;

/// What the checks shared by both servers need of a server's own error type (each crate
/// keeps its one `thiserror` enum; this is how shared code builds its refusals).
pub trait ServerError: From<VaultError> {
    /// A request field that is malformed or refused (400 `invalid_field`).
    fn invalid_field(field: &'static str, reason: String) -> Self;
    /// A failure of the server itself, such as a malformed stored value (500).
    fn internal(reason: String) -> Self;
}

/// Whether a database error means the database cannot be reached (down, restarting,
/// unreachable, out of connections) rather than that the request or the data is wrong.
/// Such failures answer 503 `database_unavailable`, and a starting server waits them out.
pub fn database_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exception; 57P01-57P03: the server is shutting down or
            // starting; 53300: too many connections.
            code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

/// Status and stable reason of a vault refusal.
pub fn vault_status_and_reason(e: &VaultError) -> (StatusCode, &'static str) {
    use VaultError as V;
    match e {
        V::MalformedShare(_) => (StatusCode::BAD_REQUEST, "malformed_share"),
        V::CorruptShare { .. } => (StatusCode::BAD_REQUEST, "corrupt_share"),
        V::DuplicateShare { .. } => (StatusCode::CONFLICT, "duplicate_share"),
        V::WrongMasterKey => (StatusCode::BAD_REQUEST, "wrong_master_key"),
        V::InvalidSharing(_) => (StatusCode::BAD_REQUEST, "invalid_sharing"),
        V::NotInitialised => (StatusCode::CONFLICT, "vault_not_initialised"),
        V::AlreadyInitialised => (StatusCode::CONFLICT, "vault_already_initialised"),
        V::NeedsEmptyDatabase => (StatusCode::CONFLICT, "vault_needs_empty_database"),
        V::ConcurrentChange => (StatusCode::CONFLICT, "concurrent_change"),
        V::Sealed => (StatusCode::SERVICE_UNAVAILABLE, "sealed"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
    }
}

/// The JSON error body.
pub fn error_body(reason: &str, message: &str) -> Vec<u8> {
    serde_json::json!({ "reason": reason, "message": message })
        .to_string()
        .into_bytes()
}

/// An error answer with the JSON body.
pub fn json_error_response(status: StatusCode, reason: &str, message: &str) -> Response {
    let mut response = (status, error_body(reason, message)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
