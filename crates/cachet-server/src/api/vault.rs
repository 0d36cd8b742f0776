//! The operator routes of the key hierarchy. They answer while the server is sealed (the
//! rest of the API does not); every one but the status needs an operator's signature,
//! and every change is written to the audit log.

use axum::extract::State;
use cachet_crypto::SignPublicKey;
use cachet_proto::v1::{UnsealShare, VaultExport, VaultShares, VaultSplit, VaultStatus};
use cachet_vault::{holder, ShareToken};

use crate::app::{AppState, OperatorCaller, Proto, Protobuf};
use crate::error::{Error, Result};
use crate::vault::Status;

/// Longest share token accepted (a 32-byte share is about 70 characters).
const MAX_TOKEN: usize = 512;

fn status_message(s: Status) -> VaultStatus {
    VaultStatus {
        initialised: s.initialised,
        sealed: s.sealed,
        shares_entered: s.shares_entered,
        threshold: s.threshold,
        shares: s.shares,
        entered_by: s.entered_by,
    }
}

/// The holders named in a split request, with their registered keys, checked before
/// anything is split (an unknown holder after init would lose that share).
async fn holders(state: &AppState, req: &VaultSplit) -> Result<Holders> {
    let mut keys = Vec::with_capacity(req.holders.len());
    for name in &req.holders {
        let bare = name
            .strip_prefix(crate::auth::OPERATOR_PREFIX)
            .unwrap_or(name);
        let key = state
            .store
            .operator_key(bare)
            .await?
            .ok_or_else(|| Error::invalid("holders", format!("no operator named {bare:?}")))?;
        keys.push(
            SignPublicKey::from_slice(&key)
                .map_err(|_| Error::Internal("stored operator key is malformed".into()))?,
        );
    }
    if !keys.is_empty() {
        holder::check_holders(req.shares, &keys)?;
    }
    Ok(Holders {
        names: req.holders.clone(),
        keys,
    })
}

struct Holders {
    names: Vec<String>,
    keys: Vec<SignPublicKey>,
}

fn shares(
    state: &AppState,
    tokens: Vec<ShareToken>,
    holders: Holders,
) -> Result<Protobuf<VaultShares>> {
    let status = Some(status_message(state.vault.status()));
    if holders.keys.is_empty() {
        return Ok(Protobuf(VaultShares {
            tokens: tokens
                .iter()
                .map(|t| t.expose_secret().to_owned())
                .collect(),
            status,
            ..Default::default()
        }));
    }
    Ok(Protobuf(VaultShares {
        sealed_tokens: holder::seal_to_holders(&tokens, &holders.keys)?,
        holders: holders.names,
        status,
        ..Default::default()
    }))
}

pub(crate) async fn status(State(state): State<AppState>) -> Protobuf<VaultStatus> {
    Protobuf(status_message(state.vault.status()))
}

pub(crate) async fn init(
    State(state): State<AppState>,
    op: OperatorCaller,
    Proto(req): Proto<VaultSplit>,
) -> Result<Protobuf<VaultShares>> {
    let holders = holders(&state, &req).await?;
    let tokens = state
        .vault
        .init(req.shares, req.threshold, &op.operator_id)
        .await?;
    tracing::info!(operator = %op.operator_id, shares = req.shares, threshold = req.threshold, "vault initialised");
    shares(&state, tokens, holders)
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

pub(crate) async fn rotate(
    State(state): State<AppState>,
    op: OperatorCaller,
    Proto(req): Proto<VaultSplit>,
) -> Result<Protobuf<VaultShares>> {
    let holders = holders(&state, &req).await?;
    let tokens = state
        .vault
        .rotate(req.shares, req.threshold, &op.operator_id)
        .await?;
    tracing::info!(operator = %op.operator_id, "master key rotated");
    shares(&state, tokens, holders)
}

pub(crate) async fn reshare(
    State(state): State<AppState>,
    op: OperatorCaller,
    Proto(req): Proto<VaultSplit>,
) -> Result<Protobuf<VaultShares>> {
    let holders = holders(&state, &req).await?;
    let tokens = state
        .vault
        .reshare(req.shares, req.threshold, &op.operator_id)
        .await?;
    tracing::info!(operator = %op.operator_id, "master key re-shared");
    shares(&state, tokens, holders)
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
