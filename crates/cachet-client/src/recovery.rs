//! Password recovery from the client's side: the virtual device of `docs/recovery.md`.
//!
//! [`RecoveryServers`] speaks to both parties (the data server and the key server) with
//! the messages of [`cachet_recovery::wire`]: it runs the two-server OPRF, checks both
//! DLEQ proofs against the public shares both servers recorded, and seals or opens the
//! key ring. [`Client::enable_recovery`], [`Client::recover`] and
//! [`Client::update_recovery`] tie it to a profile.

use std::path::Path;
use std::time::Duration;

use cachet_crypto::{sign, SignKeyPair, SymmetricKey};
use cachet_recovery::keyring::KeyGeneration;
use cachet_recovery::oprf::{self, Evaluation, PublicShare, PublicShares};
use cachet_recovery::wire::{self, Identity};
use cachet_recovery::{HardeningParams, KeyRing, RecoveryError, RecoveryKeys};
use reqwest::Url;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::client::{NewProfile, PendingRegistration};
use crate::error::{ClientError, Result};
use crate::secret::UnlockSecret;
use crate::state::{Client, ClientOptions};
use crate::vault::{InstallationKeys, KeyHistory};

const META_KEY_SERVER: &str = "recovery.key_server";
const META_WRAP: &str = "recovery.wrap_key";
const META_AUTH: &str = "recovery.auth_seed";
const META_BACKUP: &str = "recovery.backup_key";

#[derive(Debug, Clone)]
struct Endpoint {
    base: Url,
    http: reqwest::Client,
    /// Whether this is the key server (names it in "unreachable" errors).
    key_server: bool,
}

impl Endpoint {
    fn new(url: &str, key_server: bool, root_certificate_pem: Option<&[u8]>) -> Result<Self> {
        let base = crate::api::check_server_url(url)?;
        let http = crate::api::http_client(root_certificate_pem, Some(Duration::from_secs(60)))?;
        Ok(Self {
            base,
            http,
            key_server,
        })
    }

    fn unreachable(&self, e: &reqwest::Error) -> ClientError {
        match crate::api::transport_error(&self.base, e) {
            ClientError::Unreachable { url, detail } if self.key_server => {
                ClientError::KeyServerUnreachable { url, detail }
            }
            other => other,
        }
    }

    async fn post<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        route: &str,
        body: &Req,
    ) -> Result<Resp> {
        let bytes = self.post_raw(route, body).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Protocol(format!("recovery answer: {e}")))
    }

    /// Succeeds if the server answers at all (any HTTP status).
    async fn healthz(&self) -> Result<()> {
        let url = format!("{}/healthz", self.base.as_str().trim_end_matches('/'));
        self.http
            .get(url)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        Ok(())
    }

    async fn post_raw<Req: Serialize>(&self, route: &str, body: &Req) -> Result<bytes::Bytes> {
        let url = format!(
            "{}/api/v1/recovery/{route}",
            self.base.as_str().trim_end_matches('/')
        );
        let response = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(
                serde_json::to_vec(body)
                    .map_err(|e| ClientError::InvalidInput(format!("request: {e}")))?,
            )
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| self.unreachable(&e))?;
        if status.is_success() {
            return Ok(bytes);
        }
        Err(crate::api::server_error(status, &bytes))
    }
}

/// The identity checks in progress at both servers (one code each).
#[derive(Debug, Clone)]
pub struct StartedChecks {
    /// The data server's challenge (also valid for registering the new installation).
    pub data_challenge_id: String,
    /// The key server's challenge.
    pub key_challenge_id: String,
}

impl StartedChecks {
    /// Pairs the challenges with the codes received.
    pub fn with_codes(&self, data_code: &str, key_code: &str) -> Checks {
        Checks {
            data: Identity {
                challenge_id: self.data_challenge_id.clone(),
                code: data_code.trim().to_owned(),
            },
            key: Identity {
                challenge_id: self.key_challenge_id.clone(),
                code: key_code.trim().to_owned(),
            },
        }
    }
}

