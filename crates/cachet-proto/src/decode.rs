//! Decoding of untrusted bytes into checked wire types. Never panics; every rule broken
//! is reported as [`ProtoError::Invalid`] naming the field.

use prost::Message;

use crate::v1::{Ack, AttachmentPointer, CaseKeyShare, Envelope};
use crate::ProtoError;

/// Most recipients one envelope may address (a group's size limit).
pub const MAX_RECIPIENTS: usize = 1024;
/// Longest message id accepted.
pub const MAX_ID_LEN: usize = 128;
/// Largest ciphertext of one recipient: text messages are ~200 bytes; pointers and key
/// shares are small. Attachments travel separately.
pub const MAX_CIPHERTEXT_LEN: usize = 256 * 1024;
/// Most delivery ids one ack may name.
pub const MAX_ACK_IDS: usize = 10_000;

/// Decodes any message, mapping the decoder's error.
pub fn message<T: Message + Default>(bytes: &[u8]) -> Result<T, ProtoError> {
    T::decode(bytes).map_err(|e| ProtoError::MalformedProtobuf(e.to_string()))
}

fn invalid(field: &'static str, reason: &'static str) -> ProtoError {
    ProtoError::Invalid { field, reason }
}

/// Decodes a message and runs its checks: what every `decode::<kind>` function does.
fn checked<T: Message + Default>(
    bytes: &[u8],
    check: fn(&T) -> Result<(), ProtoError>,
) -> Result<T, ProtoError> {
    let value: T = message(bytes)?;
    check(&value)?;
    Ok(value)
}

/// Checks that a key field holds a 32-byte key.
fn check_key_len(key: &[u8], field: &'static str) -> Result<(), ProtoError> {
    if key.len() == cachet_crypto::KEY_LEN {
        Ok(())
    } else {
        Err(invalid(field, "must be 32 bytes"))
    }
}

fn check_id(value: &str, field: &'static str, required: bool) -> Result<(), ProtoError> {
    if required && value.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if value.len() > MAX_ID_LEN {
        return Err(invalid(field, "too long"));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(invalid(
            field,
            "only ASCII letters, digits, '-', '_' and '.' are allowed",
        ));
    }
    Ok(())
}

/// Checks an id (user, message, group, case, attachment) for length and alphabet.
pub fn validate_id(value: &str, field: &'static str) -> Result<(), ProtoError> {
    check_id(value, field, true)
}

/// Decodes an envelope as a client sends it and checks its shape: a message id, exactly
/// one kind of content, well-formed nonces and bounded sizes.
pub fn envelope(bytes: &[u8]) -> Result<Envelope, ProtoError> {
    checked(bytes, validate_envelope)
}

/// The checks of [`envelope`] on an already decoded value.
pub fn validate_envelope(env: &Envelope) -> Result<(), ProtoError> {
    if env.version != crate::ENVELOPE_VERSION {
        return Err(invalid("version", "unsupported envelope version"));
    }
    check_id(&env.message_id, "message_id", true)?;
    check_id(&env.group_id, "group_id", false)?;
    check_id(&env.sender_id, "sender_id", false)?;
    let kinds = usize::from(!env.recipients.is_empty())
        + usize::from(env.case_message.is_some())
        + usize::from(env.contact_update.is_some());
    if kinds != 1 {
        return Err(invalid(
            "envelope",
            "exactly one of recipients, case_message or contact_update must be set",
        ));
    }
    if env.recipients.len() > MAX_RECIPIENTS {
        return Err(invalid("recipients", "too many recipients"));
    }
    for r in &env.recipients {
        check_id(&r.recipient_id, "recipient_id", true)?;
        if r.nonce.len() != cachet_crypto::NONCE_LEN {
            return Err(invalid("nonce", "must be 24 bytes"));
        }
        if r.ciphertext.len() < cachet_crypto::MAC_LEN || r.ciphertext.len() > MAX_CIPHERTEXT_LEN {
            return Err(invalid("ciphertext", "length out of range"));
        }
        for key in [&r.sender_box_key, &r.recipient_box_key] {
            if !key.is_empty() && key.len() != cachet_crypto::KEY_LEN {
                return Err(invalid("box_key", "must be empty or 32 bytes"));
            }
        }
    }
    let mut ids: Vec<&str> = env
        .recipients
        .iter()
        .map(|r| r.recipient_id.as_str())
        .collect();
    ids.sort_unstable();
    if ids.windows(2).any(|w| w[0] == w[1]) {
        return Err(invalid("recipients", "a recipient appears twice"));
    }
    if let Some(case) = &env.case_message {
        check_id(&case.case_id, "case_id", true)?;
        if case.nonce.len() != cachet_crypto::NONCE_LEN {
            return Err(invalid("nonce", "must be 24 bytes"));
        }
        if case.ciphertext.len() < cachet_crypto::MAC_LEN
            || case.ciphertext.len() > MAX_CIPHERTEXT_LEN
        {
            return Err(invalid("ciphertext", "length out of range"));
        }
    }
    Ok(())
}

