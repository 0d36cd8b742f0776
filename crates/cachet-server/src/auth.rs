//! Authentication of signed requests (`x-siilo-uid`, `x-siilo-sig`; whitepaper 8.3).
//!
//! Checks, in order, each failure with its own reason: headers present, signature
//! decodes, uid matches, path and query, method, body hash, timestamp window, caller's
//! current unrevoked key, Ed25519 signature, and finally that this signature was never
//! accepted before (kept in the database for the window, so every node sees it).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cachet_crypto::SignPublicKey;
use cachet_proto::auth::ParsedSignature;
use cachet_proto::v1::ClientType;
use cachet_server_common::signed::{self, HeaderError};

use crate::error::{Error, Result};
use crate::extract::{read_body, Authenticated, Principal};
use crate::state::{now_ms, AppState};
use crate::store::SeenSignature;

pub use cachet_proto::auth::{valid_operator_name, OPERATOR_PREFIX};

/// Routes whose handler records the signature in the same commit as its own write
/// (`Store::store_message_and_remember`, `Store::ack_and_remember`, or
/// `Store::remember_or_refuse` before a long poll), so a message costs one durable write per
/// request instead of two. Their handlers must use `UserCaller::replay`.
pub(crate) const DEFERRED_REPLAY_ROUTES: &[&str] =
    &["/api/v1/messages/send", "/api/v1/messages/receive"];

/// The signature headers, read by the shared code, in this server's error words.
fn signature_headers(headers: &HeaderMap) -> Result<ParsedSignature> {
    signed::parse_headers(headers).map_err(|e| match e {
        HeaderError::Duplicate(name) => Error::DuplicateHeader(name),
        HeaderError::NotAscii(_) => Error::MalformedSignature(e.to_string()),
        HeaderError::Malformed(e) => e.into(),
    })
}

async fn caller_key(state: &AppState, uid: &str) -> Result<(Principal, SignPublicKey)> {
    if let Some(name) = uid.strip_prefix(OPERATOR_PREFIX) {
        let key = state
            .store
            .operator_key(name)
            .await?
            .ok_or(Error::UnknownUser("no such operator"))?;
        let key = SignPublicKey::from_slice(&key)
            .map_err(|_| Error::Internal("stored operator key is malformed".into()))?;
        return Ok((Principal::Operator(name.to_owned()), key));
    }
    let keys = state
        .store
        .current_keys(uid)
        .await?
        .ok_or(Error::UnknownUser("no such user"))?;
    if !keys.revoked_by_operator.is_empty() || keys.valid_until != 0 {
        return Err(Error::UnknownUser("the user's keys are revoked"));
    }
    let key = SignPublicKey::from_slice(&keys.sign_key)
        .map_err(|_| Error::Internal("stored sign key is malformed".into()))?;
    Ok((Principal::User(uid.to_owned()), key))
}

async fn verify(state: &AppState, req: Request) -> Result<Request> {
    let (parts, body) = req.into_parts();
    // Headers first: a request without a well-formed signature is refused before its
    // body is read.
    let parsed = signature_headers(&parts.headers)?;
    // Chunk uploads are the only PUTs; they carry one sealed chunk.
    let limit = if parts.method == Method::PUT {
        state.settings.chunk_body_limit()
    } else {
        state.settings.max_body_bytes
    };
    let bytes = read_body(body, limit).await?;
    parsed.check_target(&signed::target(&parts.method, &parts.uri, &bytes), now_ms())?;
    let (principal, key) = caller_key(state, parsed.user_id()).await?;
    parsed.verify(&key)?;
    let (hash, expires_at) = signed::replay_record(&parsed);
    let seen = SeenSignature {
        hash: hash.to_vec(),
        expires_at,
    };
    let deferred = matches!(principal, Principal::User(_))
        && parts.method == Method::POST
        && DEFERRED_REPLAY_ROUTES.contains(&parts.uri.path());
    let replay = if deferred {
        Some(seen)
    } else {
        state.store.remember_or_refuse(&seen).await?;
        None
    };
    let client_type =
        ClientType::try_from(parsed.header.client_type).unwrap_or(ClientType::Unspecified);
    tracing::debug!(
        caller = parsed.user_id(),
        ?client_type,
        build = parsed.header.build_number,
        "authenticated"
    );
    let mut req = Request::from_parts(parts, Body::from(bytes));
    req.extensions_mut().insert(Authenticated {
        principal,
        client_type,
        replay,
    });
    Ok(req)
}

/// Middleware on every signed route.
pub(crate) async fn authenticate(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    match verify(&state, req).await {
        Ok(req) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}