/// Answers to both identity checks.
#[derive(Debug, Clone)]
pub struct Checks {
    /// For the data server.
    pub data: Identity,
    /// For the key server.
    pub key: Identity,
}

/// Both recovery servers.
#[derive(Debug, Clone)]
pub struct RecoveryServers {
    data: Endpoint,
    key: Endpoint,
    data_server_url: String,
    key_server_url: String,
    /// Argon2id cost after the OPRF ([`HardeningParams::RECOMMENDED`] unless testing).
    pub params: HardeningParams,
}

fn unhex<const N: usize>(value: &str, what: &str) -> Result<[u8; N]> {
    hex::decode(value)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| ClientError::Protocol(format!("malformed {what} in a recovery answer")))
}

fn recorded_pair(a: &wire::AccountResponse) -> Result<PublicShares> {
    Ok(PublicShares {
        data_server: PublicShare(unhex(&a.data_server_share, "share")?),
        key_server: PublicShare(unhex(&a.key_server_share, "share")?),
    })
}

impl RecoveryServers {
    /// Both servers by URL (`https://`, or `http://` to a loopback address), trusting the
    /// system's certificate authorities.
    pub fn new(
        data_server_url: &str,
        key_server_url: &str,
        params: HardeningParams,
    ) -> Result<Self> {
        Self::pinned(data_server_url, key_server_url, params, None)
    }

    /// Both servers by URL, trusting only the PEM certificate given (certificate
    /// pinning, as for a profile) if any.
    pub fn pinned(
        data_server_url: &str,
        key_server_url: &str,
        params: HardeningParams,
        root_certificate_pem: Option<&[u8]>,
    ) -> Result<Self> {
        Ok(Self {
            data: Endpoint::new(data_server_url, false, root_certificate_pem)?,
            key: Endpoint::new(key_server_url, true, root_certificate_pem)?,
            data_server_url: data_server_url.to_owned(),
            key_server_url: key_server_url.to_owned(),
            params,
        })
    }

    /// Asks both servers to send a one-time code to `identifier`.
    ///
    /// The key server is asked first, and the data server only once the key server has
    /// sent its code: an unreachable (or refusing) key server costs no data-server code.
    /// Each server allows only a few unexpired codes per identifier, and a data-server
    /// code spent on a recovery that could not go on would lock the user out of the
    /// next attempts for the codes' lifetime. The data server is checked for an answer
    /// (`/healthz`) before the key server sends its code, for the same reason.
    pub async fn start(&self, identifier: &str) -> Result<StartedChecks> {
        let req = wire::StartRequest {
            identifier: identifier.to_owned(),
        };
        self.data.healthz().await?;
        let k = self
            .key
            .post::<_, wire::StartResponse>("start", &req)
            .await?;
        let d = self
            .data
            .post::<_, wire::StartResponse>("start", &req)
            .await?;
        Ok(StartedChecks {
            data_challenge_id: d.challenge_id,
            key_challenge_id: k.challenge_id,
        })
    }

