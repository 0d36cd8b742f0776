//! The HTTP messages of recovery, the same on the data server and on the key server, and
//! the rate-limit policy both apply. JSON bodies; every byte string is lowercase hex.
//!
//! Every request but [`StartRequest`] and [`EnvelopeUpdate`] carries the one-time code of
//! that server's identity check (`challenge_id`, `code`), so each server checks the
//! user's identity itself.

use serde::{Deserialize, Serialize};

/// Asks the server to send a one-time code to the user's phone number or e-mail address.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StartRequest {
    /// Phone number (E.164) or e-mail address.
    pub identifier: String,
}

/// The pending identity check.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StartResponse {
    /// Id to send back with the code.
    pub challenge_id: String,
    /// Expiry, ms since the epoch.
    pub expires_at: i64,
}

/// The answer to an identity check, carried by every recovery request.
#[derive(Clone, Serialize, Deserialize)]
pub struct Identity {
    /// From [`StartResponse`].
    pub challenge_id: String,
    /// The code received.
    pub code: String,
}

impl core::fmt::Debug for Identity {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Identity")
            .field("challenge_id", &self.challenge_id)
            .finish_non_exhaustive()
    }
}

/// One OPRF evaluation. Counts against the account's rate limit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvaluateRequest {
    /// Identity check.
    #[serde(flatten)]
    pub identity: Identity,
    /// The account; must be the one the identifier belongs to. The key server creates
    /// the account (and its key share) on the first evaluation for an identifier.
    pub user_id: String,
    /// Blinded element `A`, 32 bytes.
    pub blinded: String,
}

/// The server's evaluation with its proof.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvaluateResponse {
    /// The account.
    pub user_id: String,
    /// This server's public share `K_i`, 32 bytes.
    pub public_share: String,
    /// `B_i = A·k_i`, 32 bytes.
    pub element: String,
    /// DLEQ proof, 64 bytes.
    pub proof: String,
}

/// What a server holds for an account, released after the identity check.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountResponse {
    /// The account.
    pub user_id: String,
    /// Public share of the data server as recorded at enrolment, 32 bytes.
    pub data_server_share: String,
    /// Public share of the key server as recorded at enrolment, 32 bytes.
    pub key_server_share: String,
    /// The recovery authentication public key, 32 bytes.
    pub auth_public: String,
    /// The sealed key ring.
    pub envelope: String,
    /// Failed recoveries counted so far.
    pub failures: u32,
}

/// Enrolment, password change, or re-enrolment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrolRequest {
    /// Identity check.
    #[serde(flatten)]
    pub identity: Identity,
    /// The account.
    pub user_id: String,
    /// Both public shares, as the client received them from each server, 32 bytes each.
    pub data_server_share: String,
    /// See above.
    pub key_server_share: String,
    /// The new recovery authentication public key, 32 bytes.
    pub auth_public: String,
    /// The sealed key ring.
    pub envelope: String,
    /// Signature of [`enrol_message`] by the new auth key (proves the client ran the OPRF).
    pub signature: String,
    /// Signature of [`enrol_message`] by the auth key being replaced; empty at the first
    /// enrolment. A password change therefore needs the old password.
    #[serde(default)]
    pub previous_signature: String,
}

/// A successful recovery, proven with the auth key: resets the failure count.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SuccessRequest {
    /// Identity check (its challenge id is the server's nonce).
    #[serde(flatten)]
    pub identity: Identity,
    /// Signature of [`success_message`] by the auth key.
    pub signature: String,
}

/// A new sealed key ring after a key change, signed with the auth key; no identity check
/// (the client keeps the wrapping and auth keys after enrolment).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnvelopeUpdate {
    /// The account.
    pub user_id: String,
    /// The new sealed key ring.
    pub envelope: String,
    /// Client time, ms since the epoch; must be within five minutes of the server's and
    /// later than the previous update's (replay refusal).
    pub timestamp: i64,
    /// Signature of [`update_message`] by the auth key.
    pub signature: String,
}

/// Share refresh, sent by an operator to each server: the server adds `delta`
/// (data server) or subtracts it (key server) if its recorded pair is still `old_*`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshRequest {
    /// The account.
    pub user_id: String,
    /// Random scalar `δ`, 32 bytes.
    pub delta: String,
    /// Recorded data-server public share before the refresh.
    pub old_data_server_share: String,
    /// Recorded key-server public share before the refresh.
    pub old_key_server_share: String,
}

fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// What the auth keys sign at enrolment. The challenge id is the server's fresh nonce,
/// so a recorded enrolment cannot be replayed later (rolling back a password change).
pub fn enrol_message(
    challenge_id: &str,
    user_id: &str,
    data_server_share: &[u8],
    key_server_share: &[u8],
    auth_public: &[u8],
    envelope: &[u8],
) -> Vec<u8> {
    let mut m = b"cachet recovery enrol v1".to_vec();
    for f in [
        challenge_id.as_bytes(),
        user_id.as_bytes(),
        data_server_share,
        key_server_share,
        auth_public,
        &cachet_crypto::sha256(envelope),
    ] {
        field(&mut m, f);
    }
    m
}

/// What the auth key signs to prove a successful recovery.
pub fn success_message(challenge_id: &str, user_id: &str) -> Vec<u8> {
    let mut m = b"cachet recovery success v1".to_vec();
    field(&mut m, challenge_id.as_bytes());
    field(&mut m, user_id.as_bytes());
    m
}

/// What the auth key signs to replace the sealed key ring.
pub fn update_message(user_id: &str, timestamp: i64, envelope: &[u8]) -> Vec<u8> {
    let mut m = b"cachet recovery update v1".to_vec();
    field(&mut m, user_id.as_bytes());
    field(&mut m, &timestamp.to_be_bytes());
    field(&mut m, &cachet_crypto::sha256(envelope));
    m
}

/// How many OPRF evaluations an account gets, and how fast. Every evaluation counts as a
/// failure until a signature with the auth key proves it succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Failures allowed back to back.
    pub free_attempts: u32,
    /// Wait after the first failure beyond the free ones; doubles with each further one.
    pub base_delay_ms: i64,
    /// From this many failures on, every attempt waits `lockout_ms`.
    pub max_failures: u32,
    /// The lock-out.
    pub lockout_ms: i64,
}

impl RateLimit {
    /// cachet's policy: 3 free attempts, then 1 min, 2 min, 4 min... and from 10 failures
    /// on, one attempt per day.
    pub const DEFAULT: Self = Self {
        free_attempts: 3,
        base_delay_ms: 60_000,
        max_failures: 10,
        lockout_ms: 24 * 3600 * 1000,
    };

    /// Earliest time of the next attempt after `failures` failures, the last at
    /// `last_failure_at`.
    pub fn next_allowed(&self, failures: u32, last_failure_at: i64) -> i64 {
        let wait = if failures >= self.max_failures {
            self.lockout_ms
        } else if failures >= self.free_attempts {
            let doublings = (failures - self.free_attempts).min(30);
            self.base_delay_ms
                .saturating_mul(1i64 << doublings)
                .min(self.lockout_ms)
        } else {
            0
        };
        last_failure_at.saturating_add(wait)
    }

    /// Whether the account is locked out (as opposed to waiting out a delay).
    pub fn locked_out(&self, failures: u32) -> bool {
        failures >= self.max_failures
    }
}

/// Decodes a hex field of an exact length.
pub fn hex_field(value: &str, len: usize, name: &'static str) -> Result<Vec<u8>, String> {
    let bytes = hex::decode(value).map_err(|_| format!("{name} is not hex"))?;
    if bytes.len() != len {
        return Err(format!("{name} must be {len} bytes"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_then_lock() {
        let p = RateLimit::DEFAULT;
        assert_eq!(p.next_allowed(0, 1000), 1000);
        assert_eq!(p.next_allowed(2, 1000), 1000);
        assert_eq!(p.next_allowed(3, 1000), 61_000);
        assert_eq!(p.next_allowed(4, 1000), 121_000);
        assert!(!p.locked_out(9));
        assert!(p.locked_out(10));
        assert_eq!(p.next_allowed(10, 0), 24 * 3600 * 1000);
        assert_eq!(p.next_allowed(u32::MAX, 0), 24 * 3600 * 1000);
    }

    #[test]
    fn messages_bind_every_field() {
        let a = enrol_message("c", "u", &[1; 32], &[2; 32], &[3; 32], b"env");
        assert_ne!(
            a,
            enrol_message("c2", "u", &[1; 32], &[2; 32], &[3; 32], b"env")
        );
        assert_ne!(
            a,
            enrol_message("c", "u", &[1; 32], &[2; 32], &[3; 32], b"enw")
        );
        assert_ne!(success_message("c", "u"), success_message("cu", ""));
        assert_ne!(update_message("u", 1, b"e"), update_message("u", 2, b"e"));
    }
}
