//! The plugin contract: what a handler sees, what it may answer, and how setup code registers it.
//!
//! A request walks the chain in `plugin.cfg` order. Each handler's [`Plugin::serve`] either passes
//! ([`Step::Next`]), answers at once ([`Step::Reply`], written from the receive loop with no task
//! spawned), or returns a future ([`Step::Pending`]) when it must wait (forwarding). On the way
//! back every earlier plugin may adjust the reply ([`Plugin::respond`], e.g. loadbalance) and,
//! after it is written, observe it ([`Plugin::observe`], e.g. log, prometheus, errors).

use kdns_corefile::{Directive, Error};
use kdns_wire::{rcode, Message, Name};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    Udp,
    Tcp,
}

impl Proto {
    pub fn as_str(&self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        }
    }
}

/// One query on its way through a chain.
pub struct Request<'a> {
    pub msg: &'a Message,
    /// Length of the query as received.
    pub wire_len: usize,
    pub remote: SocketAddr,
    pub local: SocketAddr,
    pub proto: Proto,
    /// Listener label as CoreDNS writes it in metrics, e.g. `dns://:53`.
    pub server: &'a str,
    /// The server-block zone this query was routed to, e.g. `.` or `example.org.`.
    pub zone: &'a str,
    /// Metric handles for (server, zone).
    pub stats: &'a crate::metrics::ZoneStats,
    pub start: Instant,
    /// Where this request is in its chain (absent in unit tests that call a plugin directly).
    pub chain: Option<&'a ChainCursor<'a>>,
    /// Set by a cache that missed: the plugins after it ask their upstream with AD set, as
    /// CoreDNS 1.14's cache does (`authenticatedRefreshState`).
    pub upstream_ad: std::cell::Cell<bool>,
}

/// The position of a request in its chain: set by the server before each `serve` call, so the
/// serving plugin can detach "the plugins after me" with [`Request::rest`].
pub struct ChainCursor<'a> {
    pub(crate) block: &'a Arc<crate::config::Block>,
    pub(crate) stats: &'a Arc<crate::metrics::ZoneStats>,
    pub(crate) at: std::cell::Cell<usize>,
}

/// The rest of a chain, detached from the request: run it again later with another message
/// (cache prefetch and serve_stale refreshes, autopath tries). See `handler.rs` for `run`.
#[derive(Clone)]
pub struct Rest {
    pub(crate) origin: Origin,
    pub(crate) from: usize,
}

/// Where a request came from and which chain serves it, owned so it can outlive the receive
/// loop (pending replies, background refreshes).
#[derive(Clone)]
pub(crate) struct Origin {
    pub(crate) block: Arc<crate::config::Block>,
    pub(crate) stats: Arc<crate::metrics::ZoneStats>,
    pub(crate) remote: SocketAddr,
    pub(crate) local: SocketAddr,
    pub(crate) proto: Proto,
}

impl Request<'_> {
    /// The plugins after the one now serving, detached so they can run in a background task.
    pub fn rest(&self) -> Option<Rest> {
        let c = self.chain?;
        Some(Rest { origin: self.origin(c.block, c.stats), from: c.at.get() + 1 })
    }

    pub(crate) fn origin(&self, block: &Arc<crate::config::Block>, stats: &Arc<crate::metrics::ZoneStats>) -> Origin {
        Origin { block: block.clone(), stats: stats.clone(), remote: self.remote, local: self.local, proto: self.proto }
    }

    pub fn qname(&self) -> &Name {
        &self.msg.questions[0].name
    }
    pub fn qtype(&self) -> u16 {
        self.msg.questions[0].qtype
    }
    pub fn qclass(&self) -> u16 {
        self.msg.questions[0].qclass
    }
    pub fn do_bit(&self) -> bool {
        self.msg.edns.as_ref().is_some_and(|e| e.dnssec_ok)
    }
    /// The buffer size CoreDNS reports: EDNS size (at least 512) or 512 over UDP, 65535 on TCP.
    pub fn bufsize(&self) -> u16 {
        if self.proto == Proto::Tcp {
            return 65535;
        }
        self.msg.edns.as_ref().map_or(512, |e| e.udp_size.max(512))
    }
    /// 1 for IPv4, 2 for IPv6 (IPv4-mapped addresses count as IPv4).
    pub fn family(&self) -> u8 {
        match self.remote.ip() {
            IpAddr::V4(_) => 1,
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => 1,
            IpAddr::V6(_) => 2,
        }
    }
}

/// What a reply carries: a message built by a plugin, or finished wire bytes (a cache hit:
/// ID, flags, question case and TTLs already patched, no OPT record).
#[derive(Debug, Clone)]
pub enum Body {
    Message(Message),
    Wire(Vec<u8>),
}

const WIRE_POOL_MAX: usize = 4;
const WIRE_POOL_BUF_MAX: usize = 16 * 1024;

