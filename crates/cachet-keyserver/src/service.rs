//! The recovery service: the same endpoints on the key server and on the data server,
//! over any storage that implements [`RecoveryBackend`].
//!
//! Routes (JSON bodies, messages in [`cachet_recovery::wire`], documented in
//! `docs/recovery.md`):
//!
//! | route | identity check | does |
//! | --- | --- | --- |
//! | `POST /api/v1/recovery/start` | | sends a one-time code |
//! | `POST /api/v1/recovery/evaluate` | code | one OPRF evaluation with DLEQ proof; counts as a failure |
//! | `POST /api/v1/recovery/account` | code | recorded public shares, auth key, sealed key ring |
//! | `POST /api/v1/recovery/enrol` | code + auth key(s) | stores or replaces the enrolment |
//! | `POST /api/v1/recovery/success` | code + auth key | proves a recovery succeeded: failures reset |
//! | `POST /api/v1/recovery/update` | auth key | replaces the sealed key ring after a key change |

use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use cachet_crypto::{sign, SignPublicKey, SIGNATURE_LEN};
use cachet_recovery::oprf::{PublicShare, PublicShares, RefreshDelta, ServerShare, ELEMENT_LEN};
use cachet_recovery::wire::{self, RateLimit};
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};

/// Largest sealed key ring accepted (a ring holds a few dozen keys).
pub const MAX_ENVELOPE_BYTES: usize = 64 * 1024;
/// Unexpired codes allowed per identifier.
pub const MAX_LIVE_CHALLENGES: u64 = 5;
/// Clock window of [`wire::EnvelopeUpdate`] timestamps.
pub const UPDATE_SKEW_MS: i64 = 5 * 60 * 1000;

/// Which of the two parties this service is; decides which recorded share is its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The data server (share `k1`, adds `δ` at a refresh).
    DataServer,
    /// The key server (share `k2`, subtracts `δ`).
    KeyServer,
}

/// A pending identity check: the one-time code (hashed) sent to an identifier (hashed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Random id handed to the client.
    pub challenge_id: String,
    /// `discovery_hash` of the identifier.
    pub identifier_hash: Vec<u8>,
    /// [`code_hash`] of the challenge id and the code.
    pub code_hash: Vec<u8>,
    /// Wrong codes tried so far.
    pub attempts: u32,
    /// Creation, ms since the epoch.
    pub created_at: i64,
    /// Expiry, ms since the epoch.
    pub expires_at: i64,
}

/// How a code presented for a challenge fares, in the order both servers check it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeVerdict {
    /// The challenge expired.
    Expired,
    /// The challenge used up its wrong codes.
    TooManyAttempts,
    /// The code is wrong (to be counted as an attempt).
    Wrong,
    /// The code is right.
    Right,
}

impl Challenge {
    /// A fresh challenge for `code`, without attempts, expiring `ttl_ms` after `now`: how
    /// both servers issue one.
    pub fn issue(
        challenge_id: String,
        identifier_hash: Vec<u8>,
        code: &str,
        now: i64,
        ttl_ms: i64,
    ) -> Self {
        Self {
            code_hash: code_hash(&challenge_id, code).to_vec(),
            challenge_id,
            identifier_hash,
            attempts: 0,
            created_at: now,
            expires_at: now.saturating_add(ttl_ms),
        }
    }

    /// Whether `challenge_id` could name a challenge at all (anything else is refused as
    /// unknown without a database lookup).
    pub fn plausible_id(challenge_id: &str) -> bool {
        !challenge_id.is_empty() && challenge_id.len() <= 128
    }

    /// Checks a presented code at `now` (compared in constant time, surrounding spaces
    /// ignored): the one code check of registration and of recovery.
    pub fn verdict(&self, code: &str, now: i64, max_attempts: u32) -> CodeVerdict {
        if self.expires_at < now {
            return CodeVerdict::Expired;
        }
        if self.attempts >= max_attempts {
            return CodeVerdict::TooManyAttempts;
        }
        let candidate = code_hash(&self.challenge_id, code.trim());
        if bool::from(candidate.as_slice().ct_eq(&self.code_hash)) {
            CodeVerdict::Right
        } else {
            CodeVerdict::Wrong
        }
    }
}

