//! The application lock (whitepaper 10.2): wrong PINs trigger progressively longer
//! lock-outs, and a successful unlock holds for ten minutes after the last use.
//!
//! The failure counter lives in `lockout.json` in the profile, so restarting the program
//! does not reset it. Every attempt takes an exclusive lock on `lockout.lock` and is
//! counted — the incremented counter written and flushed to disk — before the secret is
//! checked; a success resets the counter afterwards. Attempts made at the same time by
//! several processes therefore queue on the lock, each sees the count of those before it,
//! and once the lock-out engages no further secret is tried. A process killed while it
//! checks the secret leaves its attempt counted. An attempt made during a lock-out is
//! refused without trying the secret and recorded too, apart: it neither lengthens the
//! lock-out nor moves the schedule, which counts the secrets actually tried.
//!
//! A `lockout.json` that cannot be read or parsed fails closed: it counts as the longest
//! lock-out, starting when the damage is found.
//!
//! The counter stops someone guessing at the keyboard; it cannot stop someone who copies
//! the profile and guesses offline (whitepaper 10.3). Against that, only the Argon2id cost
//! and the strength of the secret help: a passphrase, not a PIN.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{ClientError, Result};
use crate::vault::{private_file_options, write_atomic};

/// How long an unlock lasts after the last use (whitepaper 10.2).
pub const UNLOCK_WINDOW: Duration = Duration::from_secs(10 * 60);

/// Failures allowed before the first delay.
pub const FREE_ATTEMPTS: u32 = 2;

/// The longest lock-out of the schedule.
pub const LONGEST_LOCKOUT: Duration = Duration::from_secs(24 * 3600);

/// The delay imposed after `failures` consecutive wrong secrets: none for the first two,
/// then 30 s, 1 min, 5 min, 15 min, 1 h, and doubling from there up to 24 h.
pub fn delay_after(failures: u32) -> Duration {
    const STEPS: [u64; 5] = [30, 60, 5 * 60, 15 * 60, 60 * 60];
    if failures <= FREE_ATTEMPTS {
        return Duration::ZERO;
    }
    let step = (failures - FREE_ATTEMPTS - 1) as usize;
    let secs = match STEPS.get(step) {
        Some(s) => *s,
        None => {
            let doublings = (step - STEPS.len() + 1).min(5) as u32;
            (3600u64 << doublings).min(LONGEST_LOCKOUT.as_secs())
        }
    };
    Duration::from_secs(secs)
}

/// The first count of failures that waits [`LONGEST_LOCKOUT`]: what a damaged counter
/// file is taken for.
fn longest_lockout_failures() -> u32 {
    let mut n = FREE_ATTEMPTS + 1;
    while delay_after(n) < LONGEST_LOCKOUT {
        n += 1;
    }
    n
}

#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct LockoutState {
    /// Wrong secrets tried (or attempts counted and not yet cleared by a success).
    failures: u32,
    locked_until_ms: i64,
    /// Attempts refused untried during a lock-out.
    #[serde(default, skip_serializing_if = "is_zero")]
    refused: u32,
    /// Set when the lock-out was imposed because the file was found damaged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    damaged_at_ms: Option<i64>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl LockoutState {
    fn damaged(now_ms: i64) -> Self {
        Self {
            refused: 0,
            failures: longest_lockout_failures(),
            locked_until_ms: now_ms.saturating_add(crate::clock::ms(LONGEST_LOCKOUT)),
            damaged_at_ms: Some(now_ms),
        }
    }

    /// The error for an attempt refused while this lock-out runs, if one runs.
    fn refusal(&self, now_ms: i64) -> Option<ClientError> {
        if now_ms >= self.locked_until_ms {
            return None;
        }
        let retry_after = Duration::from_millis(
            u64::try_from(self.locked_until_ms.saturating_sub(now_ms)).unwrap_or(0),
        );
        Some(match self.damaged_at_ms {
            Some(_) => ClientError::LockoutDamaged { retry_after },
            None => ClientError::LockedOut { retry_after },
        })
    }
}

/// An unlock attempt, counted as a failure before the secret is checked.
#[derive(Debug)]
#[must_use = "a counted attempt is either reported wrong or cleared by a success"]
pub struct Attempt {
    failures: u32,
    locked_for: Duration,
}

