//! node-cache mode for real, inside network namespaces this test creates and removes: a "node"
//! namespace running `kdns node-cache` and a "cluster" namespace holding the cluster DNS
//! upstream, joined by a veth pair. Asserts the interface and addresses, the exact rule set as
//! `iptables-save` / `nft list` print it, answers on every local IP, misses reaching the
//! upstream over TCP, rules and addresses put back by the periodic sync, teardown on SIGTERM,
//! `-skipteardown`, IPv6 and dual stack, and a broken template keeping the old Corefile.
//!
//! Needs root (network namespaces, netlink, iptables). `scripts/test.sh` runs as root in CI and
//! sets `KDNS_REQUIRE_NETNS=1`, so there these tests can only pass by running; elsewhere, without
//! root, they print why they did not run.

mod common;

use common::upstream::Upstream;
use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const SKIP: &str = "NodeLocal DNS Cache: skip conntrack";
const ALLOW: &str = "NodeLocal DNS Cache: allow DNS traffic";

fn can_run() -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false);
    if !root {
        assert!(
            std::env::var("KDNS_REQUIRE_NETNS").as_deref() != Ok("1"),
            "KDNS_REQUIRE_NETNS=1 but not running as root"
        );
        eprintln!("node-cache namespace tests need root; not run");
    }
    root
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A network namespace, deleted (with its /etc/netns overrides) on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("kdns-{tag}-{}-{}", std::process::id() % 100000, SEQ.fetch_add(1, Ordering::Relaxed));
        sh(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.run(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Runs a command inside the namespace; panics with its output when it fails.
    fn run(&self, args: &[&str]) -> String {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        sh(&full)
    }

    /// Like [`Netns::run`] but returns success and output instead of panicking.
    fn try_run(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("ip").args(["netns", "exec", &self.name]).args(args).output().unwrap();
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    }

    /// `/etc/resolv.conf` as processes started with `ip netns exec` see it.
    fn set_resolv_conf(&self, text: &str) {
        let dir = PathBuf::from("/etc/netns").join(&self.name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("resolv.conf"), text).unwrap();
    }

    /// Runs `f` on a thread that has entered the namespace: sockets it opens live there.
    #[allow(unsafe_code)]
    fn enter<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).unwrap();
            // SAFETY: setns(2) on this thread only, with a namespace fd we own.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
        let _ = std::fs::remove_dir_all(PathBuf::from("/etc/netns").join(&self.name));
    }
}

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// node ⟷ cluster over a veth pair: 10.200.0.1 / 10.200.0.2 and fd00:200::1 / fd00:200::2.
fn link(node: &Netns, cluster: &Netns) {
    let (a, b) = (format!("v{}", &node.name[node.name.len() - 6..]), format!("w{}", &node.name[node.name.len() - 6..]));
    let a = a.replace('-', "x");
    let b = b.replace('-', "x");
    node.run(&["ip", "link", "add", &a, "type", "veth", "peer", "name", &b, "netns", &cluster.name]);
    node.run(&["ip", "addr", "add", "10.200.0.1/24", "dev", &a]);
    node.run(&["ip", "-6", "addr", "add", "fd00:200::1/64", "dev", &a, "nodad"]);
    node.run(&["ip", "link", "set", &a, "up"]);
    cluster.run(&["ip", "addr", "add", "10.200.0.2/24", "dev", &b]);
    cluster.run(&["ip", "-6", "addr", "add", "fd00:200::2/64", "dev", &b, "nodad"]);
    cluster.run(&["ip", "link", "set", &b, "up"]);
}

