//! Sans-IO server key hierarchy: what an HSM does for the servers, in software.
//!
//! * A **master key** exists only in memory. At rest it is split into Shamir shares
//!   (by default 7, any 5 of which open it); each share goes to one key holder
//!   ([`init`]). The server keeps a [`SealedRoot`]: a digest of every share, so a wrong or
//!   corrupted share is detected and named when it is entered, and a check value, so a
//!   wrong combination can never pass for the master key.
//! * The master key wraps one **key-encryption key** per purpose (profiles, audit log,
//!   OPRF shares, ...); a KEK encrypts rows ([`KeyHierarchy`]). Rotating the master key
//!   re-wraps the KEKs only; the data stays as it is.
//! * A row is sealed with XChaCha20-Poly1305 under its purpose's KEK, with the table and
//!   row id as associated data, so a ciphertext moved to another row does not open.
//! * [`Vault`] is that hierarchy's life in a running server (sealed, unsealing,
//!   unsealed), over the server's own database through [`VaultStorage`].
#![forbid(unsafe_code)]

mod error;
#[doc(hidden)]
pub mod fuzzing;
mod hierarchy;
pub mod holder;
pub mod runtime;
mod shamir;

pub use error::VaultError;
pub use hierarchy::{KeyHierarchy, WrappedKek};
pub use runtime::{Status, Vault, VaultConfig, VaultStorage};
pub use shamir::{init, reshare, SealedRoot, ShareToken, UnsealProgress, Unsealer};

/// A 32-byte master key, only ever in memory.
pub type MasterKey = cachet_crypto::SymmetricKey;
