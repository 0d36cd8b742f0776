//! The operator API (whitepaper 5.2, 10.5, 10.6): revocation and verification, each action
//! written to the hash-chained audit log in the same transaction.

use axum::extract::State;
use cachet_proto::v1::{
    AuditLog, ContactUpdate, ContactUpdateReason, Envelope, RevokeKeys, UserProfile, VerifyProfile,
};
use cachet_proto::Message;

use super::check_id;
use super::directory::profile;
use crate::error::{Error, Result};
use crate::extract::{ApiPath, OperatorCaller, PageQuery, Proto, Protobuf};
use crate::state::{now_ms, AppState};
use crate::store::{AuditDraft, Revocation};

/// Longest free text an operator may attach to an action.
const MAX_DETAIL: usize = 2000;

fn check_detail(text: &str) -> Result<()> {
    if text.len() > MAX_DETAIL {
        return Err(Error::invalid("reason", "too long"));
    }
    Ok(())
}

pub(crate) async fn revoke(
    State(state): State<AppState>,
    op: OperatorCaller,
    ApiPath(user_id): ApiPath<String>,
    Proto(req): Proto<RevokeKeys>,
) -> Result<Protobuf<UserProfile>> {
    check_id(&user_id, "user_id")?;
    check_detail(&req.reason)?;
    let keys = state
        .store
        .current_keys(&user_id)
        .await?
        .ok_or(Error::UserNotFound)?;
    if !keys.revoked_by_operator.is_empty() {
        return Err(Error::AlreadyRevoked);
    }
    let now = now_ms();
    // The update names the revoked generation; contacts stop using it. The user has no
    // valid keys until they register again.
    let update = Envelope {
        version: cachet_proto::ENVELOPE_VERSION,
        message_id: format!("revoke-{user_id}-{}", keys.key_version),
        timestamp: now,
        server_timestamp: now,
        contact_update: Some(ContactUpdate {
            user_id: user_id.clone(),
            box_key: keys.box_key.clone(),
            sign_key: keys.sign_key.clone(),
            key_version: keys.key_version,
            reason: ContactUpdateReason::Revoked as i32,
            previous_key_signature: Vec::new(),
            operator_id: op.operator_id.clone(),
            valid_from: keys.valid_from,
        }),
        ..Default::default()
    };
    let audit = AuditDraft {
        timestamp: now,
        operator_id: op.operator_id.clone(),
        action: "revoke_keys".into(),
        subject: user_id.clone(),
        detail: format!("key_version={} reason={}", keys.key_version, req.reason),
    };
    let notified = state
        .store
        .revoke_keys(Revocation {
            user_id: &user_id,
            expected_version: keys.key_version,
            contact_update: &update.encode_to_vec(),
            audit: &audit,
        })
        .await?;
    let contacts = state.store.contacts_of(&user_id).await?;
    state.signal.notify(&contacts).await;
    tracing::info!(operator = %op.operator_id, user_id, notified, "keys revoked");
    Ok(Protobuf(profile(&state, &user_id).await?))
}

pub(crate) async fn verify(
    State(state): State<AppState>,
    op: OperatorCaller,
    ApiPath(user_id): ApiPath<String>,
    Proto(req): Proto<VerifyProfile>,
) -> Result<Protobuf<UserProfile>> {
    check_id(&user_id, "user_id")?;
    check_detail(&req.note)?;
    let audit = AuditDraft {
        timestamp: now_ms(),
        operator_id: op.operator_id.clone(),
        action: "verify_profile".into(),
        subject: user_id.clone(),
        detail: req.note,
    };
    if !state.store.set_verified(&user_id, &audit).await? {
        return Err(Error::UserNotFound);
    }
    tracing::info!(operator = %op.operator_id, user_id, "profile verified");
    Ok(Protobuf(profile(&state, &user_id).await?))
}

pub(crate) async fn audit(
    State(state): State<AppState>,
    _op: OperatorCaller,
    query: PageQuery,
) -> Result<Protobuf<AuditLog>> {
    let limit = query.limit.unwrap_or(1000).clamp(1, 1000);
    let entries = state.store.audit_entries(query.after, limit).await?;
    Ok(Protobuf(AuditLog { entries }))
}
