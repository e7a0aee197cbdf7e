//! Prometheus metrics with CoreDNS's names, labels, help texts and buckets, rendered in text
//! format 0.0.4 with Go's float formatting (so scrapes look like a Go exporter's).
//!
//! Written here instead of using `prometheus-client` because that crate renders OpenMetrics and
//! appends `_total` itself, and because series handles are resolved at setup so the query path
//! only does relaxed atomic adds.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

pub enum Kind {
    Counter,
    Gauge,
    Histogram(&'static [f64]),
}

pub struct Family {
    pub name: &'static str,
    help: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    /// Series by their label values joined with NUL (never part of a label value), so a lookup
    /// can be made in a reused buffer without allocating.
    series: Mutex<BTreeMap<String, Arc<Series>>>,
}

pub struct Series {
    value: AtomicU64,
    buckets: Box<[AtomicU64]>,
    sum: AtomicU64,
    count: AtomicU64,
    bounds: &'static [f64],
}

impl Series {
    fn new(bounds: &'static [f64]) -> Series {
        Series {
            value: AtomicU64::new(0),
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0f64.to_bits()),
            count: AtomicU64::new(0),
            bounds,
        }
    }
    pub fn inc(&self) {
        self.value.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add(&self, n: u64) {
        self.value.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }
    /// Gauges store an f64.
    pub fn set(&self, v: f64) {
        self.value.store(v.to_bits(), Ordering::Relaxed);
    }
    pub fn observe(&self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|&b| v <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut cur = self.sum.load(Ordering::Relaxed);
        loop {
            let next = (f64::from_bits(cur) + v).to_bits();
            match self.sum.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
    }
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

impl Family {
    /// The series for these label values (created on first use). Call at setup, keep the Arc.
    /// Finding an existing series does not allocate.
    pub fn with(&self, values: &[&str]) -> Arc<Series> {
        debug_assert_eq!(values.len(), self.labels.len(), "{}", self.name);
        debug_assert!(values.iter().all(|v| !v.contains('\0')), "{}: NUL in a label value", self.name);
        thread_local! {
            static KEY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        KEY.with_borrow_mut(|key| {
            key.clear();
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    key.push('\0');
                }
                key.push_str(v);
            }
            let mut map = self.series.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(s) = map.get(key.as_str()) {
                return s.clone();
            }
            let bounds = match self.kind {
                Kind::Histogram(b) => b,
                _ => &[],
            };
            let s = Arc::new(Series::new(bounds));
            map.insert(key.clone(), s.clone());
            s
        })
    }

    /// Removes every series (for info gauges whose labels change, like reload_version_info).
    pub fn clear(&self) {
        self.series.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn render(&self, out: &mut String) {
        let map = self.series.lock().unwrap_or_else(|e| e.into_inner());
        if map.is_empty() {
            return;
        }
        let kind = match self.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram(_) => "histogram",
        };
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {}", self.name, kind);
        // Go's client sorts label pairs by name.
        let mut order: Vec<usize> = (0..self.labels.len()).collect();
        order.sort_by_key(|&i| self.labels[i]);
        let mut rows: Vec<(String, &Arc<Series>)> = map
            .iter()
            .map(|(key, s)| {
                let values: Vec<&str> = key.split('\0').collect();
                let mut l = String::new();
                for (n, &i) in order.iter().enumerate() {
                    if n > 0 {
                        l.push(',');
                    }
                    let _ = write!(l, "{}=\"{}\"", self.labels[i], escape(values[i]));
                }
                (l, s)
            })
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        for (labels, s) in rows {
            match self.kind {
                Kind::Counter => line(out, self.name, "", &labels, s.get() as f64),
                Kind::Gauge => line(out, self.name, "", &labels, f64::from_bits(s.value.load(Ordering::Relaxed))),
                Kind::Histogram(bounds) => {
                    let mut cumulative = 0u64;
                    let sep = if labels.is_empty() { "" } else { "," };
                    for (i, b) in bounds.iter().enumerate() {
                        cumulative += s.buckets[i].load(Ordering::Relaxed);
                        let l = format!("{labels}{sep}le=\"{}\"", go_float(*b));
                        line(out, self.name, "_bucket", &l, cumulative as f64);
                    }
                    let count = s.count();
                    line(out, self.name, "_bucket", &format!("{labels}{sep}le=\"+Inf\""), count as f64);
                    line(out, self.name, "_sum", &labels, f64::from_bits(s.sum.load(Ordering::Relaxed)));
                    line(out, self.name, "_count", &labels, count as f64);
                }
            }
        }
    }
}

fn line(out: &mut String, name: &str, suffix: &str, labels: &str, v: f64) {
    if labels.is_empty() {
        let _ = writeln!(out, "{name}{suffix} {}", go_float(v));
    } else {
        let _ = writeln!(out, "{name}{suffix}{{{labels}}} {}", go_float(v));
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n").replace('"', "\\\"")
}

/// `strconv.FormatFloat(v, 'g', -1, 64)` as Go's exposition format writes sample values.
pub fn go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    if v == 0.0 {
        return "0".into();
    }
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    format!("{v}")
}

pub struct Registry {
    families: Mutex<Vec<&'static Family>>,
}

impl Registry {
    pub fn render(&self) -> String {
        let mut fams: Vec<&'static Family> = self.families.lock().unwrap_or_else(|e| e.into_inner()).clone();
        fams.sort_by_key(|f| f.name);
        let mut out = String::with_capacity(16 * 1024);
        process_metrics(&mut out);
        for f in fams {
            f.render(&mut out);
        }
        if let Some(path) = EXTRA.get() {
            // Families another process (the node-cache supervisor) exports through us.
            if let Ok(text) = std::fs::read_to_string(path) {
                out.push_str(&text);
            }
        }
        out
    }

    /// Defines a family once for the process; later calls return the same family.
    pub fn family(
        &self,
        name: &'static str,
        help: &'static str,
        kind: Kind,
        labels: &'static [&'static str],
    ) -> &'static Family {
        let mut fams = self.families.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = fams.iter().find(|f| f.name == name) {
            return f;
        }
        let f: &'static Family =
            Box::leak(Box::new(Family { name, help, kind, labels, series: Mutex::new(BTreeMap::new()) }));
        fams.push(f);
        f
    }
}

