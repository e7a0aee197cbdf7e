//! `kdns-plugins` owns the Corefile plugins, one directory each as in CoreDNS's `plugin/<name>/`:
//! `mod.rs` (handler), `setup.rs` (parse and validate the directive), `README.md` (the user
//! documentation with CoreDNS's sections) and `tests.rs`. [`all`] is the list the binary
//! registers; `plugin.cfg` decides their order in a chain.

pub mod any;
pub mod autopath;
pub mod bind;
pub mod bufsize;
pub mod cache;
pub mod chaos;
pub mod debug;
pub mod errors;
pub mod forward;
pub mod header;
pub mod health;
pub mod hosts;
pub mod kubernetes;
pub mod loadbalance;
pub mod local;
pub mod log;
pub mod r#loop;
pub mod minimal;
pub mod nsid;
pub mod prometheus;
pub mod ready;
pub mod reload;
pub mod whoami;

#[cfg(test)]
pub(crate) mod testutil;

use kdns_corefile::{Dispenser, Error};
use kdns_server::plugin::SetupFn;
use kdns_server::PluginDef;

/// The optional single `[ADDRESS]` argument of `health`, `ready` and `prometheus`: checked to
/// resolve at setup, so a typo fails the load instead of the listener.
pub(crate) fn listen_address(plugin: &str, d: &Dispenser<'_>, default: &str) -> Result<String, Error> {
    let args = d.args();
    if args.len() > 1 {
        return Err(d.arg_err(args[1]));
    }
    let addr = args.first().map_or(default.to_string(), |t| t.text.clone());
    kdns_server::admin::resolve(&addr)
        .map_err(|e| Error::at(args.first().copied().unwrap_or(d.name()), format!("plugin/{plugin}: {e}")))?;
    Ok(addr)
}

/// Every plugin compiled into this build.
pub fn all() -> Vec<PluginDef> {
    let defs: [(&'static str, SetupFn); 23] = [
        ("any", any::setup),
        ("autopath", autopath::setup),
        ("bind", bind::setup),
        ("bufsize", bufsize::setup),
        ("cache", cache::setup),
        ("chaos", chaos::setup),
        ("debug", debug::setup),
        ("errors", errors::setup),
        ("forward", forward::setup),
        ("header", header::setup),
        ("health", health::setup),
        ("hosts", hosts::setup),
        ("kubernetes", kubernetes::setup),
        ("loadbalance", loadbalance::setup),
        ("local", local::setup),
        ("log", log::setup),
        ("loop", r#loop::setup),
        ("minimal", minimal::setup),
        ("nsid", nsid::setup),
        ("prometheus", prometheus::setup),
        ("ready", ready::setup),
        ("reload", reload::setup),
        ("whoami", whoami::setup),
    ];
    defs.into_iter().map(|(name, setup)| PluginDef { name, setup }).collect()
}
