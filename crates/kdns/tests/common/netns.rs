//! Network-namespace helpers for the node-cache tests: namespaces created and removed by the
//! test, veth links, threads that enter a namespace to open sockets there, and node-cache
//! started inside one. Needs root.
#![allow(dead_code)]

use super::upstream::Upstream;
use super::*;
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const SKIP: &str = "NodeLocal DNS Cache: skip conntrack";
pub const ALLOW: &str = "NodeLocal DNS Cache: allow DNS traffic";

pub fn can_run() -> bool {
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

pub static SEQ: AtomicU32 = AtomicU32::new(0);

/// A network namespace, deleted (with its /etc/netns overrides) on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = format!("kdns-{tag}-{}-{}", std::process::id() % 100000, SEQ.fetch_add(1, Ordering::Relaxed));
        sh(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.run(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Runs a command inside the namespace; panics with its output when it fails.
    pub fn run(&self, args: &[&str]) -> String {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        sh(&full)
    }

    /// Like [`Netns::run`] but returns success and output instead of panicking.
    pub fn try_run(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("ip").args(["netns", "exec", &self.name]).args(args).output().unwrap();
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    }

    /// `/etc/resolv.conf` as processes started with `ip netns exec` see it.
    pub fn set_resolv_conf(&self, text: &str) {
        let dir = PathBuf::from("/etc/netns").join(&self.name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("resolv.conf"), text).unwrap();
    }

    /// Runs `f` on a thread that has entered the namespace: sockets it opens live there.
    pub fn enter<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = self.path();
        std::thread::spawn(move || {
            join_netns(&path);
            f()
        })
        .join()
        .unwrap()
    }

    /// The namespace's file, for [`join_netns`] on threads of a test's own.
    pub fn path(&self) -> String {
        format!("/var/run/netns/{}", self.name)
    }
}

/// Moves the calling thread into the namespace at `path`: sockets it opens from then on live there.
#[allow(unsafe_code)]
pub fn join_netns(path: &str) {
    let file = std::fs::File::open(path).unwrap();
    // SAFETY: setns(2) on this thread only, with a namespace fd we own.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
}

impl Netns {}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
        let _ = std::fs::remove_dir_all(PathBuf::from("/etc/netns").join(&self.name));
    }
}

