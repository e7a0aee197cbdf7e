//! Corefile templating as node-cache does it at run time: the `__PILLAR__*` placeholders left
//! by the installer, the kube-dns ConfigMap (`stubDomains`, `upstreamNameservers`) and the
//! directory pollers' fingerprints. Pure text in, text out; the caller validates the result
//! before it replaces the live Corefile.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

pub const UPSTREAM_SERVERS: &str = "__PILLAR__UPSTREAM__SERVERS__";
pub const CLUSTER_DNS: &str = "__PILLAR__CLUSTER__DNS__";
pub const LOCAL_DNS: &str = "__PILLAR__LOCAL__DNS__";
pub const DNS_SERVER: &str = "__PILLAR__DNS__SERVER__";
pub const PROMETHEUS_ENDPOINT: &str = "__PROMETHEUS__ENDPOINT__";

/// The parts of the legacy kube-dns ConfigMap node-cache uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KubeDnsConfig {
    /// Domain → servers (`IP` or `IP:port`), sorted by domain so the Corefile is stable.
    pub stub_domains: BTreeMap<String, Vec<String>>,
    pub upstream_nameservers: Vec<String>,
}

/// A directory as the ConfigMap volume shows it: regular entries (symlinks followed), dot-files
/// (`..data`, `..2024_…`) skipped, UTF-8 required.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirSnapshot {
    pub files: BTreeMap<String, String>,
    /// SHA-256 over `name\0content\0` of every file, as node-cache versions a directory.
    pub version: String,
}

pub fn read_dir(dir: &Path) -> Result<DirSnapshot, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files = BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let text = String::from_utf8(bytes).map_err(|_| format!("{}: not valid UTF-8", path.display()))?;
        files.insert(name, text);
    }
    let mut h = Sha256::new();
    for (name, text) in &files {
        h.update(name.as_bytes());
        h.update([0]);
        h.update(text.as_bytes());
        h.update([0]);
    }
    let version = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(DirSnapshot { files, version })
}

impl KubeDnsConfig {
    /// Parses and validates the ConfigMap keys; `federations` is accepted and ignored, as in
    /// node-cache.
    pub fn from_files(files: &BTreeMap<String, String>) -> Result<KubeDnsConfig, String> {
        let mut cfg = KubeDnsConfig::default();
        if let Some(text) = files.get("stubDomains").filter(|t| !t.trim().is_empty()) {
            let map: BTreeMap<String, Vec<String>> =
                serde_json::from_str(text).map_err(|e| format!("stubDomains: invalid JSON map of lists: {e}"))?;
            for (domain, servers) in map {
                let domain = domain.trim_end_matches('.').to_string();
                if !is_dns1123_subdomain(&domain) {
                    return Err(format!("stubDomains: invalid domain {domain:?} (must be a DNS-1123 subdomain)"));
                }
                if servers.is_empty() {
                    return Err(format!("stubDomains: {domain:?} has no servers"));
                }
                for s in &servers {
                    check_nameserver(s).map_err(|e| format!("stubDomains: {domain}: {e}"))?;
                }
                cfg.stub_domains.insert(domain, servers);
            }
        }
        if let Some(text) = files.get("upstreamNameservers").filter(|t| !t.trim().is_empty()) {
            let list: Vec<String> =
                serde_json::from_str(text).map_err(|e| format!("upstreamNameservers: invalid JSON list: {e}"))?;
            if list.len() > 3 {
                return Err(format!("upstreamNameservers: {} servers, at most 3 are allowed", list.len()));
            }
            for s in &list {
                check_nameserver(s).map_err(|e| format!("upstreamNameservers: {e}"))?;
            }
            cfg.upstream_nameservers = list;
        }
        if let Some(text) = files.get("federations").filter(|t| !t.trim().is_empty()) {
            serde_json::from_str::<BTreeMap<String, String>>(text)
                .map_err(|e| format!("federations: invalid JSON map: {e}"))?;
        }
        Ok(cfg)
    }
}

fn check_nameserver(s: &str) -> Result<(), String> {
    let bare = s.strip_prefix("dns://").unwrap_or(s);
    if bare.parse::<IpAddr>().is_ok() || bare.parse::<SocketAddr>().is_ok() {
        return Ok(());
    }
    Err(format!("invalid nameserver {s:?} (an IP address with an optional :port)"))
}

fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// What the placeholders become.
pub struct Vars<'a> {
    /// Space-separated local IPs (`bind` arguments).
    pub local_ips: &'a str,
    pub dns_port: u16,
    /// The upstream Service's cluster IP from its environment variable; `Err` carries the
    /// variable's name when it is not set or not an IP.
    pub cluster_dns: Result<IpAddr, String>,
    pub prometheus_endpoint: &'a str,
}

