//! The application lock (whitepaper 10.2): wrong PINs trigger progressively longer
//! lock-outs, and a successful unlock holds for ten minutes after the last use.
//!
//! The failure counter lives in `lockout.json` in the profile, so restarting the program
//! does not reset it. It stops someone guessing at the keyboard; it cannot stop someone
//! who copies the profile and guesses offline (whitepaper 10.3). Against that, only the
//! Argon2id cost and the strength of the secret help: a passphrase, not a PIN.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{ClientError, Result};
use crate::vault::write_atomic;

/// How long an unlock lasts after the last use (whitepaper 10.2).
pub const UNLOCK_WINDOW: Duration = Duration::from_secs(10 * 60);

/// Failures allowed before the first delay.
pub const FREE_ATTEMPTS: u32 = 2;

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
            (3600u64 << doublings).min(24 * 3600)
        }
    };
    Duration::from_secs(secs)
}

#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct LockoutState {
    failures: u32,
    locked_until_ms: i64,
}

/// The persisted wrong-PIN counter of one profile.
#[derive(Debug, Clone)]
pub struct Lockout {
    path: PathBuf,
}

pub(crate) const LOCKOUT_FILE: &str = "lockout.json";

impl Lockout {
    /// The counter of the profile in `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            path: dir.join(LOCKOUT_FILE),
        }
    }

    fn load(&self) -> LockoutState {
        // A damaged file counts as the strictest plausible state rather than a reset.
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(LockoutState {
                failures: FREE_ATTEMPTS + 1,
                locked_until_ms: 0,
            }),
            Err(_) => LockoutState::default(),
        }
    }

    fn save(&self, state: &LockoutState) -> Result<()> {
        let bytes =
            serde_json::to_vec(state).map_err(|e| ClientError::CorruptProfile(e.to_string()))?;
        write_atomic(&self.path, &bytes)
    }

    /// Fails with [`ClientError::LockedOut`] while a lock-out runs.
    pub fn check(&self, now_ms: i64) -> Result<()> {
        let state = self.load();
        if now_ms < state.locked_until_ms {
            let left = u64::try_from(state.locked_until_ms - now_ms).unwrap_or(0);
            return Err(ClientError::LockedOut {
                retry_after: Duration::from_millis(left),
            });
        }
        Ok(())
    }

    /// Records a wrong secret and returns the error to report.
    pub fn record_failure(&self, now_ms: i64) -> Result<ClientError> {
        let mut state = self.load();
        state.failures = state.failures.saturating_add(1);
        let delay = delay_after(state.failures);
        state.locked_until_ms = now_ms.saturating_add(crate::clock::ms(delay));
        self.save(&state)?;
        Ok(ClientError::WrongSecret {
            failures: state.failures,
            locked_for: (!delay.is_zero()).then_some(delay),
        })
    }

    /// Clears the counter after a successful unlock.
    pub fn record_success(&self) -> Result<()> {
        if self.load() != LockoutState::default() {
            self.save(&LockoutState::default())?;
        }
        Ok(())
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.load().failures
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
    }

    #[test]
    fn lockout_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let t = 1_000_000;
        for _ in 0..2 {
            Lockout::new(dir.path()).record_failure(t).unwrap();
            Lockout::new(dir.path()).check(t).unwrap();
        }
        let err = Lockout::new(dir.path()).record_failure(t).unwrap();
        assert!(
            matches!(err, ClientError::WrongSecret { failures: 3, locked_for: Some(d) } if d.as_secs() == 30)
        );
        // A fresh handle (a restarted program) still sees the lock-out.
        assert!(matches!(
            Lockout::new(dir.path()).check(t + 29_000),
            Err(ClientError::LockedOut { .. })
        ));
        Lockout::new(dir.path()).check(t + 30_000).unwrap();
        Lockout::new(dir.path()).record_success().unwrap();
        assert_eq!(Lockout::new(dir.path()).failures(), 0);
    }
}
