//! `cache`: CoreDNS's response cache. Lookups and storage decisions are here; the entries and
//! their wire patching live in `kdns-cache`.

mod setup;
#[cfg(test)]
mod tests;

pub use setup::setup;

use kdns_cache::{compute_ttl, minimal_ttl, typify, Entry, Key, ResponseType, Store};
use kdns_server::metrics::{registry, Family, Kind, Series};
use kdns_server::plugin::{Plugin, Reply, Request, Step};
use kdns_wire::{flag, Name};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub success_cap: usize,
    pub success_max: Duration,
    pub success_min: Duration,
    pub denial_cap: usize,
    pub denial_max: Duration,
    pub denial_min: Duration,
    pub servfail: Duration,
    pub keepttl: bool,
    pub disable_success: Vec<Name>,
    pub disable_denial: Vec<Name>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            success_cap: 10_000,
            success_max: Duration::from_secs(3600),
            success_min: Duration::from_secs(5),
            denial_cap: 10_000,
            denial_max: Duration::from_secs(1800),
            denial_min: Duration::from_secs(5),
            servfail: Duration::from_secs(5),
            keepttl: false,
            disable_success: Vec::new(),
            disable_denial: Vec::new(),
        }
    }
}

pub struct Cache {
    pub zones: Vec<Name>,
    zones_label: String,
    pub settings: Settings,
    success: Store,
    denial: Store,
    stats: RwLock<Vec<Arc<Stats>>>,
}

/// Metric handles for one `server` label.
struct Stats {
    server: String,
    requests: Arc<Series>,
    misses: Arc<Series>,
    drops: Arc<Series>,
    hits_success: Arc<Series>,
    hits_denial: Arc<Series>,
    entries_success: Arc<Series>,
    entries_denial: Arc<Series>,
    evictions_success: Arc<Series>,
    evictions_denial: Arc<Series>,
}

macro_rules! family {
    ($fn:ident, $name:literal, $help:literal, $kind:expr, [$($l:literal),*]) => {
        fn $fn() -> &'static Family {
            static F: OnceLock<&'static Family> = OnceLock::new();
            F.get_or_init(|| registry().family($name, $help, $kind, &[$($l),*]))
        }
    };
}
family!(
    entries,
    "coredns_cache_entries",
    "The number of elements in the cache.",
    Kind::Gauge,
    ["server", "type", "zones", "view"]
);
family!(
    requests,
    "coredns_cache_requests_total",
    "The count of cache requests.",
    Kind::Counter,
    ["server", "zones", "view"]
);
family!(
    hits,
    "coredns_cache_hits_total",
    "The count of cache hits.",
    Kind::Counter,
    ["server", "type", "zones", "view"]
);
family!(
    misses,
    "coredns_cache_misses_total",
    "The count of cache misses. Deprecated, derive misses from cache hits/requests counters.",
    Kind::Counter,
    ["server", "zones", "view"]
);
family!(
    drops,
    "coredns_cache_drops_total",
    "The number responses that are not cached, because the reply is malformed.",
    Kind::Counter,
    ["server", "zones", "view"]
);
family!(
    evictions,
    "coredns_cache_evictions_total",
    "The count of cache evictions.",
    Kind::Counter,
    ["server", "type", "zones", "view"]
);

impl Cache {
    pub fn new(zones: Vec<Name>, settings: Settings) -> Cache {
        let zones_label = zones.iter().map(|z| z.to_string()).collect::<Vec<_>>().join(",");
        Cache {
            success: Store::new(settings.success_cap),
            denial: Store::new(settings.denial_cap),
            zones,
            zones_label,
            settings,
            stats: RwLock::new(Vec::new()),
        }
    }

    fn stats(&self, server: &str) -> Arc<Stats> {
        if let Some(s) = self.stats.read().unwrap_or_else(|e| e.into_inner()).iter().find(|s| s.server == server) {
            return s.clone();
        }
        let z = self.zones_label.as_str();
        let s = Arc::new(Stats {
            server: server.to_string(),
            requests: requests().with(&[server, z, ""]),
            misses: misses().with(&[server, z, ""]),
            drops: drops().with(&[server, z, ""]),
            hits_success: hits().with(&[server, "success", z, ""]),
            hits_denial: hits().with(&[server, "denial", z, ""]),
            entries_success: entries().with(&[server, "success", z, ""]),
            entries_denial: entries().with(&[server, "denial", z, ""]),
            evictions_success: evictions().with(&[server, "success", z, ""]),
            evictions_denial: evictions().with(&[server, "denial", z, ""]),
        });
        self.stats.write().unwrap_or_else(|e| e.into_inner()).push(s.clone());
        s
    }

