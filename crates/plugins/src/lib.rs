//! `kdns-plugins` owns the Corefile plugins, one directory each as in CoreDNS's `plugin/<name>/`:
//! `mod.rs` (handler), `setup.rs` (parse and validate the directive), `README.md` (the user
//! documentation with CoreDNS's sections) and `tests.rs`. What several plugins share lives in
//! [`pkg`] (CoreDNS's `plugin/pkg/*`), never in another plugin. This file is the registry:
//! [`all`] is the list the binary registers; `plugin.cfg` decides their order in a chain.

pub mod acl;
pub mod any;
pub mod autopath;
pub mod bind;
pub mod bufsize;
pub mod cache;
pub mod chaos;
pub mod debug;
pub mod errors;
pub mod etcd;
pub mod file;
pub mod forward;
pub mod header;
pub mod health;
pub mod hosts;
pub mod k8s_external;
pub mod kubernetes;
pub mod loadbalance;
pub mod local;
pub mod log;
pub mod r#loop;
pub mod minimal;
pub mod nsid;
pub mod pkg;
pub mod prometheus;
pub mod ready;
pub mod reload;
pub mod rewrite;
pub mod template;
pub mod whoami;

#[cfg(test)]
pub(crate) mod testutil;

use kdns_server::plugin::SetupFn;
use kdns_server::PluginDef;

/// Every plugin compiled into this build.
pub fn all() -> Vec<PluginDef> {
    let defs: [(&'static str, SetupFn); 29] = [
        ("acl", acl::setup),
        ("rewrite", rewrite::setup),
        ("template", template::setup),
        ("any", any::setup),
        ("autopath", autopath::setup),
        ("bind", bind::setup),
        ("bufsize", bufsize::setup),
        ("cache", cache::setup),
        ("chaos", chaos::setup),
        ("debug", debug::setup),
        ("errors", errors::setup),
        ("etcd", etcd::setup),
        ("file", file::setup),
        ("forward", forward::setup),
        ("header", header::setup),
        ("health", health::setup),
        ("hosts", hosts::setup),
        ("k8s_external", k8s_external::setup),
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
