//! `cache`: CoreDNS's response cache. Lookups and storage decisions are here; the entries and
//! their wire patching live in `kdns-cache`.

mod setup;
#[cfg(test)]
mod tests;

pub use setup::setup;

use kdns_cache::{classify_reply, classify_wire, compute_ttl, Classification, Entry, Key, ResponseType, Store};
use kdns_server::clock::Clock;
use kdns_server::metrics::{Kind, Series};
use kdns_server::plugin::{Body, Plugin, Reply, Request, Step};
use kdns_wire::{flag, rcode, Name};
use std::sync::{Arc, RwLock};
use std::time::Duration;

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
    pub prefetch: Option<Prefetch>,
    pub serve_stale: Option<ServeStale>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefetch {
    pub amount: u32,
    pub window: Duration,
    pub percentage: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServeStale {
    pub max_stale: Duration,
    pub verify: bool,
    /// RFC 8767's client response timer: in verify mode, answer stale when the refresh has not
    /// succeeded within this time (the refresh goes on and updates the cache). `None`: wait for
    /// the refresh whatever it takes (CoreDNS's verify).
    pub client_timeout: Option<Duration>,
    /// TTL of stale records in replies (CoreDNS: 0; RFC 8767 recommends 30).
    pub ttl: u32,
}

impl ServeStale {
    /// CoreDNS's `serve_stale DURATION [immediate|verify]`.
    pub fn coredns(max_stale: Duration, verify: bool) -> ServeStale {
        ServeStale { max_stale, verify, client_timeout: None, ttl: STALE_TTL }
    }

    /// RFC 8767's recommendation: verify with a 1.8 s client timer, stale TTL 30 s, and for 30 s
    /// after a failed refresh stale answers at once (the failure recheck timer).
    pub fn rfc8767(max_stale: Duration) -> ServeStale {
        ServeStale { max_stale, verify: true, client_timeout: Some(Duration::from_millis(1800)), ttl: 30 }
    }
}

/// RFC 8767's failure recheck timer.
const STALE_RECHECK: Duration = Duration::from_secs(30);

static DEFAULT_SERVE_STALE: RwLock<Option<ServeStale>> = RwLock::new(None);

/// Serve-stale for every `cache` that does not configure it (node-cache mode turns this on).
pub fn set_default_serve_stale(stale: Option<ServeStale>) {
    *DEFAULT_SERVE_STALE.write().unwrap_or_else(|e| e.into_inner()) = stale;
}

pub fn default_serve_stale() -> Option<ServeStale> {
    *DEFAULT_SERVE_STALE.read().unwrap_or_else(|e| e.into_inner())
}

/// Every live cache, by a name stable across restarts (its zones and its place among caches
/// with the same zones), for snapshots.
static LIVE: std::sync::Mutex<Vec<(String, std::sync::Weak<Inner>)>> = std::sync::Mutex::new(Vec::new());

/// Takes a snapshot of every live cache (success and denial entries, live and stale).
pub fn snapshot(now_wall_ms: u64) -> kdns_cache::snapshot::Snapshot {
    use kdns_cache::snapshot::{Item, Snapshot};
    let mut snap = Snapshot { taken_ms: now_wall_ms, sections: Vec::new() };
    let live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    for (name, weak) in live.iter() {
        let Some(inner) = weak.upgrade() else { continue };
        let now = inner.clock.now();
        for (kind, store) in [("success", &inner.success), ("denial", &inner.denial)] {
            let items = store
                .entries()
                .into_iter()
                .map(|(key, e)| Item {
                    key: key.into_vec(),
                    duration: e.duration,
                    age_ms: e.age(now).as_millis() as u64,
                    wire: e.wire().to_vec(),
                })
                .collect();
            snap.sections.push((format!("{name}/{kind}"), items));
        }
    }
    snap
}

/// Loads a snapshot into the live caches with the same names, ages every entry by the time
/// since it was taken, and skips what is past its TTL plus the cache's stale window. Returns the
/// number of entries loaded.
pub fn restore(snap: &kdns_cache::snapshot::Snapshot, now_wall_ms: u64) -> usize {
    let elapsed = Duration::from_millis(now_wall_ms.saturating_sub(snap.taken_ms));
    let live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let mut loaded = 0;
    for (section, items) in &snap.sections {
        let Some((name, kind)) = section.rsplit_once('/') else { continue };
        let Some(inner) = live.iter().find(|(n, _)| n == name).and_then(|(_, w)| w.upgrade()) else { continue };
        let now = inner.clock.now();
        let store = if kind == "success" { &inner.success } else { &inner.denial };
        let keep = inner.settings.serve_stale.map(|s| s.max_stale).unwrap_or_default();
        for it in items {
            let age = Duration::from_millis(it.age_ms) + elapsed;
            if age >= Duration::from_secs(it.duration as u64) + keep {
                continue;
            }
            let (Some(stored), Some(key)) = (now.checked_sub(age), Key::from_bytes(&it.key)) else { continue };
            if let Some(entry) = Entry::from_wire(&it.wire, &key, stored, it.duration) {
                store.insert(key, entry);
                loaded += 1;
            }
        }
    }
    loaded
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
            prefetch: None,
            serve_stale: None,
        }
    }
}

pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    zones: Vec<Name>,
    zones_label: String,
    settings: Settings,
    success: Store,
    denial: Store,
    stats: RwLock<Vec<Arc<Stats>>>,
    /// Read for everything filed or aged (the chain's clock: a manual one in tests).
    clock: Clock,
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
    prefetch: Arc<Series>,
    served_stale: Arc<Series>,
}

kdns_server::metric_family!(
    entries,
    "coredns_cache_entries",
    "The number of elements in the cache.",
    Kind::Gauge,
    ["server", "type", "zones", "view"]
);
kdns_server::metric_family!(
    requests,
    "coredns_cache_requests_total",
    "The count of cache requests.",
    Kind::Counter,
    ["server", "zones", "view"]
);
kdns_server::metric_family!(
    hits,
    "coredns_cache_hits_total",
    "The count of cache hits.",
    Kind::Counter,
    ["server", "type", "zones", "view"]
);
kdns_server::metric_family!(
    misses,
    "coredns_cache_misses_total",
    "The count of cache misses. Deprecated, derive misses from cache hits/requests counters.",
    Kind::Counter,
    ["server", "zones", "view"]
);
kdns_server::metric_family!(
    drops,
    "coredns_cache_drops_total",
    "The number responses that are not cached, because the reply is malformed.",
    Kind::Counter,
    ["server", "zones", "view"]
);
kdns_server::metric_family!(
    evictions,
    "coredns_cache_evictions_total",
    "The count of cache evictions.",
    Kind::Counter,
    ["server", "type", "zones", "view"]
);

kdns_server::metric_family!(
    prefetches,
    "coredns_cache_prefetch_total",
    "The number of times the cache has prefetched a cached item.",
    Kind::Counter,
    ["server", "zones", "view"]
);
kdns_server::metric_family!(
    served_stale,
    "coredns_cache_served_stale_total",
    "The number of requests served from stale cache entries.",
    Kind::Counter,
    ["server", "zones", "view"]
);

impl Cache {
    pub fn new(zones: Vec<Name>, settings: Settings, clock: Clock) -> Cache {
        let zones_label = zones.iter().map(|z| z.to_string()).collect::<Vec<_>>().join(",");
        let inner = Arc::new(Inner {
            success: Store::new(settings.success_cap),
            denial: Store::new(settings.denial_cap),
            zones,
            zones_label,
            settings,
            stats: RwLock::new(Vec::new()),
            clock,
        });
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        live.retain(|(_, w)| w.strong_count() > 0);
        let same = live.iter().filter(|(n, _)| n.starts_with(&format!("{}#", inner.zones_label))).count();
        live.push((format!("{}#{same}", inner.zones_label), Arc::downgrade(&inner)));
        Cache { inner }
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    pub fn zones(&self) -> &[Name] {
        &self.inner.zones
    }
}

impl Inner {
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
            prefetch: prefetches().with(&[server, z, ""]),
            served_stale: served_stale().with(&[server, z, ""]),
        });
        self.stats.write().unwrap_or_else(|e| e.into_inner()).push(s.clone());
        s
    }

    fn in_zones(&self, qname: &Name) -> bool {
        self.zones.iter().any(|z| qname.is_subdomain_of(z))
    }
}

impl Cache {
    fn key(req: &Request<'_>) -> Key {
        Key::new(req.qname(), req.qtype(), req.qclass(), req.do_bit(), req.msg.has(flag::CD))
    }
}

fn disabled(list: &[Name], qname: &Name) -> bool {
    list.iter().any(|z| qname.is_subdomain_of(z))
}

/// The stale TTL CoreDNS writes by default (RFC 8767 would want 30).
const STALE_TTL: u32 = 0;