/// The addon's ConfigMap `node-local-dns` (tests/data/nodelocaldns.Corefile, placeholders as
/// kubernetes/kubernetes ships them) after the installer's sed: cluster domain, link-local IP and
/// kube-dns IP filled in; `__PILLAR__CLUSTER__DNS__` and `__PILLAR__UPSTREAM__SERVERS__` are left
/// for node-cache.
fn stock_template(local: &str, kube_dns: &str) -> String {
    include_str!("data/nodelocaldns.Corefile")
        .replace("__PILLAR__DNS__DOMAIN__", "cluster.local")
        .replace("__PILLAR__LOCAL__DNS__", local)
        .replace("__PILLAR__DNS__SERVER__", kube_dns)
}

/// Starts `kdns node-cache` in `node` with the template in a fresh directory; `args` are added
/// after the stock manifest's (`-localip … -conf … -upstreamsvc kube-dns-upstream`).
fn start(node: &Netns, template: &str, local_ips: &str, args: &[&str]) -> Kdns {
    let dir = temp_dir("nodecache");
    std::fs::create_dir_all(dir.join("coredns")).unwrap();
    std::fs::write(dir.join("coredns/Corefile.base"), template).unwrap();
    let conf = dir.join("Corefile");
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &node.name, BIN, "node-cache", "-localip", local_ips])
        .arg("-conf")
        .arg(&conf)
        .arg("-basecorefile")
        .arg(dir.join("coredns/Corefile.base"))
        .args(["-upstreamsvc", "kube-dns-upstream"])
        .args(args)
        .env("KUBE_DNS_UPSTREAM_SERVICE_HOST", "10.200.0.2")
        .current_dir(&dir);
    Kdns::from_command(cmd, dir, conf)
}

