//! Registration with a one-time code, and new installations (whitepaper 3.1, 3.2, 5).

use axum::extract::State;
use cachet_crypto::boxes::PrecomputedBox;
use cachet_crypto::{sign, BoxPublicKey, BoxSecretKey, SignPublicKey, KEY_LEN, SIGNATURE_LEN};
use cachet_proto::v1::{
    ContactUpdate, ContactUpdateReason, Envelope, KeyChange, KeyRecord, RegisterFinish,
    RegisterFinishResponse, RegisterStart, RegisterStartResponse,
};
use cachet_proto::Message;

use crate::error::{Error, Result};
use crate::extract::{Proto, Protobuf};
use crate::state::{now_ms, AppState};
use crate::store::{Challenge, NewInstallation, NewUser};
use cachet_keyserver::service::{random_code, CodeVerdict};

/// Longest display name, in characters.
const MAX_DISPLAY_NAME: usize = 128;
/// Unexpired codes allowed per identifier, so nobody can flood a phone or mailbox with
/// codes (or run up SMS costs).
pub(crate) const MAX_LIVE_CHALLENGES: u64 = 5;

/// Normalises an identifier and checks that it is an E.164 phone number or an e-mail
/// address. Returns the normalised form.
pub(crate) fn check_identifier(identifier: &str) -> Result<String> {
    cachet_server_common::identifier::check_identifier(identifier).map_err(Error::InvalidIdentifier)
}

/// A random id: `prefix` followed by 16 random bytes in hex.
pub(crate) fn random_id(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        hex::encode(cachet_crypto::random_bytes::<16>())
    )
}

pub(crate) async fn start(
    State(state): State<AppState>,
    Proto(req): Proto<RegisterStart>,
) -> Result<Protobuf<RegisterStartResponse>> {
    let identifier = check_identifier(&req.identifier)?;
    let now = now_ms();
    let ttl = i64::try_from(state.settings.code_ttl.as_millis()).unwrap_or(i64::MAX);
    let identifier_hash =
        crate::vault::blind_identifier(&state.vault, &cachet_proto::discovery_hash(&identifier))?;
    if state.store.live_challenges(&identifier_hash, now).await? >= MAX_LIVE_CHALLENGES {
        return Err(Error::TooManyCodes);
    }
    let challenge_id = random_id("c_");
    let code = random_code();
    let challenge = Challenge::issue(challenge_id.clone(), identifier_hash, &code, now, ttl);
    state.store.insert_challenge(&challenge).await?;
    if let Err(e) = state
        .notifier
        .send_code(crate::notify::CodeMessage {
            to: &identifier,
            code: &code,
            purpose: crate::notify::Purpose::Registration,
            expires_at_ms: challenge.expires_at,
        })
        .await
        .map_err(Error::from)
    {
        state.store.delete_challenge(&challenge_id).await?;
        return Err(e);
    }
    tracing::info!(challenge_id, "registration started");
    Ok(Protobuf(RegisterStartResponse {
        challenge_id,
        expires_at: challenge.expires_at,
    }))
}

fn check_display_name(name: &str) -> Result<()> {
    if name.chars().count() > MAX_DISPLAY_NAME {
        return Err(Error::invalid("display_name", "too long"));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::invalid(
            "display_name",
            "control characters not allowed",
        ));
    }
    Ok(())
}

