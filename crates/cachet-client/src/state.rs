//! The types every part of the client shares: the [`Client`] itself, its options, its
//! unlocked [`Session`], and the records of contacts and key changes. Each feature module
//! (`client`, `messaging`, `trust_log`, `attachments`, …) adds its own methods to `Client`
//! and depends on this module, not on the others.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use cachet_crypto::boxes::PrecomputedBox;
use cachet_crypto::{BoxPublicKey, SignPublicKey, SymmetricKey};
use cachet_proto::v1::ClientType;

use crate::api::{Api, RetryPolicy};
use crate::clock::{Clock, SystemClock};
use crate::local_files::LocalFiles;
use crate::lockout::{Lockout, UNLOCK_WINDOW};
use crate::session_keyring::{platform_keyring, SessionKeyring};
use crate::store::Store;
use crate::trust::{KeyTrust, SignedChangePolicy, TrustState};
use crate::vault::{Argon2idProtector, KeyRing, MasterKeyProtector, ProfileFile};

/// Pinned operators, for [`crate::ClientOptions::operators`]: `op:NAME` → key.
pub type OperatorPins = BTreeMap<String, SignPublicKey>;

/// How a [`Client`] is set up. `Default` gives the production settings.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Overrides the server URL recorded in the profile.
    pub server_url: Option<String>,
    /// The clock (injectable for tests).
    pub clock: Arc<dyn Clock>,
    /// How the master key is protected.
    pub protector: Arc<dyn MasterKeyProtector>,
    /// Who decides whether a verified contact stays verified across a key change.
    pub trust: Arc<dyn KeyTrust>,
    /// How long an unlock lasts after the last use (whitepaper 10.2: ten minutes).
    pub unlock_window: Duration,
    /// Where a remembered unlock keeps its wrapping key ([`Client::remember_unlock`]):
    /// the kernel keyring on Linux; with [`NoKeyring`](crate::session_keyring::NoKeyring)
    /// nothing is remembered.
    pub session_keyring: Arc<dyn SessionKeyring>,
    /// Refuse to share new keys with contacts never verified (not only with contacts whose
    /// verified keys changed).
    pub require_verified: bool,
    /// Certificate pinning: a PEM certificate (a certificate authority, or the server's
    /// own self-signed certificate) to trust instead of the system's roots. Given at
    /// registration, it is stored in the profile ([`crate::PINNED_CERTIFICATE_FILE`]) and used for
    /// every later request of that profile (messages, attachments, recovery at the key
    /// server); a profile's stored pin takes precedence over this option when opening.
    pub root_certificate_pem: Option<Vec<u8>>,
    /// How sends whose answer was lost, or refused for a passing reason, are retried.
    pub retry: RetryPolicy,
    /// The kind of client named in request signatures.
    pub client_type: ClientType,
    /// Chunk format of new attachments: version 2 (default) authenticates the end of the
    /// stream; version 1, the whitepaper's, only for peers that cannot read version 2.
    pub attachment_format: cachet_crypto::attachment::FormatVersion,
    /// Operators whose blocks in the trust log this client accepts (`op:NAME` → key,
    /// pinned by configuration). A block signed as any other operator is refused.
    pub operators: OperatorPins,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            server_url: None,
            clock: Arc::new(SystemClock),
            protector: Arc::new(Argon2idProtector::default()),
            trust: Arc::new(SignedChangePolicy),
            unlock_window: UNLOCK_WINDOW,
            session_keyring: platform_keyring(),
            require_verified: false,
            root_certificate_pem: None,
            retry: RetryPolicy::default(),
            client_type: ClientType::Desktop,
            attachment_format: cachet_crypto::attachment::FormatVersion::V2,
            operators: OperatorPins::new(),
        }
    }
}

/// A contact as stored locally.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Contact {
    /// The server's user id.
    pub user_id: String,
    /// The local name used to address them (`cachet send ALIAS ...`).
    pub alias: String,
    /// The name they registered with.
    pub display_name: String,
    /// The phone number or e-mail address they were found by, if any.
    pub identifier: String,
    /// Their current key version.
    pub key_version: u32,
    /// Their current Box Key.
    #[serde(serialize_with = "ser_box")]
    pub box_key: BoxPublicKey,
    /// Their current Sign Key.
    #[serde(serialize_with = "ser_sign")]
    pub sign_key: SignPublicKey,
    /// Whether an operator checked their profile (whitepaper 10.5).
    pub operator_verified: bool,
    /// Whether the user compared safety numbers with them.
    pub trust: TrustState,
}

fn ser_box<S: serde::Serializer>(k: &BoxPublicKey, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(k.as_bytes()))
}

fn ser_sign<S: serde::Serializer>(k: &SignPublicKey, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(k.as_bytes()))
}

/// What happened when a contact's keys changed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyChangeReport {
    /// The contact.
    pub user_id: String,
    /// Their local name.
    pub alias: String,
    /// The key version before.
    pub old_version: u32,
    /// The key version now.
    pub new_version: u32,
    /// Whether they were verified before the change.
    pub was_verified: bool,
    /// Whether they are verified after it.
    pub still_verified: bool,
    /// Why (policy verdict or the reason of the change).
    pub note: String,
}

impl KeyChangeReport {
    /// Whether this change must be shown as a loud warning: a verified contact lost their
    /// verification.
    pub fn is_alarm(&self) -> bool {
        self.was_verified && !self.still_verified
    }
}

/// A remembered unlock: the keyring entry holding the wrapping key, and the master key
/// sealed under it (as written to `session.json`).
#[derive(Debug, Clone)]
pub(crate) struct Remembered {
    pub(crate) description: String,
    pub(crate) sealed_master_key: String,
}

/// The unlocked state: keys, database, caches. Dropped on lock or after the window.
pub(crate) struct Session {
    pub(crate) ring: KeyRing,
    pub(crate) master: SymmetricKey,
    pub(crate) remembered: Mutex<Option<Remembered>>,
    pub(crate) store: Mutex<Store>,
    pub(crate) files: LocalFiles,
    pub(crate) boxes: Mutex<HashMap<(BoxPublicKey, BoxPublicKey), Arc<PrecomputedBox>>>,
    pub(crate) last_used_ms: AtomicI64,
}

impl Session {
    pub(crate) fn db(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One profile: a user's installation with its keys, local store and server.
///
/// A `Client` starts locked ([`Client::open`]); [`Client::unlock`] with the PIN or
/// passphrase opens the keys and the database for [`ClientOptions::unlock_window`] after
/// the last use.
#[derive(Debug)]
pub struct Client {
    pub(crate) dir: PathBuf,
    pub(crate) profile: ProfileFile,
    pub(crate) api: Api,
    pub(crate) options: ClientOptions,
    /// The pinned certificate every connection of this profile trusts, if any.
    pub(crate) pinned_certificate: Option<Vec<u8>>,
    pub(crate) lockout: Lockout,
    pub(crate) session: Mutex<Option<Arc<Session>>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}
