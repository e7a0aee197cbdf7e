//! `whoami`: answers every query with the client's address, port and transport.

mod setup;
#[cfg(test)]
mod tests;

pub use setup::setup;

use kdns_server::{Plugin, Reply, Request, Step};
use kdns_wire::{flag, Message, RData, Record};
use std::net::IpAddr;

pub struct Whoami;

impl Plugin for Whoami {
    fn name(&self) -> &'static str {
        "whoami"
    }

    fn serve(&self, req: &Request<'_>) -> Step {
        let mut m = Message::reply_to(req.msg);
        m.set(flag::AA, true);
        // Owner names in the case the name was asked in, as CoreDNS writes them.
        let qname = req.qname().clone();
        let data = match req.remote.ip() {
            IpAddr::V4(v4) => RData::A(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => RData::A(v4),
                None => RData::Aaaa(v6),
            },
        };
        let mut addr = Record::new(qname.clone(), 0, data);
        addr.class = req.qclass();
        m.additional.push(addr);
        let proto = format!("_{}", req.proto.as_str());
        if let Ok(owner) = qname.prepend_label(proto.as_bytes()) {
            let mut srv = Record::new(
                owner,
                0,
                RData::Srv { priority: 0, weight: 0, port: req.remote.port(), target: kdns_wire::Name::root() },
            );
            srv.class = req.qclass();
            m.additional.push(srv);
        }
        Step::Reply(Reply::message(m, "whoami"))
    }
}
