//! Safety numbers: what two people compare face to face to know they hold each other's
//! real keys (whitepaper 10.4 to 10.6).
//!
//! A party's fingerprint is an iterated SHA-512 over a domain label, the user id and
//! both public keys (Box and Sign). The 5200 iterations (Signal's figure) multiply the
//! cost of searching for a key whose 30 displayed digits match (about 2^100 tries). The safety number is the two parties' 30-digit halves in the order
//! of their user ids, so both sides see the same 60 digits. The QR payload carries the
//! two full 32-byte fingerprints, so a scan compares 256 bits instead of 100.

use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;

use crate::{BoxPublicKey, CryptoError, SignPublicKey};

const ITERATIONS: usize = 5200;
const DOMAIN: &[u8] = b"cachet safety number v1";
const QR_VERSION: u8 = 1;

/// The identity a fingerprint covers.
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    /// The server's user id.
    pub user_id: &'a str,
    /// The user's current Box Key.
    pub box_key: &'a BoxPublicKey,
    /// The user's current Sign Key.
    pub sign_key: &'a SignPublicKey,
}

/// One party's 32-byte fingerprint.
pub fn fingerprint(identity: &Identity<'_>) -> [u8; 32] {
    let keys = [
        identity.box_key.as_bytes().as_slice(),
        identity.sign_key.as_bytes(),
    ]
    .concat();
    let mut hash = Sha512::new()
        .chain_update(DOMAIN)
        .chain_update((identity.user_id.len() as u32).to_be_bytes())
        .chain_update(identity.user_id.as_bytes())
        .chain_update(&keys)
        .finalize();
    for _ in 0..ITERATIONS {
        hash = Sha512::new()
            .chain_update(hash)
            .chain_update(&keys)
            .finalize();
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(&hash[..32]);
    out
}

/// 30 decimal digits from a fingerprint: six groups of five, each from 5 bytes mod 100000.
pub fn digits(fingerprint: &[u8; 32]) -> String {
    fingerprint[..30]
        .chunks(5)
        .map(|c| {
            let n = c.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
            format!("{:05}", n % 100_000)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The 60-digit safety number of two parties, the same whichever side computes it.
pub fn safety_number(ours: &Identity<'_>, theirs: &Identity<'_>) -> String {
    let (first, second) = ordered(ours, theirs);
    format!(
        "{} {}",
        digits(&fingerprint(first)),
        digits(&fingerprint(second))
    )
}

/// The bytes to put in a QR code: version byte, then both fingerprints in user-id order.
pub fn qr_payload(ours: &Identity<'_>, theirs: &Identity<'_>) -> Vec<u8> {
    let (first, second) = ordered(ours, theirs);
    let mut out = Vec::with_capacity(65);
    out.push(QR_VERSION);
    out.extend_from_slice(&fingerprint(first));
    out.extend_from_slice(&fingerprint(second));
    out
}

/// Compares a scanned QR payload with the one computed locally, in constant time.
pub fn verify_qr_payload(
    scanned: &[u8],
    ours: &Identity<'_>,
    theirs: &Identity<'_>,
) -> Result<(), CryptoError> {
    let expected = qr_payload(ours, theirs);
    if scanned.len() != expected.len() {
        return Err(CryptoError::InvalidLength {
            what: "QR payload",
            expected: expected.len(),
            got: scanned.len(),
        });
    }
    if bool::from(scanned.ct_eq(&expected)) {
        Ok(())
    } else {
        Err(CryptoError::BadSignature)
    }
}

fn ordered<'a, 'b>(
    a: &'a Identity<'b>,
    b: &'a Identity<'b>,
) -> (&'a Identity<'b>, &'a Identity<'b>) {
    if (a.user_id, a.box_key, a.sign_key) <= (b.user_id, b.box_key, b.sign_key) {
        (a, b)
    } else {
        (b, a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BoxKeyPair, SignKeyPair};

    #[test]
    fn both_sides_agree_and_a_key_change_shows() {
        let (ab, asg) = (BoxKeyPair::generate(), SignKeyPair::generate());
        let (bb, bsg) = (BoxKeyPair::generate(), SignKeyPair::generate());
        let (asp, bsp) = (asg.public(), bsg.public());
        let alice = Identity {
            user_id: "alice",
            box_key: &ab.public,
            sign_key: &asp,
        };
        let bob = Identity {
            user_id: "bob",
            box_key: &bb.public,
            sign_key: &bsp,
        };
        let n1 = safety_number(&alice, &bob);
        assert_eq!(n1, safety_number(&bob, &alice));
        assert_eq!(n1.replace(' ', "").len(), 60);
        assert!(verify_qr_payload(&qr_payload(&bob, &alice), &alice, &bob).is_ok());

        let mallory_box = BoxKeyPair::generate();
        let fake_bob = Identity {
            user_id: "bob",
            box_key: &mallory_box.public,
            sign_key: &bsp,
        };
        assert_ne!(safety_number(&alice, &fake_bob), n1);
        assert!(verify_qr_payload(&qr_payload(&alice, &fake_bob), &alice, &bob).is_err());
        assert!(verify_qr_payload(&[1, 2, 3], &alice, &bob).is_err());
    }
}
