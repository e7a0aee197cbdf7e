//! A cache snapshot file (read at node-cache start, possibly truncated or corrupt) never panics
//! the decoder; entries rebuilt from whatever decodes never panic a hit either.
#![no_main]
use kdns_cache::snapshot::Snapshot;
use kdns_cache::{Entry, Key};
use kdns_wire::Message;
use libfuzzer_sys::fuzz_target;
use std::time::Instant;

fuzz_target!(|data: &[u8]| {
    let Ok(snap) = Snapshot::decode(data) else { return };
    assert_eq!(Snapshot::decode(&snap.encode()).as_ref(), Ok(&snap));
    for (_, items) in &snap.sections {
        for it in items {
            let Some(key) = Key::from_bytes(&it.key) else { continue };
            let Some(entry) = Entry::from_wire(&it.wire, &key, Instant::now(), it.duration) else { continue };
            let query = Message { id: 1, ..Message::default() };
            let mut out = Vec::new();
            entry.write_hit(&query, &[0], 5, &mut out);
        }
    }
});
