//! `debug`: turns off panic recovery and prints `[DEBUG]` lines.

use kdns_corefile::{Directive, Error};
use kdns_server::plugin::{Plugin, SetupCtx};
use std::sync::Arc;

#[cfg(test)]
mod tests;

pub fn setup(ctx: &mut SetupCtx<'_>, ds: &[&Directive]) -> Result<Option<Arc<dyn Plugin>>, Error> {
    let ds = kdns_server::plugin::last_given(ds);
    if let Some(extra) = ds[0].args.first() {
        return Err(Error::at(extra, "plugin/debug: this plugin takes no arguments"));
    }
    ctx.debug = true;
    kdns_server::log::set_debug(true);
    Ok(None)
}
