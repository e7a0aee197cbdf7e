//! A cached response: finished wire bytes plus where its TTLs live.

use crate::Key;
use kdns_wire::{flag, Message, HEADER_LEN};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Where entry clocks count from: an entry keeps milliseconds since this instead of an
/// `Instant` (8 bytes, not 16), which keeps its header in a 64-byte block with the `Arc` counts.
/// Far enough back that entries restored from a snapshot (stored before this process started)
/// keep their age.
fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(|| {
        let now = Instant::now();
        [1u64 << 32, 365 * 86_400, 30 * 86_400]
            .iter()
            .find_map(|&s| now.checked_sub(Duration::from_secs(s)))
            .unwrap_or(now)
    })
}

fn millis_since_epoch(t: Instant) -> u64 {
    // u64 arithmetic (`as_millis` is u128): this runs on every cache hit.
    let d = t.saturating_duration_since(epoch());
    d.as_secs() * 1000 + d.subsec_millis() as u64
}

/// A cached response. 48 bytes of header (64 with the `Arc` counts, one allocator size class)
/// and one block of data; the cache key is not stored separately: the stored question (name
/// compared case-insensitively, type, class) and `key_flags` are the key, compared on every hit.
#[derive(Debug)]
pub struct Entry {
    /// The response without OPT (ID 0, every TTL set to `duration`, question at offset 12 in the
    /// case the first asker used: owner names compressed into it keep that case, as CoreDNS's
    /// items keep the owners they were stored with), then each TTL field's offset (2 bytes,
    /// big-endian).
    data: Box<[u8]>,
    /// When the entry was stored, in milliseconds after [`epoch`].
    stored_ms: u64,
    /// Seconds this entry lives (the TTL the first reply carried).
    pub duration: u32,
    /// Prefetch frequency: hits within the current window, and when the window's last hit was
    /// (milliseconds after `stored_ms`).
    hits: AtomicU32,
    last_hit_ms: AtomicU32,
    /// When a refresh of this expired entry last failed (milliseconds after `stored_ms`, 0 =
    /// never): RFC 8767's failure recheck timer.
    failed_refresh_ms: AtomicU32,
    wire_len: u16,
    ttl_count: u16,
    qname_len: u8,
    /// The key's DO/CD byte.
    key_flags: u8,
    /// A background refresh (prefetch, stale refresh) is running for this entry.
    refreshing: AtomicBool,
}