static EXTRA: OnceLock<std::path::PathBuf> = OnceLock::new();

/// Appends the text of `path` (Prometheus text format, other families) to every scrape.
pub fn set_extra_source(path: std::path::PathBuf) {
    let _ = EXTRA.set(path);
}

pub fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| Registry { families: Mutex::new(Vec::new()) })
}

/// `N` histogram buckets from `start`, each `factor` times the one before (Prometheus's
/// `ExponentialBuckets`): the one bucket builder of the project.
pub const fn exponential_buckets<const N: usize>(start: f64, factor: f64) -> [f64; N] {
    let mut b = [0.0; N];
    let mut i = 0;
    let mut v = start;
    while i < N {
        b[i] = v;
        v *= factor;
        i += 1;
    }
    b
}

/// CoreDNS `TimeBuckets`: 0.25 ms doubling, 16 buckets.
pub static TIME_BUCKETS: [f64; 16] = exponential_buckets(0.00025, 2.0);
/// CoreDNS `SlimTimeBuckets`: 0.25 ms ×10, 5 buckets.
pub static SLIM_TIME_BUCKETS: [f64; 5] = [0.00025, 0.0025, 0.025, 0.25, 2.5];
pub static SIZE_BUCKETS: [f64; 14] =
    [0.0, 100.0, 200.0, 300.0, 400.0, 511.0, 1023.0, 2047.0, 4095.0, 8291.0, 16e3, 32e3, 48e3, 64e3];

/// Defines `fn NAME() -> &'static Family`, registered once on first use. Plugins define their
/// own families with it (`kdns_server::metric_family!`).
#[macro_export]
macro_rules! metric_family {
    ($vis:vis $fn:ident, $name:literal, $help:literal, $kind:expr, [$($l:literal),*]) => {
        $vis fn $fn() -> &'static $crate::metrics::Family {
            static F: std::sync::OnceLock<&'static $crate::metrics::Family> = std::sync::OnceLock::new();
            F.get_or_init(|| $crate::metrics::registry().family($name, $help, $kind, &[$($l),*]))
        }
    };
}

