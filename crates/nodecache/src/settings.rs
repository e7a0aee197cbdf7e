//! node-cache's flags, validated up front: every value is checked before anything on the node
//! changes, so a typo never leaves half an interface or half a rule set behind.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Which packet filter carries the rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Firewall {
    /// nftables when kube-proxy runs in nftables mode (its `kube-proxy` tables exist), else
    /// iptables.
    Auto,
    /// The iptables CLI (legacy or nft, picked as the kube iptables wrapper does).
    Iptables,
    /// kdns's own nftables table, replaced in one transaction.
    Nftables,
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub local_ips: Vec<IpAddr>,
    /// `-conf`: where the generated Corefile is written and loaded from.
    pub conf: PathBuf,
    pub base_corefile: PathBuf,
    /// Directory of the kube-dns ConfigMap, if any (`-kubednscm`, else `/etc/kube-dns` when it
    /// exists).
    pub kubedns_cm: Option<PathBuf>,
    pub upstream_svc: String,
    pub health_port: u16,
    pub dns_port: u16,
    pub setup_interface: bool,
    pub setup_iptables: bool,
    pub skip_teardown: bool,
    pub sync_interval: Duration,
    pub config_sync_interval: Duration,
    pub interface_name: String,
    pub metrics_listen: String,
    pub prometheus_listen: String,
    pub reload_with_signal: bool,
    pub pidfile: Option<PathBuf>,
    pub firewall: Firewall,
    /// Run the DNS server as a supervised child process (fail-open); `-supervise=false` runs it
    /// in this process, as node-cache does.
    pub supervise: bool,
    pub probe_interval: Duration,
    pub probe_timeout: Duration,
    pub probe_failures: u32,
    /// Serve-stale for caches that do not configure it (RFC 8767 mode), with this maximum
    /// staleness; `None` when `-servestale 0`.
    pub serve_stale: Option<Duration>,
    /// Where the cache is saved on exit (and every 30 s) and loaded from at start.
    pub cache_snapshot: Option<PathBuf>,
    /// `-redirect`: the dataplane (Cilium's local redirect policy, Calico eBPF) brings DNS to
    /// this pod; no interface, no firewall rules, nothing torn down, `-localip` are the pod's
    /// own addresses.
    pub redirect: bool,
    /// `-podsource`: watch this node's pods (`-nodename`, default `$NODE_NAME`) to attribute
    /// queries to pods and namespaces and to expand search paths.
    pub pod_source: Option<PodSource>,
    /// `-clientbudget`/`-clientburst`: forwarded misses a second per client address, and the
    /// burst; `None` when `-clientbudget 0` (the default).
    pub client_budget: Option<(f64, f64)>,
}

/// Where the pod source reads from.
#[derive(Clone, Debug, PartialEq)]
pub struct PodSource {
    pub node_name: String,
    /// `-kubeconfig`, else the in-cluster service account.
    pub kubeconfig: Option<PathBuf>,
    pub cluster_domain: String,
    /// `-searchexpansion`: answer a pod's search-path walk in one query (needs the pod source).
    pub search_expansion: bool,
}

