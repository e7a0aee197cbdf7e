//! Who is asking. A node cache sees its pods' source addresses un-NATed; with a pod source
//! (`kdns node-cache -podsource`, filled by `kdns_kubernetes::source::pods`) this process-wide
//! directory maps each address to its pod: namespace, name and the resolver settings its
//! `dnsPolicy`/`dnsConfig` give it. The server core counts every reply per namespace here
//! (bounded: [`MAX_NAMESPACES`] namespaces, then `_other`; addresses of no known pod are
//! `_unknown`; the underscore cannot start a namespace name, so neither collides with one).
//!
//! The per-client budget of forwarded misses ([`Budget`], a token bucket per source address) is
//! here too, because it needs no pod source: it is keyed by address, and the namespace only
//! labels what it refused.
//!
//! Off (the default) the directory costs the query path one relaxed atomic load.

use crate::metrics::{Kind, Series};
use kdns_wire::{rcode, Name};
use rustc_hash::FxHashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

/// Namespaces that get series of their own; the rest share `_other`.
pub const MAX_NAMESPACES: usize = 100;
/// The label of addresses that are no known pod (host-network processes, other nodes, before the
/// first list).
pub const UNKNOWN: &str = "_unknown";
/// The label of namespaces past [`MAX_NAMESPACES`].
pub const OTHER: &str = "_other";

/// What a client's resolver does with a name, from its pod's `dnsPolicy` and `dnsConfig`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolver {
    /// The search list, in order (already absolute names).
    pub search: Vec<Name>,
    /// `options ndots` (kubelet's default 5).
    pub ndots: u8,
    /// Whether this node's cache is the pod's only nameserver (ClusterFirst without extra
    /// `dnsConfig.nameservers`), so that what it would have asked next is what it asks here.
    pub node_is_its_resolver: bool,
}

/// One pod of this node, as the pod source reports it (host-network pods are left out: their
/// address is the node's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pod {
    pub namespace: Arc<str>,
    pub name: Arc<str>,
    /// `None` when the pod's resolver cannot be predicted (host network with `Default` policy,
    /// `None` policy without searches…).
    pub resolver: Option<Resolver>,
}

/// A pod in the directory, with its namespace's counters.
pub struct Client {
    pub pod: Pod,
    counters: Arc<NamespaceCounters>,
}

/// Per-namespace series, resolved once when a directory is published.
pub struct NamespaceCounters {
    requests: Arc<Series>,
    nxdomain: Arc<Series>,
    forwarded: Arc<Series>,
    limited: Arc<Series>,
}

impl NamespaceCounters {
    fn for_label(namespace: &str) -> NamespaceCounters {
        NamespaceCounters {
            requests: client_requests().with(&[namespace]),
            nxdomain: client_nxdomain().with(&[namespace]),
            forwarded: client_forwarded().with(&[namespace]),
            limited: client_limited().with(&[namespace]),
        }
    }
}

crate::metric_family!(
    client_requests,
    "kdns_client_requests_total",
    "Replies sent, by the namespace of the asking pod (node cache with -podsource; kdns addition).",
    Kind::Counter,
    ["namespace"]
);
crate::metric_family!(
    client_nxdomain,
    "kdns_client_nxdomain_total",
    "NXDOMAIN replies sent, by the namespace of the asking pod (kdns addition).",
    Kind::Counter,
    ["namespace"]
);
crate::metric_family!(
    client_forwarded,
    "kdns_client_forwarded_total",
    "Queries forwarded upstream (cache misses), by the namespace of the asking pod (kdns addition).",
    Kind::Counter,
    ["namespace"]
);
crate::metric_family!(
    client_limited,
    "kdns_client_limited_total",
    "Misses refused because the client was over its budget of forwarded queries, by namespace (kdns addition).",
    Kind::Counter,
    ["namespace"]
);

static ENABLED: AtomicBool = AtomicBool::new(false);
/// Address → pod, replaced whole by [`publish`].
static DIRECTORY: RwLock<Option<FxHashMap<IpAddr, Arc<Client>>>> = RwLock::new(None);