impl From<cachet_server_common::challenge::ChallengeTuple> for Challenge {
    /// A challenge as read back from its table, in column order.
    fn from(t: cachet_server_common::challenge::ChallengeTuple) -> Self {
        let (challenge_id, identifier_hash, code_hash, attempts, created_at, expires_at) = t;
        Self {
            challenge_id,
            identifier_hash,
            code_hash,
            attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
            created_at,
            expires_at,
        }
    }
}

/// One account's recovery state at one server.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryRow {
    /// The account.
    pub user_id: String,
    /// `discovery_hash` of the identifier the account was created for.
    pub identifier_hash: Vec<u8>,
    /// This server's secret OPRF key share (32 bytes).
    pub share: Vec<u8>,
    /// Data server's public share recorded at enrolment (empty before).
    pub data_server_share: Vec<u8>,
    /// Key server's public share recorded at enrolment (empty before).
    pub key_server_share: Vec<u8>,
    /// Recovery authentication public key (empty before enrolment).
    pub auth_public: Vec<u8>,
    /// Sealed key ring (empty before enrolment).
    pub envelope: Vec<u8>,
    /// Client timestamp of the last envelope update (0 after an enrolment).
    pub updated_at: i64,
    /// Evaluations not (yet) followed by a proven success.
    pub failures: u32,
    /// Time of the last counted evaluation.
    pub last_failure_at: i64,
    /// A share refresh in progress (key server only): `δ`, applied by the data server,
    /// not yet here.
    pub pending_delta: Vec<u8>,
    /// Bumped by every change; updates compare and swap on it.
    pub version: i64,
}

impl core::fmt::Debug for RecoveryRow {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RecoveryRow")
            .field("user_id", &self.user_id)
            .field("enrolled", &self.is_enrolled())
            .field("failures", &self.failures)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl From<cachet_server_common::recovery::AccountTuple> for RecoveryRow {
    /// An account as read back from its table, in column order.
    fn from(t: cachet_server_common::recovery::AccountTuple) -> Self {
        Self {
            user_id: t.0,
            identifier_hash: t.1,
            share: t.2,
            data_server_share: t.3,
            key_server_share: t.4,
            auth_public: t.5,
            envelope: t.6,
            updated_at: t.7,
            failures: u32::try_from(t.8).unwrap_or(u32::MAX),
            last_failure_at: t.9,
            pending_delta: t.10,
            version: t.11,
        }
    }
}

impl RecoveryRow {
    /// A fresh account with a new random share.
    pub fn new(user_id: &str, identifier_hash: &[u8]) -> Self {
        Self {
            user_id: user_id.to_owned(),
            identifier_hash: identifier_hash.to_vec(),
            share: ServerShare::generate().expose_secret().to_vec(),
            data_server_share: Vec::new(),
            key_server_share: Vec::new(),
            auth_public: Vec::new(),
            envelope: Vec::new(),
            updated_at: 0,
            failures: 0,
            last_failure_at: 0,
            pending_delta: Vec::new(),
            version: 0,
        }
    }

    /// Whether an enrolment completed.
    pub fn is_enrolled(&self) -> bool {
        !self.auth_public.is_empty()
    }

    fn recorded_pair(&self) -> Result<PublicShares> {
        Ok(PublicShares {
            data_server: public_share(&self.data_server_share)?,
            key_server: public_share(&self.key_server_share)?,
        })
    }

    fn next(&self) -> Self {
        Self {
            version: self.version + 1,
            ..self.clone()
        }
    }

