//! Extractors and answers of the handlers: protobuf bodies, path and page parameters, the
//! authenticated caller.

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use cachet_proto::v1::ClientType;
use cachet_proto::Message;
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::SeenSignature;
use cachet_proto::auth::OPERATOR_PREFIX;

/// Content type of every protobuf body.
pub const PROTOBUF: &str = "application/x-protobuf";

/// Who signed a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Principal {
    /// A registered user with current keys.
    User(String),
    /// An operator, by name (without the `op:` prefix).
    Operator(String),
}

/// Inserted into the request by the authentication layer.
#[derive(Debug, Clone)]
pub(crate) struct Authenticated {
    pub principal: Principal,
    pub client_type: ClientType,
    /// The replay-cache entry, when the handler writes it in its own commit
    /// ([`DEFERRED_REPLAY_ROUTES`]); `None` when it is already written.
    pub replay: Option<SeenSignature>,
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

/// 200 with raw bytes (`application/octet-stream`): attachment chunks, recovery backups.
pub(crate) fn octet_stream(bytes: impl Into<Body>) -> Response {
    let body: Body = bytes.into();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        )],
        body,
    )
        .into_response()
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
    pub replay: Option<SeenSignature>,
}

/// The extractor of a caller type: the authentication the middleware left in the
/// request, turned into the caller by the type's own `from_authenticated`.
macro_rules! caller_extractor {
    ($caller:ty) => {
        impl<S: Send + Sync> FromRequestParts<S> for $caller {
            type Rejection = Error;

            async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self> {
                match parts.extensions.get::<Authenticated>() {
                    Some(auth) => Self::from_authenticated(auth),
                    None => Err(Error::Internal("route is not behind authentication".into())),
                }
            }
        }
    };
}

caller_extractor!(UserCaller);
caller_extractor!(OperatorCaller);

impl UserCaller {
    /// The calling user; an operator is refused (`UserOnly`).
    fn from_authenticated(auth: &Authenticated) -> Result<Self> {
        match auth {
            Authenticated {
                principal: Principal::User(user_id),
                client_type,
                replay,
            } => Ok(UserCaller {
                user_id: user_id.clone(),
                client_type: *client_type,
                replay: replay.clone(),
            }),
            _ => Err(Error::UserOnly),
        }
    }
}

/// The authenticated operator calling an operator route.
pub(crate) struct OperatorCaller {
    /// `op:<name>`, as recorded in the audit log.
    pub operator_id: String,
}

impl OperatorCaller {
    /// The calling operator, as `op:<name>`; a user is refused (`OperatorOnly`).
    fn from_authenticated(auth: &Authenticated) -> Result<Self> {
        match &auth.principal {
            Principal::Operator(name) => Ok(OperatorCaller {
                operator_id: format!("{}{name}", OPERATOR_PREFIX),
            }),
            _ => Err(Error::OperatorOnly),
        }
    }
}
