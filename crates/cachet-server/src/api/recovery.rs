//! Password recovery on the data server (`docs/recovery.md`): the same service as the key
//! server's ([`cachet_keyserver::service`]) over this server's store, its one-time codes
//! (shared with registration, so one code serves the recovery and the new installation
//! that follows), plus the encrypted message backup and the operator's half of a share
//! refresh.

use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::State;
use axum::response::Response;
use cachet_keyserver::service::{self, Challenge, RecoveryBackend, RecoveryRow, Role, Service};
use cachet_recovery::wire::{self, RateLimit};

use crate::extract::{no_content, octet_stream, OperatorCaller, RawBody, UserCaller};
use crate::notify::{CodeMessage, CodeNotifier, Purpose};
use crate::state::{now_ms, AppState};
use crate::store::{AuditDraft, Store};

type KsResult<T> = cachet_keyserver::Result<T>;

fn internal(e: crate::Error) -> cachet_keyserver::Error {
    cachet_keyserver::Error::Internal(e.to_string())
}

/// The data server's storage seen through the recovery service's trait.
struct DataServerBackend {
    store: Arc<dyn Store>,
    notifier: Arc<dyn CodeNotifier>,
    /// Identifier hashes are kept blinded (keyed) when a master key protects the server:
    /// blinded on the way in here, so the challenge and everything derived from it (the
    /// user lookup, the account row) only ever hold the blinded form.
    vault: Arc<crate::vault::Vault>,
}

#[async_trait]
impl RecoveryBackend for DataServerBackend {
    async fn insert_challenge(&self, c: &Challenge) -> KsResult<()> {
        self.store
            .insert_challenge(&Challenge {
                identifier_hash: crate::vault::blind_identifier(&self.vault, &c.identifier_hash)
                    .map_err(internal)?,
                ..c.clone()
            })
            .await
            .map_err(internal)
    }
    async fn live_challenges(&self, identifier_hash: &[u8], now: i64) -> KsResult<u64> {
        let blinded =
            crate::vault::blind_identifier(&self.vault, identifier_hash).map_err(internal)?;
        self.store
            .live_challenges(&blinded, now)
            .await
            .map_err(internal)
    }
    async fn get_challenge(&self, challenge_id: &str) -> KsResult<Option<Challenge>> {
        // The store keeps the key server's `Challenge` type itself.
        self.store
            .get_challenge(challenge_id)
            .await
            .map_err(internal)
    }
    async fn record_failed_attempt(&self, challenge_id: &str) -> KsResult<()> {
        self.store
            .record_failed_attempt(challenge_id)
            .await
            .map(|_| ())
            .map_err(internal)
    }
    async fn delete_challenge(&self, challenge_id: &str) -> KsResult<()> {
        self.store
            .delete_challenge(challenge_id)
            .await
            .map_err(internal)
    }
    async fn send_code(&self, identifier: &str, code: &str, expires_at: i64) -> KsResult<()> {
        self.notifier
            .send_code(CodeMessage {
                to: identifier,
                code,
                purpose: Purpose::Recovery,
                expires_at_ms: expires_at,
            })
            .await
            .map_err(cachet_keyserver::Error::from)
    }
    async fn user_for_identifier(&self, identifier_hash: &[u8]) -> KsResult<Option<String>> {
        self.store
            .user_by_identifier_hash(identifier_hash)
            .await
            .map_err(internal)
    }
    async fn account(&self, user_id: &str) -> KsResult<Option<RecoveryRow>> {
        self.store.recovery_account(user_id).await.map_err(internal)
    }
    async fn insert_account(&self, row: &RecoveryRow) -> KsResult<bool> {
        self.store.recovery_insert(row).await.map_err(internal)
    }
    async fn replace_account(&self, row: &RecoveryRow, expected_version: i64) -> KsResult<bool> {
        self.store
            .recovery_replace(row, expected_version)
            .await
            .map_err(internal)
    }
}

/// The recovery service of this data server.
pub(crate) fn service(state: &AppState) -> Arc<Service> {
    Arc::new(Service {
        backend: Arc::new(DataServerBackend {
            store: state.store.clone(),
            notifier: state.notifier.clone(),
            vault: state.vault.clone(),
        }),
        role: Role::DataServer,
        limits: RateLimit::DEFAULT,
        code_ttl_ms: i64::try_from(state.settings.code_ttl.as_millis()).unwrap_or(i64::MAX),
        code_max_attempts: state.settings.code_max_attempts,
        clock: service::now_ms,
    })
}

/// `POST /api/v1/recovery/backup` (signed): stores the caller's encrypted message backup.
pub(crate) async fn put_backup(
    State(state): State<AppState>,
    caller: UserCaller,
    RawBody(body): RawBody,
) -> KsResult<Response> {
    if body.is_empty() {
        return Err(cachet_keyserver::Error::InvalidField(
            "backup",
            "must not be empty".into(),
        ));
    }
    state
        .store
        .put_backup(&caller.user_id, &body, now_ms())
        .await
        .map_err(internal)?;
    Ok(no_content())
}

/// `GET /api/v1/recovery/backup` (signed): the caller's encrypted message backup.
pub(crate) async fn get_backup(
    State(state): State<AppState>,
    caller: UserCaller,
) -> KsResult<Response> {
    let backup = state
        .store
        .get_backup(&caller.user_id)
        .await
        .map_err(internal)?
        .ok_or(cachet_keyserver::Error::NoBackup)?;
    Ok(octet_stream(backup))
}

/// `POST /api/v1/operator/recovery/refresh` (operator): this server's half of a share
/// refresh (adds `δ`), audited.
pub(crate) async fn refresh(
    State(state): State<AppState>,
    caller: OperatorCaller,
    RawBody(body): RawBody,
) -> KsResult<Response> {
    let req: wire::RefreshRequest = serde_json::from_slice(&body)
        .map_err(|e| cachet_keyserver::Error::InvalidField("body", e.to_string()))?;
    service(&state).apply_refresh(&req).await?;
    state
        .store
        .append_audit(&AuditDraft {
            timestamp: now_ms(),
            operator_id: caller.operator_id,
            action: "refresh_recovery_share".into(),
            subject: req.user_id,
            detail: String::new(),
        })
        .await
        .map_err(internal)?;
    Ok(no_content())
}