impl Entry {
    /// Encodes `msg` (OPT dropped, all TTLs set to `duration`) as the entry for `key`. `None`
    /// if it cannot be walked.
    pub fn new(msg: &Message, key: &Key, now: Instant, duration: u32) -> Option<Entry> {
        // Encoded as it is (no clone to change it) into a reused buffer, then copied into a
        // block of exactly the entry's size (an allocator keeps a shrunk block at its old size
        // class, which had cost ~1/3 more memory per cached name); ID and TTLs patched there.
        thread_local! {
            static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        SCRATCH.with_borrow_mut(|wire| {
            wire.clear();
            msg.encode_with(wire, 65535, None);
            Entry::build(wire, key, now, duration, Some(duration))
        })
    }

    /// Lays out `wire` (walked for its TTL offsets, which get `set_ttl` when given) as the entry
    /// for `key`. `None` when it does not walk or its question is not `key`.
    fn build(wire: &[u8], key: &Key, stored: Instant, duration: u32, set_ttl: Option<u32>) -> Option<Entry> {
        let (qname_len, ttl_offsets) = walk(wire)?;
        let wire_len = u16::try_from(wire.len()).ok()?;
        let ttl_count = u16::try_from(ttl_offsets.len()).ok()?;
        let mut data = Vec::with_capacity(wire.len() + 2 * ttl_offsets.len());
        data.extend_from_slice(wire);
        data[0..2].copy_from_slice(&[0, 0]);
        for &off in &ttl_offsets {
            if let Some(t) = set_ttl {
                let at = off as usize;
                data[at..at + 4].copy_from_slice(&t.to_be_bytes());
            }
            data.extend_from_slice(&off.to_be_bytes());
        }
        let entry = Entry {
            data: data.into_boxed_slice(),
            stored_ms: millis_since_epoch(stored),
            duration,
            hits: AtomicU32::new(0),
            last_hit_ms: AtomicU32::new(0),
            failed_refresh_ms: AtomicU32::new(0),
            wire_len,
            ttl_count,
            qname_len: u8::try_from(qname_len).ok()?,
            key_flags: key.as_bytes()[0],
            refreshing: AtomicBool::new(false),
        };
        entry.is_for(key).then_some(entry)
    }

    /// Rebuilds the entry for `key` from its stored bytes (a cache snapshot); `None` when they
    /// do not walk or are not for `key`.
    pub fn from_wire(wire: &[u8], key: &Key, stored: Instant, duration: u32) -> Option<Entry> {
        if wire.len() < HEADER_LEN {
            return None;
        }
        Entry::build(wire, key, stored, duration, None)
    }

    /// The entry for `key` from a reply in wire form without OPT (a forwarded answer the
    /// upstream sent and the forwarder checked), every TTL set to `duration`.
    pub fn from_reply(wire: &[u8], key: &Key, now: Instant, duration: u32) -> Option<Entry> {
        if wire.len() < HEADER_LEN {
            return None;
        }
        Entry::build(wire, key, now, duration, Some(duration))
    }

    /// The stored response bytes (ID 0, TTLs = `duration`, question name as first asked).
    pub fn wire(&self) -> &[u8] {
        &self.data[..self.wire_len as usize]
    }

    fn ttl_offsets(&self) -> impl Iterator<Item = usize> + '_ {
        let start = self.wire_len as usize;
        self.data[start..start + 2 * self.ttl_count as usize]
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]) as usize)
    }

    /// Whether this is the entry for `key` (the store files entries by hash and checks this on
    /// every hit): same DO/CD, same name (the key's is lower case), type and class.
    pub fn is_for(&self, key: &Key) -> bool {
        let k = key.as_bytes();
        let name_end = HEADER_LEN + self.qname_len as usize;
        k[0] == self.key_flags
            && k.len() == 5 + self.qname_len as usize
            && self.data[HEADER_LEN..name_end].eq_ignore_ascii_case(&k[5..])
            && self.data[name_end..name_end + 4] == k[1..5]
    }

    /// The bytes of the key this entry is for (snapshots keep them).
    pub fn key_bytes(&self) -> Vec<u8> {
        let name_end = HEADER_LEN + self.qname_len as usize;
        let mut k = Vec::with_capacity(5 + self.qname_len as usize);
        k.push(self.key_flags);
        k.extend_from_slice(&self.data[name_end..name_end + 4]);
        k.extend_from_slice(&self.data[HEADER_LEN..name_end]);
        k[5..].make_ascii_lowercase();
        k
    }

    /// The response code stored (4 bits: the stored reply has no OPT).
    pub fn rcode(&self) -> u16 {
        (self.data[3] & 0xF) as u16
    }

    fn since_stored_ms(&self, now: Instant) -> u64 {
        millis_since_epoch(now).saturating_sub(self.stored_ms)
    }

    /// How long ago the entry was stored.
    pub fn age(&self, now: Instant) -> Duration {
        Duration::from_millis(self.since_stored_ms(now))
    }

    /// Records that refreshing this (expired) entry failed at `now`.
    pub fn mark_refresh_failed(&self, now: Instant) {
        let at = self.since_stored_ms(now).clamp(1, u32::MAX as u64) as u32;
        self.failed_refresh_ms.store(at, Ordering::Release);
    }

    /// True when a refresh failed less than `window` before `now`.
    pub fn refresh_failed_within(&self, now: Instant, window: Duration) -> bool {
        let at = self.failed_refresh_ms.load(Ordering::Acquire) as u64;
        at != 0 && self.since_stored_ms(now).saturating_sub(at) < window.as_millis() as u64
    }

    /// Seconds left; zero or negative means expired.
    pub fn ttl(&self, now: Instant) -> i64 {
        self.duration as i64 - (self.since_stored_ms(now) / 1000) as i64
    }

    pub fn len(&self) -> usize {
        self.wire_len as usize
    }

    /// Claims the one background refresh allowed per entry; false if one is running.
    pub fn begin_refresh(&self) -> bool {
        !self.refreshing.swap(true, Ordering::AcqRel)
    }

    pub fn end_refresh(&self) {
        self.refreshing.store(false, Ordering::Release);
    }

    /// Counts a hit for prefetch: hits accumulate while each comes within `window` of the
    /// previous one, else the count restarts at 1 (CoreDNS's `freq`). Returns the count.
    pub fn record_hit(&self, now: Instant, window: Duration) -> u32 {
        let at = self.since_stored_ms(now).min(u32::MAX as u64) as u32;
        let last = self.last_hit_ms.swap(at, Ordering::AcqRel);
        let count = self.hits.load(Ordering::Acquire);
        if count > 0 && at.saturating_sub(last) as u64 <= window.as_millis() as u64 {
            self.hits.fetch_add(1, Ordering::AcqRel) + 1
        } else {
            self.hits.store(1, Ordering::Release);
            1
        }
    }

    pub fn is_empty(&self) -> bool {
        self.wire_len == 0
    }

    /// The reply to `query` from this entry, as CoreDNS builds it from a cache item: the
    /// query's ID, opcode, RD and CD, AA always set, RA and the rcode from the item, AD only if
    /// the client asked with DO or AD, the client's question case, every TTL = `ttl`.
    pub fn write_hit(&self, query: &Message, query_wire_qname: &[u8], ttl: u32, out: &mut Vec<u8>) {
        let qname_len = self.qname_len as usize;
        let stored_qname = &self.wire()[HEADER_LEN..HEADER_LEN + qname_len];
        // Asked in another case than stored: the question takes the query's case, every owner
        // name keeps the stored one (names compressed into the stored question would follow a
        // patched question, so the reply is built again).
        let recased = query_wire_qname.len() == qname_len && query_wire_qname != stored_qname;
        if recased && self.write_hit_recased(query, ttl, out) {
            return;
        }
        out.clear();
        out.extend_from_slice(self.wire());
        out[0..2].copy_from_slice(&query.id.to_be_bytes());
        out[2..4].copy_from_slice(&self.hit_flags(query).to_be_bytes());
        if recased {
            // Stored bytes that do not decode (a damaged snapshot): the question patched in place.
            out[HEADER_LEN..HEADER_LEN + qname_len].copy_from_slice(query_wire_qname);
        }
        let t = ttl.to_be_bytes();
        for off in self.ttl_offsets() {
            out[off..off + 4].copy_from_slice(&t);
        }
    }

    /// Header flags of a hit (with the stored rcode in the low four bits).
    fn hit_flags(&self, query: &Message) -> u16 {
        let stored = u16::from_be_bytes([self.data[2], self.data[3]]);
        let wants_ad = query.has(flag::AD) || query.edns.as_ref().is_some_and(|e| e.dnssec_ok);
        let mut flags = flag::QR | flag::AA | (query.flags & (0xF << 11 | flag::RD | flag::CD)) | (stored & flag::RA);
        if wants_ad {
            flags |= stored & flag::AD;
        }
        flags | (stored & 0xF)
    }

    /// [`Entry::write_hit`] by decoding the stored reply and encoding it again with the query's
    /// question. False when the stored bytes do not decode (then the in-place path is taken).
    fn write_hit_recased(&self, query: &Message, ttl: u32, out: &mut Vec<u8>) -> bool {
        let (Ok(mut m), Some(q)) = (Message::decode(self.wire()), query.questions.first()) else {
            return false;
        };
        let Some(first) = m.questions.first_mut() else { return false };
        first.name = q.name.clone();
        let flags = self.hit_flags(query);
        m.id = query.id;
        m.flags = flags & !0xF;
        for rr in m.answers.iter_mut().chain(m.authority.iter_mut()).chain(m.additional.iter_mut()) {
            rr.ttl = ttl;
        }
        out.clear();
        m.encode_with(out, 65535, None);
        true
    }
}

