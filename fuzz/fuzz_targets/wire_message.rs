//! Any bytes as an upstream response (names, compression, every RR type, EDNS options): decoding
//! never panics, the in-place check (`check_message`, which lets forward relay a reply as bytes)
//! accepts exactly what decodes, and whatever decodes re-encodes into something that decodes
//! again with the same sections.
#![no_main]
use kdns_wire::{Message, Name};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Names alone, at every offset (pointers, loops, labels > 63, over-long names).
    for pos in 0..data.len().min(64) {
        if let Ok((name, _)) = Name::read(data, pos) {
            assert!(name.as_wire().len() <= 255);
            let text = name.to_string();
            assert!(Name::from_ascii(&text).is_ok(), "{text:?} does not parse back");
        }
    }
    let checked = kdns_wire::check_message(data);
    let decoded = Message::decode(data);
    assert_eq!(checked.is_ok(), decoded.is_ok(), "check {checked:?} vs decode {decoded:?}");
    let Ok(m) = decoded else { return };
    let checked = checked.expect("checked above");
    assert_eq!(checked.rcode, m.rcode);
    assert!(checked.end <= data.len());
    let again = Message::decode(&m.to_vec()).expect("our own encoding decodes");
    assert_eq!(again.questions, m.questions);
    assert_eq!(again.answers.len(), m.answers.len());
    assert_eq!(again.authority.len(), m.authority.len());
    assert_eq!(again.additional.len(), m.additional.len());
    assert_eq!(again.edns.is_some(), m.edns.is_some());
    // Truncation to any UDP size keeps a decodable message.
    for size in [512usize, 1232] {
        let mut out = Vec::new();
        m.encode(&mut out, size);
        if m.questions.len() <= 1 {
            assert!(out.len() <= size, "{} bytes over {size}", out.len());
        }
        Message::decode(&out).expect("a truncated encoding decodes");
    }
});
