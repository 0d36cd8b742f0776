//! Shares sealed to their holders: each share token encrypted to the X25519 form of one
//! operator's Ed25519 key (the key they already sign operator requests with), so the
//! operator who runs `init` never sees the other holders' shares, and a share file left
//! on a disk is useless without its holder's key.
//!
//! Format: `cachet-sealed-share-v1:<index>:<base64(ephemeral public key ‖ nonce ‖
//! crypto_box(token))>`. The index is in the clear so a holder can tell files apart; the
//! token inside carries its own index and digest, so a swapped or forged sealed share
//! is refused when entered, like any wrong share.

use base64::Engine;
use cachet_crypto::{boxes, BoxKeyPair, Nonce, SignKeyPair, SignPublicKey, KEY_LEN, NONCE_LEN};
use zeroize::Zeroizing;

use crate::{ShareToken, VaultError};

/// Prefix of a sealed share.
pub const SEALED_SHARE_PREFIX: &str = "cachet-sealed-share-v1:";

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
    let recipient = holder
        .to_box_public()
        .map_err(|_| VaultError::InvalidSharing("a holder's key is not a valid Ed25519 key"))?;
    let ephemeral = BoxKeyPair::generate();
    let (nonce, ciphertext) = boxes::seal(
        token.expose_secret().as_bytes(),
        &recipient,
        &ephemeral.secret,
    )
    .map_err(|_| VaultError::InvalidSharing("a holder's key is not usable"))?;
    let mut body = Vec::with_capacity(KEY_LEN + NONCE_LEN + ciphertext.len());
    body.extend_from_slice(ephemeral.public.as_bytes());
    body.extend_from_slice(nonce.as_bytes());
    body.extend_from_slice(&ciphertext);
    Ok(format!(
        "{SEALED_SHARE_PREFIX}{index}:{}",
        base64::engine::general_purpose::STANDARD.encode(body)
    ))
}

/// Whether `text` is a sealed share (rather than a plain token).
pub fn is_sealed_share(text: &str) -> bool {
    text.trim().starts_with(SEALED_SHARE_PREFIX)
}

/// Opens a sealed share with the holder's key.
pub fn open_share(text: &str, holder: &SignKeyPair) -> Result<ShareToken, VaultError> {
    let rest = text
        .trim()
        .strip_prefix(SEALED_SHARE_PREFIX)
        .ok_or(VaultError::MalformedShare("not a sealed share"))?;
    let (_, body) = rest
        .split_once(':')
        .ok_or(VaultError::MalformedShare("missing index"))?;
    let body = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|_| VaultError::MalformedShare("bad base64"))?;
    if body.len() < KEY_LEN + NONCE_LEN {
        return Err(VaultError::MalformedShare("too short"));
    }
    let (sender, rest) = body.split_at(KEY_LEN);
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let sender = cachet_crypto::BoxPublicKey::from_slice(sender)
        .map_err(|_| VaultError::MalformedShare("bad key"))?;
    let nonce = Nonce::from_slice(nonce).map_err(|_| VaultError::MalformedShare("bad nonce"))?;
    let plain = Zeroizing::new(
        boxes::open(ciphertext, &nonce, &sender, &holder.to_box_secret())
            .map_err(|_| VaultError::NotYourShare)?,
    );
    let text = std::str::from_utf8(&plain).map_err(|_| VaultError::MalformedShare("not text"))?;
    Ok(ShareToken::from_text(text))
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
