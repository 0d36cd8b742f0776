//! Case keys as a client receives them: a case key share in a decrypted payload, and a
//! case record from the server whose sealed keys are opened with the client's key.
#![no_main]
use cachet_crypto::{boxes, BoxPublicKey, BoxSecretKey, Nonce, SymmetricKey};
use cachet_proto::decode;
use cachet_proto::v1::{payload::Body, CaseRecord, Payload};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
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
        // The recipient of the seeds' sealed keys (see the seed writer).
        let mine = BoxSecretKey::from_bytes([0x42; 32]);
        for sealed in &record.my_keys {
            let (Ok(nonce), Ok(sealer)) = (
                Nonce::from_slice(&sealed.nonce),
                BoxPublicKey::from_slice(&sealed.sealer_box_key),
            ) else {
                continue;
            };
            if let Ok(bytes) = boxes::open(&sealed.ciphertext, &nonce, &sealer, &mine) {
                let _ = SymmetricKey::from_slice(&bytes);
            }
        }
    }
});
