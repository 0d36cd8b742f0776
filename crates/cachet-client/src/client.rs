//! The [`Client`]: one profile (one installation of one user), its lock, its keys, its
//! local store and its server.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use cachet_crypto::boxes::PrecomputedBox;
use cachet_crypto::fingerprint::{self, Identity};
use cachet_crypto::{sign, BoxPublicKey, SignPublicKey, SymmetricKey};
use cachet_proto::auth::Caller;
use cachet_proto::v1::{self, KeyChange, KeyRecord};
use cachet_proto::Message;
use rusqlite::{params, OptionalExtension};
use zeroize::Zeroizing;

use crate::api::{Api, Signer};
use crate::error::{ClientError, Result};
use crate::local_files::LocalFiles;
use crate::lockout::Lockout;
use crate::secret::{SecretKind, UnlockSecret};
use crate::state::{Client, ClientOptions, Contact, KeyChangeReport, Remembered, Session};
use crate::store::Store;
use crate::trust::{KeyChangeEvidence, TrustDecision, TrustState};
use crate::vault::{
    create_private_dir, restrict_profile, write_atomic, InstallationKeys, KeyHistory, KeyRing,
    ProfileFile,
};

/// Build number sent in request signatures.
pub const BUILD_NUMBER: u32 = 1;

const SESSION_FILE: &str = "session.json";
/// The format of `session.json` written by this version: the master key sealed under a
/// wrapping key kept in a [`SessionKeyring`](crate::session_keyring::SessionKeyring). (Earlier versions wrote the master key itself
/// there, without a format number; such a file is wiped and removed when seen.)
const SESSION_FORMAT: u32 = 2;
/// Prefix of the descriptions of this client's keyring entries.
const SESSION_KEY_PREFIX: &str = "cachet:unlock:";

/// The file of a profile that holds its pinned server certificate (PEM), written at
/// registration when one is given.
pub const PINNED_CERTIFICATE_FILE: &str = "server-ca.pem";

/// The safety number of the user and a contact, to compare face to face.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SafetyNumber {
    /// 60 digits in groups of five, the same on both sides.
    pub digits: String,
    /// The bytes to show as a QR code (version byte and both full fingerprints).
    #[serde(serialize_with = "ser_bytes_hex")]
    pub qr_payload: Vec<u8>,
}

fn ser_bytes_hex<S: serde::Serializer>(k: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(k))
}

/// `session.json`.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionFile {
    format: u32,
    /// Description of the keyring entry holding the wrapping key.
    keyring: String,
    expires_at_ms: i64,
    /// The master key, `seal_prefixed` under the wrapping key, base64.
    sealed_master_key: String,
}

/// The key that seals the master key in `session.json`: SHA-256 over a label, the random
/// secret kept in the keyring, and the entry's description (which binds the profile).
fn session_wrap_key(keyring_secret: &SymmetricKey, description: &str) -> SymmetricKey {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(b"cachet session wrap v1\0");
    h.update(keyring_secret.expose_secret());
    h.update(description.as_bytes());
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&h.finalize());
    SymmetricKey::from_bytes(*out)
}

/// A registration waiting for its one-time code.
#[derive(Debug)]
pub struct PendingRegistration {
    api: Api,
    options: ClientOptions,
    server_url: String,
    identifier: String,
    challenge_id: String,
}

/// What a new profile is created with.
#[derive(Debug)]
pub struct NewProfile<'a> {
    /// Directory of the new profile (must not hold one).
    pub dir: &'a Path,
    /// The one-time code received for the identifier.
    pub code: &'a str,
    /// Name shown to contacts.
    pub display_name: &'a str,
    /// PIN or passphrase protecting the keys.
    pub secret: &'a UnlockSecret,
    /// Keys of earlier installations of the same account, to keep reading what was sent
    /// to them and to sign the new keys with the previous Sign Key. `None` for a first
    /// registration or when the old keys are lost.
    pub previous: Option<KeyHistory>,
}

impl PendingRegistration {
    /// Continues a registration whose code was requested elsewhere: the data server's
    /// recovery check sends a registration code, so a recovery registers the new
    /// installation with it.
    pub fn resume(
        server_url: &str,
        identifier: &str,
        challenge_id: &str,
        options: ClientOptions,
    ) -> Result<Self> {
        let api = Api::for_options(server_url, &options)?;
        Ok(Self {
            api,
            options,
            server_url: server_url.to_owned(),
            identifier: identifier.to_owned(),
            challenge_id: challenge_id.to_owned(),
        })
    }

    /// The identifier being registered.
    pub fn identifier(&self) -> &str {
        &self.identifier
    }

    /// The server's id of the pending challenge.
    pub fn challenge_id(&self) -> &str {
        &self.challenge_id
    }