/// The flags node-cache accepts, with its defaults, in the order of its `-help`.
pub const FLAGS: &[(&str, bool, &str, &str)] = &[
    // (name, is_bool, default, help)
    ("localip", false, "", "comma-separated string of ip addresses to bind dnscache to (IPv4 and IPv6 may be mixed)"),
    ("setupinterface", true, "true", "indicates whether network interface should be setup"),
    ("interfacename", false, "nodelocaldns", "name of the interface to be created"),
    ("setupiptables", true, "true", "indicates whether iptables rules should be setup"),
    ("skipteardown", true, "false", "indicates whether iptables rules and the interface should be torn down on exit"),
    (
        "syncinterval",
        false,
        "60",
        "interval (seconds, or a duration such as 30s or 1m) to check the interface and rules",
    ),
    ("metrics-listen-address", false, "0.0.0.0:9353", "address to serve metrics on"),
    ("prometheus-listen-address", false, ":9253", "address that replaces __PROMETHEUS__ENDPOINT__ in the template"),
    ("basecorefile", false, "/etc/coredns/Corefile.base", "path to the template Corefile for node-cache"),
    ("corefile", false, "/etc/Corefile", "path to the config file used by node-cache (superseded by -conf)"),
    ("kubednscm", false, "", "path to the directory where the kube-dns configmap is mounted"),
    ("upstreamsvc", false, "kube-dns", "service name whose cluster IP is the upstream for the cluster domain"),
    ("health-port", false, "8080", "port used by the health plugin"),
    (
        "reloadwithsignal",
        true,
        "false",
        "reload the Corefile in-process after writing it instead of relying on the reload plugin",
    ),
    (
        "firewall",
        false,
        "auto",
        "rule backend: iptables, nftables, or auto (nftables when kube-proxy runs in nftables mode)",
    ),
    ("configsyncinterval", false, "10s", "how often the template and kube-dns ConfigMap directories are polled"),
    ("supervise", true, "true", "run the DNS server as a supervised child: when it dies or hangs, DNS falls back to the cluster DNS until it is back"),
    ("probeinterval", false, "500ms", "how often the supervisor sends a DNS probe to each local IP"),
    ("probetimeout", false, "500ms", "how long a probe may take"),
    ("probefailures", false, "2", "failed probe rounds in a row after which the server is declared hung"),
    ("servestale", false, "1h", "serve expired cache entries (RFC 8767: after 1.8 s without upstream answer, TTL 30) up to this age; 0 turns it off"),
    ("cachesnapshot", false, "/tmp/kdns-node-cache.snapshot", "file the cache is saved to on exit and loaded from at start (empty: off)"),
    ("podsource", true, "false", "watch this node's pods (-nodename) to attribute queries to pods and namespaces (metrics, /status, log {pod} {namespace})"),
    ("nodename", false, "", "this node's name for -podsource (default: the NODE_NAME environment variable)"),
    ("kubeconfig", false, "", "kubeconfig file for -podsource (default: the in-cluster service account)"),
    ("clusterdomain", false, "cluster.local", "the cluster domain kubelet gives pods (their search list, for -searchexpansion)"),
    ("searchexpansion", true, "false", "with -podsource: when a pod asks the first name of its search walk, try its whole search list here and answer the first name that exists (CNAME from the asked name), as CoreDNS's autopath"),
    ("clientbudget", false, "0", "forwarded misses a second each client address may send upstream (cached answers are never limited); 0 turns it off"),
    ("clientburst", false, "0", "misses a client may send at once beyond -clientbudget (default 5 x -clientbudget)"),
    ("redirect", true, "false", "eBPF dataplanes (Cilium local redirect policy, Calico eBPF): the dataplane redirects DNS to this pod, so no interface and no firewall rules are set up or torn down; -localip are the pod's own addresses"),
];

