//! Bounded, sharded store: 256 shards of `hash → entry`, an arbitrary entry evicted when a shard
//! is over its entry or byte budget (CoreDNS evicts randomly too).

use crate::Entry;
use kdns_wire::{Name, HEADER_LEN};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const SHARDS: usize = 256;
/// Byte budget per entry slot: the store holds at most `capacity × AVG_ENTRY_BYTES` bytes.
pub const AVG_ENTRY_BYTES: usize = 2048;

/// Flags, type, class, then a name of at most 255 octets.
const KEY_MAX: usize = 5 + kdns_wire::name::MAX_NAME_LEN;

/// CoreDNS's key: lower-cased qname, qtype, qclass, DO, CD. Kept whole (on the stack, no
/// allocation per lookup) to verify hash hits.
#[derive(Clone, Debug)]
pub struct Key {
    bytes: [u8; KEY_MAX],
    len: usize,
    pub hash: u64,
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.bytes[..self.len] == other.bytes[..other.len]
    }
}
impl Eq for Key {}

impl Key {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// A key from the bytes [`Store::entries`] reported; `None` when they cannot be a key.
    pub fn from_bytes(raw: &[u8]) -> Option<Key> {
        if raw.len() < 6 || raw.len() > KEY_MAX {
            return None;
        }
        let mut bytes = [0u8; KEY_MAX];
        bytes[..raw.len()].copy_from_slice(raw);
        Some(Key { bytes, len: raw.len(), hash: fnv(raw) })
    }

    /// Whether `wire`, a message, asks exactly this key's question (one question; name compared
    /// without case, type, class).
    pub fn is_question_of(&self, wire: &[u8]) -> bool {
        let k = self.as_bytes();
        let name_end = HEADER_LEN + k.len() - 5;
        wire.get(4..6) == Some(&[0, 1][..])
            && wire.get(HEADER_LEN..name_end).is_some_and(|n| n.eq_ignore_ascii_case(&k[5..]))
            && wire.get(name_end..name_end + 4) == Some(&k[1..5])
    }

    pub fn new(qname: &Name, qtype: u16, qclass: u16, dnssec_ok: bool, checking_disabled: bool) -> Key {
        let wire = qname.as_wire();
        let mut bytes = [0u8; KEY_MAX];
        bytes[0] = (dnssec_ok as u8) | (checking_disabled as u8) << 1;
        bytes[1..3].copy_from_slice(&qtype.to_be_bytes());
        bytes[3..5].copy_from_slice(&qclass.to_be_bytes());
        let len = 5 + wire.len().min(KEY_MAX - 5);
        for (d, s) in bytes[5..len].iter_mut().zip(wire) {
            *d = s.to_ascii_lowercase();
        }
        let hash = fnv(&bytes[..len]);
        Key { bytes, len, hash }
    }
}

/// FNV-1a 64, as CoreDNS hashes its key.
fn fnv(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf29ce484222325;
    for b in bytes {
        hash ^= *b as u64;
        hash = hash.wrapping_mul(0x100000001b3);
    }
    hash
}

#[derive(Default)]
struct Shard {
    /// Keyed by the FNV hash already computed: Fx only mixes it (SipHash cost ~15% of a hit).
    /// The full key is the entry's stored question (`Entry::is_for`), compared on every hit.
    map: HashMap<u64, Arc<Entry>, rustc_hash::FxBuildHasher>,
    bytes: usize,
}

pub struct Store {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    per_shard_bytes: usize,
    count: AtomicUsize,
}

impl Store {
    /// `capacity` entries in all (at least 4 per shard, as CoreDNS).
    pub fn new(capacity: usize) -> Store {
        let per_shard = (capacity / SHARDS).max(4);
        Store {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard,
            per_shard_bytes: per_shard * AVG_ENTRY_BYTES,
            count: AtomicUsize::new(0),
        }
    }

