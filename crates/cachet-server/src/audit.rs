//! The hash chain of the operator audit log (whitepaper 10.6).
//!
//! ```text
//! canonical(e) = AuditEntry{seq, timestamp, operator_id, action, subject, detail} as protobuf
//!                (prev_hash and hash left empty)
//! hash(e)      = SHA-256(prev_hash || canonical(e))
//! prev_hash    = hash of the entry before; 32 zero bytes for entry 1
//! ```
//!
//! Changing, removing or reordering any entry breaks every hash after it, so a verifier who
//! kept the last hash (or who compares copies) detects tampering.

use cachet_proto::v1::AuditEntry;

use crate::error::{Error, Result};
use crate::store::Store;

pub use cachet_proto::audit::{entry_hash, GENESIS_HASH};

/// Checks a run of consecutive entries. `prev` is the entry before the first one (`None`
/// when the run starts at sequence 1). Returns the last entry's hash.
pub fn verify_entries(prev: Option<&AuditEntry>, entries: &[AuditEntry]) -> Result<Vec<u8>> {
    cachet_proto::audit::verify_entries(prev, entries).map_err(|e| match e {
        cachet_proto::ProtoError::AuditChainBroken { seq, reason } => {
            Error::AuditChainBroken { seq, reason }
        }
        other => Error::Internal(other.to_string()),
    })
}

/// Walks the whole audit log of `store` and checks the chain. Returns the number of
/// entries and the hash of the last one (worth keeping elsewhere: it pins the history).
pub async fn verify_audit_log(store: &dyn Store) -> Result<(u64, Vec<u8>)> {
    const PAGE: u32 = 500;
    let mut last: Option<AuditEntry> = None;
    let mut head = GENESIS_HASH.to_vec();
    let mut count = 0u64;
    loop {
        let after = last.as_ref().map_or(0, |e| e.seq);
        let page = store.audit_entries(after, PAGE).await?;
        if page.is_empty() {
            return Ok((count, head));
        }
        head = verify_entries(last.as_ref(), &page)?;
        count += page.len() as u64;
        last = page.last().cloned();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Vec<AuditEntry> {
        let mut prev = GENESIS_HASH.to_vec();
        (1..=n)
            .map(|seq| {
                let mut e = AuditEntry {
                    seq,
                    timestamp: 1000 + seq as i64,
                    operator_id: "op:alice".into(),
                    action: "verify_profile".into(),
                    subject: format!("u_{seq}"),
                    detail: String::new(),
                    prev_hash: prev.clone(),
                    hash: Vec::new(),
                    ..Default::default()
                };
                e.hash = entry_hash(&prev, &e).to_vec();
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    #[test]
    fn a_good_chain_verifies_and_any_change_breaks_it() {
        let entries = chain(4);
        assert!(verify_entries(None, &entries).is_ok());
        assert!(verify_entries(Some(&entries[1]), &entries[2..]).is_ok());

        let mut edited = entries.clone();
        edited[1].subject = "u_someone_else".into();
        assert!(matches!(
            verify_entries(None, &edited),
            Err(Error::AuditChainBroken { seq: 2, .. })
        ));

        let mut dropped = entries.clone();
        dropped.remove(2);
        assert!(matches!(
            verify_entries(None, &dropped),
            Err(Error::AuditChainBroken { seq: 4, .. })
        ));

        // Rewriting an entry and recomputing its own hash still breaks the next link.
        let mut rehashed = entries;
        rehashed[0].detail = "covered up".into();
        rehashed[0].hash = entry_hash(&GENESIS_HASH, &rehashed[0]).to_vec();
        assert!(matches!(
            verify_entries(None, &rehashed),
            Err(Error::AuditChainBroken { seq: 2, .. })
        ));
    }
}