pub fn sh(args: &[&str]) -> String {
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
pub fn link(node: &Netns, cluster: &Netns) {
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

/// The addon's ConfigMap `node-local-dns` (the Corefile in deploy/node-local-dns.yaml,
/// placeholders as kubernetes/kubernetes ships them) after the installer's sed: cluster domain,
/// link-local IP and kube-dns IP filled in; `__PILLAR__CLUSTER__DNS__` and
/// `__PILLAR__UPSTREAM__SERVERS__` are left for node-cache.
pub fn stock_template(local: &str, kube_dns: &str) -> String {
    manifest_corefile(include_str!("../../../../deploy/node-local-dns.yaml"))
        .replace("__PILLAR__DNS__DOMAIN__", "cluster.local")
        .replace("__PILLAR__LOCAL__DNS__", local)
        .replace("__PILLAR__DNS__SERVER__", kube_dns)
}

/// The `Corefile` of a manifest's ConfigMap, unindented.
fn manifest_corefile(manifest: &str) -> String {
    let start = manifest.find("  Corefile: |\n").expect("Corefile in the manifest") + "  Corefile: |\n".len();
    manifest[start..]
        .lines()
        .take_while(|l| l.starts_with("    ") || l.is_empty())
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect()
}

/// The ConfigMap Corefile of deploy/node-local-dns-ebpf.yaml (eBPF dataplanes, `-redirect`)
/// with the cluster domain filled in and the lameduck shortened to `lameduck`.
pub fn ebpf_template(lameduck: &str) -> String {
    manifest_corefile(include_str!("../../../../deploy/node-local-dns-ebpf.yaml"))
        .replace("__PILLAR__DNS__DOMAIN__", "cluster.local")
        .replace("lameduck 5s", &format!("lameduck {lameduck}"))
}

/// An HTTP GET from inside `ns`: the status code, or `None` when nothing answers.
pub fn http_status_in(ns: &Netns, addr: &'static str, path: &'static str) -> Option<u16> {
    ns.enter(move || http_get(addr, path).map(|(status, _)| status))
}

/// Starts `kdns node-cache` in `node` with the template in a fresh directory; `args` are added
/// after the stock manifest's (`-localip … -conf … -upstreamsvc kube-dns-upstream`).
pub fn start(node: &Netns, template: &str, local_ips: &str, args: &[&str]) -> Kdns {
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
        // Each instance its own snapshot file (tests run in parallel); a test may pass another.
        .arg("-cachesnapshot")
        .arg(dir.join("cache.snapshot"))
        .args(args)
        .env("KUBE_DNS_UPSTREAM_SERVICE_HOST", "10.200.0.2")
        .current_dir(&dir);
    Kdns::from_command(cmd, dir, conf)
}

/// One DNS exchange from inside `ns`, retried until `deadline` for an answer.
pub fn ask(ns: &Netns, server: SocketAddr, name: &str, tcp: bool, within: Duration) -> Option<Message> {
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

pub fn http_in(ns: &Netns, addr: &'static str, path: &'static str) -> String {
    ns.enter(move || http_get(addr, path).map(|(_, body)| body).unwrap_or_default())
}

/// Our rules as the given save command prints them, sorted.
pub fn saved_rules(ns: &Netns, save: &str) -> Vec<String> {
    let (_, out) = ns.try_run(&[save]);
    let mut v: Vec<String> = out.lines().filter(|l| l.contains("NodeLocal DNS Cache")).map(str::to_string).collect();
    v.sort();
    v
}

/// node-cache's twelve rules per IP, written out by hand in `iptables-save` form.
pub fn expected_rules(ips: &[&str], port: u16, health: u16) -> Vec<String> {
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

pub fn addresses(ns: &Netns, dev: &str) -> Option<Vec<String>> {
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

pub fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A node and a cluster namespace, linked, with the cluster DNS upstream at 10.200.0.2:53 and
/// the node's resolv.conf pointing at it.
pub fn lab(tag: &str) -> (Netns, Netns, Upstream) {
    let node = Netns::new(tag);
    let cluster = Netns::new(&format!("{tag}c"));
    link(&node, &cluster);
    node.set_resolv_conf("nameserver 10.200.0.2\n");
    let upstream = cluster.enter(|| Upstream::start_at("10.200.0.2:53".parse().unwrap()));
    (node, cluster, upstream)
}

/// Waits until the supervisor reports that this node's cache serves the local IPs.
pub fn wait_intercepting(node: &Netns, nc: &Kdns) {
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

pub fn a_record(m: &Message) -> Option<IpAddr> {
    m.answers.iter().find_map(|r| match &r.data {
        hickory_proto::rr::RData::A(a) => Some(IpAddr::V4(a.0)),
        _ => None,
    })
}

/// [`lab`] plus a pod: a "pod" namespace behind the node (10.244.0.2, default route via the
/// node, which forwards), and kube-proxy's DNAT of the kube-dns ClusterIP 10.96.0.10 to the
/// cluster DNS (10.200.0.2) in the node's nat table, as iptables-mode kube-proxy installs it.
pub fn pod_lab(tag: &str) -> (Netns, Netns, Netns, Upstream) {
    let (node, cluster, upstream) = lab(tag);
    let pod = Netns::new(&format!("{tag}p"));
    let suffix = node.name[node.name.len() - 6..].replace('-', "x");
    let (a, b) = (format!("p{suffix}"), format!("q{suffix}"));
    node.run(&["ip", "link", "add", &a, "type", "veth", "peer", "name", &b, "netns", &pod.name]);
    node.run(&["ip", "addr", "add", "10.244.0.1/24", "dev", &a]);
    node.run(&["ip", "link", "set", &a, "up"]);
    pod.run(&["ip", "addr", "add", "10.244.0.2/24", "dev", &b]);
    pod.run(&["ip", "link", "set", &b, "up"]);
    pod.run(&["ip", "route", "add", "default", "via", "10.244.0.1"]);
    node.run(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    cluster.run(&["ip", "route", "add", "10.244.0.0/24", "via", "10.200.0.1"]);
    for chain in ["PREROUTING", "OUTPUT"] {
        for proto in ["udp", "tcp"] {
            node.run(&[
                "iptables",
                "-t",
                "nat",
                "-A",
                chain,
                "-d",
                "10.96.0.10/32",
                "-p",
                proto,
                "--dport",
                "53",
                "-j",
                "DNAT",
                "--to-destination",
                "10.200.0.2:53",
            ]);
        }
    }
    (node, cluster, pod, upstream)
}

/// dnsperf's summary.
#[derive(Debug, Default, Clone, Copy)]
pub struct Perf {
    pub sent: u64,
    pub completed: u64,
    pub lost: u64,
}

/// Runs dnsperf inside `ns` against `server` for `secs` seconds at `qps`, 1 s query timeout.
pub fn dnsperf(
    ns: &Netns,
    server: &str,
    names: &std::path::Path,
    secs: u32,
    qps: u32,
) -> std::thread::JoinHandle<Perf> {
    let args: Vec<String> = [
        "ip",
        "netns",
        "exec",
        &ns.name,
        "dnsperf",
        "-s",
        server,
        "-d",
        &path_str(names),
        "-l",
        &secs.to_string(),
        "-Q",
        &qps.to_string(),
        "-t",
        "1",
        "-c",
        "8",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    std::thread::spawn(move || {
        let out = Command::new(&args[0]).args(&args[1..]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| {
                    panic!("no {name:?} in dnsperf output:\n{text}{}", String::from_utf8_lossy(&out.stderr))
                })
        };
        Perf { sent: field("Queries sent:"), completed: field("Queries completed:"), lost: field("Queries lost:") }
    })
}

/// A query file of `n` names under `prefix`.
pub fn names_file(dir: &std::path::Path, prefix: &str, n: usize) -> PathBuf {
    let path = dir.join(format!("{prefix}.names"));
    let text: String = (0..n).map(|i| format!("{prefix}{i}.default.svc.cluster.local A\n")).collect();
    std::fs::write(&path, text).unwrap();
    path
}

/// Asks `server` from inside `ns` every 20 ms (fresh socket, 200 ms timeout) until `stop`;
/// returns the longest time without an answer.
pub fn gap_watch(
    ns: &Netns,
    server: SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Duration> {
    let path = ns.path();
    std::thread::spawn(move || {
        join_netns(&path);
        let mut last_ok = Instant::now();
        let mut worst = Duration::ZERO;
        let mut i = 0u32;
        while !stop.load(Ordering::Relaxed) {
            i += 1;
            let packet = query(&format!("gap{}.default.svc.cluster.local.", i % 50), RecordType::A).to_vec().unwrap();
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
            let mut buf = [0u8; 512];
            if s.send_to(&packet, server).is_ok() && s.recv(&mut buf).is_ok() {
                worst = worst.max(last_ok.elapsed());
                last_ok = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        worst.max(last_ok.elapsed())
    })
}

/// The pids whose parent is `pid`.
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else { continue };
        let Some(after) = stat.rsplit_once(") ").map(|x| x.1) else { continue };
        if after.split_whitespace().nth(1).and_then(|v| v.parse::<u32>().ok()) == Some(pid) {
            out.push(p);
        }
    }
    out
}

/// VmRSS of `pid` in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[allow(unsafe_code)]
pub fn kill(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a pid this test started (or its child).
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

/// One UDP query from inside `ns`, waiting up to `timeout` for the answer (a patient client, as
/// glibc's 5 s per attempt).
pub fn ask_once(ns: &Netns, server: SocketAddr, name: &str, timeout: Duration) -> Option<Message> {
    ask_once_from(ns, IpAddr::from([0, 0, 0, 0]), server, name, timeout)
}

/// [`ask_once`] from the address `src` of the namespace (one of several "pods" behind it).
pub fn ask_once_from(ns: &Netns, src: IpAddr, server: SocketAddr, name: &str, timeout: Duration) -> Option<Message> {
    let packet = query(name, RecordType::A).to_vec().unwrap();
    ns.enter(move || {
        let s = UdpSocket::bind((src, 0)).unwrap();
        s.set_read_timeout(Some(timeout)).unwrap();
        s.send_to(&packet, server).ok()?;
        let mut buf = vec![0u8; 4096];
        let n = s.recv(&mut buf).ok()?;
        Message::from_vec(&buf[..n]).ok()
    })
}
