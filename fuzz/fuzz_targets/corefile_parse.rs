//! Arbitrary text as a Corefile: the parser returns a result (with file:line on error), never
//! panics or loops; imports are resolved against an empty directory.
#![no_main]
use kdns_corefile::parse_str;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let dir = std::env::temp_dir().join("kdns-fuzz-empty");
        let _ = std::fs::create_dir_all(&dir);
        if let Ok(c) = parse_str(text, "Corefile", &dir, &|_| Some("x".into())) {
            let _ = c.canonical();
        }
    }
});