    /// One OPRF run with both servers. Returns the shares the servers used (each proven
    /// by its DLEQ proof) and the derived keys. With `expected`, the servers' current
    /// shares must be the recorded pair both servers agree on.
    async fn run_oprf(
        &self,
        checks: &Checks,
        user_id: &str,
        password: &str,
        expected: Option<&PublicShares>,
    ) -> Result<(PublicShares, RecoveryKeys)> {
        let (state, blinded) = oprf::blind(user_id, password.as_bytes());
        let request = |identity: &Identity| wire::EvaluateRequest {
            identity: identity.clone(),
            user_id: user_id.to_owned(),
            blinded: hex::encode(blinded),
        };
        let (data_request, key_request) = (request(&checks.data), request(&checks.key));
        let (d, k) = tokio::join!(
            self.data
                .post::<_, wire::EvaluateResponse>("evaluate", &data_request),
            self.key
                .post::<_, wire::EvaluateResponse>("evaluate", &key_request)
        );
        let (d, k) = (d?, k?);
        let eval = |e: &wire::EvaluateResponse| -> Result<Evaluation> {
            Ok(Evaluation {
                element: unhex(&e.element, "element")?,
                proof: unhex(&e.proof, "proof")?,
            })
        };
        let current = PublicShares {
            data_server: PublicShare(unhex(&d.public_share, "share")?),
            key_server: PublicShare(unhex(&k.public_share, "share")?),
        };
        let shares = match expected {
            Some(recorded) => PublicShares::agree(recorded, &current)?,
            None => current,
        };
        let output = oprf::finalize(state, &shares, &eval(&d)?, &eval(&k)?)?;
        let keys = RecoveryKeys::derive(&output, user_id, self.params)?;
        Ok((shares, keys))
    }

    #[allow(clippy::too_many_arguments)]
    async fn enrol_at(
        &self,
        endpoint: &Endpoint,
        identity: &Identity,
        user_id: &str,
        shares: &PublicShares,
        keys: &RecoveryKeys,
        envelope: &[u8],
        previous: Option<&SignKeyPair>,
    ) -> Result<()> {
        let message = wire::enrol_message(
            &identity.challenge_id,
            user_id,
            &shares.data_server.0,
            &shares.key_server.0,
            keys.auth_key.public().as_bytes(),
            envelope,
        );
        let req = wire::EnrolRequest {
            identity: identity.clone(),
            user_id: user_id.to_owned(),
            data_server_share: hex::encode(shares.data_server.0),
            key_server_share: hex::encode(shares.key_server.0),
            auth_public: hex::encode(keys.auth_key.public().as_bytes()),
            envelope: hex::encode(envelope),
            signature: hex::encode(sign::sign_detached(&message, &keys.auth_key)),
            previous_signature: previous
                .map(|k| hex::encode(sign::sign_detached(&message, k)))
                .unwrap_or_default(),
        };
        endpoint.post_raw("enrol", &req).await?;
        Ok(())
    }

    /// Enrols (or, with the current auth key as `previous`, re-enrols under a new
    /// password) the key ring at both servers. Returns the derived keys.
    pub async fn enrol(
        &self,
        checks: &Checks,
        ring: &KeyRing,
        password: &str,
        previous: Option<&SignKeyPair>,
    ) -> Result<RecoveryKeys> {
        let (shares, keys) = self.run_oprf(checks, &ring.user_id, password, None).await?;
        let envelope = ring.seal(&keys.wrap_key);
        let (d, k) = tokio::join!(
            self.enrol_at(
                &self.data,
                &checks.data,
                &ring.user_id,
                &shares,
                &keys,
                &envelope,
                previous
            ),
            self.enrol_at(
                &self.key,
                &checks.key,
                &ring.user_id,
                &shares,
                &keys,
                &envelope,
                previous
            )
        );
        d?;
        k?;
        Ok(keys)
    }

