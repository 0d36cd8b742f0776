//! Shared state, extractors and the router.

use std::ops::Deref;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use bytes::Bytes;
use cachet_proto::v1::ClientType;
use cachet_proto::Message;
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::api;
use crate::auth::{self, Authenticated, Principal};
use crate::blob::BlobStore;
use crate::config::Settings;
use crate::error::{json_error_response, Error, Result};
use crate::notify::CodeNotifier;
use crate::store::Store;
use crate::wake::MailboxSignal;

/// Content type of every protobuf body.
pub const PROTOBUF: &str = "application/x-protobuf";

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Everything a handler may use.
pub(crate) struct Inner {
    pub settings: Settings,
    pub store: Arc<dyn Store>,
    pub blobs: Arc<dyn BlobStore>,
    pub signal: Arc<dyn MailboxSignal>,
    pub notifier: Arc<dyn CodeNotifier>,
    /// The key hierarchy: sealed, unsealed or absent.
    pub vault: Arc<crate::vault::Vault>,
    /// The trust log: its key and Merkle tree.
    pub trust: Arc<crate::trust_log::TrustLog>,
    /// Turns true when the server starts shutting down; long polls end early.
    pub shutdown: watch::Receiver<bool>,
}

#[derive(Clone)]
pub(crate) struct AppState(pub Arc<Inner>);

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// A protobuf response body.
pub(crate) struct Protobuf<T>(pub T);

impl<T: Message> IntoResponse for Protobuf<T> {
    fn into_response(self) -> Response {
        (
            [(header::CONTENT_TYPE, HeaderValue::from_static(PROTOBUF))],
            self.0.encode_to_vec(),
        )
            .into_response()
    }
}

/// 204 No Content.
pub(crate) fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// Reads a whole body, refusing more than `limit` bytes.
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Bytes> {
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Error::BodyTooLarge(limit)),
        Err(e) => Err(Error::BadBody(e.to_string())),
    }
}

/// A protobuf request body, decoded.
pub(crate) struct Proto<T>(pub T);

impl<T: Message + Default> FromRequest<AppState> for Proto<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &AppState) -> Result<Self> {
        let bytes = read_body(req.into_body(), state.settings.max_body_bytes).await?;
        Ok(Proto(cachet_proto::decode::message::<T>(&bytes)?))
    }
}

/// The raw body (already bounded by the authentication layer).
pub(crate) struct RawBody(pub Bytes);

impl FromRequest<AppState> for RawBody {
    type Rejection = Error;

    async fn from_request(req: Request, state: &AppState) -> Result<Self> {
        let limit = state
            .settings
            .max_body_bytes
            .max(state.settings.chunk_body_limit());
        Ok(RawBody(read_body(req.into_body(), limit).await?))
    }
}

/// Path parameters, with failures reported as `invalid_path`.
pub(crate) struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| ApiPath(v))
            .map_err(|e| Error::InvalidPath(e.body_text()))
    }
}

/// `?after=N&limit=M` of paged GETs.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PageQuery {
    pub after: u64,
    pub limit: Option<u32>,
}

impl<S: Send + Sync> FromRequestParts<S> for PageQuery {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self> {
        let mut q = PageQuery::default();
        for pair in parts.uri.query().unwrap_or("").split('&') {
            if pair.is_empty() {
                continue;
            }
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "after" => {
                    q.after = v
                        .parse()
                        .map_err(|_| Error::InvalidPath("after must be an integer".into()))?
                }
                "limit" => {
                    q.limit = Some(
                        v.parse()
                            .map_err(|_| Error::InvalidPath("limit must be an integer".into()))?,
                    )
                }
                _ => return Err(Error::InvalidPath(format!("unknown query parameter {k:?}"))),
            }
        }
        Ok(q)
    }
}

/// The authenticated user calling a user route.
pub(crate) struct UserCaller {
    pub user_id: String,
    pub client_type: ClientType,
    /// Set on [`crate::auth::DEFERRED_REPLAY_ROUTES`]: the handler must record it.
    pub replay: Option<crate::store::SeenSignature>,
}

impl<S: Send + Sync> FromRequestParts<S> for UserCaller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self> {
        match parts.extensions.get::<Authenticated>() {
            Some(Authenticated {
                principal: Principal::User(user_id),
                client_type,
                replay,
            }) => Ok(UserCaller {
                user_id: user_id.clone(),
                client_type: *client_type,
                replay: replay.clone(),
            }),
            Some(_) => Err(Error::UserOnly),
            None => Err(Error::Internal("route is not behind authentication".into())),
        }
    }
}

/// The authenticated operator calling an operator route.
pub(crate) struct OperatorCaller {
    /// `op:<name>`, as recorded in the audit log.
    pub operator_id: String,
}

impl<S: Send + Sync> FromRequestParts<S> for OperatorCaller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self> {
        match parts.extensions.get::<Authenticated>() {
            Some(Authenticated {
                principal: Principal::Operator(name),
                ..
            }) => Ok(OperatorCaller {
                operator_id: format!("{}{name}", auth::OPERATOR_PREFIX),
            }),
            Some(_) => Err(Error::OperatorOnly),
            None => Err(Error::Internal("route is not behind authentication".into())),
        }
    }
}

