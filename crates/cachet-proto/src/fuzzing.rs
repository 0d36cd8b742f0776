//! The bodies of this crate's fuzz targets (`fuzz/fuzz_targets/`), written once: the
//! fuzz targets call them on what the fuzzer makes, and `tests/fuzz_corpus.rs` on every
//! committed seed and corpus input. Not part of the API.

use cachet_crypto::{boxes, BoxPublicKey, BoxSecretKey, Nonce, SymmetricKey};

use crate::decode;
use crate::v1::{payload::Body, CaseRecord, Payload};

/// The recipient of the sealed case key in the `case_key` seeds; the target opens sealed
/// keys with it.
pub const CASE_KEY_RECIPIENT: [u8; 32] = [0x42; 32];

/// The `envelope` target: envelope bytes as the server receives them on /messages/send.
pub fn check_envelope(data: &[u8]) {
    let _ = decode::envelope(data);
}

/// The `ack` target: ack bytes as the server receives them on /messages/receive.
pub fn check_ack(data: &[u8]) {
    let _ = decode::ack(data);
}

/// The `signature_header` target: the x-siilo-sig header value (base64, then a signature
/// and a SignatureHeader).
pub fn check_signature_header(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::auth::ParsedSignature::parse(Some("u_fuzz"), Some(text));
    }
}

/// The `attachment_pointer` target: an attachment pointer as a client finds it in a
/// decrypted payload: the pointer alone, and the same bytes as a whole payload whose body
/// may be a pointer.
pub fn check_attachment_pointer(data: &[u8]) {
    if let Ok(pointer) = decode::attachment_pointer(data) {
        let name = decode::safe_file_name(&pointer.file_name);
        assert!(!name.is_empty() && !name.contains(['/', '\\']) && !name.starts_with('.'));
    }
    if let Ok(Payload {
        body: Some(Body::Attachment(pointer)),
        ..
    }) = decode::message::<Payload>(data)
    {
        if decode::validate_attachment_pointer(&pointer).is_ok() {
            let _ = decode::safe_file_name(&pointer.file_name);
        }
    }
}

/// The `case_key` target: case keys as a client receives them, a case key share in a
/// decrypted payload and a case record from the server whose sealed keys are opened with
/// [`CASE_KEY_RECIPIENT`]. Returns the case keys it opened.
pub fn check_case_key(data: &[u8]) -> Vec<SymmetricKey> {
    let mut opened = Vec::new();
    if let Ok(share) = decode::case_key_share(data) {
        assert!(SymmetricKey::from_slice(&share.case_key).is_ok());
    }
    if let Ok(Payload {
        body: Some(Body::CaseKeyShare(share)),
        ..
    }) = decode::message::<Payload>(data)
    {
        let _ = decode::validate_case_key_share(&share);
    }
    if let Ok(record) = decode::message::<CaseRecord>(data) {
        let _ = decode::validate_id(&record.case_id, "case_id");
        let mine = BoxSecretKey::from_bytes(CASE_KEY_RECIPIENT);
        for sealed in &record.my_keys {
            let (Ok(nonce), Ok(sealer)) = (
                Nonce::from_slice(&sealed.nonce),
                BoxPublicKey::from_slice(&sealed.sealer_box_key),
            ) else {
                continue;
            };
            if let Ok(bytes) = boxes::open(&sealed.ciphertext, &nonce, &sealer, &mine) {
                if let Ok(key) = SymmetricKey::from_slice(&bytes) {
                    opened.push(key);
                }
            }
        }
    }
    opened
}
