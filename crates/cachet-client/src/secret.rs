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
    /// [`MIN_PASSPHRASE_CHARS`] characters.
    pub fn check_new(&self) -> Result<SecretKind> {
        match self.kind() {
            SecretKind::Pin => Ok(SecretKind::Pin),
            SecretKind::Passphrase if self.0.chars().count() >= MIN_PASSPHRASE_CHARS => {
                Ok(SecretKind::Passphrase)
            }
            SecretKind::Passphrase => Err(ClientError::WeakSecret(
                "use a PIN of exactly 5 digits or a passphrase of at least 10 characters",
            )),
        }
    }

    /// The secret's bytes.
    pub fn expose_secret(&self) -> &[u8] {
        self.0.as_bytes()
    }
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
            UnlockSecret::new("12345\n").check_new().unwrap(),
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
}
