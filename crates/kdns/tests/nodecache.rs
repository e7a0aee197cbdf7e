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

use common::netns::*;
use common::upstream::Upstream;
use common::*;
use hickory_proto::op::ResponseCode;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

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
    let status = http_in(&node, "127.0.0.1:9253", "/status.json");
    assert!(status.contains("\"nodecache\":{") && status.contains("\"intercepting\":1"), "{status}");

    // Rules deleted by someone else, a duplicate left by an older agent, an address removed:
    // all repaired by the next sync.
    let deleted = format!("-d 169.254.20.10/32 -p udp -m udp --dport 53 -m comment --comment {SKIP:?} -j NOTRACK");
    let mut del: Vec<&str> = vec!["sh", "-c"];
    let script = format!(
        "iptables -t raw -D PREROUTING {deleted} && iptables -t filter -D INPUT -d 10.96.0.10/32 -p tcp -m tcp --dport 53 -m comment --comment {ALLOW:?} -j ACCEPT && iptables -t raw -I OUTPUT -s 10.96.0.10/32 -p udp -m udp --sport 53 -m comment --comment {SKIP:?} -j NOTRACK && ip addr del 10.96.0.10/32 dev nodelocaldns"
    );
    del.push(&script);
    // The intercepting sync has logged this rule once already: the repair logs it a second time.
    let readded = "Added back nodelocaldns rule - {raw PREROUTING [-d 169.254.20.10/32 -p udp";
    let logged_before = nc.count_lines(readded);
    node.run(&del);
    assert_ne!(saved_rules(&node, "iptables-save"), want);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let rules = saved_rules(&node, "iptables-save");
        let address_back = addresses(&node, "nodelocaldns").is_some_and(|a| a.contains(&"10.96.0.10/32".to_string()));
        let logged =
            nc.count_lines(readded) > logged_before && nc.count_lines("Removed 1 duplicate nodelocaldns rules") > 0;
        if rules == want && address_back && logged {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rules, address and the repair's log lines not all back (rules equal: {}, address: {address_back}, logged: {logged})\nrules:\n{}\noutput:\n{}",
            rules == want,
            rules.join("\n"),
            nc.lines().join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
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
    // node-cache's own layout: one process, no supervisor.
    let mut nc = start(&node, template, "169.254.20.10", &["-supervise=false"]);
    let r = ask(&node, "169.254.20.10:53".parse().unwrap(), "who.example.", false, Duration::from_secs(15))
        .unwrap_or_else(|| panic!("no answer; output:\n{}", nc.lines().join("\n")));
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    let want = expected_rules(&["169.254.20.10"], 53, 8080);
    wait_until("legacy rules", Duration::from_secs(5), || saved_rules(&node, "iptables-legacy-save") == want);
    assert!(saved_rules(&node, "iptables-nft-save").is_empty());
    assert!(!nc.lines().iter().any(|l| l.contains("Added interface")), "existing interface reused");
    assert!(children_of(nc.child.id()).is_empty(), "no supervised child with -supervise=false");
    nc.signal(libc::SIGINT);
    assert_eq!(nc.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(saved_rules(&node, "iptables-legacy-save").is_empty());
}

/// eBPF dataplanes (Cilium's local redirect policy, Calico eBPF): with `-redirect` the agent sets
/// up no interface and no firewall rule, listens on the pod's own address, and `/ready` follows
/// the server: ready once it answers, unready at SIGTERM while the server still answers through
/// its lameduck, then a clean exit.
#[test]
fn redirect_mode_touches_nothing_and_readiness_follows_the_server() {
    if !can_run() {
        return;
    }
    let (node, _cluster, upstream) = lab("redir");
    let mut nc = start(&node, &ebpf_template("2s"), "10.200.0.1", &["-redirect"]);
    let pod: SocketAddr = "10.200.0.1:53".parse().unwrap();
    wait_until("/ready 200", Duration::from_secs(15), || {
        http_status_in(&node, "127.0.0.1:9353", "/ready") == Some(200)
    });
    let r = ask(&node, pod, "web.default.svc.cluster.local.", false, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no answer on the pod address; output:\n{}", nc.lines().join("\n")));
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert!(
        upstream.seen().iter().any(|s| s.qname == "web.default.svc.cluster.local." && s.tcp),
        "a miss goes upstream"
    );
    // Nothing on the node was touched: no interface, no iptables rule, no nftables table.
    let (exists, _) = node.try_run(&["ip", "link", "show", "nodelocaldns"]);
    assert!(!exists, "no interface in redirect mode");
    for save in ["iptables-save", "ip6tables-save"] {
        assert!(saved_rules(&node, save).is_empty(), "{save}: {:?}", saved_rules(&node, save));
    }
    let (_, tables) = node.try_run(&["nft", "list", "tables"]);
    assert!(!tables.contains("node") && !tables.contains("kdns"), "{tables}");
    assert_eq!(metric(&http_in(&node, "127.0.0.1:9353", "/metrics"), "coredns_nodecache_rules_expected"), Some(0.0));
    // SIGTERM: unready at once, answers through the lameduck, then exit 0.
    nc.signal(libc::SIGTERM);
    wait_until("/ready unready", Duration::from_secs(2), || {
        http_status_in(&node, "127.0.0.1:9353", "/ready") != Some(200)
    });
    let r = ask(&node, pod, "other.default.svc.cluster.local.", false, Duration::from_millis(1500))
        .expect("still answering during the lameduck");
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(nc.wait_exit(Duration::from_secs(20)), Some(0), "{}", nc.lines().join("\n"));
}