/// Renders the live Corefile from the template and the kube-dns config.
pub fn render(template: &str, vars: &Vars, kubedns: &KubeDnsConfig) -> Result<String, String> {
    let mut text = template.to_string();
    if kubedns.upstream_nameservers.is_empty() {
        text = text.replace(UPSTREAM_SERVERS, "/etc/resolv.conf");
    } else {
        let servers = kubedns.upstream_nameservers.join(" ");
        // Custom upstreams are reached over UDP: a `force_tcp` block around the placeholder is
        // turned into a plain forward, then any placeholder left is filled in.
        text = replace_tcp_upstream_block(&text, &servers);
        text = text.replace(UPSTREAM_SERVERS, &servers);
    }
    if text.contains(CLUSTER_DNS) {
        match &vars.cluster_dns {
            Ok(ip) => text = text.replace(CLUSTER_DNS, &ip.to_string()),
            Err(var) => {
                return Err(format!(
                    "the template uses {CLUSTER_DNS} but {var} is not set to an IP address (the upstream Service must exist before the pod starts, with enableServiceLinks on)"
                ))
            }
        }
    }
    text = text.replace(LOCAL_DNS, vars.local_ips);
    text = text.replace(DNS_SERVER, "");
    text = text.replace(PROMETHEUS_ENDPOINT, vars.prometheus_endpoint);
    for (domain, servers) in &kubedns.stub_domains {
        text.push_str(&format!(
            "\n{domain}:{port} {{\n    errors\n    cache 30\n    bind {ips}\n    forward . {servers}\n}}\n",
            port = vars.dns_port,
            ips = vars.local_ips,
            servers = servers.join(" "),
        ));
    }
    Ok(text)
}

/// `-searchexpansion`: `autopath @podsource` at the top of every server block for the cluster
/// domain (`cluster.local:53 {`), where the names of a pod's search walk arrive. autopath runs
/// before `cache` (plugin.cfg order), so the walk's names are cached like any other.
pub fn with_search_expansion(text: &str, cluster_domain: &str) -> String {
    let domain = cluster_domain.trim_end_matches('.');
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.split_inclusive('\n') {
        out.push_str(line);
        let head = line.trim();
        let Some(keys) = head.strip_suffix('{') else { continue };
        let opens_cluster_block = keys.split_whitespace().any(|key| {
            let zone = key.split("://").last().unwrap_or(key);
            let zone = zone.rsplit_once(':').map_or(zone, |(z, _)| z);
            zone.trim_end_matches('.').eq_ignore_ascii_case(domain)
        });
        if opens_cluster_block {
            if !line.ends_with('\n') {
                out.push('\n');
            }
            out.push_str("    autopath @podsource\n");
        }
    }
    out
}