fn unknown() -> &'static NamespaceCounters {
    static UNKNOWN_COUNTERS: std::sync::OnceLock<NamespaceCounters> = std::sync::OnceLock::new();
    UNKNOWN_COUNTERS.get_or_init(|| NamespaceCounters::for_label(UNKNOWN))
}

/// Turns per-namespace accounting on (before the first list arrives every client is
/// `_unknown`). Budgets work without it.
pub fn enable() {
    ENABLED.store(true, Ordering::Release);
}

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Replaces the directory with these pods (one list, or the list after a watch event). The
/// namespace label of each pod is capped here: past [`MAX_NAMESPACES`] distinct namespaces
/// (in name order) they count as `_other`.
pub fn publish(pods: impl IntoIterator<Item = (IpAddr, Pod)>) {
    let pods: Vec<(IpAddr, Pod)> = pods.into_iter().collect();
    let mut names: Vec<&str> = pods.iter().map(|(_, p)| &*p.namespace).collect();
    names.sort_unstable();
    names.dedup();
    let counters: FxHashMap<&str, Arc<NamespaceCounters>> =
        names.iter().take(MAX_NAMESPACES).map(|n| (*n, Arc::new(NamespaceCounters::for_label(n)))).collect();
    let other = Arc::new(NamespaceCounters::for_label(OTHER));
    let by_ip: FxHashMap<IpAddr, Arc<Client>> = pods
        .iter()
        .map(|(ip, p)| {
            let c = counters.get(&*p.namespace).cloned().unwrap_or_else(|| other.clone());
            (canonical(*ip), Arc::new(Client { pod: p.clone(), counters: c }))
        })
        .collect();
    *DIRECTORY.write().unwrap_or_else(|e| e.into_inner()) = Some(by_ip);
    enable();
}

