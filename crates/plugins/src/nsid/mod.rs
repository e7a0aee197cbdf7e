//! `nsid`: adds an NSID option (RFC 5001) to replies for clients that ask for it.

#[cfg(test)]
mod tests;

use kdns_corefile::{Directive, Dispenser, Error};
use kdns_server::plugin::{once, Plugin, Reply, Request, SetupCtx};
use kdns_wire::Edns;
use std::sync::Arc;

/// EDNS option code of NSID.
pub const NSID: u16 = 3;

pub struct Nsid {
    pub data: Vec<u8>,
}

impl Plugin for Nsid {
    fn name(&self) -> &'static str {
        "nsid"
    }
    fn serves(&self) -> bool {
        false
    }
    fn respond(&self, req: &Request<'_>, reply: &mut Reply) {
        let Some(q) = &req.msg.edns else { return };
        if !q.options.iter().any(|(code, _)| *code == NSID) {
            return;
        }
        let msg = reply.msg();
        let opt = msg.edns.get_or_insert_with(|| Edns::new(q.udp_size));
        opt.options.retain(|(code, _)| *code != NSID);
        opt.options.push((NSID, self.data.clone()));
    }
}

pub fn setup(_ctx: &mut SetupCtx<'_>, ds: &[&Directive]) -> Result<Option<Arc<dyn Plugin>>, Error> {
    once("nsid", ds)?;
    let d = Dispenser::new(ds[0]);
    let args = d.args();
    let data = if args.is_empty() {
        crate::pkg::hostname::hostname()
    } else {
        args.iter().map(|t| t.text.as_str()).collect::<Vec<_>>().join(" ")
    };
    Ok(Some(Arc::new(Nsid { data: data.into_bytes() })))
}
