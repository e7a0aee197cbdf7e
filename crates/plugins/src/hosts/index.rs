//! The hosts table: parsed entries indexed by name (per family) and by address.

use kdns_corefile::address::normalize_zone;
use kdns_wire::Name;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Default, Debug)]
pub struct Index {
    v4: HashMap<String, Vec<Ipv4Addr>>,
    v6: HashMap<String, Vec<Ipv6Addr>>,
    by_addr: HashMap<IpAddr, Vec<String>>,
    entries: usize,
}

impl Index {
    pub fn from_entries<'a>(lists: impl IntoIterator<Item = &'a [(IpAddr, Vec<String>)]>) -> Index {
        let mut ix = Index::default();
        for list in lists {
            for (ip, names) in list {
                ix.entries += 1;
                for n in names {
                    match ip {
                        IpAddr::V4(v4) => push_unique(ix.v4.entry(n.clone()).or_default(), *v4),
                        IpAddr::V6(v6) => push_unique(ix.v6.entry(n.clone()).or_default(), *v6),
                    }
                    push_unique(ix.by_addr.entry(*ip).or_default(), n.clone());
                }
            }
        }
        ix
    }
    pub fn v4(&self, name: &str) -> &[Ipv4Addr] {
        self.v4.get(name).map_or(&[], Vec::as_slice)
    }
    pub fn v6(&self, name: &str) -> &[Ipv6Addr] {
        self.v6.get(name).map_or(&[], Vec::as_slice)
    }
    pub fn has_name(&self, name: &str) -> bool {
        self.v4.contains_key(name) || self.v6.contains_key(name)
    }
    pub fn names_for(&self, ip: IpAddr) -> Vec<String> {
        self.by_addr.get(&ip).cloned().unwrap_or_default()
    }
    pub fn len(&self) -> usize {
        self.entries
    }
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }
}

fn push_unique<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        v.push(x);
    }
}

/// Parses hosts-file text: `IP NAME [NAME...]`, `#` comments; bad lines are skipped.
pub fn parse_hosts(text: &str) -> Vec<(IpAddr, Vec<String>)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut fields = line.split_whitespace();
        let Some(ip) = fields.next() else { continue };
        let Some(ip) = parse_ip(ip) else { continue };
        let names: Vec<String> = fields.filter(|n| Name::from_ascii(n).is_ok()).map(normalize_zone).collect();
        if !names.is_empty() {
            out.push((ip, names));
        }
    }
    out
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    // IPv6 zone ids (fe80::1%eth0) are not usable in DNS answers; drop the zone.
    s.split('%').next()?.parse().ok()
}

/// The address a reverse name stands for (`4.3.2.1.in-addr.arpa.` → 1.2.3.4), if complete.
pub fn reverse_to_ip(name: &Name) -> Option<IpAddr> {
    let labels: Vec<&[u8]> = name.labels().collect();
    let lower: Vec<String> = labels.iter().map(|l| String::from_utf8_lossy(l).to_ascii_lowercase()).collect();
    match lower.as_slice() {
        [a, b, c, d, arpa, top] if arpa == "in-addr" && top == "arpa" => {
            let o: Vec<u8> = [d, c, b, a].iter().map(|s| s.parse::<u8>().ok()).collect::<Option<_>>()?;
            Some(IpAddr::V4(Ipv4Addr::new(o[0], o[1], o[2], o[3])))
        }
        l if l.len() == 34 && l[32] == "ip6" && l[33] == "arpa" => {
            let mut v: u128 = 0;
            for nib in l[..32].iter().rev() {
                let d = u8::from_str_radix(nib, 16).ok().filter(|_| nib.len() == 1)?;
                v = (v << 4) | d as u128;
            }
            Some(IpAddr::V6(Ipv6Addr::from(v)))
        }
        _ => None,
    }
}
