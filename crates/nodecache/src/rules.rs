//! The firewall rules node-cache installs per local IP, and the two backends that keep them:
//! the iptables CLI (legacy or nft, chosen as the kube iptables wrapper chooses) driven with one
//! `iptables-save` read and one `iptables-restore --noflush` write per family and table set, and
//! a native nftables table replaced in one transaction.
//!
//! Idempotence is checked against what the kernel reports, in the canonical form
//! `iptables-save` prints, so rules never pile up: missing rules are inserted, duplicates (left
//! by older agents whose `-C` misfired) are removed, and a rule that still does not show up after
//! an insert is reported as an error instead of being inserted again and again.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Stdio};

pub const COMMENT_SKIP_CONNTRACK: &str = "NodeLocal DNS Cache: skip conntrack";
pub const COMMENT_ALLOW: &str = "NodeLocal DNS Cache: allow DNS traffic";
/// kdns's own nftables table (`inet` family: one table for IPv4 and IPv6).
pub const NFT_TABLE: &str = "nodelocaldns";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(ip: &IpAddr) -> Family {
        if ip.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub table: &'static str,
    pub chain: &'static str,
    pub proto: &'static str,
    /// true: matches the destination (`-d IP --dport P`), false: the source.
    pub to_local: bool,
    pub ip: IpAddr,
    pub port: u16,
    /// `NOTRACK`, `ACCEPT` or `DNAT`.
    pub target: &'static str,
    /// Also match this source port (the supervisor's probe socket).
    pub sport: Option<u16>,
    /// DNAT destination.
    pub to: Option<SocketAddr>,
}

pub const COMMENT_FALLBACK: &str = "kdns node cache: fall back to cluster DNS";
pub const COMMENT_PROBE: &str = "kdns node cache: supervisor probe";

impl Rule {
    pub fn family(&self) -> Family {
        Family::of(&self.ip)
    }

    fn comment(&self) -> &'static str {
        match (self.target, self.sport) {
            ("ACCEPT", _) => COMMENT_ALLOW,
            ("DNAT", _) => COMMENT_FALLBACK,
            (_, Some(_)) => COMMENT_PROBE,
            _ => COMMENT_SKIP_CONNTRACK,
        }
    }

    /// The rule body exactly as `iptables-save` prints it (after `-A CHAIN `).
    pub fn iptables_spec(&self) -> String {
        let prefix = if self.ip.is_ipv4() { 32 } else { 128 };
        let (addr, port) = if self.to_local { ("-d", "--dport") } else { ("-s", "--sport") };
        let sport = self.sport.map(|p| format!(" --sport {p}")).unwrap_or_default();
        let to = match self.to {
            Some(SocketAddr::V4(a)) => format!(" --to-destination {a}"),
            Some(SocketAddr::V6(a)) => format!(" --to-destination [{}]:{}", a.ip(), a.port()),
            None => String::new(),
        };
        format!(
            "{addr} {ip}/{prefix} -p {p} -m {p}{sport} {port} {n} -m comment --comment \"{c}\" -j {t}{to}",
            ip = self.ip,
            p = self.proto,
            n = self.port,
            c = self.comment(),
            t = self.target
        )
    }

    /// The same rule as an nftables statement in kdns's `inet` table.
    pub fn nft_statement(&self) -> String {
        let l3 = if self.ip.is_ipv4() { "ip" } else { "ip6" };
        let (addr, port) = if self.to_local { ("daddr", "dport") } else { ("saddr", "sport") };
        let sport = self.sport.map(|p| format!("{} sport {p} ", self.proto)).unwrap_or_default();
        let verdict = match (self.target, self.to) {
            ("ACCEPT", _) => "accept".to_string(),
            ("DNAT", Some(SocketAddr::V4(a))) => format!("dnat ip to {a}"),
            ("DNAT", Some(SocketAddr::V6(a))) => format!("dnat ip6 to [{}]:{}", a.ip(), a.port()),
            _ => "notrack".to_string(),
        };
        format!(
            "{l3} {addr} {ip} {sport}{p} {port} {n} counter {verdict} comment \"{c}\"",
            ip = self.ip,
            p = self.proto,
            n = self.port,
            c = self.comment()
        )
    }

    /// The nftables base chain this rule lives in.
    fn nft_chain(&self) -> &'static str {
        match (self.table, self.chain) {
            ("raw", "PREROUTING") => "raw-prerouting",
            ("raw", _) => "raw-output",
            ("nat", "PREROUTING") => "nat-prerouting",
            ("nat", _) => "nat-output",
            (_, "INPUT") => "filter-input",
            _ => "filter-output",
        }
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{{{} {} [{}]}}", self.table, self.chain, self.iptables_spec())
    }
}

