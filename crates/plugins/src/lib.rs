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

use kdns_server::PluginDef;

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