    /// Sends the code and the new installation's public keys, and creates the profile.
    /// The returned client is unlocked.
    pub async fn finish(self, new: NewProfile<'_>) -> Result<Client> {
        let secret_kind = new.secret.check_new()?;
        if new.dir.join(crate::vault::PROFILE_FILE).exists() {
            return Err(ClientError::ProfileExists(new.dir.to_path_buf()));
        }
        let display_name = new.display_name.trim();
        if display_name.is_empty() || display_name.len() > 100 {
            return Err(ClientError::InvalidInput(
                "the display name must have 1 to 100 characters".into(),
            ));
        }
        let keys = InstallationKeys::generate(0);
        let box_pk = keys.box_keys.public.as_bytes().to_vec();
        let sign_pk = keys.sign_keys.public().as_bytes().to_vec();
        let proof = KeyChange {
            user_id: self.challenge_id.clone(),
            key_version: 0,
            box_key: box_pk.clone(),
            sign_key: sign_pk.clone(),
            previous_sign_key: vec![],
        };
        let self_signature = sign::sign_detached(&proof.encode_to_vec(), &keys.sign_keys).to_vec();
        let previous_key_signature = match &new.previous {
            Some(history) => {
                let last = history.installations.last().ok_or_else(|| {
                    ClientError::InvalidInput("the previous key history is empty".into())
                })?;
                let change = KeyChange {
                    user_id: history.user_id.clone(),
                    key_version: last.key_version + 1,
                    box_key: box_pk.clone(),
                    sign_key: sign_pk.clone(),
                    previous_sign_key: last.sign_keys.public().as_bytes().to_vec(),
                };
                sign::sign_detached(&change.encode_to_vec(), &last.sign_keys).to_vec()
            }
            None => vec![],
        };
        let response = self
            .api
            .register_finish(&v1::RegisterFinish {
                challenge_id: self.challenge_id.clone(),
                code: new.code.trim().to_owned(),
                box_key: box_pk,
                sign_key: sign_pk,
                display_name: display_name.to_owned(),
                self_signature,
                previous_key_signature,
            })
            .await?;
        cachet_proto::decode::validate_id(&response.user_id, "user_id")?;
        let mut installations = Vec::new();
        if let Some(history) = new.previous {
            if history.user_id != response.user_id {
                return Err(ClientError::Protocol(format!(
                    "the server registered account {} but the previous keys belong to {}",
                    response.user_id, history.user_id
                )));
            }
            installations.extend(
                history
                    .installations
                    .into_iter()
                    .filter(|i| i.key_version < response.key_version),
            );
        }
        installations.push(InstallationKeys {
            key_version: response.key_version,
            ..keys
        });
        let ring = KeyRing {
            installations,
            database: SymmetricKey::generate(),
            local_file: SymmetricKey::generate(),
        };
        let master = SymmetricKey::generate();
        let wrapped = self.options.protector.wrap(&master, new.secret)?;
        let now = self.options.clock.now_ms();
        let profile = ProfileFile::new(
            &response.user_id,
            &self.identifier,
            display_name,
            &self.server_url,
            secret_kind,
            self.options.protector.as_ref(),
            &wrapped,
            &master,
            &ring,
            now,
        );
        create_private_dir(new.dir)?;
        profile.save(new.dir)?;
        // The certificate this registration trusted is pinned for the profile's life.
        if let Some(pem) = &self.options.root_certificate_pem {
            write_atomic(&new.dir.join(PINNED_CERTIFICATE_FILE), pem)?;
        }
        let client = Client {
            dir: new.dir.to_path_buf(),
            profile,
            pinned_certificate: self.options.root_certificate_pem.clone(),
            api: self.api,
            lockout: Lockout::new(new.dir),
            options: self.options,
            session: Mutex::new(None),
        };
        client.start_session(master, None)?;
        // No key without its block: contacts refuse keys the trust log does not hold.
        client.publish_keys().await?;
        Ok(client)
    }
}

impl Client {
    /// Asks the server to send a one-time code to `identifier` (a phone number or e-mail
    /// address), the first step of registering a new installation.
    pub async fn start_registration(
        server_url: &str,
        identifier: &str,
        options: ClientOptions,
    ) -> Result<PendingRegistration> {
        let api = Api::for_options(server_url, &options)?;
        let response = api.register_start(identifier).await?;
        Ok(PendingRegistration {
            api,
            options,
            server_url: server_url.to_owned(),
            identifier: identifier.to_owned(),
            challenge_id: response.challenge_id,
        })
    }

