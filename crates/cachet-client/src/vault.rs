//! Keys on the device (whitepaper sections 3 and 4): every individual key is sealed with
//! `crypto_secretbox` under a master key, and the master key is protected by a
//! [`MasterKeyProtector`].
//!
//! A desktop has no Android Keystore, and no keyring daemon can be assumed (servers,
//! containers, SSH sessions). The protector shipped here derives a key-encryption key
//! from the user's PIN or passphrase with Argon2id and seals the master key under it. The
//! trait lets an application add an OS-keyring backend without touching the rest.
//!
//! The profile directory (mode 0700, every file in it 0600) holds:
//!
//! ```text
//! profile.json   public metadata, the wrapped master key, every individual key sealed
//!                (nonce || tag || ciphertext, base64) under the master key
//! lockout.json   wrong-PIN counter and lock-out deadline (see `lockout`)
//! lockout.lock   empty; locked exclusively while an attempt is counted
//! session.json   while an unlock is remembered (10 minutes after the last use at most):
//!                the master key sealed under a wrapping key that lives only in the
//!                kernel keyring (see `session_keyring`), never the master key itself
//! cachet.db      SQLCipher database keyed by the Database Key (and its journal)
//! files/         local files sealed under the Local File Key
//! partial/       sealed chunks of attachments being downloaded
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use cachet_crypto::{secretbox, BoxKeyPair, BoxSecretKey, SignKeyPair, SymmetricKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{ClientError, Result};
use crate::secret::{SecretKind, UnlockSecret};

/// Protects the master key at rest. Implementations: [`Argon2idProtector`] (shipped); an
/// OS keyring or hardware token could be added by an application.
pub trait MasterKeyProtector: Send + Sync + fmt::Debug {
    /// Short name recorded in the profile, so the right protector is used to unlock.
    fn kind(&self) -> &'static str;
    /// Protects a new master key with the user's secret; returns the bytes to store.
    fn wrap(&self, master: &SymmetricKey, secret: &UnlockSecret) -> Result<Vec<u8>>;
    /// Recovers the master key. Returns `Ok(None)` when the secret is wrong (which the
    /// caller counts towards the lock-out) and `Err` for anything else.
    fn unwrap(&self, wrapped: &[u8], secret: &UnlockSecret) -> Result<Option<SymmetricKey>>;
}

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Argon2Params {
    /// OWASP's recommended minimum for Argon2id: 19 MiB, 2 passes, 1 lane.
    pub const RECOMMENDED: Self = Self {
        memory_kib: 19 * 1024,
        iterations: 2,
        parallelism: 1,
    };
    /// Cheap parameters for tests only: a PIN protected with these falls in seconds.
    pub const INSECURE_FOR_TESTS: Self = Self {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
}

/// Wraps the master key under `Argon2id(secret, salt)`.
///
/// Stored layout: `0x01 || le32(memory_kib) || le32(iterations) || le32(parallelism) ||
/// salt (16) || nonce (24) || tag (16) || ciphertext (32)`. The parameters are read back
/// from the stored bytes, so changing the default does not lock anyone out.
#[derive(Debug, Clone, Copy)]
pub struct Argon2idProtector {
    params: Argon2Params,
}

impl Argon2idProtector {
    /// A protector that wraps new master keys with `params`.
    pub fn new(params: Argon2Params) -> Self {
        Self { params }
    }
}

impl Default for Argon2idProtector {
    fn default() -> Self {
        Self::new(Argon2Params::RECOMMENDED)
    }
}

const ARGON_FORMAT: u8 = 1;
const SALT_LEN: usize = 16;
const ARGON_HEADER: usize = 1 + 12 + SALT_LEN;

fn derive_kek(secret: &UnlockSecret, salt: &[u8], p: Argon2Params) -> Result<SymmetricKey> {
    let params = argon2::Params::new(p.memory_kib, p.iterations, p.parallelism, Some(32))
        .map_err(|e| ClientError::CorruptProfile(format!("Argon2 parameters: {e}")))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(secret.expose_secret(), salt, out.as_mut())
        .map_err(|e| ClientError::CorruptProfile(format!("Argon2: {e}")))?;
    Ok(SymmetricKey::from_bytes(*out))
}

impl MasterKeyProtector for Argon2idProtector {
    fn kind(&self) -> &'static str {
        "argon2id"
    }

    fn wrap(&self, master: &SymmetricKey, secret: &UnlockSecret) -> Result<Vec<u8>> {
        let salt: [u8; SALT_LEN] = cachet_crypto::random_bytes();
        let kek = derive_kek(secret, &salt, self.params)?;
        let mut out = Vec::with_capacity(ARGON_HEADER + 72);
        out.push(ARGON_FORMAT);
        out.extend_from_slice(&self.params.memory_kib.to_le_bytes());
        out.extend_from_slice(&self.params.iterations.to_le_bytes());
        out.extend_from_slice(&self.params.parallelism.to_le_bytes());
        out.extend_from_slice(&salt);
        out.extend_from_slice(&secretbox::seal_prefixed(master.expose_secret(), &kek));
        Ok(out)
    }

    fn unwrap(&self, wrapped: &[u8], secret: &UnlockSecret) -> Result<Option<SymmetricKey>> {
        if wrapped.len() < ARGON_HEADER || wrapped[0] != ARGON_FORMAT {
            return Err(ClientError::CorruptProfile(
                "wrapped master key has an unknown format".into(),
            ));
        }
        let le = |i: usize| {
            u32::from_le_bytes([wrapped[i], wrapped[i + 1], wrapped[i + 2], wrapped[i + 3]])
        };
        let params = Argon2Params {
            memory_kib: le(1),
            iterations: le(5),
            parallelism: le(9),
        };
        let salt = &wrapped[13..ARGON_HEADER];
        let kek = derive_kek(secret, salt, params)?;
        match secretbox::open_prefixed(&wrapped[ARGON_HEADER..], &kek) {
            Ok(bytes) => {
                let bytes = Zeroizing::new(bytes);
                Ok(Some(SymmetricKey::from_slice(&bytes)?))
            }
            Err(_) => Ok(None),
        }
    }
}

/// The keys of one installation: what registration generates (whitepaper 3.1, 3.2).
#[derive(Clone, PartialEq, Eq)]
pub struct InstallationKeys {
    /// The server's version number of these keys (1 for the first installation).
    pub key_version: u32,
    /// The Box Key.
    pub box_keys: BoxKeyPair,
    /// The Sign Key.
    pub sign_keys: SignKeyPair,
}

impl fmt::Debug for InstallationKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstallationKeys")
            .field("key_version", &self.key_version)
            .field("box_public", &self.box_keys.public)
            .field("sign_public", &self.sign_keys.public())
            .finish_non_exhaustive()
    }
}

