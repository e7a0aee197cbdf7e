//! A node cache that never takes the node's DNS down, proven in network namespaces under load:
//! a pod namespace runs dnsperf against the kube-dns ClusterIP through the node, whose nat table
//! has kube-proxy's DNAT to the cluster DNS in a third namespace; kdns node-cache intercepts the
//! ClusterIP with NOTRACK. Each test prints its dnsperf numbers (`failopen:` lines) and asserts
//! the outcome. Needs root, like the other namespace tests.

mod common;

use common::netns::*;
use common::*;
use hickory_proto::op::ResponseCode;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLUSTER_IP: &str = "10.96.0.10";

fn cluster_ip() -> SocketAddr {
    format!("{CLUSTER_IP}:53").parse().unwrap()
}

/// The supervised DNS server's pid (the supervisor's only child).
fn server_pid(nc: &Kdns) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let [pid] = children_of(nc.child.id())[..] {
            return pid;
        }
        assert!(Instant::now() < deadline, "no DNS server child");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn report(what: &str, p: &Perf, gap: Duration) {
    eprintln!(
        "failopen: {what}: sent {} completed {} lost {} ({:.3}%), longest gap without answers {} ms",
        p.sent,
        p.completed,
        p.lost,
        100.0 * p.lost as f64 / p.sent.max(1) as f64,
        gap.as_millis()
    );
}

/// Kills or stops the DNS server under load; DNS must come back through the fallback within 2 s.
fn server_dies(tag: &str, sig: i32, reason: &str) {
    let (node, _cluster, pod, upstream) = pod_lab(tag);
    let nc = start(&node, &stock_template("169.254.20.10", CLUSTER_IP), &format!("169.254.20.10,{CLUSTER_IP}"), &[]);
    wait_intercepting(&node, &nc);
    let names = names_file(&nc.dir, "svc", 500);
    let perf = dnsperf(&pod, CLUSTER_IP, &names, 8, 2000);
    let stop = Arc::new(AtomicBool::new(false));
    std::thread::sleep(Duration::from_millis(1500));
    let supervisor_rss_before = rss_kib(nc.child.id());
    let gaps = gap_watch(&pod, cluster_ip(), stop.clone());
    std::thread::sleep(Duration::from_millis(500));
    let first = server_pid(&nc);
    let served_before = upstream.seen().len();
    kill(first, sig);
    // The supervisor fails open, then restarts the server and takes DNS back.
    nc.wait_for_line(&format!("Failing open ({reason})"), Duration::from_secs(5));
    wait_until("DNS taken back", Duration::from_secs(10), || nc.count_lines("Local DNS server answers") >= 2);
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    let gap = gaps.join().unwrap();
    let p = perf.join().unwrap();
    report(&format!("server {}", if sig == libc::SIGKILL { "SIGKILL" } else { "SIGSTOP" }), &p, gap);
    assert!(gap < Duration::from_secs(2), "DNS was down for {gap:?}\n{}", nc.lines().join("\n"));
    assert_ne!(server_pid(&nc), first, "a new server runs");
    assert!(upstream.seen().len() > served_before, "the fallback reached the cluster DNS");
    // Back to normal: the full rule set, the ClusterIP answered by the node's cache.
    let want = expected_rules(&["169.254.20.10", CLUSTER_IP], 53, 8080);
    wait_until("rules restored", Duration::from_secs(5), || saved_rules(&node, "iptables-save") == want);
    let scrape = http_in(&node, "127.0.0.1:9353", "/metrics");
    assert_eq!(metric(&scrape, &format!("coredns_nodecache_failopen_total{{reason=\"{reason}\"}}")), Some(1.0));
    assert_eq!(metric(&scrape, "coredns_nodecache_server_restarts_total"), Some(1.0));
    assert_eq!(metric(&scrape, "coredns_nodecache_intercepting"), Some(1.0));
    let rss = rss_kib(nc.child.id());
    eprintln!("failopen: supervisor RSS {supervisor_rss_before} KiB before, {rss} KiB after the restart");
    assert!(rss < 64 * 1024, "supervisor RSS {rss} KiB");
    // SIGKILL: everything sent after the kill reaches a live socket within milliseconds; a
    // stopped server holds what was queued until it is declared hung.
    let budget = if sig == libc::SIGKILL { p.sent / 100 } else { p.sent / 4 };
    assert!(p.lost <= budget, "lost {} of {}", p.lost, p.sent);
}

#[test]
fn sigkill_of_the_server_fails_open_and_recovers() {
    if !can_run() {
        return;
    }
    server_dies("kill", libc::SIGKILL, "exited");
}

#[test]
fn a_hung_server_fails_open_and_is_replaced() {
    if !can_run() {
        return;
    }
    server_dies("stop", libc::SIGSTOP, "hung");
}

