//! libsodium for cachet: the reference of its tests and benchmarks, and the optional fast
//! XSalsa20-Poly1305 backend of `cachet-crypto` (feature `libsodium`).
//!
//! cachet's cryptographic core (`cachet-crypto`) is pure Rust by default. To show that it
//! is byte-compatible with libsodium, and to measure how fast it is next to it, the tests
//! and benchmarks need the real library; and for bulk data (attachments) libsodium's SIMD
//! Salsa20 is about three times faster, so the client uses it through this crate. This crate is a small, safe wrapper over the
//! vendored libsodium that `libsodium-sys-stable` builds: fixed-size arrays for keys,
//! nonces and signatures, `Vec<u8>` for variable-length output, and `Option` where
//! libsodium can refuse (failed authentication, a public key of small order).
//!
//! It is the only crate of the workspace with `unsafe` code. Every function calls [`init`]
//! first, so callers never need to.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

use core::ffi::c_ulonglong;
use std::sync::Once;

use libsodium_sys as ffi;

/// Length of X25519 and Ed25519 public keys, box secret keys, seeds and symmetric keys.
pub const KEY_BYTES: usize = 32;
/// Length of an XSalsa20 nonce (`crypto_box` and `crypto_secretbox`).
pub const NONCE_BYTES: usize = 24;
/// Length of the Poly1305 tag (`crypto_box_MACBYTES`, `crypto_secretbox_MACBYTES`).
pub const MAC_BYTES: usize = 16;
/// Length of libsodium's Ed25519 secret key: seed followed by public key.
pub const SIGN_SECRET_BYTES: usize = 64;
/// Length of an Ed25519 signature.
pub const SIGNATURE_BYTES: usize = 64;

/// A 32-byte key.
pub type Key = [u8; KEY_BYTES];
/// A 24-byte nonce.
pub type Nonce = [u8; NONCE_BYTES];

static INIT: Once = Once::new();

/// Initialises libsodium (`sodium_init`) once per process. Called by every function here.
///
/// # Panics
/// If libsodium cannot initialise (it could not find a source of randomness).
pub fn init() {
    INIT.call_once(|| {
        // SAFETY: sodium_init takes no arguments and is safe to call from any thread;
        // `Once` makes this the only call.
        let status = unsafe { ffi::sodium_init() };
        assert!(status >= 0, "sodium_init failed");
    });
}

fn len_u64(len: usize) -> c_ulonglong {
    // usize is at most 64 bits wide on every supported target.
    len as c_ulonglong
}

// ---------------------------------------------------------------------------------------
// crypto_box
// ---------------------------------------------------------------------------------------

/// `crypto_box_keypair`: a fresh key pair, as `(public, secret)`.
pub fn box_keypair() -> (Key, Key) {
    init();
    let mut pk = [0u8; KEY_BYTES];
    let mut sk = [0u8; KEY_BYTES];
    // SAFETY: both pointers are valid for writes of crypto_box_PUBLICKEYBYTES and
    // crypto_box_SECRETKEYBYTES (32 each).
    let status = unsafe { ffi::crypto_box_keypair(pk.as_mut_ptr(), sk.as_mut_ptr()) };
    assert_eq!(status, 0, "crypto_box_keypair cannot fail");
    (pk, sk)
}

/// `crypto_box_seed_keypair`: the key pair derived from `seed`, as `(public, secret)`.
///
/// libsodium hashes the seed (SHA-512, first 32 bytes) to get the secret key.
pub fn box_seed_keypair(seed: &Key) -> (Key, Key) {
    init();
    let mut pk = [0u8; KEY_BYTES];
    let mut sk = [0u8; KEY_BYTES];
    // SAFETY: the output pointers are valid for 32-byte writes, the seed for a 32-byte read.
    let status =
        unsafe { ffi::crypto_box_seed_keypair(pk.as_mut_ptr(), sk.as_mut_ptr(), seed.as_ptr()) };
    assert_eq!(status, 0, "crypto_box_seed_keypair cannot fail");
    (pk, sk)
}

