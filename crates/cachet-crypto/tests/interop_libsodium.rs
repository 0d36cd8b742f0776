//! Byte compatibility with libsodium, in both directions.
//!
//! Everything cachet-crypto seals must open with libsodium, everything libsodium seals
//! must open with cachet-crypto, and deterministic outputs (public keys, Ed25519
//! signatures, ciphertexts under a given nonce) must be identical. Message lengths, keys
//! and nonces are drawn by proptest; case counts stay modest so the suite stays quick.

use cachet_crypto::attachment::{
    self, ChunkOpener, ChunkSealer, FormatVersion, CHUNK_SIZE, SEALED_CHUNK_SIZE,
};
use cachet_crypto::boxes::{self, PrecomputedBox};
use cachet_crypto::secretbox::{self, SecretBox};
use cachet_crypto::sign::{self, BatchItem};
use cachet_crypto::{
    BoxKeyPair, BoxPublicKey, BoxSecretKey, CryptoError, Nonce, SignKeyPair, SignPublicKey,
    SymmetricKey, MAC_LEN, NONCE_LEN,
};
use cachet_sodium_ref as sodium;
use proptest::prelude::*;

/// Messages from empty to a few kilobytes, the range of chat messages and headers.
fn message() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..4096)
}

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(64)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn crypto_box_both_ways(
        alice_seed in any::<[u8; 32]>(),
        bob_seed in any::<[u8; 32]>(),
        nonce in any::<[u8; 24]>(),
        msg in message(),
    ) {
        let alice = BoxKeyPair::from_secret(BoxSecretKey::from_bytes(alice_seed));
        let bob = BoxKeyPair::from_secret(BoxSecretKey::from_bytes(bob_seed));
        let nonce = Nonce(nonce);

        // cachet seals (random nonce), libsodium opens.
        let (n, sealed) = boxes::seal(&msg, &bob.public, &alice.secret).unwrap();
        prop_assert_eq!(sealed.len(), msg.len() + MAC_LEN);
        let opened = sodium::box_open_easy(
            &sealed, &n.0, alice.public.as_bytes(), bob.secret.expose_secret());
        prop_assert_eq!(opened, Some(msg.clone()));

        // libsodium seals, cachet opens.
        let by_sodium = sodium::box_easy(
            &msg, &nonce.0, bob.public.as_bytes(), alice.secret.expose_secret())
            .expect("honestly generated keys");
        prop_assert_eq!(
            boxes::open(&by_sodium, &nonce, &alice.public, &bob.secret),
            Ok(msg.clone())
        );

        // Same nonce, same bytes.
        let by_cachet = PrecomputedBox::new(&bob.public, &alice.secret).unwrap()
            .seal_with_nonce(&msg, &nonce);
        prop_assert_eq!(&by_cachet, &by_sodium);

        // A flipped bit fails on both sides.
        let mut bad = by_sodium.clone();
        let i = msg.len() % bad.len();
        bad[i] ^= 0x20;
        prop_assert_eq!(
            boxes::open(&bad, &nonce, &alice.public, &bob.secret),
            Err(CryptoError::Decrypt)
        );
        prop_assert_eq!(
            sodium::box_open_easy(&bad, &nonce.0, alice.public.as_bytes(), bob.secret.expose_secret()),
            None
        );
    }

    #[test]
    fn precomputed_box_both_ways(
        alice_seed in any::<[u8; 32]>(),
        bob_seed in any::<[u8; 32]>(),
        msg in message(),
    ) {
        let alice = BoxKeyPair::from_secret(BoxSecretKey::from_bytes(alice_seed));
        let bob = BoxKeyPair::from_secret(BoxSecretKey::from_bytes(bob_seed));
        let ours = PrecomputedBox::new(&bob.public, &alice.secret).unwrap();
        let theirs = sodium::box_beforenm(alice.public.as_bytes(), bob.secret.expose_secret())
            .expect("honestly generated keys");

        let (nonce, sealed) = ours.seal(&msg);
        prop_assert_eq!(
            sodium::box_open_easy_afternm(&sealed, &nonce.0, &theirs),
            Some(msg.clone())
        );
        let by_sodium = sodium::box_easy_afternm(&msg, &nonce.0, &theirs);
        prop_assert_eq!(&by_sodium, &sealed);
        let back = PrecomputedBox::new(&alice.public, &bob.secret).unwrap();
        prop_assert_eq!(back.open(&by_sodium, &nonce), Ok(msg.clone()));
    }

    #[test]
    fn secretbox_both_ways(key in any::<[u8; 32]>(), nonce in any::<[u8; 24]>(), msg in message()) {
        let sym = SymmetricKey::from_bytes(key);
        let nonce = Nonce(nonce);

        let (n, sealed) = secretbox::seal(&msg, &sym);
        prop_assert_eq!(sodium::secretbox_open_easy(&sealed, &n.0, &key), Some(msg.clone()));

        let by_sodium = sodium::secretbox_easy(&msg, &nonce.0, &key);
        prop_assert_eq!(secretbox::open(&by_sodium, &nonce, &sym), Ok(msg.clone()));
        prop_assert_eq!(SecretBox::new(&sym).seal_with_nonce(&msg, &nonce), by_sodium.clone());

        // In place on both sides gives the same buffer.
        let mut ours = vec![0u8; MAC_LEN];
        ours.extend_from_slice(&msg);
        let mut theirs = ours.clone();
        SecretBox::new(&sym).seal_in_place(&mut ours, &nonce);
        sodium::secretbox_seal_in_place(&mut theirs, &nonce.0, &key);
        prop_assert_eq!(&ours, &theirs);
        prop_assert_eq!(&ours, &by_sodium);
    }

    #[test]
    fn secretbox_prefixed_layout_is_nonce_tag_ciphertext(key in any::<[u8; 32]>(), msg in message()) {
        let sym = SymmetricKey::from_bytes(key);

        // cachet's `nonce || tag || ct` opens with libsodium after splitting off the nonce.
        let sealed = secretbox::seal_prefixed(&msg, &sym);
        prop_assert_eq!(sealed.len(), NONCE_LEN + MAC_LEN + msg.len());
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().expect("24 bytes");
        prop_assert_eq!(sodium::secretbox_open_easy(rest, &nonce, &key), Some(msg.clone()));

        // The layout built by hand from libsodium's output opens with cachet.
        let other_nonce = cachet_crypto::random_bytes::<NONCE_LEN>();
        let mut by_sodium = other_nonce.to_vec();
        by_sodium.extend_from_slice(&sodium::secretbox_easy(&msg, &other_nonce, &key));
        prop_assert_eq!(secretbox::open_prefixed(&by_sodium, &sym), Ok(msg.clone()));
    }

    #[test]
    fn ed25519_detached_both_ways(seed in any::<[u8; 32]>(), msg in message()) {
        let pair = SignKeyPair::from_seed(seed);
        let (pk, sk) = sodium::sign_seed_keypair(&seed);
        // libsodium's 64-byte secret key is seed || public key.
        prop_assert_eq!(pk, pair.public().0);
        prop_assert_eq!(sk, pair.expose_libsodium_secret());
        prop_assert_eq!(&sk[..32], &seed[..]);

        let ours = sign::sign_detached(&msg, &pair);
        let theirs = sodium::sign_detached(&msg, &sk);
        // Deterministic signatures: identical bytes.
        prop_assert_eq!(ours, theirs);
        prop_assert!(sodium::sign_verify_detached(&ours, &msg, &pk));
        prop_assert_eq!(sign::verify_detached(&msg, &theirs, &pair.public()), Ok(()));

        let mut other = msg.clone();
        other.push(0);
        prop_assert!(!sodium::sign_verify_detached(&ours, &other, &pk));
        prop_assert_eq!(
            sign::verify_detached(&other, &theirs, &pair.public()),
            Err(CryptoError::BadSignature)
        );
    }

    #[test]
    fn ed25519_combined_both_ways(seed in any::<[u8; 32]>(), msg in message()) {
        let pair = SignKeyPair::from_seed(seed);
        let sk = pair.expose_libsodium_secret();
        let pk = *pair.public().as_bytes();

        let ours = sign::sign_combined(&msg, &pair);
        let theirs = sodium::sign(&msg, &sk);
        prop_assert_eq!(&ours, &theirs);
        prop_assert_eq!(sodium::sign_open(&ours, &pk), Some(msg.clone()));
        prop_assert_eq!(sign::open_combined(&theirs, &pair.public()), Ok(&msg[..]));

        let mut bad = theirs.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        prop_assert!(sign::open_combined(&bad, &pair.public()).is_err());
        prop_assert_eq!(sodium::sign_open(&bad, &pk), None);
    }

    #[test]
    fn box_key_derivation_matches(secret in any::<[u8; 32]>(), seed in any::<[u8; 32]>()) {
        // Public key from a raw secret key: crypto_scalarmult_base.
        let ours = BoxSecretKey::from_bytes(secret).public_key();
        prop_assert_eq!(Some(ours.0), sodium::scalarmult_base(&secret));

        // crypto_box_seed_keypair derives the secret key from a seed; cachet derives the
        // same public key from that secret key.
        let (pk, sk) = sodium::box_seed_keypair(&seed);
        let pair = BoxKeyPair::from_secret(BoxSecretKey::from_bytes(sk));
        prop_assert_eq!(pair.public, BoxPublicKey(pk));
    }

    #[test]
    fn ed25519_to_x25519_matches(seed in any::<[u8; 32]>()) {
        // A signing key pair converted to a box key pair, as libsodium converts it.
        let ours = SignKeyPair::from_seed(seed);
        let (pk, sk) = sodium::sign_seed_keypair(&seed);
        let public = ours.public().to_box_public().expect("valid key");
        prop_assert_eq!(Some(public.0), sodium::sign_pk_to_curve25519(&pk));
        let secret = ours.to_box_secret();
        prop_assert_eq!(*secret.expose_secret(), sodium::sign_sk_to_curve25519(&sk));
        prop_assert_eq!(secret.public_key(), public);
    }
}

