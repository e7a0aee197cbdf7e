//! `forward`: proxies queries to upstream resolvers, with CoreDNS's selection, retry and
//! health-check semantics. Every upstream reply is checked whole by the decoder's rules and
//! matched to its query before anything of it reaches the client; it then travels as bytes
//! (ID restored, upstream OPT removed) rather than being decoded and encoded again.

// One concept per file: the exchange with one upstream (`upstream`), its UDP socket pool and
// TCP connection (`udp_mux`, `tcp_mux`, sharing the `waiters` table), checking a reply
// (`reply`) and health checking (`health`).
mod health;
mod reply;
pub(crate) mod setup;
mod tcp_mux;
#[cfg(test)]
mod tests;
mod udp_mux;
mod upstream;
mod waiters;

pub use health::HealthCheck;
pub use reply::{accept, Rejected};
pub use setup::setup;
pub use udp_mux::UDP_SOCKET_USES;
pub use upstream::{ExchangeError, TlsTarget, Transport, Upstream};

use kdns_server::metrics::Kind;
use kdns_server::plugin::{Proto, Reply, Request, Step};
use kdns_server::Plugin;
use kdns_wire::{flag, rcode, Message, Name};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

kdns_server::metric_family!(pub request_duration, "coredns_proxy_request_duration_seconds", "Histogram of the time each request took.", Kind::Histogram(&kdns_server::metrics::TIME_BUCKETS), ["proxy_name", "to", "rcode"]);
kdns_server::metric_family!(pub healthcheck_failures, "coredns_proxy_healthcheck_failures_total", "Counter of the number of failed healthchecks.", Kind::Counter, ["proxy_name", "to"]);
kdns_server::metric_family!(pub conn_cache_hits, "coredns_proxy_conn_cache_hits_total", "Counter of connection cache hits per upstream and protocol.", Kind::Counter, ["proxy_name", "to", "proto"]);
kdns_server::metric_family!(pub conn_cache_misses, "coredns_proxy_conn_cache_misses_total", "Counter of connection cache misses per upstream and protocol.", Kind::Counter, ["proxy_name", "to", "proto"]);
kdns_server::metric_family!(pub healthcheck_broken, "coredns_forward_healthcheck_broken_total", "Counter of the number of complete failures of the healthchecks.", Kind::Counter, []);
// kdns addition (no CoreDNS equivalent): replies that failed validation (ID, QR, question) and
// were dropped — a spoofing or broken-upstream signal.
kdns_server::metric_family!(pub mismatched_replies, "kdns_forward_mismatched_replies_total", "Counter of upstream replies dropped because ID, QR bit or question did not match the query.", Kind::Counter, ["to"]);

kdns_server::metric_family!(pub max_concurrent_rejects, "coredns_forward_max_concurrent_rejects_total", "Counter of the number of queries rejected because the concurrent queries were at maximum.", Kind::Counter, []);

/// CoreDNS's overall budget for one query across all attempts.
const QUERY_DEADLINE: Duration = Duration::from_secs(5);
/// EDNS COOKIE is hop-by-hop: never sent upstream on the client's behalf.
const EDNS_COOKIE: u16 = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    Random,
    RoundRobin,
    Sequential,
}

#[derive(Clone, Debug)]
pub struct Options {
    pub force_tcp: bool,
    pub prefer_udp: bool,
    pub expire: Duration,
    pub max_fails: u32,
    pub health: HealthCheck,
    pub policy: Policy,
    pub max_concurrent: Option<u32>,
    pub failover: Vec<u16>,
    /// 0 = no cap.
    pub max_attempts: usize,
    pub read_timeout: Duration,
    /// Upstream rcodes that hand the query to the next matching `forward` line.
    pub next: Vec<u16>,
}

pub struct Forwarder {
    pub from: Name,
    pub except: Vec<Name>,
    pub upstreams: Vec<Arc<Upstream>>,
    pub opts: Options,
    inflight: AtomicU32,
    next_rr: AtomicUsize,
}

impl Forwarder {
    pub fn new(from: Name, except: Vec<Name>, upstreams: Vec<Arc<Upstream>>, opts: Options) -> Forwarder {
        Forwarder { from, except, upstreams, opts, inflight: AtomicU32::new(0), next_rr: AtomicUsize::new(0) }
    }

    fn matches(&self, qname: &Name) -> bool {
        qname.is_subdomain_of(&self.from) && !self.except.iter().any(|e| qname.is_subdomain_of(e))
    }

    /// Upstream indices in the order this query tries them, healthy ones only (one at random
    /// when none is). On the stack: at most [`setup::MAX_UPSTREAMS`].
    fn order(&self) -> Order {
        let n = self.upstreams.len().min(setup::MAX_UPSTREAMS);
        let mut all = [0u8; setup::MAX_UPSTREAMS];
        for (i, slot) in all.iter_mut().enumerate().take(n) {
            *slot = i as u8;
        }
        let all = &mut all[..n];
        match self.opts.policy {
            Policy::Random => fastrand::shuffle(all),
            Policy::RoundRobin => {
                let first = self.next_rr.fetch_add(1, Ordering::Relaxed) % n.max(1);
                all.rotate_left(first);
            }
            Policy::Sequential => {}
        }
        let mut order = Order { idx: [0; setup::MAX_UPSTREAMS], len: 0 };
        for &i in all.iter() {
            if !self.upstreams[i as usize].is_down(self.opts.max_fails) {
                order.idx[order.len] = i;
                order.len += 1;
            }
        }
        if order.len == 0 && n > 0 {
            healthcheck_broken().with(&[]).inc();
            order.idx[0] = fastrand::usize(..n) as u8;
            order.len = 1;
        }
        order
    }

