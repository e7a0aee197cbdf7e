//! `acl`: allow, block (REFUSED), filter (empty NOERROR) or drop queries by query type and
//! source network. Rules are checked in order; the first that matches decides; no match allows.

mod setup;
#[cfg(test)]
mod tests;

pub use setup::setup;

use kdns_server::metrics::{Kind, Series};
use kdns_server::plugin::{Plugin, Reply, Request, Step};
use kdns_wire::{rcode, Message, Name};
use std::net::IpAddr;
use std::sync::{Arc, OnceLock, RwLock};

kdns_server::metric_family!(pub blocked, "coredns_acl_blocked_requests_total", "Counter of DNS requests being blocked.", Kind::Counter, ["server", "zone", "view"]);
kdns_server::metric_family!(pub filtered, "coredns_acl_filtered_requests_total", "Counter of DNS requests being filtered.", Kind::Counter, ["server", "zone", "view"]);
kdns_server::metric_family!(pub allowed, "coredns_acl_allowed_requests_total", "Counter of DNS requests being allowed.", Kind::Counter, ["server", "view"]);
kdns_server::metric_family!(pub dropped, "coredns_acl_dropped_requests_total", "Counter of DNS requests being dropped.", Kind::Counter, ["server", "zone", "view"]);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Allow,
    Block,
    Filter,
    Drop,
}

/// A source network: address and prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Net {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Net {
    pub fn contains(&self, ip: &IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - self.prefix as u32) };
                u32::from(n) & mask == u32::from(*a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - self.prefix as u32) };
                u128::from(n) & mask == u128::from(*a) & mask
            }
            // An IPv4 client over an IPv6 socket arrives mapped; match it as IPv4.
            (IpAddr::V4(_), IpAddr::V6(a)) => a.to_ipv4_mapped().is_some_and(|v4| self.contains(&IpAddr::V4(v4))),
            _ => false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub action: Action,
    /// Empty: every type.
    pub types: Vec<u16>,
    /// Empty: every source.
    pub nets: Vec<Net>,
}

impl Rule {
    fn matches(&self, qtype: u16, src: &IpAddr) -> bool {
        (self.types.is_empty() || self.types.contains(&qtype))
            && (self.nets.is_empty() || self.nets.iter().any(|n| n.contains(src)))
    }
}

/// One `acl` directive: its zones and rules.
#[derive(Clone, Debug)]
pub struct Policy {
    pub zones: Vec<Name>,
    pub rules: Vec<Rule>,
}

pub struct Acl {
    policies: Vec<Policy>,
    /// Per server label: the allowed counter, then blocked/filtered/dropped for every
    /// (policy, zone) in order; each resolved once, not on every query.
    handles: RwLock<Vec<(String, Slots)>>,
}

/// One server's counters, each created when first counted.
type Slots = Vec<OnceLock<Arc<Series>>>;

/// Where a decision came from: (policy, zone) indexes.
type Origin = Option<(usize, usize)>;

impl Acl {
    pub fn new(policies: Vec<Policy>) -> Acl {
        Acl { policies, handles: RwLock::new(Vec::new()) }
    }

    /// The decision for a query and the policy zone that made it.
    pub fn decide(&self, qname: &Name, qtype: u16, src: &IpAddr) -> (Action, Origin) {
        for (pi, p) in self.policies.iter().enumerate() {
            let Some(zi) = p.zones.iter().position(|z| qname.is_subdomain_of(z)) else { continue };
            if let Some(rule) = p.rules.iter().find(|r| r.matches(qtype, src)) {
                return (rule.action, Some((pi, zi)));
            }
        }
        (Action::Allow, None)
    }

    fn count(&self, server: &str, origin: Origin, action: Action) {
        let (slot, family, zone) = match (action, origin) {
            (Action::Allow, _) | (_, None) => (0, allowed(), None),
            (a, Some((pi, zi))) => {
                let before: usize = self.policies[..pi].iter().map(|p| p.zones.len()).sum();
                let (kind, family) = match a {
                    Action::Block => (0, blocked()),
                    Action::Filter => (1, filtered()),
                    _ => (2, dropped()),
                };
                (1 + 3 * (before + zi) + kind, family, Some(&self.policies[pi].zones[zi]))
            }
        };
        // A series is created when first counted (as before), then reused without a lookup.
        let init = || match zone {
            None => family.with(&[server, ""]),
            Some(z) => family.with(&[server, &z.to_string(), ""]),
        };
        if let Some((_, v)) = self.handles.read().unwrap_or_else(|e| e.into_inner()).iter().find(|(s, _)| s == server) {
            v[slot].get_or_init(init).inc();
            return;
        }
        let slots = 1 + 3 * self.policies.iter().map(|p| p.zones.len()).sum::<usize>();
        let v: Slots = (0..slots).map(|_| OnceLock::new()).collect();
        v[slot].get_or_init(init).inc();
        self.handles.write().unwrap_or_else(|e| e.into_inner()).push((server.to_string(), v));
    }
}

impl Plugin for Acl {
    fn name(&self) -> &'static str {
        "acl"
    }

    fn serve(&self, req: &Request<'_>) -> Step {
        let (action, origin) = self.decide(req.qname(), req.qtype(), &req.remote.ip());
        self.count(req.server, origin, action);
        match action {
            Action::Allow => Step::Next,
            // Both written by the plugin itself (CoreDNS's `SetRcode`: no AA), so the way back
            // and the `plugin` label see them as acl's.
            Action::Block => {
                let mut m = Message::reply_to(req.msg);
                m.rcode = rcode::REFUSED;
                Step::Reply(Reply::message(m, "acl"))
            }
            Action::Filter => Step::Reply(Reply::message(Message::reply_to(req.msg), "acl")),
            Action::Drop => Step::Drop,
        }
    }
}