/// The pod at this address, if the directory knows one.
pub fn lookup(ip: IpAddr) -> Option<Arc<Client>> {
    if !enabled() {
        return None;
    }
    DIRECTORY.read().unwrap_or_else(|e| e.into_inner()).as_ref()?.get(&canonical(ip)).cloned()
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn with_counters(ip: IpAddr, f: impl FnOnce(&NamespaceCounters)) {
    if !enabled() {
        return;
    }
    let d = DIRECTORY.read().unwrap_or_else(|e| e.into_inner());
    match d.as_ref().and_then(|d| d.get(&canonical(ip))) {
        Some(c) => f(&c.counters),
        None => f(unknown()),
    }
}

/// A reply went to `ip` (called by the server core for every counted reply).
pub fn count_reply(ip: IpAddr, code: u16) {
    with_counters(ip, |c| {
        c.requests.inc();
        if code == rcode::NXDOMAIN {
            c.nxdomain.inc();
        }
    });
}

/// A miss of `ip` went upstream.
pub fn count_forwarded(ip: IpAddr) {
    with_counters(ip, |c| c.forwarded.inc());
}

/// The namespace and pod at `ip` for log lines, `-` when unknown.
pub fn describe(ip: IpAddr) -> (Arc<str>, Arc<str>) {
    match lookup(ip) {
        Some(c) => (c.pod.namespace.clone(), c.pod.name.clone()),
        None => ("-".into(), "-".into()),
    }
}

/// The per-client budget of forwarded misses: a token bucket per source address (`rate`
/// tokens a second, up to `burst`). Process-wide, like the serve-stale default, so every
/// `forward` of the node cache's Corefile shares it.
pub struct Budget {
    pub rate: f64,
    pub burst: f64,
    shards: Box<[Mutex<FxHashMap<IpAddr, Bucket>>]>,
    epoch: Instant,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    /// Seconds since the budget's epoch at the last refill.
    at: f64,
}

/// Addresses tracked per shard before full (idle) buckets are dropped.
const BUCKETS_PER_SHARD: usize = 4096;
const SHARDS: usize = 16;

impl Budget {
    pub fn new(rate: f64, burst: f64) -> Budget {
        Budget {
            rate,
            burst: burst.max(1.0),
            shards: (0..SHARDS).map(|_| Mutex::new(FxHashMap::default())).collect(),
            epoch: Instant::now(),
        }
    }

    /// Takes one token for `ip` at `now`; false when its bucket is empty.
    pub fn take(&self, ip: IpAddr, now: Instant) -> bool {
        let ip = canonical(ip);
        let t = now.saturating_duration_since(self.epoch).as_secs_f64();
        let shard = &self.shards[shard_of(ip)];
        let mut map = shard.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= BUCKETS_PER_SHARD && !map.contains_key(&ip) {
            // A bucket refilled to its burst is the same as no bucket: forget those.
            let (rate, burst) = (self.rate, self.burst);
            map.retain(|_, b| b.tokens + (t - b.at) * rate < burst);
            if map.len() >= BUCKETS_PER_SHARD {
                // Still full of active senders (a spoofed-source flood): admit the stranger
                // rather than grow; the senders that are tracked stay limited.
                return true;
            }
        }
        let b = map.entry(ip).or_insert(Bucket { tokens: self.burst, at: t });
        b.tokens = (b.tokens + (t - b.at) * self.rate).min(self.burst);
        b.at = t;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn shard_of(ip: IpAddr) -> usize {
    let last = match ip {
        IpAddr::V4(v4) => v4.octets()[3] as usize ^ v4.octets()[2] as usize,
        IpAddr::V6(v6) => v6.octets()[15] as usize ^ v6.octets()[14] as usize,
    };
    last % SHARDS
}

/// Set once at start-up (`-clientbudget`); unset, every miss is admitted.
static BUDGET: std::sync::OnceLock<Budget> = std::sync::OnceLock::new();

/// Sets the per-client budget every `forward` applies (once, before serving).
pub fn set_budget(budget: Budget) {
    let _ = BUDGET.set(budget);
}

/// Whether `ip` may send one more miss upstream now; the miss, or its refusal, is counted for
/// the client's namespace.
pub fn admit_miss(ip: IpAddr) -> bool {
    if BUDGET.get().is_some_and(|b| !b.take(ip, Instant::now())) {
        with_counters(ip, |c| c.limited.inc());
        budget_refused().with(&[]).inc();
        return false;
    }
    count_forwarded(ip);
    true
}

crate::metric_family!(
    budget_refused,
    "kdns_client_budget_refused_total",
    "Misses refused because their client was over its budget of forwarded queries (kdns addition).",
    Kind::Counter,
    []
);

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_gives_its_burst_then_its_rate_per_address() {
        let b = Budget::new(10.0, 3.0);
        let t0 = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!((0..5).map(|_| b.take(a, t0)).filter(|&ok| ok).count(), 3);
        assert!(b.take(other, t0), "another address has its own bucket");
        assert!(!b.take(a, t0 + Duration::from_millis(50)));
        assert!(b.take(a, t0 + Duration::from_millis(100)), "one token after 1/rate");
        // A mapped IPv4 address is the same client.
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert!(!b.take(mapped, t0 + Duration::from_millis(100)));
    }

    #[test]
    fn tracked_addresses_are_bounded() {
        let b = Budget::new(1.0, 1.0);
        let t0 = Instant::now();
        for i in 0..(SHARDS * BUCKETS_PER_SHARD * 2) as u32 {
            b.take(IpAddr::from(i.to_be_bytes()), t0);
        }
        let tracked: usize = b.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(tracked <= SHARDS * BUCKETS_PER_SHARD, "{tracked}");
        // Once they refilled, room is made for new addresses.
        let later = t0 + Duration::from_secs(5);
        let fresh = IpAddr::from([203, 0, 113, 7]);
        assert!(b.take(fresh, later));
        assert!(!b.take(fresh, later), "and the new one is limited");
    }
}