fn rule(
    table: &'static str,
    chain: &'static str,
    proto: &'static str,
    to_local: bool,
    ip: IpAddr,
    port: u16,
    target: &'static str,
) -> Rule {
    Rule { table, chain, proto, to_local, ip, port, target, sport: None, to: None }
}

/// node-cache's twelve rules for each local IP, in its order.
pub fn rule_set(local_ips: &[IpAddr], dns_port: u16, health_port: u16) -> Vec<Rule> {
    let mut out = Vec::new();
    for &ip in local_ips {
        let r = |table, chain, proto, to_local, port, target| rule(table, chain, proto, to_local, ip, port, target);
        out.extend([
            r("raw", "PREROUTING", "tcp", true, dns_port, "NOTRACK"),
            r("raw", "PREROUTING", "udp", true, dns_port, "NOTRACK"),
            r("filter", "INPUT", "tcp", true, dns_port, "ACCEPT"),
            r("filter", "INPUT", "udp", true, dns_port, "ACCEPT"),
            r("raw", "OUTPUT", "tcp", false, dns_port, "NOTRACK"),
            r("raw", "OUTPUT", "udp", false, dns_port, "NOTRACK"),
            r("filter", "OUTPUT", "tcp", false, dns_port, "ACCEPT"),
            r("filter", "OUTPUT", "udp", false, dns_port, "ACCEPT"),
            r("raw", "OUTPUT", "tcp", true, dns_port, "NOTRACK"),
            r("raw", "OUTPUT", "udp", true, dns_port, "NOTRACK"),
            r("raw", "OUTPUT", "tcp", true, health_port, "NOTRACK"),
            r("raw", "OUTPUT", "tcp", false, health_port, "NOTRACK"),
        ]);
    }
    out
}

/// True for addresses only this node's DNS cache answers on (169.254.0.0/16, fe80::/10): with
/// the cache down nothing else would, so failing open needs a DNAT to the cluster DNS. Other
/// local IPs are the kube-dns ClusterIP, which kube-proxy takes over once NOTRACK is gone.
pub fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// The fail-open rule set: no NOTRACK (conntrack and kube-proxy's NAT see DNS again); for
/// link-local IPs a DNAT of UDP and TCP DNS to the cluster DNS Service (same family only); and
/// one NOTRACK per local IP for the supervisor's own probe socket (`probe_ports`: v4, v6), so
/// probes keep reaching the local cache instead of the fallback.
pub fn fallback_set(
    local_ips: &[IpAddr],
    dns_port: u16,
    cluster_dns: Option<IpAddr>,
    probe_ports: (u16, u16),
) -> Vec<Rule> {
    let mut out = Vec::new();
    for &ip in local_ips {
        let probe_port = if ip.is_ipv4() { probe_ports.0 } else { probe_ports.1 };
        if probe_port != 0 {
            out.push(Rule { sport: Some(probe_port), ..rule("raw", "OUTPUT", "udp", true, ip, dns_port, "NOTRACK") });
        }
        let Some(upstream) = cluster_dns.filter(|u| u.is_ipv4() == ip.is_ipv4() && is_link_local(&ip)) else {
            continue;
        };
        for chain in ["PREROUTING", "OUTPUT"] {
            for proto in ["tcp", "udp"] {
                out.push(Rule {
                    to: Some(SocketAddr::new(upstream, 53)),
                    ..rule("nat", chain, proto, true, ip, dns_port, "DNAT")
                });
            }
        }
    }
    out
}

/// What one sync changed.
#[derive(Debug, Default)]
pub struct Report {
    /// Rules that were missing and were added (back).
    pub added: Vec<Rule>,
    /// Extra copies removed.
    pub duplicates_removed: usize,
    /// Unwanted rules removed (the other mode's set).
    pub removed: usize,
    /// Rules present after the sync.
    pub present: usize,
}

