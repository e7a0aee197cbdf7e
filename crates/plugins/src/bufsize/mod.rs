//! `bufsize`: caps the EDNS UDP buffer size requests carry (the server applies it before the
//! chain runs, see `Block::bufsize`).

#[cfg(test)]
mod tests;

use kdns_corefile::{Directive, Dispenser, Error};
use kdns_server::plugin::{Plugin, SetupCtx};
use std::sync::Arc;

pub const DEFAULT_SIZE: u16 = 1232;

pub fn setup(ctx: &mut SetupCtx<'_>, ds: &[&Directive]) -> Result<Option<Arc<dyn Plugin>>, Error> {
    // Given twice, CoreDNS reads the first occurrence only.
    let d = Dispenser::new(ds[0]);
    let size = match d.args().as_slice() {
        [] => DEFAULT_SIZE,
        [t] => t.text.parse::<u16>().ok().filter(|s| (512..=4096).contains(s)).ok_or_else(|| {
            Error::at(t, format!("plugin/bufsize: buffer size must be within 512 - 4096: {:?}", t.text))
        })?,
        [_, extra, ..] => return Err(d.arg_err(extra)),
    };
    ctx.bufsize = Some(size);
    Ok(None)
}
