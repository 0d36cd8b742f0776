//! The key server's own key hierarchy: a master key of its own, opened by its own key
//! holders' Shamir shares, independent of the data server's (two servers, two vaults:
//! a stolen copy of both databases still needs a threshold of holders of each).
//!
//! Once initialised, the key server starts sealed and its recovery routes answer `503
//! sealed` until operators unseal it. What it protects at rest:
//!
//! | column | protection |
//! | --- | --- |
//! | `accounts.share`, `accounts.pending_delta` (its OPRF key share, a refresh's `δ`) | XChaCha20-Poly1305 under the `oprf-shares` KEK, bound to table, account and column |
//! | `accounts.envelope` (the sealed key ring) | sealed again under the `key-rings` KEK |
//! | `accounts.identifier_hash`, `challenges.identifier_hash` | keyed hash under the `identifiers` KEK |
//!
//! The operator routes are the data server's (`/api/v1/vault/status`,
//! `/api/v1/operator/vault/*`, `/api/v1/operator/audit`), with the same protobuf bodies,
//! so `cachet operator --server <key server>` drives both. Operators are registered in
//! the key server's own database (`cachet keyserver add-operator`); every request is
//! signed by the operator's Ed25519 key and every vault action is appended to a
//! hash-chained audit log.

use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, Query, Request, State};
use axum::http::{header, HeaderMap, Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use cachet_crypto::SignPublicKey;
use cachet_proto::auth::OPERATOR_PREFIX;
use cachet_proto::v1::{AuditLog, UnsealShare, VaultExport, VaultShares, VaultSplit, VaultStatus};
use cachet_server_common::signed::{self, HeaderError};
use cachet_server_common::vault::StorageVault;
use cachet_vault::{holder, KeyHierarchy, ShareToken};
use prost::Message;

use crate::error::{Error, Result};
use crate::service::{now_ms, Challenge, RecoveryBackend, RecoveryRow};
use crate::store::KeyStore;

/// The key server's OPRF key shares (and refresh deltas).
pub const OPRF_SHARES: &str = "oprf-shares";
/// The key server's copies of users' sealed key rings.
pub const KEY_RINGS: &str = "key-rings";
/// Identifier hashes (keyed hash only).
pub const IDENTIFIERS: &str = "identifiers";
/// KEK purposes of the key server.
pub const PURPOSES: &[&str] = &[OPRF_SHARES, KEY_RINGS, IDENTIFIERS];

/// Longest share token accepted.
const MAX_TOKEN: usize = 512;

/// The key server's vault.
pub type Vault = cachet_vault::Vault<StorageVault<KeyStore>>;

/// Loads the vault of the key server's database.
pub async fn load(backend: Arc<KeyStore>) -> Result<Arc<Vault>> {
    Vault::load(StorageVault(backend), PURPOSES).await
}

/// The recovery backend the service sees: the SQLite backend with the protected columns
/// sealed on the way in and opened on the way out. Unprotected (no vault): unchanged.
#[derive(Debug)]
pub struct SealedBackend {
    inner: Arc<KeyStore>,
    vault: Arc<Vault>,
}

const ACCOUNTS: &str = "accounts";

impl SealedBackend {
    /// Wraps `inner` under `vault`.
    pub fn new(inner: Arc<KeyStore>, vault: Arc<Vault>) -> Self {
        Self { inner, vault }
    }

    fn keys(&self) -> Result<Option<Arc<KeyHierarchy>>> {
        Ok(self.vault.keys()?)
    }

    fn blind(&self, identifier_hash: &[u8]) -> Result<Vec<u8>> {
        Ok(self.vault.blind_identifier(IDENTIFIERS, identifier_hash)?)
    }

    fn seal_row(&self, row: &RecoveryRow) -> Result<RecoveryRow> {
        let Some(k) = self.keys()? else {
            return Ok(row.clone());
        };
        let id = &row.user_id;
        Ok(RecoveryRow {
            share: k.seal_row(OPRF_SHARES, ACCOUNTS, id, "share", &row.share)?,
            pending_delta: k.seal_row(
                OPRF_SHARES,
                ACCOUNTS,
                id,
                "pending_delta",
                &row.pending_delta,
            )?,
            envelope: k.seal_row(KEY_RINGS, ACCOUNTS, id, "envelope", &row.envelope)?,
            ..row.clone()
        })
    }

    fn open_row(&self, mut row: RecoveryRow) -> Result<RecoveryRow> {
        let Some(k) = self.keys()? else {
            return Ok(row);
        };
        let id = row.user_id.clone();
        row.share = k.open_row(OPRF_SHARES, ACCOUNTS, &id, "share", &row.share)?;
        row.pending_delta = k.open_row(
            OPRF_SHARES,
            ACCOUNTS,
            &id,
            "pending_delta",
            &row.pending_delta,
        )?;
        row.envelope = k.open_row(KEY_RINGS, ACCOUNTS, &id, "envelope", &row.envelope)?;
        Ok(row)
    }
}

// Identifier hashes enter in the clear only through `insert_challenge` and
// `live_challenges`; everything downstream (a challenge's hash, an account's) already
// holds the blinded form, so it is not blinded twice.
#[async_trait]
impl RecoveryBackend for SealedBackend {
    async fn insert_challenge(&self, challenge: &Challenge) -> Result<()> {
        let challenge = Challenge {
            identifier_hash: self.blind(&challenge.identifier_hash)?,
            ..challenge.clone()
        };
        self.inner.insert_challenge(&challenge).await
    }
    async fn live_challenges(&self, identifier_hash: &[u8], now: i64) -> Result<u64> {
        self.inner
            .live_challenges(&self.blind(identifier_hash)?, now)
            .await
    }
    async fn get_challenge(&self, challenge_id: &str) -> Result<Option<Challenge>> {
        self.keys()?;
        self.inner.get_challenge(challenge_id).await
    }
    async fn record_failed_attempt(&self, challenge_id: &str) -> Result<()> {
        self.inner.record_failed_attempt(challenge_id).await
    }
    async fn delete_challenge(&self, challenge_id: &str) -> Result<()> {
        self.inner.delete_challenge(challenge_id).await
    }
    async fn send_code(&self, identifier: &str, code: &str, expires_at: i64) -> Result<()> {
        self.inner.send_code(identifier, code, expires_at).await
    }
    async fn user_for_identifier(&self, identifier_hash: &[u8]) -> Result<Option<String>> {
        self.keys()?;
        self.inner.user_for_identifier(identifier_hash).await
    }
    async fn account(&self, user_id: &str) -> Result<Option<RecoveryRow>> {
        match self.inner.account(user_id).await? {
            Some(row) => Ok(Some(self.open_row(row)?)),
            None => Ok(None),
        }
    }
    async fn insert_account(&self, row: &RecoveryRow) -> Result<bool> {
        self.inner.insert_account(&self.seal_row(row)?).await
    }
    async fn replace_account(&self, row: &RecoveryRow, expected_version: i64) -> Result<bool> {
        self.inner
            .replace_account(&self.seal_row(row)?, expected_version)
            .await
    }
}

/// Refuses every recovery route while the vault is sealed, before any work is done.
pub async fn refuse_while_sealed(vault: Arc<Vault>, req: Request, next: Next) -> Response {
    if vault.is_sealed() {
        return Error::Sealed.into_response();
    }
    next.run(req).await
}

// ---- Operator routes ----

/// State of the operator routes.
#[derive(Debug, Clone)]
pub struct OperatorState {
    /// The raw database (operators, audit log, replay cache).
    pub backend: Arc<KeyStore>,
    /// The vault.
    pub vault: Arc<Vault>,
}

/// A request to an operator route, its signature checked by [`operator`]: the one
/// extractor of every signed operator handler of the key server (vault, audit, refresh).
pub(crate) struct OperatorCall {
    /// `op:<name>`.
    pub operator: String,
    /// The request's URI (the vault routes read their action from its path).
    pub uri: Uri,
    /// The signed body.
    pub body: Bytes,
}

impl<S> FromRequest<S> for OperatorCall
where
    S: Send + Sync,
    OperatorState: FromRef<S>,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> std::result::Result<Self, Response> {
        let (method, uri, headers) = (
            req.method().clone(),
            req.uri().clone(),
            req.headers().clone(),
        );
        let body = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let operator = operator(
            &OperatorState::from_ref(state),
            &method,
            &uri,
            &headers,
            &body,
        )
        .await
        .map_err(IntoResponse::into_response)?;
        Ok(Self {
            operator,
            uri,
            body,
        })
    }
}