/// One DNS exchange from inside `ns`, retried until `deadline` for an answer.
fn ask(ns: &Netns, server: SocketAddr, name: &str, tcp: bool, within: Duration) -> Option<Message> {
    let packet = query(name, RecordType::A).to_vec().unwrap();
    ns.enter(move || {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let reply = if tcp {
                TcpStream::connect_timeout(&server, Duration::from_millis(300)).ok().and_then(|mut s| {
                    s.set_read_timeout(Some(Duration::from_millis(1000))).unwrap();
                    let mut framed = (packet.len() as u16).to_be_bytes().to_vec();
                    framed.extend_from_slice(&packet);
                    s.write_all(&framed).ok()?;
                    let mut len = [0u8; 2];
                    s.read_exact(&mut len).ok()?;
                    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
                    s.read_exact(&mut buf).ok()?;
                    Some(buf)
                })
            } else {
                let bind: SocketAddr = if server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().unwrap();
                let s = UdpSocket::bind(bind).unwrap();
                s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
                s.send_to(&packet, server).ok().and_then(|_| {
                    let mut buf = vec![0u8; 4096];
                    s.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
                })
            };
            if let Some(bytes) = reply {
                return Message::from_vec(&bytes).ok();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    })
}

fn http_in(ns: &Netns, addr: &'static str, path: &'static str) -> String {
    ns.enter(move || http_get(addr, path).map(|(_, body)| body).unwrap_or_default())
}

/// Our rules as the given save command prints them, sorted.
fn saved_rules(ns: &Netns, save: &str) -> Vec<String> {
    let (_, out) = ns.try_run(&[save]);
    let mut v: Vec<String> = out.lines().filter(|l| l.contains("NodeLocal DNS Cache")).map(str::to_string).collect();
    v.sort();
    v
}

/// node-cache's twelve rules per IP, written out by hand in `iptables-save` form.
fn expected_rules(ips: &[&str], port: u16, health: u16) -> Vec<String> {
    let mut v = Vec::new();
    for ip in ips {
        let ip = if ip.contains(':') { format!("{ip}/128") } else { format!("{ip}/32") };
        for p in ["tcp", "udp"] {
            v.push(format!(
                "-A PREROUTING -d {ip} -p {p} -m {p} --dport {port} -m comment --comment \"{SKIP}\" -j NOTRACK"
            ));
            v.push(format!("-A INPUT -d {ip} -p {p} -m {p} --dport {port} -m comment --comment \"{ALLOW}\" -j ACCEPT"));
            v.push(format!(
                "-A OUTPUT -s {ip} -p {p} -m {p} --sport {port} -m comment --comment \"{SKIP}\" -j NOTRACK"
            ));
            v.push(format!(
                "-A OUTPUT -s {ip} -p {p} -m {p} --sport {port} -m comment --comment \"{ALLOW}\" -j ACCEPT"
            ));
            v.push(format!(
                "-A OUTPUT -d {ip} -p {p} -m {p} --dport {port} -m comment --comment \"{SKIP}\" -j NOTRACK"
            ));
        }
        v.push(format!("-A OUTPUT -d {ip} -p tcp -m tcp --dport {health} -m comment --comment \"{SKIP}\" -j NOTRACK"));
        v.push(format!("-A OUTPUT -s {ip} -p tcp -m tcp --sport {health} -m comment --comment \"{SKIP}\" -j NOTRACK"));
    }
    v.sort();
    v
}

fn addresses(ns: &Netns, dev: &str) -> Option<Vec<String>> {
    let (ok, out) = ns.try_run(&["ip", "-o", "addr", "show", "dev", dev]);
    if !ok {
        return None;
    }
    Some(
        out.lines()
            .filter_map(|l| {
                l.split_whitespace().skip_while(|w| *w != "inet" && *w != "inet6").nth(1).map(str::to_string)
            })
            .filter(|a| !a.starts_with("fe80"))
            .collect(),
    )
}

fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A node and a cluster namespace, linked, with the cluster DNS upstream at 10.200.0.2:53 and
/// the node's resolv.conf pointing at it.
fn lab(tag: &str) -> (Netns, Netns, Upstream) {
    let node = Netns::new(tag);
    let cluster = Netns::new(&format!("{tag}c"));
    link(&node, &cluster);
    node.set_resolv_conf("nameserver 10.200.0.2\n");
    let upstream = cluster.enter(|| Upstream::start_at("10.200.0.2:53".parse().unwrap()));
    (node, cluster, upstream)
}

/// Waits until the supervisor reports that this node's cache serves the local IPs.
fn wait_intercepting(node: &Netns, nc: &Kdns) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let scrape = http_in(node, "127.0.0.1:9353", "/metrics");
        if metric(&scrape, "coredns_nodecache_intercepting") == Some(1.0) {
            return;
        }
        assert!(Instant::now() < deadline, "never intercepting; output:\n{}", nc.lines().join("\n"));
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn a_record(m: &Message) -> Option<IpAddr> {
    m.answers.iter().find_map(|r| match &r.data {
        hickory_proto::rr::RData::A(a) => Some(IpAddr::V4(a.0)),
        _ => None,
    })
}

#[test]
fn iptables_mode_with_the_stock_template() {
    if !can_run() {
        return;
    }
    let (node, _cluster, upstream) = lab("node");
    let kubedns = temp_dir("kubedns-cm");
    std::fs::write(kubedns.join("stubDomains"), r#"{"corp.example": ["10.200.0.2"]}"#).unwrap();
    let kubedns_arg = path_str(&kubedns);
    let mut nc = start(
        &node,
        &stock_template("169.254.20.10", "10.96.0.10"),
        "169.254.20.10,10.96.0.10",
        &[
            "-firewall",
            "iptables",
            "-syncinterval",
            "1s",
            "-configsyncinterval",
            "200ms",
            "-reloadwithsignal",
            "-kubednscm",
            &kubedns_arg,
        ],
    );
    let link_local: SocketAddr = "169.254.20.10:53".parse().unwrap();
    let cluster_ip: SocketAddr = "10.96.0.10:53".parse().unwrap();

    // Until the local server answers, the supervisor keeps DNS on the cluster DNS (link-local IP
    // DNATed there); then it takes DNS over.
    wait_intercepting(&node, &nc);
    // Answers on both local IPs; a cluster name misses to kube-dns-upstream over TCP.
    let r = ask(&node, link_local, "web.default.svc.cluster.local.", false, Duration::from_secs(15))
        .unwrap_or_else(|| panic!("no answer on 169.254.20.10; output:\n{}", nc.lines().join("\n")));
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a_record(&r), Some("192.0.2.1".parse().unwrap()));
    let r = ask(&node, cluster_ip, "api.default.svc.cluster.local.", true, Duration::from_secs(5))
        .expect("TCP on the ClusterIP");
    assert_eq!(a_record(&r), Some("192.0.2.1".parse().unwrap()));
    let seen = upstream.seen();
    let web: Vec<_> = seen.iter().filter(|s| s.qname == "web.default.svc.cluster.local.").collect();
    assert!(!web.is_empty() && web.iter().all(|s| s.tcp), "cluster names go over TCP: {web:?}");
    assert_eq!(web[0].src.ip(), "10.200.0.1".parse::<IpAddr>().unwrap());
    // Other names follow the node's resolv.conf over UDP; stub domains from the kube-dns
    // ConfigMap get their own block, over UDP too.
    let r = ask(&node, link_local, "www.example.org.", false, Duration::from_secs(5)).expect("external name");
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    let r = ask(&node, link_local, "host.corp.example.", false, Duration::from_secs(5)).expect("stub domain");
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    let seen = upstream.seen();
    assert!(seen.iter().any(|s| s.qname == "www.example.org." && !s.tcp), "{seen:?}");
    assert!(seen.iter().any(|s| s.qname == "host.corp.example." && !s.tcp), "{seen:?}");
    let conf = std::fs::read_to_string(&nc.conf).unwrap();
    assert!(conf.contains("forward . 10.200.0.2 {"), "{conf}");
    assert!(conf.contains("forward . /etc/resolv.conf"), "{conf}");
    assert!(conf.contains("corp.example:53 {\n    errors\n    cache 30\n    bind 169.254.20.10 10.96.0.10\n    forward . 10.200.0.2\n}"), "{conf}");
    assert!(!conf.contains("__PILLAR__") && !conf.contains("<nil>"));

    // The interface and the exact rule set.
    let want = expected_rules(&["169.254.20.10", "10.96.0.10"], 53, 8080);
    wait_until("24 rules", Duration::from_secs(5), || saved_rules(&node, "iptables-save") == want);
    let mut addrs = addresses(&node, "nodelocaldns").expect("interface exists");
    addrs.sort();
    assert_eq!(addrs, vec!["10.96.0.10/32".to_string(), "169.254.20.10/32".to_string()]);
    let kind = node.run(&["ip", "-d", "-o", "link", "show", "nodelocaldns"]);
    assert!(kind.contains("dummy") || kind.contains("bridge"), "{kind}");
    if kind.contains("bridge") {
        nc.wait_for_line("no dummy link type", Duration::from_secs(1));
    }

    // Metrics: node-cache's counter with every label, and the gauges it lacks.
    let scrape = http_in(&node, "127.0.0.1:9353", "/metrics");
    for label in ["iptables", "iptables_lock", "interface_add", "interface_check", "configmap"] {
        assert!(scrape.contains(&format!("coredns_nodecache_setup_errors_total{{errortype=\"{label}\"}}")), "{label}");
    }
    assert_eq!(metric(&scrape, "coredns_nodecache_rules_present"), Some(24.0), "{scrape}");
    assert_eq!(metric(&scrape, "coredns_nodecache_interface_present"), Some(1.0));
    assert!(metric(&scrape, "coredns_nodecache_last_successful_sync_timestamp_seconds").unwrap_or(0.0) > 1.7e9);
    let on_9253 = http_in(&node, "127.0.0.1:9253", "/metrics");
    assert!(on_9253.contains("coredns_nodecache_setup_errors_total"), "shared registry, as node-cache");
    assert!(on_9253.contains("coredns_dns_requests_total"));

    // Rules deleted by someone else, a duplicate left by an older agent, an address removed:
    // all repaired by the next sync.
    let deleted = format!("-d 169.254.20.10/32 -p udp -m udp --dport 53 -m comment --comment {SKIP:?} -j NOTRACK");
    let mut del: Vec<&str> = vec!["sh", "-c"];
    let script = format!(
        "iptables -t raw -D PREROUTING {deleted} && iptables -t filter -D INPUT -d 10.96.0.10/32 -p tcp -m tcp --dport 53 -m comment --comment {ALLOW:?} -j ACCEPT && iptables -t raw -I OUTPUT -s 10.96.0.10/32 -p udp -m udp --sport 53 -m comment --comment {SKIP:?} -j NOTRACK && ip addr del 10.96.0.10/32 dev nodelocaldns"
    );
    del.push(&script);
    node.run(&del);
    assert_ne!(saved_rules(&node, "iptables-save"), want);
    wait_until("rules and address put back", Duration::from_secs(5), || {
        saved_rules(&node, "iptables-save") == want
            && addresses(&node, "nodelocaldns").is_some_and(|a| a.contains(&"10.96.0.10/32".to_string()))
    });
    nc.wait_for_line(
        "Added back nodelocaldns rule - {raw PREROUTING [-d 169.254.20.10/32 -p udp",
        Duration::from_secs(1),
    );
    nc.wait_for_line("Removed 1 duplicate nodelocaldns rules", Duration::from_secs(1));
    // Many syncs later there is still exactly one copy of each rule.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(saved_rules(&node, "iptables-save"), want);

    // A broken template is kept out: the live Corefile stays, the error is counted, DNS answers.
    let before = std::fs::read_to_string(&nc.conf).unwrap();
    let base = nc.dir.join("coredns/Corefile.base");
    std::fs::write(
        &base,
        stock_template("169.254.20.10", "10.96.0.10").replace("    errors\n", "    errors\n    nosuchplugin\n"),
    )
    .unwrap();
    nc.wait_for_line("Rendered Corefile is invalid, keeping the current one", Duration::from_secs(5));
    assert_eq!(std::fs::read_to_string(&nc.conf).unwrap(), before);
    let scrape = http_in(&node, "127.0.0.1:9353", "/metrics");
    assert!(metric(&scrape, "coredns_nodecache_setup_errors_total{errortype=\"configmap\"}").unwrap_or(0.0) >= 1.0);
    assert!(ask(&node, link_local, "still.default.svc.cluster.local.", false, Duration::from_secs(3)).is_some());
    // A good template is rendered, written and (with -reloadwithsignal) loaded at once.
    std::fs::write(&base, stock_template("169.254.20.10", "10.96.0.10").replace("cache 30", "cache 15")).unwrap();
    nc.wait_for_line("Reloading complete", Duration::from_secs(5));
    assert!(std::fs::read_to_string(&nc.conf).unwrap().contains("cache 15"));

    // SIGTERM right after a reload request: no deadlock, and teardown removes everything.
    std::fs::write(&base, stock_template("169.254.20.10", "10.96.0.10").replace("cache 15", "cache 20")).unwrap();
    nc.signal(libc::SIGUSR1);
    nc.signal(libc::SIGTERM);
    assert_eq!(nc.wait_exit(Duration::from_secs(10)), Some(0), "{}", nc.lines().join("\n"));
    assert_eq!(saved_rules(&node, "iptables-save"), Vec::<String>::new());
    assert!(addresses(&node, "nodelocaldns").is_none(), "interface deleted");
    let out = nc.lines().join("\n");
    let (tear, removed) = (out.find("Tearing down").unwrap(), out.find("Removed 24 nodelocaldns rules").unwrap());
    assert!(tear < removed);
    let _ = std::fs::remove_dir_all(kubedns);
}

#[test]
fn nftables_backend_and_skipteardown() {
    if !can_run() {
        return;
    }
    let (node, _cluster, upstream) = lab("nft");
    // kube-proxy in nftables mode: `auto` must pick nftables.
    node.run(&["nft", "add", "table", "ip", "kube-proxy"]);
    let mut nc = start(
        &node,
        &stock_template("169.254.20.10", "10.96.0.10"),
        "169.254.20.10,10.96.0.10",
        &["-syncinterval", "1s", "-skipteardown"],
    );
    wait_intercepting(&node, &nc);
    let r =
        ask(&node, "10.96.0.10:53".parse().unwrap(), "db.default.svc.cluster.local.", false, Duration::from_secs(15))
            .unwrap_or_else(|| panic!("no answer; output:\n{}", nc.lines().join("\n")));
    assert_eq!(a_record(&r), Some("192.0.2.1".parse().unwrap()));
    assert!(upstream.seen().iter().any(|s| s.tcp && s.qname == "db.default.svc.cluster.local."));
    let table = || node.try_run(&["nft", "list", "table", "inet", "nodelocaldns"]).1;
    wait_until("nft table", Duration::from_secs(5), || table().matches("NodeLocal DNS Cache").count() == 24);
    let t = table();
    assert_eq!(t.matches(" notrack comment").count(), 16, "{t}");
    assert_eq!(t.matches(" accept comment").count(), 8, "{t}");
    assert!(t.contains("type filter hook prerouting priority raw; policy accept;"), "{t}");
    assert!(t.contains("ip daddr 169.254.20.10 udp dport 53 counter packets"), "{t}");
    assert!(saved_rules(&node, "iptables-save").is_empty(), "nothing in iptables with the nftables backend");

    // A rule deleted by hand comes back; the table holds one copy of each.
    let handle = node
        .run(&["nft", "-a", "list", "chain", "inet", "nodelocaldns", "raw-prerouting"])
        .lines()
        .find(|l| l.contains("ip daddr 10.96.0.10 udp dport 53"))
        .and_then(|l| l.rsplit("# handle ").next().map(|h| h.trim().to_string()))
        .unwrap();
    node.run(&["nft", "delete", "rule", "inet", "nodelocaldns", "raw-prerouting", "handle", &handle]);
    assert_eq!(table().matches("NodeLocal DNS Cache").count(), 23);
    wait_until("rule put back", Duration::from_secs(5), || table().matches("NodeLocal DNS Cache").count() == 24);

    // -skipteardown: SIGTERM leaves table and interface for the instance that takes over.
    nc.signal(libc::SIGTERM);
    assert_eq!(nc.wait_exit(Duration::from_secs(10)), Some(0));
    nc.wait_for_line("Skipping teardown", Duration::from_secs(1));
    assert_eq!(table().matches("NodeLocal DNS Cache").count(), 24);
    assert!(addresses(&node, "nodelocaldns").is_some_and(|a| a.len() == 2));
}

#[test]
fn ipv6_and_dual_stack_in_one_process() {
    if !can_run() {
        return;
    }
    let node = Netns::new("v6");
    let cluster = Netns::new("v6c");
    link(&node, &cluster);
    node.set_resolv_conf("nameserver fd00:200::2\n");
    let upstream = cluster.enter(|| Upstream::start_at("10.200.0.2:53".parse().unwrap()));
    let upstream6 = cluster.enter(|| Upstream::start_at("[fd00:200::2]:53".parse().unwrap()));
    // The template keeps __PILLAR__LOCAL__DNS__ for node-cache to fill with both families.
    let template = "cluster.local:53 {
    errors
    cache 30
    bind __PILLAR__LOCAL__DNS__
    forward . __PILLAR__CLUSTER__DNS__ {
            force_tcp
    }
    }
.:53 {
    errors
    cache 30
    bind __PILLAR__LOCAL__DNS__
    forward . __PILLAR__UPSTREAM__SERVERS__
    }
";
    // Default -syncinterval (60 s): the rules must come with the listeners, not a minute later.
    let started = Instant::now();
    let mut nc = start(&node, template, "169.254.20.10,fd00:10::10", &["-firewall", "iptables"]);
    wait_intercepting(&node, &nc);
    let v6: SocketAddr = "[fd00:10::10]:53".parse().unwrap();
    let r = ask(&node, v6, "svc.default.svc.cluster.local.", false, Duration::from_secs(15))
        .unwrap_or_else(|| panic!("no answer over IPv6; output:\n{}", nc.lines().join("\n")));
    assert_eq!(a_record(&r), Some("192.0.2.1".parse().unwrap()));
    let r = ask(&node, v6, "ext.example.net.", true, Duration::from_secs(5)).expect("IPv6 TCP, external name");
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert!(ask(
        &node,
        "169.254.20.10:53".parse().unwrap(),
        "v4.default.svc.cluster.local.",
        false,
        Duration::from_secs(5)
    )
    .is_some());
    assert!(upstream.seen().iter().any(|s| s.tcp && s.qname == "svc.default.svc.cluster.local."));
    assert!(upstream6.seen().iter().any(|s| s.qname == "ext.example.net."), "resolv.conf upstream over IPv6");
    wait_until("rules for both families", Duration::from_secs(5), || {
        saved_rules(&node, "iptables-save") == expected_rules(&["169.254.20.10"], 53, 8080)
            && saved_rules(&node, "ip6tables-save") == expected_rules(&["fd00:10::10"], 53, 8080)
    });
    assert!(started.elapsed() < Duration::from_secs(30), "rules installed at start, not after -syncinterval");
    let mut addrs = addresses(&node, "nodelocaldns").unwrap();
    addrs.sort();
    assert_eq!(addrs, vec!["169.254.20.10/32".to_string(), "fd00:10::10/128".to_string()]);
    let conf = std::fs::read_to_string(&nc.conf).unwrap();
    assert!(conf.contains("bind 169.254.20.10 fd00:10::10"), "{conf}");
    nc.signal(libc::SIGTERM);
    assert_eq!(nc.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(saved_rules(&node, "iptables-save").is_empty() && saved_rules(&node, "ip6tables-save").is_empty());
    assert!(addresses(&node, "nodelocaldns").is_none());
}

#[test]
fn legacy_iptables_is_used_when_kubelet_uses_it_and_an_existing_interface_is_kept() {
    if !can_run() {
        return;
    }
    let node = Netns::new("leg");
    // kubelet's hint chain in legacy iptables: the wrapper logic must pick legacy.
    node.run(&["iptables-legacy", "-t", "mangle", "-N", "KUBE-IPTABLES-HINT"]);
    // An interface that already exists (made by someone else) is used as it is.
    node.run(&["ip", "link", "add", "nodelocaldns", "type", "bridge"]);
    node.run(&["ip", "link", "set", "nodelocaldns", "up"]);
    let template = ".:53 {\n    bind __PILLAR__LOCAL__DNS__\n    whoami\n}\n";
    let mut nc = start(&node, template, "169.254.20.10", &[]);
    let r = ask(&node, "169.254.20.10:53".parse().unwrap(), "who.example.", false, Duration::from_secs(15))
        .unwrap_or_else(|| panic!("no answer; output:\n{}", nc.lines().join("\n")));
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    let want = expected_rules(&["169.254.20.10"], 53, 8080);
    wait_until("legacy rules", Duration::from_secs(5), || saved_rules(&node, "iptables-legacy-save") == want);
    assert!(saved_rules(&node, "iptables-nft-save").is_empty());
    assert!(!nc.lines().iter().any(|l| l.contains("Added interface")), "existing interface reused");
    nc.signal(libc::SIGINT);
    assert_eq!(nc.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(saved_rules(&node, "iptables-legacy-save").is_empty());
}
