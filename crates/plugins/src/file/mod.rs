//! `file`: authoritative answers from RFC 1035 zone files, reloaded when the SOA serial changes.

mod setup;
#[cfg(test)]
mod tests;
pub mod zone;

pub use setup::setup;

use kdns_server::plugin::{Plugin, Reply, Request, Step};
use kdns_wire::{flag, rcode, rtype, Message, Name, Question, RData};
use std::sync::{Arc, RwLock};
use zone::Zone;

/// One zone this plugin serves; `None` until its file could be read and parsed.
pub struct Slot {
    pub origin: Name,
    pub zone: RwLock<Option<Arc<Zone>>>,
}

pub struct File {
    pub slots: Vec<Arc<Slot>>,
    pub fallthrough: crate::Fallthrough,
}

impl Plugin for File {
    fn name(&self) -> &'static str {
        "file"
    }

    fn serve(&self, req: &Request<'_>) -> Step {
        let qname = req.qname();
        let Some(slot) =
            self.slots.iter().filter(|s| qname.is_subdomain_of(&s.origin)).max_by_key(|s| s.origin.label_count())
        else {
            return Step::Next;
        };
        let loaded = slot.zone.read().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(zone) = loaded else {
            // Not loaded (the file was missing at startup and has not appeared): as CoreDNS.
            return Step::Reply(Reply::servfail(req.msg, format!("plugin/file: zone {} is not loaded", slot.origin)));
        };
        let answer = zone.lookup(qname, req.qtype());
        if answer.is_nxdomain() && self.fallthrough.through(qname) {
            return Step::Next;
        }
        let mut m = Message::reply_to(req.msg);
        m.rcode = answer.rcode;
        m.set(flag::AA, answer.authoritative);
        m.answers = answer.answers;
        m.authority = answer.authority;
        m.additional = answer.additional;
        debug_assert!(m.rcode == rcode::NOERROR || m.rcode == rcode::NXDOMAIN);
        let outside = match m.answers.last().map(|r| &r.data) {
            Some(RData::Cname(target)) if req.qtype() != rtype::CNAME && !target.is_subdomain_of(&zone.origin) => {
                Some(target.clone())
            }
            _ => None,
        };
        match (outside, req.rest()) {
            (Some(target), Some(rest)) => Step::Pending(Box::pin(resolve_target(m, target, req.qtype(), rest))),
            _ => Step::Reply(Reply::message(m, "file")),
        }
    }
}

/// A CNAME that leaves the zone: its target is asked of the plugins after `file` (CoreDNS asks
/// its whole server again; with the usual Corefiles both reach `forward`) and the answers are
/// appended after the CNAME. A failed lookup adds nothing.
async fn resolve_target(mut m: Message, target: Name, qtype: u16, rest: kdns_server::plugin::Rest) -> Reply {
    let query = Message {
        id: m.id,
        flags: flag::RD,
        questions: vec![Question { name: target, qtype, qclass: kdns_wire::class::IN }],
        ..Message::default()
    };
    let reply = rest.run(query).await;
    if reply.written && reply.rcode_value() == rcode::NOERROR {
        m.answers.extend(reply.as_message().answers.iter().cloned());
    }
    Reply::message(m, "file")
}