/// `crypto_box_easy`: returns `tag || ciphertext`, or `None` when libsodium refuses the
/// key pair (a public key of small order makes the shared secret all zero).
pub fn box_easy(message: &[u8], nonce: &Nonce, their_pk: &Key, our_sk: &Key) -> Option<Vec<u8>> {
    init();
    let mut out = vec![0u8; MAC_BYTES + message.len()];
    // SAFETY: `out` is valid for MAC_BYTES + message.len() bytes of writes, the message
    // for message.len() reads, nonce and keys for their fixed lengths. Output and input do
    // not overlap.
    let status = unsafe {
        ffi::crypto_box_easy(
            out.as_mut_ptr(),
            message.as_ptr(),
            len_u64(message.len()),
            nonce.as_ptr(),
            their_pk.as_ptr(),
            our_sk.as_ptr(),
        )
    };
    (status == 0).then_some(out)
}

/// `crypto_box_open_easy`: the plaintext of `tag || ciphertext`, or `None` if it does not
/// authenticate.
pub fn box_open_easy(
    ciphertext: &[u8],
    nonce: &Nonce,
    their_pk: &Key,
    our_sk: &Key,
) -> Option<Vec<u8>> {
    init();
    let plain_len = ciphertext.len().checked_sub(MAC_BYTES)?;
    let mut out = vec![0u8; plain_len];
    // SAFETY: `out` is valid for clen - MAC_BYTES bytes of writes (what libsodium writes),
    // the ciphertext for clen reads, nonce and keys for their fixed lengths.
    let status = unsafe {
        ffi::crypto_box_open_easy(
            out.as_mut_ptr(),
            ciphertext.as_ptr(),
            len_u64(ciphertext.len()),
            nonce.as_ptr(),
            their_pk.as_ptr(),
            our_sk.as_ptr(),
        )
    };
    (status == 0).then_some(out)
}

/// `crypto_box_beforenm`: the precomputed shared key, or `None` for a public key of small
/// order.
pub fn box_beforenm(their_pk: &Key, our_sk: &Key) -> Option<Key> {
    init();
    let mut k = [0u8; KEY_BYTES];
    // SAFETY: `k` is valid for crypto_box_BEFORENMBYTES (32) writes, the keys for 32 reads.
    let status =
        unsafe { ffi::crypto_box_beforenm(k.as_mut_ptr(), their_pk.as_ptr(), our_sk.as_ptr()) };
    (status == 0).then_some(k)
}

/// `crypto_box_easy_afternm`: returns `tag || ciphertext` under a precomputed key.
pub fn box_easy_afternm(message: &[u8], nonce: &Nonce, shared: &Key) -> Vec<u8> {
    init();
    let mut out = vec![0u8; MAC_BYTES + message.len()];
    // SAFETY: as in `box_easy`, with the 32-byte shared key in place of the key pair.
    let status = unsafe {
        ffi::crypto_box_easy_afternm(
            out.as_mut_ptr(),
            message.as_ptr(),
            len_u64(message.len()),
            nonce.as_ptr(),
            shared.as_ptr(),
        )
    };
    assert_eq!(status, 0, "crypto_box_easy_afternm cannot fail");
    out
}

/// `crypto_box_open_easy_afternm`: the plaintext, or `None` if it does not authenticate.
pub fn box_open_easy_afternm(ciphertext: &[u8], nonce: &Nonce, shared: &Key) -> Option<Vec<u8>> {
    init();
    let plain_len = ciphertext.len().checked_sub(MAC_BYTES)?;
    let mut out = vec![0u8; plain_len];
    // SAFETY: as in `box_open_easy`, with the 32-byte shared key.
    let status = unsafe {
        ffi::crypto_box_open_easy_afternm(
            out.as_mut_ptr(),
            ciphertext.as_ptr(),
            len_u64(ciphertext.len()),
            nonce.as_ptr(),
            shared.as_ptr(),
        )
    };
    (status == 0).then_some(out)
}

