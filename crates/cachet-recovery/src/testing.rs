//! Fixtures for the tests and benchmarks of this crate and of the servers that store its
//! envelopes. Not part of the API.

use cachet_crypto::{BoxKeyPair, SignKeyPair, SymmetricKey};

use crate::keyring::KeyGeneration;
use crate::KeyRing;

/// The key ring of a fresh installation of `user_id`: one generation (key version 1) of new
/// keys and a new backup key, what a client seals at its first enrolment.
pub fn fresh_key_ring(user_id: &str) -> KeyRing {
    KeyRing {
        user_id: user_id.into(),
        generations: vec![KeyGeneration {
            key_version: 1,
            box_keys: BoxKeyPair::generate(),
            sign_keys: SignKeyPair::generate(),
        }],
        backup_key: SymmetricKey::generate(),
    }
}
