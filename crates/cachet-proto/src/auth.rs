//! Signed requests: the `x-siilo-uid` and `x-siilo-sig` headers (whitepaper 8.3).
//!
//! The whitepaper writes `x-siilo-sig = Base64(sm, bm)` with `sm = crypto_sign(bm, sk)`.
//! NaCl's combined `crypto_sign` output already is `signature || bm`, so cachet defines:
//!
//! ```text
//! bm          = protobuf encoding of SignatureHeader
//! sm          = Ed25519 signature (64 bytes) || bm          (libsodium crypto_sign)
//! x-siilo-sig = base64 (RFC 4648 section 4, standard alphabet, with padding) of sm
//! x-siilo-uid = the user id, equal to SignatureHeader.user_id
//! ```
//!
//! Beyond the whitepaper, the header also signs the HTTP method, the SHA-256 of the body
//! and a random request nonce: the whitepaper's header covers neither the body (a network
//! attacker past TLS could swap it) nor anything unique (so replays inside the five-minute
//! window pass, as its section 10.1 admits). The server keeps the signatures it accepted
//! for the window and refuses a second use.
//!
//! Everything here is sans-IO: the caller passes the clock.

use base64::Engine;
use cachet_crypto::{sign, SignKeyPair, SignPublicKey, SIGNATURE_LEN};
use prost::Message;

use crate::v1::{ClientType, SignatureHeader};
use crate::ProtoError;

/// Header carrying the caller's user id.
pub const UID_HEADER: &str = "x-siilo-uid";
/// Header carrying the base64 signed `SignatureHeader`.
pub const SIG_HEADER: &str = "x-siilo-sig";
/// Prefix of operator ids in `x-siilo-uid` (`op:<name>`), on the data server and the key
/// server alike.
pub const OPERATOR_PREFIX: &str = "op:";

/// Is this a valid operator name: 1 to 64 of `[a-z0-9._-]`.
pub fn valid_operator_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// How far a signed timestamp may be from the server clock: five minutes.
pub const MAX_SKEW_MS: i64 = 5 * 60 * 1000;
/// Longest `x-siilo-sig` accepted, in base64 characters; a real one is about 250.
pub const MAX_SIG_HEADER_LEN: usize = 4096;
/// Length of the random per-request nonce.
pub const REQUEST_NONCE_LEN: usize = 16;

/// Who is calling, as it goes into every signature.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The server-assigned user id.
    pub user_id: String,
    /// The client's build number.
    pub build_number: u32,
    /// The kind of client.
    pub client_type: ClientType,
}

/// The request being signed or checked.
#[derive(Debug, Clone, Copy)]
pub struct RequestTarget<'a> {
    /// HTTP method, upper case (`POST`).
    pub method: &'a str,
    /// Path and query exactly as sent (`/api/v1/messages/receive`).
    pub path: &'a str,
    /// The raw request body (empty for none).
    pub body: &'a [u8],
}

/// The two header values to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// Value of `x-siilo-uid`.
    pub uid: String,
    /// Value of `x-siilo-sig`.
    pub sig: String,
}

/// Signs a request at time `now_ms` (milliseconds since the Unix epoch).
pub fn sign_request(
    caller: &Caller,
    key: &SignKeyPair,
    target: &RequestTarget<'_>,
    now_ms: i64,
) -> SignedHeaders {
    sign_request_with_nonce(
        caller,
        key,
        target,
        now_ms,
        cachet_crypto::random_bytes::<REQUEST_NONCE_LEN>(),
    )
}

/// [`sign_request`] with a given `request_nonce` instead of a fresh random one. For test
/// vectors only: a request nonce must never repeat, or the server refuses the request as
/// a replay.
pub fn sign_request_with_nonce(
    caller: &Caller,
    key: &SignKeyPair,
    target: &RequestTarget<'_>,
    now_ms: i64,
    request_nonce: [u8; REQUEST_NONCE_LEN],
) -> SignedHeaders {
    let header = SignatureHeader {
        timestamp: now_ms,
        user_id: caller.user_id.clone(),
        build_number: caller.build_number,
        uri_path: target.path.to_owned(),
        client_type: caller.client_type as i32,
        method: target.method.to_owned(),
        body_sha256: cachet_crypto::sha256(target.body).to_vec(),
        request_nonce: request_nonce.to_vec(),
    };
    let sm = sign::sign_combined(&header.encode_to_vec(), key);
    SignedHeaders {
        uid: caller.user_id.clone(),
        sig: base64::engine::general_purpose::STANDARD.encode(sm),
    }
}

