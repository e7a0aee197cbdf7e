//! The live status page on the metrics port (`/status`, data at `/status.json`): what an operator
//! asks when DNS misbehaves — QPS, cache hit rate, latency percentiles, rcodes, upstream health,
//! the most asked names, the NXDOMAIN names and the clients that send them (ndots:5 search-path
//! storms), and the node cache's interception state.
//!
//! Counters come from the metrics registry (nothing new on the query path). The top-k tables are
//! Space-Saving sketches with fixed capacity, fed from one query in [`SAMPLE_EVERY`]: a relaxed
//! atomic add on every query, and on the sampled ones a `try_lock` that skips the sample when
//! another worker holds the lock, so no query ever waits for the page.

use kdns_server::metrics;
use kdns_server::plugin::{Done, Request};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// One query in this many feeds the sketches; their counts are scaled back by it.
pub const SAMPLE_EVERY: u64 = 8;
/// Entries each sketch keeps (the page shows the top 15).
const CAPACITY: usize = 128;
const SHOWN: usize = 15;

/// Space-Saving top-k: at most `CAPACITY` keys; a new key replaces the smallest count and
/// inherits it as its error bound.
#[derive(Default)]
pub struct TopK {
    slots: Vec<(String, u64, u64)>,
    index: HashMap<String, usize>,
}

impl TopK {
    pub fn add(&mut self, key: &str) {
        if let Some(&i) = self.index.get(key) {
            self.slots[i].1 += 1;
            return;
        }
        if self.slots.len() < CAPACITY {
            self.index.insert(key.to_string(), self.slots.len());
            self.slots.push((key.to_string(), 1, 0));
            return;
        }
        let (i, min) = self.slots.iter().enumerate().map(|(i, s)| (i, s.1)).min_by_key(|x| x.1).unwrap_or((0, 0));
        let old = std::mem::replace(&mut self.slots[i], (key.to_string(), min + 1, min));
        self.index.remove(&old.0);
        self.index.insert(key.to_string(), i);
    }

    /// The largest counts, highest first.
    pub fn top(&self, n: usize) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self.slots.iter().map(|s| (s.0.clone(), s.1)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }
}

#[derive(Default)]
struct Sketches {
    names: TopK,
    nxdomain: TopK,
    /// `name \t client` pairs of NXDOMAIN answers.
    nx_clients: TopK,
    /// Client addresses (top talkers).
    clients: TopK,
    /// The sampled key is written here (reused: a name already in the sketch costs no allocation).
    key: String,
}

static SAMPLER: AtomicU64 = AtomicU64::new(0);

fn sketches() -> &'static Mutex<Sketches> {
    static S: OnceLock<Mutex<Sketches>> = OnceLock::new();
    S.get_or_init(Mutex::default)
}

/// Called for every answered query (from the prometheus plugin's observe hook).
pub fn observe(req: &Request<'_>, done: &Done<'_>) {
    if !SAMPLER.fetch_add(1, Ordering::Relaxed).is_multiple_of(SAMPLE_EVERY) {
        return;
    }
    let Ok(mut guard) = sketches().try_lock() else { return };
    let s = &mut *guard;
    s.key.clear();
    let _ = write!(s.key, "{}", req.qname());
    s.key.make_ascii_lowercase();
    s.names.add(&s.key);
    let name_len = s.key.len();
    let _ = write!(s.key, "{}", req.remote.ip());
    s.clients.add(&s.key[name_len..]);
    s.key.truncate(name_len);
    if done.reply.rcode_value() == 3 {
        s.nxdomain.add(&s.key);
        let _ = write!(s.key, "\t{}", req.remote.ip());
        s.nx_clients.add(&s.key);
    }
}

/// One sample line of the text exposition: name, labels, value.
fn samples(text: &str) -> Vec<(&str, BTreeMap<&str, &str>, f64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (head, value) = match line.rsplit_once(' ') {
            Some(v) => v,
            None => continue,
        };
        let Ok(value) = value.parse::<f64>() else { continue };
        let (name, labels) = match head.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (head, ""),
        };
        let mut map = BTreeMap::new();
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            if let Some((k, v)) = pair.split_once("=\"") {
                map.insert(k.trim_start_matches(','), v.trim_end_matches('"'));
            }
        }
        out.push((name, map, value));
    }
    out
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "null".into()
    }
}

