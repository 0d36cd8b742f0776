//! Shares sealed to their holders: a share token encrypted to the X25519 form of one
//! operator's Ed25519 key (the key they already sign operator requests with), so the
//! operator who runs `init` never sees the other holders' shares, and a share file left
//! on a disk is useless without its holder's key. The servers seal (through
//! `cachet-vault`); an operator's client opens, so the format lives here, where both reach.
//!
//! Format: `cachet-sealed-share-v1:<index>:<base64(ephemeral public key ‖ nonce ‖
//! crypto_box(token))>`. The index is in the clear so a holder can tell files apart; the
//! token inside carries its own index and digest, so a swapped or forged sealed share
//! is refused when entered, like any wrong share.

use base64::Engine;
use zeroize::Zeroizing;

use crate::{
    boxes, BoxKeyPair, CryptoError, Nonce, SignKeyPair, SignPublicKey, KEY_LEN, NONCE_LEN,
};

/// Prefix of a sealed share.
pub const SEALED_SHARE_PREFIX: &str = "cachet-sealed-share-v1:";

/// Seals the share token `token` (share number `index`) to `holder`. Fails with
/// [`CryptoError::InvalidPublicKey`] when the holder's key has no usable X25519 form.
pub fn seal_share(
    token: &str,
    holder: &SignPublicKey,
    index: usize,
) -> Result<String, CryptoError> {
    let recipient = holder.to_box_public()?;
    let ephemeral = BoxKeyPair::generate();
    let (nonce, ciphertext) = boxes::seal(token.as_bytes(), &recipient, &ephemeral.secret)?;
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

/// Opens a sealed share with the holder's key, giving the token inside. Fails with
/// [`CryptoError::SealedShare`] for a malformed text and [`CryptoError::Decrypt`] for a
/// share sealed to another holder.
pub fn open_share(text: &str, holder: &SignKeyPair) -> Result<Zeroizing<String>, CryptoError> {
    let rest = text
        .trim()
        .strip_prefix(SEALED_SHARE_PREFIX)
        .ok_or(CryptoError::SealedShare("not a sealed share"))?;
    let (_, body) = rest
        .split_once(':')
        .ok_or(CryptoError::SealedShare("missing index"))?;
    let body = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|_| CryptoError::SealedShare("bad base64"))?;
    if body.len() < KEY_LEN + NONCE_LEN {
        return Err(CryptoError::SealedShare("too short"));
    }
    let (sender, rest) = body.split_at(KEY_LEN);
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let sender =
        crate::BoxPublicKey::from_slice(sender).map_err(|_| CryptoError::SealedShare("bad key"))?;
    let nonce = Nonce::from_slice(nonce).map_err(|_| CryptoError::SealedShare("bad nonce"))?;
    let plain = Zeroizing::new(boxes::open(
        ciphertext,
        &nonce,
        &sender,
        &holder.to_box_secret(),
    )?);
    let text = std::str::from_utf8(&plain).map_err(|_| CryptoError::SealedShare("not text"))?;
    Ok(Zeroizing::new(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_share_opens_only_for_its_holder() {
        let (holder, other) = (SignKeyPair::generate(), SignKeyPair::generate());
        let sealed = seal_share("cachet-share-v1:3:abc", &holder.public(), 3).expect("seal");
        assert!(is_sealed_share(&sealed));
        assert!(sealed.starts_with("cachet-sealed-share-v1:3:"));
        assert!(!sealed.contains("abc"));
        assert_eq!(
            open_share(&sealed, &holder).expect("opens").as_str(),
            "cachet-share-v1:3:abc"
        );
        assert_eq!(
            open_share(&sealed, &other).err(),
            Some(CryptoError::Decrypt)
        );
        assert_eq!(
            open_share("cachet-sealed-share-v1:1", &holder).err(),
            Some(CryptoError::SealedShare("missing index"))
        );
        assert!(!is_sealed_share("cachet-share-v1:1:abc"));
    }
}