/// Checks an operator's signature over the request; returns `op:<name>`.
async fn operator(
    state: &OperatorState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<String> {
    let parsed = signed::parse_headers(headers).map_err(|e| match e {
        HeaderError::Duplicate(name) => Error::DuplicateHeader(name),
        other => Error::Unauthenticated(other.to_string()),
    })?;
    parsed
        .check_target(&signed::target(method, uri, body), now_ms())
        .map_err(|e| Error::Unauthenticated(e.to_string()))?;
    let name = parsed
        .user_id()
        .strip_prefix(OPERATOR_PREFIX)
        .ok_or_else(|| Error::Unauthenticated("operator routes need an operator".into()))?;
    let key = state.backend.operator_key(name).await?.ok_or_else(|| {
        Error::Unauthenticated(format!("no operator {name:?} on this key server"))
    })?;
    let key = SignPublicKey::from_slice(&key)
        .map_err(|_| Error::Internal("stored operator key is malformed".into()))?;
    parsed
        .verify(&key)
        .map_err(|e| Error::Unauthenticated(e.to_string()))?;
    let (replay_id, expires_at) = signed::replay_record(&parsed);
    if !state
        .backend
        .remember_signature(&replay_id, expires_at)
        .await?
    {
        return Err(Error::ReplayedSignature);
    }
    Ok(format!("{OPERATOR_PREFIX}{name}"))
}

fn decode<T: Message + Default>(body: &[u8]) -> Result<T> {
    T::decode(body).map_err(|e| Error::InvalidField("body", format!("not a valid message: {e}")))
}

fn protobuf(message: &impl Message) -> Response {
    (
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        message.encode_to_vec(),
    )
        .into_response()
}

/// The wire form of a vault's status (the data server answers with the same).
pub fn status_message(s: cachet_vault::Status) -> VaultStatus {
    VaultStatus {
        initialised: s.initialised,
        sealed: s.sealed,
        shares_entered: s.shares_entered,
        threshold: s.threshold,
        shares: s.shares,
        entered_by: s.entered_by,
    }
}

/// The answer to init, rotate and reshare: the tokens as they are, or, when holders
/// were named (`keys` one per share, `names` as asked), only the tokens sealed to them.
pub fn shares_message(
    status: VaultStatus,
    tokens: &[ShareToken],
    names: &[String],
    keys: &[SignPublicKey],
) -> std::result::Result<VaultShares, cachet_vault::VaultError> {
    if keys.is_empty() {
        return Ok(VaultShares {
            tokens: tokens
                .iter()
                .map(|t| t.expose_secret().to_owned())
                .collect(),
            status: Some(status),
            ..Default::default()
        });
    }
    Ok(VaultShares {
        sealed_tokens: holder::seal_to_holders(tokens, keys)?,
        holders: names.to_vec(),
        status: Some(status),
        ..Default::default()
    })
}

/// The holders named in a split request and their keys, checked before anything is
/// split (an unknown holder after init would lose that share).
async fn holders(state: &OperatorState, req: &VaultSplit) -> Result<Vec<SignPublicKey>> {
    cachet_server_common::vault::holder_keys(req, |name| async move {
        state.backend.operator_key(&name).await
    })
    .await
}

async fn h_status(State(state): State<OperatorState>) -> Response {
    protobuf(&status_message(state.vault.status()))
}

/// One handler for every signed vault action: the path names it.
async fn h_vault(State(state): State<OperatorState>, call: OperatorCall) -> Result<Response> {
    let OperatorCall {
        operator: op,
        uri,
        body,
    } = call;
    let vault = &state.vault;
    let action = uri.path().rsplit('/').next().unwrap_or_default();
    let response = match action {
        "init" | "rotate" | "reshare" => {
            let req: VaultSplit = decode(&body)?;
            let keys = holders(&state, &req).await?;
            let tokens = match action {
                "init" => vault.init(req.shares, req.threshold, &op).await?,
                "rotate" => vault.rotate(req.shares, req.threshold, &op).await?,
                _ => vault.reshare(req.shares, req.threshold, &op).await?,
            };
            protobuf(&shares_message(
                status_message(vault.status()),
                &tokens,
                &req.holders,
                &keys,
            )?)
        }
        "unseal" => {
            let req: UnsealShare = decode(&body)?;
            if req.token.len() > MAX_TOKEN {
                return Err(Error::InvalidField("token", "too long".into()));
            }
            vault
                .unseal(&ShareToken::from_text(&req.token), &op)
                .await?;
            protobuf(&status_message(vault.status()))
        }
        "seal" => {
            vault.seal(&op).await?;
            tracing::warn!(operator = %op, "key server sealed by an operator");
            protobuf(&status_message(vault.status()))
        }
        "export" => protobuf(&VaultExport {
            sealed_root: vault.export()?,
        }),
        "import" => {
            let req: VaultExport = decode(&body)?;
            vault.import(&req.sealed_root, &op).await?;
            protobuf(&status_message(vault.status()))
        }
        _ => return Err(Error::InvalidField("route", "unknown vault action".into())),
    };
    tracing::info!(operator = %op, action, "vault action");
    Ok(response)
}

/// `after` and `limit` of the audit route.
#[derive(Debug, serde::Deserialize)]
struct Page {
    #[serde(default)]
    after: u64,
    limit: Option<u32>,
}

async fn h_audit(State(state): State<OperatorState>, call: OperatorCall) -> Result<Response> {
    // Read after the signature is checked, answered as axum's own extractor would.
    let page = match Query::<Page>::try_from_uri(&call.uri) {
        Ok(Query(page)) => page,
        Err(rejection) => return Ok(rejection.into_response()),
    };
    let limit = page.limit.unwrap_or(1000).clamp(1, 1000);
    let entries = state.backend.audit_entries(page.after, limit).await?;
    Ok(protobuf(&AuditLog { entries }))
}

/// The vault and audit routes of the key server (they answer while it is sealed).
pub fn operator_router(state: OperatorState) -> Router {
    Router::new()
        .route("/api/v1/vault/status", get(h_status))
        .route("/api/v1/operator/vault/init", post(h_vault))
        .route("/api/v1/operator/vault/unseal", post(h_vault))
        .route("/api/v1/operator/vault/seal", post(h_vault))
        .route("/api/v1/operator/vault/rotate", post(h_vault))
        .route("/api/v1/operator/vault/reshare", post(h_vault))
        .route("/api/v1/operator/vault/export", get(h_vault))
        .route("/api/v1/operator/vault/import", post(h_vault))
        .route("/api/v1/operator/audit", get(h_audit))
        .with_state(state)
}