    fn in_zones(&self, qname: &Name) -> bool {
        self.zones.iter().any(|z| qname.is_subdomain_of(z))
    }

    fn key(req: &Request<'_>) -> Key {
        Key::new(req.qname(), req.qtype(), req.qclass(), req.do_bit(), req.msg.has(flag::CD))
    }
}

fn disabled(list: &[Name], qname: &Name) -> bool {
    list.iter().any(|z| qname.is_subdomain_of(z))
}

impl Plugin for Cache {
    fn name(&self) -> &'static str {
        "cache"
    }

    fn serve(&self, req: &Request<'_>) -> Step {
        if !self.in_zones(req.qname()) {
            return Step::Next;
        }
        let stats = self.stats(req.server);
        stats.requests.inc();
        let key = Cache::key(req);
        let now = Instant::now();
        // Denial first, as CoreDNS; an expired entry is a miss.
        for (store, hits) in [(&self.denial, &stats.hits_denial), (&self.success, &stats.hits_success)] {
            let Some(entry) = store.get(&key) else { continue };
            let left = entry.ttl(now);
            if left <= 0 {
                continue;
            }
            hits.inc();
            let ttl = if self.settings.keepttl { entry.duration } else { left as u32 };
            let mut out = Vec::with_capacity(entry.len() + 64);
            entry.write_hit(req.msg, req.qname().as_wire(), ttl, &mut out);
            return Step::Reply(Reply::wire(out, "cache"));
        }
        stats.misses.inc();
        Step::Next
    }

    /// The way back from a miss: store what the rest of the chain wrote, and give this first
    /// reply the same single TTL later hits will carry (CoreDNS rewrites it too).
    fn respond(&self, req: &Request<'_>, reply: &mut Reply) {
        if !reply.written || !self.in_zones(req.qname()) {
            return;
        }
        let stats = self.stats(req.server);
        let msg = reply.msg();
        let kind = typify(msg);
        let msg_ttl = minimal_ttl(msg, kind);
        let s = &self.settings;
        let duration = match kind {
            ResponseType::NameError | ResponseType::NoData => compute_ttl(msg_ttl, s.denial_min, s.denial_max),
            ResponseType::ServerError => s.servfail,
            _ => compute_ttl(msg_ttl, s.success_min, s.success_max),
        };
        let cacheable =
            !msg.has(flag::TC) && !matches!(kind, ResponseType::OtherError | ResponseType::Meta | ResponseType::Update);
        let secs = duration.as_secs() as u32;
        if cacheable && secs > 0 {
            let matches = msg.questions.len() == 1
                && msg.questions[0].qtype == req.qtype()
                && msg.questions[0].qclass == req.qclass()
                && msg.questions[0].name.eq_ignore_case(req.qname());
            if !matches {
                stats.drops.inc();
            } else {
                let qname = req.qname();
                let (store, off, evict_metric, entries_metric) = match kind {
                    ResponseType::NoError | ResponseType::Delegation => (
                        &self.success,
                        disabled(&s.disable_success, qname),
                        &stats.evictions_success,
                        &stats.entries_success,
                    ),
                    _ => (
                        &self.denial,
                        disabled(&s.disable_denial, qname),
                        &stats.evictions_denial,
                        &stats.entries_denial,
                    ),
                };
                if !off {
                    if let Some(entry) = Entry::new(msg, Instant::now(), secs) {
                        let evicted = store.insert(Cache::key(req), entry);
                        evict_metric.add(evicted as u64);
                        entries_metric.set(store.len() as f64);
                    }
                }
            }
        }
        for rr in msg.answers.iter_mut().chain(msg.authority.iter_mut()).chain(msg.additional.iter_mut()) {
            rr.ttl = secs;
        }
        let wants_ad = req.do_bit() || req.msg.has(flag::AD);
        if !wants_ad {
            msg.set(flag::AD, false);
        }
    }
}