impl Inner {
    /// Stores what the rest of the chain answered (a miss, a prefetch or a stale refresh) and
    /// rewrites the reply's TTLs and AD bit the way CoreDNS's cache writer does. A forwarded
    /// reply still in wire form is classified and patched as bytes; anything else (or bytes that
    /// do not walk) as a message.
    fn store(&self, server: &str, key: Key, asked: (&Name, u16, u16), wants_ad: bool, reply: &mut Reply) {
        if !reply.written {
            return;
        }
        let stats = self.stats(server);
        if let Body::Wire(bytes) = reply.body_mut() {
            if let Some(class) = classify_wire(bytes) {
                let matches_asked = key.is_question_of(bytes);
                let secs = self.file(&stats, class, matches_asked, asked.0, key, |key, secs| {
                    Entry::from_reply(bytes, key, self.clock.now(), secs)
                });
                kdns_cache::set_ttls(bytes, secs);
                if !wants_ad {
                    bytes[3] &= !(flag::AD as u8);
                }
                return;
            }
        }
        let msg = reply.msg();
        let (qname, qtype, qclass) = asked;
        let matches_asked = msg.questions.len() == 1
            && msg.questions[0].qtype == qtype
            && msg.questions[0].qclass == qclass
            && msg.questions[0].name.eq_ignore_case(qname);
        let class = classify_reply(msg);
        let secs = self
            .file(&stats, class, matches_asked, qname, key, |key, secs| Entry::new(msg, key, self.clock.now(), secs));
        for rr in msg.answers.iter_mut().chain(msg.authority.iter_mut()).chain(msg.additional.iter_mut()) {
            rr.ttl = secs;
        }
        if !wants_ad {
            msg.set(flag::AD, false);
        }
    }

    /// CoreDNS's storage decision for a classified reply: how long it lives, whether it is
    /// stored and in which cache (the entry is built by `build` only then; a reply whose question
    /// is not the one asked is counted as a drop). Returns the TTL every record of the reply gets.
    fn file(
        &self,
        stats: &Stats,
        class: Classification,
        matches_asked: bool,
        qname: &Name,
        key: Key,
        build: impl FnOnce(&Key, u32) -> Option<Entry>,
    ) -> u32 {
        let Classification { kind, msg_ttl, storable } = class;
        let s = &self.settings;
        let duration = match kind {
            ResponseType::NameError | ResponseType::NoData => compute_ttl(msg_ttl, s.denial_min, s.denial_max),
            ResponseType::ServerError => s.servfail,
            _ => compute_ttl(msg_ttl, s.success_min, s.success_max),
        };
        let secs = duration.as_secs() as u32;
        if !storable || secs == 0 {
            return secs;
        }
        if !matches_asked {
            stats.drops.inc();
            return secs;
        }
        let (store, disable, evictions, entries) = match kind {
            ResponseType::NoError | ResponseType::Delegation => {
                (&self.success, &s.disable_success, &stats.evictions_success, &stats.entries_success)
            }
            _ => (&self.denial, &s.disable_denial, &stats.evictions_denial, &stats.entries_denial),
        };
        // Stale data beats a failure (RFC 8767): with serve_stale, a SERVFAIL is not filed over
        // an answer that can still be served, and a good answer clears a SERVFAIL filed before
        // it. Either order happens when a client's retry races its first query; the denial
        // store is looked at first, so a SERVFAIL left there would answer for the question
        // (CoreDNS's cache: for the whole stale window once the upstream is gone).
        if let Some(stale) = s.serve_stale {
            let now = self.clock.now();
            match kind {
                ResponseType::ServerError
                    if self.success.get(&key).is_some_and(|good| -good.ttl(now) < stale.max_stale.as_secs() as i64) =>
                {
                    return secs;
                }
                ResponseType::NoError | ResponseType::Delegation
                    if self.denial.get(&key).is_some_and(|failed| failed.rcode() == rcode::SERVFAIL) =>
                {
                    self.denial.remove(&key);
                    stats.entries_denial.set(self.denial.len() as f64);
                }
                _ => {}
            }
        }
        if !disabled(disable, qname) {
            if let Some(entry) = build(&key, secs) {
                evictions.add(store.insert(key, entry) as u64);
                entries.set(store.len() as f64);
            }
        }
        secs
    }

    /// Runs the rest of the chain for `query` in the background and stores the answer.
    fn refresh(self: &Arc<Self>, req: &Request<'_>, entry: Arc<Entry>) {
        let Some(rest) = req.rest() else {
            entry.end_refresh();
            return;
        };
        let inner = self.clone();
        let mut query = req.msg.clone();
        let server = req.server.to_string();
        let key = Cache::key(req);
        let wants_ad = req.do_bit() || req.msg.has(flag::AD);
        query.set(flag::AD, true);
        // On the main runtime: a refresh must finish (and end the entry's refresh state) even if
        // the UDP worker that saw the hit goes away.
        kdns_server::background::spawn(async move {
            let mut reply = rest.run(query.clone()).await;
            let q = &query.questions[0];
            inner.store(&server, key, (&q.name, q.qtype, q.qclass), wants_ad, &mut reply);
            entry.end_refresh();
        });
    }
}