/// Quantile of a cumulative histogram (upper bound of the bucket it falls in).
fn quantile(buckets: &BTreeMap<u64, f64>, q: f64) -> Option<f64> {
    let total = buckets.values().copied().fold(0.0, f64::max);
    if total <= 0.0 {
        return None;
    }
    let want = q * total;
    buckets.iter().find(|(_, c)| **c >= want).map(|(le, _)| f64::from_bits(*le))
}

/// `/status.json`.
pub fn json() -> String {
    let text = metrics::registry().render();
    let mut requests = 0.0;
    let mut rcodes: BTreeMap<String, f64> = BTreeMap::new();
    let (mut hits, mut cache_requests, mut stale) = (0.0, 0.0, 0.0);
    let mut latency: BTreeMap<u64, f64> = BTreeMap::new();
    let mut upstreams: BTreeMap<String, (f64, f64, f64)> = BTreeMap::new();
    let mut nodecache: BTreeMap<String, f64> = BTreeMap::new();
    let mut namespaces: BTreeMap<String, [f64; 4]> = BTreeMap::new();
    for (name, labels, v) in samples(&text) {
        let column = match name {
            "kdns_client_requests_total" => Some(0),
            "kdns_client_nxdomain_total" => Some(1),
            "kdns_client_forwarded_total" => Some(2),
            "kdns_client_limited_total" => Some(3),
            _ => None,
        };
        if let (Some(col), Some(ns)) = (column, labels.get("namespace")) {
            namespaces.entry(ns.to_string()).or_default()[col] += v;
            continue;
        }
        match name {
            "coredns_dns_requests_total" => requests += v,
            "coredns_dns_responses_total" => {
                *rcodes.entry(labels.get("rcode").copied().unwrap_or("?").to_string()).or_default() += v
            }
            "coredns_cache_hits_total" => hits += v,
            "coredns_cache_requests_total" => cache_requests += v,
            "coredns_cache_served_stale_total" => stale += v,
            "coredns_dns_request_duration_seconds_bucket" => {
                let le = labels.get("le").and_then(|l| if *l == "+Inf" { Some(f64::INFINITY) } else { l.parse().ok() });
                if let Some(le) = le {
                    *latency.entry(le.to_bits()).or_default() += v;
                }
            }
            "coredns_proxy_request_duration_seconds_count" => {
                let e = upstreams.entry(labels.get("to").copied().unwrap_or("?").to_string()).or_default();
                e.0 += v;
                if labels.get("rcode").is_some_and(|r| *r != "NOERROR" && *r != "NXDOMAIN") {
                    e.1 += v;
                }
            }
            "coredns_proxy_healthcheck_failures_total" => {
                upstreams.entry(labels.get("to").copied().unwrap_or("?").to_string()).or_default().2 += v;
            }
            n if n.starts_with("coredns_nodecache_") && labels.is_empty() => {
                nodecache.insert(n.trim_start_matches("coredns_nodecache_").to_string(), v);
            }
            "coredns_nodecache_failopen_total" => *nodecache.entry("failopen_total".into()).or_default() += v,
            _ => {}
        }
    }
    // Infinite bounds sort last as bits of positive floats grow with the value.
    let mut out = String::with_capacity(4096);
    let _ = write!(out, "{{\"requests\":{},\"rcodes\":{{", json_num(requests));
    for (i, (k, v)) in rcodes.iter().enumerate() {
        let _ = write!(out, "{}{}:{}", if i > 0 { "," } else { "" }, json_str(k), json_num(*v));
    }
    let _ = write!(
        out,
        "}},\"cache\":{{\"hits\":{},\"requests\":{},\"stale\":{}}},\"latency\":{{",
        json_num(hits),
        json_num(cache_requests),
        json_num(stale)
    );
    for (i, q) in [0.5, 0.9, 0.99].iter().enumerate() {
        let v = quantile(&latency, *q).map(json_num).unwrap_or_else(|| "null".into());
        let _ = write!(out, "{}\"p{}\":{v}", if i > 0 { "," } else { "" }, (q * 100.0) as u32);
    }
    out.push_str("},\"upstreams\":[");
    for (i, (to, (n, failed, health))) in upstreams.iter().enumerate() {
        let _ = write!(
            out,
            "{}{{\"to\":{},\"requests\":{},\"errors\":{},\"healthcheck_failures\":{}}}",
            if i > 0 { "," } else { "" },
            json_str(to),
            json_num(*n),
            json_num(*failed),
            json_num(*health)
        );
    }
    out.push_str("],\"nodecache\":{");
    for (i, (k, v)) in nodecache.iter().enumerate() {
        let _ = write!(out, "{}{}:{}", if i > 0 { "," } else { "" }, json_str(k), json_num(*v));
    }
    let (names, nx, pairs, talkers) = {
        let s = sketches().lock().unwrap_or_else(|e| e.into_inner());
        (s.names.top(SHOWN), s.nxdomain.top(SHOWN), s.nx_clients.top(CAPACITY), s.clients.top(SHOWN))
    };
    // Top talkers with the pod behind each address (node cache with -podsource), and the
    // per-namespace counters of that source.
    let _ = write!(out, "}},\"top_clients\":[");
    for (i, (ip, c)) in talkers.iter().enumerate() {
        let (namespace, pod) = match ip.parse() {
            Ok(ip) => kdns_server::clients::describe(ip),
            Err(_) => ("-".into(), "-".into()),
        };
        let _ = write!(
            out,
            "{}{{\"client\":{},\"namespace\":{},\"pod\":{},\"count\":{}}}",
            if i > 0 { "," } else { "" },
            json_str(ip),
            json_str(&namespace),
            json_str(&pod),
            c * SAMPLE_EVERY
        );
    }
    out.push_str("],\"namespaces\":{");
    for (i, (ns, v)) in namespaces.iter().enumerate() {
        let _ = write!(
            out,
            "{}{}:{{\"requests\":{},\"nxdomain\":{},\"forwarded\":{},\"limited\":{}}}",
            if i > 0 { "," } else { "" },
            json_str(ns),
            json_num(v[0]),
            json_num(v[1]),
            json_num(v[2]),
            json_num(v[3])
        );
    }
    let _ = write!(out, "}},\"sample_every\":{SAMPLE_EVERY},\"top_names\":[");
    for (i, (n, c)) in names.iter().enumerate() {
        let _ = write!(out, "{}[{},{}]", if i > 0 { "," } else { "" }, json_str(n), c * SAMPLE_EVERY);
    }
    out.push_str("],\"top_nxdomain\":[");
    for (i, (n, c)) in nx.iter().enumerate() {
        let clients: Vec<String> = pairs
            .iter()
            .filter_map(|(k, c)| {
                k.split_once('\t')
                    .filter(|(name, _)| name == n)
                    .map(|(_, ip)| format!("[{},{}]", json_str(ip), c * SAMPLE_EVERY))
            })
            .take(5)
            .collect();
        let _ = write!(
            out,
            "{}{{\"name\":{},\"count\":{},\"clients\":[{}]}}",
            if i > 0 { "," } else { "" },
            json_str(n),
            c * SAMPLE_EVERY,
            clients.join(",")
        );
    }
    out.push_str("]}");
    out
}

