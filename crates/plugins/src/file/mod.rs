//! `file`: authoritative answers from RFC 1035 zone files, reloaded when the SOA serial changes.

mod setup;
#[cfg(test)]
mod tests;
pub mod zone;

pub use setup::setup;

use kdns_server::plugin::{Plugin, Reply, Request, Step};
use kdns_wire::{flag, Message, Name};
use std::sync::{Arc, RwLock};
use zone::Zone;

/// One zone this plugin serves; `None` until its file could be read and parsed.
pub struct Slot {
    pub origin: Name,
    pub zone: RwLock<Option<Arc<Zone>>>,
}

pub struct File {
    pub slots: Vec<Arc<Slot>>,
    pub fallthrough: crate::pkg::zones::Fallthrough,
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
        crate::pkg::upstream::reply_resolving(req, m, answer.leaves_zone.map(|t| (t, req.qtype())), "file")
    }
}