pub(crate) async fn finish(
    State(state): State<AppState>,
    Proto(req): Proto<RegisterFinish>,
) -> Result<Protobuf<RegisterFinishResponse>> {
    if !Challenge::plausible_id(&req.challenge_id) {
        return Err(Error::UnknownChallenge);
    }
    let Some(challenge) = state.store.get_challenge(&req.challenge_id).await? else {
        return Err(Error::UnknownChallenge);
    };
    let now = now_ms();
    let stored_id = &challenge.challenge_id;
    match challenge.verdict(&req.code, now, state.settings.code_max_attempts) {
        CodeVerdict::Right => {}
        CodeVerdict::TooManyAttempts => return Err(Error::TooManyAttempts),
        CodeVerdict::Expired => {
            state.store.delete_challenge(stored_id).await?;
            return Err(Error::ChallengeExpired);
        }
        CodeVerdict::Wrong => {
            state.store.record_failed_attempt(stored_id).await?;
            return Err(Error::WrongCode);
        }
    }

    if req.box_key.len() != KEY_LEN {
        return Err(Error::InvalidKey("box_key must be 32 bytes"));
    }
    // A low-order Box Key would make every box sealed to it fail (or be predictable).
    let box_key = BoxPublicKey::from_slice(&req.box_key)
        .map_err(|_| Error::InvalidKey("box_key must be 32 bytes"))?;
    if PrecomputedBox::new(
        &box_key,
        &BoxSecretKey::from_bytes(cachet_crypto::random_bytes()),
    )
    .is_err()
    {
        return Err(Error::InvalidKey(
            "box_key is not a usable X25519 public key",
        ));
    }
    let sign_key = SignPublicKey::from_slice(&req.sign_key)
        .map_err(|_| Error::InvalidKey("sign_key must be 32 bytes"))?;
    check_display_name(&req.display_name)?;
    let proof = KeyChange {
        user_id: challenge.challenge_id.clone(),
        key_version: 0,
        box_key: req.box_key.clone(),
        sign_key: req.sign_key.clone(),
        previous_sign_key: Vec::new(),
    };
    if req.self_signature.len() != SIGNATURE_LEN
        || sign::verify_detached(
            &cachet_proto::key_change_bytes(&proof),
            &req.self_signature,
            &sign_key,
        )
        .is_err()
    {
        return Err(Error::BadSelfSignature);
    }

    match state
        .store
        .user_by_identifier_hash(&challenge.identifier_hash)
        .await?
    {
        None => {
            let user_id = random_id("u_");
            let keys = KeyRecord {
                key_version: 1,
                box_key: req.box_key,
                sign_key: req.sign_key,
                valid_from: now,
                valid_until: 0,
                reason: ContactUpdateReason::Unspecified as i32,
                previous_key_signature: Vec::new(),
                revoked_by_operator: String::new(),
            };
            let user = NewUser {
                user_id: user_id.clone(),
                identifier_hash: challenge.identifier_hash,
                display_name: req.display_name,
                created_at: now,
                keys,
            };
            state
                .store
                .create_user(&challenge.challenge_id, &user)
                .await?;
            tracing::info!(user_id, "user registered");
            Ok(Protobuf(RegisterFinishResponse {
                user_id,
                key_version: 1,
            }))
        }
        Some(user_id) => {
            let previous = state
                .store
                .current_keys(&user_id)
                .await?
                .ok_or_else(|| Error::Internal("registered user without keys".into()))?;
            let version = previous.key_version.saturating_add(1);
            if !req.previous_key_signature.is_empty() {
                let old_key = SignPublicKey::from_slice(&previous.sign_key)
                    .map_err(|_| Error::Internal("stored sign key is malformed".into()))?;
                let change = KeyChange {
                    user_id: user_id.clone(),
                    key_version: version,
                    box_key: req.box_key.clone(),
                    sign_key: req.sign_key.clone(),
                    previous_sign_key: previous.sign_key.clone(),
                };
                if sign::verify_detached(
                    &cachet_proto::key_change_bytes(&change),
                    &req.previous_key_signature,
                    &old_key,
                )
                .is_err()
                {
                    return Err(Error::BadPreviousKeySignature);
                }
            }
            let reason = ContactUpdateReason::NewInstallation;
            let update = Envelope {
                version: cachet_proto::ENVELOPE_VERSION,
                message_id: format!("key-{user_id}-{version}"),
                timestamp: now,
                server_timestamp: now,
                contact_update: Some(ContactUpdate {
                    user_id: user_id.clone(),
                    box_key: req.box_key.clone(),
                    sign_key: req.sign_key.clone(),
                    key_version: version,
                    reason: reason as i32,
                    previous_key_signature: req.previous_key_signature.clone(),
                    operator_id: String::new(),
                    valid_from: now,
                }),
                ..Default::default()
            };
            let inst = NewInstallation {
                user_id: user_id.clone(),
                expected_version: previous.key_version,
                keys: KeyRecord {
                    key_version: version,
                    box_key: req.box_key,
                    sign_key: req.sign_key,
                    valid_from: now,
                    valid_until: 0,
                    reason: reason as i32,
                    previous_key_signature: req.previous_key_signature,
                    revoked_by_operator: String::new(),
                },
                display_name: (!req.display_name.is_empty()).then_some(req.display_name),
                contact_update: update.encode_to_vec(),
            };
            let notified = state
                .store
                .add_installation(&challenge.challenge_id, &inst)
                .await?;
            let contacts = state.store.contacts_of(&user_id).await?;
            state.signal.notify(&contacts).await;
            tracing::info!(user_id, key_version = version, notified, "new installation");
            Ok(Protobuf(RegisterFinishResponse {
                user_id,
                key_version: version,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert_eq!(
            check_identifier(" +33 6 12 34 56 78 ").ok().as_deref(),
            Some("+33612345678")
        );
        assert_eq!(
            check_identifier("Dr.House@Example.org").ok().as_deref(),
            Some("dr.house@example.org")
        );
        for bad in [
            "",
            "12345678",
            "+123",
            "a@b",
            "@example.org",
            "x@@y.org",
            "+1234567890123456",
        ] {
            assert!(check_identifier(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn codes_are_six_digits() {
        for _ in 0..100 {
            let c = random_code();
            assert_eq!(c.len(), 6);
            assert!(c.bytes().all(|b| b.is_ascii_digit()));
        }
    }
}