/// `/status`: one self-contained page (no external assets) polling `/status.json`.
pub const PAGE: &str = include_str!("status.html");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_saving_keeps_the_heavy_hitters() {
        let mut t = TopK::default();
        for i in 0..10_000 {
            t.add(&format!("noise{i}"));
            if i % 3 == 0 {
                t.add("heavy.example.");
            }
            if i % 7 == 0 {
                t.add("second.example.");
            }
        }
        let top = t.top(2);
        assert_eq!(top[0].0, "heavy.example.");
        assert!(top[0].1 >= 3334);
        assert_eq!(top[1].0, "second.example.");
        assert!(t.slots.len() <= CAPACITY && t.index.len() == t.slots.len());
    }

    #[test]
    fn parses_exposition_and_computes_quantiles() {
        let text = "# HELP x\ncoredns_dns_requests_total{proto=\"udp\",server=\"dns://:53\",zone=\".\"} 10\nfoo 1\n";
        let s = samples(text);
        assert_eq!(s[0].0, "coredns_dns_requests_total");
        assert_eq!(s[0].1.get("zone"), Some(&"."));
        assert_eq!(s[0].2, 10.0);
        let mut b = BTreeMap::new();
        for (le, c) in [(0.001, 50.0), (0.01, 90.0), (0.1, 99.0), (f64::INFINITY, 100.0)] {
            b.insert(f64::to_bits(le), c);
        }
        assert_eq!(quantile(&b, 0.5), Some(0.001));
        assert_eq!(quantile(&b, 0.9), Some(0.01));
        assert_eq!(quantile(&b, 0.99), Some(0.1));
        assert_eq!(json_str("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }
}
