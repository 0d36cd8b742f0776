//! The key pyramid: master key → one key-encryption key (KEK) per purpose → rows.

use std::collections::BTreeMap;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::{MasterKey, VaultError};

const NONCE_LEN: usize = 24;

/// A KEK sealed under the master key, as stored: `nonce ‖ tag+ciphertext`, bound to its
/// purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKek {
    /// What the KEK protects (`"profiles"`, `"audit"`, `"oprf-shares"`, ...).
    pub purpose: String,
    /// The sealed KEK.
    pub sealed: Vec<u8>,
}

fn seal(key: &[u8; 32], plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let nonce: [u8; NONCE_LEN] = cachet_crypto::random_bytes();
    let cipher = XChaCha20Poly1305::new(key.into());
    let ct = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("XChaCha20-Poly1305 accepts any message shorter than 256 GiB");
    [nonce.as_slice(), &ct].concat()
}

fn open(key: &[u8; 32], sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, VaultError> {
    if sealed.len() < NONCE_LEN + 16 {
        return Err(VaultError::Open);
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    XChaCha20Poly1305::new(key.into())
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
        .map_err(|_| VaultError::Open)
}

fn kek_aad(purpose: &str) -> Vec<u8> {
    [b"cachet kek v1:".as_slice(), purpose.as_bytes()].concat()
}

fn row_aad(purpose: &str, table: &str, row_id: &str, column: &str) -> Vec<u8> {
    let mut aad = b"cachet row v1".to_vec();
    for part in [purpose, table, row_id, column] {
        aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}

/// The unsealed key pyramid, in memory only.
pub struct KeyHierarchy {
    keks: BTreeMap<String, MasterKey>,
}

impl core::fmt::Debug for KeyHierarchy {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KeyHierarchy")
            .field("purposes", &self.keks.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl KeyHierarchy {
    /// Opens the stored KEKs with the master key.
    pub fn open(master: &MasterKey, wrapped: &[WrappedKek]) -> Result<Self, VaultError> {
        let mut keks = BTreeMap::new();
        for w in wrapped {
            let raw = zeroize::Zeroizing::new(open(
                master.expose_secret(),
                &w.sealed,
                &kek_aad(&w.purpose),
            )?);
            keks.insert(
                w.purpose.clone(),
                MasterKey::from_slice(&raw).map_err(|_| VaultError::Open)?,
            );
        }
        Ok(Self { keks })
    }

    /// Creates a KEK for each purpose that lacks one; returns all KEKs wrapped for storage.
    pub fn ensure_purposes(&mut self, master: &MasterKey, purposes: &[&str]) -> Vec<WrappedKek> {
        for p in purposes {
            self.keks
                .entry((*p).to_owned())
                .or_insert_with(MasterKey::generate);
        }
        self.wrap_all(master)
    }

    /// Wraps every KEK under `master`: after a master-key rotation, store these in place
    /// of the old ones; no row needs touching.
    pub fn wrap_all(&self, master: &MasterKey) -> Vec<WrappedKek> {
        self.keks
            .iter()
            .map(|(purpose, kek)| WrappedKek {
                purpose: purpose.clone(),
                sealed: seal(
                    master.expose_secret(),
                    kek.expose_secret(),
                    &kek_aad(purpose),
                ),
            })
            .collect()
    }

    fn kek(&self, purpose: &str) -> Result<&MasterKey, VaultError> {
        self.keks
            .get(purpose)
            .ok_or_else(|| VaultError::UnknownPurpose(purpose.to_owned()))
    }

    /// Seals one column value of one row, bound to (purpose, table, row id, column).
    pub fn seal_row(
        &self,
        purpose: &str,
        table: &str,
        row_id: &str,
        column: &str,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, VaultError> {
        Ok(seal(
            self.kek(purpose)?.expose_secret(),
            plaintext,
            &row_aad(purpose, table, row_id, column),
        ))
    }

    /// A keyed hash (HMAC-SHA256) under the purpose's KEK: for values the server must look
    /// up by equality (identifier hashes) but should not keep in a form anyone can test
    /// guesses against. Use a purpose for keyed hashing only, never also for sealing.
    pub fn keyed_hash(
        &self,
        purpose: &str,
        label: &str,
        data: &[u8],
    ) -> Result<[u8; 32], VaultError> {
        use hmac::Mac;
        let mut mac =
            <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(self.kek(purpose)?.expose_secret())
                .map_err(|_| VaultError::Open)?;
        mac.update(b"cachet keyed hash v1");
        mac.update(&(label.len() as u32).to_be_bytes());
        mac.update(label.as_bytes());
        mac.update(data);
        Ok(mac.finalize().into_bytes().into())
    }

    /// Opens a value sealed by [`Self::seal_row`] for the same row and column.
    pub fn open_row(
        &self,
        purpose: &str,
        table: &str,
        row_id: &str,
        column: &str,
        sealed: &[u8],
    ) -> Result<Vec<u8>, VaultError> {
        open(
            self.kek(purpose)?.expose_secret(),
            sealed,
            &row_aad(purpose, table, row_id, column),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_open_only_in_place_and_rotation_keeps_them() {
        let master = MasterKey::generate();
        let mut h = KeyHierarchy::open(&master, &[]).unwrap();
        let wrapped = h.ensure_purposes(&master, &["profiles", "audit"]);
        let sealed = h
            .seal_row("profiles", "users", "u_1", "display_name", b"Dr. Martin")
            .unwrap();
        assert_eq!(
            h.open_row("profiles", "users", "u_1", "display_name", &sealed)
                .unwrap(),
            b"Dr. Martin"
        );
        // Swapped into another row or column: refused.
        assert_eq!(
            h.open_row("profiles", "users", "u_2", "display_name", &sealed),
            Err(VaultError::Open)
        );
        assert_eq!(
            h.open_row("profiles", "users", "u_1", "phone_hash", &sealed),
            Err(VaultError::Open)
        );
        assert!(h
            .open_row("audit", "users", "u_1", "display_name", &sealed)
            .is_err());

        // Rotate the master key: re-wrap KEKs, rows untouched.
        let new_master = MasterKey::generate();
        let rewrapped = h.wrap_all(&new_master);
        assert!(KeyHierarchy::open(&new_master, &wrapped).is_err());
        let h2 = KeyHierarchy::open(&new_master, &rewrapped).unwrap();
        assert_eq!(
            h2.open_row("profiles", "users", "u_1", "display_name", &sealed)
                .unwrap(),
            b"Dr. Martin"
        );
        // A KEK wrapped for one purpose cannot be relabelled as another.
        let mut relabelled = rewrapped.clone();
        relabelled[0].purpose = "oprf-shares".into();
        assert!(KeyHierarchy::open(&new_master, &relabelled).is_err());
    }
}