impl Settings {
    /// Builds the settings from flag values (`get` returns what was given on the command line);
    /// the error names the flag and the value.
    pub fn from_flags(get: &dyn Fn(&str) -> Option<String>) -> Result<Settings, String> {
        let value = |name: &str| -> String {
            get(name).unwrap_or_else(|| FLAGS.iter().find(|f| f.0 == name).map(|f| f.2.to_string()).unwrap_or_default())
        };
        let boolean = |name: &str| value(name) == "true";
        let local_ip_text = value("localip");
        let local_ips = parse_local_ips(&local_ip_text)?;
        let port = |flag: &str, text: String| -> Result<u16, String> {
            text.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("invalid -{flag} {text:?}: a port number from 1 to 65535"))
        };
        let dns_port_text = get("dns.port").or_else(|| get("p")).unwrap_or_else(|| "53".into());
        let dns_port = port("dns.port", dns_port_text)?;
        let health_port = port("health-port", value("health-port"))?;
        let sync_interval = parse_sync_interval(&value("syncinterval"))
            .map_err(|e| format!("invalid -syncinterval {:?}: {e}", value("syncinterval")))?;
        // A Go duration within [min, max].
        let duration_flag = |flag: &str, min: Duration, max: Duration| -> Result<Duration, String> {
            parse_go_duration(&value(flag)).filter(|d| (min..=max).contains(d)).ok_or_else(|| {
                let range = if max == Duration::MAX {
                    format!("of at least {min:?}")
                } else {
                    format!("from {min:?} to {max:?}")
                };
                format!("invalid -{flag} {:?}: a duration {range}", value(flag))
            })
        };
        let config_sync_interval = duration_flag("configsyncinterval", Duration::from_millis(100), Duration::MAX)?;
        let interface_name = value("interfacename");
        if interface_name.is_empty()
            || interface_name.len() > 15
            || interface_name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
        {
            return Err(format!(
                "invalid -interfacename {interface_name:?}: 1 to 15 characters, no '/', ':' or spaces"
            ));
        }
        let metrics_listen = value("metrics-listen-address");
        check_listen("metrics-listen-address", &metrics_listen)?;
        let prometheus_listen = value("prometheus-listen-address");
        check_listen("prometheus-listen-address", &prometheus_listen)?;
        let upstream_svc = value("upstreamsvc");
        if upstream_svc.is_empty() || !upstream_svc.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') {
            return Err(format!("invalid -upstreamsvc {upstream_svc:?}: a Service name"));
        }
        // node-cache always reads -conf (even when empty it overrides -corefile); kdns falls back
        // to -corefile when -conf is not given, so a lone -corefile works as its help says.
        let conf = get("conf").filter(|c| !c.is_empty()).unwrap_or_else(|| value("corefile"));
        let kubedns_cm = match value("kubednscm") {
            d if !d.is_empty() => Some(PathBuf::from(d)),
            _ if std::path::Path::new("/etc/kube-dns").is_dir() => Some(PathBuf::from("/etc/kube-dns")),
            _ => None,
        };
        let firewall = match value("firewall").as_str() {
            "auto" => Firewall::Auto,
            "iptables" => Firewall::Iptables,
            "nftables" => Firewall::Nftables,
            other => return Err(format!("invalid -firewall {other:?}: one of auto, iptables, nftables")),
        };
        let hour = Duration::from_secs(3600);
        let probe_interval = duration_flag("probeinterval", Duration::from_millis(50), hour)?;
        let probe_timeout = duration_flag("probetimeout", Duration::from_millis(10), hour)?;
        let probe_failures = value("probefailures")
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| format!("invalid -probefailures {:?}: a count from 1 to 100", value("probefailures")))?;
        let serve_stale = match value("servestale").as_str() {
            "0" | "off" | "false" => None,
            text => Some(
                parse_go_duration(text)
                    .filter(|d| *d >= Duration::from_secs(1) && *d <= Duration::from_secs(7 * 24 * 3600))
                    .ok_or_else(|| format!("invalid -servestale {text:?}: a duration from 1s to 168h, or 0"))?,
            ),
        };
        let cache_snapshot = Some(value("cachesnapshot")).filter(|p| !p.is_empty()).map(PathBuf::from);
        let redirect = boolean("redirect");
        let pod_source = if boolean("podsource") {
            let node_name = Some(value("nodename"))
                .filter(|n| !n.is_empty())
                .or_else(|| std::env::var("NODE_NAME").ok().filter(|n| !n.is_empty()))
                .ok_or("-podsource needs the node's name: -nodename, or NODE_NAME from the downward API")?;
            let cluster_domain = value("clusterdomain").trim_end_matches('.').to_ascii_lowercase();
            if cluster_domain.is_empty() || kdns_wire::Name::from_ascii(&format!("{cluster_domain}.")).is_err() {
                return Err(format!("invalid -clusterdomain {:?}: a domain name", value("clusterdomain")));
            }
            Some(PodSource {
                node_name,
                kubeconfig: Some(value("kubeconfig")).filter(|k| !k.is_empty()).map(PathBuf::from),
                cluster_domain,
                search_expansion: boolean("searchexpansion"),
            })
        } else if boolean("searchexpansion") {
            return Err("-searchexpansion needs -podsource (the search list is the pod's own)".into());
        } else {
            None
        };
        let rate = |flag: &str| -> Result<f64, String> {
            value(flag)
                .parse::<f64>()
                .ok()
                .filter(|r| r.is_finite() && *r >= 0.0 && *r <= 1e6)
                .ok_or_else(|| format!("invalid -{flag} {:?}: a number from 0 to 1000000", value(flag)))
        };
        let budget = rate("clientbudget")?;
        let burst = rate("clientburst")?;
        let client_budget =
            (budget > 0.0).then(|| (budget, if burst > 0.0 { burst.max(1.0) } else { (budget * 5.0).max(1.0) }));
        Ok(Settings {
            pod_source,
            client_budget,
            redirect,
            supervise: boolean("supervise"),
            probe_interval,
            probe_timeout,
            probe_failures,
            serve_stale,
            cache_snapshot,
            local_ips,
            conf: PathBuf::from(conf),
            base_corefile: PathBuf::from(value("basecorefile")),
            kubedns_cm,
            upstream_svc,
            health_port,
            dns_port,
            setup_interface: boolean("setupinterface") && !redirect,
            setup_iptables: boolean("setupiptables") && !redirect,
            skip_teardown: boolean("skipteardown") || redirect,
            sync_interval,
            config_sync_interval,
            interface_name,
            metrics_listen,
            prometheus_listen,
            reload_with_signal: boolean("reloadwithsignal"),
            pidfile: get("pidfile").filter(|p| !p.is_empty()).map(PathBuf::from),
            firewall,
        })
    }

    /// The local IPs as node-cache writes them into `bind` lines: space-separated.
    pub fn local_ip_list(&self) -> String {
        self.local_ips.iter().map(|ip| ip.to_string()).collect::<Vec<_>>().join(" ")
    }

    /// The environment variable Kubernetes sets for the upstream Service's cluster IP.
    pub fn upstream_env(&self) -> String {
        format!("{}_SERVICE_HOST", self.upstream_svc.replace(['-', '.'], "_").to_uppercase())
    }
}