impl InstallationKeys {
    /// Fresh keys (`crypto_box_keypair`, `crypto_sign_keypair`).
    pub fn generate(key_version: u32) -> Self {
        Self {
            key_version,
            box_keys: BoxKeyPair::generate(),
            sign_keys: SignKeyPair::generate(),
        }
    }
}

/// The key history of an account: every installation's secret keys, oldest first.
///
/// This is what a new installation needs to keep reading messages sent to older keys
/// (whitepaper 5.3) and to sign its own key change with the previous Sign Key. The
/// password recovery of a later release produces one of these; [`crate::Client::export_key_history`]
/// gives it for a reinstallation that keeps the keys.
#[derive(Clone, Debug)]
pub struct KeyHistory {
    /// The account's user id.
    pub user_id: String,
    /// The installations' keys, oldest first; the last one signs the next key change.
    pub installations: Vec<InstallationKeys>,
}

/// All secret keys of the current installation, unlocked.
#[derive(Clone)]
pub(crate) struct KeyRing {
    /// Oldest first; the last is current.
    pub installations: Vec<InstallationKeys>,
    pub database: SymmetricKey,
    pub local_file: SymmetricKey,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("installations", &self.installations)
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    pub fn current(&self) -> &InstallationKeys {
        self.installations
            .last()
            .expect("a key ring always holds the current installation")
    }
    /// Every installation's keys, newest first.
    pub fn newest_first(&self) -> impl Iterator<Item = &InstallationKeys> {
        self.installations.iter().rev()
    }
}