#[test]
fn libsodium_generated_keys_work_with_cachet() {
    for _ in 0..8 {
        let (alice_pk, alice_sk) = sodium::box_keypair();
        let (bob_pk, bob_sk) = sodium::box_keypair();
        assert_eq!(
            BoxSecretKey::from_bytes(alice_sk).public_key(),
            BoxPublicKey(alice_pk)
        );
        let (nonce, sealed) = boxes::seal(
            b"lab result ready",
            &BoxPublicKey(bob_pk),
            &BoxSecretKey::from_bytes(alice_sk),
        )
        .unwrap();
        assert_eq!(
            sodium::box_open_easy(&sealed, &nonce.0, &alice_pk, &bob_sk).as_deref(),
            Some(&b"lab result ready"[..])
        );
    }
}

#[test]
fn batch_verification_accepts_libsodium_signatures() {
    let items: Vec<([u8; 64], Vec<u8>, SignPublicKey)> = (0u8..32)
        .map(|i| {
            let (pk, sk) = sodium::sign_seed_keypair(&[i; 32]);
            let msg = vec![i; usize::from(i) * 7];
            (sodium::sign_detached(&msg, &sk), msg, SignPublicKey(pk))
        })
        .collect();
    let batch: Vec<BatchItem<'_>> = items
        .iter()
        .map(|(sig, msg, key)| BatchItem {
            message: msg,
            signature: sig,
            key,
        })
        .collect();
    assert!(sign::verify_batch(&batch).iter().all(Result::is_ok));
}