thread_local! {
    /// Buffers for wire replies, reused so a cache hit does not allocate.
    static WIRE_POOL: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// An empty buffer with room for `capacity` bytes, from this thread's pool when it has one.
/// Replies built from it with [`Reply::wire`] go back to the pool after they are written.
pub fn wire_buffer(capacity: usize) -> Vec<u8> {
    let reused = WIRE_POOL.with(|p| p.try_borrow_mut().ok().and_then(|mut pool| pool.pop()));
    match reused {
        Some(mut v) => {
            v.clear();
            v.reserve(capacity);
            v
        }
        None => Vec::with_capacity(capacity.max(512)),
    }
}

/// A handler's answer, or the rcode it returned without writing.
#[derive(Debug)]
pub struct Reply {
    body: Body,
    /// The plugin that wrote the reply; empty when the server wrote it (CoreDNS's `plugin` label).
    pub plugin: &'static str,
    /// The error a plugin returned (logged by `errors`).
    pub error: Option<String>,
    /// False when only an rcode was returned: the server then writes a reply with that rcode.
    pub written: bool,
}

impl Reply {
    pub fn message(msg: Message, plugin: &'static str) -> Reply {
        Reply { body: Body::Message(msg), plugin, error: None, written: true }
    }

    /// Finished wire bytes (without OPT); the server adds the client's OPT and checks the size.
    /// Take `bytes` from [`wire_buffer`] on a hot path: the server returns it there once sent.
    pub fn wire(bytes: Vec<u8>, plugin: &'static str) -> Reply {
        Reply { body: Body::Wire(bytes), plugin, error: None, written: true }
    }

    /// Hands a wire body's buffer back to this thread's pool (see [`wire_buffer`]).
    pub(crate) fn recycle(self) {
        if let Body::Wire(bytes) = self.body {
            WIRE_POOL.with(|p| {
                if let Ok(mut pool) = p.try_borrow_mut() {
                    if pool.len() < WIRE_POOL_MAX && bytes.capacity() <= WIRE_POOL_BUF_MAX {
                        pool.push(bytes);
                    }
                }
            });
        }
    }

    /// An rcode returned without writing (SERVFAIL, REFUSED, …), optionally with an error.
    pub fn rcode(query: &Message, code: u16, error: Option<String>) -> Reply {
        let mut msg = Message::reply_to(query);
        msg.rcode = code;
        Reply { body: Body::Message(msg), plugin: "", error, written: false }
    }

    pub fn servfail(query: &Message, error: String) -> Reply {
        Reply::rcode(query, rcode::SERVFAIL, Some(error))
    }

    pub fn body(&self) -> &Body {
        &self.body
    }

    /// The reply as a message to change; wire bytes are decoded first (off the cache-hit path:
    /// only plugins that rewrite answers, like loadbalance, call this).
    pub fn msg(&mut self) -> &mut Message {
        if let Body::Wire(bytes) = &self.body {
            let decoded = Message::decode(bytes).unwrap_or_default();
            self.body = Body::Message(decoded);
        }
        match &mut self.body {
            Body::Message(m) => m,
            Body::Wire(_) => unreachable!("decoded above"),
        }
    }

    /// The reply as a message to read (decoded copy for wire bytes).
    pub fn as_message(&self) -> std::borrow::Cow<'_, Message> {
        match &self.body {
            Body::Message(m) => std::borrow::Cow::Borrowed(m),
            Body::Wire(b) => std::borrow::Cow::Owned(Message::decode(b).unwrap_or_default()),
        }
    }

    /// Response code (12 bits for messages; wire bodies carry no OPT, so 4 bits).
    pub fn rcode_value(&self) -> u16 {
        match &self.body {
            Body::Message(m) => m.rcode,
            Body::Wire(b) => b.get(3).map_or(0, |x| (x & 0xF) as u16),
        }
    }

    /// Header flag bits (without the rcode).
    pub fn flags(&self) -> u16 {
        match &self.body {
            Body::Message(m) => m.flags,
            Body::Wire(b) => b.get(2..4).map_or(0, |f| u16::from_be_bytes([f[0], f[1]]) & !0xF),
        }
    }

    /// The body itself, for in-place byte patches of a wire body (no decode).
    pub fn body_mut(&mut self) -> &mut Body {
        &mut self.body
    }
}

pub type BoxFuture = Pin<Box<dyn Future<Output = Reply> + Send + 'static>>;

pub enum Step {
    Next,
    Reply(Reply),
    Pending(BoxFuture),
    /// Send nothing back (the `acl` plugin's `drop`).
    Drop,
}

/// What observers see after the reply went out.
pub struct Done<'a> {
    pub reply: &'a Reply,
    /// Bytes written on the wire.
    pub size: usize,
    pub plugin: &'static str,
    pub error: Option<&'a str>,
    pub duration: Duration,
}