/// Rewrites any error response that is not already JSON (from a layer or the framework)
/// into the JSON error shape, so that clients can rely on it.
async fn ensure_json_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return response;
    }
    let reason = match status {
        StatusCode::NOT_FOUND => "unknown_route",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_server_error() => "internal_error",
        _ => "bad_request",
    };
    json_error_response(status, reason, status.canonical_reason().unwrap_or("error"))
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("handler panicked");
    json_error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "internal server error",
    )
}

/// Answers 503 `sealed` while the master key is not in memory.
async fn refuse_while_sealed(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    if state.vault.is_sealed() {
        return Error::Sealed.into_response();
    }
    next.run(req).await
}

/// `GET /healthz`: whether the database answers (a trivial query within the database
/// timeout) and whether the key hierarchy is sealed, as JSON. 200 while the database
/// answers (sealed or not: a sealed node is up, it waits for its operators), 503
/// `database_unavailable` while it does not.
async fn health(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    let timeout = state.settings.database_timeout;
    let database = match tokio::time::timeout(timeout, state.store.ping()).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!("no answer within {} ms", timeout.as_millis())),
    };
    let vault = state.vault.status();
    let mut body = serde_json::json!({
        "status": if database.is_none() { "ok" } else { "unavailable" },
        "database": if database.is_none() { "ok" } else { "unavailable" },
        "initialised": vault.initialised,
        "sealed": vault.sealed,
    });
    let status = match database {
        None => StatusCode::OK,
        Some(why) => {
            tracing::warn!(error = %why, "health check: the database does not answer");
            body["reason"] = "database_unavailable".into();
            body["message"] = "the database is unavailable".into();
            StatusCode::SERVICE_UNAVAILABLE
        }
    };
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Every route of the API.
pub(crate) fn router(state: AppState) -> Router {
    let signed = Router::new()
        .route("/api/v1/users/{user_id}", get(api::directory::get_user))
        .route(
            "/api/v1/users/{user_id}/keys",
            get(api::directory::get_keys),
        )
        .route("/api/v1/directory/discover", post(api::directory::discover))
        .route("/api/v1/messages/send", post(api::messages::send))
        .route("/api/v1/messages/receive", post(api::messages::receive))
        .route("/api/v1/messages/history", get(api::messages::history))
        .route("/api/v1/attachments", post(api::attachments::create))
        .route("/api/v1/attachments/{id}", get(api::attachments::status))
        .route(
            "/api/v1/attachments/{id}/complete",
            post(api::attachments::complete),
        )
        .route(
            "/api/v1/attachments/{id}/chunks/{index}",
            put(api::attachments::upload_chunk).get(api::attachments::download_chunk),
        )
        .route(
            "/api/v1/cases",
            post(api::cases::create).get(api::cases::list),
        )
        .route("/api/v1/cases/{case_id}", get(api::cases::get))
        .route(
            "/api/v1/cases/{case_id}/participants",
            post(api::cases::add_participants),
        )
        .route("/api/v1/cases/{case_id}/messages", get(api::cases::history))
        .route(
            "/api/v1/operator/users/{user_id}/revoke",
            post(api::operator::revoke),
        )
        .route(
            "/api/v1/operator/users/{user_id}/verify",
            post(api::operator::verify),
        )
        .route("/api/v1/operator/audit", get(api::operator::audit))
        .route("/api/v1/log/head", get(api::log::head))
        .route(
            "/api/v1/log/blocks",
            get(api::log::blocks).post(api::log::append),
        )
        .route("/api/v1/log/proof/inclusion", get(api::log::inclusion))
        .route("/api/v1/log/proof/consistency", get(api::log::consistency))
        // Recovery: encrypted message backup, operator's half of a share refresh.
        .route(
            "/api/v1/recovery/backup",
            post(api::recovery::put_backup).get(api::recovery::get_backup),
        )
        .route(
            cachet_keyserver::DATA_SERVER_REFRESH_ROUTE,
            post(api::recovery::refresh),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ));

    // Everything above and registration is refused while the server is sealed.
    let gated = Router::new()
        .route("/api/v1/register/start", post(api::register::start))
        .route("/api/v1/register/finish", post(api::register::finish))
        .merge(signed)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            refuse_while_sealed,
        ));

    let vault = Router::new()
        .route("/api/v1/operator/vault/init", post(api::vault::init))
        .route("/api/v1/operator/vault/unseal", post(api::vault::unseal))
        .route("/api/v1/operator/vault/seal", post(api::vault::seal))
        .route("/api/v1/operator/vault/rotate", post(api::vault::rotate))
        .route("/api/v1/operator/vault/reshare", post(api::vault::reshare))
        .route("/api/v1/operator/vault/export", get(api::vault::export))
        .route("/api/v1/operator/vault/import", post(api::vault::import))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ));

    let open = Router::new()
        .route("/healthz", get(health))
        .route("/api/v1/vault/status", get(api::vault::status));

    // Recovery: the same service as the key server's, over this server's store.
    let recovery = cachet_keyserver::service::router(api::recovery::service(&state));
    open.merge(vault)
        .merge(gated)
        .fallback(|| async { Error::UnknownRoute })
        .method_not_allowed_fallback(|| async { Error::MethodNotAllowed })
        .with_state(state)
        .merge(recovery)
        .layer(axum::middleware::map_response(ensure_json_errors))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(
                    tower_http::trace::DefaultMakeSpan::new().level(tracing::Level::INFO),
                )
                .on_response(
                    tower_http::trace::DefaultOnResponse::new().level(tracing::Level::INFO),
                ),
        )
}
