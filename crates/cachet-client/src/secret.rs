//! The secret a person types to unlock their profile: a 5-digit PIN or a passphrase.

use core::fmt;

use zeroize::Zeroizing;

use crate::error::{ClientError, Result};

/// Shortest passphrase accepted.
pub const MIN_PASSPHRASE_CHARS: usize = 10;
/// Number of digits of a PIN (whitepaper 10.2).
pub const PIN_DIGITS: usize = 5;

/// Which kind of secret a profile is unlocked with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretKind {
    /// Exactly five digits. Convenient; protects against casual access only.
    Pin,
    /// Ten characters or more. Also protects the keys if the disk is copied.
    Passphrase,
}

/// A PIN or passphrase held in memory that is wiped on drop and never printed.
#[derive(Clone)]
pub struct UnlockSecret(Zeroizing<String>);

impl UnlockSecret {
    /// Wraps what the user typed (a trailing newline is removed).
    pub fn new(secret: impl Into<String>) -> Self {
        let mut s: String = secret.into();
        while s.ends_with('\n') || s.ends_with('\r') {
            s.pop();
        }
        Self(Zeroizing::new(s))
    }

    /// A PIN if the secret is exactly five digits, a passphrase otherwise.
    pub fn kind(&self) -> SecretKind {
        if self.0.len() == PIN_DIGITS && self.0.bytes().all(|b| b.is_ascii_digit()) {
            SecretKind::Pin
        } else {
            SecretKind::Passphrase
        }
    }

    /// Checks the form of a new secret: a 5-digit PIN or a passphrase of at least
    /// [`MIN_PASSPHRASE_CHARS`] characters, neither of them trivial (see [`is_trivial`]).
    /// Every place a secret is chosen (registration, recovery into a new profile) calls
    /// this.
    pub fn check_new(&self) -> Result<SecretKind> {
        let kind = match self.kind() {
            SecretKind::Pin => SecretKind::Pin,
            SecretKind::Passphrase if self.0.chars().count() >= MIN_PASSPHRASE_CHARS => {
                SecretKind::Passphrase
            }
            SecretKind::Passphrase => {
                return Err(ClientError::WeakSecret(
                    "use a PIN of exactly 5 digits or a passphrase of at least 10 characters",
                ))
            }
        };
        if is_trivial(&self.0) {
            return Err(ClientError::WeakSecret(match kind {
                SecretKind::Pin => {
                    "this PIN is among the first an attacker tries (a repeated digit, two \
                     alternating digits, or a run such as 12345, 54321 or 13579): choose \
                     5 digits without a pattern"
                }
                SecretKind::Passphrase => {
                    "this passphrase is a repetition or a run of characters: choose one \
                     without a pattern"
                }
            }));
        }
        Ok(kind)
    }

    /// The secret's bytes.
    pub fn expose_secret(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// Whether a secret is among the first an attacker tries, whatever its length:
///
/// * it uses at most two different characters (`00000`, `11112`, `12121`, `aaaaaaaaaa`),
///   or, from ten characters on, at most three (`abcabcabca`);
/// * its characters form a run with a constant step of 1 or 2 up or down (`12345`,
///   `54321`, `13579`, `86420`, `abcdefghij`); for digits the run may wrap around
///   (`78901`, `1234567890`, `21098`, `24680`, `46802`).
///
/// With five digits this refuses 1 400 PINs of 100 000, the ones tried first.
pub fn is_trivial(secret: &str) -> bool {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() < 2 {
        return true;
    }
    let mut distinct = chars.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let max_distinct = if chars.len() >= MIN_PASSPHRASE_CHARS {
        3
    } else {
        2
    };
    if distinct.len() <= max_distinct {
        return true;
    }
    let steps: Vec<i64> = chars
        .windows(2)
        .map(|w| i64::from(u32::from(w[1])) - i64::from(u32::from(w[0])))
        .collect();
    if steps.iter().all(|&d| d == steps[0]) && matches!(steps[0], -2 | -1 | 1 | 2) {
        return true;
    }
    // A run of digits that wraps around (…8, 9, 0, 1… or …6, 8, 0…).
    if chars.iter().all(char::is_ascii_digit) {
        let wrapped: Vec<i64> = steps.iter().map(|d| d.rem_euclid(10)).collect();
        if [1, 2, 8, 9]
            .iter()
            .any(|&step| wrapped.iter().all(|&d| d == step))
        {
            return true;
        }
    }
    false
}

impl fmt::Debug for UnlockSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UnlockSecret(<redacted>)")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_rules() {
        assert_eq!(
            UnlockSecret::new("38172\n").check_new().unwrap(),
            SecretKind::Pin
        );
        assert!(UnlockSecret::new("1234").check_new().is_err());
        assert!(UnlockSecret::new("123456").check_new().is_err());
        assert_eq!(
            UnlockSecret::new("correct horse").check_new().unwrap(),
            SecretKind::Passphrase
        );
        assert!(!format!("{:?}", UnlockSecret::new("98765")).contains("98765"));
    }

    #[test]
    fn trivial_pins_and_passphrases_are_refused() {
        for pin in [
            "00000", "11111", "99999", "12345", "54321", "01234", "98765", "13579", "97531",
            "24680", "86420", "02468", "67890", "78901", "90123", "21098", "10987", "12121",
            "10101", "11112", "55155",
        ] {
            assert!(
                matches!(
                    UnlockSecret::new(pin).check_new(),
                    Err(ClientError::WeakSecret(_))
                ),
                "{pin} was accepted"
            );
        }
        for passphrase in [
            "aaaaaaaaaa",
            "abababababab",
            "abcabcabcabc",
            "1234567890",
            "abcdefghijk",
            "0987654321",
        ] {
            assert!(
                UnlockSecret::new(passphrase).check_new().is_err(),
                "{passphrase} was accepted"
            );
        }
        for pin in ["38172", "31415", "27183", "12346", "11223", "90210"] {
            assert_eq!(
                UnlockSecret::new(pin).check_new().unwrap(),
                SecretKind::Pin,
                "{pin}"
            );
        }
        // Exactly the PINs described: count them all.
        let refused = (0..100_000)
            .filter(|n| is_trivial(&format!("{n:05}")))
            .count();
        assert_eq!(refused, 1_400);
    }
}
