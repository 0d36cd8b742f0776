//! Splitting the master key into shares and putting it back together.

use base64::Engine;
use blahaj::{Share, Sharks};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::{MasterKey, VaultError};

const TOKEN_PREFIX: &str = "cachet-share-v1:";
const DIGEST_LABEL: &[u8] = b"cachet share digest v1";
const CHECK_LABEL: &[u8] = b"cachet master key check v1";

/// What the server keeps about the sharing, on disk: no secret in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedRoot {
    /// Shares needed.
    pub threshold: u8,
    /// SHA-256 of each share, by index (index `i` at position `i - 1`).
    pub share_digests: Vec<[u8; 32]>,
    /// SHA-256 over a label and the master key: recognises the right key, reveals nothing.
    pub master_check: [u8; 32],
}

/// One holder's share, as printed or sent to them: `cachet-share-v1:<index>:<base64>`.
#[derive(Clone, PartialEq, Eq)]
pub struct ShareToken(Zeroizing<String>);

impl ShareToken {
    /// The token text to hand to the holder.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
    /// Wraps a token typed or pasted by a holder.
    pub fn from_text(text: &str) -> Self {
        Self(Zeroizing::new(text.trim().to_owned()))
    }
    /// The index printed on the token, once its format is checked (prefix, index, base64
    /// and share bytes). Says nothing about whether the share is genuine: that is
    /// [`Unsealer::submit`]'s check against the sealed root.
    pub fn index(&self) -> Result<u8, VaultError> {
        self.parse().map(|(index, _)| index)
    }

    fn parse(&self) -> Result<(u8, Share), VaultError> {
        let rest = self
            .0
            .strip_prefix(TOKEN_PREFIX)
            .ok_or(VaultError::MalformedShare("missing prefix"))?;
        let (index, body) = rest
            .split_once(':')
            .ok_or(VaultError::MalformedShare("missing index"))?;
        let index: u8 = index
            .parse()
            .map_err(|_| VaultError::MalformedShare("bad index"))?;
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .map_err(|_| VaultError::MalformedShare("bad base64"))?,
        );
        if bytes.first() != Some(&index) {
            return Err(VaultError::CorruptShare { index });
        }
        let share = Share::try_from(bytes.as_slice())
            .map_err(|_| VaultError::MalformedShare("bad share bytes"))?;
        Ok((index, share))
    }
}

impl core::fmt::Debug for ShareToken {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ShareToken(<redacted>)")
    }
}

fn digest(share_bytes: &[u8]) -> [u8; 32] {
    cachet_crypto::sha256(&[DIGEST_LABEL, share_bytes].concat())
}

fn master_check(key: &MasterKey) -> [u8; 32] {
    cachet_crypto::sha256(&[CHECK_LABEL, key.expose_secret()].concat())
}

/// Creates a new master key and splits it into `shares` tokens, any `threshold` of which
/// open it. Returns the key (to use now, never to store), the sealed root and the tokens.
pub fn init(
    shares: u8,
    threshold: u8,
) -> Result<(MasterKey, SealedRoot, Vec<ShareToken>), VaultError> {
    let key = MasterKey::generate();
    let (root, tokens) = reshare(&key, shares, threshold)?;
    Ok((key, root, tokens))
}

/// Splits an existing master key anew, for a new set of holders (old shares stop
/// matching the new root). The key is only ever in memory.
pub fn reshare(
    key: &MasterKey,
    shares: u8,
    threshold: u8,
) -> Result<(SealedRoot, Vec<ShareToken>), VaultError> {
    if threshold < 2 || threshold > shares {
        return Err(VaultError::InvalidSharing("need 2 <= threshold <= shares"));
    }
    let dealer = Sharks(threshold).dealer(key.expose_secret());
    let mut digests = Vec::with_capacity(usize::from(shares));
    let mut tokens = Vec::with_capacity(usize::from(shares));
    for share in dealer.take(usize::from(shares)) {
        let bytes = Zeroizing::new(Vec::from(&share));
        digests.push(digest(&bytes));
        tokens.push(ShareToken(Zeroizing::new(format!(
            "{TOKEN_PREFIX}{}:{}",
            bytes[0],
            base64::engine::general_purpose::STANDARD.encode(bytes.as_slice())
        ))));
    }
    Ok((
        SealedRoot {
            threshold,
            share_digests: digests,
            master_check: master_check(key),
        },
        tokens,
    ))
}

/// Progress of an unseal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsealProgress {
    /// More shares are needed.
    Need {
        /// Shares entered so far.
        have: u8,
        /// Shares needed in all.
        threshold: u8,
    },
    /// The vault is open.
    Unsealed,
}

/// Collects shares one at a time, from different holders, until the threshold is met.
pub struct Unsealer {
    root: SealedRoot,
    shares: Vec<(u8, Share)>,
    key: Option<MasterKey>,
}

impl Unsealer {
    /// Starts an unseal against the sealed root.
    pub fn new(root: SealedRoot) -> Self {
        Self {
            root,
            shares: Vec::new(),
            key: None,
        }
    }

