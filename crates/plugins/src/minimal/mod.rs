//! `minimal`: strips the authority and additional sections from positive answers.

#[cfg(test)]
mod tests;

use kdns_cache::{typify, ResponseType};
use kdns_corefile::{Directive, Error};
use kdns_server::plugin::{Body, Plugin, Reply, Request, SetupCtx};
use std::sync::Arc;

pub struct Minimal;

impl Plugin for Minimal {
    fn name(&self) -> &'static str {
        "minimal"
    }
    fn serves(&self) -> bool {
        false
    }
    fn respond(&self, _req: &Request<'_>, reply: &mut Reply) {
        // Cache hits without authority or additional records need no decode.
        if let Body::Wire(b) = reply.body() {
            let count = |i: usize| b.get(i..i + 2).map_or(0, |x| u16::from_be_bytes([x[0], x[1]]));
            if count(8) == 0 && count(10) == 0 {
                return;
            }
        }
        let msg = reply.msg();
        if typify(msg) == ResponseType::NoError {
            msg.authority.clear();
            msg.additional.clear();
        }
    }
}

pub fn setup(_ctx: &mut SetupCtx<'_>, ds: &[&Directive]) -> Result<Option<Arc<dyn Plugin>>, Error> {
    // Given twice, CoreDNS reads the first occurrence only.
    if let Some(a) = ds[0].args.first() {
        return Err(Error::at(a, "plugin/minimal: this plugin takes no arguments"));
    }
    Ok(Some(Arc::new(Minimal)))
}
