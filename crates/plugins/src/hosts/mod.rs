//! `hosts`: answers A, AAAA and PTR from an /etc/hosts-style file and inline entries.

mod index;
mod setup;
#[cfg(test)]
mod tests;

pub use index::{parse_hosts, reverse_to_ip, Index};
pub use setup::setup;

use kdns_server::plugin::{Plugin, Reply, Request, Step};
use kdns_wire::{flag, rcode, rtype, Message, Name, RData, Record};
use std::sync::{Arc, RwLock};

pub struct Hosts {
    pub origins: Vec<Name>,
    pub fallthrough: crate::pkg::zones::Fallthrough,
    pub ttl: u32,
    pub reverse: bool,
    pub index: Arc<RwLock<Arc<Index>>>,
}

impl Plugin for Hosts {
    fn name(&self) -> &'static str {
        "hosts"
    }

    fn serve(&self, req: &Request<'_>) -> Step {
        let qname = req.qname().to_lowercase();
        let in_zone = self.origins.iter().any(|o| qname.is_subdomain_of(o));
        if !in_zone && req.qtype() != rtype::PTR {
            return Step::Next;
        }
        let index = self.index.read().unwrap_or_else(|e| e.into_inner()).clone();
        let key = qname.to_string();
        let answers: Vec<Record> = match req.qtype() {
            rtype::PTR => {
                let names = if self.reverse {
                    reverse_to_ip(&qname).map(|ip| index.names_for(ip)).unwrap_or_default()
                } else {
                    Vec::new()
                };
                if names.is_empty() {
                    return Step::Next;
                }
                names
                    .iter()
                    .filter_map(|n| Name::from_ascii(n).ok())
                    .map(|n| Record::new(qname.clone(), self.ttl, RData::Ptr(n)))
                    .collect()
            }
            rtype::A => index.v4(&key).iter().map(|ip| Record::new(qname.clone(), self.ttl, RData::A(*ip))).collect(),
            rtype::AAAA => {
                index.v6(&key).iter().map(|ip| Record::new(qname.clone(), self.ttl, RData::Aaaa(*ip))).collect()
            }
            _ => Vec::new(),
        };
        if answers.is_empty() && !index.has_name(&key) {
            if self.fallthrough.through(&qname) {
                return Step::Next;
            }
            // No SOA to build an NXDOMAIN with, so SERVFAIL, as CoreDNS does.
            return Step::Reply(Reply::rcode(req.msg, rcode::SERVFAIL, None));
        }
        let mut m = Message::reply_to(req.msg);
        m.set(flag::AA, true);
        m.answers = answers;
        Step::Reply(Reply::message(m, "hosts"))
    }
}