/// A parsed but not yet verified `x-siilo-sig`.
#[derive(Debug, Clone)]
pub struct ParsedSignature {
    /// The decoded header.
    pub header: SignatureHeader,
    signature: [u8; SIGNATURE_LEN],
    signed_bytes: Vec<u8>,
}

impl ParsedSignature {
    /// Decodes the two headers and checks that they agree. Cheap; call before any lookup.
    pub fn parse(uid: Option<&str>, sig: Option<&str>) -> Result<Self, ProtoError> {
        let uid = uid.ok_or(ProtoError::MissingHeader(UID_HEADER))?;
        let sig = sig.ok_or(ProtoError::MissingHeader(SIG_HEADER))?;
        if sig.len() > MAX_SIG_HEADER_LEN {
            return Err(ProtoError::MalformedBase64);
        }
        let sm = base64::engine::general_purpose::STANDARD
            .decode(sig.trim())
            .map_err(|_| ProtoError::MalformedBase64)?;
        if sm.len() < SIGNATURE_LEN {
            return Err(ProtoError::SignatureTooShort);
        }
        let (signature, signed_bytes) = sm.split_at(SIGNATURE_LEN);
        let header = SignatureHeader::decode(signed_bytes)
            .map_err(|_| ProtoError::MalformedSignatureHeader)?;
        if header.user_id != uid {
            return Err(ProtoError::UidMismatch);
        }
        let mut sig_bytes = [0u8; SIGNATURE_LEN];
        sig_bytes.copy_from_slice(signature);
        Ok(Self {
            header,
            signature: sig_bytes,
            signed_bytes: signed_bytes.to_vec(),
        })
    }

    /// The signed user id.
    pub fn user_id(&self) -> &str {
        &self.header.user_id
    }

    /// Checks the signed method, path, body hash and timestamp against the request.
    pub fn check_target(&self, target: &RequestTarget<'_>, now_ms: i64) -> Result<(), ProtoError> {
        if self.header.uri_path != target.path {
            return Err(ProtoError::PathMismatch);
        }
        if !self.header.method.eq_ignore_ascii_case(target.method) {
            return Err(ProtoError::MethodMismatch);
        }
        if self.header.body_sha256 != cachet_crypto::sha256(target.body) {
            return Err(ProtoError::BodyMismatch);
        }
        let skew_ms = self.header.timestamp.saturating_sub(now_ms);
        if skew_ms.unsigned_abs() > MAX_SKEW_MS as u64 {
            return Err(ProtoError::Expired { skew_ms });
        }
        Ok(())
    }

    /// Verifies the Ed25519 signature under the user's Sign Key.
    pub fn verify(&self, key: &SignPublicKey) -> Result<(), ProtoError> {
        sign::verify_detached(&self.signed_bytes, &self.signature, key)
            .map_err(|_| ProtoError::BadSignature)
    }

    /// The identity of this signature for replay detection: the signature bytes, which are
    /// unique per request because the header holds a random nonce.
    pub fn replay_id(&self) -> &[u8; SIGNATURE_LEN] {
        &self.signature
    }

    /// The signed bytes and the signature, for batch verification.
    pub fn signed_parts(&self) -> (&[u8], &[u8; SIGNATURE_LEN]) {
        (&self.signed_bytes, &self.signature)
    }
}

