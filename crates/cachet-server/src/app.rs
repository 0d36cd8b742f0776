//! The router: every route, its layers, and the answers of the framework itself.

use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;

use crate::api;
use crate::api::vault::{split_route, Split};
use crate::auth;
use crate::error::{json_error_response, Error};
use crate::state::AppState;

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
    let database =
        cachet_http::health::ping_within(state.settings.database_timeout, state.store.ping()).await;
    let vault = state.vault.status();
    cachet_http::health::health_answer(database, vault.initialised, vault.sealed)
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
        .route("/api/v1/operator/vault/init", split_route(Split::Init))
        .route("/api/v1/operator/vault/unseal", post(api::vault::unseal))
        .route("/api/v1/operator/vault/seal", post(api::vault::seal))
        .route("/api/v1/operator/vault/rotate", split_route(Split::Rotate))
        .route(
            "/api/v1/operator/vault/reshare",
            split_route(Split::Reshare),
        )
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