/// Finds the question name's length and every RR's TTL offset in a message kdns encoded or
/// checked.
fn walk(wire: &[u8]) -> Option<(usize, Vec<u16>)> {
    let (qname_len, mut records) = Records::start(wire)?;
    let mut offsets = Vec::new();
    while let Some(record) = records.next(wire)? {
        offsets.push(u16::try_from(record.ttl_at).ok()?);
    }
    Some((qname_len, offsets))
}

/// Sets every record's TTL in a message with one question to `ttl`, in place (a forwarded
/// reply the cache rewrites as CoreDNS does). Stops at the first record that does not walk.
pub fn set_ttls(wire: &mut [u8], ttl: u32) {
    let Some((_, mut records)) = Records::start(wire) else { return };
    while let Some(Some(record)) = records.next(wire) {
        wire[record.ttl_at..record.ttl_at + 4].copy_from_slice(&ttl.to_be_bytes());
    }
}

/// One record found by [`Records`].
pub(crate) struct Record {
    /// 0 answer, 1 authority, 2 additional.
    pub(crate) section: u8,
    pub(crate) rtype: u16,
    pub(crate) class: u16,
    /// Where the owner name starts (possibly a compression pointer).
    pub(crate) owner_at: usize,
    pub(crate) ttl_at: usize,
}