metric_family!(
    pub build_info,
    "coredns_build_info",
    "A metric with a constant '1' value labeled by version, revision, and goversion from which CoreDNS was built.",
    Kind::Gauge,
    ["version", "revision", "goversion"]
);
metric_family!(pub panics_total, "coredns_panics_total", "A metrics that counts the number of panics.", Kind::Counter, []);
metric_family!(
    pub plugin_enabled,
    "coredns_plugin_enabled",
    "A metric that indicates whether a plugin is enabled on per server and zone basis.",
    Kind::Gauge,
    ["server", "zone", "view", "name"]
);
metric_family!(
    pub dns_requests_total,
    "coredns_dns_requests_total",
    "Counter of DNS requests made per zone, protocol and family.",
    Kind::Counter,
    ["server", "zone", "view", "proto", "family", "type"]
);
metric_family!(
    pub dns_responses_total,
    "coredns_dns_responses_total",
    "Counter of response status codes.",
    Kind::Counter,
    ["server", "zone", "view", "rcode", "plugin"]
);
metric_family!(
    pub dns_request_duration_seconds,
    "coredns_dns_request_duration_seconds",
    "Histogram of the time (in seconds) each request took per zone.",
    Kind::Histogram(&TIME_BUCKETS),
    ["server", "zone", "view"]
);
metric_family!(
    pub dns_request_size_bytes,
    "coredns_dns_request_size_bytes",
    "Size of the EDNS0 UDP buffer in bytes (64K for TCP) per zone and protocol.",
    Kind::Histogram(&SIZE_BUCKETS),
    ["server", "zone", "view", "proto"]
);
metric_family!(
    pub dns_response_size_bytes,
    "coredns_dns_response_size_bytes",
    "Size of the returned response in bytes.",
    Kind::Histogram(&SIZE_BUCKETS),
    ["server", "zone", "view", "proto"]
);
metric_family!(
    pub dns_do_requests_total,
    "coredns_dns_do_requests_total",
    "Counter of DNS requests with DO bit set per zone.",
    Kind::Counter,
    ["server", "zone", "view"]
);
metric_family!(
    pub reload_failed_total,
    "coredns_reload_failed_total",
    "Counter of the number of failed reload attempts.",
    Kind::Counter,
    []
);
metric_family!(
    pub reload_version_info,
    "coredns_reload_version_info",
    "A metric with a constant '1' value labeled by hash, and value which type of hash generated.",
    Kind::Gauge,
    ["hash", "value"]
);
/// The standard `process_*` metrics Go exporters carry, read from /proc.
fn process_metrics(out: &mut String) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return;
    };
    let f: Vec<&str> = after.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let ticks = 100.0;
    let page = 4096.0;
    let cpu = (num(11) + num(12)) / ticks;
    let vsize = num(20);
    let rss = num(21) * page;
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("btime")).and_then(|l| l[6..].trim().parse::<f64>().ok()))
        .unwrap_or(0.0);
    let start = boot + num(19) / ticks;
    let fds = std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0) as f64;
    let max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3)?.parse::<f64>().ok())
        })
        .unwrap_or(0.0);
    for (name, kind, help, v) in [
        ("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", cpu),
        ("process_max_fds", "gauge", "Maximum number of open file descriptors.", max_fds),
        ("process_open_fds", "gauge", "Number of open file descriptors.", fds),
        ("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", rss),
        ("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.", start),
        ("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", vsize),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}", go_float(v));
    }
}

const PROTOS: usize = 2;
const FAMILIES: usize = 2;
/// CoreDNS's `type` label values, `other` last.
pub const METRIC_TYPES: [&str; 20] = [
    "A", "AAAA", "CNAME", "DNSKEY", "DS", "MX", "NSEC3", "NSEC", "NS", "PTR", "RRSIG", "SOA", "SRV", "TXT", "HTTPS",
    "SVCB", "IXFR", "AXFR", "ANY", "other",
];

