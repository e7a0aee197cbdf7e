//! `any`: RFC 8482 minimal answers to ANY queries.

mod setup;
#[cfg(test)]
mod tests;

pub use setup::setup;

use kdns_server::{Plugin, Reply, Request, Step};
use kdns_wire::{rtype, Message, RData, Record};

pub struct Any;

impl Plugin for Any {
    fn name(&self) -> &'static str {
        "any"
    }

    fn serve(&self, req: &Request<'_>) -> Step {
        if req.qtype() != rtype::ANY {
            return Step::Next;
        }
        let mut m = Message::reply_to(req.msg);
        m.answers.push(Record::new(
            req.qname().clone(),
            8482,
            RData::Hinfo { cpu: b"ANY obsoleted".to_vec(), os: b"See RFC 8482".to_vec() },
        ));
        Step::Reply(Reply::message(m, "any"))
    }
}
