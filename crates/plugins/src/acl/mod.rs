//! `acl`: allow, block (REFUSED), filter (empty NOERROR) or drop queries by query type and
//! source network. Rules are checked in order; the first that matches decides; no match allows.

mod setup;
#[cfg(test)]
mod tests;

pub use setup::setup;

use kdns_server::metrics::Kind;
use kdns_server::plugin::{Plugin, Reply, Request, Step};
use kdns_wire::{rcode, Message, Name};
use std::net::IpAddr;

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
}

impl Acl {
    pub fn new(policies: Vec<Policy>) -> Acl {
        Acl { policies }
    }

    /// The decision for a query, and the zone of the policy that made it.
    pub fn decide(&self, qname: &Name, qtype: u16, src: &IpAddr) -> (Action, Option<&Name>) {
        for p in &self.policies {
            let Some(zone) = p.zones.iter().find(|z| qname.is_subdomain_of(z)) else { continue };
            if let Some(rule) = p.rules.iter().find(|r| r.matches(qtype, src)) {
                return (rule.action, Some(zone));
            }
        }
        (Action::Allow, None)
    }

    fn count(&self, server: &str, zone: Option<&Name>, action: Action) {
        let zone = zone.map(|z| z.to_string()).unwrap_or_default();
        let series = match action {
            Action::Allow => allowed().with(&[server, ""]),
            Action::Block => blocked().with(&[server, &zone, ""]),
            Action::Filter => filtered().with(&[server, &zone, ""]),
            Action::Drop => dropped().with(&[server, &zone, ""]),
        };
        series.inc();
    }
}

impl Plugin for Acl {
    fn name(&self) -> &'static str {
        "acl"
    }

    fn serve(&self, req: &Request<'_>) -> Step {
        let (action, zone) = self.decide(req.qname(), req.qtype(), &req.remote.ip());
        self.count(req.server, zone, action);
        match action {
            Action::Allow => Step::Next,
            Action::Block => Step::Reply(Reply::rcode(req.msg, rcode::REFUSED, None)),
            Action::Filter => {
                let mut m = Message::reply_to(req.msg);
                m.set(kdns_wire::flag::AA, true);
                Step::Reply(Reply::message(m, "acl"))
            }
            Action::Drop => Step::Drop,
        }
    }
}
