//! Zones a plugin serves and `fallthrough` (CoreDNS's `plugin.Host` normalization and
//! `plugin/pkg/fall`).

use kdns_corefile::{address::normalize_zone, Error, Token};
use kdns_wire::Name;

/// Zone arguments as names (normalized: lower case, trailing dot).
pub fn zone_names(plugin: &str, zones: &[&Token]) -> Result<Vec<Name>, Error> {
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
pub fn plugin_zones(plugin: &str, args: &[&Token], block: &[String], at: &Token) -> Result<Vec<Name>, Error> {
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
