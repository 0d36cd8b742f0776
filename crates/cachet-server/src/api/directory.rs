//! Profiles, key histories and contact discovery (whitepaper 5.3, 10.4).

use axum::extract::State;
use cachet_proto::v1::{
    DiscoverRequest, DiscoverResponse, DiscoveredContact, KeyHistory, KeyRecord, UserProfile,
};
use cachet_trust::{Block, Event};

use super::check_id;
use crate::error::{Error, Result};
use crate::extract::{ApiPath, Proto, Protobuf, UserCaller};
use crate::state::{now_ms, AppState};
use crate::store::DiscoveryCharge;

/// Most hashes one discovery request may carry.
pub const MAX_DISCOVER: usize = 1000;

pub(crate) async fn profile(state: &AppState, user_id: &str) -> Result<UserProfile> {
    check_id(user_id, "user_id")?;
    let user = state
        .store
        .get_user(user_id)
        .await?
        .ok_or(Error::UserNotFound)?;
    let current_keys = state.store.current_keys(user_id).await?;
    Ok(UserProfile {
        user_id: user.user_id,
        display_name: user.display_name,
        verified: user.verified,
        current_keys,
    })
}

/// Refuses to hand out keys whose block is not in the trust log (unless configured
/// otherwise): no key reaches a client before the event that made it is logged.
async fn check_logged(state: &AppState, user_id: &str, keys: Option<&KeyRecord>) -> Result<()> {
    let Some(keys) = keys else {
        return Ok(());
    };
    if state.settings.allow_keys_without_block {
        return Ok(());
    }
    let logged = state
        .store
        .trust_blocks_of(user_id)
        .await?
        .iter()
        .filter_map(|(_, bytes)| Block::from_bytes(bytes).ok())
        .any(|b| {
            let (version, box_key, sign_key) = match b.body.event {
                Event::UserCreated { box_key, sign_key } => (1, box_key, sign_key),
                Event::KeysAdded {
                    key_version,
                    box_key,
                    sign_key,
                } => (key_version, box_key, sign_key),
                _ => return false,
            };
            version == keys.key_version && box_key == *keys.box_key && sign_key == *keys.sign_key
        });
    if logged {
        Ok(())
    } else {
        Err(Error::KeysNotInLog)
    }
}

pub(crate) async fn get_user(
    State(state): State<AppState>,
    _caller: UserCaller,
    ApiPath(user_id): ApiPath<String>,
) -> Result<Protobuf<UserProfile>> {
    let profile = profile(&state, &user_id).await?;
    check_logged(&state, &user_id, profile.current_keys.as_ref()).await?;
    Ok(Protobuf(profile))
}

pub(crate) async fn get_keys(
    State(state): State<AppState>,
    _caller: UserCaller,
    ApiPath(user_id): ApiPath<String>,
) -> Result<Protobuf<KeyHistory>> {
    check_id(&user_id, "user_id")?;
    let keys = state.store.key_history(&user_id).await?;
    if keys.is_empty() {
        return Err(Error::UserNotFound);
    }
    check_logged(&state, &user_id, keys.iter().max_by_key(|k| k.key_version)).await?;
    Ok(Protobuf(KeyHistory { user_id, keys }))
}

/// Counts `hashes` lookups against the caller's budget of the current discovery window
/// (fixed windows aligned on the epoch), or refuses with the seconds until the next one.
/// The counter is in the database, so every node of a deployment shares it.
async fn take_discovery_budget(state: &AppState, user_id: &str, hashes: usize) -> Result<()> {
    let limit = state.settings.discover_max_hashes;
    let window_ms = i64::try_from(state.settings.discover_window.as_millis())
        .unwrap_or(i64::MAX)
        .max(1);
    let now = now_ms();
    let window_start = now - now.rem_euclid(window_ms);
    let window_end = window_start.saturating_add(window_ms);
    let hashes = u64::try_from(hashes).unwrap_or(u64::MAX);
    if state
        .store
        .take_discovery_budget(
            user_id,
            DiscoveryCharge {
                window_start,
                window_end,
                hashes,
                limit,
            },
        )
        .await?
    {
        return Ok(());
    }
    let retry_after = u64::try_from(window_end.saturating_sub(now).saturating_add(999) / 1000)
        .unwrap_or(1)
        .max(1);
    tracing::info!(
        user_id,
        hashes,
        limit,
        retry_after,
        "discovery limit reached"
    );
    Err(Error::DiscoveryRateLimited {
        limit,
        window_seconds: state.settings.discover_window.as_secs(),
        retry_after,
    })
}

pub(crate) async fn discover(
    State(state): State<AppState>,
    caller: UserCaller,
    Proto(req): Proto<DiscoverRequest>,
) -> Result<Protobuf<DiscoverResponse>> {
    if req.identifier_hashes.len() > MAX_DISCOVER {
        return Err(Error::invalid("identifier_hashes", "too many hashes"));
    }
    if req.identifier_hashes.iter().any(|h| h.len() != 32) {
        return Err(Error::invalid("identifier_hashes", "each must be 32 bytes"));
    }
    // Every hash counts, found or not: the limit bounds how much of the identifier
    // space one account can probe, not how many contacts it has.
    take_discovery_budget(&state, &caller.user_id, req.identifier_hashes.len()).await?;
    // The database keeps identifier hashes blinded under the key hierarchy (when one
    // protects it); look up the blinded forms and answer with the caller's own hashes.
    let blinded = req
        .identifier_hashes
        .iter()
        .map(|h| crate::vault::blind_identifier(&state.vault, h))
        .collect::<Result<Vec<_>>>()?;
    // Only matches come back; hashes of non-users are neither answered nor kept.
    let found = state.store.discover(&blinded).await?;
    Ok(Protobuf(DiscoverResponse {
        contacts: found
            .into_iter()
            .filter_map(|(stored, user_id)| {
                let i = blinded.iter().position(|b| *b == stored)?;
                Some(DiscoveredContact {
                    identifier_hash: req.identifier_hashes[i].clone(),
                    user_id,
                })
            })
            .collect(),
    }))
}
