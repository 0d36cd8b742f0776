//! The key ring a virtual device holds: every Box and Sign secret key the user has had,
//! and the backup key of the encrypted message backup. Sealed with secretbox under the
//! wrapping key from [`crate::RecoveryKeys`].
//!
//! Layout of the sealed envelope: `nonce(24) ‖ tag(16) ‖ ciphertext` (secretbox), the
//! plaintext being the protobuf [`KeyRingWire`] below. The user id is inside, so an
//! envelope of one user cannot be passed off as another's.

use cachet_crypto::secretbox::{self, SecretBox};
use cachet_crypto::{BoxKeyPair, BoxSecretKey, Nonce, SignKeyPair, SymmetricKey};
use prost::Message;
use zeroize::Zeroizing;

use crate::RecoveryError;

const KEY_RING_VERSION: u32 = 1;

/// One generation of installation keys.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct KeyGeneration {
    /// The server's key version for this generation.
    pub key_version: u32,
    /// Box Key pair.
    pub box_keys: BoxKeyPair,
    /// Sign Key pair.
    pub sign_keys: SignKeyPair,
}

/// Every secret a user needs to get their data back on a new installation.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct KeyRing {
    /// Whose keys these are.
    pub user_id: String,
    /// All generations, oldest first; the last is current.
    pub generations: Vec<KeyGeneration>,
    /// Key of the encrypted message backup.
    pub backup_key: SymmetricKey,
}

/// Protobuf encoding of the key ring (private: secrets only leave through [`KeyRing`]).
#[derive(Clone, PartialEq, Message)]
struct KeyRingWire {
    #[prost(uint32, tag = "1")]
    version: u32,
    #[prost(string, tag = "2")]
    user_id: String,
    #[prost(message, repeated, tag = "3")]
    generations: Vec<GenerationWire>,
    #[prost(bytes = "vec", tag = "4")]
    backup_key: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct GenerationWire {
    #[prost(uint32, tag = "1")]
    key_version: u32,
    #[prost(bytes = "vec", tag = "2")]
    box_secret: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    sign_seed: Vec<u8>,
}

impl KeyRing {
    /// The current (last) generation.
    pub fn current(&self) -> Option<&KeyGeneration> {
        self.generations.last()
    }

    /// Seals the key ring under `wrap_key`.
    pub fn seal(&self, wrap_key: &SymmetricKey) -> Vec<u8> {
        self.seal_with_nonce(wrap_key, &Nonce::random())
    }

    /// [`KeyRing::seal`] under a given nonce. For test vectors only: a nonce must never
    /// be used twice under one wrapping key.
    pub fn seal_with_nonce(&self, wrap_key: &SymmetricKey, nonce: &Nonce) -> Vec<u8> {
        let wire = KeyRingWire {
            version: KEY_RING_VERSION,
            user_id: self.user_id.clone(),
            generations: self
                .generations
                .iter()
                .map(|g| GenerationWire {
                    key_version: g.key_version,
                    box_secret: g.box_keys.secret.expose_secret().to_vec(),
                    sign_seed: g.sign_keys.expose_seed().to_vec(),
                })
                .collect(),
            backup_key: self.backup_key.expose_secret().to_vec(),
        };
        let plaintext = Zeroizing::new(wire.encode_to_vec());
        let mut sealed = nonce.as_bytes().to_vec();
        sealed.extend_from_slice(&SecretBox::new(wrap_key).seal_with_nonce(&plaintext, nonce));
        let mut wire = wire;
        for g in &mut wire.generations {
            zeroize::Zeroize::zeroize(&mut g.box_secret);
            zeroize::Zeroize::zeroize(&mut g.sign_seed);
        }
        zeroize::Zeroize::zeroize(&mut wire.backup_key);
        sealed
    }

    /// Opens a sealed key ring and checks that it belongs to `user_id`.
    pub fn open(
        sealed: &[u8],
        wrap_key: &SymmetricKey,
        user_id: &str,
    ) -> Result<Self, RecoveryError> {
        let plaintext = Zeroizing::new(
            secretbox::open_prefixed(sealed, wrap_key)
                .map_err(|_| RecoveryError::WrongPasswordOrDamaged)?,
        );
        let wire = KeyRingWire::decode(plaintext.as_slice())
            .map_err(|e| RecoveryError::MalformedKeyRing(e.to_string()))?;
        if wire.version != KEY_RING_VERSION {
            return Err(RecoveryError::MalformedKeyRing(format!(
                "unknown version {}",
                wire.version
            )));
        }
        if wire.user_id != user_id {
            return Err(RecoveryError::MalformedKeyRing(
                "key ring of another user".into(),
            ));
        }
        let bad = |e: cachet_crypto::CryptoError| RecoveryError::MalformedKeyRing(e.to_string());
        let generations = wire
            .generations
            .iter()
            .map(|g| {
                Ok(KeyGeneration {
                    key_version: g.key_version,
                    box_keys: BoxKeyPair::from_secret(
                        BoxSecretKey::from_slice(&g.box_secret).map_err(bad)?,
                    ),
                    sign_keys: SignKeyPair::from_seed_slice(&g.sign_seed).map_err(bad)?,
                })
            })
            .collect::<Result<Vec<_>, RecoveryError>>()?;
        Ok(Self {
            user_id: wire.user_id.clone(),
            generations,
            backup_key: SymmetricKey::from_slice(&wire.backup_key).map_err(bad)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> KeyRing {
        KeyRing {
            user_id: "u_1".into(),
            generations: vec![
                KeyGeneration {
                    key_version: 1,
                    box_keys: BoxKeyPair::generate(),
                    sign_keys: SignKeyPair::generate(),
                },
                KeyGeneration {
                    key_version: 2,
                    box_keys: BoxKeyPair::generate(),
                    sign_keys: SignKeyPair::generate(),
                },
            ],
            backup_key: SymmetricKey::generate(),
        }
    }

    #[test]
    fn seal_open_and_failures() {
        let (ring, key) = (ring(), SymmetricKey::generate());
        let sealed = ring.seal(&key);
        assert_eq!(KeyRing::open(&sealed, &key, "u_1").unwrap(), ring);
        assert_eq!(ring.current().unwrap().key_version, 2);
        assert_eq!(
            KeyRing::open(&sealed, &SymmetricKey::generate(), "u_1").unwrap_err(),
            RecoveryError::WrongPasswordOrDamaged
        );
        assert!(matches!(
            KeyRing::open(&sealed, &key, "u_2"),
            Err(RecoveryError::MalformedKeyRing(_))
        ));
        let mut tampered = sealed.clone();
        tampered[50] ^= 1;
        assert_eq!(
            KeyRing::open(&tampered, &key, "u_1").unwrap_err(),
            RecoveryError::WrongPasswordOrDamaged
        );
    }
}
