//! `kdns-plugins` owns the Corefile plugins, one directory each as in CoreDNS's `plugin/<name>/`:
//! `mod.rs` (handler), `setup.rs` (parse and validate the directive), `README.md` (the user
//! documentation with CoreDNS's sections) and `tests.rs`. [`all`] is the list the binary
//! registers; `plugin.cfg` decides their order in a chain.

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
pub mod prometheus;
pub mod ready;
pub mod reload;
pub mod rewrite;
pub mod template;
pub mod whoami;

#[cfg(test)]
pub(crate) mod testutil;

use kdns_corefile::{address::normalize_zone, Dispenser, Error, Token};
use kdns_server::plugin::SetupFn;
use kdns_server::PluginDef;
use kdns_wire::Name;

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

/// Zone arguments as names (normalized: lower case, trailing dot).
pub(crate) fn zone_names(plugin: &str, zones: &[&Token]) -> Result<Vec<Name>, Error> {
    zones
        .iter()
        .map(|t| {
            let z = normalize_zone(&t.text);
            Name::from_ascii(&z).map_err(|e| Error::at(t, format!("plugin/{plugin}: bad zone {z:?}: {e}")))
        })
        .collect()
}

/// The zones a plugin serves: its zone arguments or, when there are none, the block's zones;
/// lower case either way (both are normalized by the Corefile parser).
pub(crate) fn plugin_zones(plugin: &str, args: &[&Token], block: &[String], at: &Token) -> Result<Vec<Name>, Error> {
    if !args.is_empty() {
        return zone_names(plugin, args);
    }
    block
        .iter()
        .map(|z| Name::from_ascii(z).map_err(|e| Error::at(at, format!("plugin/{plugin}: bad zone {z:?}: {e}"))))
        .collect()
}

/// CoreDNS's `fallthrough [ZONES...]`: off, on for every name (no zones), or for names in ZONES.
#[derive(Clone, Debug, Default)]
pub struct Fallthrough(Option<Vec<Name>>);

impl Fallthrough {
    pub fn parse(plugin: &str, zones: &[&Token]) -> Result<Fallthrough, Error> {
        Ok(Fallthrough(Some(zone_names(plugin, zones)?)))
    }

    pub fn through(&self, qname: &Name) -> bool {
        match &self.0 {
            None => false,
            Some(zones) => zones.is_empty() || zones.iter().any(|z| qname.is_subdomain_of(z)),
        }
    }
}

/// A CNAME target outside the answering plugin's zones: asked of the plugins after it (CoreDNS
/// asks its whole server again; with the usual Corefiles both reach `forward`) and the answers
/// appended after the CNAME. Nothing is added when that lookup wrote no reply.
pub(crate) async fn append_resolved(
    m: &mut kdns_wire::Message,
    target: Name,
    qtype: u16,
    rest: kdns_server::plugin::Rest,
) {
    let query = kdns_wire::Message {
        id: m.id,
        flags: kdns_wire::flag::RD,
        questions: vec![kdns_wire::Question { name: target, qtype, qclass: kdns_wire::class::IN }],
        ..kdns_wire::Message::default()
    };
    let reply = rest.run(query).await;
    if reply.written {
        m.answers.extend(reply.as_message().answers.iter().cloned());
    }
}

/// Replies with `m` from `plugin`; when the answer ends in a CNAME leaving the plugin's zones
/// (`chase`: target and type), the target is first resolved by the rest of the chain.
pub(crate) fn reply_resolving(
    req: &kdns_server::Request<'_>,
    mut m: kdns_wire::Message,
    chase: Option<(Name, u16)>,
    plugin: &'static str,
) -> kdns_server::plugin::Step {
    use kdns_server::plugin::{Reply, Step};
    match (chase, req.rest()) {
        (Some((target, qtype)), Some(rest)) => Step::Pending(Box::pin(async move {
            append_resolved(&mut m, target, qtype, rest).await;
            Reply::message(m, plugin)
        })),
        _ => Step::Reply(Reply::message(m, plugin)),
    }
}

/// The `search` domains of a resolv.conf file.
pub(crate) fn resolv_search(path: &std::path::Path) -> std::io::Result<Vec<Name>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("search"))
        .flat_map(|r| r.split_whitespace())
        .filter_map(|d| Name::from_ascii(d).ok())
        .collect())
}

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