/// The records of a message with one question, in order. It borrows the message only for
/// each step, so a caller may patch what it has been shown.
pub(crate) struct Records {
    pos: usize,
    /// Records left in each section.
    left: [u16; 3],
}

impl Records {
    /// The question name's length and a walk over the records after the question; `None` when
    /// there is not exactly one question or it is cut short.
    pub(crate) fn start(wire: &[u8]) -> Option<(usize, Records)> {
        let count = |i: usize| u16::from_be_bytes([wire[i], wire[i + 1]]);
        if wire.len() < HEADER_LEN || count(4) != 1 {
            return None;
        }
        let qname_end = skip_name(wire, HEADER_LEN)?;
        let pos = qname_end + 4;
        (pos <= wire.len()).then(|| (qname_end - HEADER_LEN, Records { pos, left: [count(6), count(8), count(10)] }))
    }

    /// The next whole record: `Some(None)` after the last one, `None` when one is cut short.
    pub(crate) fn next(&mut self, wire: &[u8]) -> Option<Option<Record>> {
        let Some(section) = self.left.iter().position(|&n| n > 0) else { return Some(None) };
        self.left[section] -= 1;
        let owner_at = self.pos;
        let at = skip_name(wire, owner_at)?;
        let fixed = wire.get(at..at + 10)?;
        let end = at + 10 + u16::from_be_bytes([fixed[8], fixed[9]]) as usize;
        if end > wire.len() {
            return None;
        }
        self.pos = end;
        Some(Some(Record {
            section: section as u8,
            rtype: u16::from_be_bytes([fixed[0], fixed[1]]),
            class: u16::from_be_bytes([fixed[2], fixed[3]]),
            owner_at,
            ttl_at: at + 4,
        }))
    }
}

