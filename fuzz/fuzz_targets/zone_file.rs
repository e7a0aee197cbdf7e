//! Arbitrary text as a zone file: the parser returns records or an error with a line number,
//! never panics; every record it accepts encodes into a message.
#![no_main]
use kdns_wire::{zonefile::parse_zone, Message, Name};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let origin = Name::from_ascii("example.org.").expect("static name");
    match parse_zone(text, &origin) {
        Ok(records) => {
            let m = Message { answers: records, ..Message::default() };
            let mut out = Vec::new();
            let _ = m.encode(&mut out, 65535);
            assert!(out.len() <= 65535);
        }
        Err(e) => assert!(e.line >= 1),
    }
});
