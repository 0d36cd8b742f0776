//! Statements of the `challenges` table both servers keep: one-time codes (hashed) sent
//! to identifiers (hashed), for registration at the data server and for recovery at both.

/// `challenge_id, identifier_hash, code_hash, attempts, created_at, expires_at`.
pub type ChallengeTuple = (String, Vec<u8>, Vec<u8>, i64, i64, i64);

/// Saves a challenge: `$1..$6` in [`ChallengeTuple`] order (bind with
/// [`crate::bind_challenge!`]).
pub const INSERT_SQL: &str = "INSERT INTO challenges (challenge_id, identifier_hash, \
     code_hash, attempts, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)";

/// How many challenges of identifier hash `$1` are still live at `$2`.
pub const LIVE_COUNT_SQL: &str =
    "SELECT COUNT(*) FROM challenges WHERE identifier_hash = $1 AND expires_at >= $2";

/// Challenge `$1`, as a [`ChallengeTuple`].
pub const SELECT_SQL: &str =
    "SELECT challenge_id, identifier_hash, code_hash, attempts, created_at, expires_at \
     FROM challenges WHERE challenge_id = $1";

/// Deletes challenge `$1`.
pub const DELETE_SQL: &str = "DELETE FROM challenges WHERE challenge_id = $1";

/// Counts one more wrong code for challenge `$1`, returning the new count.
pub const FAILED_ATTEMPT_SQL: &str =
    "UPDATE challenges SET attempts = attempts + 1 WHERE challenge_id = $1 RETURNING attempts";

/// Deletes the challenges that expired before `$1`.
pub const PURGE_SQL: &str = "DELETE FROM challenges WHERE expires_at < $1";

/// Binds a challenge to [`INSERT_SQL`].
#[macro_export]
macro_rules! bind_challenge {
    ($query:expr, $c:expr) => {
        $query
            .bind(&$c.challenge_id)
            .bind(&$c.identifier_hash)
            .bind(&$c.code_hash)
            .bind(i64::from($c.attempts))
            .bind($c.created_at)
            .bind($c.expires_at)
    };
}
