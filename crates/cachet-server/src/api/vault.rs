//! The operator routes of the key hierarchy. They answer while the server is sealed (the
//! rest of the API does not); every one but the status needs an operator's signature,
//! and every change is written to the audit log.

use axum::extract::State;
use axum::routing::{post, MethodRouter};
use cachet_crypto::SignPublicKey;
use cachet_keyserver::vault::{shares_message, status_message};
use cachet_proto::v1::{UnsealShare, VaultExport, VaultShares, VaultSplit, VaultStatus};
use cachet_vault::ShareToken;

use crate::error::Result;
use crate::extract::{OperatorCaller, Proto, Protobuf};
use crate::state::AppState;

/// Longest share token accepted (a 32-byte share is about 70 characters).
const MAX_TOKEN: usize = 512;

/// The holders' registered keys, one per name in the request, checked before anything
/// is split (an unknown holder after init would lose that share).
async fn holder_keys(state: &AppState, req: &VaultSplit) -> Result<Vec<SignPublicKey>> {
    cachet_server_common::vault::holder_keys(req, |name| async move {
        state.store.operator_key(&name).await
    })
    .await
}

/// Init, rotation and re-sharing: the same request, answer and holder check.
async fn split(
    state: &AppState,
    op: &OperatorCaller,
    req: &VaultSplit,
    kind: Split,
) -> Result<Protobuf<VaultShares>> {
    let keys = holder_keys(state, req).await?;
    let (shares, threshold, who) = (req.shares, req.threshold, &op.operator_id);
    let tokens = match kind {
        Split::Init => state.vault.init(shares, threshold, who).await?,
        Split::Rotate => state.vault.rotate(shares, threshold, who).await?,
        Split::Reshare => state.vault.reshare(shares, threshold, who).await?,
    };
    tracing::info!(operator = %who, ?kind, shares, threshold, "master key split");
    Ok(Protobuf(shares_message(
        status_message(state.vault.status()),
        &tokens,
        &req.holders,
        &keys,
    )?))
}

/// The route of one kind of split: init, rotation and re-sharing take the same request
/// and give the same answer, so they share one handler.
pub(crate) fn split_route(kind: Split) -> MethodRouter<AppState> {
    post(
        move |State(state): State<AppState>, op: OperatorCaller, Proto(req): Proto<VaultSplit>| async move {
            split(&state, &op, &req, kind).await
        },
    )
}

/// Which split a request asks for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Split {
    /// The first master key.
    Init,
    /// A new master key.
    Rotate,
    /// New shares of the same master key.
    Reshare,
}

pub(crate) async fn status(State(state): State<AppState>) -> Protobuf<VaultStatus> {
    Protobuf(status_message(state.vault.status()))
}

pub(crate) async fn unseal(
    State(state): State<AppState>,
    op: OperatorCaller,
    Proto(req): Proto<UnsealShare>,
) -> Result<Protobuf<VaultStatus>> {
    if req.token.len() > MAX_TOKEN {
        return Err(crate::error::Error::invalid("token", "too long"));
    }
    let token = ShareToken::from_text(&req.token);
    let progress = state.vault.unseal(&token, &op.operator_id).await?;
    tracing::info!(operator = %op.operator_id, ?progress, "share entered");
    Ok(Protobuf(status_message(state.vault.status())))
}

pub(crate) async fn seal(
    State(state): State<AppState>,
    op: OperatorCaller,
) -> Result<Protobuf<VaultStatus>> {
    state.vault.seal(&op.operator_id).await?;
    tracing::warn!(operator = %op.operator_id, "vault sealed by an operator");
    Ok(Protobuf(status_message(state.vault.status())))
}

pub(crate) async fn export(
    State(state): State<AppState>,
    _op: OperatorCaller,
) -> Result<Protobuf<VaultExport>> {
    Ok(Protobuf(VaultExport {
        sealed_root: state.vault.export()?,
    }))
}

pub(crate) async fn import(
    State(state): State<AppState>,
    op: OperatorCaller,
    Proto(req): Proto<VaultExport>,
) -> Result<Protobuf<VaultStatus>> {
    state
        .vault
        .import(&req.sealed_root, &op.operator_id)
        .await?;
    tracing::info!(operator = %op.operator_id, "sealed key material imported");
    Ok(Protobuf(status_message(state.vault.status())))
}