    /// Opens the profile in `dir`, locked.
    pub fn open(dir: &Path, options: ClientOptions) -> Result<Self> {
        let profile = ProfileFile::load(dir)?;
        if profile.protector != options.protector.kind() {
            return Err(ClientError::CorruptProfile(format!(
                "the master key is protected by {:?}, which this build cannot use",
                profile.protector
            )));
        }
        let server_url = options
            .server_url
            .clone()
            .unwrap_or_else(|| profile.server_url.clone());
        let pin_path = dir.join(PINNED_CERTIFICATE_FILE);
        let pinned_certificate = match std::fs::read(&pin_path) {
            Ok(pem) => Some(pem),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                options.root_certificate_pem.clone()
            }
            Err(e) => return Err(ClientError::io(pin_path, e)),
        };
        let api = Api::configured(&server_url, &options, pinned_certificate.as_deref())?;
        // A profile written by an earlier version may have files others can read.
        restrict_profile(dir);
        Ok(Self {
            dir: dir.to_path_buf(),
            profile,
            pinned_certificate,
            api,
            lockout: Lockout::new(dir),
            options,
            session: Mutex::new(None),
        })
    }

    /// Whether `dir` holds a profile.
    pub fn exists(dir: &Path) -> bool {
        dir.join(crate::vault::PROFILE_FILE).exists()
    }

    // ---- Lock ----

    /// Unlocks with the PIN or passphrase. Every attempt counts towards a lock-out that
    /// survives restarts, and is counted (on disk, under a lock shared with other
    /// processes) before the secret is tried; a success clears the count. While a
    /// lock-out runs, this fails with [`ClientError::LockedOut`] without trying the
    /// secret.
    pub fn unlock(&self, secret: &UnlockSecret) -> Result<()> {
        let now = self.options.clock.now_ms();
        let wrapped = self.profile.wrapped_master()?;
        let attempt = self.lockout.begin_attempt(now)?;
        match self.options.protector.unwrap(&wrapped, secret)? {
            Some(master) => {
                drop(attempt);
                self.lockout.record_success()?;
                self.start_session(master, None)
            }
            None => Err(attempt.wrong()),
        }
    }

    /// Locks: forgets the keys, and ends a remembered unlock — its wrapping key is removed
    /// from the keyring (so a copy of `session.json` opens nothing any more) and
    /// `session.json` is deleted.
    pub fn lock(&self) -> Result<()> {
        let session = self
            .session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        self.forget_remembered(session.as_deref())
    }

    /// Whether the keys are open (and the unlock window has not run out).
    pub fn is_unlocked(&self) -> bool {
        self.session().is_ok()
    }

    /// Attempts counted since the last successful unlock: wrong secrets, and attempts
    /// refused during a lock-out.
    pub fn failed_unlocks(&self) -> u32 {
        self.lockout.failures()
    }

    /// The start of the descriptions of this profile's keyring entries: a hash of the
    /// profile's absolute directory and user id, so that a copy of the profile elsewhere
    /// (or another profile) never uses them.
    fn session_key_binding(&self) -> String {
        use sha2::Digest;
        let dir = std::fs::canonicalize(&self.dir).unwrap_or_else(|_| self.dir.clone());
        let mut h = sha2::Sha256::new();
        h.update(b"cachet session binding v1\0");
        h.update(dir.to_string_lossy().as_bytes());
        h.update(b"\0");
        h.update(self.profile.user_id.as_bytes());
        format!("{SESSION_KEY_PREFIX}{}:", hex::encode(&h.finalize()[..16]))
    }

    /// Remembers the unlock for [`ClientOptions::unlock_window`], so that the next process
    /// can [`resume`](Self::resume) without the PIN; called again, it pushes the expiry
    /// forward. `cachet lock` ends it.
    ///
    /// No usable key is written to disk: a random wrapping key goes to the
    /// [`SessionKeyring`](crate::session_keyring::SessionKeyring) (the kernel keyring, which forgets it by itself when the window
    /// runs out), and `session.json` (mode 0600) holds only the master key sealed under
    /// it and the keyring entry's description. A copy of the profile directory therefore
    /// opens nothing. Fails with [`ClientError::NoKeyring`] where no keyring is available:
    /// then nothing is remembered and each process needs the secret.
    pub fn remember_unlock(&self) -> Result<()> {
        let session = self.session()?;
        let window = self.options.unlock_window;
        let expires = self.options.clock.now_ms() + crate::clock::ms(window);
        let keyring = &self.options.session_keyring;
        let mut remembered = session.remembered.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = remembered.as_ref() {
            if keyring.extend(&r.description, window) {
                return self.write_session_file(r, expires);
            }
        }
        let secret = SymmetricKey::generate();
        let tag: [u8; 8] = cachet_crypto::random_bytes();
        let description = format!("{}{}", self.session_key_binding(), hex::encode(tag));
        if let Err(e) = keyring.store(&description, &secret, window) {
            // Whatever was remembered before is not to be resumed either.
            if let Some(old) = remembered.take() {
                let _ = keyring.forget(&old.description);
            }
            let _ = self.remove_session_file();
            return Err(e);
        }
        let sealed = cachet_crypto::secretbox::seal_prefixed(
            session.master.expose_secret(),
            &session_wrap_key(&secret, &description),
        );
        let r = Remembered {
            description,
            sealed_master_key: base64::engine::general_purpose::STANDARD.encode(sealed),
        };
        // An unlock remembered earlier (by this process or another) is replaced.
        let previous = self.read_session_file().ok().flatten();
        if let Err(e) = self.write_session_file(&r, expires) {
            let _ = keyring.forget(&r.description);
            return Err(e);
        }
        if let Some(old) = remembered.replace(r) {
            let _ = keyring.forget(&old.description);
        }
        if let Some(old) = previous {
            let _ = keyring.forget(&old.keyring);
        }
        Ok(())
    }

    fn write_session_file(&self, r: &Remembered, expires_at_ms: i64) -> Result<()> {
        let body = serde_json::to_vec(&SessionFile {
            format: SESSION_FORMAT,
            keyring: r.description.clone(),
            expires_at_ms,
            sealed_master_key: r.sealed_master_key.clone(),
        })
        .map_err(|e| ClientError::CorruptProfile(e.to_string()))?;
        write_atomic(&self.dir.join(SESSION_FILE), &body)
    }

    /// Reads `session.json`: `Ok(None)` if there is none, `Err(())` if it is not one this
    /// version wrote for this profile.
    fn read_session_file(&self) -> std::result::Result<Option<SessionFile>, ()> {
        let bytes = match std::fs::read(self.dir.join(SESSION_FILE)) {
            Ok(b) => Zeroizing::new(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(_) => return Err(()),
        };
        match serde_json::from_slice::<SessionFile>(&bytes) {
            Ok(f)
                if f.format == SESSION_FORMAT
                    && f.keyring.starts_with(&self.session_key_binding()) =>
            {
                Ok(Some(f))
            }
            _ => Err(()),
        }
    }

    /// Deletes `session.json`, first overwriting it: a file of an earlier version held the
    /// master key itself.
    fn remove_session_file(&self) -> Result<()> {
        let path = self.dir.join(SESSION_FILE);
        let len = match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => m.len(),
            Ok(_) => 0,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(ClientError::io(path, e)),
        };
        if len > 0 {
            if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&path) {
                use std::io::Write;
                let zeros = vec![0u8; usize::try_from(len).unwrap_or(0).min(1 << 16)];
                let _ = f.write_all(&zeros).and_then(|()| f.sync_all());
            }
        }
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ClientError::io(path, e)),
        }
    }

    /// Ends a remembered unlock: forgets the keyring entries of `session` and of
    /// `session.json`, and deletes the file.
    fn forget_remembered(&self, session: Option<&Session>) -> Result<()> {
        let keyring = &self.options.session_keyring;
        let mut result = Ok(());
        if let Some(r) = session.and_then(|s| {
            s.remembered
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
        }) {
            result = keyring.forget(&r.description);
        }
        if let Ok(Some(file)) = self.read_session_file() {
            result = result.and(keyring.forget(&file.keyring));
        }
        let removed = self.remove_session_file();
        result.and(removed)
    }

    /// Unlocks from a remembered unlock if it has not expired. Returns whether it did.
    ///
    /// It does only if `session.json` was written by this version for this profile in
    /// this place, has not expired, and its wrapping key is still in the keyring. Anything
    /// else — a file of an earlier version (which held the master key in clear), a copy
    /// of the profile, a key the kernel forgot or `lock` removed — is deleted and
    /// `Ok(false)` returned.
    pub fn resume(&self) -> Result<bool> {
        if self.is_unlocked() {
            return Ok(true);
        }
        let file = match self.read_session_file() {
            Ok(Some(file)) => file,
            Ok(None) => return Ok(false),
            Err(()) => {
                self.remove_session_file()?;
                return Ok(false);
            }
        };
        let keyring = &self.options.session_keyring;
        let master = (file.expires_at_ms > self.options.clock.now_ms())
            .then(|| keyring.load(&file.keyring))
            .flatten()
            .and_then(|secret| {
                let sealed = base64::engine::general_purpose::STANDARD
                    .decode(&file.sealed_master_key)
                    .ok()?;
                let wrap = session_wrap_key(&secret, &file.keyring);
                let raw =
                    Zeroizing::new(cachet_crypto::secretbox::open_prefixed(&sealed, &wrap).ok()?);
                SymmetricKey::from_slice(&raw).ok()
            });
        let remembered = Remembered {
            description: file.keyring,
            sealed_master_key: file.sealed_master_key,
        };
        match master.map(|m| self.start_session(m, Some(remembered))) {
            Some(Ok(())) => Ok(true),
            _ => {
                self.lock()?;
                Ok(false)
            }
        }
    }

    fn start_session(&self, master: SymmetricKey, remembered: Option<Remembered>) -> Result<()> {
        let ring = self.profile.open_ring(&master)?;
        let store = Store::open(&self.dir, &ring.database)?;
        let files = LocalFiles::new(self.dir.join("files"), ring.local_file.clone());
        let session = Session {
            ring,
            master,
            remembered: Mutex::new(remembered),
            store: Mutex::new(store),
            files,
            boxes: Mutex::new(HashMap::new()),
            last_used_ms: AtomicI64::new(self.options.clock.now_ms()),
        };
        *self.session.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(session));
        Ok(())
    }

    /// The open session, or [`ClientError::Locked`] once the window has run out.
    pub(crate) fn session(&self) -> Result<Arc<Session>> {
        let mut guard = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.options.clock.now_ms();
        let window = crate::clock::ms(self.options.unlock_window);
        match guard.as_ref() {
            Some(s) if now - s.last_used_ms.load(Ordering::SeqCst) <= window => {
                s.last_used_ms.store(now, Ordering::SeqCst);
                Ok(s.clone())
            }
            Some(_) => {
                let expired = guard.take();
                drop(guard);
                let _ = self.forget_remembered(expired.as_deref());
                Err(ClientError::Locked)
            }
            None => Err(ClientError::Locked),
        }
    }

    pub(crate) fn signer(&self, s: &Session) -> Signer {
        Signer {
            caller: Caller {
                user_id: self.profile.user_id.clone(),
                build_number: BUILD_NUMBER,
                client_type: self.options.client_type,
            },
            key: s.ring.current().sign_keys.clone(),
        }
    }

    /// The cached precomputed box between one of our keys and a contact key. Fails for a
    /// low-order contact key (which would make the shared key public).
    pub(crate) fn precomputed(
        &self,
        s: &Session,
        own: &InstallationKeys,
        theirs: &BoxPublicKey,
    ) -> Result<Arc<PrecomputedBox>> {
        let mut cache = s.boxes.lock().unwrap_or_else(|p| p.into_inner());
        let key = (own.box_keys.public, *theirs);
        if let Some(pre) = cache.get(&key) {
            return Ok(pre.clone());
        }
        let pre = Arc::new(PrecomputedBox::new(theirs, &own.box_keys.secret)?);
        cache.insert(key, pre.clone());
        Ok(pre)
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.options.clock.now_ms()
    }

    // ---- Profile ----

    /// The user's id on the server.
    pub fn user_id(&self) -> &str {
        &self.profile.user_id
    }

    /// The name shown to contacts.
    pub fn display_name(&self) -> &str {
        &self.profile.display_name
    }

    /// The phone number or e-mail address registered.
    pub fn identifier(&self) -> &str {
        &self.profile.identifier
    }

    /// The server this profile talks to.
    pub fn server_url(&self) -> &str {
        self.api.server_url()
    }

    /// The certificate this profile pins for its servers (PEM), if any.
    pub fn pinned_certificate(&self) -> Option<&[u8]> {
        self.pinned_certificate.as_deref()
    }

    /// The profile directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the profile is unlocked by a PIN or a passphrase.
    pub fn secret_kind(&self) -> SecretKind {
        self.profile.secret_kind
    }

    /// The current key version.
    pub fn key_version(&self) -> u32 {
        self.profile
            .installations
            .last()
            .map(|i| i.key_version)
            .unwrap_or(0)
    }

    /// The local store of sealed files (needs the profile unlocked).
    pub fn local_files(&self) -> Result<LocalFiles> {
        Ok(self.session()?.files.clone())
    }

    /// The SQLCipher version of the local database (a check that it is encrypted).
    pub fn database_cipher_version(&self) -> Result<String> {
        self.session()?.db().cipher_version()
    }

    /// Every installation's secret keys, for a new installation of the same account to
    /// keep reading messages sent to them (and, later, for password recovery).
    pub fn export_key_history(&self) -> Result<KeyHistory> {
        let s = self.session()?;
        Ok(KeyHistory {
            user_id: self.profile.user_id.clone(),
            installations: s.ring.installations.clone(),
        })
    }

    // ---- Contacts ----

    /// Finds a registered user by phone number or e-mail address (the server sees only
    /// a hash) and adds them as a contact.
    pub async fn add_contact_by_identifier(
        &self,
        identifier: &str,
        alias: Option<&str>,
    ) -> Result<Contact> {
        let s = self.session()?;
        let hash = cachet_proto::discovery_hash(identifier);
        let found = self
            .api
            .discover(&self.signer(&s), vec![hash.to_vec()])
            .await?;
        let user_id = found
            .contacts
            .into_iter()
            .find(|c| c.identifier_hash == hash)
            .map(|c| c.user_id)
            .ok_or_else(|| ClientError::UnknownContact(identifier.to_owned()))?;
        let contact = self.add_contact(&user_id, alias).await?;
        let normalised = cachet_proto::normalise_identifier(identifier);
        s.db().conn.execute(
            "UPDATE contacts SET identifier = ?1 WHERE user_id = ?2",
            params![normalised, user_id],
        )?;
        Ok(self.contact(&user_id)?.unwrap_or(contact))
    }

    /// Adds (or refreshes) a contact by user id, fetching their profile and key history.
    pub async fn add_contact(&self, user_id: &str, alias: Option<&str>) -> Result<Contact> {
        let s = self.session()?;
        if user_id == self.profile.user_id {
            return Err(ClientError::InvalidInput(
                "you cannot add yourself as a contact".into(),
            ));
        }
        let profile = match self.api.user(&self.signer(&s), user_id).await {
            Err(ClientError::Server { status: 404, .. }) => {
                return Err(ClientError::UnknownContact(user_id.to_owned()))
            }
            other => other?,
        };
        let history = self.api.key_history(&self.signer(&s), user_id).await?;
        let current = current_record(&profile, &history)?;
        let box_key = BoxPublicKey::from_slice(&current.box_key)?;
        let sign_key = SignPublicKey::from_slice(&current.sign_key)?;
        let known = self.contact(user_id)?;
        {
            let db = s.db();
            let alias = alias
                .map(str::to_owned)
                .or_else(|| known.as_ref().map(|k| k.alias.clone()))
                .unwrap_or_else(|| profile.display_name.clone());
            if known.is_none() {
                db.conn.execute(
                    "INSERT INTO contacts (user_id, alias, display_name, key_version, box_key,
                     sign_key, operator_verified, added_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        user_id,
                        alias,
                        profile.display_name,
                        current.key_version,
                        box_key.as_bytes().to_vec(),
                        sign_key.as_bytes().to_vec(),
                        profile.verified,
                        self.now_ms()
                    ],
                )?;
            } else {
                db.conn.execute(
                    "UPDATE contacts SET alias = ?2, display_name = ?3, operator_verified = ?4
                     WHERE user_id = ?1",
                    params![user_id, alias, profile.display_name, profile.verified],
                )?;
            }
        }
        self.apply_key_history(&s, user_id, &history)?;
        self.contact(user_id)?
            .ok_or_else(|| ClientError::UnknownContact(user_id.to_owned()))
    }

    /// Ensures a user is a contact (adding them with their display name if not).
    pub(crate) async fn ensure_contact(&self, user_id: &str) -> Result<Contact> {
        match self.contact(user_id)? {
            Some(c) => Ok(c),
            None => self.add_contact(user_id, None).await,
        }
    }

    /// Fetches a contact's keys from the server again and applies any change.
    /// The contact's chain in the trust log is checked too (fetched again if the head
    /// moved): a verified contact whose chain shows a change the verified key did not
    /// authorise becomes KEY CHANGED; keys the log refuses are refused when sending, with
    /// the reason.
    pub async fn refresh_contact(&self, user_id: &str) -> Result<Option<KeyChangeReport>> {
        let s = self.session()?;
        let history = match self.api.key_history(&self.signer(&s), user_id).await {
            // A new installation whose block is not in the log yet: the server does not
            // serve its keys until it is; the next refresh (or send) takes them.
            Err(ClientError::Server { reason, .. }) if reason == "keys_not_in_log" => {
                return Ok(None)
            }
            other => other?,
        };
        let mut report = self.apply_key_history(&s, user_id, &history)?;
        let Some(contact) = self.contact(user_id)? else {
            return Ok(report);
        };
        match self.check_contact_keys(&s, &contact, true).await {
            // Refused keys stay refused: sending to them fails and says why. (The block
            // of a new installation may also not be in the log yet.)
            Ok(()) | Err(ClientError::TrustLog { .. }) => {}
            Err(e) => return Err(e),
        }
        if let Some(r) = report.as_mut() {
            if let Some(TrustState::KeyChanged { note, .. }) =
                self.contact(user_id)?.map(|c| c.trust)
            {
                if r.still_verified {
                    r.still_verified = false;
                    s.db().conn.execute(
                        "UPDATE messages SET body = ?3 WHERE sender_id = '' AND message_id = ?1
                         AND conversation = ?2",
                        params![
                            format!("key-change:{user_id}:{}", r.new_version),
                            crate::messaging::Conversation::Direct(user_id.to_owned()).key(),
                            format!(
                                "KEY CHANGED: the keys of {} changed (version {} to {}) and the trust log does not show them authorised by the keys you verified ({note}); nothing is sent to them until you compare safety numbers again or accept the new keys",
                                r.alias, r.old_version, r.new_version
                            )
                        ],
                    )?;
                    r.note = note;
                }
            }
        }
        Ok(report)
    }

    /// The contact, with their current keys checked against their chain in the trust log
    /// (cached while the keys stay the same): what to call before encrypting to them.
    pub(crate) async fn checked_contact(&self, s: &Session, user_id: &str) -> Result<Contact> {
        let contact = self.ensure_contact(user_id).await?;
        match self.check_contact_keys(s, &contact, false).await {
            Ok(()) => {}
            // The chain moved past the keys stored for the contact: take the directory's
            // current keys and check those.
            Err(ClientError::TrustLog {
                source: cachet_trust::TrustError::StaleKey { .. },
                ..
            }) => {
                self.refresh_contact(user_id).await?;
                let contact = self
                    .contact(user_id)?
                    .ok_or_else(|| ClientError::UnknownContact(user_id.to_owned()))?;
                self.check_contact_keys(s, &contact, false).await?;
            }
            Err(e) => return Err(e),
        }
        self.contact(user_id)?
            .ok_or_else(|| ClientError::UnknownContact(user_id.to_owned()))
    }

    /// Stores a contact's key history and applies a change of their current keys to their
    /// verification state.
    pub(crate) fn apply_key_history(
        &self,
        s: &Session,
        user_id: &str,
        history: &v1::KeyHistory,
    ) -> Result<Option<KeyChangeReport>> {
        let Some(contact) = self.contact(user_id)? else {
            return Ok(None);
        };
        let db = s.db();
        for r in &history.keys {
            if BoxPublicKey::from_slice(&r.box_key).is_err()
                || SignPublicKey::from_slice(&r.sign_key).is_err()
            {
                continue;
            }
            db.conn.execute(
                "INSERT INTO contact_keys (user_id, key_version, box_key, sign_key, valid_from,
                 valid_until, previous_key_signature) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (user_id, key_version) DO UPDATE SET valid_until = excluded.valid_until",
                params![
                    user_id,
                    r.key_version,
                    r.box_key,
                    r.sign_key,
                    r.valid_from,
                    r.valid_until,
                    r.previous_key_signature
                ],
            )?;
        }
        let Some(newest) = history.keys.iter().max_by_key(|r| r.key_version) else {
            return Ok(None);
        };
        if newest.key_version <= contact.key_version {
            return Ok(None);
        }
        let box_key = BoxPublicKey::from_slice(&newest.box_key)?;
        let sign_key = SignPublicKey::from_slice(&newest.sign_key)?;
        let now = self.now_ms();
        let (verified_version, verified_sign): (Option<u32>, Option<Vec<u8>>) = db
            .conn
            .query_row(
                "SELECT k.key_version, c.verified_sign_key FROM contacts c
                 LEFT JOIN contact_keys k ON k.user_id = c.user_id AND k.sign_key = c.verified_sign_key
                 WHERE c.user_id = ?1",
                [user_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
        let was_verified = matches!(contact.trust, TrustState::Verified { .. });
        let (still_verified, note) = match (&contact.trust, verified_version, verified_sign) {
            (TrustState::Verified { .. }, Some(v), Some(vs)) => {
                let verified_sign_key = SignPublicKey::from_slice(&vs)?;
                let mut changes: Vec<KeyRecord> = history
                    .keys
                    .iter()
                    .filter(|r| r.key_version > v)
                    .cloned()
                    .collect();
                changes.sort_by_key(|r| r.key_version);
                let verified_revoked = history
                    .keys
                    .iter()
                    .any(|r| r.key_version == v && !r.revoked_by_operator.is_empty());
                match self.options.trust.on_key_change(&KeyChangeEvidence {
                    user_id,
                    verified_sign_key,
                    verified_version: v,
                    verified_revoked,
                    changes: &changes,
                }) {
                    TrustDecision::KeepVerified { note } => (true, note),
                    TrustDecision::Unverify { note } => (false, note),
                }
            }
            (TrustState::Verified { .. }, _, _) => (
                false,
                "the verified keys are not in the key history".to_owned(),
            ),
            (TrustState::KeyChanged { note, .. }, _, _) => (false, note.clone()),
            (TrustState::Unverified, _, _) => (false, "the contact was not verified".to_owned()),
        };
        db.conn.execute(
            "UPDATE contacts SET key_version = ?2, box_key = ?3, sign_key = ?4 WHERE user_id = ?1",
            params![
                user_id,
                newest.key_version,
                box_key.as_bytes().to_vec(),
                sign_key.as_bytes().to_vec()
            ],
        )?;
        if was_verified && still_verified {
            db.conn.execute(
                "UPDATE contacts SET verified_box_key = ?2, verified_sign_key = ?3, trust_note = ?4
                 WHERE user_id = ?1",
                params![
                    user_id,
                    box_key.as_bytes().to_vec(),
                    sign_key.as_bytes().to_vec(),
                    note
                ],
            )?;
        } else if was_verified {
            db.conn.execute(
                "UPDATE contacts SET trust = 'changed', trust_note = ?2, trust_changed_at = ?3
                 WHERE user_id = ?1",
                params![user_id, note, now],
            )?;
        }
        // The conversation shows the change where it happened, whatever the verdict.
        let notice = if was_verified && !still_verified {
            format!(
                "KEY CHANGED: the keys of {} changed (version {} to {}) without a signature by the keys you verified ({note}); nothing is sent to them until you compare safety numbers again or accept the new keys",
                contact.alias, contact.key_version, newest.key_version
            )
        } else if was_verified {
            format!(
                "the keys of {} changed (version {} to {}); they stay verified: {note}",
                contact.alias, contact.key_version, newest.key_version
            )
        } else {
            format!(
                "the keys of {} changed (version {} to {}): your safety number with them changed; compare it to verify them",
                contact.alias, contact.key_version, newest.key_version
            )
        };
        db.conn.execute(
            "INSERT OR IGNORE INTO messages (conversation, message_id, sender_id, outgoing, kind,
             body, attachment_id, timestamp, received_at, read_at)
             VALUES (?1, ?2, '', 0, 'notice', ?3, NULL, ?4, ?4, ?4)",
            params![
                crate::messaging::Conversation::Direct(user_id.to_owned()).key(),
                format!("key-change:{user_id}:{}", newest.key_version),
                notice,
                now
            ],
        )?;
        Ok(Some(KeyChangeReport {
            user_id: user_id.to_owned(),
            alias: contact.alias,
            old_version: contact.key_version,
            new_version: newest.key_version,
            was_verified,
            still_verified,
            note,
        }))
    }

    /// A contact by user id.
    pub fn contact(&self, user_id: &str) -> Result<Option<Contact>> {
        let s = self.session()?;
        let db = s.db();
        let contact = db
            .conn
            .query_row(
                &format!("{CONTACT_SELECT} WHERE user_id = ?1"),
                [user_id],
                row_to_contact,
            )
            .optional()?;
        contact.transpose()
    }

    /// Every contact, by alias.
    pub fn contacts(&self) -> Result<Vec<Contact>> {
        let s = self.session()?;
        let db = s.db();
        let mut stmt = db
            .conn
            .prepare(&format!("{CONTACT_SELECT} ORDER BY alias"))?;
        let rows = stmt.query_map([], row_to_contact)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row??);
        }
        Ok(out)
    }

    /// Finds a contact by alias, user id, identifier or display name (in that order).
    pub fn find_contact(&self, query: &str) -> Result<Contact> {
        let contacts = self.contacts()?;
        let normalised = cachet_proto::normalise_identifier(query);
        let by = |f: &dyn Fn(&Contact) -> bool| -> Option<Contact> {
            let found: Vec<&Contact> = contacts.iter().filter(|c| f(c)).collect();
            (found.len() == 1).then(|| found[0].clone())
        };
        by(&|c| c.alias == query)
            .or_else(|| by(&|c| c.user_id == query))
            .or_else(|| by(&|c| !c.identifier.is_empty() && c.identifier == normalised))
            .or_else(|| by(&|c| c.display_name.eq_ignore_ascii_case(query)))
            .ok_or_else(|| ClientError::UnknownContact(query.to_owned()))
    }

    /// Every key a contact ever had, newest first: `(version, box key, sign key)`.
    pub(crate) fn contact_keys(
        &self,
        s: &Session,
        user_id: &str,
    ) -> Result<Vec<(u32, BoxPublicKey, SignPublicKey)>> {
        let db = s.db();
        let mut stmt = db.conn.prepare(
            "SELECT key_version, box_key, sign_key FROM contact_keys WHERE user_id = ?1
             ORDER BY key_version DESC",
        )?;
        let rows = stmt.query_map([user_id], |r| {
            Ok((
                r.get::<_, u32>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (v, b, sg) = row?;
            if let (Ok(b), Ok(sg)) = (BoxPublicKey::from_slice(&b), SignPublicKey::from_slice(&sg))
            {
                out.push((v, b, sg));
            }
        }
        Ok(out)
    }

    // ---- Verification ----

    /// The safety number of the user and a contact (current keys on both sides).
    pub fn safety_number(&self, contact: &Contact) -> Result<SafetyNumber> {
        let s = self.session()?;
        let me = s.ring.current();
        let my_sign = me.sign_keys.public();
        let ours = Identity {
            user_id: &self.profile.user_id,
            box_key: &me.box_keys.public,
            sign_key: &my_sign,
        };
        let theirs = Identity {
            user_id: &contact.user_id,
            box_key: &contact.box_key,
            sign_key: &contact.sign_key,
        };
        Ok(SafetyNumber {
            digits: fingerprint::safety_number(&ours, &theirs),
            qr_payload: fingerprint::qr_payload(&ours, &theirs),
        })
    }

    /// Records that the user compared safety numbers with the contact and they matched.
    pub fn mark_verified(&self, contact: &Contact) -> Result<Contact> {
        let s = self.session()?;
        s.db().conn.execute(
            "UPDATE contacts SET trust = 'verified', verified_box_key = box_key,
             verified_sign_key = sign_key, verified_at = ?2, trust_note = '' WHERE user_id = ?1",
            params![contact.user_id, self.now_ms()],
        )?;
        self.contact(&contact.user_id)?
            .ok_or_else(|| ClientError::UnknownContact(contact.user_id.clone()))
    }

    /// Checks a QR payload scanned from the contact's screen and, if it matches, marks
    /// them verified.
    pub fn verify_scanned(&self, contact: &Contact, scanned: &[u8]) -> Result<Contact> {
        let expected = self.safety_number(contact)?;
        let s = self.session()?;
        let me = s.ring.current();
        let my_sign = me.sign_keys.public();
        fingerprint::verify_qr_payload(
            scanned,
            &Identity {
                user_id: &self.profile.user_id,
                box_key: &me.box_keys.public,
                sign_key: &my_sign,
            },
            &Identity {
                user_id: &contact.user_id,
                box_key: &contact.box_key,
                sign_key: &contact.sign_key,
            },
        )
        .map_err(|_| {
            ClientError::Integrity(format!(
                "the scanned code does not match the safety number {}",
                expected.digits
            ))
        })?;
        self.mark_verified(contact)
    }

    /// Withdraws a verification.
    pub fn mark_unverified(&self, contact: &Contact) -> Result<()> {
        let s = self.session()?;
        s.db().conn.execute(
            "UPDATE contacts SET trust = 'unverified', verified_box_key = NULL,
             verified_sign_key = NULL, verified_at = NULL, trust_note = '' WHERE user_id = ?1",
            [&contact.user_id],
        )?;
        Ok(())
    }

    /// Cardinal's rule: refuses to create new shared keys (case keys, attachment keys,
    /// recovery data) for a contact whose verified keys changed, or, with
    /// [`ClientOptions::require_verified`], for a contact never verified.
    pub fn check_may_share_new_keys(&self, contact: &Contact) -> Result<()> {
        match contact.trust {
            TrustState::KeyChanged { .. } => Err(ClientError::KeyChanged {
                contact: contact.alias.clone(),
            }),
            TrustState::Unverified if self.options.require_verified => {
                Err(ClientError::NotVerified {
                    contact: contact.alias.clone(),
                })
            }
            _ => Ok(()),
        }
    }

    /// Refuses to send anything (text, typing event, read receipt, group message) to a
    /// contact whose verified keys changed without a signature by the verified key, as
    /// Signal does: the new keys' holder may be someone else. Contacts never verified are
    /// not refused (their key changes are shown as a notice in the conversation).
    pub fn check_may_send(&self, contact: &Contact) -> Result<()> {
        match contact.trust {
            TrustState::KeyChanged { .. } => Err(ClientError::KeyChanged {
                contact: contact.alias.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// Accepts the new keys of a KEY CHANGED contact without comparing safety numbers: the
    /// contact becomes unverified with their current keys, so messages go to them again
    /// (and, unless [`ClientOptions::require_verified`], new shared keys too). Comparing
    /// safety numbers ([`Client::mark_verified`]) is the stronger way out. A contact in
    /// another state is returned unchanged.
    pub fn accept_key_change(&self, contact: &Contact) -> Result<Contact> {
        let s = self.session()?;
        s.db().conn.execute(
            "UPDATE contacts SET trust = 'unverified', verified_box_key = NULL,
             verified_sign_key = NULL, verified_at = NULL, trust_note = ''
             WHERE user_id = ?1 AND trust = 'changed'",
            [&contact.user_id],
        )?;
        self.contact(&contact.user_id)?
            .ok_or_else(|| ClientError::UnknownContact(contact.user_id.clone()))
    }

    /// Refreshes the contacts' keys from the server, then applies Cardinal's rule to them.
    pub(crate) async fn gate_new_keys(&self, user_ids: &[String]) -> Result<Vec<Contact>> {
        let mut out = Vec::new();
        for id in user_ids {
            if id == &self.profile.user_id {
                continue;
            }
            self.ensure_contact(id).await?;
            self.refresh_contact(id).await?;
            let s = self.session()?;
            let contact = self.checked_contact(&s, id).await?;
            self.check_may_share_new_keys(&contact)?;
            out.push(contact);
        }
        Ok(out)
    }
}

const CONTACT_SELECT: &str = "SELECT user_id, alias, display_name, identifier, key_version,
    box_key, sign_key, operator_verified, trust, verified_at, trust_note, trust_changed_at
    FROM contacts";

fn row_to_contact(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Contact>> {
    let box_key: Vec<u8> = r.get(5)?;
    let sign_key: Vec<u8> = r.get(6)?;
    let trust: String = r.get(8)?;
    let verified_at: Option<i64> = r.get(9)?;
    let note: String = r.get(10)?;
    let changed_at: Option<i64> = r.get(11)?;
    let trust = match trust.as_str() {
        "verified" => TrustState::Verified {
            at_ms: verified_at.unwrap_or(0),
        },
        "changed" => TrustState::KeyChanged {
            at_ms: changed_at.unwrap_or(0),
            note,
        },
        _ => TrustState::Unverified,
    };
    let user_id: String = r.get(0)?;
    let alias: String = r.get(1)?;
    let display_name: String = r.get(2)?;
    let identifier: String = r.get(3)?;
    let key_version: u32 = r.get(4)?;
    let operator_verified: bool = r.get(7)?;
    Ok((|| {
        Ok(Contact {
            user_id,
            alias,
            display_name,
            identifier,
            key_version,
            box_key: BoxPublicKey::from_slice(&box_key)?,
            sign_key: SignPublicKey::from_slice(&sign_key)?,
            operator_verified,
            trust,
        })
    })())
}

fn current_record<'a>(
    profile: &'a v1::UserProfile,
    history: &'a v1::KeyHistory,
) -> Result<&'a KeyRecord> {
    profile
        .current_keys
        .as_ref()
        .or_else(|| history.keys.iter().max_by_key(|r| r.key_version))
        .ok_or_else(|| ClientError::Protocol(format!("user {} has no keys", profile.user_id)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::clock::{Clock, SystemClock};
    use crate::session_keyring::NoKeyring;
    use crate::vault::{Argon2Params, Argon2idProtector, MasterKeyProtector};
    use std::time::Duration;

    const TEST_PIN: &str = "38172";

    fn options() -> ClientOptions {
        ClientOptions {
            protector: Arc::new(Argon2idProtector::new(Argon2Params::INSECURE_FOR_TESTS)),
            ..ClientOptions::default()
        }
    }

    /// A profile made without a server (nothing here talks to one); returns its master
    /// key, which only the test knows.
    fn offline_profile(dir: &Path) -> SymmetricKey {
        let protector = Argon2idProtector::new(Argon2Params::INSECURE_FOR_TESTS);
        let master = SymmetricKey::generate();
        let ring = KeyRing {
            installations: vec![InstallationKeys::generate(1)],
            database: SymmetricKey::generate(),
            local_file: SymmetricKey::generate(),
        };
        let wrapped = protector
            .wrap(&master, &UnlockSecret::new(TEST_PIN))
            .unwrap();
        let profile = ProfileFile::new(
            "u1",
            "+33600000001",
            "Offline",
            "http://127.0.0.1:9",
            SecretKind::Pin,
            &protector,
            &wrapped,
            &master,
            &ring,
            0,
        );
        create_private_dir(dir).unwrap();
        profile.save(dir).unwrap();
        master
    }

    #[test]
    fn a_clear_master_key_left_by_an_earlier_version_is_deleted_and_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("profile");
        let master = offline_profile(&dir);
        // What earlier versions wrote while an unlock was remembered.
        let old = serde_json::json!({
            "expires_at_ms": SystemClock.now_ms() + 600_000,
            "master_key": base64::engine::general_purpose::STANDARD.encode(master.expose_secret()),
        });
        std::fs::write(dir.join(SESSION_FILE), old.to_string()).unwrap();
        let client = Client::open(&dir, options()).unwrap();
        assert!(!client.resume().unwrap(), "a clear master key was used");
        assert!(!client.is_unlocked());
        assert!(!dir.join(SESSION_FILE).exists());
        // The PIN still works, and what is remembered now holds no usable key.
        client.unlock(&UnlockSecret::new(TEST_PIN)).unwrap();
        client.remember_unlock().unwrap();
        let text = std::fs::read_to_string(dir.join(SESSION_FILE)).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD;
        assert!(!text.contains(&b64.encode(master.expose_secret())));
        assert!(!text.contains(&hex::encode(master.expose_secret())));
        assert!(Client::open(&dir, options()).unwrap().resume().unwrap());
        client.lock().unwrap();
    }

    #[test]
    fn without_a_keyring_nothing_is_remembered() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("profile");
        offline_profile(&dir);
        let no_keyring = ClientOptions {
            session_keyring: Arc::new(NoKeyring),
            ..options()
        };
        let client = Client::open(&dir, no_keyring.clone()).unwrap();
        client.unlock(&UnlockSecret::new(TEST_PIN)).unwrap();
        let err = client.remember_unlock().unwrap_err();
        assert!(matches!(err, ClientError::NoKeyring(_)), "{err:?}");
        assert!(err.to_string().contains("cannot be remembered"));
        assert!(!dir.join(SESSION_FILE).exists());
        assert!(!Client::open(&dir, no_keyring).unwrap().resume().unwrap());
    }

    #[test]
    fn a_remembered_unlock_expires_with_the_window_and_ends_with_lock() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("profile");
        offline_profile(&dir);
        let clock = crate::clock::ManualClock::starting_now();
        let timed = ClientOptions {
            clock: Arc::new(clock.clone()),
            ..options()
        };
        let client = Client::open(&dir, timed.clone()).unwrap();
        client.unlock(&UnlockSecret::new(TEST_PIN)).unwrap();
        client.remember_unlock().unwrap();
        let file: SessionFile =
            serde_json::from_slice(&std::fs::read(dir.join(SESSION_FILE)).unwrap()).unwrap();
        let keyring = timed.session_keyring.clone();
        assert!(keyring.load(&file.keyring).is_some());
        // Another process resumes and pushes the window forward with the same entry.
        clock.advance(Duration::from_secs(9 * 60));
        let other = Client::open(&dir, timed.clone()).unwrap();
        assert!(other.resume().unwrap());
        other.remember_unlock().unwrap();
        let again: SessionFile =
            serde_json::from_slice(&std::fs::read(dir.join(SESSION_FILE)).unwrap()).unwrap();
        assert_eq!(again.keyring, file.keyring);
        clock.advance(Duration::from_secs(9 * 60));
        assert!(Client::open(&dir, timed.clone()).unwrap().resume().unwrap());
        // Past the window, the file is deleted and its keyring entry forgotten.
        clock.advance(Duration::from_secs(10 * 60 + 1));
        assert!(!Client::open(&dir, timed.clone()).unwrap().resume().unwrap());
        assert!(!dir.join(SESSION_FILE).exists());
        assert!(keyring.load(&file.keyring).is_none());
        // Lock removes a fresh one at once.
        client.unlock(&UnlockSecret::new(TEST_PIN)).unwrap();
        client.remember_unlock().unwrap();
        let file: SessionFile =
            serde_json::from_slice(&std::fs::read(dir.join(SESSION_FILE)).unwrap()).unwrap();
        Client::open(&dir, timed).unwrap().lock().unwrap();
        assert!(keyring.load(&file.keyring).is_none());
        assert!(!dir.join(SESSION_FILE).exists());
    }
}