// ---------------------------------------------------------------------------------------
// Attachments
// ---------------------------------------------------------------------------------------

/// libsodium's `sodium_increment`: adds one to a little-endian number. Written out here,
/// independently of `attachment::chunk_nonce`, so that the test checks the format and not
/// the code against itself.
fn increment_le(nonce: &mut [u8; NONCE_LEN]) {
    for byte in nonce.iter_mut() {
        let (next, carry) = byte.overflowing_add(1);
        *byte = next;
        if !carry {
            break;
        }
    }
}

/// Fast deterministic filler (xorshift), so multi-megabyte plaintexts cost nothing to make.
fn filler(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// An attachment's plaintext (a length from [`attachment_len`], pseudo-random bytes)
/// and a key: the input of every attachment property.
fn attachment_and_key() -> impl Strategy<Value = (Vec<u8>, [u8; 32])> {
    (attachment_len(), any::<u64>(), any::<[u8; 32]>())
        .prop_map(|(len, seed, key)| (filler(len, seed), key))
}

/// Attachment lengths: around the chunk boundaries, or anywhere up to three chunks.
fn attachment_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0),
        Just(1),
        (CHUNK_SIZE - 2)..=(CHUNK_SIZE + 2),
        (2 * CHUNK_SIZE - 1)..=(2 * CHUNK_SIZE + 1),
        0..=(3 * CHUNK_SIZE),
    ]
}

/// Opens a version 1 attachment with nothing but libsodium: cut into sealed chunks of
/// 2 MiB + 16 bytes, nonce 1, 2, 3, ... as 24-byte little-endian numbers.
fn open_v1_with_libsodium(sealed: &[u8], key: &[u8; 32]) -> Option<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    let mut out = Vec::with_capacity(sealed.len());
    for chunk in sealed.chunks(SEALED_CHUNK_SIZE) {
        increment_le(&mut nonce);
        out.extend_from_slice(&sodium::secretbox_open_easy(chunk, &nonce, key)?);
    }
    Some(out)
}

/// Seals a version 1 attachment with nothing but libsodium.
fn seal_v1_with_libsodium(plaintext: &[u8], key: &[u8; 32]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    let mut out = Vec::new();
    for chunk in plaintext.chunks(CHUNK_SIZE) {
        increment_le(&mut nonce);
        out.extend_from_slice(&sodium::secretbox_easy(chunk, &nonce, key));
    }
    out
}

