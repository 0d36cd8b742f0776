//! The cachet client SDK: what an application embeds to take part in cachet's
//! end-to-end encrypted messaging (a reproduction of the Doctolib Connect protocol).
//!
//! Everything secret happens here, on the device; the server stores and forwards
//! ciphertext only.
//!
//! * Keys on the device ([`vault`]): the Box Key, Sign Key, Database Key and Local File
//!   Key are generated at registration and each sealed under a master key, itself
//!   protected by a [`MasterKeyProtector`] (Argon2id over the PIN or passphrase).
//! * The application lock ([`lockout`]): a 5-digit PIN or a passphrase, progressively
//!   longer lock-outs after wrong attempts, an unlock that lasts ten minutes after the
//!   last use, remembered across processes with the key in the kernel keyring
//!   ([`session_keyring`]), never on disk.
//! * The local store: an SQLCipher database keyed by the Database Key, and local files
//!   sealed under the Local File Key ([`LocalFiles`]).
//! * Messaging ([`Client::send_text`], [`Client::receive`]), groups, attachments
//!   ([`Client::send_file`], [`Client::fetch_attachment`]), patient cases
//!   ([`Client::create_case`]) and key verification ([`Client::safety_number`],
//!   [`trust`]).
//!
//! The entry points are [`Client::start_registration`] for a new profile and
//! [`Client::open`] for an existing one.
#![forbid(unsafe_code)]

mod api;
mod attachments;
mod cases;
mod client;
pub mod clock;
mod error;
mod groups;
mod local_files;
pub mod lockout;
mod messaging;
pub mod operator;
pub mod recovery;
pub mod secret;
pub mod session_keyring;
mod state;
mod store;
pub mod trust;
mod trust_log;
pub mod vault;

pub use api::RetryPolicy;
pub use attachments::{no_progress, AttachmentInfo, PendingUpload, Progress};
pub use cachet_trust::{SignedTreeHead, TrustError};
pub use cases::{open_case_fields, seal_case_fields, Case};
pub use client::{
    NewProfile, PendingRegistration, SafetyNumber, BUILD_NUMBER, PINNED_CERTIFICATE_FILE,
};
pub use error::{human_duration, ClientError, Result};
pub use groups::Group;
pub use local_files::{seal_local_record, LocalFiles, LOCAL_FILE_MAGIC};
pub use messaging::{Conversation, Event, MessageKind, StoredMessage};
pub use operator::{AuditReport, OperatorClient, Split};
pub use secret::{SecretKind, UnlockSecret};
pub use state::{Client, ClientOptions, Contact, KeyChangeReport, OperatorPins};
pub use trust::{KeyTrust, SignedChangePolicy, TrustState};
pub use trust_log::{format_head, parse_head, LogAudit};
pub use vault::{
    Argon2Params, Argon2idProtector, InstallationKeys, KeyHistory, MasterKeyProtector,
};

pub use cachet_crypto::attachment::FormatVersion;

/// The protobuf types of the wire format, for applications that inspect pointers.
pub use cachet_proto::v1 as proto;
