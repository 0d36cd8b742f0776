//! What the cachet data server and key server share, written once:
//!
//! * [`vault`]: the key hierarchy's view of a server's database ([`vault::StorageVault`])
//!   and the holder check of a split;
//! * [`audit`]: the hash-chained operator audit log's rows and statements;
//! * [`challenge`]: the statements of the one-time code challenges;
//! * [`identifier`]: which phone numbers and e-mail addresses a code can be sent to;
//! * [`recovery`]: the statements of a recovery-account table (the data server's
//!   `recovery_accounts`, the key server's `accounts`);
//! * [`errors`]: which database failures mean "unavailable", how vault refusals and
//!   errors answer over HTTP (the JSON error body), what shared checks need of an error;
//! * [`signed`]: reading a signed request's headers, what its signature covers, and the
//!   record that refuses its replay;
//! * [`private_files`]: data directories `0700` and files `0600`, whatever the umask;
//! * `testing` (feature `testing`): a throwaway PostgreSQL database for the servers' tests.
#![forbid(unsafe_code)]

pub mod audit;
pub mod challenge;
pub mod errors;
pub mod identifier;
pub mod private_files;
pub mod recovery;
pub mod signed;
#[cfg(feature = "testing")]
pub mod testing;
pub mod vault;

/// Milliseconds since the Unix epoch: the servers' clock for expiry, rate limits and
/// audit timestamps (0 if the system clock is before 1970).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
