//! `kubernetes`: cluster service discovery (Kubernetes DNS specification 1.1.0, CoreDNS's
//! answers). The index and the answer engine live in `kdns-kubernetes`; this is the Corefile
//! face: options, the reply (AA, SOA in negative answers, SERVFAIL until synced, fallthrough),
//! ExternalName targets resolved through the rest of the chain, readiness, metrics, autopath.

mod setup;
#[cfg(test)]
mod tests;

pub use setup::setup;

use crate::pkg::links::AutoPather;
use kdns_kubernetes::answer::{asked_zone, Engine, Outcome, Settings};
use kdns_kubernetes::source::{Observer, Shared};
use kdns_server::metrics::Kind;
use kdns_server::plugin::{Plugin, Readiness, Reply, Request, Step};
use kdns_wire::{flag, rcode, Message, Name};
use std::sync::Arc;

kdns_server::metric_family!(
    programming_duration,
    "coredns_kubernetes_dns_programming_duration_seconds",
    "Histogram of the time (in seconds) it took to program a dns instance.",
    Kind::Histogram(&PROGRAMMING_BUCKETS),
    ["service_kind"]
);
kdns_server::metric_family!(
    request_duration,
    "coredns_kubernetes_rest_client_request_duration_seconds",
    "Request latency in seconds. Broken down by verb and host.",
    Kind::Histogram(&DEFAULT_BUCKETS),
    ["verb", "host"]
);
kdns_server::metric_family!(
    requests_total,
    "coredns_kubernetes_rest_client_requests_total",
    "Number of HTTP requests, partitioned by status code, method, and host.",
    Kind::Counter,
    ["code", "method", "host"]
);

kdns_server::metric_family!(
    rate_limiter_duration,
    "coredns_kubernetes_rest_client_rate_limiter_duration_seconds",
    "Client side rate limiter latency in seconds. Broken down by verb and host.",
    Kind::Histogram(&DEFAULT_BUCKETS),
    ["verb", "host"]
);
kdns_server::metric_family!(
    list_fallbacks,
    "kdns_kubernetes_list_fallbacks_total",
    "Times a resource switched from streaming lists to paginated lists because the API server refused a streaming list (kdns).",
    Kind::Counter,
    ["resource"]
);
kdns_server::metric_family!(
    relists,
    "kdns_kubernetes_relists_total",
    "Lists after the first one, because the watched resourceVersion expired (kdns).",
    Kind::Counter,
    ["resource"]
);

/// CoreDNS: exponential from 1 ms, factor 2, 20 buckets.
static PROGRAMMING_BUCKETS: [f64; 20] = kdns_server::metrics::exponential_buckets(0.001, 2.0);
/// Prometheus's `DefBuckets`.
static DEFAULT_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Metrics and log lines for the sources.
pub struct PluginObserver;

impl Observer for PluginObserver {
    fn programming(&self, service_kind: &'static str, seconds: f64) {
        programming_duration().with(&[service_kind]).observe(seconds);
    }
    fn request(&self, verb: &str, host: &str, code: &str, seconds: f64) {
        request_duration().with(&[verb, host]).observe(seconds);
        requests_total().with(&[code, verb, host]).inc();
    }
    fn throttled(&self, verb: &str, host: &str, seconds: f64) {
        rate_limiter_duration().with(&[verb, host]).observe(seconds);
    }
    fn fallback(&self, resource: &'static str) {
        list_fallbacks().with(&[resource]).inc();
    }
    fn relist(&self, resource: &'static str) {
        relists().with(&[resource]).inc();
    }
    fn synced(&self, _kind: kdns_kubernetes::object::Kind) {
        kdns_server::memory::release();
    }
    fn info(&self, msg: &str) {
        kdns_server::info!(plugin = "kubernetes", "{msg}");
    }
    fn warning(&self, msg: &str) {
        kdns_server::warning!(plugin = "kubernetes", "{msg}");
    }
}

pub struct Kubernetes {
    /// Plugin zones, lower case; the longest match wins.
    zones: Vec<Name>,
    settings: Settings,
    fallthrough: crate::pkg::zones::Fallthrough,
    shared: Arc<Shared>,
    /// The DNS server's own search domains (autopath appends them after the cluster ones).
    host_search: Vec<Name>,
}

impl Kubernetes {
    fn zone_of(&self, qname: &Name) -> Option<&Name> {
        self.zones.iter().filter(|z| qname.is_subdomain_of(z)).max_by_key(|z| z.as_wire().len())
    }
}

fn negative(query: &Message, code: u16, soa: kdns_wire::Record) -> Reply {
    let mut m = Message::reply_to(query);
    m.set(flag::AA, true);
    m.rcode = code;
    m.authority.push(soa);
    Reply::message(m, "kubernetes")
}

impl Plugin for Kubernetes {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn serve(&self, req: &Request<'_>) -> Step {
        let qname = req.qname();
        let Some(zone) = self.zone_of(qname) else {
            return Step::Next;
        };
        let index = self.shared.read();
        let engine = Engine { index: &index, settings: &self.settings };
        match engine.lookup(zone, qname, req.qtype()) {
            Outcome::Refused => Step::Reply(Reply::rcode(req.msg, rcode::REFUSED, None)),
            Outcome::NameError => {
                if self.fallthrough.through(qname) {
                    return Step::Next;
                }
                let code = if index.synced() { rcode::NXDOMAIN } else { rcode::SERVFAIL };
                Step::Reply(negative(req.msg, code, engine.soa(&asked_zone(qname, zone))))
            }
            Outcome::Answer { answer, .. } if answer.is_empty() => {
                Step::Reply(negative(req.msg, rcode::NOERROR, engine.soa(&asked_zone(qname, zone))))
            }
            Outcome::Answer { answer, additional, chase } => {
                let mut m = Message::reply_to(req.msg);
                m.set(flag::AA, true);
                m.answers = answer;
                m.additional = additional;
                // An ExternalName target outside the cluster zones: resolved by the plugins after
                // this one (in the usual Corefile, `forward`).
                crate::pkg::upstream::reply_resolving(req, m, chase.map(|c| (c.target, c.qtype)), "kubernetes")
            }
        }
    }
}

/// `/ready` reports `kubernetes` until every watched kind has completed its first list.
pub struct Synced(pub Arc<Shared>);

impl Readiness for Synced {
    fn name(&self) -> &'static str {
        "kubernetes"
    }
    fn ready(&self) -> bool {
        self.0.synced()
    }
}

impl AutoPather for Kubernetes {
    /// `[<ns>.svc.<zone>, svc.<zone>, <zone>, <host search>..., ""]` for a client that is a
    /// known pod (needs `pods verified`), CoreDNS's `AutoPath`.
    fn search_path(&self, req: &Request<'_>) -> Option<Vec<Name>> {
        if self.settings.pods != kdns_kubernetes::PodMode::Verified {
            return None;
        }
        let zone = self.zone_of(req.qname())?;
        let index = self.shared.read();
        if !index.synced() {
            return None;
        }
        let ip = match req.remote.ip() {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(std::net::IpAddr::V6(v6), std::net::IpAddr::V4),
            v4 => v4,
        };
        let (ns, _) = index.pods_with_ip(&ip).first()?;
        let z = zone.to_string();
        let mut out: Vec<Name> = [format!("{ns}.svc.{z}"), format!("svc.{z}"), z.clone()]
            .iter()
            .filter_map(|s| Name::from_ascii(s).ok())
            .collect();
        out.extend(self.host_search.iter().cloned());
        out.push(Name::root());
        Some(out)
    }
}