impl Attempt {
    /// The error to report when the secret turned out wrong (the failure is already
    /// recorded).
    pub fn wrong(self) -> ClientError {
        ClientError::WrongSecret {
            failures: self.failures,
            locked_for: (!self.locked_for.is_zero()).then_some(self.locked_for),
        }
    }
}

/// The persisted wrong-PIN counter of one profile.
#[derive(Debug, Clone)]
pub struct Lockout {
    path: PathBuf,
    lock_path: PathBuf,
}

pub(crate) const LOCKOUT_FILE: &str = "lockout.json";
pub(crate) const LOCKOUT_LOCK_FILE: &str = "lockout.lock";

/// What reading `lockout.json` found.
enum Loaded {
    State(LockoutState),
    Damaged,
}

impl Lockout {
    /// The counter of the profile in `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            path: dir.join(LOCKOUT_FILE),
            lock_path: dir.join(LOCKOUT_LOCK_FILE),
        }
    }

    /// Takes the exclusive lock every change of the counter holds (released on drop).
    // `File::lock` is stable since Rust 1.89; the toolchain that builds and tests the
    // workspace is newer than the declared minimum.
    #[allow(clippy::incompatible_msrv)]
    fn exclusive(&self) -> Result<File> {
        let file = private_file_options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.lock_path)
            .map_err(|e| ClientError::io(&self.lock_path, e))?;
        file.lock()
            .map_err(|e| ClientError::io(&self.lock_path, e))?;
        Ok(file)
    }

    fn load(&self) -> Loaded {
        match std::fs::read(&self.path) {
            Ok(bytes) => match serde_json::from_slice::<LockoutState>(&bytes) {
                Ok(state) if state.failures > 0 || state == LockoutState::default() => {
                    Loaded::State(state)
                }
                _ => Loaded::Damaged,
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Loaded::State(LockoutState::default())
            }
            // Unreadable (a directory in its place, no permission): fail closed.
            Err(_) => Loaded::Damaged,
        }
    }

    fn save(&self, state: &LockoutState) -> Result<()> {
        let bytes =
            serde_json::to_vec(state).map_err(|e| ClientError::CorruptProfile(e.to_string()))?;
        write_atomic(&self.path, &bytes)
    }

    /// Fails with [`ClientError::LockedOut`] (or [`ClientError::LockoutDamaged`]) while a
    /// lock-out runs. Reads only; [`begin_attempt`](Self::begin_attempt) is what counts.
    pub fn check(&self, now_ms: i64) -> Result<()> {
        let state = match self.load() {
            Loaded::State(s) => s,
            Loaded::Damaged => LockoutState::damaged(now_ms),
        };
        match state.refusal(now_ms) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Counts an attempt before its secret is checked: under the exclusive lock, the
    /// incremented counter and the lock-out it would bring are written and flushed.
    /// Fails with [`ClientError::LockedOut`] (the attempt counted, the secret not to be
    /// tried) while a lock-out runs, and with an I/O error if the count cannot be written
    /// (the secret is not to be tried then either).
    pub fn begin_attempt(&self, now_ms: i64) -> Result<Attempt> {
        let _lock = self.exclusive()?;
        let mut state = match self.load() {
            Loaded::State(s) => s,
            Loaded::Damaged => LockoutState::damaged(now_ms),
        };
        if let Some(refused) = state.refusal(now_ms) {
            state.refused = state.refused.saturating_add(1);
            self.save(&state)?;
            return Err(refused);
        }
        state.failures = state.failures.saturating_add(1);
        let delay = delay_after(state.failures);
        state.locked_until_ms = now_ms.saturating_add(crate::clock::ms(delay));
        state.damaged_at_ms = None;
        self.save(&state)?;
        Ok(Attempt {
            failures: state.failures,
            locked_for: delay,
        })
    }

    /// Clears the counter after a successful unlock.
    pub fn record_success(&self) -> Result<()> {
        let _lock = self.exclusive()?;
        self.save(&LockoutState::default())
    }

    /// Attempts counted since the last success: wrong secrets, and attempts refused
    /// during a lock-out. A damaged file counts as the longest lock-out.
    pub fn failures(&self) -> u32 {
        match self.load() {
            Loaded::State(s) => s.failures.saturating_add(s.refused),
            Loaded::Damaged => longest_lockout_failures(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn schedule_grows() {
        let d: Vec<u64> = (1..=12).map(|n| delay_after(n).as_secs()).collect();
        assert_eq!(
            d,
            [0, 0, 30, 60, 300, 900, 3600, 7200, 14400, 28800, 57600, 86400]
        );
        assert_eq!(delay_after(1000), Duration::from_secs(86400));
        assert_eq!(longest_lockout_failures(), 12);
    }

    fn fail(dir: &Path, now: i64) -> ClientError {
        Lockout::new(dir).begin_attempt(now).unwrap().wrong()
    }

    #[test]
    fn lockout_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let t = 1_000_000;
        for _ in 0..2 {
            let _ = fail(dir.path(), t);
            Lockout::new(dir.path()).check(t).unwrap();
        }
        let err = fail(dir.path(), t);
        assert!(
            matches!(err, ClientError::WrongSecret { failures: 3, locked_for: Some(d) } if d.as_secs() == 30)
        );
        // A fresh handle (a restarted program) still sees the lock-out.
        assert!(matches!(
            Lockout::new(dir.path()).check(t + 29_000),
            Err(ClientError::LockedOut { .. })
        ));
        Lockout::new(dir.path()).check(t + 30_000).unwrap();
        let attempt = Lockout::new(dir.path()).begin_attempt(t + 30_000).unwrap();
        drop(attempt);
        Lockout::new(dir.path()).record_success().unwrap();
        assert_eq!(Lockout::new(dir.path()).failures(), 0);
    }

    #[test]
    fn an_attempt_is_counted_before_the_secret_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let t = 5_000;
        // A process that dies while checking the secret leaves its attempt counted.
        let attempt = Lockout::new(dir.path()).begin_attempt(t).unwrap();
        drop(attempt);
        assert_eq!(Lockout::new(dir.path()).failures(), 1);
        for _ in 0..2 {
            let _ = Lockout::new(dir.path()).begin_attempt(t).unwrap();
        }
        // The third attempt engaged the lock-out: the fourth is refused, and counted.
        assert!(matches!(
            Lockout::new(dir.path()).begin_attempt(t),
            Err(ClientError::LockedOut { retry_after }) if retry_after.as_secs() == 30
        ));
        assert_eq!(Lockout::new(dir.path()).failures(), 4);
    }

    #[test]
    fn parallel_attempts_are_all_counted_and_only_the_allowed_ones_proceed() {
        let dir = tempfile::tempdir().unwrap();
        let t = 7_000;
        let barrier = std::sync::Barrier::new(20);
        let outcomes: Vec<bool> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..20)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        match Lockout::new(dir.path()).begin_attempt(t) {
                            Ok(_attempt) => true,
                            Err(ClientError::LockedOut { .. }) => false,
                            Err(e) => panic!("{e}"),
                        }
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(outcomes.iter().filter(|&&ok| ok).count(), 3);
        assert_eq!(Lockout::new(dir.path()).failures(), 20);
    }

    #[test]
    fn a_damaged_counter_fails_closed() {
        for damage in [
            &b"{not json"[..],
            b"",
            b"{\"failures\":0,\"locked_until_ms\":99}",
        ] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(LOCKOUT_FILE), damage).unwrap();
            let t = 1_000_000;
            assert!(matches!(
                Lockout::new(dir.path()).check(t),
                Err(ClientError::LockoutDamaged { .. })
            ));
            match Lockout::new(dir.path()).begin_attempt(t) {
                Err(ClientError::LockoutDamaged { retry_after }) => {
                    assert_eq!(retry_after, LONGEST_LOCKOUT)
                }
                other => panic!("{other:?}"),
            }
            // The damage is replaced by the longest lock-out, which runs its course.
            let later = t + crate::clock::ms(LONGEST_LOCKOUT) - 1;
            assert!(matches!(
                Lockout::new(dir.path()).begin_attempt(later),
                Err(ClientError::LockoutDamaged { .. })
            ));
            let after = t + crate::clock::ms(LONGEST_LOCKOUT);
            let _ = Lockout::new(dir.path()).begin_attempt(after).unwrap();
            Lockout::new(dir.path()).record_success().unwrap();
            assert_eq!(Lockout::new(dir.path()).failures(), 0);
        }
        // A directory where the file should be also fails closed.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(LOCKOUT_FILE)).unwrap();
        assert!(Lockout::new(dir.path()).begin_attempt(1).is_err());
    }
}
