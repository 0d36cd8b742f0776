//! A signed tree head as clients receive it from the log and compare it with others.
#![no_main]
use cachet_crypto::SignKeyPair;
use cachet_trust::SignedTreeHead;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(head) = SignedTreeHead::from_bytes(data) {
        assert_eq!(head.to_bytes(), data);
        let key = SignKeyPair::from_seed([5; 32]).public();
        let _ = head.verify(&key);
        let _ = cachet_trust::sth::check_heads(&head, &head, &[], &key);
    }
});