    /// Recovers the key ring: both identity checks, both recorded enrolments (which must
    /// agree), the OPRF with both proofs checked, the envelope opened, and the success
    /// proven to both servers (so this run does not count against the rate limit).
    pub async fn recover(
        &self,
        checks: &Checks,
        password: &str,
    ) -> Result<(KeyRing, RecoveryKeys)> {
        let (d, k) = tokio::join!(
            self.data
                .post::<_, wire::AccountResponse>("account", &checks.data),
            self.key
                .post::<_, wire::AccountResponse>("account", &checks.key)
        );
        let (d, k) = (d?, k?);
        if d.user_id != k.user_id {
            return Err(RecoveryError::InconsistentPublicShares.into());
        }
        let recorded = PublicShares::agree(&recorded_pair(&d)?, &recorded_pair(&k)?)?;
        let (_, keys) = self
            .run_oprf(checks, &d.user_id, password, Some(&recorded))
            .await?;
        // Either copy will do; a server that lost or damaged its copy is no obstacle.
        let mut ring = Err(RecoveryError::WrongPasswordOrDamaged);
        for copy in [&d.envelope, &k.envelope] {
            if let Ok(sealed) = hex::decode(copy) {
                ring = KeyRing::open(&sealed, &keys.wrap_key, &d.user_id);
                if ring.is_ok() {
                    break;
                }
            }
        }
        let ring = ring?;
        for (endpoint, identity) in [(&self.data, &checks.data), (&self.key, &checks.key)] {
            let signature = sign::sign_detached(
                &wire::success_message(&identity.challenge_id, &d.user_id),
                &keys.auth_key,
            );
            endpoint
                .post_raw(
                    "success",
                    &wire::SuccessRequest {
                        identity: identity.clone(),
                        signature: hex::encode(signature),
                    },
                )
                .await?;
        }
        Ok((ring, keys))
    }

    /// Replaces the sealed key ring at both servers (after a key change), signed with the
    /// auth key.
    pub async fn update(
        &self,
        ring: &KeyRing,
        wrap_key: &SymmetricKey,
        auth_key: &SignKeyPair,
        now_ms: i64,
    ) -> Result<()> {
        let envelope = ring.seal(wrap_key);
        let signature = sign::sign_detached(
            &wire::update_message(&ring.user_id, now_ms, &envelope),
            auth_key,
        );
        let req = wire::EnvelopeUpdate {
            user_id: ring.user_id.clone(),
            envelope: hex::encode(&envelope),
            timestamp: now_ms,
            signature: hex::encode(signature),
        };
        let (d, k) = tokio::join!(
            self.data.post_raw("update", &req),
            self.key.post_raw("update", &req)
        );
        d?;
        k?;
        Ok(())
    }
}

/// What a recovered installation got back.
#[derive(Debug)]
pub struct Recovered {
    /// The new installation, registered and unlocked; its keys were announced signed by
    /// the recovered previous Sign Key.
    pub client: Client,
    /// Key generations recovered (the new one not included).
    pub recovered_generations: usize,
}

fn ring_of(user_id: &str, installations: &[InstallationKeys], backup_key: SymmetricKey) -> KeyRing {
    KeyRing {
        user_id: user_id.to_owned(),
        generations: installations
            .iter()
            .map(|i| KeyGeneration {
                key_version: i.key_version,
                box_keys: i.box_keys.clone(),
                sign_keys: i.sign_keys.clone(),
            })
            .collect(),
        backup_key,
    }
}

fn hex_key(value: Option<String>, what: &str) -> Result<[u8; 32]> {
    value
        .and_then(|v| hex::decode(v).ok())
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| ClientError::CorruptProfile(format!("recovery {what} missing or damaged")))
}

impl Client {
    /// The key of the encrypted message backup: kept in the local database, created on
    /// first use, and part of the recovery key ring.
    pub(crate) fn backup_key(&self) -> Result<SymmetricKey> {
        let s = self.session()?;
        let db = s.db();
        if let Some(v) = db.meta(META_BACKUP)? {
            return Ok(SymmetricKey::from_bytes(hex_key(Some(v), "backup key")?));
        }
        let key = SymmetricKey::generate();
        db.set_meta(META_BACKUP, &hex::encode(key.expose_secret()))?;
        Ok(key)
    }

    /// Whether recovery is enabled on this installation.
    pub fn recovery_enabled(&self) -> Result<bool> {
        Ok(self.session()?.db().meta(META_AUTH)?.is_some())
    }

    fn recovery_ring(&self) -> Result<KeyRing> {
        let backup = self.backup_key()?;
        let s = self.session()?;
        Ok(ring_of(
            &self.profile.user_id,
            &s.ring.installations,
            backup,
        ))
    }