    /// The next version with the failure count reset: what an enrolment and a proven
    /// success both store.
    fn next_without_failures(&self) -> Self {
        Self {
            failures: 0,
            last_failure_at: 0,
            ..self.next()
        }
    }
}

fn public_share(bytes: &[u8]) -> Result<PublicShare> {
    Ok(PublicShare(bytes.try_into().map_err(|_| {
        Error::Internal("stored public share is malformed".into())
    })?))
}

/// Storage and code delivery of one server's recovery service.
#[async_trait]
pub trait RecoveryBackend: Send + Sync + 'static {
    /// Saves a new challenge.
    async fn insert_challenge(&self, challenge: &Challenge) -> Result<()>;
    /// Unexpired challenges of an identifier hash.
    async fn live_challenges(&self, identifier_hash: &[u8], now: i64) -> Result<u64>;
    /// Reads a challenge.
    async fn get_challenge(&self, challenge_id: &str) -> Result<Option<Challenge>>;
    /// Counts one more wrong code.
    async fn record_failed_attempt(&self, challenge_id: &str) -> Result<()>;
    /// Deletes a challenge.
    async fn delete_challenge(&self, challenge_id: &str) -> Result<()>;
    /// Delivers a code to the (normalised) identifier.
    async fn send_code(&self, identifier: &str, code: &str, expires_at: i64) -> Result<()>;
    /// The account this identifier hash belongs to. The data server answers from its
    /// directory, the key server from its own accounts.
    async fn user_for_identifier(&self, identifier_hash: &[u8]) -> Result<Option<String>>;
    /// One account's recovery state.
    async fn account(&self, user_id: &str) -> Result<Option<RecoveryRow>>;
    /// Inserts a new account; false if the user id or identifier hash is taken.
    async fn insert_account(&self, row: &RecoveryRow) -> Result<bool>;
    /// Replaces an account if its version is still `expected_version`; false otherwise.
    async fn replace_account(&self, row: &RecoveryRow, expected_version: i64) -> Result<bool>;
}

/// The service: a backend, a role and limits.
pub struct Service {
    /// Storage and code delivery.
    pub backend: Arc<dyn RecoveryBackend>,
    /// Which party.
    pub role: Role,
    /// OPRF evaluation limits.
    pub limits: RateLimit,
    /// Lifetime of a code, ms.
    pub code_ttl_ms: i64,
    /// Wrong codes allowed per challenge.
    pub code_max_attempts: u32,
    /// Clock (ms since the epoch); replaceable in tests.
    pub clock: fn() -> i64,
}

cachet_http::debug_some_fields!(Service { role, limits });

pub use cachet_server_common::now_ms;

/// Stored instead of a code; the data server's registration uses the same binding, so
/// a code it sent serves both its registration and its recovery check.
pub fn code_hash(challenge_id: &str, code: &str) -> [u8; 32] {
    cachet_crypto::sha256(format!("cachet-code-v1:{challenge_id}:{code}").as_bytes())
}

/// A uniformly random 6-digit code (both servers' one-time codes).
pub fn random_code() -> String {
    loop {
        let n = u32::from_le_bytes(cachet_crypto::random_bytes::<4>());
        if n < 4_294_000_000 {
            return format!("{:06}", n % 1_000_000);
        }
    }
}

/// Normalises an identifier and checks it is an E.164 number or an e-mail address.
/// The data server's rule (`cachet_server_common::identifier`), so that both servers
/// accept the same identifiers.
pub fn check_identifier(identifier: &str) -> Result<String> {
    cachet_server_common::identifier::check_identifier(identifier).map_err(Error::InvalidIdentifier)
}

fn hex_field(value: &str, len: usize, name: &'static str) -> Result<Vec<u8>> {
    wire::hex_field(value, len, name).map_err(|reason| Error::InvalidField(name, reason))
}

/// A sealed key ring as sent in hex: decoded, and refused when empty or too large.
fn envelope_field(hex_envelope: &str) -> Result<Vec<u8>> {
    let envelope =
        hex::decode(hex_envelope).map_err(|_| Error::InvalidField("envelope", "not hex".into()))?;
    if envelope.is_empty() || envelope.len() > MAX_ENVELOPE_BYTES {
        return Err(Error::InvalidField(
            "envelope",
            format!("must be 1 to {MAX_ENVELOPE_BYTES} bytes"),
        ));
    }
    Ok(envelope)
}

fn check_user_id(user_id: &str) -> Result<()> {
    cachet_proto::decode::validate_id(user_id, "user_id")
        .map_err(|e| Error::InvalidField("user_id", e.to_string()))
}

fn verify(message: &[u8], signature_hex: &str, key: &[u8], err: Error) -> Result<()> {
    let sig = hex::decode(signature_hex)
        .map_err(|_| Error::InvalidField("signature", "not hex".into()))?;
    let key = SignPublicKey::from_slice(key)
        .map_err(|_| Error::InvalidField("auth_public", "must be 32 bytes".into()))?;
    if sig.len() != SIGNATURE_LEN || sign::verify_detached(message, &sig, &key).is_err() {
        return Err(err);
    }
    Ok(())
}

