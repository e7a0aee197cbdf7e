//! Whatever message decodes can be stored as a cache entry, and a hit built from it decodes to
//! the same records with every TTL patched, the ID and question case of the query. The same for
//! bytes stored as forward relays them (checked, no OPT), patched in place by `set_ttls`.
#![no_main]
use kdns_cache::{Entry, Key};
use kdns_wire::Message;
use libfuzzer_sys::fuzz_target;
use std::time::Instant;

fuzz_target!(|data: &[u8]| {
    forwarded_bytes(data);
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

/// The forwarded-reply path: bytes `check_message` accepts and calls relayable (without OPT, as
/// forward relays them)
/// become an entry with `Entry::from_reply`, are classified by `classify_wire` exactly as their
/// decoded message is by `classify_reply`, are rewritten by `set_ttls` without panicking, and
/// what they give decodes.
fn forwarded_bytes(data: &[u8]) {
    let Ok(checked) = kdns_wire::check_message(data) else { return };
    if checked.opt_at.is_some() || !checked.relayable {
        return;
    }
    let mut bytes = data[..checked.end].to_vec();
    let class = kdns_cache::classify_wire(&bytes);
    let Ok(m) = Message::decode(&bytes) else { panic!("checked bytes decode") };
    if let Some(class) = class {
        assert_eq!(class, kdns_cache::classify_reply(&m), "wire and message classify alike");
    }
    if m.questions.len() == 1 {
        let q = &m.questions[0];
        let key = Key::new(&q.name, q.qtype, q.qclass, false, false);
        if let Some(entry) = Entry::from_reply(&bytes, &key, Instant::now(), 30) {
            let mut query = Message { id: 0xBEEF, ..Message::default() };
            query.questions.push(q.clone());
            let mut out = Vec::new();
            entry.write_hit(&query, q.name.as_wire(), 7, &mut out);
            let hit = Message::decode(&out).expect("a hit from forwarded bytes decodes");
            assert!(hit.answers.iter().chain(&hit.authority).chain(&hit.additional).all(|r| r.ttl == 7));
        }
    }
    kdns_cache::set_ttls(&mut bytes, 9);
    let patched = Message::decode(&bytes).expect("TTLs patched in place still decode");
    if patched.questions.len() == 1 {
        assert!(patched.answers.iter().chain(&patched.authority).chain(&patched.additional).all(|r| r.ttl == 9));
    }
}