// ---------------------------------------------------------------------------------------
// crypto_secretbox
// ---------------------------------------------------------------------------------------

/// `crypto_secretbox_easy`: returns `tag || ciphertext`.
pub fn secretbox_easy(message: &[u8], nonce: &Nonce, key: &Key) -> Vec<u8> {
    init();
    let mut out = vec![0u8; MAC_BYTES + message.len()];
    // SAFETY: `out` is valid for MAC_BYTES + message.len() writes, the message for
    // message.len() reads, nonce and key for their fixed lengths; no overlap.
    let status = unsafe {
        ffi::crypto_secretbox_easy(
            out.as_mut_ptr(),
            message.as_ptr(),
            len_u64(message.len()),
            nonce.as_ptr(),
            key.as_ptr(),
        )
    };
    assert_eq!(status, 0, "crypto_secretbox_easy cannot fail");
    out
}

/// `crypto_secretbox_open_easy`: the plaintext, or `None` if it does not authenticate.
pub fn secretbox_open_easy(ciphertext: &[u8], nonce: &Nonce, key: &Key) -> Option<Vec<u8>> {
    init();
    let plain_len = ciphertext.len().checked_sub(MAC_BYTES)?;
    let mut out = vec![0u8; plain_len];
    // SAFETY: `out` is valid for clen - MAC_BYTES writes, the ciphertext for clen reads,
    // nonce and key for their fixed lengths.
    let status = unsafe {
        ffi::crypto_secretbox_open_easy(
            out.as_mut_ptr(),
            ciphertext.as_ptr(),
            len_u64(ciphertext.len()),
            nonce.as_ptr(),
            key.as_ptr(),
        )
    };
    (status == 0).then_some(out)
}

/// `crypto_secretbox_detached` in place over `buffer = [0; 16] || plaintext`: encrypts
/// `buffer[16..]` and writes the tag into `buffer[..16]`, so that the buffer ends up in
/// the `crypto_secretbox_easy` layout without any allocation.
///
/// # Panics
/// If `buffer` is shorter than the tag.
pub fn secretbox_seal_in_place(buffer: &mut [u8], nonce: &Nonce, key: &Key) {
    init();
    assert!(buffer.len() >= MAC_BYTES, "buffer shorter than the tag");
    let (mac, body) = buffer.split_at_mut(MAC_BYTES);
    let body_ptr = body.as_mut_ptr();
    // SAFETY: `mac` is valid for 16 writes; `body_ptr` for body.len() reads and writes.
    // libsodium documents that ciphertext and message may be the same buffer.
    let status = unsafe {
        ffi::crypto_secretbox_detached(
            body_ptr,
            mac.as_mut_ptr(),
            body_ptr.cast_const(),
            len_u64(body.len()),
            nonce.as_ptr(),
            key.as_ptr(),
        )
    };
    assert_eq!(status, 0, "crypto_secretbox_detached cannot fail");
}

/// `crypto_secretbox_open_detached` in place over `tag || ciphertext`: on success the
/// plaintext is `buffer[16..]` and `true` is returned; on failure the buffer is unchanged.
pub fn secretbox_open_in_place(buffer: &mut [u8], nonce: &Nonce, key: &Key) -> bool {
    init();
    if buffer.len() < MAC_BYTES {
        return false;
    }
    let (mac, body) = buffer.split_at_mut(MAC_BYTES);
    let body_ptr = body.as_mut_ptr();
    // SAFETY: `mac` is valid for 16 reads; `body_ptr` for body.len() reads and writes.
    // libsodium allows message and ciphertext to be the same buffer, and writes nothing
    // when the tag does not verify.
    let status = unsafe {
        ffi::crypto_secretbox_open_detached(
            body_ptr,
            body_ptr.cast_const(),
            mac.as_ptr(),
            len_u64(body.len()),
            nonce.as_ptr(),
            key.as_ptr(),
        )
    };
    status == 0
}