/// The per-query series of one (server, zone), resolved on first use and then reached without
/// locks or allocation. One per zone of each listener, built with the zone table.
pub struct ZoneStats {
    pub server: String,
    pub zone: String,
    requests: [OnceLock<Arc<Series>>; PROTOS * FAMILIES * METRIC_TYPES.len()],
    do_requests: OnceLock<Arc<Series>>,
    duration: OnceLock<Arc<Series>>,
    request_size: [OnceLock<Arc<Series>>; PROTOS],
    response_size: [OnceLock<Arc<Series>>; PROTOS],
    /// (rcode, plugin) → series; a short read lock, written once per new pair.
    responses: std::sync::RwLock<Vec<(u16, &'static str, Arc<Series>)>>,
}

const PROTO_NAMES: [&str; PROTOS] = ["udp", "tcp"];

impl ZoneStats {
    pub fn new(server: &str, zone: &str) -> ZoneStats {
        ZoneStats {
            server: server.to_string(),
            zone: zone.to_string(),
            requests: std::array::from_fn(|_| OnceLock::new()),
            do_requests: OnceLock::new(),
            duration: OnceLock::new(),
            request_size: std::array::from_fn(|_| OnceLock::new()),
            response_size: std::array::from_fn(|_| OnceLock::new()),
            responses: std::sync::RwLock::new(Vec::new()),
        }
    }

    /// Records one answered query (CoreDNS `vars.Report`). `proto` 0 = udp, 1 = tcp; `family`
    /// 1 or 2; `type_index` into [`METRIC_TYPES`].
    #[allow(clippy::too_many_arguments)]
    pub fn report(
        &self,
        proto: usize,
        family: u8,
        type_index: usize,
        do_bit: bool,
        seconds: f64,
        request_len: usize,
        response_len: usize,
        rcode: u16,
        plugin: &'static str,
    ) {
        let (s, z) = (self.server.as_str(), self.zone.as_str());
        let fam = if family == 2 { 1 } else { 0 };
        if do_bit {
            self.do_requests.get_or_init(|| dns_do_requests_total().with(&[s, z, ""])).inc();
        }
        let slot = (proto * FAMILIES + fam) * METRIC_TYPES.len() + type_index;
        self.requests[slot]
            .get_or_init(|| {
                dns_requests_total().with(&[
                    s,
                    z,
                    "",
                    PROTO_NAMES[proto],
                    if fam == 0 { "1" } else { "2" },
                    METRIC_TYPES[type_index],
                ])
            })
            .inc();
        self.duration.get_or_init(|| dns_request_duration_seconds().with(&[s, z, ""])).observe(seconds);
        self.response_size[proto]
            .get_or_init(|| dns_response_size_bytes().with(&[s, z, "", PROTO_NAMES[proto]]))
            .observe(response_len as f64);
        self.request_size[proto]
            .get_or_init(|| dns_request_size_bytes().with(&[s, z, "", PROTO_NAMES[proto]]))
            .observe(request_len as f64);
        {
            let list = self.responses.read().unwrap_or_else(|e| e.into_inner());
            if let Some((_, _, series)) = list.iter().find(|(r, p, _)| *r == rcode && *p == plugin) {
                series.inc();
                return;
            }
        }
        let series = dns_responses_total().with(&[s, z, "", &kdns_wire::rcode::name(rcode), plugin]);
        series.inc();
        self.responses.write().unwrap_or_else(|e| e.into_inner()).push((rcode, plugin, series));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_floats() {
        assert_eq!(go_float(0.00025), "0.00025");
        assert_eq!(go_float(8.192), "8.192");
        assert_eq!(go_float(64000.0), "64000");
        assert_eq!(go_float(1.0), "1");
        assert_eq!(go_float(1e6), "1e+06");
        assert_eq!(go_float(1234567.0), "1.234567e+06");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(123456.0), "123456");
    }

    #[test]
    fn render_histogram_and_counter() {
        let f = registry().family("test_hist_seconds", "h", Kind::Histogram(&SLIM_TIME_BUCKETS), &["zone", "server"]);
        f.with(&[".", "dns://:53"]).observe(0.001);
        let c = registry().family("test_total", "c", Kind::Counter, &[]);
        c.with(&[]).add(3);
        let text = registry().render();
        assert!(
            text.contains("test_hist_seconds_bucket{server=\"dns://:53\",zone=\".\",le=\"0.00025\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("test_hist_seconds_bucket{server=\"dns://:53\",zone=\".\",le=\"0.0025\"} 1\n"));
        assert!(text.contains("test_hist_seconds_count{server=\"dns://:53\",zone=\".\"} 1\n"));
        assert!(text.contains("# TYPE test_total counter\ntest_total 3\n"));
    }
}