fn check_listen(flag: &str, addr: &str) -> Result<(), String> {
    let port = addr.rsplit_once(':').map(|(_, p)| p);
    match port.and_then(|p| p.parse::<u16>().ok()) {
        Some(_) => Ok(()),
        None => Err(format!("invalid -{flag} {addr:?}: HOST:PORT or :PORT")),
    }
}

/// `-localip`: comma-separated, no empty element, no duplicates; IPv4 and IPv6 may be mixed.
pub fn parse_local_ips(text: &str) -> Result<Vec<IpAddr>, String> {
    let mut out = Vec::new();
    for part in text.split(',') {
        let ip: IpAddr =
            part.trim().parse().map_err(|_| format!("invalid localip specified - {part:?} (in -localip {text:?})"))?;
        if ip.is_unspecified() || ip.is_multicast() {
            return Err(format!("invalid localip specified - {part:?}: not a unicast address"));
        }
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    Ok(out)
}

/// `-syncinterval`: node-cache types it as a Go duration and multiplies it by a second, so its
/// documented form is a bare number of seconds (`60`) and the only non-default form that works
/// there is `30ns` (= 30 s). kdns accepts both as node-cache means them, plus real durations
/// (`30s`, `1m`, `1m30s`, `500ms`).
pub fn parse_sync_interval(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let d = if let Ok(secs) = text.parse::<u64>() {
        Duration::from_secs(secs)
    } else if let Some(n) = text.strip_suffix("ns").filter(|n| n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty()) {
        Duration::from_secs(n.parse().map_err(|_| "too large".to_string())?)
    } else {
        parse_go_duration(text).ok_or("not a number of seconds or a duration such as 30s or 1m")?
    };
    if d < Duration::from_millis(100) {
        return Err("must be at least 100ms".into());
    }
    if d > Duration::from_secs(24 * 3600) {
        return Err("must be at most 24h".into());
    }
    Ok(d)
}

/// Go's `time.ParseDuration` (the server's parser) on a flag's text.
fn parse_go_duration(text: &str) -> Option<Duration> {
    kdns_server::plugin::parse_duration(text.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(args: &[(&str, &str)]) -> Result<Settings, String> {
        let map: HashMap<String, String> = args.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_flags(&|n| map.get(n).cloned())
    }

    #[test]
    fn defaults_are_node_cache_defaults() {
        let s = settings(&[("localip", "169.254.20.10,10.96.0.10"), ("conf", "/etc/Corefile")]).unwrap();
        assert_eq!(s.local_ip_list(), "169.254.20.10 10.96.0.10");
        assert_eq!(s.interface_name, "nodelocaldns");
        assert_eq!(s.sync_interval, Duration::from_secs(60));
        assert_eq!(s.health_port, 8080);
        assert_eq!(s.dns_port, 53);
        assert_eq!(s.metrics_listen, "0.0.0.0:9353");
        assert_eq!(s.prometheus_listen, ":9253");
        assert_eq!(s.base_corefile, PathBuf::from("/etc/coredns/Corefile.base"));
        assert!(s.setup_interface && s.setup_iptables && !s.skip_teardown && !s.reload_with_signal);
        assert_eq!(s.upstream_svc, "kube-dns");
        assert_eq!(s.firewall, Firewall::Auto);
        let s = settings(&[("localip", "169.254.20.10"), ("upstreamsvc", "kube-dns-upstream")]).unwrap();
        assert_eq!(s.upstream_env(), "KUBE_DNS_UPSTREAM_SERVICE_HOST");
        assert_eq!(s.conf, PathBuf::from("/etc/Corefile"));
    }

    #[test]
    fn local_ips_mix_families_and_reject_empty_elements() {
        let s = settings(&[("localip", "169.254.20.10,fd00::10")]).unwrap();
        assert_eq!(s.local_ips.len(), 2);
        for bad in ["", "169.254.20.10,", "169.254.20.10,,10.0.0.1", "nope", "0.0.0.0", "224.0.0.1"] {
            let e = settings(&[("localip", bad)]).unwrap_err();
            assert!(e.contains("invalid localip"), "{bad}: {e}");
        }
    }

    #[test]
    fn sync_interval_forms() {
        assert_eq!(parse_sync_interval("60").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_sync_interval("30ns").unwrap(), Duration::from_secs(30), "node-cache's only working form");
        assert_eq!(parse_sync_interval("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_sync_interval("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_sync_interval("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_sync_interval("500ms").unwrap(), Duration::from_millis(500));
        for bad in ["", "abc", "-5", "10x", "0", "1ms", "48h"] {
            assert!(parse_sync_interval(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_values_name_the_flag() {
        let base = ("localip", "169.254.20.10");
        for (flag, value) in [
            ("health-port", "x"),
            ("health-port", "0"),
            ("dns.port", "70000"),
            ("interfacename", "a-name-that-is-too-long"),
            ("interfacename", "a/b"),
            ("metrics-listen-address", "nowhere"),
            ("firewall", "pf"),
            ("upstreamsvc", "kube dns"),
            ("syncinterval", "soon"),
            ("probeinterval", "1ms"),
            ("probefailures", "0"),
            ("servestale", "forever"),
        ] {
            let e = settings(&[base, (flag, value)]).unwrap_err();
            assert!(e.contains(&format!("-{flag}")), "{flag}={value}: {e}");
        }
    }
}