pub trait Plugin: Send + Sync + 'static {
    fn name(&self) -> &'static str;

    /// Answers, passes, or returns a future. Observer-only plugins keep the default.
    fn serve(&self, _req: &Request<'_>) -> Step {
        Step::Next
    }

    /// Called on the way back for plugins before the one that answered, innermost first.
    fn respond(&self, _req: &Request<'_>, _reply: &mut Reply) {}

    /// Called after the reply was written, innermost first.
    fn observe(&self, _req: &Request<'_>, _done: &Done<'_>) {}

    /// False for plugins that only observe: the server skips their `serve` call.
    fn serves(&self) -> bool {
        true
    }

    /// True for plugins that answer classes other than IN (`chaos`, `forward`): a listener
    /// without one refuses them before routing, as CoreDNS does.
    fn answers_any_class(&self) -> bool {
        false
    }
}

/// Something `/ready` asks (kubernetes sync, for instance).
pub trait Readiness: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn ready(&self) -> bool;
}

/// A plain-text HTTP route on an admin listener: returns (status, body).
pub type Route = Arc<dyn Fn() -> (u16, String) + Send + Sync>;

pub type BackgroundTask = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Everything a plugin's setup may contribute besides a handler.
#[derive(Default)]
pub struct Contributions {
    pub routes: Vec<(String, String, Route)>,
    pub readiness: Vec<Arc<dyn Readiness>>,
    pub tasks: Vec<BackgroundTask>,
    /// Awaited after the tasks start and before the instance serves (kubernetes waits for its
    /// initial sync here, bounded by its `startup_timeout`).
    pub startup: Vec<BackgroundTask>,
    pub lameduck: Option<Duration>,
    pub reload: Option<ReloadSettings>,
    /// `ready` listeners: (address, monitor continuously).
    pub ready_addresses: Vec<(String, bool)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReloadSettings {
    pub interval: Duration,
    pub jitter: Duration,
}

/// Setup context for one server block.
pub struct SetupCtx<'a> {
    /// Zones of the block (all keys, CIDR keys expanded).
    pub zones: &'a [String],
    /// Directory of the Corefile, for relative file names.
    pub config_dir: &'a std::path::Path,
    /// Addresses set by `bind`; empty means all addresses.
    pub listen: Vec<IpAddr>,
    /// Set by `debug`: panics are not recovered, debug lines are printed.
    pub debug: bool,
    /// Port of the block's first key (what `loop` probes).
    pub port: u16,
    /// Set by `bufsize`: EDNS buffer sizes above this are lowered before the chain runs.
    pub bufsize: Option<u16>,
    /// Handles plugins of one block leave for each other, by a key the two agree on (for
    /// instance `k8s_external` sets up before `kubernetes` and leaves a cell for it to fill).
    pub links: BlockLinks,
    /// The clock the block's chain reads (plugins that keep time, like the cache, read it too).
    pub clock: crate::clock::Clock,
    pub contrib: &'a mut Contributions,
}

pub type BlockLinks = std::collections::HashMap<&'static str, Arc<dyn std::any::Any + Send + Sync>>;

/// Builds a plugin from all of its directive lines in one block (`None` for plugins that only
/// configure the server, like `bind` or `health`).
pub type SetupFn = fn(&mut SetupCtx<'_>, &[&Directive]) -> Result<Option<Arc<dyn Plugin>>, Error>;

#[derive(Clone, Copy)]
pub struct PluginDef {
    pub name: &'static str,
    pub setup: SetupFn,
}

/// The CoreDNS "only once per server block" rule.
pub fn once(name: &str, directives: &[&Directive]) -> Result<(), Error> {
    match directives.get(1) {
        Some(d) => {
            Err(Error::at(&d.name, format!("plugin/{name}: this plugin can only be used once per Server Block")))
        }
        None => Ok(()),
    }
}

/// The directive that counts for a plugin CoreDNS lets a block give more than once and reads
/// occurrence by occurrence, the last one winning (`debug`, `local`, `loadbalance`, `autopath`,
/// `k8s_external`); plugins that read only the first occurrence use `ds[0]`.
pub fn last_given<'a, 'b>(directives: &'a [&'b Directive]) -> &'a [&'b Directive] {
    &directives[directives.len().saturating_sub(1)..]
}

/// Go's `time.ParseDuration` for non-negative values (`5s`, `1m30s`, `250ms`, `10us`, `1h`),
/// the one duration parser of the project: a bare number other than `0` is refused, as Go does.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * scale;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).ok()
}

/// Formats a duration the way Go's `time.Duration.String` does (`5s`, `1m30s`, `250ms`).
pub fn format_duration(d: Duration) -> String {
    let total = d.as_secs_f64();
    if total == 0.0 {
        return "0s".into();
    }
    if total < 1.0 {
        let ms = d.as_nanos() as f64 / 1e6;
        return format!("{ms}ms");
    }
    let h = d.as_secs() / 3600;
    let m = (d.as_secs() % 3600) / 60;
    let s = total - (h * 3600 + m * 60) as f64;
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{s}s"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("30"), None, "Go wants a unit");
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("1.5h10us"), Some(Duration::from_secs(5400) + Duration::from_micros(10)));
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(format_duration(Duration::from_secs(5)), "5s");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
    }
}
