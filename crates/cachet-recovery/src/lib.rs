//! Sans-IO core of cachet's virtual device: password recovery of a user's key ring
//! across two independent servers, neither of which can read it or test a password
//! guess offline.
//!
//! The weakness of the original two-server design (ePrint 2025/1512) is that one server
//! alone either holds the secret that encrypts the key ring or sees enough of the password
//! to check guesses offline. Here the password is turned into a key by a distributed
//! oblivious PRF:
//!
//! 1. The client blinds `H1(user_id, password)` with a random scalar ([`oprf::blind`]).
//! 2. Each server raises the blinded point to its own key share and proves, with a DLEQ
//!    proof against its public share, that it did ([`oprf::ServerShare::evaluate`]).
//! 3. The client checks both proofs, unblinds the sum and hashes it: the OPRF output under
//!    the joint key `k1 + k2`, which neither server knows ([`oprf::finalize`]).
//! 4. The output goes through Argon2id and HKDF into a wrapping key for the key ring and
//!    a signing key that proves a successful recovery to the servers ([`RecoveryKeys`]).
//!
//! A server with its own database and share still needs the other server's share to
//! evaluate the PRF on a guess, so every guess costs one online, rate-limited request
//! at the other server.
#![forbid(unsafe_code)]

mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod keyring;
pub mod oprf;
#[doc(hidden)]
pub mod testing;
pub mod wire;

pub use error::RecoveryError;
pub use keyring::KeyRing;

use cachet_crypto::{SignKeyPair, SymmetricKey};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

/// Cost of the Argon2id step after the OPRF. Defence in depth: it only matters if both
/// servers are corrupt together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HardeningParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
}

impl HardeningParams {
    /// What cachet uses: 64 MiB, 3 passes (about 0.2 s on one desktop core).
    pub const RECOMMENDED: Self = Self {
        memory_kib: 64 * 1024,
        iterations: 3,
    };
    /// For tests and demos only.
    pub const INSECURE_FAST: Self = Self {
        memory_kib: 64,
        iterations: 1,
    };
}

/// Keys derived from a successful OPRF run.
pub struct RecoveryKeys {
    /// Encrypts the key ring (secretbox).
    pub wrap_key: SymmetricKey,
    /// Signs the servers' challenges, so that a server can tell a successful recovery
    /// from a failed guess and count only failures against the rate limit. Its public key
    /// is registered with both servers at enrolment.
    pub auth_key: SignKeyPair,
}

impl core::fmt::Debug for RecoveryKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RecoveryKeys")
            .field("auth_public", &self.auth_key.public())
            .finish_non_exhaustive()
    }
}

impl RecoveryKeys {
    /// Derives the keys from the OPRF output: Argon2id (salted with the user id), then
    /// HKDF-SHA-256 with one label per key.
    pub fn derive(
        output: &oprf::OprfOutput,
        user_id: &str,
        params: HardeningParams,
    ) -> Result<Self, RecoveryError> {
        let argon = argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(params.memory_kib, params.iterations, 1, Some(32))
                .map_err(|_| RecoveryError::Parameters)?,
        );
        let salt =
            cachet_crypto::sha256(&[b"cachet recovery salt v1:", user_id.as_bytes()].concat());
        let mut hardened = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(output.expose_secret(), &salt, hardened.as_mut())
            .map_err(|_| RecoveryError::Parameters)?;
        let hk = Hkdf::<Sha256>::new(Some(b"cachet recovery v1"), hardened.as_ref());
        let mut wrap = Zeroizing::new([0u8; 32]);
        let mut auth = Zeroizing::new([0u8; 32]);
        hk.expand(b"key ring wrapping key", wrap.as_mut())
            .map_err(|_| RecoveryError::Parameters)?;
        hk.expand(b"recovery authentication key", auth.as_mut())
            .map_err(|_| RecoveryError::Parameters)?;
        Ok(Self {
            wrap_key: SymmetricKey::from_bytes(*wrap),
            auth_key: SignKeyPair::from_seed(*auth),
        })
    }
}