/// Decodes an ack and bounds it.
pub fn ack(bytes: &[u8]) -> Result<Ack, ProtoError> {
    let ack: Ack = message(bytes)?;
    if ack.delivery_ids.len() > MAX_ACK_IDS {
        return Err(invalid("delivery_ids", "too many ids in one ack"));
    }
    Ok(ack)
}

/// Longest file name kept from an attachment pointer (in characters).
pub const MAX_FILE_NAME_CHARS: usize = 200;

/// Decodes an attachment pointer as a client finds it in a decrypted payload and checks
/// it (see [`validate_attachment_pointer`]).
pub fn attachment_pointer(bytes: &[u8]) -> Result<AttachmentPointer, ProtoError> {
    checked(bytes, validate_attachment_pointer)
}

/// The checks of [`attachment_pointer`]: an attachment id, a 32-byte key, a known chunk
/// format and a 32-byte SHA-256. The file name is not checked here: it is the sender's
/// choice, made safe by [`safe_file_name`] before anything uses it.
pub fn validate_attachment_pointer(pointer: &AttachmentPointer) -> Result<(), ProtoError> {
    check_id(&pointer.attachment_id, "attachment_id", true)?;
    check_key_len(&pointer.key, "key")?;
    if cachet_crypto::attachment::FormatVersion::from_number(pointer.format_version).is_err() {
        return Err(invalid("format_version", "unknown attachment format"));
    }
    if pointer.ciphertext_sha256.len() != 32 {
        return Err(invalid("ciphertext_sha256", "must be 32 bytes"));
    }
    Ok(())
}

/// Keeps only a safe final path component of a file name chosen by a sender: no
/// directories, no control characters, no leading dots, at most
/// [`MAX_FILE_NAME_CHARS`] characters; `attachment` when nothing is left.
pub fn safe_file_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = last
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_FILE_NAME_CHARS)
        .collect();
    match clean.trim_start_matches('.') {
        "" => "attachment".into(),
        s => s.to_owned(),
    }
}

/// Decodes a case key share as a client finds it in a decrypted payload and checks it
/// (see [`validate_case_key_share`]).
pub fn case_key_share(bytes: &[u8]) -> Result<CaseKeyShare, ProtoError> {
    checked(bytes, validate_case_key_share)
}

/// The checks of [`case_key_share`]: a case id and a 32-byte case key.
pub fn validate_case_key_share(share: &CaseKeyShare) -> Result<(), ProtoError> {
    check_id(&share.case_id, "case_id", true)?;
    check_key_len(&share.case_key, "case_key")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::{CaseCiphertext, RecipientCiphertext};
    use proptest::prelude::*;

    fn good() -> Envelope {
        Envelope {
            version: 1,
            message_id: "m1".into(),
            recipients: vec![RecipientCiphertext {
                recipient_id: "u_bob".into(),
                nonce: vec![0; 24],
                ciphertext: vec![0; 40],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn shape_rules() {
        assert!(validate_envelope(&good()).is_ok());
        let mut e = good();
        e.message_id.clear();
        assert!(validate_envelope(&e).is_err());
        let mut e = good();
        e.recipients[0].nonce = vec![0; 32]; // the whitepaper's 32-byte slip
        assert_eq!(
            validate_envelope(&e),
            Err(invalid("nonce", "must be 24 bytes"))
        );
        let mut e = good();
        e.recipients.push(e.recipients[0].clone());
        assert!(validate_envelope(&e).is_err());
        let mut e = good();
        e.case_message = Some(CaseCiphertext::default());
        assert!(validate_envelope(&e).is_err());
        let mut e = good();
        e.message_id = "../../etc".into();
        assert!(validate_envelope(&e).is_err());
        let mut e = good();
        e.version = 2;
        assert!(validate_envelope(&e).is_err());
    }

    #[test]
    fn unknown_fields_are_tolerated() {
        let mut bytes = good().encode_to_vec();
        // Field 100, wire type 2 (length-delimited), 3 bytes: a field from a newer peer.
        bytes.extend_from_slice(&[0xa2, 0x06, 3, b'n', b'e', b'w']);
        assert_eq!(envelope(&bytes).unwrap(), good());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = envelope(&bytes);
            let _ = ack(&bytes);
            let _ = crate::auth::ParsedSignature::parse(Some("u"), Some(&String::from_utf8_lossy(&bytes)));
        }

        #[test]
        fn envelopes_round_trip(id in "[a-zA-Z0-9_-]{1,64}", ct in proptest::collection::vec(any::<u8>(), 16..300), ts in any::<i64>()) {
            let mut e = good();
            e.message_id = id;
            e.timestamp = ts;
            e.recipients[0].ciphertext = ct;
            let back = envelope(&e.encode_to_vec()).unwrap();
            prop_assert_eq!(back, e);
        }
    }
}
