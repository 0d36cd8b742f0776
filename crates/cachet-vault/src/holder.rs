//! Shares sealed to their holders, in the vault's terms ([`ShareToken`], [`VaultError`]):
//! the format and the sealing itself are `cachet_crypto::holder`'s, shared with the
//! operators' client that opens them.

use cachet_crypto::{CryptoError, SignKeyPair, SignPublicKey};

use crate::{ShareToken, VaultError};

pub use cachet_crypto::holder::{is_sealed_share, SEALED_SHARE_PREFIX};

/// Checks, before any key is split, that `holders` can receive `shares` sealed shares:
/// one valid key per share.
pub fn check_holders(shares: u32, holders: &[SignPublicKey]) -> Result<(), VaultError> {
    if usize::try_from(shares).ok() != Some(holders.len()) {
        return Err(VaultError::InvalidSharing(
            "name exactly one holder per share",
        ));
    }
    for holder in holders {
        holder
            .to_box_public()
            .map_err(|_| VaultError::InvalidSharing("a holder's key is not a valid Ed25519 key"))?;
    }
    Ok(())
}

/// Seals each token to its holder, in order. There must be exactly one holder per share.
pub fn seal_to_holders(
    tokens: &[ShareToken],
    holders: &[SignPublicKey],
) -> Result<Vec<String>, VaultError> {
    if tokens.len() != holders.len() {
        return Err(VaultError::InvalidSharing(
            "name exactly one holder per share",
        ));
    }
    tokens
        .iter()
        .zip(holders)
        .enumerate()
        .map(|(i, (token, holder))| seal_share(token, holder, i + 1))
        .collect()
}

/// Seals one token (share number `index`) to `holder`.
pub fn seal_share(
    token: &ShareToken,
    holder: &SignPublicKey,
    index: usize,
) -> Result<String, VaultError> {
    cachet_crypto::holder::seal_share(token.expose_secret(), holder, index).map_err(|e| match e {
        CryptoError::InvalidPublicKey(_) => {
            VaultError::InvalidSharing("a holder's key is not a valid Ed25519 key")
        }
        _ => VaultError::InvalidSharing("a holder's key is not usable"),
    })
}

/// Opens a sealed share with the holder's key.
pub fn open_share(text: &str, holder: &SignKeyPair) -> Result<ShareToken, VaultError> {
    let token = cachet_crypto::holder::open_share(text, holder).map_err(|e| match e {
        CryptoError::SealedShare(what) => VaultError::MalformedShare(what),
        _ => VaultError::NotYourShare,
    })?;
    Ok(ShareToken::from_text(&token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_share_opens_only_for_its_holder() {
        let (_, _, tokens) = crate::init(3, 2).expect("init");
        let holders: Vec<SignKeyPair> = (0..3).map(|_| SignKeyPair::generate()).collect();
        let publics: Vec<SignPublicKey> = holders.iter().map(SignKeyPair::public).collect();
        let sealed = seal_to_holders(&tokens, &publics).expect("seal");
        for (i, text) in sealed.iter().enumerate() {
            assert!(is_sealed_share(text));
            assert!(!text.contains(tokens[i].expose_secret()));
            let opened = open_share(text, &holders[i]).expect("own share opens");
            assert_eq!(opened.expose_secret(), tokens[i].expose_secret());
            let other = &holders[(i + 1) % 3];
            assert_eq!(
                open_share(text, other).err(),
                Some(VaultError::NotYourShare)
            );
        }
        assert!(matches!(
            seal_to_holders(&tokens, &publics[..2]),
            Err(VaultError::InvalidSharing(_))
        ));
    }
}
