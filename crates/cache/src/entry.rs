//! A cached response: finished wire bytes plus where its TTLs live.

use crate::Key;
use kdns_wire::{flag, Message, HEADER_LEN};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Entry {
    /// One allocation: the response without OPT (every TTL set to `duration`, question at
    /// offset 12), then each TTL field's offset (2 bytes, big-endian), then the cache key the
    /// store files it under. One block instead of three keeps a cached name at about 200 bytes
    /// with its map slot.
    data: Box<[u8]>,
    wire_len: u32,
    ttl_count: u16,
    qname_len: u16,
    stored: Instant,
    /// Seconds this entry lives (the TTL the first reply carried).
    pub duration: u32,
    pub rcode: u16,
    /// A background refresh (prefetch, stale refresh) is running for this entry.
    refreshing: AtomicBool,
    /// Prefetch frequency: hits within the current window, and when the window's last hit was
    /// (milliseconds after `stored`).
    hits: AtomicU32,
    last_hit_ms: AtomicU64,
    /// When a refresh of this expired entry last failed (milliseconds after `stored`, 0 = never):
    /// RFC 8767's failure recheck timer.
    failed_refresh_ms: AtomicU64,
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
            Entry::build(wire, key, now, duration, Some(duration), msg.rcode & 0xF)
        })
    }

    /// Lays out `wire` (walked for its TTL offsets, which get `set_ttl` when given) and `key`
    /// as an entry.
    fn build(
        wire: &[u8],
        key: &Key,
        stored: Instant,
        duration: u32,
        set_ttl: Option<u32>,
        rcode: u16,
    ) -> Option<Entry> {
        let (qname_len, ttl_offsets) = walk(wire)?;
        let wire_len = u32::try_from(wire.len()).ok()?;
        let ttl_count = u16::try_from(ttl_offsets.len()).ok()?;
        let mut data = Vec::with_capacity(wire.len() + 2 * ttl_offsets.len() + key.as_bytes().len());
        data.extend_from_slice(wire);
        data[0..2].copy_from_slice(&[0, 0]);
        for &off in &ttl_offsets {
            if let Some(t) = set_ttl {
                let at = off as usize;
                data[at..at + 4].copy_from_slice(&t.to_be_bytes());
            }
            data.extend_from_slice(&off.to_be_bytes());
        }
        data.extend_from_slice(key.as_bytes());
        Some(Entry {
            data: data.into_boxed_slice(),
            wire_len,
            ttl_count,
            qname_len: u16::try_from(qname_len).ok()?,
            stored,
            duration,
            rcode,
            refreshing: AtomicBool::new(false),
            hits: AtomicU32::new(0),
            last_hit_ms: AtomicU64::new(0),
            failed_refresh_ms: AtomicU64::new(0),
        })
    }

    /// Rebuilds the entry for `key` from its stored bytes (a cache snapshot); `None` when they
    /// do not walk.
    pub fn from_wire(wire: &[u8], key: &Key, stored: Instant, duration: u32) -> Option<Entry> {
        if wire.len() < HEADER_LEN {
            return None;
        }
        let rcode = u16::from_be_bytes([wire[2], wire[3]]) & 0xF;
        Entry::build(wire, key, stored, duration, None, rcode)
    }

    /// The stored response bytes (ID 0, TTLs = `duration`).
    pub fn wire(&self) -> &[u8] {
        &self.data[..self.wire_len as usize]
    }

    fn ttl_offsets(&self) -> impl Iterator<Item = usize> + '_ {
        let start = self.wire_len as usize;
        self.data[start..start + 2 * self.ttl_count as usize]
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]) as usize)
    }

    /// The bytes of the key this entry is for (the store compares them on every hit).
    pub fn key(&self) -> &[u8] {
        &self.data[self.wire_len as usize + 2 * self.ttl_count as usize..]
    }

    /// How long ago the entry was stored.
    pub fn age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.stored)
    }

    /// Records that refreshing this (expired) entry failed at `now`.
    pub fn mark_refresh_failed(&self, now: Instant) {
        let at = now.saturating_duration_since(self.stored).as_millis().max(1) as u64;
        self.failed_refresh_ms.store(at, Ordering::Release);
    }

    /// True when a refresh failed less than `window` before `now`.
    pub fn refresh_failed_within(&self, now: Instant, window: Duration) -> bool {
        let at = self.failed_refresh_ms.load(Ordering::Acquire);
        at != 0
            && (now.saturating_duration_since(self.stored).as_millis() as u64).saturating_sub(at)
                < window.as_millis() as u64
    }

    /// Seconds left; zero or negative means expired.
    pub fn ttl(&self, now: Instant) -> i64 {
        self.duration as i64 - now.saturating_duration_since(self.stored).as_secs() as i64
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
        let at = now.saturating_duration_since(self.stored).as_millis() as u64;
        let last = self.last_hit_ms.swap(at, Ordering::AcqRel);
        let count = self.hits.load(Ordering::Acquire);
        if count > 0 && at.saturating_sub(last) <= window.as_millis() as u64 {
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
        out.clear();
        out.extend_from_slice(self.wire());
        out[0..2].copy_from_slice(&query.id.to_be_bytes());
        let stored = u16::from_be_bytes([out[2], out[3]]);
        let wants_ad = query.has(flag::AD) || query.edns.as_ref().is_some_and(|e| e.dnssec_ok);
        let mut flags = flag::QR | flag::AA | (query.flags & (0xF << 11 | flag::RD | flag::CD)) | (stored & flag::RA);
        if wants_ad {
            flags |= stored & flag::AD;
        }
        flags |= self.rcode;
        out[2..4].copy_from_slice(&flags.to_be_bytes());
        let qname_len = self.qname_len as usize;
        if query_wire_qname.len() == qname_len {
            out[HEADER_LEN..HEADER_LEN + qname_len].copy_from_slice(query_wire_qname);
        }
        let t = ttl.to_be_bytes();
        for off in self.ttl_offsets() {
            out[off..off + 4].copy_from_slice(&t);
        }
    }
}

/// Finds the question name's length and every RR's TTL offset in a message kdns encoded.
fn walk(wire: &[u8]) -> Option<(usize, Vec<u16>)> {
    let count = |i: usize| u16::from_be_bytes([wire[i], wire[i + 1]]) as usize;
    if wire.len() < HEADER_LEN || count(4) != 1 {
        return None;
    }
    let mut pos = HEADER_LEN;
    let qname_end = skip_name(wire, pos)?;
    let qname_len = qname_end - pos;
    pos = qname_end + 4;
    let rrs = count(6) + count(8) + count(10);
    let mut offsets = Vec::with_capacity(rrs);
    for _ in 0..rrs {
        pos = skip_name(wire, pos)?;
        let ttl_at = pos + 4;
        let rdlen = u16::from_be_bytes([*wire.get(pos + 8)?, *wire.get(pos + 9)?]) as usize;
        offsets.push(u16::try_from(ttl_at).ok()?);
        pos += 10 + rdlen;
        if pos > wire.len() {
            return None;
        }
    }
    Some((qname_len, offsets))
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
        assert_eq!(back.key(), e.key());
        assert_eq!(back.ttl(now), 20, "aged by the time since it was stored");
        assert_eq!(back.rcode, e.rcode);
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
}