#[test]
fn rolling_upgrade_of_two_instances_loses_nothing() {
    if !can_run() {
        return;
    }
    let (node, _cluster, pod, upstream) = pod_lab("roll");
    let template = stock_template("169.254.20.10", CLUSTER_IP);
    let ips = format!("169.254.20.10,{CLUSTER_IP}");
    let mut old = start(&node, &template, &ips, &[]);
    wait_intercepting(&node, &old);
    let names = names_file(&old.dir, "roll", 300);
    let perf = dnsperf(&pod, CLUSTER_IP, &names, 8, 2000);
    std::thread::sleep(Duration::from_millis(1500));
    let misses_before = upstream.seen().len();
    // maxSurge 1: the new pod starts next to the old one (same ports, SO_REUSEPORT)…
    let new = start(&node, &template, &ips, &[]);
    new.wait_for_line("Local DNS server answers", Duration::from_secs(10));
    new.wait_for_line("Loaded", Duration::from_secs(1));
    old.wait_for_line("handing interface and rules over", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(1000));
    // …then the old one gets SIGTERM: it drains and leaves interface and rules in place.
    old.signal(libc::SIGTERM);
    assert_eq!(old.wait_exit(Duration::from_secs(15)), Some(0), "{}", old.lines().join("\n"));
    old.wait_for_line("Another instance", Duration::from_secs(1));
    let p = perf.join().unwrap();
    report("rolling upgrade", &p, Duration::ZERO);
    assert_eq!(
        p.lost,
        0,
        "queries lost during the upgrade\nold:\n{}\nnew:\n{}",
        old.lines().join("\n"),
        new.lines().join("\n")
    );
    assert_eq!(saved_rules(&node, "iptables-save"), expected_rules(&["169.254.20.10", CLUSTER_IP], 53, 8080));
    let handed =
        new.lines().into_iter().find(|l| l.contains("cache entries from the running instance")).unwrap_or_default();
    eprintln!(
        "failopen: rolling upgrade: {handed}; upstream queries during the overlap {}",
        upstream.seen().len() - misses_before
    );
    let r = ask(&pod, cluster_ip(), "after.default.svc.cluster.local.", false, Duration::from_secs(3))
        .expect("new instance answers");
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
}

#[test]
fn cached_cluster_names_survive_a_dead_cluster_dns() {
    if !can_run() {
        return;
    }
    // Positive answers capped at 2 s (instead of the stock 30 s) so the test does not wait long.
    let template = stock_template("169.254.20.10", CLUSTER_IP).replace("success 9984 30", "success 9984 2 1");
    for stale in [true, false] {
        let (node, cluster, pod, _upstream) = pod_lab(if stale { "stale" } else { "nostale" });
        let args: &[&str] = if stale { &[] } else { &["-servestale", "0"] };
        let nc = start(&node, &template, &format!("169.254.20.10,{CLUSTER_IP}"), args);
        wait_intercepting(&node, &nc);
        let names: Vec<String> = (0..20).map(|i| format!("cached{i}.default.svc.cluster.local.")).collect();
        for n in &names {
            let r = ask(&pod, cluster_ip(), n, false, Duration::from_secs(3)).expect("warm-up answer");
            // Through the node cache (its 2 s cap), not straight from the cluster DNS (TTL 300).
            assert!(r.answers.first().is_some_and(|a| a.ttl <= 2), "{n} warmed past the cache: {r:?}");
        }
        // The cluster DNS goes away (its link is cut) and the cached answers expire.
        cluster.run(&["sh", "-c", "for l in $(ls /sys/class/net); do [ $l = lo ] || ip link set $l down; done"]);
        std::thread::sleep(Duration::from_millis(2500));
        // All cached names at once, as a node's pods would ask, each client waiting 4 s.
        let pod = Arc::new(pod);
        let started = Instant::now();
        let asks: Vec<_> = names
            .iter()
            .map(|n| {
                let (pod, n) = (pod.clone(), n.clone());
                std::thread::spawn(move || {
                    let t = Instant::now();
                    (ask_once(&pod, cluster_ip(), &n, Duration::from_secs(4)), t.elapsed())
                })
            })
            .collect();
        let mut answered = 0;
        let mut ttl = None;
        let mut slowest = Duration::ZERO;
        for a in asks {
            let (r, took) = a.join().unwrap();
            if let Some(r) = r.filter(|r| r.metadata.response_code == ResponseCode::NoError && !r.answers.is_empty()) {
                answered += 1;
                ttl = Some(r.answers[0].ttl);
                slowest = slowest.max(took);
            }
        }
        eprintln!(
            "failopen: cluster DNS down, serve-stale {}: {answered}/{} cached names answered, slowest {} ms (all in {} ms)",
            if stale { "on (default)" } else { "off" },
            names.len(),
            slowest.as_millis(),
            started.elapsed().as_millis()
        );
        if stale {
            if answered != names.len() {
                // What the cache saw, and the log lines that come after the clients gave up.
                let scrape = http_in(&node, "127.0.0.1:9253", "/metrics");
                std::thread::sleep(Duration::from_secs(3));
                let cache: Vec<&str> = scrape.lines().filter(|l| l.starts_with("coredns_cache_")).collect();
                panic!("{answered}/{} stale answers\n{}\n{}", names.len(), cache.join("\n"), nc.lines().join("\n"));
            }
            assert_eq!(ttl, Some(30), "RFC 8767 stale TTL");
            assert!(slowest < Duration::from_millis(2500), "client timer 1.8 s: {slowest:?}");
            // The failure recheck timer: once a refresh failed, stale answers come at once.
            std::thread::sleep(Duration::from_secs(3));
            let t = Instant::now();
            let again = ask_once(&pod, cluster_ip(), &names[0], Duration::from_secs(4)).expect("stale again");
            eprintln!("failopen: second stale answer in {} ms", t.elapsed().as_millis());
            assert_eq!(again.answers[0].ttl, 30);
            assert!(t.elapsed() < Duration::from_millis(500), "{:?}", t.elapsed());
            let scrape = http_in(&node, "127.0.0.1:9253", "/metrics");
            assert!(scrape.contains("coredns_cache_served_stale_total"), "{scrape}");
        } else {
            assert_eq!(answered, 0, "without serve-stale a dead cluster DNS fails cached names too");
        }
    }
}

