//! Share refresh: the two servers re-randomise every account's OPRF key shares without
//! the users (`docs/recovery.md`). The key server's share is only ever opened inside the
//! running key server (its database may be sealed under its own master key), so an
//! operator's tool drives the refresh over HTTP, account by account:
//!
//! 1. `GET /api/v1/operator/refresh/accounts` on the key server: the enrolled accounts,
//!    those with a refresh in progress first;
//! 2. `POST /api/v1/operator/refresh/prepare` on the key server: records a random `δ` for
//!    the account (or returns the one already recorded, so an interrupted refresh resumes
//!    with the same `δ`) and returns the [`wire::RefreshRequest`];
//! 3. the same request, signed by the operator, to the data server, which adds `δ`;
//! 4. `POST /api/v1/operator/refresh/apply` on the key server, which subtracts it.
//!
//! Every step is idempotent and signed by the operator (registered on both servers).
//! `δ` alone reveals nothing about either share.

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use cachet_crypto::SignKeyPair;
use cachet_proto::auth::{sign_request, Caller, RequestTarget, SIG_HEADER, UID_HEADER};
use cachet_recovery::oprf::RefreshDelta;
use cachet_recovery::wire;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::service::{now_ms, RecoveryBackend, Service};
use crate::vault::{self, OperatorCall, OperatorState};
use crate::DATA_SERVER_REFRESH_ROUTE;

/// Route listing the accounts to refresh.
pub const ACCOUNTS_ROUTE: &str = "/api/v1/operator/refresh/accounts";
/// Route recording (or returning) an account's `δ`.
pub const PREPARE_ROUTE: &str = "/api/v1/operator/refresh/prepare";
/// Route applying the key server's half.
pub const APPLY_ROUTE: &str = "/api/v1/operator/refresh/apply";

/// State of the refresh routes.
#[derive(Clone)]
pub struct RefreshState {
    /// Operator authentication.
    pub operators: OperatorState,
    /// The recovery service (applies the key server's half).
    pub service: Arc<Service>,
    /// Accounts, opened through the vault.
    pub accounts: Arc<vault::SealedBackend>,
}

impl FromRef<RefreshState> for OperatorState {
    fn from_ref(state: &RefreshState) -> Self {
        state.operators.clone()
    }
}

/// Body of [`ACCOUNTS_ROUTE`]'s answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct Accounts {
    /// Enrolled accounts, those with a refresh in progress first.
    pub user_ids: Vec<String>,
}

/// Body of [`PREPARE_ROUTE`].
#[derive(Debug, Serialize, Deserialize)]
pub struct Prepare {
    /// The account.
    pub user_id: String,
}

fn json(value: &impl Serialize) -> Result<Response> {
    let body = serde_json::to_vec(value).map_err(|e| Error::Internal(e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| Error::InvalidField("body", e.to_string()))
}

async fn h_accounts(State(state): State<RefreshState>, _call: OperatorCall) -> Result<Response> {
    state.operators.vault.keys()?;
    json(&Accounts {
        user_ids: state.operators.backend.enrolled_users().await?,
    })
}

async fn h_prepare(State(state): State<RefreshState>, call: OperatorCall) -> Result<Response> {
    let Prepare { user_id } = parse(&call.body)?;
    let row = state
        .accounts
        .account(&user_id)
        .await?
        .filter(crate::RecoveryRow::is_enrolled)
        .ok_or(Error::NotEnrolled)?;
    let delta = if row.pending_delta.is_empty() {
        let delta = RefreshDelta::generate();
        let mut next = row.clone();
        next.pending_delta = delta.expose_secret().to_vec();
        next.version += 1;
        if !state.accounts.replace_account(&next, row.version).await? {
            return Err(Error::Concurrent);
        }
        delta
    } else {
        RefreshDelta::from_bytes(&row.pending_delta)
            .map_err(|_| Error::Internal("stored delta is malformed".into()))?
    };
    json(&wire::RefreshRequest {
        user_id,
        delta: hex::encode(delta.expose_secret()),
        old_data_server_share: hex::encode(&row.data_server_share),
        old_key_server_share: hex::encode(&row.key_server_share),
    })
}

async fn h_apply(State(state): State<RefreshState>, call: OperatorCall) -> Result<Response> {
    let request: wire::RefreshRequest = parse(&call.body)?;
    state.service.apply_refresh(&request).await?;
    json(&serde_json::json!({}))
}

/// The key server's refresh routes.
pub fn router(state: RefreshState) -> Router {
    Router::new()
        .route(ACCOUNTS_ROUTE, get(h_accounts))
        .route(PREPARE_ROUTE, post(h_prepare))
        .route(APPLY_ROUTE, post(h_apply))
        .with_state(state)
}

/// An operator's signed JSON calls.
struct Signed<'a> {
    http: reqwest::Client,
    operator: &'a str,
    key: &'a SignKeyPair,
}

impl Signed<'_> {
    async fn call(
        &self,
        method: &'static str,
        base: &str,
        path: &str,
        body: Vec<u8>,
    ) -> Result<Vec<u8>> {
        let headers = sign_request(
            &Caller {
                user_id: format!("op:{}", self.operator),
                build_number: 1,
                client_type: cachet_proto::v1::ClientType::Unspecified,
            },
            self.key,
            &RequestTarget {
                method,
                path,
                body: &body,
            },
            now_ms(),
        );
        let url = format!("{}{path}", base.trim_end_matches('/'));
        let request = match method {
            "GET" => self.http.get(&url),
            _ => self
                .http
                .post(&url)
                .header("content-type", "application/json")
                .body(body),
        };
        let response = request
            .header(UID_HEADER, headers.uid)
            .header(SIG_HEADER, headers.sig)
            .send()
            .await
            .map_err(|e| Error::Peer(format!("{url}: {e}")))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Error::Peer(format!("{url}: {e}")))?;
        if !status.is_success() {
            return Err(Error::Peer(format!(
                "{url}: {status}: {}",
                String::from_utf8_lossy(&bytes)
            )));
        }
        Ok(bytes.to_vec())
    }
}

/// Refreshes the key shares of every enrolled account: the key server at
/// `key_server_url` and the data server at `data_server_url` each apply their half,
/// driven by the operator `operator` (registered on both, signing with `operator_key`).
/// Resumable: run it again after an interruption. Returns how many accounts were
/// refreshed.
pub async fn refresh_shares(
    key_server_url: &str,
    data_server_url: &str,
    operator: &str,
    operator_key: &SignKeyPair,
) -> Result<usize> {
    let signed = Signed {
        http: reqwest::Client::new(),
        operator,
        key: operator_key,
    };
    let accounts: Accounts = parse(
        &signed
            .call("GET", key_server_url, ACCOUNTS_ROUTE, Vec::new())
            .await?,
    )?;
    let mut done = 0;
    for user_id in accounts.user_ids {
        let prepare =
            serde_json::to_vec(&Prepare { user_id }).map_err(|e| Error::Internal(e.to_string()))?;
        // The request travels as the key server wrote it.
        let request = signed
            .call("POST", key_server_url, PREPARE_ROUTE, prepare)
            .await?;
        signed
            .call(
                "POST",
                data_server_url,
                DATA_SERVER_REFRESH_ROUTE,
                request.clone(),
            )
            .await?;
        signed
            .call("POST", key_server_url, APPLY_ROUTE, request)
            .await?;
        done += 1;
    }
    Ok(done)
}