/// `forward . __PILLAR__UPSTREAM__SERVERS__ { force_tcp }` (any whitespace) → `forward . SERVERS`.
fn replace_tcp_upstream_block(text: &str, servers: &str) -> String {
    let head = format!("forward . {UPSTREAM_SERVERS}");
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find(&head) {
        let after = &rest[pos + head.len()..];
        let tokens: Vec<&str> = after.split_whitespace().take(3).collect();
        if tokens == ["{", "force_tcp", "}"] {
            let brace = after.find('}').map(|i| i + 1).unwrap_or(0);
            out.push_str(&rest[..pos]);
            out.push_str(&format!("forward . {servers}"));
            rest = &after[brace..];
        } else {
            out.push_str(&rest[..pos + head.len()]);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_expansion_goes_into_the_cluster_domain_blocks_only() {
        let text = "cluster.local:53 {\n    errors\n}\nin-addr.arpa:53 {\n    errors\n}\ndns://Cluster.Local. {\n}\n.:53 {\n}\n";
        let out = with_search_expansion(text, "cluster.local");
        assert_eq!(out.matches("autopath @podsource").count(), 2, "{out}");
        assert!(out.starts_with("cluster.local:53 {\n    autopath @podsource\n    errors\n"), "{out}");
        assert!(out.contains("in-addr.arpa:53 {\n    errors\n"));
    }

    /// The addon's ConfigMap after the installer's sed (domain, local IP and kube-dns IP filled).
    pub const STOCK: &str = "cluster.local:53 {
    errors
    cache {
            success 9984 30
            denial 9984 5
    }
    reload
    loop
    bind 169.254.20.10 10.96.0.10
    forward . __PILLAR__CLUSTER__DNS__ {
            force_tcp
    }
    prometheus :9253
    health 169.254.20.10:8080
    }
.:53 {
    errors
    cache 30
    reload
    loop
    bind 169.254.20.10 10.96.0.10
    forward . __PILLAR__UPSTREAM__SERVERS__
    prometheus :9253
    }
";

    fn vars(cluster: Result<IpAddr, String>) -> Vars<'static> {
        Vars {
            local_ips: "169.254.20.10 10.96.0.10",
            dns_port: 53,
            cluster_dns: cluster,
            prometheus_endpoint: "127.0.0.1:9253",
        }
    }

    #[test]
    fn fills_cluster_dns_and_resolv_conf() {
        let out = render(STOCK, &vars(Ok("10.0.0.53".parse().unwrap())), &KubeDnsConfig::default()).unwrap();
        assert!(out.contains("forward . 10.0.0.53 {\n            force_tcp"), "{out}");
        assert!(out.contains("forward . /etc/resolv.conf\n"), "{out}");
        assert!(!out.contains("__PILLAR__"));
    }

    #[test]
    fn missing_upstream_variable_is_an_error_not_nil() {
        let e =
            render(STOCK, &vars(Err("KUBE_DNS_UPSTREAM_SERVICE_HOST".into())), &KubeDnsConfig::default()).unwrap_err();
        assert!(e.contains("KUBE_DNS_UPSTREAM_SERVICE_HOST"), "{e}");
        // A template without the placeholder does not need it.
        let t = ".:53 {\n forward . __PILLAR__UPSTREAM__SERVERS__\n}\n";
        assert!(render(t, &vars(Err("X".into())), &KubeDnsConfig::default()).is_ok());
    }

    #[test]
    fn kube_dns_configmap_becomes_blocks_and_udp_upstreams() {
        let mut files = BTreeMap::new();
        files.insert(
            "stubDomains".to_string(),
            r#"{"corp.example": ["10.1.0.1", "10.1.0.2:5353"], "acme.local": ["1.2.3.4"]}"#.to_string(),
        );
        files.insert("upstreamNameservers".to_string(), r#"["8.8.8.8", "8.8.4.4"]"#.to_string());
        let cfg = KubeDnsConfig::from_files(&files).unwrap();
        let template = ".:53 {\n    forward . __PILLAR__UPSTREAM__SERVERS__ {\n            force_tcp\n    }\n}\n";
        let out = render(template, &vars(Ok("10.0.0.53".parse().unwrap())), &cfg).unwrap();
        assert!(out.contains("forward . 8.8.8.8 8.8.4.4\n}"), "{out}");
        assert!(!out.contains("force_tcp"), "{out}");
        let acme = out.find("acme.local:53 {").unwrap();
        let corp = out.find("corp.example:53 {").unwrap();
        assert!(acme < corp, "stub blocks sorted");
        assert!(out.contains(
            "corp.example:53 {\n    errors\n    cache 30\n    bind 169.254.20.10 10.96.0.10\n    forward . 10.1.0.1 10.1.0.2:5353\n}\n"
        ));
    }

    #[test]
    fn invalid_configmaps_are_rejected() {
        for (key, value) in [
            ("stubDomains", "not json"),
            ("stubDomains", r#"{"Bad_Domain": ["1.2.3.4"]}"#),
            ("stubDomains", r#"{"ok.example": []}"#),
            ("stubDomains", r#"{"ok.example": ["dns.example.com"]}"#),
            ("upstreamNameservers", r#"["1.1.1.1","1.1.1.2","1.1.1.3","1.1.1.4"]"#),
            ("upstreamNameservers", r#"["nope"]"#),
            ("federations", "[1]"),
        ] {
            let mut files = BTreeMap::new();
            files.insert(key.to_string(), value.to_string());
            let e = KubeDnsConfig::from_files(&files).unwrap_err();
            assert!(e.starts_with(key), "{key}={value}: {e}");
        }
    }

    #[test]
    fn directory_versions_skip_dot_entries() {
        let dir = std::env::temp_dir().join(format!("kdns-tpl-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("..data")).unwrap();
        std::fs::write(dir.join("Corefile.base"), "a").unwrap();
        std::fs::write(dir.join("..data/Corefile.base"), "ignored").unwrap();
        let a = read_dir(&dir).unwrap();
        assert_eq!(a.files.len(), 1);
        std::fs::write(dir.join(".hidden"), "x").unwrap();
        assert_eq!(read_dir(&dir).unwrap().version, a.version);
        std::fs::write(dir.join("Corefile.base"), "b").unwrap();
        assert_ne!(read_dir(&dir).unwrap().version, a.version);
        std::fs::write(dir.join("bad"), [0xff, 0xfe]).unwrap();
        assert!(read_dir(&dir).unwrap_err().contains("UTF-8"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
