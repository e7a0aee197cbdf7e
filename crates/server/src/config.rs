//! From a parsed Corefile to a runnable instance: plugin chains in `plugin.cfg` order, server
//! blocks grouped by listen address, and the zone tables the listeners route with.

use crate::metrics::ZoneStats;
use crate::plugin::{Contributions, Plugin, PluginDef, SetupCtx};
use kdns_corefile::{parse_key, Corefile, Directive, Error, Token};
use kdns_wire::Name;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

/// `plugin.cfg` of this build: the CoreDNS v1.14 execution order.
pub const PLUGIN_CFG: &str = include_str!("../../../plugin.cfg");

/// Plugin names in execution order.
pub fn plugin_order() -> Vec<&'static str> {
    PLUGIN_CFG
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split(':').next())
        .collect()
}

/// One server block's chain, shared by all its zones and listeners.
pub struct Block {
    pub zones: Vec<String>,
    pub plugins: Vec<Arc<dyn Plugin>>,
    pub debug: bool,
    /// `bufsize`: the largest EDNS UDP size a request keeps on its way through this chain.
    pub bufsize: Option<u16>,
    /// What `Request::start` reads (a manual clock in tests).
    pub clock: crate::clock::Clock,
}

/// Where a group of server blocks listens: an address (None = all) and a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ListenerKey {
    pub ip: Option<IpAddr>,
    pub port: u16,
}

impl ListenerKey {
    /// CoreDNS's `server` label: `dns://:53`, `dns://127.0.0.1:53`, `dns://[::1]:53`.
    pub fn label(&self) -> String {
        match self.ip {
            None => format!("dns://:{}", self.port),
            Some(IpAddr::V4(ip)) => format!("dns://{ip}:{}", self.port),
            Some(IpAddr::V6(ip)) => format!("dns://[{ip}]:{}", self.port),
        }
    }
}

/// One zone served on one listener.
pub struct ZoneEntry {
    pub zone: String,
    pub block: Arc<Block>,
    pub stats: Arc<ZoneStats>,
}

/// Lower-cased wire zone → entry.
/// Zone name (wire form) → entry. Keys come from the Corefile, so a fast non-keyed hash is safe;
/// routing hashes every suffix of every query name.
type Zones = HashMap<Vec<u8>, ZoneEntry, rustc_hash::FxBuildHasher>;

/// The zones one listener serves.
pub struct ZoneTable {
    zones: Zones,
    /// Metrics for queries refused before any block (zone label `dropped`).
    pub dropped: Arc<ZoneStats>,
    /// A block on this listener has a plugin that answers any class (`chaos`, `forward`):
    /// classes other than IN reach the chain
    /// (CoreDNS's `classChaos`); otherwise they are refused.
    pub chaos: bool,
}

impl ZoneTable {
    /// Longest-suffix match of `qname`; DS queries keep going up to find a parent zone.
    pub fn route(&self, qname: &Name, is_ds: bool) -> Option<&ZoneEntry> {
        let mut lower = [0u8; 256];
        let wire = qname.as_wire();
        let lower = &mut lower[..wire.len()];
        for (d, s) in lower.iter_mut().zip(wire) {
            *d = s.to_ascii_lowercase();
        }
        let mut ds_match = None;
        let mut pos = 0;
        while pos < lower.len() && lower[pos] != 0 {
            if let Some(entry) = self.zones.get(&lower[pos..]) {
                if !is_ds {
                    return Some(entry);
                }
                ds_match = Some(entry);
            }
            pos += lower[pos] as usize + 1;
        }
        if ds_match.is_some() {
            return ds_match;
        }
        self.zones.get(&[0u8][..])
    }
}

