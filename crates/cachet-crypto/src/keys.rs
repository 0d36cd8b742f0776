//! Key newtypes: secrets that zeroize on drop, compare in constant time and never print,
//! and public keys as separate, freely copyable types.

use core::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::{CryptoError, KEY_LEN, NONCE_LEN};

fn array_from<const N: usize>(bytes: &[u8], what: &'static str) -> Result<[u8; N], CryptoError> {
    bytes.try_into().map_err(|_| CryptoError::InvalidLength {
        what,
        expected: N,
        got: bytes.len(),
    })
}

/// A 256-bit symmetric key: Database Key, Local File Key, Attachment Key, Case Key,
/// backup key. Boxed so that moves do not leave copies on the stack; zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SymmetricKey(Box<[u8; KEY_LEN]>);

/// What every boxed 32-byte secret here has: wrapping raw bytes or a checked slice,
/// exposing the bytes by a name that stands out, comparing in constant time, and a
/// `Debug` that prints nothing of it. The docs of `from_bytes` and `expose_secret` vary.
macro_rules! secret_key {
    ($name:ident, $what:literal, from_bytes: $from_bytes_doc:literal, expose_secret: $expose_doc:literal) => {
        impl $name {
            #[doc = $from_bytes_doc]
            pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
                Self(Box::new(bytes))
            }
            /// Wraps a slice, checking its length.
            pub fn from_slice(bytes: &[u8]) -> Result<Self, CryptoError> {
                Ok(Self::from_bytes(array_from(bytes, $what)?))
            }
            #[doc = $expose_doc]
            pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
                &self.0
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.0.ct_eq(&*other.0).into()
            }
        }
        impl Eq for $name {}

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }
    };
}

/// What every public byte string here has: parsing from a slice with its length checked,
/// its bytes, and a `Debug` that shows the first eight bytes in hex.
macro_rules! public_bytes {
    ($name:ident, $len:expr, $what:literal, from_slice: $from_slice_doc:literal, as_bytes: $as_bytes_doc:literal) => {
        impl $name {
            #[doc = $from_slice_doc]
            pub fn from_slice(bytes: &[u8]) -> Result<Self, CryptoError> {
                Ok(Self(array_from(bytes, $what)?))
            }
            #[doc = $as_bytes_doc]
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), hex_short(&self.0))
            }
        }
    };
}

impl SymmetricKey {
    /// A fresh key from the OS CSPRNG (`secure_random_bytes(32)` in the whitepaper).
    pub fn generate() -> Self {
        Self(Box::new(crate::random_bytes()))
    }
}

secret_key!(
    SymmetricKey,
    "symmetric key",
    from_bytes: "Wraps raw key bytes.",
    expose_secret: "The raw key. Named so that every use of a secret stands out in review."
);

/// A 24-byte XSalsa20 nonce.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Nonce(pub [u8; NONCE_LEN]);

impl Nonce {
    /// A random nonce; 192 bits make collisions negligible.
    pub fn random() -> Self {
        Self(crate::random_bytes())
    }
}

public_bytes!(
    Nonce,
    NONCE_LEN,
    "nonce",
    from_slice: "Parses a nonce, checking its length.",
    as_bytes: "The nonce bytes."
);

fn hex_short(bytes: &[u8]) -> String {
    bytes
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        + "…"
}

/// The public half of a Box Key (X25519).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BoxPublicKey(pub [u8; KEY_LEN]);

public_bytes!(
    BoxPublicKey,
    KEY_LEN,
    "box public key",
    from_slice: "Parses a public key, checking its length.",
    as_bytes: "The key bytes."
);

/// The secret half of a Box Key. Zeroized on drop, never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct BoxSecretKey(Box<[u8; KEY_LEN]>);

secret_key!(
    BoxSecretKey,
    "box secret key",
    from_bytes: "Wraps raw secret key bytes (libsodium's 32-byte `crypto_box` secret key).",
    expose_secret: "The raw secret key."
);

impl BoxSecretKey {
    /// The matching public key (X25519 base-point multiplication).
    pub fn public_key(&self) -> BoxPublicKey {
        let secret = x25519_dalek::StaticSecret::from(*self.0);
        BoxPublicKey(x25519_dalek::PublicKey::from(&secret).to_bytes())
    }
}

/// A Box Key pair (`crypto_box_keypair`).
#[derive(Clone, PartialEq, Eq)]
pub struct BoxKeyPair {
    /// The public key, published through the server.
    pub public: BoxPublicKey,
    /// The secret key, which never leaves the installation (or the virtual device).
    pub secret: BoxSecretKey,
}

impl BoxKeyPair {
    /// A fresh key pair from the OS CSPRNG.
    pub fn generate() -> Self {
        Self::from_secret(BoxSecretKey::from_bytes(crate::random_bytes()))
    }
    /// Rebuilds the pair from its secret half.
    pub fn from_secret(secret: BoxSecretKey) -> Self {
        Self {
            public: secret.public_key(),
            secret,
        }
    }
}

impl fmt::Debug for BoxKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoxKeyPair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// The public half of a Sign Key (Ed25519).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SignPublicKey(pub [u8; KEY_LEN]);

