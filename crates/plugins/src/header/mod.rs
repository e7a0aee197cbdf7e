//! `header`: sets or clears header flags (aa, ra, rd) on every response.

#[cfg(test)]
mod tests;

use kdns_corefile::{Directive, Dispenser, Error};
use kdns_server::plugin::{Body, Plugin, Reply, Request, SetupCtx};
use kdns_wire::flag;
use std::sync::Arc;

pub struct Header {
    /// Bits to set and bits to clear, after applying the rules in order (later rules win).
    set: u16,
    clear: u16,
}

impl Plugin for Header {
    fn name(&self) -> &'static str {
        "header"
    }
    fn serves(&self) -> bool {
        false
    }
    fn respond(&self, _req: &Request<'_>, reply: &mut Reply) {
        let apply = |flags: u16| (flags | self.set) & !self.clear;
        match reply.body() {
            // Wire bodies (cache hits) are patched in place: the flags are bytes 2–3.
            Body::Wire(b) if b.len() >= 4 => {
                let flags = u16::from_be_bytes([b[2], b[3]]);
                let patched = apply(flags & !0xF) | (flags & 0xF);
                if let Body::Wire(b) = reply.body_mut() {
                    b[2..4].copy_from_slice(&patched.to_be_bytes());
                }
            }
            _ => {
                let m = reply.msg();
                m.flags = apply(m.flags);
            }
        }
    }
}

pub fn setup(_ctx: &mut SetupCtx<'_>, ds: &[&Directive]) -> Result<Option<Arc<dyn Plugin>>, Error> {
    // Given twice, CoreDNS reads the first occurrence only.
    let d = Dispenser::new(ds[0]);
    if let Some(a) = d.args().first() {
        return Err(d.arg_err(a));
    }
    let (mut set, mut clear) = (0u16, 0u16);
    let rules = d.block();
    if rules.is_empty() {
        return Err(Error::at(d.name(), "plugin/header: at least one rule is required"));
    }
    for (first, rest) in rules {
        // `response set ra` (newer CoreDNS) or `set ra` (responses implied).
        let (action, flags) = match first.text.as_str() {
            "response" => match rest.split_first() {
                Some((a, f)) => (*a, f.to_vec()),
                None => return Err(d.arg_err(first)),
            },
            "query" => {
                return Err(Error::at(
                    first,
                    "plugin/header: the query selector is not supported by this kdns build yet",
                ))
            }
            _ => (first, rest.clone()),
        };
        if flags.is_empty() {
            return Err(d.arg_err(action));
        }
        for f in flags {
            let bit = match f.text.to_ascii_lowercase().as_str() {
                "aa" => flag::AA,
                "ra" => flag::RA,
                "rd" => flag::RD,
                other => return Err(Error::at(f, format!("plugin/header: unknown flag {other:?}"))),
            };
            match action.text.as_str() {
                "set" => {
                    set |= bit;
                    clear &= !bit;
                }
                "clear" => {
                    clear |= bit;
                    set &= !bit;
                }
                other => return Err(Error::at(action, format!("plugin/header: unknown action {other:?}"))),
            }
        }
    }
    Ok(Some(Arc::new(Header { set, clear })))
}
