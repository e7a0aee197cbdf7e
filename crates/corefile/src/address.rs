//! Server-block keys: `[SCHEME://]ZONE[:PORT]`, with CIDR keys expanded to reverse zones.

use std::net::IpAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    Dns,
}

impl Scheme {
    pub fn as_str(&self) -> &'static str {
        match self {
            Scheme::Dns => "dns",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    pub scheme: Scheme,
    /// Lower-cased, fully qualified zones; several when a CIDR key expands.
    pub zones: Vec<String>,
    /// Port written in the key; `None` means the default (`-dns.port`, else 53).
    pub port: Option<u16>,
}

/// Parses one server-block key.
pub fn parse_key(key: &str) -> Result<Address, String> {
    if let Some(c) = key.chars().find(|c| c.is_control()) {
        return Err(format!("invalid server block key {key:?}: control character {:?}", c));
    }
    let (scheme, rest) = match key.find("://") {
        Some(i) => (&key[..i], &key[i + 3..]),
        None => ("dns", key),
    };
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "dns" => Scheme::Dns,
        s @ ("tls" | "quic" | "grpc" | "https" | "https3") => {
            return Err(format!("scheme \"{s}://\" is not supported by this kdns build (only dns://)"))
        }
        s => return Err(format!("unknown scheme \"{s}://\" in {key:?}")),
    };
    let (host, port) = split_port(rest)?;
    if host.len() > 255 {
        return Err(format!("specified zone is too long: {} > 255", host.len()));
    }
    let zones = match parse_cidr(host) {
        Some((ip, prefix)) => reverse_zones(ip, prefix),
        None => {
            if !is_domain_name(host) {
                return Err(format!("zone is not a valid domain name: {host}"));
            }
            vec![normalize_zone(host)]
        }
    };
    Ok(Address { scheme, zones, port })
}

/// As CoreDNS: the text after the last colon is a port only when it is a number.
fn split_port(s: &str) -> Result<(&str, Option<u16>), String> {
    match s.rfind(':') {
        Some(i) if i == s.len() - 1 => Err(format!("expecting data after last colon: {s:?}")),
        Some(i) => match s[i + 1..].parse::<u32>() {
            Ok(p) if p <= 65535 => Ok((&s[..i], Some(p as u16))),
            Ok(p) => Err(format!("port {p} out of range")),
            Err(_) => Ok((s, None)),
        },
        None => Ok((s, None)),
    }
}

pub fn normalize_zone(z: &str) -> String {
    let mut z = z.to_ascii_lowercase();
    if z.is_empty() {
        return ".".into();
    }
    if !z.ends_with('.') {
        z.push('.');
    }
    z
}

fn is_domain_name(s: &str) -> bool {
    if s.is_empty() || s == "." {
        return true;
    }
    let trimmed = s.strip_suffix('.').unwrap_or(s);
    !trimmed.is_empty() && trimmed.split('.').all(|l| !l.is_empty() && l.len() <= 63)
}

fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (ip, prefix) = s.split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    let prefix: u8 = prefix.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (prefix <= max).then_some((ip, prefix))
}

/// Reverse zones for a CIDR: the prefix is rounded up to the next octet (IPv4) or nibble (IPv6)
/// boundary and every network of that size inside the CIDR gets its own zone.
pub fn reverse_zones(ip: IpAddr, prefix: u8) -> Vec<String> {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let rounded = prefix.div_ceil(8) * 8;
            let base = if prefix == 0 { 0 } else { bits & (u32::MAX << (32 - prefix)) };
            let count = 1u32 << (rounded - prefix);
            (0..count)
                .map(|i| {
                    let net = if rounded == 0 { 0 } else { base + (i << (32 - rounded as u32)) };
                    let octets = net.to_be_bytes();
                    let mut zone = String::new();
                    for o in octets[..(rounded / 8) as usize].iter().rev() {
                        zone.push_str(&format!("{o}."));
                    }
                    zone.push_str("in-addr.arpa.");
                    zone
                })
                .collect()
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let rounded = prefix.div_ceil(4) * 4;
            let base = if prefix == 0 { 0 } else { bits & (u128::MAX << (128 - prefix)) };
            let count = 1u128 << (rounded - prefix);
            (0..count)
                .map(|i| {
                    let net = if rounded == 0 { 0 } else { base + (i << (128 - rounded as u32)) };
                    let mut zone = String::new();
                    for n in (0..rounded / 4).rev() {
                        let nibble = (net >> (124 - 4 * n as u32)) & 0xF;
                        zone.push_str(&format!("{nibble:x}."));
                    }
                    zone.push_str("ip6.arpa.");
                    zone
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        let a = parse_key(".:53").unwrap();
        assert_eq!((a.zones, a.port), (vec![".".to_string()], Some(53)));
        let a = parse_key("Example.ORG").unwrap();
        assert_eq!((a.zones, a.port), (vec!["example.org.".to_string()], None));
        let a = parse_key("dns://example.org:1053").unwrap();
        assert_eq!(a.port, Some(1053));
        assert!(parse_key("tls://example.org").unwrap_err().contains("not supported"));
        assert!(parse_key("example.org:").is_err());
        assert!(parse_key("a..b").is_err());
    }

    #[test]
    fn cidr_keys() {
        assert_eq!(parse_key("10.0.0.0/24").unwrap().zones, vec!["0.0.10.in-addr.arpa."]);
        let z = parse_key("10.0.0.0/17:53").unwrap();
        assert_eq!(z.zones.len(), 128);
        assert_eq!(z.zones[0], "0.0.10.in-addr.arpa.");
        assert_eq!(z.zones[127], "127.0.10.in-addr.arpa.");
        assert_eq!(parse_key("10.0.0.0/27").unwrap().zones.len(), 32);
        assert_eq!(parse_key("10.0.0.0/8").unwrap().zones, vec!["10.in-addr.arpa."]);
        assert_eq!(parse_key("0.0.0.0/0").unwrap().zones, vec!["in-addr.arpa."]);
        assert_eq!(parse_key("fd00::/8").unwrap().zones, vec!["d.f.ip6.arpa."]);
        let v6 = parse_key("fd00::/6").unwrap().zones;
        assert_eq!(v6.len(), 4);
        assert_eq!(v6[0], "c.f.ip6.arpa.");
        assert_eq!(parse_key("2001:db8::/32").unwrap().zones, vec!["8.b.d.0.1.0.0.2.ip6.arpa."]);
    }
}