public_bytes!(
    SignPublicKey,
    KEY_LEN,
    "sign public key",
    from_slice: "Parses a public key, checking its length (not yet its validity: see [`Self::verifying_key`]).",
    as_bytes: "The key bytes."
);

impl SignPublicKey {
    /// Decodes the point and rejects keys of small order, which could make a signature
    /// verify for many messages.
    pub(crate) fn verifying_key(&self) -> Result<ed25519_dalek::VerifyingKey, CryptoError> {
        let key = ed25519_dalek::VerifyingKey::from_bytes(&self.0)
            .map_err(|_| CryptoError::InvalidPublicKey("not a valid Ed25519 point"))?;
        if key.is_weak() {
            return Err(CryptoError::InvalidPublicKey("Ed25519 key of small order"));
        }
        Ok(key)
    }
    /// The X25519 public key of the same key pair (the birational map of libsodium's
    /// `crypto_sign_ed25519_pk_to_curve25519`, as age does for SSH keys), so that
    /// someone known by a signing key can also be sent a sealed secret. Small-order keys
    /// are refused.
    pub fn to_box_public(&self) -> Result<BoxPublicKey, CryptoError> {
        Ok(BoxPublicKey(
            self.verifying_key()?.to_montgomery().to_bytes(),
        ))
    }
}

/// A Sign Key pair (Ed25519). Holds the 32-byte seed; zeroized on drop, never printed.
#[derive(Clone)]
pub struct SignKeyPair {
    signing: Box<ed25519_dalek::SigningKey>,
}

impl SignKeyPair {
    /// A fresh key pair from the OS CSPRNG (`crypto_sign_keypair`).
    pub fn generate() -> Self {
        Self::from_seed(crate::random_bytes())
    }
    /// Rebuilds the pair from its 32-byte seed (libsodium's `crypto_sign_seed_keypair`).
    pub fn from_seed(seed: [u8; KEY_LEN]) -> Self {
        Self {
            signing: Box::new(ed25519_dalek::SigningKey::from_bytes(&seed)),
        }
    }
    /// Parses a seed, checking its length.
    pub fn from_seed_slice(seed: &[u8]) -> Result<Self, CryptoError> {
        Ok(Self::from_seed(array_from(seed, "sign key seed")?))
    }
    /// The 32-byte seed, the whole secret.
    pub fn expose_seed(&self) -> [u8; KEY_LEN] {
        self.signing.to_bytes()
    }
    /// libsodium's 64-byte secret key layout: seed followed by public key.
    pub fn expose_libsodium_secret(&self) -> [u8; 64] {
        self.signing.to_keypair_bytes()
    }
    /// The public key.
    pub fn public(&self) -> SignPublicKey {
        SignPublicKey(self.signing.verifying_key().to_bytes())
    }
    /// The X25519 secret key matching [`SignPublicKey::to_box_public`] (libsodium's
    /// `crypto_sign_ed25519_sk_to_curve25519`: the first half of SHA-512 of the seed).
    pub fn to_box_secret(&self) -> BoxSecretKey {
        let mut scalar = self.signing.to_scalar_bytes();
        // Clamped as libsodium stores it (X25519 clamps again; the bytes then match).
        scalar[0] &= 248;
        scalar[31] &= 127;
        scalar[31] |= 64;
        let key = BoxSecretKey::from_bytes(scalar);
        scalar.zeroize();
        key
    }
    pub(crate) fn signing_key(&self) -> &ed25519_dalek::SigningKey {
        &self.signing
    }
}

impl PartialEq for SignKeyPair {
    fn eq(&self, other: &Self) -> bool {
        self.signing
            .to_bytes()
            .ct_eq(&other.signing.to_bytes())
            .into()
    }
}
impl Eq for SignKeyPair {}

impl fmt::Debug for SignKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignKeyPair")
            .field("public", &self.public())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_secrets() {
        let sym = SymmetricKey::from_bytes([0xAB; 32]);
        let boxes = BoxKeyPair::from_secret(BoxSecretKey::from_bytes([0xCD; 32]));
        let sign = SignKeyPair::from_seed([0xEF; 32]);
        let printed = format!("{sym:?} {boxes:?} {:?} {sign:?}", boxes.secret);
        for needle in ["abab", "cdcd", "efef", "171, 171", "205, 205", "239, 239"] {
            assert!(!printed.contains(needle), "{needle} leaked in {printed}");
        }
        assert!(printed.contains("redacted"));
    }

    #[test]
    fn lengths_are_checked() {
        assert_eq!(
            SymmetricKey::from_slice(&[0; 31]),
            Err(CryptoError::InvalidLength {
                what: "symmetric key",
                expected: 32,
                got: 31
            })
        );
        assert!(Nonce::from_slice(&[0; 32]).is_err());
        assert!(BoxPublicKey::from_slice(&[0; 33]).is_err());
    }

    #[test]
    fn small_order_sign_keys_are_rejected() {
        // The identity point encodes as 0x01 followed by zeros.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(SignPublicKey(identity).verifying_key().is_err());
        assert!(SignKeyPair::generate().public().verifying_key().is_ok());
    }
}
