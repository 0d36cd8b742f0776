//! Rows and statements of the hash-chained operator audit log (`cachet_proto::audit`),
//! the same table in both servers' databases.

use cachet_proto::audit::{entry_hash, GENESIS_HASH};
use cachet_proto::v1::AuditEntry;

/// `seq, timestamp, operator_id, action, subject, detail, prev_hash, hash` as stored.
pub type AuditRow = (i64, i64, String, String, String, String, Vec<u8>, Vec<u8>);

/// `seq, hash` of the newest entry (none in an empty log).
pub const LAST_ENTRY_SQL: &str = "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1";

/// Appends an entry: `$1..$8` in [`AuditRow`] order.
pub const INSERT_ENTRY_SQL: &str =
    "INSERT INTO audit_log (seq, timestamp, operator_id, action, subject, detail, \
     prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// Entries with `seq > $1`, oldest first, at most `$2`.
pub const ENTRIES_AFTER_SQL: &str =
    "SELECT seq, timestamp, operator_id, action, subject, detail, prev_hash, hash \
     FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2";

/// PostgreSQL: one writer of the chain at a time across every connection and node, plain
/// reads not blocked. (SQLite's single writer needs no lock.)
pub const POSTGRES_LOCK_SQL: &str = "LOCK TABLE audit_log IN EXCLUSIVE MODE";

/// What an action writes to the log; sequence and hashes are the log's.
#[derive(Debug, Clone, Copy)]
pub struct Action<'a> {
    /// Time of the action, ms since the epoch.
    pub timestamp: i64,
    /// Who acted: `op:<name>` for an operator, `console` for an action on the server host.
    pub operator_id: &'a str,
    /// What was done.
    pub action: &'a str,
    /// On whom or what.
    pub subject: &'a str,
    /// Free text.
    pub detail: &'a str,
}

/// The entry that follows `last` (`seq` and `hash` of the newest stored entry, `None` for
/// an empty log), with its hash.
pub fn next_entry(last: Option<(i64, Vec<u8>)>, action: Action<'_>) -> AuditEntry {
    let (prev_seq, prev_hash) = last.unwrap_or((0, GENESIS_HASH.to_vec()));
    let mut entry = AuditEntry {
        seq: u64::try_from(prev_seq).unwrap_or(0) + 1,
        timestamp: action.timestamp,
        operator_id: action.operator_id.to_owned(),
        action: action.action.to_owned(),
        subject: action.subject.to_owned(),
        detail: action.detail.to_owned(),
        prev_hash,
        hash: Vec::new(),
        ..Default::default()
    };
    entry.hash = entry_hash(&entry.prev_hash, &entry).to_vec();
    entry
}

/// An entry read back from the log.
pub fn entry_from_row(row: AuditRow) -> AuditEntry {
    let (seq, timestamp, operator_id, action, subject, detail, prev_hash, hash) = row;
    AuditEntry {
        seq: u64::try_from(seq).unwrap_or(0),
        timestamp,
        operator_id,
        action,
        subject,
        detail,
        prev_hash,
        hash,
        ..Default::default()
    }
}

/// Binds an entry to [`INSERT_ENTRY_SQL`].
#[macro_export]
macro_rules! bind_audit_entry {
    ($query:expr, $entry:expr) => {
        $query
            .bind(i64::try_from($entry.seq).unwrap_or(i64::MAX))
            .bind($entry.timestamp)
            .bind(&$entry.operator_id)
            .bind(&$entry.action)
            .bind(&$entry.subject)
            .bind(&$entry.detail)
            .bind(&$entry.prev_hash)
            .bind(&$entry.hash)
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_chain_from_the_genesis_hash() {
        let action = Action {
            timestamp: 7,
            operator_id: "op:alice",
            action: "unseal",
            subject: "vault",
            detail: "",
        };
        let first = next_entry(None, action);
        assert_eq!(
            (first.seq, first.prev_hash.as_slice()),
            (1, &GENESIS_HASH[..])
        );
        let second = next_entry(Some((1, first.hash.clone())), action);
        assert_eq!(second.seq, 2);
        assert!(
            cachet_proto::audit::verify_entries(None, &[first.clone(), second.clone()]).is_ok()
        );
        let row: AuditRow = (
            2,
            7,
            second.operator_id.clone(),
            second.action.clone(),
            second.subject.clone(),
            second.detail.clone(),
            second.prev_hash.clone(),
            second.hash.clone(),
        );
        assert_eq!(entry_from_row(row), second);
    }
}