    /// Enters one share. A share that fails its digest is named and not kept.
    pub fn submit(&mut self, token: &ShareToken) -> Result<UnsealProgress, VaultError> {
        if self.key.is_some() {
            return Ok(UnsealProgress::Unsealed);
        }
        let (index, share) = token.parse()?;
        let expected = self
            .root
            .share_digests
            .get(usize::from(index).wrapping_sub(1))
            .ok_or(VaultError::CorruptShare { index })?;
        let bytes = Zeroizing::new(Vec::from(&share));
        if !bool::from(digest(&bytes).ct_eq(expected)) {
            return Err(VaultError::CorruptShare { index });
        }
        if self.shares.iter().any(|(i, _)| *i == index) {
            return Err(VaultError::DuplicateShare { index });
        }
        self.shares.push((index, share));
        let have = self.shares.len() as u8;
        if have < self.root.threshold {
            return Ok(UnsealProgress::Need {
                have,
                threshold: self.root.threshold,
            });
        }
        let secret = Zeroizing::new(
            Sharks(self.root.threshold)
                .recover(self.shares.iter().map(|(_, s)| s))
                .map_err(|_| VaultError::WrongMasterKey)?,
        );
        let key = MasterKey::from_slice(&secret).map_err(|_| VaultError::WrongMasterKey)?;
        if !bool::from(master_check(&key).ct_eq(&self.root.master_check)) {
            return Err(VaultError::WrongMasterKey);
        }
        self.shares.clear();
        self.key = Some(key);
        Ok(UnsealProgress::Unsealed)
    }

    /// The master key once unsealed.
    pub fn master_key(&self) -> Option<&MasterKey> {
        self.key.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_of_seven_open_four_do_not() {
        let (key, root, tokens) = init(7, 5).unwrap();
        let mut u = Unsealer::new(root.clone());
        for (n, t) in tokens.iter().skip(2).take(4).enumerate() {
            assert_eq!(
                u.submit(t).unwrap(),
                UnsealProgress::Need {
                    have: n as u8 + 1,
                    threshold: 5
                }
            );
        }
        assert!(u.master_key().is_none(), "four shares open nothing");
        assert_eq!(u.submit(&tokens[0]).unwrap(), UnsealProgress::Unsealed);
        assert_eq!(u.master_key(), Some(&key));
    }

    #[test]
    fn a_corrupted_share_is_named() {
        let (_, root, tokens) = init(7, 5).unwrap();
        let mut u = Unsealer::new(root);
        let text = tokens[3].expose_secret();
        let mut chars: Vec<char> = text.chars().collect();
        let last = chars.len() - 3;
        chars[last] = if chars[last] == 'A' { 'B' } else { 'A' };
        let bad = ShareToken::from_text(&chars.into_iter().collect::<String>());
        assert_eq!(u.submit(&bad), Err(VaultError::CorruptShare { index: 4 }));
        assert_eq!(
            u.submit(&ShareToken::from_text("hello")),
            Err(VaultError::MalformedShare("missing prefix"))
        );
        u.submit(&tokens[1]).unwrap();
        assert_eq!(
            u.submit(&tokens[1]),
            Err(VaultError::DuplicateShare { index: 2 })
        );
    }

    #[test]
    fn shares_of_another_vault_are_refused() {
        let (_, root, _) = init(7, 5).unwrap();
        let (_, _, other) = init(7, 5).unwrap();
        let mut u = Unsealer::new(root);
        assert_eq!(
            u.submit(&other[0]),
            Err(VaultError::CorruptShare { index: 1 })
        );
    }

    /// RUSTSEC-2024-0398: with coefficients drawn from 1..=255, share 1 of a 2-of-n split
    /// (`y = s ⊕ a·1`) never equals the secret byte, so each share rules a value out for
    /// every byte of the key. With the whole field, `a = 0` happens one time in 256: over
    /// 300 splits of 32 bytes (9,600 draws) the chance of never seeing it is below 1e-16.
    #[test]
    fn a_single_share_rules_no_secret_byte_out() {
        let key = MasterKey::generate();
        let mut equal = 0;
        for _ in 0..300 {
            let (_, tokens) = reshare(&key, 2, 2).unwrap();
            let (index, share) = tokens[0].parse().unwrap();
            assert_eq!(index, 1);
            let bytes = Vec::from(&share);
            equal += bytes[1..]
                .iter()
                .zip(key.expose_secret())
                .filter(|(y, s)| y == s)
                .count();
        }
        assert!(
            equal > 0,
            "share bytes never equal the secret: coefficients skip 0"
        );
    }

    #[test]
    fn resharing_keeps_the_key_and_retires_old_shares() {
        let (key, old_root, old_tokens) = init(7, 5).unwrap();
        let (new_root, new_tokens) = reshare(&key, 7, 5).unwrap();
        assert_ne!(old_root.share_digests, new_root.share_digests);
        let mut u = Unsealer::new(new_root);
        assert!(u.submit(&old_tokens[0]).is_err());
        for t in &new_tokens[2..7] {
            u.submit(t).unwrap();
        }
        assert_eq!(u.master_key(), Some(&key));
        assert!(reshare(&key, 3, 5).is_err());
    }
}
