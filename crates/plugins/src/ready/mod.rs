//! `ready`: `/ready` answers 200 when every readiness-reporting plugin is ready, else 503 with
//! their names. The route itself is built by the server, which knows every block's plugins.

#[cfg(test)]
mod tests;

use kdns_corefile::{Directive, Dispenser, Error};
use kdns_server::plugin::{once, Plugin, SetupCtx};
use std::sync::Arc;

pub const DEFAULT_ADDRESS: &str = ":8181";

pub fn setup(ctx: &mut SetupCtx<'_>, ds: &[&Directive]) -> Result<Option<Arc<dyn Plugin>>, Error> {
    once("ready", ds)?;
    let d = Dispenser::new(ds[0]);
    let addr = crate::pkg::listen::listen_address("ready", &d, DEFAULT_ADDRESS)?;
    let mut continuously = false;
    for (prop, vals) in d.block() {
        match (prop.text.as_str(), vals.as_slice()) {
            ("monitor", [v]) if v.text == "until-ready" => continuously = false,
            ("monitor", [v]) if v.text == "continuously" => continuously = true,
            ("monitor", _) => return Err(d.arg_err(prop)),
            (other, _) => return Err(Error::at(prop, format!("plugin/ready: unknown property {other:?}"))),
        }
    }
    if !ctx.contrib.ready_addresses.iter().any(|(a, _)| *a == addr) {
        ctx.contrib.ready_addresses.push((addr, continuously));
    }
    Ok(None)
}