/// `crypto_secretbox_open_detached` in place over `body`, with the tag apart: on success
/// `body` holds the plaintext and `true` is returned; on failure `body` is unchanged.
pub fn secretbox_open_detached_in_place(
    tag: &[u8; MAC_BYTES],
    body: &mut [u8],
    nonce: &Nonce,
    key: &Key,
) -> bool {
    init();
    let body_ptr = body.as_mut_ptr();
    // SAFETY: `tag` is valid for 16 reads; `body_ptr` for body.len() reads and writes.
    // libsodium allows message and ciphertext to be the same buffer, and writes nothing
    // when the tag does not verify.
    let status = unsafe {
        ffi::crypto_secretbox_open_detached(
            body_ptr,
            body_ptr.cast_const(),
            tag.as_ptr(),
            len_u64(body.len()),
            nonce.as_ptr(),
            key.as_ptr(),
        )
    };
    status == 0
}

// ---------------------------------------------------------------------------------------
// crypto_sign (Ed25519)
// ---------------------------------------------------------------------------------------

/// `crypto_sign_seed_keypair`: `(public key, 64-byte secret key = seed || public key)`.
pub fn sign_seed_keypair(seed: &Key) -> (Key, [u8; SIGN_SECRET_BYTES]) {
    init();
    let mut pk = [0u8; KEY_BYTES];
    let mut sk = [0u8; SIGN_SECRET_BYTES];
    // SAFETY: `pk` is valid for 32 writes, `sk` for 64, `seed` for 32 reads.
    let status =
        unsafe { ffi::crypto_sign_seed_keypair(pk.as_mut_ptr(), sk.as_mut_ptr(), seed.as_ptr()) };
    assert_eq!(status, 0, "crypto_sign_seed_keypair cannot fail");
    (pk, sk)
}

/// `crypto_sign_ed25519_pk_to_curve25519`: the X25519 public key of an Ed25519 key, or
/// `None` when libsodium refuses the point (invalid or of small order).
pub fn sign_pk_to_curve25519(pk: &Key) -> Option<Key> {
    init();
    let mut out = [0u8; KEY_BYTES];
    // SAFETY: `out` is valid for 32 writes, `pk` for 32 reads.
    let status =
        unsafe { ffi::crypto_sign_ed25519_pk_to_curve25519(out.as_mut_ptr(), pk.as_ptr()) };
    (status == 0).then_some(out)
}

/// `crypto_sign_ed25519_sk_to_curve25519`: the X25519 secret key of an Ed25519 secret key.
pub fn sign_sk_to_curve25519(sk: &[u8; SIGN_SECRET_BYTES]) -> Key {
    init();
    let mut out = [0u8; KEY_BYTES];
    // SAFETY: `out` is valid for 32 writes, `sk` for 64 reads.
    let status =
        unsafe { ffi::crypto_sign_ed25519_sk_to_curve25519(out.as_mut_ptr(), sk.as_ptr()) };
    assert_eq!(
        status, 0,
        "crypto_sign_ed25519_sk_to_curve25519 cannot fail"
    );
    out
}

/// `crypto_sign_detached`: the 64-byte signature of `message`.
pub fn sign_detached(message: &[u8], sk: &[u8; SIGN_SECRET_BYTES]) -> [u8; SIGNATURE_BYTES] {
    init();
    let mut sig = [0u8; SIGNATURE_BYTES];
    // SAFETY: `sig` is valid for 64 writes; a null length pointer is allowed; the message
    // is valid for message.len() reads and `sk` for 64.
    let status = unsafe {
        ffi::crypto_sign_detached(
            sig.as_mut_ptr(),
            core::ptr::null_mut(),
            message.as_ptr(),
            len_u64(message.len()),
            sk.as_ptr(),
        )
    };
    assert_eq!(status, 0, "crypto_sign_detached cannot fail");
    sig
}