pub struct Instance {
    pub listeners: BTreeMap<ListenerKey, Arc<ZoneTable>>,
    pub contrib: Contributions,
    /// (server label, zone, plugin name) for `coredns_plugin_enabled`.
    pub enabled: Vec<(String, String, &'static str)>,
    /// Lines printed at startup (`.:53`, `example.org.:53 on 127.0.0.1`).
    pub banner: Vec<String>,
}

/// How [`build_with`] differs from a production build (tests).
#[derive(Clone, Default)]
pub struct BuildOptions {
    /// The clock every chain and plugin reads.
    pub clock: crate::clock::Clock,
    /// A plugin put at the end of every chain (a test's scripted "next" plugin).
    pub tail: Option<Arc<dyn Plugin>>,
}

/// Builds every block's chain and the listener tables. Nothing is bound here.
pub fn build(corefile: &Corefile, defs: &[PluginDef], default_port: u16, config_dir: &Path) -> Result<Instance, Error> {
    build_with(corefile, defs, default_port, config_dir, &BuildOptions::default())
}

/// [`build`] with a clock and a tail plugin of the caller's.
pub fn build_with(
    corefile: &Corefile,
    defs: &[PluginDef],
    default_port: u16,
    config_dir: &Path,
    opts: &BuildOptions,
) -> Result<Instance, Error> {
    let order = plugin_order();
    let mut contrib = Contributions::default();
    let mut listeners: BTreeMap<ListenerKey, Zones> = BTreeMap::new();
    let mut enabled = Vec::new();
    let mut banner = Vec::new();
    if corefile.blocks.is_empty() {
        return Err(Error { file: "Corefile".into(), line: 0, message: "no server blocks".into() });
    }
    for block in &corefile.blocks {
        let mut zones: Vec<(String, u16, &Token)> = Vec::new();
        for key in &block.keys {
            let addr = parse_key(&key.text).map_err(|m| Error::at(key, m))?;
            for z in addr.zones {
                zones.push((z, addr.port.unwrap_or(default_port), key));
            }
        }
        let mut by_name: BTreeMap<&str, Vec<&Directive>> = BTreeMap::new();
        for d in &block.directives {
            if d.name.quoted || !order.contains(&d.name.text.as_str()) {
                return Err(Error::at(&d.name, format!("Unknown directive '{}'", d.name.text)));
            }
            if !defs.iter().any(|p| p.name == d.name.text) {
                return Err(Error::at(
                    &d.name,
                    format!(
                        "plugin '{}' is not built into this kdns yet; remove it or use a build that has it",
                        d.name.text
                    ),
                ));
            }
            by_name.entry(d.name.text.as_str()).or_default().push(d);
        }
        let zone_names: Vec<String> = zones.iter().map(|z| z.0.clone()).collect();
        let mut ctx = SetupCtx {
            zones: &zone_names,
            config_dir,
            listen: Vec::new(),
            debug: false,
            bufsize: None,
            links: Default::default(),
            port: zones.first().map_or(default_port, |z| z.1),
            clock: opts.clock.clone(),
            contrib: &mut contrib,
        };
        let mut plugins: Vec<Arc<dyn Plugin>> = Vec::new();
        for name in &order {
            let Some(ds) = by_name.get(name) else {
                continue;
            };
            let def = defs.iter().find(|p| p.name == *name).expect("checked above");
            if let Some(p) = (def.setup)(&mut ctx, ds)? {
                plugins.push(p);
            }
        }
        let listen = std::mem::take(&mut ctx.listen);
        let (debug, bufsize) = (ctx.debug, ctx.bufsize);
        plugins.extend(opts.tail.clone());
        let chain = Arc::new(Block { zones: zone_names.clone(), plugins, debug, bufsize, clock: opts.clock.clone() });
        let hosts: Vec<Option<IpAddr>> =
            if listen.is_empty() { vec![None] } else { listen.into_iter().map(Some).collect() };
        for (zone, port, key) in &zones {
            for host in &hosts {
                let lk = ListenerKey { ip: *host, port: *port };
                let wire = Name::from_ascii(zone).map_err(|e| Error::at(key, format!("bad zone {zone}: {e}")))?;
                let table = listeners.entry(lk).or_default();
                let k = wire.to_lowercase().as_wire().to_vec();
                if table.contains_key(&k) {
                    let at = host.map(|h| format!(" on {h}")).unwrap_or_default();
                    return Err(Error::at(
                        key,
                        format!("cannot serve dns://{zone}:{port}{at} - it is already defined"),
                    ));
                }
                let stats = Arc::new(ZoneStats::new(&lk.label(), zone));
                table.insert(k, ZoneEntry { zone: zone.clone(), block: chain.clone(), stats });
                for p in &chain.plugins {
                    enabled.push((lk.label(), zone.clone(), p.name()));
                }
                if !preferred_syntax(zone) {
                    banner.push(format!("Warning: Domain {zone:?} does not follow RFC1035 preferred syntax"));
                }
                banner.push(match host {
                    None => format!("{zone}:{port}"),
                    Some(h) => format!("{zone}:{port} on {h}"),
                });
            }
        }
    }
    let listeners = listeners
        .into_iter()
        .map(|(k, zones)| {
            let dropped = Arc::new(ZoneStats::new(&k.label(), "dropped"));
            // CoreDNS's `EnableChaos`: a plugin answering any class anywhere on the listener.
            let chaos = zones.values().any(|e| e.block.plugins.iter().any(|p| p.answers_any_class()));
            (k, Arc::new(ZoneTable { zones, dropped, chaos }))
        })
        .collect();
    Ok(Instance { listeners, contrib, enabled, banner })
}

/// CoreDNS's startup check of a zone against RFC 1035's preferred name syntax (letters, digits
/// and inner hyphens, a letter first); the root and reverse zones pass.
fn preferred_syntax(zone: &str) -> bool {
    let lower = zone.to_ascii_lowercase();
    if zone == "." || lower.ends_with("in-addr.arpa.") || lower.ends_with("ip6.arpa.") {
        return true;
    }
    let Some(body) = zone.strip_suffix('.') else { return false };
    !body.is_empty()
        && body.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphabetic()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        })
}

#[cfg(test)]
mod preferred_syntax_tests {
    #[test]
    fn rfc1035_preferred_syntax_as_coredns_checks_it() {
        for ok in [".", "cluster.local.", "a.", "a-1.b2.", "10.in-addr.arpa.", "0.0.ip6.arpa."] {
            assert!(super::preferred_syntax(ok), "{ok}");
        }
        for bad in ["}.", "_tcp.service.", "-leadingdash.com.", "1abc.", "a-.", "invalid-zone"] {
            assert!(!super::preferred_syntax(bad), "{bad}");
        }
    }
}
