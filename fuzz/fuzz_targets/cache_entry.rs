//! Whatever message decodes can be stored as a cache entry, and a hit built from it decodes to
//! the same records with every TTL patched, the ID and question case of the query.
#![no_main]
use kdns_cache::{Entry, Key};
use kdns_wire::Message;
use libfuzzer_sys::fuzz_target;
use std::time::Instant;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Message::decode(data) else { return };
    if m.questions.len() != 1 {
        return;
    }
    let q = &m.questions[0];
    let key = Key::new(&q.name, q.qtype, q.qclass, false, false);
    let Some(entry) = Entry::new(&m, &key, Instant::now(), 30) else { return };
    let mut query = Message { id: 0xBEEF, ..Message::default() };
    query.questions.push(m.questions[0].clone());
    let mut out = Vec::new();
    entry.write_hit(&query, m.questions[0].name.as_wire(), 7, &mut out);
    let hit = Message::decode(&out).expect("a hit decodes");
    assert_eq!(hit.id, 0xBEEF);
    assert_eq!(hit.answers.len(), m.answers.len());
    assert_eq!(hit.authority.len(), m.authority.len());
    assert_eq!(hit.additional.len(), m.additional.len());
    assert!(hit.answers.iter().chain(&hit.authority).chain(&hit.additional).all(|r| r.ttl == 7));
});