    fn save_recovery_keys(&self, key_server_url: &str, keys: &RecoveryKeys) -> Result<()> {
        let s = self.session()?;
        let db = s.db();
        db.set_meta(META_KEY_SERVER, key_server_url)?;
        db.set_meta(META_WRAP, &hex::encode(keys.wrap_key.expose_secret()))?;
        db.set_meta(META_AUTH, &hex::encode(keys.auth_key.expose_seed()))?;
        Ok(())
    }

    /// Enables password recovery: seals every key this account has had, and the backup
    /// key, under a key only both servers together can help derive from `password`, and
    /// stores it at both. Run again to change the password (the current recovery keys,
    /// kept on this device, authorise the replacement). `checks` are the answers to both
    /// servers' codes ([`RecoveryServers::start`]).
    pub async fn enable_recovery(
        &self,
        key_server_url: &str,
        checks: &Checks,
        password: &str,
        params: HardeningParams,
    ) -> Result<()> {
        if password.chars().count() < 8 {
            return Err(ClientError::InvalidInput(
                "the recovery password needs at least 8 characters".into(),
            ));
        }
        let servers = RecoveryServers::pinned(
            self.server_url(),
            key_server_url,
            params,
            self.pinned_certificate.as_deref(),
        )?;
        let ring = self.recovery_ring()?;
        let previous = {
            let s = self.session()?;
            let seed = s.db().meta(META_AUTH)?;
            match seed {
                Some(v) => Some(SignKeyPair::from_seed(hex_key(Some(v), "auth key")?)),
                None => None,
            }
        };
        let keys = servers
            .enrol(checks, &ring, password, previous.as_ref())
            .await?;
        self.save_recovery_keys(key_server_url, &keys)
    }

    /// Re-seals the key ring at both servers after a key change. Returns false when
    /// recovery is not enabled.
    pub async fn update_recovery(&self) -> Result<bool> {
        let (url, wrap, auth) = {
            let s = self.session()?;
            let db = s.db();
            let Some(url) = db.meta(META_KEY_SERVER)? else {
                return Ok(false);
            };
            (
                url,
                SymmetricKey::from_bytes(hex_key(db.meta(META_WRAP)?, "wrapping key")?),
                SignKeyPair::from_seed(hex_key(db.meta(META_AUTH)?, "auth key")?),
            )
        };
        let servers = RecoveryServers::pinned(
            self.server_url(),
            &url,
            HardeningParams::RECOMMENDED,
            self.pinned_certificate.as_deref(),
        )?;
        let ring = self.recovery_ring()?;
        servers.update(&ring, &wrap, &auth, self.now_ms()).await?;
        Ok(true)
    }

    /// A new installation from the password: passes both identity checks, opens the key
    /// ring, registers the installation in `dir` with the data server's code (the new
    /// keys signed by the recovered Sign Key, so contacts see an authorised change),
    /// keeps the old keys to read what was sent to them, and re-seals the ring with the
    /// new generation at both servers.
    #[allow(clippy::too_many_arguments)]
    pub async fn recover(
        dir: &Path,
        servers: &RecoveryServers,
        identifier: &str,
        checks: &Checks,
        password: &str,
        display_name: &str,
        secret: &UnlockSecret,
        options: ClientOptions,
    ) -> Result<Recovered> {
        let (ring, keys) = servers.recover(checks, password).await?;
        let recovered_generations = ring.generations.len();
        let history = KeyHistory {
            user_id: ring.user_id.clone(),
            installations: ring
                .generations
                .iter()
                .map(|g| InstallationKeys {
                    key_version: g.key_version,
                    box_keys: g.box_keys.clone(),
                    sign_keys: g.sign_keys.clone(),
                })
                .collect(),
        };
        let pending = PendingRegistration::resume(
            &servers.data_server_url,
            identifier,
            &checks.data.challenge_id,
            options,
        )?;
        let client = pending
            .finish(NewProfile {
                dir,
                code: &checks.data.code,
                display_name,
                secret,
                previous: Some(history),
            })
            .await?;
        {
            let s = client.session()?;
            s.db()
                .set_meta(META_BACKUP, &hex::encode(ring.backup_key.expose_secret()))?;
        }
        client.save_recovery_keys(&servers.key_server_url, &keys)?;
        client.update_recovery().await?;
        Ok(Recovered {
            client,
            recovered_generations,
        })
    }