/// A rule backend failure; `lock` when another agent held the xtables lock too long.
#[derive(Debug)]
pub struct RuleError {
    pub message: String,
    pub lock: bool,
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn err(message: impl Into<String>) -> RuleError {
    let message = message.into();
    let lock = message.contains("xtables lock");
    RuleError { message, lock }
}

pub trait Backend: Send + Sync {
    fn name(&self) -> String;
    /// Makes the kernel hold every rule of `rules` exactly once and none of `unwanted`, in one
    /// transaction per family.
    fn ensure(&self, rules: &[Rule], unwanted: &[Rule]) -> Result<Report, RuleError>;
    /// How many of `rules` are present (each counted once).
    fn count_present(&self, rules: &[Rule]) -> Result<usize, RuleError>;
    /// Removes every copy of every rule, in one batch per family.
    fn remove(&self, rules: &[Rule]) -> Result<usize, RuleError>;
}

fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, RuleError> {
    let mut cmd = Command::new(program);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = cmd.spawn().map_err(|e| err(format!("{program}: {e}")))?;
    if let Some(input) = stdin {
        if let Some(mut s) = child.stdin.take() {
            s.write_all(input.as_bytes()).map_err(|e| err(format!("{program}: writing input: {e}")))?;
        }
    }
    let out = child.wait_with_output().map_err(|e| err(format!("{program}: {e}")))?;
    if !out.status.success() {
        return Err(err(format!(
            "{program} {}: {} {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether `program` is an executable file on PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file())).unwrap_or(false)
}

/// iptables flavour: the binaries' infix (`iptables-nft-save` or `iptables-legacy-save`), or none
/// when only plain `iptables-save` exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    Nft,
    Legacy,
    Plain,
}

pub struct Iptables {
    pub flavour: Flavour,
}

impl Iptables {
    /// Picks legacy or nft the way kube's iptables wrapper does: kubelet's `KUBE-IPTABLES-HINT`
    /// or `KUBE-KUBELET-CANARY` chains in nft's mangle table first, then in legacy's rules;
    /// nft when neither has them.
    pub fn detect() -> Iptables {
        let has = |program: &str, args: &[&str]| {
            on_path(program)
                && run(program, args, None)
                    .map(|o| o.contains("KUBE-IPTABLES-HINT") || o.contains("KUBE-KUBELET-CANARY"))
                    .unwrap_or(false)
        };
        let nft = on_path("iptables-nft-save");
        let legacy = on_path("iptables-legacy-save");
        let flavour = if !nft && !legacy {
            Flavour::Plain
        } else if nft && (has("iptables-nft-save", &["-t", "mangle"]) || has("ip6tables-nft-save", &["-t", "mangle"])) {
            Flavour::Nft
        } else if legacy && (has("iptables-legacy-save", &[]) || has("ip6tables-legacy-save", &[])) {
            Flavour::Legacy
        } else if nft {
            Flavour::Nft
        } else {
            Flavour::Legacy
        };
        Iptables { flavour }
    }

    fn program(&self, family: Family, tool: &str) -> String {
        let base = if family == Family::V4 { "iptables" } else { "ip6tables" };
        match self.flavour {
            Flavour::Nft => format!("{base}-nft-{tool}"),
            Flavour::Legacy => format!("{base}-legacy-{tool}"),
            Flavour::Plain => format!("{base}-{tool}"),
        }
    }

    /// `(table, chain, spec)` → count, for the tables our rules use.
    fn current(&self, family: Family, rules: &[&Rule]) -> Result<Vec<usize>, RuleError> {
        let mut tables: Vec<&str> = rules.iter().map(|r| r.table).collect();
        tables.sort_unstable();
        tables.dedup();
        let mut counts = vec![0; rules.len()];
        for table in tables {
            let saved = run(&self.program(family, "save"), &["-t", table], None)?;
            for line in saved.lines() {
                let Some(body) = line.strip_prefix("-A ") else { continue };
                let Some((chain, spec)) = body.split_once(' ') else { continue };
                for (i, r) in rules.iter().enumerate() {
                    if r.table == table && r.chain == chain && r.iptables_spec() == spec {
                        counts[i] += 1;
                    }
                }
            }
        }
        Ok(counts)
    }

    fn restore(&self, family: Family, ops: &[(&'static str, String)]) -> Result<(), RuleError> {
        if ops.is_empty() {
            return Ok(());
        }
        let mut input = String::new();
        for table in ["raw", "nat", "filter"] {
            let lines: Vec<&String> = ops.iter().filter(|(t, _)| *t == table).map(|(_, l)| l).collect();
            if lines.is_empty() {
                continue;
            }
            let _ = writeln!(input, "*{table}");
            for l in lines {
                let _ = writeln!(input, "{l}");
            }
            let _ = writeln!(input, "COMMIT");
        }
        run(&self.program(family, "restore"), &["--noflush", "-w", "5"], Some(&input)).map(|_| ())
    }

    fn by_family(rules: &[Rule]) -> Vec<(Family, Vec<&Rule>)> {
        let mut out: Vec<(Family, Vec<&Rule>)> = Vec::new();
        for r in rules {
            match out.iter_mut().find(|(f, _)| *f == r.family()) {
                Some((_, v)) => v.push(r),
                None => out.push((r.family(), vec![r])),
            }
        }
        out
    }
}

impl Backend for Iptables {
    fn name(&self) -> String {
        match self.flavour {
            Flavour::Nft => "iptables (nf_tables)".into(),
            Flavour::Legacy => "iptables (legacy)".into(),
            Flavour::Plain => "iptables".into(),
        }
    }

    fn ensure(&self, rules: &[Rule], unwanted: &[Rule]) -> Result<Report, RuleError> {
        let mut report = Report::default();
        let mut families = Self::by_family(rules);
        for (family, _) in Self::by_family(unwanted) {
            if !families.iter().any(|(f, _)| *f == family) {
                families.push((family, Vec::new()));
            }
        }
        for (family, rules) in families {
            let gone: Vec<&Rule> = unwanted.iter().filter(|r| r.family() == family).collect();
            let mut all = rules.clone();
            all.extend(gone.iter().copied());
            let counts = self.current(family, &all)?;
            let first_added = report.added.len();
            let mut ops = Vec::new();
            // Inserted in reverse so that, like node-cache's successive `-I`, the set reads top
            // down in its own order.
            for (r, &n) in rules.iter().zip(&counts).rev() {
                if n == 0 {
                    ops.push((r.table, format!("-I {} {}", r.chain, r.iptables_spec())));
                    report.added.push((*r).clone());
                }
                for _ in 1..n.max(1) {
                    ops.push((r.table, format!("-D {} {}", r.chain, r.iptables_spec())));
                    report.duplicates_removed += 1;
                }
            }
            for (r, &n) in gone.iter().zip(&counts[rules.len()..]) {
                for _ in 0..n {
                    ops.push((r.table, format!("-D {} {}", r.chain, r.iptables_spec())));
                    report.removed += 1;
                }
            }
            report.added[first_added..].reverse();
            self.restore(family, &ops)?;
            let after = if ops.is_empty() { counts } else { self.current(family, &all)? };
            if let Some((r, n)) = rules.iter().zip(&after).find(|(_, n)| **n != 1) {
                return Err(err(format!(
                    "rule {r} is present {n} times after the sync (the installed iptables prints it in another form)"
                )));
            }
            if let Some((r, _)) = gone.iter().zip(&after[rules.len()..]).find(|(_, n)| **n != 0) {
                return Err(err(format!("rule {r} is still present after removing it")));
            }
            report.present += rules.len();
        }
        Ok(report)
    }

    fn count_present(&self, rules: &[Rule]) -> Result<usize, RuleError> {
        let mut n = 0;
        for (family, rules) in Self::by_family(rules) {
            n += self.current(family, &rules)?.iter().filter(|c| **c > 0).count();
        }
        Ok(n)
    }

    fn remove(&self, rules: &[Rule]) -> Result<usize, RuleError> {
        let mut removed = 0;
        for (family, rules) in Self::by_family(rules) {
            let counts = self.current(family, &rules)?;
            let mut ops = Vec::new();
            for (r, &n) in rules.iter().zip(&counts) {
                for _ in 0..n {
                    ops.push((r.table, format!("-D {} {}", r.chain, r.iptables_spec())));
                }
            }
            removed += ops.len();
            self.restore(family, &ops)?;
        }
        Ok(removed)
    }
}

/// kdns's own `inet nodelocaldns` table. Raw-priority `notrack` keeps conntrack (and so
/// kube-proxy's NAT, iptables or nftables mode) away from the local IPs; the `accept` rules
/// mirror node-cache's filter rules but, nftables being what it is, cannot override a drop in
/// another table.
pub struct Nftables;

impl Nftables {
    /// The whole table as one `nft -f` script that replaces any previous version atomically.
    pub fn script(rules: &[Rule]) -> String {
        let mut s = format!("table inet {NFT_TABLE} {{}}\ndelete table inet {NFT_TABLE}\ntable inet {NFT_TABLE} {{\n");
        for (chain, kind, hook, priority) in [
            ("raw-prerouting", "filter", "prerouting", "raw"),
            ("raw-output", "filter", "output", "raw"),
            ("nat-prerouting", "nat", "prerouting", "dstnat"),
            ("nat-output", "nat", "output", "-100"),
            ("filter-input", "filter", "input", "filter"),
            ("filter-output", "filter", "output", "filter"),
        ] {
            let members: Vec<&Rule> = rules.iter().filter(|r| r.nft_chain() == chain).collect();
            if members.is_empty() && kind == "nat" {
                continue;
            }
            let _ = writeln!(s, "  chain {chain} {{\n    type {kind} hook {hook} priority {priority}; policy accept;");
            for r in members {
                let _ = writeln!(s, "    {}", r.nft_statement());
            }
            s.push_str("  }\n");
        }
        s.push_str("}\n");
        s
    }

    /// The listing of our table, or None when it does not exist. Counters are stripped so two
    /// listings compare equal while traffic flows.
    fn listing() -> Result<Option<String>, RuleError> {
        match run("nft", &["list", "table", "inet", NFT_TABLE], None) {
            Ok(text) => Ok(Some(strip_counters(&text))),
            Err(e) if e.message.contains("No such file") || e.message.contains("does not exist") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The rule lines of a listing (every rule we write carries a comment), sorted.
    fn rule_lines(listing: &str) -> Vec<String> {
        let mut v: Vec<String> =
            listing.lines().map(|l| l.trim().to_string()).filter(|l| l.contains(" comment \"")).collect();
        v.sort();
        v
    }

    fn expected(rules: &[Rule]) -> Vec<String> {
        let mut v: Vec<String> = rules.iter().map(|r| strip_counters(&r.nft_statement())).collect();
        v.sort();
        v
    }

    fn present(listing: &str, rules: &[Rule]) -> usize {
        let have = Self::rule_lines(listing);
        rules.iter().filter(|r| have.contains(&strip_counters(&r.nft_statement()))).count()
    }

    /// True when kube-proxy runs in nftables mode (its tables exist).
    pub fn kube_proxy_uses_nftables() -> bool {
        on_path("nft")
            && run("nft", &["list", "tables"], None)
                .map(|o| o.lines().any(|l| l.trim() == "table ip kube-proxy" || l.trim() == "table ip6 kube-proxy"))
                .unwrap_or(false)
    }
}

fn strip_counters(text: &str) -> String {
    text.lines()
        .map(|l| {
            let mut out = l.trim().to_string();
            if let Some(i) = out.find("counter packets ") {
                let tail = &out[i..];
                // "counter packets N bytes M " → "counter "
                let mut words = tail.split(' ');
                let kept: Vec<&str> = std::iter::once("counter").chain(words.by_ref().skip(5)).collect();
                out = format!("{}{}", &out[..i], kept.join(" "));
            }
            out
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl Backend for Nftables {
    fn name(&self) -> String {
        "nftables".into()
    }

    fn ensure(&self, rules: &[Rule], _unwanted: &[Rule]) -> Result<Report, RuleError> {
        let before = Self::listing()?;
        let have = before.as_deref().map(Self::rule_lines).unwrap_or_default();
        let want = Self::expected(rules);
        let mut report = Report::default();
        if have == want {
            report.present = rules.len();
            return Ok(report);
        }
        run("nft", &["-f", "-"], Some(&Self::script(rules)))?;
        let after = Self::listing()?.unwrap_or_default();
        if Self::rule_lines(&after) != want {
            return Err(err(format!(
                "nftables table inet {NFT_TABLE} holds {} of {} rules after replacing it",
                Self::present(&after, rules),
                rules.len()
            )));
        }
        for r in rules {
            if !have.contains(&strip_counters(&r.nft_statement())) {
                report.added.push(r.clone());
            }
        }
        report.removed = have.iter().filter(|l| !want.contains(l)).count();
        report.present = rules.len();
        Ok(report)
    }

    fn count_present(&self, rules: &[Rule]) -> Result<usize, RuleError> {
        Ok(Self::listing()?.map(|l| Self::present(&l, rules)).unwrap_or(0))
    }

    fn remove(&self, rules: &[Rule]) -> Result<usize, RuleError> {
        match Self::listing()? {
            None => Ok(0),
            Some(l) => {
                let n = Self::present(&l, rules);
                run("nft", &["delete", "table", "inet", NFT_TABLE], None)?;
                Ok(n)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twelve_rules_per_ip_in_canonical_form() {
        let ips: Vec<IpAddr> = vec!["169.254.20.10".parse().unwrap(), "fd00::10".parse().unwrap()];
        let rules = rule_set(&ips, 53, 8080);
        assert_eq!(rules.len(), 24);
        assert_eq!(
            rules[0].iptables_spec(),
            "-d 169.254.20.10/32 -p tcp -m tcp --dport 53 -m comment --comment \"NodeLocal DNS Cache: skip conntrack\" -j NOTRACK"
        );
        assert_eq!(
            rules[7].iptables_spec(),
            "-s 169.254.20.10/32 -p udp -m udp --sport 53 -m comment --comment \"NodeLocal DNS Cache: allow DNS traffic\" -j ACCEPT"
        );
        assert_eq!(
            rules[11].iptables_spec(),
            "-s 169.254.20.10/32 -p tcp -m tcp --sport 8080 -m comment --comment \"NodeLocal DNS Cache: skip conntrack\" -j NOTRACK"
        );
        assert!(rules[12].iptables_spec().starts_with("-d fd00::10/128 -p tcp"));
        assert_eq!(rules.iter().filter(|r| r.table == "raw").count(), 16);
        assert_eq!(
            rules[14].nft_statement(),
            "ip6 daddr fd00::10 tcp dport 53 counter accept comment \"NodeLocal DNS Cache: allow DNS traffic\""
        );
    }

    #[test]
    fn fallback_set_dnats_link_local_ips_and_keeps_probes_local() {
        let ips: Vec<IpAddr> = vec!["169.254.20.10".parse().unwrap(), "10.96.0.10".parse().unwrap()];
        let set = fallback_set(&ips, 53, Some("10.0.0.53".parse().unwrap()), (40000, 0));
        // one probe exemption per IP, DNAT (PREROUTING + OUTPUT, TCP + UDP) for the link-local one
        assert_eq!(set.len(), 2 + 4);
        assert_eq!(
            set[0].iptables_spec(),
            "-d 169.254.20.10/32 -p udp -m udp --sport 40000 --dport 53 -m comment --comment \"kdns node cache: supervisor probe\" -j NOTRACK"
        );
        assert_eq!(
            set[1].iptables_spec(),
            "-d 169.254.20.10/32 -p tcp -m tcp --dport 53 -m comment --comment \"kdns node cache: fall back to cluster DNS\" -j DNAT --to-destination 10.0.0.53:53"
        );
        assert_eq!(set[1].nft_statement(), "ip daddr 169.254.20.10 tcp dport 53 counter dnat ip to 10.0.0.53:53 comment \"kdns node cache: fall back to cluster DNS\"");
        assert!(set[5].table == "raw" && set[5].ip == ips[1], "the ClusterIP only gets the probe exemption");
        // No cross-family NAT, no DNAT without a cluster DNS address.
        let v6: Vec<IpAddr> = vec!["fe80::10".parse().unwrap()];
        assert_eq!(fallback_set(&v6, 53, Some("10.0.0.53".parse().unwrap()), (0, 0)).len(), 0);
        assert!(is_link_local(&v6[0]) && !is_link_local(&ips[1]));
        let script = Nftables::script(&set);
        assert!(script.contains("type nat hook prerouting priority dstnat;"), "{script}");
    }

    #[test]
    fn nft_script_replaces_the_table_atomically() {
        let ips: Vec<IpAddr> = vec!["169.254.20.10".parse().unwrap()];
        let s = Nftables::script(&rule_set(&ips, 53, 8080));
        assert!(s.starts_with("table inet nodelocaldns {}\ndelete table inet nodelocaldns\n"));
        assert!(s.contains("type filter hook prerouting priority raw; policy accept;"));
        assert_eq!(s.matches(" notrack ").count(), 8);
        assert_eq!(s.matches(" accept comment").count(), 4);
    }

    #[test]
    fn counters_are_ignored_when_comparing() {
        assert_eq!(
            strip_counters("ip daddr 1.2.3.4 udp dport 53 counter packets 12 bytes 900 notrack comment \"x\""),
            "ip daddr 1.2.3.4 udp dport 53 counter notrack comment \"x\""
        );
    }
}
