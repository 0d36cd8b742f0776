//! What the user knows about a contact's keys, and what happens when they change.
//!
//! A contact starts **unverified** (the keys came from the server, which could have
//! substituted its own: whitepaper 10.4, 10.6). Comparing safety numbers face to face makes
//! them **verified**. When a verified contact's keys change, a [`KeyTrust`] policy decides:
//!
//! * The shipped [`SignedChangePolicy`] keeps the contact verified only if every step from
//!   the verified keys to the new ones carries a valid `previous_key_signature`, each by the
//!   Sign Key before it, starting from the one the user verified, with no operator
//!   revocation in between. The owner of the verified key authorised the change, so the
//!   server cannot have made it alone.
//! * Otherwise the contact becomes **key changed**: the user is warned loudly, and
//!   Cardinal's rule applies: no new case keys, attachment keys or recovery data are shared
//!   with them until they are verified again. Reading existing data with their older or
//!   newer keys still works.
//!
//! A trust chain (an append-only log of key changes) can replace the policy by
//! implementing [`KeyTrust`].

use cachet_crypto::{sign, SignPublicKey};
use cachet_proto::v1::{ContactUpdateReason, KeyChange, KeyRecord};
use cachet_proto::Message;

/// The verification state of a contact.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TrustState {
    /// Keys as the server gave them; never compared in person.
    Unverified,
    /// Safety numbers compared for the current keys (or for keys that authorised them).
    Verified {
        /// When the comparison was recorded, ms since the epoch.
        at_ms: i64,
    },
    /// The keys changed since they were verified, without authorisation by the verified
    /// key. New keys are not shared with this contact until they are verified again.
    KeyChanged {
        /// When the change was seen, ms since the epoch.
        at_ms: i64,
        /// Why the change was not accepted.
        note: String,
    },
}

impl TrustState {
    /// A short label for people.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Unverified => "unverified",
            Self::Verified { .. } => "verified",
            Self::KeyChanged { .. } => "KEY CHANGED",
        }
    }
}

/// Everything known about a key change of a contact the user had verified.
#[derive(Debug, Clone)]
pub struct KeyChangeEvidence<'a> {
    /// The contact's user id.
    pub user_id: &'a str,
    /// The Sign Key the user verified.
    pub verified_sign_key: SignPublicKey,
    /// The key version of the verified keys.
    pub verified_version: u32,
    /// Whether the server reports the verified keys as revoked by an operator.
    pub verified_revoked: bool,
    /// The key records after the verified one, oldest first, ending with the new keys.
    pub changes: &'a [KeyRecord],
}

/// The verdict on a key change of a verified contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustDecision {
    /// The change is authorised; the new keys inherit the verification.
    KeepVerified {
        /// Why, for the log and the user.
        note: String,
    },
    /// The change is not authorised; the contact must be verified again.
    Unverify {
        /// Why, for the warning shown to the user.
        note: String,
    },
}

