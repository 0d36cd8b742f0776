//! Where a remembered unlock keeps its key: outside the profile directory.
//!
//! A command-line program is a new process every time, so an unlock that should last ten
//! minutes has to be written somewhere. The profile directory is the wrong place for a
//! usable key: a copy of it (a backup, a synchronised folder, a stolen disk) would read
//! every message without the PIN. So `session.json` holds only the master key sealed
//! under a random **wrapping key**, and the wrapping key is kept by a [`SessionKeyring`]:
//!
//! * [`KernelKeyring`] (Linux): a `user` key in the kernel's per-user keyring (`@u`),
//!   with a kernel timeout equal to the unlock window, so the kernel itself forgets it.
//!   It is never written to disk; it does not survive a reboot, and it is not on another
//!   machine. `lock` invalidates it.
//! * [`NoKeyring`]: elsewhere (other systems, or a sandbox that forbids the keyring
//!   system calls) nothing is remembered and every command asks for the secret.
//!
//! The key's description is bound to the profile (a hash of its directory and user id)
//! and to the one unlock (a random part), see [`crate::Client::remember_unlock`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use cachet_crypto::SymmetricKey;

use crate::error::{ClientError, Result};

/// Keeps the wrapping keys of remembered unlocks outside the profile directory.
pub trait SessionKeyring: Send + Sync + fmt::Debug {
    /// What keeps the keys, for messages ("the kernel keyring").
    fn name(&self) -> &'static str;
    /// Stores `key` under `description`, to be forgotten by itself after `ttl`. Fails with
    /// [`ClientError::NoKeyring`] when nothing can be kept.
    fn store(&self, description: &str, key: &SymmetricKey, ttl: Duration) -> Result<()>;
    /// The key stored under `description`, if it is still there (not expired, revoked or
    /// never stored here).
    fn load(&self, description: &str) -> Option<SymmetricKey>;
    /// Gives the key under `description` another `ttl`; false if it is gone.
    fn extend(&self, description: &str, ttl: Duration) -> bool;
    /// Forgets the key under `description` at once (nothing if it is gone).
    fn forget(&self, description: &str) -> Result<()>;
}

/// The keyring of this platform: [`KernelKeyring`] on Linux, [`NoKeyring`] elsewhere.
pub fn platform_keyring() -> Arc<dyn SessionKeyring> {
    #[cfg(target_os = "linux")]
    {
        Arc::new(KernelKeyring)
    }
    #[cfg(not(target_os = "linux"))]
    {
        Arc::new(NoKeyring)
    }
}

/// No keyring: unlocks are never remembered.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoKeyring;

impl SessionKeyring for NoKeyring {
    fn name(&self) -> &'static str {
        "no keyring"
    }

    fn store(&self, _: &str, _: &SymmetricKey, _: Duration) -> Result<()> {
        Err(ClientError::NoKeyring(
            "this build keeps no key outside the profile on this system".into(),
        ))
    }

    fn load(&self, _: &str) -> Option<SymmetricKey> {
        None
    }

    fn extend(&self, _: &str, _: Duration) -> bool {
        false
    }

    fn forget(&self, _: &str) -> Result<()> {
        Ok(())
    }
}

#[cfg(target_os = "linux")]
pub use kernel::KernelKeyring;

#[cfg(target_os = "linux")]
mod kernel {
    use std::time::Duration;

    use cachet_crypto::SymmetricKey;
    use linux_keyutils::{
        Key, KeyError, KeyPermissionsBuilder, KeyRing, KeyRingIdentifier, Permission,
    };
    use zeroize::Zeroizing;

    use super::SessionKeyring;
    use crate::error::{ClientError, Result};

    /// The Linux kernel's per-user keyring (`@u`, see `keyrings(7)`).
    ///
    /// Keys are of type `user`, readable by their owner's processes (the possessor and the
    /// owning user: view, read, write, search, set attributes; group and others:
    /// nothing), with a kernel timeout. Root can read any key, as it can read any file.
    #[derive(Debug, Default, Clone, Copy)]
    pub struct KernelKeyring;

    fn user_ring() -> std::result::Result<KeyRing, KeyError> {
        KeyRing::from_special_id(KeyRingIdentifier::User, true)
    }

    fn find(description: &str) -> Option<Key> {
        user_ring().ok()?.search(description).ok()
    }

    fn timeout_secs(ttl: Duration) -> usize {
        usize::try_from(ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0))
            .unwrap_or(usize::MAX)
            .max(1)
    }

    fn unavailable(what: &str, e: KeyError) -> ClientError {
        ClientError::NoKeyring(format!("the kernel keyring refused to {what} ({e:?})"))
    }

    impl SessionKeyring for KernelKeyring {
        fn name(&self) -> &'static str {
            "the kernel keyring"
        }

        fn store(&self, description: &str, key: &SymmetricKey, ttl: Duration) -> Result<()> {
            let ring = user_ring().map_err(|e| unavailable("open the user keyring", e))?;
            // Created with a placeholder, so the real key is never in the keyring without
            // its timeout (a crash between the calls leaves only zeros behind).
            let entry = ring
                .add_key(description, &[0u8; 32])
                .map_err(|e| unavailable("add a key", e))?;
            let perms = || {
                Permission::VIEW
                    | Permission::READ
                    | Permission::WRITE
                    | Permission::SEARCH
                    | Permission::SETATTR
            };
            let finish = || -> std::result::Result<(), KeyError> {
                entry.set_timeout(timeout_secs(ttl))?;
                entry.set_perms(
                    KeyPermissionsBuilder::builder()
                        .posessor(perms())
                        .user(perms())
                        .build(),
                )?;
                entry.update(key.expose_secret())
            };
            if let Err(e) = finish() {
                let _ = entry.invalidate();
                return Err(unavailable("set up a key", e));
            }
            Ok(())
        }

        fn load(&self, description: &str) -> Option<SymmetricKey> {
            let entry = find(description)?;
            let mut buf = Zeroizing::new([0u8; 64]);
            let len = entry.read(&mut *buf).ok()?;
            (len == 32).then(|| SymmetricKey::from_slice(&buf[..32]).ok())?
        }

        fn extend(&self, description: &str, ttl: Duration) -> bool {
            find(description).is_some_and(|entry| entry.set_timeout(timeout_secs(ttl)).is_ok())
        }

        fn forget(&self, description: &str) -> Result<()> {
            let ring = match user_ring() {
                Ok(ring) => ring,
                // Nothing can have been stored where there is no keyring.
                Err(_) => return Ok(()),
            };
            match ring.search(description) {
                Ok(entry) => entry
                    .invalidate()
                    .or_else(|_| entry.revoke())
                    .map_err(|e| unavailable("forget a key", e)),
                Err(KeyError::KeyDoesNotExist | KeyError::KeyExpired | KeyError::KeyRevoked) => {
                    Ok(())
                }
                Err(e) => Err(unavailable("search for a key", e)),
            }
        }
    }
}
