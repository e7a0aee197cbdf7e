//! `kdns-cache` owns the DNS response cache as CoreDNS's `cache` plugin defines it: response
//! classification, TTL computation, the cache key, and a bounded store of finished responses.
//!
//! It is sans-IO: messages and an `Instant` in, bytes and decisions out. Entries hold response
//! bytes (encoded by kdns, or a forwarded reply checked whole by `kdns_wire::check_message`,
//! never bytes nothing checked), with the offsets of every TTL field, so a hit is a copy plus a few in-place writes (ID, flags, question case,
//! TTLs) and no parsing. Written here, not taken from a crate, because that patching is the hot
//! path and because eviction follows CoreDNS (256 shards, an arbitrary entry evicted when a
//! shard is full).

mod entry;
pub mod snapshot;
mod store;
mod typify;

pub use entry::{set_ttls, Entry};
pub use store::{Key, Store};
pub use typify::{classify_reply, classify_wire, typify, Classification, ResponseType};

use std::time::Duration;

/// Clamps a message TTL into [min, max] as CoreDNS's `computeTTL`.
pub fn compute_ttl(msg_ttl: Duration, min: Duration, max: Duration) -> Duration {
    msg_ttl.max(min).min(max)
}
