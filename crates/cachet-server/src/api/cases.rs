//! Patient cases (whitepaper 3.6, 8.2.3): participants, sealed case fields, one sealed case
//! key per participant, and a kept history that later participants read from the start.

use axum::extract::State;
use cachet_proto::decode::{MAX_CIPHERTEXT_LEN, MAX_RECIPIENTS};
use cachet_proto::v1::{
    AddParticipants, CaseList, CaseRecord, CreateCase, EnvelopeList, SealedCaseKey,
};

use super::{check_id, envelope_list, page_limit};
use crate::error::{Error, Result};
use crate::extract::{ApiPath, PageQuery, Proto, Protobuf, UserCaller};
use crate::state::{now_ms, AppState};
use crate::store::NewParticipants;

/// Smallest secretbox output with its nonce: 24-byte nonce and 16-byte tag.
const MIN_SEALED_FIELDS: usize = cachet_crypto::NONCE_LEN + cachet_crypto::MAC_LEN;
/// Largest sealed case key: a 32-byte key plus tag, with room for a future envelope.
const MAX_SEALED_KEY: usize = 1024;

/// Checks sealed keys, stamps them with their sealer, and returns the participants named.
async fn check_keys(
    state: &AppState,
    caller: &str,
    keys: &mut [SealedCaseKey],
) -> Result<Vec<String>> {
    if keys.is_empty() {
        return Err(Error::invalid(
            "keys",
            "at least one sealed key is required",
        ));
    }
    if keys.len() > MAX_RECIPIENTS {
        return Err(Error::invalid("keys", "too many keys"));
    }
    let mut seen = Vec::with_capacity(keys.len());
    for k in keys.iter_mut() {
        check_id(&k.participant_id, "participant_id")?;
        if k.nonce.len() != cachet_crypto::NONCE_LEN {
            return Err(Error::invalid("nonce", "must be 24 bytes"));
        }
        if k.ciphertext.len() < cachet_crypto::MAC_LEN || k.ciphertext.len() > MAX_SEALED_KEY {
            return Err(Error::invalid("ciphertext", "length out of range"));
        }
        for key in [&k.sealer_box_key, &k.recipient_box_key] {
            if !key.is_empty() && key.len() != cachet_crypto::KEY_LEN {
                return Err(Error::invalid("box_key", "must be empty or 32 bytes"));
            }
        }
        k.sealed_by = caller.to_owned();
        seen.push((k.participant_id.clone(), k.key_epoch));
    }
    seen.sort_unstable();
    if seen.windows(2).any(|w| w[0] == w[1]) {
        return Err(Error::invalid(
            "keys",
            "two keys for the same participant and epoch",
        ));
    }
    let mut participants: Vec<String> = seen.into_iter().map(|(p, _)| p).collect();
    participants.dedup();
    let existing = state.store.existing_users(&participants).await?;
    if let Some(missing) = participants
        .iter()
        .find(|p| existing.binary_search(p).is_err())
    {
        return Err(Error::UnknownRecipient(missing.clone()));
    }
    Ok(participants)
}

/// A case as `caller` may see it: participants only, with only the caller's keys.
async fn load_for(state: &AppState, case_id: &str, caller: &str) -> Result<CaseRecord> {
    check_id(case_id, "case_id")?;
    let mut case = state
        .store
        .get_case(case_id)
        .await?
        .ok_or(Error::CaseNotFound)?;
    if !case.participants.iter().any(|p| p == caller) {
        return Err(Error::NotAParticipant);
    }
    case.my_keys = state.store.case_keys(case_id, caller).await?;
    Ok(case)
}

pub(crate) async fn create(
    State(state): State<AppState>,
    caller: UserCaller,
    Proto(mut req): Proto<CreateCase>,
) -> Result<Protobuf<CaseRecord>> {
    check_id(&req.case_id, "case_id")?;
    if req.sealed_fields.len() < MIN_SEALED_FIELDS || req.sealed_fields.len() > MAX_CIPHERTEXT_LEN {
        return Err(Error::invalid("sealed_fields", "length out of range"));
    }
    let participants = check_keys(&state, &caller.user_id, &mut req.keys).await?;
    if !participants.contains(&caller.user_id) {
        return Err(Error::invalid(
            "keys",
            "the creator must hold a sealed key of the case",
        ));
    }
    let case = CaseRecord {
        case_id: req.case_id.clone(),
        created_by: caller.user_id.clone(),
        sealed_fields: req.sealed_fields,
        participants: Vec::new(),
        my_keys: Vec::new(),
        created_at: now_ms(),
    };
    state.store.create_case(&case, &req.keys).await?;
    tracing::debug!(case_id = %case.case_id, participants = participants.len(), "case created");
    Ok(Protobuf(
        load_for(&state, &req.case_id, &caller.user_id).await?,
    ))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    caller: UserCaller,
) -> Result<Protobuf<CaseList>> {
    let mut cases = state.store.cases_of(&caller.user_id).await?;
    for case in &mut cases {
        case.my_keys = state
            .store
            .case_keys(&case.case_id, &caller.user_id)
            .await?;
    }
    Ok(Protobuf(CaseList { cases }))
}

pub(crate) async fn get(
    State(state): State<AppState>,
    caller: UserCaller,
    ApiPath(case_id): ApiPath<String>,
) -> Result<Protobuf<CaseRecord>> {
    Ok(Protobuf(load_for(&state, &case_id, &caller.user_id).await?))
}

pub(crate) async fn add_participants(
    State(state): State<AppState>,
    caller: UserCaller,
    ApiPath(case_id): ApiPath<String>,
    Proto(mut req): Proto<AddParticipants>,
) -> Result<Protobuf<CaseRecord>> {
    load_for(&state, &case_id, &caller.user_id).await?;
    check_keys(&state, &caller.user_id, &mut req.keys).await?;
    state
        .store
        .add_case_participants(NewParticipants {
            case_id: &case_id,
            added_by: &caller.user_id,
            added_at: now_ms(),
            keys: &req.keys,
        })
        .await?;
    Ok(Protobuf(load_for(&state, &case_id, &caller.user_id).await?))
}

pub(crate) async fn history(
    State(state): State<AppState>,
    caller: UserCaller,
    ApiPath(case_id): ApiPath<String>,
    query: PageQuery,
) -> Result<Protobuf<EnvelopeList>> {
    load_for(&state, &case_id, &caller.user_id).await?;
    let limit = page_limit(query.limit, state.settings.receive_max_envelopes);
    let page = state
        .store
        .case_history(&case_id, query.after, limit)
        .await?;
    Ok(Protobuf(envelope_list(page)?))
}