/// The version 2 nonce of chunk `index`, built from the format description:
/// `le64(index) || 0^14 || 0x02 || final`.
fn v2_nonce(index: u64, is_final: bool) -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[..8].copy_from_slice(&index.to_le_bytes());
    nonce[22] = 0x02;
    nonce[23] = u8::from(is_final);
    nonce
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn attachment_v1_opens_chunk_by_chunk_with_libsodium(
        (plain, key) in attachment_and_key(),
    ) {
        let len = plain.len();
        let sym = SymmetricKey::from_bytes(key);
        let sealed = attachment::seal_all(&plain, &sym, FormatVersion::V1);
        prop_assert_eq!(sealed.len() as u64, attachment::sealed_len(FormatVersion::V1, len as u64));
        prop_assert_eq!(open_v1_with_libsodium(&sealed, &key), Some(plain.clone()));
        // Byte-identical to what libsodium writes for the same plaintext.
        prop_assert_eq!(&sealed, &seal_v1_with_libsodium(&plain, &key));
    }

    #[test]
    fn attachment_v1_from_libsodium_opens_with_chunk_opener(
        (plain, key) in attachment_and_key(),
    ) {
        let len = plain.len();
        let sealed = seal_v1_with_libsodium(&plain, &key);
        let mut opener = ChunkOpener::new(&SymmetricKey::from_bytes(key), FormatVersion::V1);
        let mut out = Vec::with_capacity(len);
        let chunks: Vec<&[u8]> = sealed.chunks(SEALED_CHUNK_SIZE).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let is_last = i + 1 == chunks.len();
            out.extend_from_slice(&opener.open_chunk(chunk, is_last).expect("chunk opens"));
        }
        prop_assert_eq!(opener.finish(), Ok(()));
        prop_assert_eq!(out, plain);
    }

    #[test]
    fn attachment_v2_matches_its_nonce_layout_in_libsodium(
        (plain, key) in attachment_and_key(),
    ) {
        let len = plain.len();
        let sym = SymmetricKey::from_bytes(key);
        let chunk_count = attachment::chunk_count(FormatVersion::V2, len as u64) as usize;

        // cachet's in-place sealer, one reused buffer, versus libsodium chunk by chunk.
        let mut sealer = ChunkSealer::new(&sym, FormatVersion::V2);
        let mut buffer = Vec::with_capacity(SEALED_CHUNK_SIZE);
        let mut by_sodium = Vec::new();
        for i in 0..chunk_count {
            let start = i * CHUNK_SIZE;
            let part = &plain[start..(start + CHUNK_SIZE).min(len)];
            let is_final = i + 1 == chunk_count;
            buffer.clear();
            buffer.extend_from_slice(&[0u8; MAC_LEN]);
            buffer.extend_from_slice(part);
            sealer.seal_chunk_in_place(&mut buffer, is_final).expect("valid chunk");
            let theirs = sodium::secretbox_easy(part, &v2_nonce(i as u64 + 1, is_final), &key);
            prop_assert_eq!(&buffer, &theirs, "chunk {}", i + 1);
            by_sodium.extend_from_slice(&theirs);
        }
        prop_assert!(sealer.is_finished());
        prop_assert_eq!(attachment::open_all(&by_sodium, &sym, FormatVersion::V2), Ok(plain));
    }
}

#[test]
fn attachment_v1_first_nonces_are_the_libsodium_counter() {
    // Three chunks (the last short): nonces 1, 2, 3, checked by opening each chunk alone.
    let key = [0x11; 32];
    let plain = filler(2 * CHUNK_SIZE + 5, 7);
    let sealed = attachment::seal_all(&plain, &SymmetricKey::from_bytes(key), FormatVersion::V1);
    let chunks: Vec<&[u8]> = sealed.chunks(SEALED_CHUNK_SIZE).collect();
    assert_eq!(chunks.len(), 3);
    let mut nonce = [0u8; NONCE_LEN];
    for (i, chunk) in chunks.iter().enumerate() {
        increment_le(&mut nonce);
        assert_eq!(nonce[0] as usize, i + 1);
        let opened = sodium::secretbox_open_easy(chunk, &nonce, &key).expect("chunk opens");
        assert_eq!(
            opened,
            &plain[i * CHUNK_SIZE..((i + 1) * CHUNK_SIZE).min(plain.len())]
        );
        // And not under any neighbouring counter value.
        let mut wrong = nonce;
        increment_le(&mut wrong);
        assert_eq!(sodium::secretbox_open_easy(chunk, &wrong, &key), None);
    }
}

#[test]
fn counter_nonce_carries_like_sodium_increment() {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[0] = 0xff;
    increment_le(&mut nonce);
    assert_eq!(&nonce[..3], &[0x00, 0x01, 0x00]);
    assert_eq!(
        attachment::chunk_nonce(FormatVersion::V1, 256, false).0,
        nonce
    );
}