/// Public record of one installation in the profile file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct InstallationInfo {
    pub key_version: u32,
    pub box_key: String,
    pub sign_key: String,
}

/// `profile.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ProfileFile {
    pub format: u32,
    pub user_id: String,
    pub identifier: String,
    pub display_name: String,
    pub server_url: String,
    pub secret_kind: SecretKind,
    pub protector: String,
    pub wrapped_master_key: String,
    /// Individual keys, each `seal_prefixed` under the master key, base64.
    pub sealed_keys: BTreeMap<String, String>,
    /// Oldest first; the last is current.
    pub installations: Vec<InstallationInfo>,
    pub created_at: i64,
}

pub(crate) const PROFILE_FILE: &str = "profile.json";
const PROFILE_FORMAT: u32 = 1;

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

impl ProfileFile {
    /// Builds the file for a new key ring, sealing each key under `master`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        user_id: &str,
        identifier: &str,
        display_name: &str,
        server_url: &str,
        secret_kind: SecretKind,
        protector: &dyn MasterKeyProtector,
        wrapped_master: &[u8],
        master: &SymmetricKey,
        ring: &KeyRing,
        now_ms: i64,
    ) -> Self {
        let mut file = Self {
            format: PROFILE_FORMAT,
            user_id: user_id.into(),
            identifier: identifier.into(),
            display_name: display_name.into(),
            server_url: server_url.into(),
            secret_kind,
            protector: protector.kind().into(),
            wrapped_master_key: b64().encode(wrapped_master),
            sealed_keys: BTreeMap::new(),
            installations: Vec::new(),
            created_at: now_ms,
        };
        file.seal_ring(master, ring);
        file
    }

    pub fn seal_ring(&mut self, master: &SymmetricKey, ring: &KeyRing) {
        let mut seal = |name: String, bytes: &[u8]| {
            self.sealed_keys
                .insert(name, b64().encode(secretbox::seal_prefixed(bytes, master)));
        };
        seal("database".into(), ring.database.expose_secret());
        seal("local_file".into(), ring.local_file.expose_secret());
        for inst in &ring.installations {
            let v = inst.key_version;
            seal(
                format!("box/{v}"),
                inst.box_keys.secret.expose_secret().as_slice(),
            );
            let seed = Zeroizing::new(inst.sign_keys.expose_seed());
            seal(format!("sign/{v}"), seed.as_slice());
        }
        self.installations = ring
            .installations
            .iter()
            .map(|i| InstallationInfo {
                key_version: i.key_version,
                box_key: hex::encode(i.box_keys.public.as_bytes()),
                sign_key: hex::encode(i.sign_keys.public().as_bytes()),
            })
            .collect();
    }

    pub fn wrapped_master(&self) -> Result<Vec<u8>> {
        b64()
            .decode(&self.wrapped_master_key)
            .map_err(|_| ClientError::CorruptProfile("wrapped master key is not base64".into()))
    }

    fn open_key(&self, name: &str, master: &SymmetricKey) -> Result<Zeroizing<Vec<u8>>> {
        let sealed = self
            .sealed_keys
            .get(name)
            .ok_or_else(|| ClientError::CorruptProfile(format!("key {name} is missing")))?;
        let sealed = b64()
            .decode(sealed)
            .map_err(|_| ClientError::CorruptProfile(format!("key {name} is not base64")))?;
        secretbox::open_prefixed(&sealed, master)
            .map(Zeroizing::new)
            .map_err(|_| ClientError::CorruptProfile(format!("key {name} does not open")))
    }

    /// Opens every individual key with the master key.
    pub fn open_ring(&self, master: &SymmetricKey) -> Result<KeyRing> {
        let database = SymmetricKey::from_slice(&self.open_key("database", master)?)?;
        let local_file = SymmetricKey::from_slice(&self.open_key("local_file", master)?)?;
        let mut installations = Vec::new();
        for info in &self.installations {
            let v = info.key_version;
            let box_secret =
                BoxSecretKey::from_slice(&self.open_key(&format!("box/{v}"), master)?)?;
            let sign = SignKeyPair::from_seed_slice(&self.open_key(&format!("sign/{v}"), master)?)?;
            let inst = InstallationKeys {
                key_version: v,
                box_keys: BoxKeyPair::from_secret(box_secret),
                sign_keys: sign,
            };
            if hex::encode(inst.box_keys.public.as_bytes()) != info.box_key
                || hex::encode(inst.sign_keys.public().as_bytes()) != info.sign_key
            {
                return Err(ClientError::CorruptProfile(format!(
                    "keys of version {v} do not match their public halves"
                )));
            }
            installations.push(inst);
        }
        if installations.is_empty() {
            return Err(ClientError::CorruptProfile("no installation keys".into()));
        }
        Ok(KeyRing {
            installations,
            database,
            local_file,
        })
    }

    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(PROFILE_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ClientError::NoProfile(dir.to_path_buf()))
            }
            Err(e) => return Err(ClientError::io(path, e)),
        };
        let file: Self = serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::CorruptProfile(format!("{PROFILE_FILE}: {e}")))?;
        if file.format != PROFILE_FORMAT {
            return Err(ClientError::CorruptProfile(format!(
                "{PROFILE_FILE} has format {}, this version reads {PROFILE_FORMAT}",
                file.format
            )));
        }
        Ok(file)
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| ClientError::CorruptProfile(e.to_string()))?;
        write_atomic(&dir.join(PROFILE_FILE), &bytes)
    }
}