/// Decides whether a verified contact stays verified across a key change.
pub trait KeyTrust: Send + Sync + std::fmt::Debug {
    /// Judges the change described by `evidence`.
    fn on_key_change(&self, evidence: &KeyChangeEvidence<'_>) -> TrustDecision;
}

/// The default policy: a change stays verified only if signed, step by step, by the
/// previously verified Sign Key.
#[derive(Debug, Default, Clone, Copy)]
pub struct SignedChangePolicy;

impl KeyTrust for SignedChangePolicy {
    fn on_key_change(&self, evidence: &KeyChangeEvidence<'_>) -> TrustDecision {
        let mut previous = evidence.verified_sign_key;
        let mut previous_version = evidence.verified_version;
        if evidence.verified_revoked {
            return TrustDecision::Unverify {
                note: "the keys you verified were revoked by an operator".into(),
            };
        }
        if evidence.changes.is_empty() {
            return TrustDecision::Unverify {
                note: "the server shows no record of the change".into(),
            };
        }
        for record in evidence.changes {
            // A key revoked by an operator vouches for nothing.
            if record.reason == ContactUpdateReason::Revoked as i32
                || !record.revoked_by_operator.is_empty()
            {
                return TrustDecision::Unverify {
                    note: format!(
                        "keys version {} were revoked by an operator",
                        record.key_version
                    ),
                };
            }
            if record.key_version != previous_version + 1 {
                return TrustDecision::Unverify {
                    note: format!(
                        "key versions jump from {previous_version} to {}",
                        record.key_version
                    ),
                };
            }
            let Ok(sign_key) = SignPublicKey::from_slice(&record.sign_key) else {
                return TrustDecision::Unverify {
                    note: "malformed sign key in the key history".into(),
                };
            };
            if record.previous_key_signature.is_empty() {
                return TrustDecision::Unverify {
                    note: format!(
                        "keys version {} are not signed by the previous key (lost device, reinstallation without the old keys, or a key substituted by the server)",
                        record.key_version
                    ),
                };
            }
            let change = KeyChange {
                user_id: evidence.user_id.to_owned(),
                key_version: record.key_version,
                box_key: record.box_key.clone(),
                sign_key: record.sign_key.clone(),
                previous_sign_key: previous.as_bytes().to_vec(),
            };
            if sign::verify_detached(
                &change.encode_to_vec(),
                &record.previous_key_signature,
                &previous,
            )
            .is_err()
            {
                return TrustDecision::Unverify {
                    note: format!(
                        "the signature on keys version {} does not verify under the verified key",
                        record.key_version
                    ),
                };
            }
            previous = sign_key;
            previous_version = record.key_version;
        }
        TrustDecision::KeepVerified {
            note: format!(
                "the change to keys version {previous_version} is signed by the key you verified"
            ),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use cachet_crypto::{BoxKeyPair, SignKeyPair};

    fn record(version: u32, new: &SignKeyPair, signer: Option<&SignKeyPair>) -> KeyRecord {
        let box_key = BoxKeyPair::generate().public.as_bytes().to_vec();
        let sign_key = new.public().as_bytes().to_vec();
        let previous_key_signature = signer
            .map(|s| {
                let change = KeyChange {
                    user_id: "u1".into(),
                    key_version: version,
                    box_key: box_key.clone(),
                    sign_key: sign_key.clone(),
                    previous_sign_key: s.public().as_bytes().to_vec(),
                };
                sign::sign_detached(&change.encode_to_vec(), s).to_vec()
            })
            .unwrap_or_default();
        KeyRecord {
            key_version: version,
            box_key,
            sign_key,
            previous_key_signature,
            reason: ContactUpdateReason::NewInstallation as i32,
            ..Default::default()
        }
    }

    fn judge(verified: &SignKeyPair, changes: &[KeyRecord]) -> TrustDecision {
        SignedChangePolicy.on_key_change(&KeyChangeEvidence {
            user_id: "u1",
            verified_sign_key: verified.public(),
            verified_version: 1,
            verified_revoked: false,
            changes,
        })
    }

    #[test]
    fn a_chain_signed_from_the_verified_key_stays_verified() {
        let (k1, k2, k3) = (
            SignKeyPair::generate(),
            SignKeyPair::generate(),
            SignKeyPair::generate(),
        );
        let chain = [record(2, &k2, Some(&k1)), record(3, &k3, Some(&k2))];
        assert!(matches!(
            judge(&k1, &chain),
            TrustDecision::KeepVerified { .. }
        ));
    }

    #[test]
    fn unsigned_foreign_signed_or_gapped_changes_unverify() {
        let (k1, k2, mallory) = (
            SignKeyPair::generate(),
            SignKeyPair::generate(),
            SignKeyPair::generate(),
        );
        assert!(matches!(
            judge(&k1, &[record(2, &k2, None)]),
            TrustDecision::Unverify { .. }
        ));
        assert!(matches!(
            judge(&k1, &[record(2, &k2, Some(&mallory))]),
            TrustDecision::Unverify { .. }
        ));
        assert!(matches!(
            judge(&k1, &[record(3, &k2, Some(&k1))]),
            TrustDecision::Unverify { .. }
        ));
        let mut revoked = record(2, &k2, Some(&k1));
        revoked.revoked_by_operator = "op:eve".into();
        assert!(matches!(
            judge(&k1, &[revoked]),
            TrustDecision::Unverify { .. }
        ));
        assert!(matches!(judge(&k1, &[]), TrustDecision::Unverify { .. }));
    }
}
