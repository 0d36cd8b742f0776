//! Wire types of cachet and the signed-request scheme.
//!
//! * [`v1`]: the protobuf messages compiled from `proto/cachet/v1/*.proto` (prost).
//!   Unknown fields are skipped on decode, so newer peers can add fields.
//! * [`decode`]: bounded decoding of untrusted bytes; never panics.
//! * [`auth`]: the `x-siilo-uid` / `x-siilo-sig` request signatures (whitepaper 8.3),
//!   with the exact byte encoding defined in `docs/protocol.md`.
#![forbid(unsafe_code)]

pub mod audit;
pub mod auth;
pub mod decode;
mod error;
#[doc(hidden)]
pub mod fuzzing;

pub use error::ProtoError;

/// Generated protobuf types, package `cachet.v1`.
#[allow(missing_docs, clippy::all)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/cachet.v1.rs"));
}

pub use prost::Message;

/// Current envelope format version.
pub const ENVELOPE_VERSION: u32 = 1;

/// Domain label for contact-discovery hashes (whitepaper 10.4).
pub const DISCOVERY_LABEL: &[u8] = b"cachet-discovery-v1:";

/// Normalises a phone number or e-mail address before hashing: trims, lowercases
/// e-mail addresses, and keeps only `+` and digits of phone numbers.
pub fn normalise_identifier(identifier: &str) -> String {
    let trimmed = identifier.trim();
    if trimmed.contains('@') {
        trimmed.to_lowercase()
    } else {
        trimmed
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == '+')
            .collect()
    }
}

/// The hash under which a client looks up an identifier in the directory.
pub fn discovery_hash(identifier: &str) -> [u8; 32] {
    let normalised = normalise_identifier(identifier);
    cachet_crypto::sha256(&[DISCOVERY_LABEL, normalised.as_bytes()].concat())
}

/// The bytes a user signs to authorise a key change: the encoded [`v1::KeyChange`].
pub fn key_change_bytes(change: &v1::KeyChange) -> Vec<u8> {
    change.encode_to_vec()
}