/// Parses, checks and verifies a signed request in one call. `lookup` maps a user id to
/// its current Sign Key. Replay detection is the caller's (it needs storage).
pub fn verify_request(
    uid: Option<&str>,
    sig: Option<&str>,
    target: &RequestTarget<'_>,
    now_ms: i64,
    lookup: impl FnOnce(&str) -> Option<SignPublicKey>,
) -> Result<ParsedSignature, ProtoError> {
    let parsed = ParsedSignature::parse(uid, sig)?;
    parsed.check_target(target, now_ms)?;
    let key = lookup(parsed.user_id()).ok_or(ProtoError::UnknownUser)?;
    parsed.verify(&key)?;
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_790_000_000_000;

    fn setup() -> (Caller, SignKeyPair) {
        let caller = Caller {
            user_id: "u_alice".into(),
            build_number: 7,
            client_type: ClientType::Cli,
        };
        (caller, SignKeyPair::generate())
    }

    fn target(body: &[u8]) -> RequestTarget<'_> {
        RequestTarget {
            method: "POST",
            path: "/api/v1/messages/send",
            body,
        }
    }

    #[test]
    fn accepts_a_good_request() {
        let (caller, key) = setup();
        let h = sign_request(&caller, &key, &target(b"body"), NOW);
        let public = key.public();
        let parsed = verify_request(
            Some(&h.uid),
            Some(&h.sig),
            &target(b"body"),
            NOW + 1000,
            |u| (u == "u_alice").then_some(public),
        )
        .unwrap();
        assert_eq!(parsed.header.build_number, 7);
        assert_eq!(parsed.header.client_type, ClientType::Cli as i32);
    }

    #[test]
    fn each_failure_has_its_own_error() {
        let (caller, key) = setup();
        let public = key.public();
        let h = sign_request(&caller, &key, &target(b"body"), NOW);
        let check = |uid: Option<&str>,
                     sig: Option<&str>,
                     t: RequestTarget<'_>,
                     now: i64,
                     k: Option<SignPublicKey>| {
            verify_request(uid, sig, &t, now, |_| k).unwrap_err()
        };
        let good = Some(public);
        let junk = base64::engine::general_purpose::STANDARD.encode([0xffu8; 80]);
        let other_path = RequestTarget {
            path: "/api/v1/messages/receive",
            ..target(b"body")
        };
        let other_method = RequestTarget {
            method: "GET",
            ..target(b"body")
        };
        let (uid, sig, body) = (Some(h.uid.as_str()), Some(h.sig.as_str()), target(b"body"));
        // What is wrong with the request (headers and target; time and key are right),
        // and the error it must get.
        let header_and_target_failures = [
            (None, sig, body, ProtoError::MissingHeader(UID_HEADER)),
            (uid, None, body, ProtoError::MissingHeader(SIG_HEADER)),
            (Some("u_bob"), sig, body, ProtoError::UidMismatch),
            (uid, Some("!!!"), body, ProtoError::MalformedBase64),
            (uid, Some("AAAA"), body, ProtoError::SignatureTooShort),
            (
                uid,
                Some(junk.as_str()),
                body,
                ProtoError::MalformedSignatureHeader,
            ),
            (uid, sig, other_path, ProtoError::PathMismatch),
            (uid, sig, other_method, ProtoError::MethodMismatch),
            (uid, sig, target(b"swapped"), ProtoError::BodyMismatch),
        ];
        for (uid, sig, t, expected) in header_and_target_failures {
            assert_eq!(check(uid, sig, t, NOW, good), expected);
        }
        assert_eq!(
            check(
                Some(&h.uid),
                Some(&h.sig),
                target(b"body"),
                NOW + MAX_SKEW_MS + 1,
                good
            ),
            ProtoError::Expired {
                skew_ms: -MAX_SKEW_MS - 1
            }
        );
        assert!(matches!(
            check(
                Some(&h.uid),
                Some(&h.sig),
                target(b"body"),
                NOW - MAX_SKEW_MS - 1,
                good
            ),
            ProtoError::Expired { .. }
        ));
        assert_eq!(
            check(Some(&h.uid), Some(&h.sig), target(b"body"), NOW, None),
            ProtoError::UnknownUser
        );
        let mallory = SignKeyPair::generate().public();
        assert_eq!(
            check(
                Some(&h.uid),
                Some(&h.sig),
                target(b"body"),
                NOW,
                Some(mallory)
            ),
            ProtoError::BadSignature
        );
    }

    #[test]
    fn two_signatures_of_the_same_request_differ() {
        let (caller, key) = setup();
        let a = sign_request(&caller, &key, &target(b""), NOW);
        let b = sign_request(&caller, &key, &target(b""), NOW);
        assert_ne!(a.sig, b.sig);
    }

    #[test]
    fn the_encoding_is_signature_then_header() {
        let (caller, key) = setup();
        let h = sign_request(&caller, &key, &target(b"x"), NOW);
        let sm = base64::engine::general_purpose::STANDARD
            .decode(&h.sig)
            .unwrap();
        let header = SignatureHeader::decode(&sm[64..]).unwrap();
        assert_eq!(header.uri_path, "/api/v1/messages/send");
        assert_eq!(header.timestamp, NOW);
        sign::verify_detached(&sm[64..], &sm[..64], &key.public()).unwrap();
    }
}