/// Options that create a file readable and writable by the owner only (0600 on Unix),
/// whatever the umask.
pub(crate) fn private_file_options() -> fs::OpenOptions {
    #[allow(unused_mut)]
    let mut opts = fs::OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts
}

/// Writes a file so that a crash leaves either the old or the new content, readable by
/// the owner only. The temporary file has a random name, so that two processes writing
/// the same file at once never share one.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp: PathBuf = {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        let tag: [u8; 6] = cachet_crypto::random_bytes();
        name.push(format!(".{}.tmp", hex::encode(tag)));
        path.with_file_name(name)
    };
    let write = || -> std::io::Result<()> {
        let mut f = private_file_options()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(ClientError::io(path, e));
    }
    Ok(())
}

/// Creates a directory (and its missing parents) readable by the owner only, and makes
/// it so if it already existed.
pub(crate) fn create_private_dir(dir: &Path) -> Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| ClientError::io(dir, e))?;
    restrict(dir, true).map_err(|e| ClientError::io(dir, e))
}

/// Sets the mode of a file (0600) or directory (0700) of the profile if it allows more.
fn restrict(path: &Path, is_dir: bool) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::symlink_metadata(path)?.permissions().mode() & 0o777;
        let wanted = if is_dir { 0o700 } else { 0o600 };
        if mode != wanted {
            fs::set_permissions(path, fs::Permissions::from_mode(wanted))?;
        }
    }
    #[cfg(not(unix))]
    let _ = (path, is_dir);
    Ok(())
}