    /// Uploads an encrypted backup of the local message history to the data server,
    /// sealed (secretbox) under the backup key that the recovery key ring carries, so a
    /// recovered installation gets its history back. Returns the number of messages.
    #[allow(clippy::let_and_return)] // the statement must end before the database guard
    pub async fn backup_messages(&self) -> Result<usize> {
        let key = self.backup_key()?;
        let (sealed, n, signer) = {
            let s = self.session()?;
            let rows = {
                let db = s.db();
                let mut stmt = db.conn.prepare(
                    "SELECT conversation, message_id, sender_id, outgoing, kind, body, \
                     attachment_id, timestamp, received_at, read_at FROM messages ORDER BY local_id",
                )?;
                let rows = stmt
                    .query_map([], |r| {
                        Ok(BackupRow {
                            conversation: r.get(0)?,
                            message_id: r.get(1)?,
                            sender_id: r.get(2)?,
                            outgoing: r.get(3)?,
                            kind: r.get(4)?,
                            body: r.get(5)?,
                            attachment_id: r.get(6)?,
                            timestamp: r.get(7)?,
                            received_at: r.get(8)?,
                            read_at: r.get(9)?,
                        })
                    })?
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                rows
            };
            let plain = zeroize::Zeroizing::new(
                serde_json::to_vec(&Backup {
                    version: 1,
                    user_id: self.profile.user_id.clone(),
                    messages: rows.clone(),
                })
                .map_err(|e| ClientError::Protocol(e.to_string()))?,
            );
            (
                cachet_crypto::secretbox::seal_prefixed(&plain, &key),
                rows.len(),
                self.signer(&s),
            )
        };
        self.api.put_backup(&signer, sealed).await?;
        Ok(n)
    }

    /// Downloads the encrypted backup, opens it with the backup key and adds the
    /// messages missing locally. Returns how many were added.
    pub async fn restore_messages(&self) -> Result<usize> {
        let key = self.backup_key()?;
        let signer = self.signer(&*self.session()?);
        let sealed = self.api.get_backup(&signer).await?;
        let plain = zeroize::Zeroizing::new(
            cachet_crypto::secretbox::open_prefixed(&sealed, &key)
                .map_err(|_| ClientError::Decrypt)?,
        );
        let backup: Backup = serde_json::from_slice(&plain)
            .map_err(|e| ClientError::Integrity(format!("backup: {e}")))?;
        if backup.version != 1 || backup.user_id != self.profile.user_id {
            return Err(ClientError::Integrity("a backup of another account".into()));
        }
        let s = self.session()?;
        let db = s.db();
        let mut added = 0;
        for m in &backup.messages {
            added += db.conn.execute(
                "INSERT OR IGNORE INTO messages (conversation, message_id, sender_id, outgoing, \
                 kind, body, attachment_id, timestamp, received_at, read_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                rusqlite::params![
                    m.conversation,
                    m.message_id,
                    m.sender_id,
                    m.outgoing,
                    m.kind,
                    m.body,
                    m.attachment_id,
                    m.timestamp,
                    m.received_at,
                    m.read_at
                ],
            )?;
        }
        Ok(added)
    }
}

/// The plaintext of a message backup.
#[derive(serde::Serialize, serde::Deserialize)]
struct Backup {
    version: u32,
    user_id: String,
    messages: Vec<BackupRow>,
}

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct BackupRow {
    conversation: String,
    message_id: String,
    sender_id: String,
    outgoing: bool,
    kind: String,
    body: String,
    attachment_id: Option<String>,
    timestamp: i64,
    received_at: i64,
    read_at: Option<i64>,
}