/// `crypto_sign_verify_detached`: whether `signature` is valid for `message` under `pk`.
/// A signature of the wrong length is simply invalid.
pub fn sign_verify_detached(signature: &[u8], message: &[u8], pk: &Key) -> bool {
    init();
    let Ok(signature) = <&[u8; SIGNATURE_BYTES]>::try_from(signature) else {
        return false;
    };
    // SAFETY: the signature is valid for 64 reads, the message for message.len() and the
    // public key for 32.
    let status = unsafe {
        ffi::crypto_sign_verify_detached(
            signature.as_ptr(),
            message.as_ptr(),
            len_u64(message.len()),
            pk.as_ptr(),
        )
    };
    status == 0
}

/// `crypto_sign`: combined mode, `signature || message`.
pub fn sign(message: &[u8], sk: &[u8; SIGN_SECRET_BYTES]) -> Vec<u8> {
    init();
    let mut out = vec![0u8; SIGNATURE_BYTES + message.len()];
    let mut written: c_ulonglong = 0;
    // SAFETY: `out` is valid for 64 + message.len() writes, which is what crypto_sign
    // writes; `written` is a valid out-pointer; message and secret key are valid reads.
    let status = unsafe {
        ffi::crypto_sign(
            out.as_mut_ptr(),
            &mut written,
            message.as_ptr(),
            len_u64(message.len()),
            sk.as_ptr(),
        )
    };
    assert_eq!(status, 0, "crypto_sign cannot fail");
    debug_assert_eq!(written, len_u64(out.len()));
    out
}

/// `crypto_sign_open`: the message inside `signature || message`, or `None` if the
/// signature does not verify.
pub fn sign_open(signed: &[u8], pk: &Key) -> Option<Vec<u8>> {
    init();
    let message_len = signed.len().checked_sub(SIGNATURE_BYTES)?;
    let mut out = vec![0u8; message_len];
    let mut written: c_ulonglong = 0;
    // SAFETY: `out` is valid for smlen - 64 writes, the most crypto_sign_open writes;
    // `written` is a valid out-pointer; `signed` is valid for smlen reads, `pk` for 32.
    let status = unsafe {
        ffi::crypto_sign_open(
            out.as_mut_ptr(),
            &mut written,
            signed.as_ptr(),
            len_u64(signed.len()),
            pk.as_ptr(),
        )
    };
    (status == 0).then(|| {
        out.truncate(written as usize);
        out
    })
}

// ---------------------------------------------------------------------------------------
// crypto_scalarmult (X25519)
// ---------------------------------------------------------------------------------------

/// `crypto_scalarmult`: X25519 of scalar `n` and point `p`, or `None` when libsodium
/// rejects the result (all zero: `p` is of small order).
pub fn scalarmult(n: &Key, p: &Key) -> Option<Key> {
    init();
    let mut q = [0u8; KEY_BYTES];
    // SAFETY: `q` is valid for 32 writes, `n` and `p` for 32 reads each.
    let status = unsafe { ffi::crypto_scalarmult(q.as_mut_ptr(), n.as_ptr(), p.as_ptr()) };
    (status == 0).then_some(q)
}

/// `crypto_scalarmult_base`: the X25519 public key of secret scalar `n`.
pub fn scalarmult_base(n: &Key) -> Option<Key> {
    init();
    let mut q = [0u8; KEY_BYTES];
    // SAFETY: `q` is valid for 32 writes, `n` for 32 reads.
    let status = unsafe { ffi::crypto_scalarmult_base(q.as_mut_ptr(), n.as_ptr()) };
    (status == 0).then_some(q)
}