/// Brings a profile written by an earlier version (or touched by hand) back to owner-only
/// modes: the directory and its `files/` and `partial/` subdirectories 0700, every file
/// in them 0600. Symbolic links are left alone. Best effort: a file that cannot be
/// changed is left as it is.
pub(crate) fn restrict_profile(dir: &Path) {
    let _ = restrict(dir, true);
    let walk = |d: &Path| {
        let Ok(entries) = fs::read_dir(d) else {
            return;
        };
        for entry in entries.flatten() {
            if let Ok(kind) = entry.file_type() {
                if kind.is_file() {
                    let _ = restrict(&entry.path(), false);
                } else if kind.is_dir() {
                    let _ = restrict(&entry.path(), true);
                }
            }
        }
    };
    walk(dir);
    for sub in ["files", "partial"] {
        walk(&dir.join(sub));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_secret_keys() {
        let inst = InstallationKeys::generate(3);
        let ring = KeyRing {
            installations: vec![inst.clone()],
            database: SymmetricKey::generate(),
            local_file: SymmetricKey::generate(),
        };
        let history = KeyHistory {
            user_id: "u1".into(),
            installations: vec![inst.clone()],
        };
        let printed = format!("{inst:?} {ring:?} {history:?}");
        for secret in [
            hex::encode(inst.box_keys.secret.expose_secret()),
            hex::encode(inst.sign_keys.expose_seed()),
            hex::encode(ring.database.expose_secret()),
            format!("{:?}", inst.box_keys.secret.expose_secret()),
            format!("{:?}", ring.local_file.expose_secret()),
        ] {
            assert!(!printed.contains(&secret), "{printed}");
        }
        assert!(printed.contains("key_version: 3"));
    }

    #[test]
    fn argon_wrap_round_trip_and_wrong_secret() {
        let p = Argon2idProtector::new(Argon2Params::INSECURE_FOR_TESTS);
        let master = SymmetricKey::generate();
        let wrapped = p.wrap(&master, &UnlockSecret::new("12345")).unwrap();
        assert_eq!(
            p.unwrap(&wrapped, &UnlockSecret::new("12345")).unwrap(),
            Some(master)
        );
        assert_eq!(
            p.unwrap(&wrapped, &UnlockSecret::new("12346")).unwrap(),
            None
        );
        assert!(p
            .unwrap(&wrapped[..10], &UnlockSecret::new("12345"))
            .is_err());
    }

    #[test]
    fn profile_file_round_trip_never_holds_plain_keys() {
        let dir = tempfile::tempdir().unwrap();
        let p = Argon2idProtector::new(Argon2Params::INSECURE_FOR_TESTS);
        let master = SymmetricKey::generate();
        let ring = KeyRing {
            installations: vec![InstallationKeys::generate(1), InstallationKeys::generate(2)],
            database: SymmetricKey::generate(),
            local_file: SymmetricKey::generate(),
        };
        let wrapped = p.wrap(&master, &UnlockSecret::new("12345")).unwrap();
        let file = ProfileFile::new(
            "u1",
            "+331",
            "Dr A",
            "http://x",
            SecretKind::Pin,
            &p,
            &wrapped,
            &master,
            &ring,
            0,
        );
        file.save(dir.path()).unwrap();
        let text = fs::read_to_string(dir.path().join(PROFILE_FILE)).unwrap();
        for secret in [
            hex::encode(ring.database.expose_secret()),
            b64().encode(ring.database.expose_secret()),
            hex::encode(ring.current().box_keys.secret.expose_secret()),
            b64().encode(ring.current().sign_keys.expose_seed()),
        ] {
            assert!(!text.contains(&secret));
        }
        let back = ProfileFile::load(dir.path())
            .unwrap()
            .open_ring(&master)
            .unwrap();
        assert_eq!(back.installations, ring.installations);
        assert_eq!(back.database, ring.database);
        assert!(ProfileFile::load(dir.path())
            .unwrap()
            .open_ring(&SymmetricKey::generate())
            .is_err());
    }
}