#[test]
fn a_restart_starts_with_a_warm_cache() {
    if !can_run() {
        return;
    }
    let (node, _cluster, pod, upstream) = pod_lab("warm");
    let template = stock_template("169.254.20.10", CLUSTER_IP);
    let ips = format!("169.254.20.10,{CLUSTER_IP}");
    let snapshot = temp_dir("warm-snapshot").join("cache.snapshot");
    let snapshot_arg = path_str(&snapshot);
    let count = 400;
    let run = |label: &str, snapshot: &str| -> usize {
        let mut nc = start(&node, &template, &ips, &["-cachesnapshot", snapshot]);
        wait_intercepting(&node, &nc);
        let before = upstream.seen().iter().filter(|s| s.qname.starts_with("warm")).count();
        let names = names_file(&nc.dir, "warm", count);
        let p = dnsperf(&pod, CLUSTER_IP, &names, 3, 1000).join().unwrap();
        let misses = upstream.seen().iter().filter(|s| s.qname.starts_with("warm")).count() - before;
        eprintln!(
            "failopen: {label}: {misses} queries to the cluster DNS for {count} names ({} sent, {} lost)",
            p.sent, p.lost
        );
        nc.signal(libc::SIGTERM);
        assert_eq!(nc.wait_exit(Duration::from_secs(15)), Some(0));
        misses
    };
    let cold = run("cold start", &snapshot_arg);
    assert!(snapshot.exists(), "snapshot written on exit");
    let warm = run("restart with the snapshot", &snapshot_arg);
    eprintln!("failopen: warm/cold misses = {warm}/{cold} = {:.3}", warm as f64 / cold.max(1) as f64);
    assert!(cold >= count / 2, "the cold start misses ({cold})");
    assert!(warm * 10 <= cold, "warm start: {warm} misses vs {cold} cold");
}

#[test]
fn link_local_mode_falls_back_by_dnat_with_nftables() {
    if !can_run() {
        return;
    }
    // IPVS-style setup: pods ask 169.254.20.10 only, so nothing else would answer there; the
    // fail-open set DNATs it to the cluster DNS. Rules through the native nftables backend.
    let (node, _cluster, pod, upstream) = pod_lab("ll");
    let template = stock_template("169.254.20.10", "").replace("bind 169.254.20.10 ", "bind 169.254.20.10");
    let nc = start(&node, &template, "169.254.20.10", &["-firewall", "nftables"]);
    wait_intercepting(&node, &nc);
    let link_local: SocketAddr = "169.254.20.10:53".parse().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let gaps = gap_watch(&pod, link_local, stop.clone());
    std::thread::sleep(Duration::from_millis(500));
    let table = || node.try_run(&["nft", "list", "table", "inet", "nodelocaldns"]).1;
    assert_eq!(table().matches("NodeLocal DNS Cache").count(), 12);
    // Stopped, so the fallback state can be looked at before the restart replaces it.
    let first = server_pid(&nc);
    let served_before = upstream.seen().len();
    kill(first, libc::SIGSTOP);
    nc.wait_for_line("Failing open (hung)", Duration::from_secs(5));
    wait_until("DNS taken back", Duration::from_secs(10), || nc.count_lines("Local DNS server answers") >= 2);
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let gap = gaps.join().unwrap();
    eprintln!("failopen: link-local mode, server SIGSTOP: longest gap without answers {} ms", gap.as_millis());
    assert!(gap < Duration::from_secs(2), "{gap:?}\n{}", nc.lines().join("\n"));
    assert!(upstream.seen().len() > served_before, "answers came from the cluster DNS meanwhile");
    assert!(
        nc.lines().iter().any(|l| l.contains("DNAT --to-destination 10.200.0.2:53")),
        "the DNAT rules were installed"
    );
    // Back to interception: the DNAT is gone again.
    let t = table();
    assert_eq!(t.matches("NodeLocal DNS Cache").count(), 12, "{t}\n{}", nc.lines().join("\n"));
    assert!(!t.contains("dnat"), "{t}");
}