fn skip_name(wire: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let len = *wire.get(pos)?;
        match len {
            0 => return Some(pos + 1),
            l if l & 0xC0 == 0xC0 => return Some(pos + 2),
            l => pos += 1 + l as usize,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kdns_wire::{class, rtype, Edns, Name, Question, RData, Record};
    use std::net::Ipv4Addr;
    use std::time::Duration;

    fn answer() -> Message {
        let n = Name::from_ascii("www.example.org.").unwrap();
        let mut m = Message { id: 77, flags: flag::QR | flag::RD | flag::RA | flag::AD, ..Default::default() };
        m.questions.push(Question { name: n.clone(), qtype: rtype::A, qclass: class::IN });
        m.answers.push(Record::new(n.clone(), 300, RData::A(Ipv4Addr::new(192, 0, 2, 1))));
        m.answers.push(Record::new(n, 60, RData::A(Ipv4Addr::new(192, 0, 2, 2))));
        m.edns = Some(Edns::new(1232));
        m
    }

    fn key() -> Key {
        Key::new(&Name::from_ascii("www.example.org.").unwrap(), rtype::A, class::IN, false, false)
    }

    #[test]
    fn from_wire_rebuilds_the_same_entry_and_rejects_garbage() {
        let now = Instant::now();
        let e = Entry::new(&answer(), &key(), now, 30).unwrap();
        let back = Entry::from_wire(e.wire(), &key(), now - Duration::from_secs(10), 30).unwrap();
        assert_eq!(back.key_bytes(), e.key_bytes());
        assert_eq!(back.key_bytes(), key().as_bytes());
        assert_eq!(back.ttl(now), 20, "aged by the time since it was stored");
        assert_eq!(back.rcode(), e.rcode());
        let q = {
            let mut q = Message { id: 9, flags: flag::RD, ..Default::default() };
            q.questions.push(Question {
                name: Name::from_ascii("www.example.org.").unwrap(),
                qtype: rtype::A,
                qclass: class::IN,
            });
            q
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        e.write_hit(&q, q.questions[0].name.as_wire(), 20, &mut a);
        back.write_hit(&q, q.questions[0].name.as_wire(), 20, &mut b);
        assert_eq!(a, b);
        for bad in [vec![], vec![0; 11], vec![0; 12], e.wire()[..e.wire().len() - 1].to_vec()] {
            assert!(Entry::from_wire(&bad, &key(), now, 30).is_none());
        }
        // Failure recheck window.
        assert!(!back.refresh_failed_within(now, Duration::from_secs(30)));
        back.mark_refresh_failed(now);
        assert!(back.refresh_failed_within(now + Duration::from_secs(29), Duration::from_secs(30)));
        assert!(!back.refresh_failed_within(now + Duration::from_secs(31), Duration::from_secs(30)));
    }

    #[test]
    fn an_entry_header_fits_a_64_byte_block_with_its_arc_counts() {
        // Memory per cached name (issue: performance, RSS after 100,000 names): the header and
        // the two Arc counters share one 64-byte allocator size class.
        assert!(std::mem::size_of::<Entry>() <= 48, "{}", std::mem::size_of::<Entry>());
    }

    #[test]
    fn an_entry_is_for_its_own_key_only() {
        let now = Instant::now();
        let mut m = answer();
        m.questions[0].name = Name::from_ascii("WWW.Example.ORG.").unwrap();
        let e = Entry::new(&m, &key(), now, 30).unwrap();
        assert!(e.is_for(&key()), "the key is case-folded, so is the stored question");
        assert_eq!(e.key_bytes(), key().as_bytes());
        let other =
            |name: &str, t: u16, c: u16, d: bool, cd: bool| Key::new(&Name::from_ascii(name).unwrap(), t, c, d, cd);
        for k in [
            other("www.example.org.", rtype::AAAA, class::IN, false, false),
            other("www.example.org.", rtype::A, class::CH, false, false),
            other("www.example.org.", rtype::A, class::IN, true, false),
            other("www.example.org.", rtype::A, class::IN, false, true),
            other("ww.example.org.", rtype::A, class::IN, false, false),
            other("www.example.org.x.", rtype::A, class::IN, false, false),
        ] {
            assert!(!e.is_for(&k), "{k:?}");
            let question_differs = k.as_bytes()[0] == 0;
            assert_eq!(Entry::new(&m, &k, now, 30).is_none(), question_differs, "never built for another question");
        }
    }

    #[test]
    fn set_ttls_rewrites_every_record_in_place() {
        let mut m = answer();
        m.edns = None;
        let mut wire = m.to_vec();
        set_ttls(&mut wire, 9);
        let back = Message::decode(&wire).unwrap();
        assert!(back.answers.iter().all(|r| r.ttl == 9));
        assert_eq!(back.answers.len(), 2);
    }

    #[test]
    fn hit_patches_id_flags_case_and_ttls() {
        let now = Instant::now();
        let e = Entry::new(&answer(), &key(), now, 30).unwrap();
        assert_eq!(e.ttl(now + Duration::from_secs(12)), 18);
        let mut q = Message { id: 4242, flags: flag::RD, ..Default::default() };
        let asked = Name::from_ascii("WwW.ExAmple.org.").unwrap();
        q.questions.push(Question { name: asked.clone(), qtype: rtype::A, qclass: class::IN });
        let mut out = Vec::new();
        e.write_hit(&q, asked.as_wire(), 18, &mut out);
        let m = Message::decode(&out).unwrap();
        assert_eq!(m.id, 4242);
        assert!(m.has(flag::QR) && m.has(flag::AA) && m.has(flag::RD) && m.has(flag::RA));
        assert!(!m.has(flag::AD), "AD only when the client asked with DO or AD");
        assert_eq!(m.questions[0].name.to_string(), "WwW.ExAmple.org.");
        assert!(m.answers.iter().all(|r| r.ttl == 18));
        assert!(m.edns.is_none());
        q.flags |= flag::AD;
        e.write_hit(&q, asked.as_wire(), 18, &mut out);
        assert!(Message::decode(&out).unwrap().has(flag::AD));
    }

    /// CoreDNS keeps the owner names a reply was stored with: the first asker's case (the
    /// upstream echoes it). A later query in another case gets its own case in the question
    /// only, even when the stored owners were compressed into the stored question.
    #[test]
    fn hits_keep_the_stored_owner_case_and_give_the_question_the_askers_case() {
        let now = Instant::now();
        let first = Name::from_ascii("WWW.Example.ORG.").unwrap();
        let mut m = answer();
        m.questions[0].name = first.clone();
        for rr in &mut m.answers {
            rr.name = first.clone();
        }
        let e = Entry::new(&m, &key(), now, 30).unwrap();
        assert!(e.is_for(&key()), "the key is lower case, the stored question is not");
        assert_eq!(e.key_bytes(), key().as_bytes());
        let asked = Name::from_ascii("www.example.org.").unwrap();
        let mut q = Message { id: 5, flags: flag::RD, ..Default::default() };
        q.questions.push(Question { name: asked.clone(), qtype: rtype::A, qclass: class::IN });
        let mut out = Vec::new();
        e.write_hit(&q, asked.as_wire(), 11, &mut out);
        let hit = Message::decode(&out).unwrap();
        assert_eq!(hit.questions[0].name.to_string(), "www.example.org.");
        assert!(hit.answers.iter().all(|r| r.name.to_string() == "WWW.Example.ORG." && r.ttl == 11), "{hit:?}");
        assert!(hit.has(flag::AA) && hit.has(flag::RD) && !hit.has(flag::AD));
        assert_eq!(hit.id, 5);
        // Asked exactly as stored: the in-place path gives the same message.
        let mut q2 = q.clone();
        q2.questions[0].name = first.clone();
        e.write_hit(&q2, first.as_wire(), 11, &mut out);
        let same = Message::decode(&out).unwrap();
        assert_eq!(same.answers, hit.answers);
    }
}