fn json<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| Error::InvalidField("body", e.to_string()))
}

impl Service {
    fn now(&self) -> i64 {
        (self.clock)()
    }

    /// Sends a code; returns the challenge.
    pub async fn start(&self, req: wire::StartRequest) -> Result<wire::StartResponse> {
        let identifier = check_identifier(&req.identifier)?;
        let now = self.now();
        let identifier_hash = cachet_proto::discovery_hash(&identifier).to_vec();
        if self.backend.live_challenges(&identifier_hash, now).await? >= MAX_LIVE_CHALLENGES {
            return Err(Error::TooManyCodes);
        }
        let challenge_id = format!("c_{}", hex::encode(cachet_crypto::random_bytes::<16>()));
        let code = random_code();
        let challenge = Challenge::issue(
            challenge_id.clone(),
            identifier_hash,
            &code,
            now,
            self.code_ttl_ms,
        );
        self.backend.insert_challenge(&challenge).await?;
        if let Err(e) = self
            .backend
            .send_code(&identifier, &code, challenge.expires_at)
            .await
        {
            self.backend.delete_challenge(&challenge_id).await?;
            return Err(e);
        }
        Ok(wire::StartResponse {
            challenge_id,
            expires_at: challenge.expires_at,
        })
    }

    /// Checks a code; returns the identifier hash it was sent for.
    async fn check_identity(&self, id: &wire::Identity) -> Result<Vec<u8>> {
        let found = if Challenge::plausible_id(&id.challenge_id) {
            self.backend.get_challenge(&id.challenge_id).await?
        } else {
            None
        };
        let c = found.ok_or(Error::UnknownChallenge)?;
        match c.verdict(&id.code, self.now(), self.code_max_attempts) {
            CodeVerdict::Right => Ok(c.identifier_hash),
            CodeVerdict::Expired => Err(Error::ChallengeExpired),
            CodeVerdict::TooManyAttempts => Err(Error::TooManyAttempts),
            CodeVerdict::Wrong => {
                self.backend.record_failed_attempt(&c.challenge_id).await?;
                Err(Error::WrongCode)
            }
        }
    }

    /// The enrolled account behind a passed identity check.
    async fn identified_account(&self, id: &wire::Identity) -> Result<RecoveryRow> {
        let hash = self.check_identity(id).await?;
        let user_id = self
            .backend
            .user_for_identifier(&hash)
            .await?
            .ok_or(Error::NotEnrolled)?;
        self.backend
            .account(&user_id)
            .await?
            .ok_or(Error::NotEnrolled)
    }

    /// The enrolled account of a (checked) user id, for the calls that name the user
    /// rather than prove an identifier; `NotEnrolled` otherwise.
    pub async fn enrolled_account(&self, user_id: &str) -> Result<RecoveryRow> {
        check_user_id(user_id)?;
        self.backend
            .account(user_id)
            .await?
            .filter(RecoveryRow::is_enrolled)
            .ok_or(Error::NotEnrolled)
    }

    async fn replace(&self, row: &RecoveryRow, expected: i64) -> Result<()> {
        if self.backend.replace_account(row, expected).await? {
            Ok(())
        } else {
            Err(Error::Concurrent)
        }
    }

