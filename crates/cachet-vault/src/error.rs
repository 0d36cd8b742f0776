//! The one error type of this crate.

/// What can go wrong with shares, keys and sealed rows.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
#[non_exhaustive]
pub enum VaultError {
    /// A share token is not in the `cachet-share-v1:` format.
    #[error("not a cachet key share: {0}")]
    MalformedShare(&'static str),
    /// A share does not match the digest recorded for its index: mistyped, corrupted or
    /// from another vault.
    #[error("share {index} is corrupted or belongs to another vault")]
    CorruptShare {
        /// Index of the share (1-based, as printed on it).
        index: u8,
    },
    /// The same share was entered twice.
    #[error("share {index} was already entered")]
    DuplicateShare {
        /// Index of the share.
        index: u8,
    },
    /// The shares combined to something that is not the master key.
    #[error("the shares do not combine to this vault's master key")]
    WrongMasterKey,
    /// Invalid threshold or share count.
    #[error("invalid sharing: {0}")]
    InvalidSharing(&'static str),
    /// A sealed row or wrapped key did not open (wrong key, wrong row, tampered).
    #[error("sealed data did not open: wrong key, moved or tampered")]
    Open,
    /// No KEK exists for this purpose.
    #[error("no key-encryption key for purpose {0:?}")]
    UnknownPurpose(String),
    /// A sealed share did not open with this key: it was sealed to another holder.
    #[error("this sealed share belongs to another holder (or was tampered with)")]
    NotYourShare,
    /// The server is sealed: its master key is not in memory.
    #[error("the server is sealed; operators must unseal it (cachet operator unseal)")]
    Sealed,
    /// A vault operation needs an initialised vault.
    #[error("no master key protects this server yet (cachet operator init)")]
    NotInitialised,
    /// `init` or `import` on a server that already has a vault.
    #[error("this server already has a master key")]
    AlreadyInitialised,
    /// `init` on a database that already holds records in the clear.
    #[error("the vault must be initialised before the first record is stored")]
    NeedsEmptyDatabase,
    /// A stored or imported vault document is malformed.
    #[error("not a valid vault document: {0}")]
    BadConfig(&'static str),
    /// Another node changed the vault at the same time.
    #[error("the vault changed concurrently on another node; retry")]
    ConcurrentChange,
}
