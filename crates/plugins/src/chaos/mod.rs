//! `chaos`: answers CH-class TXT queries for the server's version, authors and host name.

#[cfg(test)]
mod tests;

use kdns_corefile::{Directive, Dispenser, Error};
use kdns_server::plugin::{Plugin, Reply, Request, SetupCtx, Step};
use kdns_wire::{class, rtype, Message, RData, Record};
use std::sync::Arc;

pub struct Chaos {
    pub version: String,
    pub authors: Vec<String>,
    pub hostname: String,
}

impl Plugin for Chaos {
    fn name(&self) -> &'static str {
        "chaos"
    }

    fn answers_any_class(&self) -> bool {
        true
    }

    fn serve(&self, req: &Request<'_>) -> Step {
        if req.qclass() != class::CH || req.qtype() != rtype::TXT {
            return Step::Next;
        }
        let texts: Vec<&str> = match req.qname().to_lowercase().to_string().as_str() {
            "authors.bind." => self.authors.iter().map(String::as_str).collect(),
            "version.bind." | "version.server." => vec![self.version.as_str()],
            "hostname.bind." | "id.server." => vec![self.hostname.as_str()],
            _ => return Step::Next,
        };
        let mut m = Message::reply_to(req.msg);
        for t in texts {
            let mut rr = Record::new(req.qname().clone(), 0, RData::Txt(vec![t.as_bytes().to_vec()]));
            rr.class = class::CH;
            m.answers.push(rr);
        }
        Step::Reply(Reply::message(m, "chaos"))
    }
}

pub fn setup(_ctx: &mut SetupCtx<'_>, ds: &[&Directive]) -> Result<Option<Arc<dyn Plugin>>, Error> {
    // Given twice, CoreDNS reads the first occurrence only.
    let d = Dispenser::new(ds[0]);
    let args = d.args();
    let version = args.first().map_or_else(|| format!("kdns-{}", env!("CARGO_PKG_VERSION")), |t| t.text.clone());
    let authors =
        if args.len() > 1 { args[1..].iter().map(|t| t.text.clone()).collect() } else { vec!["kdns".to_string()] };
    Ok(Some(Arc::new(Chaos { version, authors, hostname: crate::pkg::hostname::hostname() })))
}