    /// One OPRF evaluation, counted against the rate limit.
    pub async fn evaluate(&self, req: wire::EvaluateRequest) -> Result<wire::EvaluateResponse> {
        let hash = self.check_identity(&req.identity).await?;
        check_user_id(&req.user_id)?;
        let blinded = hex_field(&req.blinded, ELEMENT_LEN, "blinded")?;
        let row = match self.backend.user_for_identifier(&hash).await? {
            Some(user_id) if user_id != req.user_id => return Err(Error::UserMismatch),
            Some(user_id) => self.backend.account(&user_id).await?,
            // The data server knows every account from its directory.
            None if self.role == Role::DataServer => return Err(Error::NotEnrolled),
            None => None,
        };
        let row = match row {
            Some(row) => row,
            None => {
                if !self
                    .backend
                    .insert_account(&RecoveryRow::new(&req.user_id, &hash))
                    .await?
                {
                    return Err(Error::UserMismatch);
                }
                self.backend
                    .account(&req.user_id)
                    .await?
                    .ok_or_else(|| Error::Internal("account vanished".into()))?
            }
        };
        let now = self.now();
        if row.failures > 0 {
            let at = self.limits.next_allowed(row.failures, row.last_failure_at);
            if now < at {
                return Err(if self.limits.locked_out(row.failures) {
                    Error::LockedOut(at)
                } else {
                    Error::RetryLater(at)
                });
            }
        }
        let share = ServerShare::from_bytes(&row.share)
            .map_err(|_| Error::Internal("stored share is malformed".into()))?;
        let evaluation = share
            .evaluate(&blinded)
            .map_err(|_| Error::InvalidField("blinded", "not a valid group element".into()))?;
        // Counted before the answer leaves: only a proven success takes it back.
        let mut next = row.next();
        next.failures = row.failures.saturating_add(1);
        next.last_failure_at = now;
        self.replace(&next, row.version).await?;
        tracing::info!(
            user_id = row.user_id,
            failures = next.failures,
            "oprf evaluation"
        );
        Ok(wire::EvaluateResponse {
            user_id: row.user_id,
            public_share: hex::encode(share.public().0),
            element: hex::encode(evaluation.element),
            proof: hex::encode(evaluation.proof),
        })
    }

    /// The enrolment as recorded.
    pub async fn account(&self, id: wire::Identity) -> Result<wire::AccountResponse> {
        let row = self.identified_account(&id).await?;
        if !row.is_enrolled() {
            return Err(Error::NotEnrolled);
        }
        Ok(wire::AccountResponse {
            user_id: row.user_id,
            data_server_share: hex::encode(&row.data_server_share),
            key_server_share: hex::encode(&row.key_server_share),
            auth_public: hex::encode(&row.auth_public),
            envelope: hex::encode(&row.envelope),
            failures: row.failures,
        })
    }

    /// Stores or replaces an enrolment.
    pub async fn enrol(&self, req: wire::EnrolRequest) -> Result<()> {
        let row = self.identified_account(&req.identity).await?;
        if row.user_id != req.user_id {
            return Err(Error::UserMismatch);
        }
        let data_share = hex_field(&req.data_server_share, ELEMENT_LEN, "data_server_share")?;
        let key_share = hex_field(&req.key_server_share, ELEMENT_LEN, "key_server_share")?;
        let auth_public = hex_field(&req.auth_public, 32, "auth_public")?;
        let envelope = envelope_field(&req.envelope)?;
        let own = ServerShare::from_bytes(&row.share)
            .map_err(|_| Error::Internal("stored share is malformed".into()))?
            .public();
        let claimed = match self.role {
            Role::DataServer => &data_share,
            Role::KeyServer => &key_share,
        };
        if !bool::from(own.0.as_slice().ct_eq(claimed)) {
            return Err(Error::ShareMismatch);
        }
        let message = wire::enrol_message(
            &req.identity.challenge_id,
            &row.user_id,
            &data_share,
            &key_share,
            &auth_public,
            &envelope,
        );
        verify(&message, &req.signature, &auth_public, Error::BadSignature)?;
        if row.is_enrolled() {
            verify(
                &message,
                &req.previous_signature,
                &row.auth_public,
                Error::BadPreviousSignature,
            )?;
        }
        let mut next = row.next_without_failures();
        next.data_server_share = data_share;
        next.key_server_share = key_share;
        next.auth_public = auth_public;
        next.envelope = envelope;
        next.updated_at = 0;
        self.replace(&next, row.version).await?;
        tracing::info!(user_id = row.user_id, "recovery enrolment stored");
        Ok(())
    }

    /// A recovery proven successful: the failure count goes back to zero.
    pub async fn success(&self, req: wire::SuccessRequest) -> Result<()> {
        let row = self.identified_account(&req.identity).await?;
        if !row.is_enrolled() {
            return Err(Error::NotEnrolled);
        }
        verify(
            &wire::success_message(&req.identity.challenge_id, &row.user_id),
            &req.signature,
            &row.auth_public,
            Error::BadSignature,
        )?;
        let next = row.next_without_failures();
        self.replace(&next, row.version).await?;
        tracing::info!(user_id = row.user_id, "recovery succeeded");
        Ok(())
    }

