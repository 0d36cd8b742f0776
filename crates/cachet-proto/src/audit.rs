//! The hash chain of the operator audit log (whitepaper 10.6), shared by the server that
//! writes it and the operators who check it (`cachet operator audit`).
//!
//! ```text
//! canonical(e) = AuditEntry{seq, timestamp, operator_id, action, subject, detail} as protobuf
//!                (prev_hash, hash and the opened_* copies left empty)
//! hash(e)      = SHA-256(prev_hash || canonical(e))
//! prev_hash    = hash of the entry before; 32 zero bytes for entry 1
//! ```
//!
//! Changing, removing or reordering any entry breaks every hash after it, so a verifier who
//! kept the last hash (or who compares copies) detects tampering.

use prost::Message;

use crate::v1::AuditEntry;
use crate::ProtoError;

/// `prev_hash` of the first entry.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// The hash of `entry` chained after `prev_hash`.
pub fn entry_hash(prev_hash: &[u8], entry: &AuditEntry) -> [u8; 32] {
    let canonical = AuditEntry {
        seq: entry.seq,
        timestamp: entry.timestamp,
        operator_id: entry.operator_id.clone(),
        action: entry.action.clone(),
        subject: entry.subject.clone(),
        detail: entry.detail.clone(),
        ..Default::default()
    }
    .encode_to_vec();
    cachet_crypto::sha256(&[prev_hash, &canonical].concat())
}

/// Checks a run of consecutive entries. `prev` is the entry before the first one (`None`
/// when the run starts at sequence 1). Returns the last entry's hash.
pub fn verify_entries(
    prev: Option<&AuditEntry>,
    entries: &[AuditEntry],
) -> Result<Vec<u8>, ProtoError> {
    let (mut expected_seq, mut prev_hash) = match prev {
        Some(p) => (p.seq + 1, p.hash.clone()),
        None => (1, GENESIS_HASH.to_vec()),
    };
    for e in entries {
        if e.seq != expected_seq {
            return Err(ProtoError::AuditChainBroken {
                seq: e.seq,
                reason: "sequence gap",
            });
        }
        if e.prev_hash != prev_hash {
            return Err(ProtoError::AuditChainBroken {
                seq: e.seq,
                reason: "prev_hash does not match the previous entry",
            });
        }
        if e.hash != entry_hash(&prev_hash, e) {
            return Err(ProtoError::AuditChainBroken {
                seq: e.seq,
                reason: "hash does not match the entry",
            });
        }
        prev_hash = e.hash.clone();
        expected_seq += 1;
    }
    Ok(prev_hash)
}