/// `crypto_core_hsalsa20` with the standard constant: the step that turns an X25519
/// shared secret into a `crypto_box` key (`crypto_box_beforenm` is
/// `hsalsa20(scalarmult(sk, pk), 0^16)`).
pub fn core_hsalsa20(input: &[u8; 16], key: &Key) -> Key {
    init();
    let mut out = [0u8; KEY_BYTES];
    // SAFETY: `out` is valid for 32 writes, `input` for 16 reads, `key` for 32 reads; a
    // null constant pointer selects the standard "expand 32-byte k".
    let status = unsafe {
        ffi::crypto_core_hsalsa20(
            out.as_mut_ptr(),
            input.as_ptr(),
            key.as_ptr(),
            core::ptr::null(),
        )
    };
    assert_eq!(status, 0, "crypto_core_hsalsa20 cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_round_trips_and_precomputation_agrees() {
        let (alice_pk, alice_sk) = box_keypair();
        let (bob_pk, bob_sk) = box_keypair();
        let nonce = [7u8; NONCE_BYTES];
        let sealed = box_easy(b"hello", &nonce, &bob_pk, &alice_sk).expect("valid keys");
        assert_eq!(sealed.len(), 5 + MAC_BYTES);
        assert_eq!(
            box_open_easy(&sealed, &nonce, &alice_pk, &bob_sk).as_deref(),
            Some(&b"hello"[..])
        );
        let k = box_beforenm(&alice_pk, &bob_sk).expect("valid keys");
        assert_eq!(
            box_open_easy_afternm(&sealed, &nonce, &k).as_deref(),
            Some(&b"hello"[..])
        );
        assert_eq!(box_easy_afternm(b"hello", &nonce, &k), sealed);
        assert!(box_open_easy(&sealed[..15], &nonce, &alice_pk, &bob_sk).is_none());
        assert_eq!(scalarmult_base(&alice_sk), Some(alice_pk));
        let shared = scalarmult(&bob_sk, &alice_pk).expect("valid keys");
        assert_eq!(core_hsalsa20(&[0; 16], &shared), k);
    }

    #[test]
    fn small_order_public_keys_are_refused() {
        let (_, sk) = box_keypair();
        let zero = [0u8; KEY_BYTES];
        assert!(box_beforenm(&zero, &sk).is_none());
        assert!(box_easy(b"x", &[0; NONCE_BYTES], &zero, &sk).is_none());
        assert!(scalarmult(&sk, &zero).is_none());
    }

    #[test]
    fn secretbox_in_place_matches_easy() {
        let key = [3u8; KEY_BYTES];
        let nonce = [9u8; NONCE_BYTES];
        let easy = secretbox_easy(b"chunk of data", &nonce, &key);
        let mut buffer = vec![0u8; MAC_BYTES];
        buffer.extend_from_slice(b"chunk of data");
        secretbox_seal_in_place(&mut buffer, &nonce, &key);
        assert_eq!(buffer, easy);
        assert!(secretbox_open_in_place(&mut buffer, &nonce, &key));
        assert_eq!(&buffer[MAC_BYTES..], b"chunk of data");
        assert!(!secretbox_open_in_place(&mut buffer, &nonce, &key));
        assert_eq!(
            secretbox_open_easy(&easy, &nonce, &key).as_deref(),
            Some(&b"chunk of data"[..])
        );
        assert!(secretbox_open_easy(&easy[..15], &nonce, &key).is_none());
    }

    #[test]
    fn sign_detached_and_combined() {
        let (pk, sk) = sign_seed_keypair(&[1u8; KEY_BYTES]);
        assert_eq!(&sk[..32], &[1u8; KEY_BYTES]);
        assert_eq!(&sk[32..], &pk);
        let sig = sign_detached(b"msg", &sk);
        assert!(sign_verify_detached(&sig, b"msg", &pk));
        assert!(!sign_verify_detached(&sig, b"msh", &pk));
        assert!(!sign_verify_detached(&sig[..63], b"msg", &pk));
        let signed = sign(b"msg", &sk);
        assert_eq!(&signed[..64], &sig);
        assert_eq!(sign_open(&signed, &pk).as_deref(), Some(&b"msg"[..]));
        assert!(sign_open(&signed[..63], &pk).is_none());
        assert_eq!(sign_open(&sign(b"", &sk), &pk).as_deref(), Some(&b""[..]));
    }
}