    /// Replaces the sealed key ring (after a key change).
    pub async fn update(&self, req: wire::EnvelopeUpdate) -> Result<()> {
        let row = self.enrolled_account(&req.user_id).await?;
        let envelope = envelope_field(&req.envelope)?;
        verify(
            &wire::update_message(&row.user_id, req.timestamp, &envelope),
            &req.signature,
            &row.auth_public,
            Error::BadSignature,
        )?;
        if (req.timestamp - self.now()).abs() > UPDATE_SKEW_MS || req.timestamp <= row.updated_at {
            return Err(Error::StaleUpdate);
        }
        let mut next = row.next();
        next.envelope = envelope;
        next.updated_at = req.timestamp;
        self.replace(&next, row.version).await?;
        Ok(())
    }

    /// Applies this server's half of a share refresh. Idempotent: if the recorded pair
    /// is already the refreshed one, nothing changes. Returns the refreshed pair.
    pub async fn apply_refresh(&self, req: &wire::RefreshRequest) -> Result<PublicShares> {
        let row = self.enrolled_account(&req.user_id).await?;
        let delta = RefreshDelta::from_bytes(&hex_field(&req.delta, 32, "delta")?)
            .map_err(|_| Error::InvalidField("delta", "not a scalar".into()))?;
        let old = PublicShares {
            data_server: PublicShare(
                hex_field(&req.old_data_server_share, 32, "old_data_server_share")?
                    .try_into()
                    .map_err(|_| Error::Internal("length".into()))?,
            ),
            key_server: PublicShare(
                hex_field(&req.old_key_server_share, 32, "old_key_server_share")?
                    .try_into()
                    .map_err(|_| Error::Internal("length".into()))?,
            ),
        };
        let fresh = old
            .refreshed(&delta)
            .map_err(|_| Error::InvalidField("old shares", "not group elements".into()))?;
        let recorded = row.recorded_pair()?;
        if recorded == fresh {
            return Ok(fresh);
        }
        if recorded != old {
            return Err(Error::ShareMismatch);
        }
        let mut share = ServerShare::from_bytes(&row.share)
            .map_err(|_| Error::Internal("stored share is malformed".into()))?;
        match self.role {
            Role::DataServer => share.add_delta(&delta),
            Role::KeyServer => share.subtract_delta(&delta),
        }
        let mut next = row.next();
        next.share = share.expose_secret().to_vec();
        next.data_server_share = fresh.data_server.0.to_vec();
        next.key_server_share = fresh.key_server.0.to_vec();
        next.pending_delta = Vec::new();
        self.replace(&next, row.version).await?;
        tracing::info!(user_id = row.user_id, "key share refreshed");
        Ok(fresh)
    }
}

async fn h_start(State(s): State<Arc<Service>>, body: Bytes) -> Result<Json<wire::StartResponse>> {
    Ok(Json(s.start(json(&body)?).await?))
}

async fn h_evaluate(
    State(s): State<Arc<Service>>,
    body: Bytes,
) -> Result<Json<wire::EvaluateResponse>> {
    Ok(Json(s.evaluate(json(&body)?).await?))
}

async fn h_account(
    State(s): State<Arc<Service>>,
    body: Bytes,
) -> Result<Json<wire::AccountResponse>> {
    Ok(Json(s.account(json(&body)?).await?))
}

async fn h_enrol(State(s): State<Arc<Service>>, body: Bytes) -> Result<Response> {
    s.enrol(json(&body)?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn h_success(State(s): State<Arc<Service>>, body: Bytes) -> Result<Response> {
    s.success(json(&body)?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn h_update(State(s): State<Arc<Service>>, body: Bytes) -> Result<Response> {
    s.update(json(&body)?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The recovery routes over `service`.
pub fn router(service: Arc<Service>) -> Router {
    Router::new()
        .route("/api/v1/recovery/start", post(h_start))
        .route("/api/v1/recovery/evaluate", post(h_evaluate))
        .route("/api/v1/recovery/account", post(h_account))
        .route("/api/v1/recovery/enrol", post(h_enrol))
        .route("/api/v1/recovery/success", post(h_success))
        .route("/api/v1/recovery/update", post(h_update))
        .with_state(service)
}
