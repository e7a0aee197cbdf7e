//! `local`: answers queries for localhost and the loopback/broadcast reverse zones itself, so
//! they never leave the node.

#[cfg(test)]
mod tests;

use kdns_corefile::{Directive, Error};
use kdns_server::metrics::Kind;
use kdns_server::plugin::{Plugin, Reply, Request, SetupCtx, Step};
use kdns_wire::{rcode, rtype, Message, Name, RData, Record};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

const TTL: u32 = 604_800;
const ZONES: [&str; 4] = ["localhost.", "0.in-addr.arpa.", "127.in-addr.arpa.", "255.in-addr.arpa."];

kdns_server::metric_family!(
    pub localhost_requests,
    "coredns_local_localhost_requests_total",
    "Counter of localhost.<domain> requests.",
    Kind::Counter,
    []
);

pub struct Local {
    zones: Vec<Name>,
    localhost: Name,
    loopback_ptr: Name,
}

fn soa(owner: &Name) -> Record {
    let localhost = Name::from_ascii("localhost.").expect("static name");
    Record::new(
        owner.clone(),
        TTL,
        RData::Soa {
            mname: localhost,
            rname: Name::from_ascii("root.localhost.").expect("static name"),
            serial: 1,
            refresh: 0,
            retry: 0,
            expire: 0,
            minimum: TTL,
        },
    )
}

/// A or AAAA for a localhost name; anything else is NODATA.
fn loopback(m: &mut Message, qname: &Name, qtype: u16) {
    match qtype {
        rtype::A => m.answers.push(Record::new(qname.clone(), TTL, RData::A(Ipv4Addr::LOCALHOST))),
        rtype::AAAA => m.answers.push(Record::new(qname.clone(), TTL, RData::Aaaa(Ipv6Addr::LOCALHOST))),
        _ => m.authority.push(soa(qname)),
    }
}

impl Plugin for Local {
    fn name(&self) -> &'static str {
        "local"
    }

    fn serve(&self, req: &Request<'_>) -> Step {
        let qname = req.qname();
        let lower = qname.to_lowercase();
        let mut m = Message::reply_to(req.msg);
        let first_is_localhost = lower.labels().next().is_some_and(|l| l == b"localhost");
        // `<anything>.localhost.` (RFC 6761) and the legacy `localhost.<domain>`.
        if lower.label_count() > 1 && (lower.is_subdomain_of(&self.localhost) || first_is_localhost) {
            localhost_requests().with(&[]).inc();
            kdns_server::debug!(
                plugin = "local",
                "Intercepting localhost query for {lower:?} from {}",
                req.remote.ip()
            );
            loopback(&mut m, qname, req.qtype());
            return Step::Reply(Reply::message(m, "local"));
        }
        let Some(zone) = self.zones.iter().find(|z| lower.is_subdomain_of(z)) else { return Step::Next };
        if lower == *zone {
            match req.qtype() {
                rtype::A | rtype::AAAA if lower == self.localhost => loopback(&mut m, qname, req.qtype()),
                rtype::SOA => m.answers.push(soa(qname)),
                rtype::NS => m.answers.push(Record::new(qname.clone(), TTL, RData::Ns(self.localhost.clone()))),
                _ => m.authority.push(soa(qname)),
            }
        } else if lower == self.loopback_ptr {
            match req.qtype() {
                rtype::PTR => m.answers.push(Record::new(qname.clone(), TTL, RData::Ptr(self.localhost.clone()))),
                _ => m.authority.push(soa(zone)),
            }
        }
        if m.answers.is_empty() && m.authority.is_empty() {
            m.authority.push(soa(zone));
            m.rcode = rcode::NXDOMAIN;
        }
        Step::Reply(Reply::message(m, "local"))
    }
}

pub fn setup(_ctx: &mut SetupCtx<'_>, ds: &[&Directive]) -> Result<Option<Arc<dyn Plugin>>, Error> {
    let ds = kdns_server::plugin::last_given(ds);
    if let Some(a) = ds[0].args.first() {
        return Err(Error::at(a, "plugin/local: this plugin takes no arguments"));
    }
    let zones = ZONES.iter().map(|z| Name::from_ascii(z).expect("static zone")).collect();
    Ok(Some(Arc::new(Local {
        zones,
        localhost: Name::from_ascii("localhost.").expect("static name"),
        loopback_ptr: Name::from_ascii("1.0.0.127.in-addr.arpa.").expect("static name"),
    })))
}
