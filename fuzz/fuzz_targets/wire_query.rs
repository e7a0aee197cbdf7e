//! Arbitrary bytes as a client query and as any message: never panic; whatever decodes must
//! re-encode to something that decodes to the same message; truncation stays within bounds.
#![no_main]
use kdns_wire::{check_query, Message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = check_query(data);
    if let Ok(m) = Message::decode(data) {
        let again = Message::decode(&m.to_vec()).expect("re-encoded message decodes");
        assert_eq!(again, m);
        let mut out = Vec::new();
        let e = m.encode(&mut out, 512);
        assert!(e.len <= 512 || !e.truncated);
    }
});
