//! `kdns-plugins` owns the Corefile plugins, one directory each as in CoreDNS's `plugin/<name>/`:
//! `mod.rs` (handler), `setup.rs` (parse and validate the directive), `README.md` (the user
//! documentation with CoreDNS's sections) and `tests.rs`. [`all`] is the list the binary
//! registers; `plugin.cfg` decides their order in a chain.

pub mod any;
pub mod bind;
pub mod debug;
pub mod errors;
pub mod health;
pub mod hosts;
pub mod loadbalance;
pub mod log;
pub mod prometheus;
pub mod ready;
pub mod reload;
pub mod whoami;

#[cfg(test)]
pub(crate) mod testutil;

use kdns_corefile::{Dispenser, Error};
use kdns_server::PluginDef;

/// The optional single `[ADDRESS]` argument of `health`, `ready` and `prometheus`: checked to
/// resolve at setup, so a typo fails the load instead of the listener.
pub(crate) fn listen_address(
    plugin: &str,
    d: &Dispenser<'_>,
    default: &str,
) -> Result<String, Error> {
    let args = d.args();
    if args.len() > 1 {
        return Err(d.arg_err(args[1]));
    }
    let addr = args.first().map_or(default.to_string(), |t| t.text.clone());
    kdns_server::admin::resolve(&addr).map_err(|e| {
        Error::at(
            args.first().copied().unwrap_or(d.name()),
            format!("plugin/{plugin}: {e}"),
        )
    })?;
    Ok(addr)
}

/// Every plugin compiled into this build.
pub fn all() -> Vec<PluginDef> {
    vec![
        PluginDef {
            name: "any",
            setup: any::setup,
        },
        PluginDef {
            name: "bind",
            setup: bind::setup,
        },
        PluginDef {
            name: "debug",
            setup: debug::setup,
        },
        PluginDef {
            name: "errors",
            setup: errors::setup,
        },
        PluginDef {
            name: "health",
            setup: health::setup,
        },
        PluginDef {
            name: "hosts",
            setup: hosts::setup,
        },
        PluginDef {
            name: "loadbalance",
            setup: loadbalance::setup,
        },
        PluginDef {
            name: "log",
            setup: log::setup,
        },
        PluginDef {
            name: "prometheus",
            setup: prometheus::setup,
        },
        PluginDef {
            name: "ready",
            setup: ready::setup,
        },
        PluginDef {
            name: "reload",
            setup: reload::setup,
        },
        PluginDef {
            name: "whoami",
            setup: whoami::setup,
        },
    ]
}