    async fn resolve(self: Arc<Self>, slot: Slot, mut query: Message, client: Proto) -> Reply {
        let _slot = slot;
        if let Some(e) = query.edns.as_mut() {
            e.options.retain(|(code, _)| *code != EDNS_COOKIE);
        }
        let transport = if self.opts.force_tcp {
            Transport::Tcp
        } else if self.opts.prefer_udp || client == Proto::Udp {
            Transport::Udp
        } else {
            Transport::Tcp
        };
        let order = self.order();
        let order = &order.idx[..order.len];
        let deadline = Instant::now() + QUERY_DEADLINE;
        let mut last_error = None;
        let mut attempts = 0usize;
        let mut i = 0usize;
        while Instant::now() < deadline && (self.opts.max_attempts == 0 || attempts < self.opts.max_attempts) {
            let up = &self.upstreams[order[i % order.len()] as usize];
            i += 1;
            attempts += 1;
            let started = Instant::now();
            let mut result = up.exchange(&query, transport, self.opts.read_timeout, self.opts.expire).await;
            if let Ok(r) = &result {
                // A truncated UDP answer is retried over TCP (the client would have to anyway).
                if transport == Transport::Udp && r.flags() & flag::TC != 0 {
                    result = up.exchange(&query, Transport::Tcp, self.opts.read_timeout, self.opts.expire).await;
                }
            }
            match result {
                Ok(reply) => {
                    let code = reply.rcode_value();
                    up.observe_duration(code, started.elapsed().as_secs_f64());
                    if self.opts.failover.contains(&code) && attempts < order.len() {
                        last_error = Some(format!("upstream {} answered {}", up.label, rcode::name(code)));
                        continue;
                    }
                    return reply;
                }
                Err(e) => {
                    if self.opts.max_fails != 0 {
                        up.start_probe(self.opts.health.clone());
                    }
                    last_error = Some(e.to_string());
                }
            }
        }
        Reply::servfail(&query, last_error.unwrap_or_else(|| "no upstream could be tried".into()))
    }
}

/// Upstream indices to try, in order.
struct Order {
    idx: [u8; setup::MAX_UPSTREAMS],
    len: usize,
}

/// One in-flight query counted against `max_concurrent`, taken before the future is spawned.
struct Slot(Arc<Forwarder>);
impl Drop for Slot {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// All `forward` lines of a block, tried in file order; the first whose FROM matches wins.
pub struct Forward {
    pub forwarders: Vec<Arc<Forwarder>>,
}

impl Plugin for Forward {
    fn name(&self) -> &'static str {
        "forward"
    }

    fn answers_any_class(&self) -> bool {
        true
    }

    fn serve(&self, req: &Request<'_>) -> Step {
        let qname = req.qname();
        let Some(first) = self.forwarders.iter().position(|f| f.matches(qname)) else { return Step::Next };
        let f = &self.forwarders[first];
        let before = f.inflight.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(f.clone());
        if let Some(max) = f.opts.max_concurrent {
            if before >= max {
                drop(slot);
                max_concurrent_rejects().with(&[]).inc();
                return Step::Reply(Reply::rcode(
                    req.msg,
                    rcode::REFUSED,
                    Some(format!("concurrent queries exceeded maximum {max}")),
                ));
            }
        }
        // The node cache's per-client budget of misses (off unless set): an over-budget client
        // is still answered from the cache in front of us, only its new misses are refused.
        if !kdns_server::clients::admit_miss(req.remote.ip()) {
            // No error line: a flooding client would turn each refusal into a log line.
            return Step::Reply(Reply::rcode(req.msg, rcode::REFUSED, None));
        }
        // Later matching lines, for `next`: CoreDNS chains forward lines and `next` moves on
        // to the following forward only.
        let later: Vec<Arc<Forwarder>> =
            self.forwarders[first + 1..].iter().filter(|g| g.matches(qname)).cloned().collect();
        let proto = req.proto;
        let mut msg = req.msg.clone();
        if req.upstream_ad.get() {
            msg.set(flag::AD, true);
        }
        if f.opts.next.is_empty() || later.is_empty() {
            return Step::Pending(Box::pin(f.clone().resolve(slot, msg, proto)));
        }
        let fut = f.clone().resolve(slot, msg.clone(), proto);
        let mut moves_on = f.opts.next.clone();
        Step::Pending(Box::pin(async move {
            let mut reply = fut.await;
            for g in later {
                // Only rcodes an upstream answered move on, not our own SERVFAIL after failures.
                if !reply.written || !moves_on.contains(&reply.rcode_value()) {
                    break;
                }
                g.inflight.fetch_add(1, Ordering::AcqRel);
                let slot = Slot(g.clone());
                moves_on = g.opts.next.clone();
                reply = g.clone().resolve(slot, msg.clone(), proto).await;
            }
            reply
        }))
    }
}