impl Plugin for Cache {
    fn name(&self) -> &'static str {
        "cache"
    }

    fn serve(&self, req: &Request<'_>) -> Step {
        let c = &self.inner;
        if !c.in_zones(req.qname()) {
            return Step::Next;
        }
        let stats = c.stats(req.server);
        stats.requests.inc();
        let key = Cache::key(req);
        // The clock the server read when the query arrived: one clock read per query, not two.
        let now = req.start;
        // Denial first, as CoreDNS.
        for (store, hits) in [(&c.denial, &stats.hits_denial), (&c.success, &stats.hits_success)] {
            let Some(entry) = store.get(&key) else { continue };
            let left = entry.ttl(now);
            if left > 0 {
                hits.inc();
                if let Some(p) = c.settings.prefetch {
                    let count = entry.record_hit(now, p.window);
                    let threshold = (entry.duration as u64 * p.percentage as u64).div_ceil(100);
                    if count >= p.amount && (left as u64) <= threshold && entry.begin_refresh() {
                        stats.prefetch.inc();
                        c.refresh(req, entry.clone());
                    }
                }
                let ttl = if c.settings.keepttl { entry.duration } else { left as u32 };
                let mut out = kdns_server::plugin::wire_buffer(entry.len() + 64);
                entry.write_hit(req.msg, req.qname().as_wire(), ttl, &mut out);
                return Step::Reply(Reply::wire(out, "cache"));
            }
            let Some(stale) = c.settings.serve_stale else { continue };
            // A failure is not data: an expired SERVFAIL is never served stale.
            if (-left) as u64 >= stale.max_stale.as_secs() || entry.rcode() == rcode::SERVFAIL {
                continue;
            }
            let mut out = Vec::with_capacity(entry.len() + 64);
            entry.write_hit(req.msg, req.qname().as_wire(), stale.ttl, &mut out);
            let recheck_pending = stale.client_timeout.is_some() && entry.refresh_failed_within(now, STALE_RECHECK);
            if !stale.verify || recheck_pending {
                hits.inc();
                stats.served_stale.inc();
                if entry.begin_refresh() {
                    c.refresh(req, entry.clone());
                }
                return Step::Reply(Reply::wire(out, "cache"));
            }
            // verify: ask the rest of the chain first; serve the stale entry only if that fails
            // (or, with a client timer, takes longer than it).
            let Some(rest) = req.rest() else { continue };
            let inner = c.clone();
            let mut query = req.msg.clone();
            query.set(flag::AD, true);
            let server = req.server.to_string();
            let wants_ad = req.do_bit() || req.msg.has(flag::AD);
            let stale_stats = stats.clone();
            let entry = entry.clone();
            let timed_out_entry = entry.clone();
            let clock = c.clock.clone();
            return Step::Pending(Box::pin(async move {
                let refresh = async move {
                    let mut reply = rest.run(query.clone()).await;
                    if reply.written && matches!(reply.rcode_value(), rcode::NOERROR | rcode::NXDOMAIN) {
                        let q = &query.questions[0];
                        inner.store(&server, key, (&q.name, q.qtype, q.qclass), wants_ad, &mut reply);
                        return Some(reply);
                    }
                    entry.mark_refresh_failed(inner.clock.now());
                    None
                };
                let fresh = match stale.client_timeout {
                    None => refresh.await,
                    // The refresh runs on in its own task past the timer and still fills the cache.
                    Some(timer) => match tokio::time::timeout(timer, kdns_server::background::spawn(refresh)).await {
                        Ok(Ok(reply)) => reply,
                        Ok(Err(_)) => None,
                        // A refresh slower than the client timer counts as failing from now on:
                        // the next clients get the stale answer at once instead of each waiting
                        // the timer out while the upstream's own timeouts run (an answer that
                        // does come replaces the entry, and with it this mark).
                        Err(_) => {
                            timed_out_entry.mark_refresh_failed(clock.now());
                            None
                        }
                    },
                };
                if let Some(reply) = fresh {
                    return reply;
                }
                stale_stats.served_stale.inc();
                Reply::wire(out, "cache")
            }));
        }
        stats.misses.inc();
        // CoreDNS 1.14 asks the rest of the chain with AD set on a miss.
        req.upstream_ad.set(true);
        Step::Next
    }

    /// The way back from a miss: store what the rest of the chain wrote, and give this first
    /// reply the same single TTL later hits will carry (CoreDNS rewrites it too).
    fn respond(&self, req: &Request<'_>, reply: &mut Reply) {
        let c = &self.inner;
        if !c.in_zones(req.qname()) {
            return;
        }
        let wants_ad = req.do_bit() || req.msg.has(flag::AD);
        c.store(req.server, Cache::key(req), (req.qname(), req.qtype(), req.qclass()), wants_ad, reply);
    }
}