    fn shard(&self, key: &Key) -> std::sync::MutexGuard<'_, Shard> {
        self.shards[(key.hash as usize) % SHARDS].lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, key: &Key) -> Option<Arc<Entry>> {
        let shard = self.shard(key);
        shard.map.get(&key.hash).filter(|e| e.is_for(key)).cloned()
    }

    /// Inserts or replaces `entry`, which was built for `key`; returns how many other entries
    /// were evicted to make room.
    pub fn insert(&self, key: Key, entry: Entry) -> usize {
        debug_assert!(entry.is_for(&key), "an entry is filed under its own key");
        let size = entry.len();
        if size > self.per_shard_bytes {
            return 0;
        }
        let mut shard = self.shard(&key);
        let mut removed = 0;
        if let Some(old) = shard.map.remove(&key.hash) {
            shard.bytes -= old.len();
            removed += 1;
        }
        let mut evicted = 0;
        while shard.map.len() >= self.per_shard || shard.bytes + size > self.per_shard_bytes {
            let Some(victim) = shard.map.keys().next().copied() else { break };
            if let Some(old) = shard.map.remove(&victim) {
                shard.bytes -= old.len();
                evicted += 1;
            }
        }
        shard.bytes += size;
        shard.map.insert(key.hash, Arc::new(entry));
        self.count.fetch_add(1, Ordering::Relaxed);
        self.count.fetch_sub(removed + evicted, Ordering::Relaxed);
        evicted
    }

    pub fn remove(&self, key: &Key) {
        let mut shard = self.shard(key);
        if shard.map.get(&key.hash).is_some_and(|e| e.is_for(key)) {
            if let Some(old) = shard.map.remove(&key.hash) {
                shard.bytes -= old.len();
                self.count.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Every entry with its key bytes (for snapshots); takes each shard's lock in turn.
    pub fn entries(&self) -> Vec<(Box<[u8]>, Arc<Entry>)> {
        let mut out = Vec::with_capacity(self.len());
        for shard in self.shards.iter() {
            let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            out.extend(shard.map.values().map(|e| (e.key_bytes().into_boxed_slice(), e.clone())));
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kdns_wire::{class, rtype, Message, Question};
    use std::time::Instant;

    fn entry(name: &str) -> (Key, Entry) {
        let n = Name::from_ascii(name).unwrap();
        let mut m = Message::default();
        m.questions.push(Question { name: n.clone(), qtype: rtype::A, qclass: class::IN });
        let key = Key::new(&n, rtype::A, class::IN, false, false);
        let entry = Entry::new(&m, &key, Instant::now(), 30).unwrap();
        (key, entry)
    }

    #[test]
    fn keys_fold_case_and_separate_do_cd_type_class() {
        let a = Name::from_ascii("Example.ORG.").unwrap();
        let b = Name::from_ascii("example.org.").unwrap();
        assert_eq!(Key::new(&a, 1, 1, false, false), Key::new(&b, 1, 1, false, false));
        assert_ne!(Key::new(&a, 1, 1, true, false), Key::new(&b, 1, 1, false, false));
        assert_ne!(Key::new(&a, 1, 1, false, true), Key::new(&b, 1, 1, false, false));
        assert_ne!(Key::new(&a, 28, 1, false, false), Key::new(&b, 1, 1, false, false));
        assert_ne!(Key::new(&a, 1, 3, false, false), Key::new(&b, 1, 1, false, false));
    }

    #[test]
    fn a_key_knows_its_question_in_a_message() {
        let n = Name::from_ascii("WWW.example.org.").unwrap();
        let mut m = Message::default();
        m.questions.push(Question { name: n.clone(), qtype: rtype::A, qclass: class::IN });
        let wire = m.to_vec();
        assert!(Key::new(&n, rtype::A, class::IN, true, false).is_question_of(&wire));
        assert!(!Key::new(&n, rtype::AAAA, class::IN, false, false).is_question_of(&wire));
        assert!(!Key::new(&n, rtype::A, class::CH, false, false).is_question_of(&wire));
        let longer = Name::from_ascii("www.example.org.x.").unwrap();
        assert!(!Key::new(&longer, rtype::A, class::IN, false, false).is_question_of(&wire));
        let other = Name::from_ascii("wwx.example.org.").unwrap();
        assert!(!Key::new(&other, rtype::A, class::IN, false, false).is_question_of(&wire));
        m.questions.push(m.questions[0].clone());
        assert!(!Key::new(&n, rtype::A, class::IN, false, false).is_question_of(&m.to_vec()), "two questions");
    }

    #[test]
    fn capacity_is_bounded() {
        let s = Store::new(1024);
        let mut evicted = 0;
        for i in 0..5000 {
            let (k, e) = entry(&format!("n{i}.example.org."));
            evicted += s.insert(k, e);
        }
        assert!(s.len() <= 1024, "{}", s.len());
        assert_eq!(s.len() + evicted, 5000);
        let (k, e) = entry("again.example.org.");
        s.insert(k.clone(), e);
        assert!(s.get(&k).is_some());
        s.remove(&k);
        assert!(s.get(&k).is_none());
    }
}
