//! forward against the scriptable upstream: answers, retries, validation, health, limits.

mod common;

use common::upstream::Upstream;
use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{RData, RecordType};
use std::time::{Duration, Instant};

fn ok_ip() -> RData {
    RData::A("192.0.2.1".parse().unwrap())
}

fn dead_addr() -> String {
    // A port nobody listens on: UDP gets ICMP port unreachable, TCP gets RST.
    format!("127.0.0.1:{}", free_port())
}

#[test]
fn forwards_over_udp_and_tcp_with_fresh_ids() {
    let up = Upstream::start();
    let k = Kdns::start(&format!(".:PORT {{\n    forward . {}\n}}\n", up.addr));
    let q = query("www.example.org.", RecordType::A);
    let r = udp(k.addr(), &q);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(r.answers[0].data, ok_ip());
    let r = tcp(k.addr(), &query("tcp.example.org.", RecordType::A));
    assert_eq!(r.answers[0].data, ok_ip());
    let seen = up.seen();
    assert!(
        seen.iter().any(|s| s.qname == "www.example.org." && !s.tcp && s.id != q.metadata.id),
        "fresh upstream ID over UDP"
    );
    assert!(seen.iter().any(|s| s.qname == "tcp.example.org." && s.tcp), "TCP client → TCP upstream");
}

#[test]
fn nxdomain_and_servfail_pass_through() {
    let up = Upstream::start();
    let k = Kdns::start(&format!(".:PORT {{\n    forward . {}\n}}\n", up.addr));
    let r = udp(k.addr(), &query("nxdomain.example.", RecordType::A));
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(r.authorities[0].record_type(), RecordType::SOA);
    let r = udp(k.addr(), &query("servfail.example.", RecordType::A));
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
}

#[test]
fn client_cookie_is_not_sent_upstream() {
    let up = Upstream::start();
    let k = Kdns::start(&format!(".:PORT {{\n    forward . {}\n}}\n", up.addr));
    let mut q = with_edns(query("cookie.example.", RecordType::A), 1232);
    q.edns
        .as_mut()
        .unwrap()
        .options_mut()
        .insert(EdnsOption::Unknown(u16::from(EdnsCode::Cookie), vec![1, 2, 3, 4, 5, 6, 7, 8]));
    let r = udp(k.addr(), &q);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    let s = up.seen().into_iter().find(|s| s.qname == "cookie.example.").unwrap();
    assert_eq!(s.edns_options, 0);
}

#[test]
fn silent_upstream_gives_servfail_with_coredns_error_line() {
    let up = Upstream::start();
    let k = Kdns::start(&format!(
        ".:PORT {{\n    errors\n    forward . {} {{\n        read_timeout 300ms\n    }}\n}}\n",
        up.addr
    ));
    let start = Instant::now();
    let r = udp(k.addr(), &query("drop.example.org.", RecordType::A));
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
    let took = start.elapsed();
    // 1 upstream → 2 attempts of 300 ms
    assert!(took >= Duration::from_millis(550) && took < Duration::from_secs(3), "{took:?}");
    assert_eq!(up.count("drop."), 2, "attempts capped at 2 x upstreams");
    let line =
        k.wait_for_line("[ERROR] plugin/errors: 2 drop.example.org. A: read udp 127.0.0.1:", Duration::from_secs(2));
    assert!(line.ends_with(&format!("->{}: i/o timeout", up.addr)), "{line}");
}

#[test]
fn mismatched_and_garbage_replies_are_never_accepted() {
    let up = Upstream::start();
    let mport = free_port();
    let k = Kdns::start(&format!(
        ".:PORT {{\n    prometheus 127.0.0.1:{mport}\n    forward . {} {{\n        read_timeout 300ms\n    }}\n}}\n",
        up.addr
    ));
    for name in ["badid.example.org.", "garbage.example.org."] {
        let r = udp(k.addr(), &query(name, RecordType::A));
        assert_eq!(r.metadata.response_code, ResponseCode::ServFail, "{name}");
        assert!(r.answers.is_empty(), "{name}: nothing from the bad reply reaches the client");
    }
    // Our ID but another question: CoreDNS's forward answers FORMERR at once, over UDP and TCP.
    for r in [
        udp(k.addr(), &query("badq.example.org.", RecordType::A)),
        tcp(k.addr(), &query("badq.example.org.", RecordType::A)),
    ] {
        assert_eq!(r.metadata.response_code, ResponseCode::FormErr);
        assert!(r.answers.is_empty(), "nothing from the bad reply reaches the client");
        assert_eq!(r.queries[0].name().to_string(), "badq.example.org.", "the question is kept");
    }
    let s = metrics_text(mport);
    let dropped = metric(&s, &format!("kdns_forward_mismatched_replies_total{{to=\"{}\"}}", up.addr)).unwrap_or(0.0);
    assert!(dropped >= 6.0, "2 names x 2 attempts, then one per wrong question: {dropped}");
}

#[test]
fn truncated_udp_answer_is_retried_over_tcp() {
    let up = Upstream::start();
    let k = Kdns::start(&format!(".:PORT {{\n    forward . {}\n}}\n", up.addr));
    let r = udp(k.addr(), &with_edns(query("tc.example.org.", RecordType::A), 1232));
    assert!(!r.metadata.truncation);
    assert_eq!(r.answers[0].data, ok_ip());
    let seen: Vec<bool> = up.seen().iter().filter(|s| s.qname == "tc.example.org.").map(|s| s.tcp).collect();
    assert_eq!(seen, vec![false, true]);
    // An upstream that ignores the 512-byte limit over UDP is caught (not silently cut) and asked
    // again over TCP; the small client then gets kdns's own truncation, with TC.
    let r = udp(k.addr(), &query("big.example.org.", RecordType::A));
    assert!(r.metadata.truncation);
    let seen: Vec<bool> = up.seen().iter().filter(|s| s.qname == "big.example.org.").map(|s| s.tcp).collect();
    assert_eq!(seen, vec![false, true]);
}

#[test]
fn force_tcp_reuses_connections() {
    let up = Upstream::start();
    let mport = free_port();
    let k = Kdns::start(&format!(
        ".:PORT {{\n    prometheus 127.0.0.1:{mport}\n    forward . {} {{\n        force_tcp\n    }}\n}}\n",
        up.addr
    ));
    for i in 0..5 {
        assert_eq!(udp(k.addr(), &query(&format!("n{i}.example.org."), RecordType::A)).answers[0].data, ok_ip());
    }
    assert!(up.seen().iter().all(|s| s.tcp));
    let s = metrics_text(mport);
    let hits = metric(
        &s,
        &format!("coredns_proxy_conn_cache_hits_total{{proto=\"tcp\",proxy_name=\"forward\",to=\"{}\"}}", up.addr),
    )
    .unwrap();
    assert!(hits >= 4.0, "{s}");
    assert!(
        s.contains(&format!(
            "coredns_proxy_request_duration_seconds_count{{proxy_name=\"forward\",rcode=\"NOERROR\",to=\"{}\"}} 5",
            up.addr
        )),
        "{s}"
    );
}

#[test]
fn dead_first_upstream_fails_over_and_gets_health_checked() {
    let up = Upstream::start();
    let dead = dead_addr();
    let mport = free_port();
    let k = Kdns::start(&format!(
        ".:PORT {{\n    prometheus 127.0.0.1:{mport}\n    forward . {dead} {} {{\n        policy sequential\n        health_check 100ms\n    }}\n}}\n",
        up.addr
    ));
    let r = udp(k.addr(), &query("www.example.org.", RecordType::A));
    assert_eq!(r.answers[0].data, ok_ip());
    std::thread::sleep(Duration::from_millis(500));
    let s = metrics_text(mport);
    let fails =
        metric(&s, &format!("coredns_proxy_healthcheck_failures_total{{proxy_name=\"forward\",to=\"{dead}\"}}"))
            .unwrap_or(0.0);
    assert!(fails >= 3.0, "dead upstream probed: {s}");
    // Now marked down: queries go straight to the live one.
    let before = up.count("after.");
    let start = Instant::now();
    udp(k.addr(), &query("after.example.org.", RecordType::A));
    assert!(start.elapsed() < Duration::from_millis(500));
    assert_eq!(up.count("after."), before + 1);
}

#[test]
fn failover_rcodes_try_the_next_upstream() {
    let first = Upstream::start();
    let second = Upstream::start();
    let k = Kdns::start(&format!(
        ".:PORT {{\n    forward . {} {} {{\n        policy sequential\n        failover SERVFAIL REFUSED\n    }}\n}}\n",
        first.addr, second.addr
    ));
    let r = udp(k.addr(), &query("servfail.example.org.", RecordType::A));
    // both upstreams are the same script, so the last answer (SERVFAIL) comes back after trying both
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(first.count("servfail."), 1);
    assert_eq!(second.count("servfail."), 1);
}

#[test]
fn max_concurrent_refuses_over_the_limit() {
    let up = Upstream::start();
    let k = Kdns::start(&format!(".:PORT {{\n    forward . {} {{\n        max_concurrent 1\n    }}\n}}\n", up.addr));
    let addr = k.addr();
    let slow = std::thread::spawn(move || udp(addr, &query("slow800.example.org.", RecordType::A)));
    std::thread::sleep(Duration::from_millis(200));
    let r = udp(k.addr(), &query("fast.example.org.", RecordType::A));
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);
    assert_eq!(slow.join().unwrap().answers[0].data, ok_ip());
    assert_eq!(
        udp(k.addr(), &query("fast2.example.org.", RecordType::A)).metadata.response_code,
        ResponseCode::NoError
    );
}

#[test]
fn except_round_robin_several_lines_and_resolv_conf() {
    let a = Upstream::start();
    let b = Upstream::start();
    let dir = temp_dir("resolv");
    let resolv = dir.join("resolv.conf");
    std::fs::write(&resolv, format!("# test\nnameserver {}\n", a.addr.ip())).unwrap();
    let k = Kdns::start(&format!(
        ".:PORT {{\n    forward sub.example.org {} \n    forward . {} {} {{\n        except skip.org\n        policy round_robin\n    }}\n    whoami\n}}\n",
        b.addr, a.addr, b.addr
    ));
    // except → next plugin (whoami: empty answer, SRV in additional)
    let r = udp(k.addr(), &query("x.skip.org.", RecordType::A));
    assert!(r.answers.is_empty() && r.additionals.iter().any(|x| x.record_type() == RecordType::SRV));
    for i in 0..6 {
        udp(k.addr(), &query(&format!("rr{i}.example.org."), RecordType::A));
    }
    assert_eq!(a.count("rr"), 3);
    assert_eq!(b.count("rr"), 3);
    // the first matching line wins
    udp(k.addr(), &query("q.sub.example.org.", RecordType::A));
    assert_eq!(b.count("q.sub"), 1);
    assert_eq!(a.count("q.sub"), 0);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_forward_lines_fail_at_startup() {
    let dir = temp_dir("fwdbad");
    let many: Vec<String> = (1..=16).map(|i| format!("127.0.0.{i}")).collect();
    for (corefile, needle) in [
        (
            format!(".:0 {{\n    forward . {}\n}}\n", many.join(" ")),
            "Corefile:2 - Error during parsing: plugin/forward: more than 15",
        ),
        (
            ".:0 {\n    forward . https://1.1.1.1\n}\n".to_string(),
            "Corefile:2 - Error during parsing: plugin/forward: scheme \"https://\" is not supported",
        ),
        (
            ".:0 {\n    forward . 127.0.0.1 {\n        policy fastest\n    }\n}\n".to_string(),
            "Corefile:3 - Error during parsing: plugin/forward: unknown policy",
        ),
        (
            ".:0 {\n    forward . 127.0.0.1 {\n        max_concurrent 0\n    }\n}\n".to_string(),
            "Corefile:3 - Error during parsing: plugin/forward: max_concurrent can't be 0",
        ),
        (
            ".:0 {\n    forward . nowhere.conf\n}\n".to_string(),
            "Corefile:2 - Error during parsing: plugin/forward: not an IP address or file",
        ),
        (".:0 {\n    forward .\n}\n".to_string(), "Corefile:2 - Error during parsing: Wrong argument count"),
    ] {
        std::fs::write(dir.join("Corefile"), &corefile).unwrap();
        let (code, _, err) = run_to_exit(&["-conf", "Corefile"], &dir);
        assert_eq!(code, 1, "{corefile}");
        assert!(err.contains(needle), "{corefile}: {err}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn loop_to_ourselves_halts_with_coredns_message() {
    // The probe may find the loop before the banner is printed: do not wait for it.
    let mut k = Kdns::spawn(".:PORT {\n    loop\n    forward . 127.0.0.1:PORT\n}\n", &[]);
    let code = k.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(1));
    let line = k.wait_for_line("[FATAL] plugin/loop: Loop (127.0.0.1:", Duration::from_secs(1));
    assert!(line.contains(&format!(":{}) detected for zone \".\"", k.port)), "{line}");
    assert!(line.contains("see https://coredns.io/plugins/loop#troubleshooting. Query: \"HINFO "), "{line}");
}

#[test]
fn no_loop_probe_reaches_upstream_once_and_server_stays_up() {
    let up = Upstream::start();
    let mut k = Kdns::start(&format!("example.org:PORT {{\n    loop\n    forward . {}\n}}\n", up.addr));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !up.seen().iter().any(|s| s.qtype == RecordType::HINFO) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let probes: Vec<_> = up.seen().into_iter().filter(|s| s.qtype == RecordType::HINFO).collect();
    assert_eq!(probes.len(), 1, "{probes:?}");
    let labels: Vec<&str> = probes[0].qname.split('.').collect();
    assert!(
        labels[0].parse::<u64>().is_ok() && labels[1].parse::<u64>().is_ok() && labels[2] == "example",
        "{}",
        probes[0].qname
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(k.wait_exit(Duration::from_millis(10)), None, "still running");
}

#[test]
fn tcp_reset_and_slow_upstreams_end_in_servfail_within_budget() {
    let up = Upstream::start();
    let k = Kdns::start(&format!(
        ".:PORT {{\n    forward . {} {{\n        force_tcp\n        read_timeout 400ms\n        max_fails 0\n    }}\n}}\n",
        up.addr
    ));
    // No health probe (max_fails 0): only the forwarder decides which connection a query takes.
    // The upstream closes the TCP connection without answering: both attempts fail fast.
    let start = Instant::now();
    assert_eq!(
        udp(k.addr(), &query("reset.example.org.", RecordType::A)).metadata.response_code,
        ResponseCode::ServFail
    );
    assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
    assert_eq!(up.count("reset."), 2);
    // Slower than read_timeout: SERVFAIL after the capped attempts, not a hang.
    let start = Instant::now();
    assert_eq!(
        udp(k.addr(), &query("slow1500.example.org.", RecordType::A)).metadata.response_code,
        ResponseCode::ServFail
    );
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(750) && took < Duration::from_secs(3), "{took:?}");
    // Still healthy for normal names afterwards: the connection the slow query timed out on
    // (the test upstream answers one connection in order) takes no new queries.
    assert_eq!(udp(k.addr(), &query("fine.example.org.", RecordType::A)).answers[0].data, ok_ip());
}

#[test]
fn all_upstreams_down_counts_healthcheck_broken_and_still_tries_one() {
    let dead1 = dead_addr();
    let dead2 = dead_addr();
    let mport = free_port();
    let k = Kdns::start(&format!(
        ".:PORT {{\n    prometheus 127.0.0.1:{mport}\n    forward . {dead1} {dead2} {{\n        health_check 50ms\n        max_fails 1\n    }}\n}}\n"
    ));
    assert_eq!(udp(k.addr(), &query("a.example.org.", RecordType::A)).metadata.response_code, ResponseCode::ServFail);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(udp(k.addr(), &query("b.example.org.", RecordType::A)).metadata.response_code, ResponseCode::ServFail);
    let s = metrics_text(mport);
    assert!(metric(&s, "coredns_forward_healthcheck_broken_total").unwrap_or(0.0) >= 1.0, "{s}");
}

#[test]
fn concurrent_queries_share_one_pipelined_tcp_connection() {
    let up = Upstream::start();
    let k = Kdns::start(&format!(".:PORT {{\n    forward . {} {{\n        force_tcp\n    }}\n}}\n", up.addr));
    let addr = k.addr();
    let threads: Vec<_> = (0..16)
        .map(|i| std::thread::spawn(move || udp(addr, &query(&format!("pipe{i}.example.org."), RecordType::A))))
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap().answers[0].data, ok_ip());
    }
    let ports: std::collections::HashSet<u16> =
        up.seen().iter().filter(|s| s.qname.starts_with("pipe")).map(|s| s.src.port()).collect();
    assert_eq!(up.count("pipe"), 16);
    assert!(ports.len() <= 2, "queries should share a connection, saw {} source ports", ports.len());
}

fn self_signed(dir: &std::path::Path) -> (String, String, std::path::PathBuf) {
    let ck = rcgen::generate_simple_self_signed(vec!["dns.kdns.test".to_string(), "127.0.0.1".to_string()]).unwrap();
    let (cert, key) = (ck.cert.pem(), ck.signing_key.serialize_pem());
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &cert).unwrap();
    (cert, key, ca)
}

#[test]
fn dns_over_tls_upstream_with_servername_and_ca() {
    let dir = temp_dir("dot");
    let (cert, key, ca) = self_signed(&dir);
    let up = Upstream::start_tls(&cert, &key);
    let k = Kdns::start(&format!(
        ".:PORT {{\n    forward . tls://{} {{\n        tls {}\n        tls_servername dns.kdns.test\n    }}\n}}\n",
        up.addr,
        ca.display()
    ));
    for i in 0..3 {
        let r = udp(k.addr(), &query(&format!("dot{i}.example.org."), RecordType::A));
        assert_eq!(r.answers[0].data, ok_ip());
    }
    assert!(up.seen().iter().all(|s| s.tcp));
    let ports: std::collections::HashSet<u16> = up.seen().iter().map(|s| s.src.port()).collect();
    assert_eq!(ports.len(), 1, "one TLS connection reused");
    // Without tls_servername the upstream's IP is verified against the certificate's IP SAN.
    let k2 = Kdns::start(&format!(
        ".:PORT {{\n    forward . tls://{} {{\n        tls {}\n    }}\n}}\n",
        up.addr,
        ca.display()
    ));
    assert_eq!(udp(k2.addr(), &query("ip.example.org.", RecordType::A)).answers[0].data, ok_ip());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn dns_over_tls_refuses_unverified_upstreams() {
    let dir = temp_dir("dotbad");
    let (cert, key, ca) = self_signed(&dir);
    let up = Upstream::start_tls(&cert, &key);
    // Wrong name: the handshake fails, the client gets SERVFAIL, errors says why.
    let k = Kdns::start(&format!(
        ".:PORT {{\n    errors\n    forward . tls://{} {{\n        tls {}\n        tls_servername other.kdns.test\n    }}\n}}\n",
        up.addr,
        ca.display()
    ));
    assert_eq!(udp(k.addr(), &query("bad.example.org.", RecordType::A)).metadata.response_code, ResponseCode::ServFail);
    let line = k.wait_for_line("[ERROR] plugin/errors: 2 bad.example.org. A: tls handshake", Duration::from_secs(2));
    assert!(line.contains("certificate"), "{line}");
    // System roots do not trust a self-signed certificate.
    let k2 = Kdns::start(&format!(
        ".:PORT {{\n    forward . tls://{} {{\n        tls_servername dns.kdns.test\n    }}\n}}\n",
        up.addr
    ));
    assert_eq!(
        udp(k2.addr(), &query("bad2.example.org.", RecordType::A)).metadata.response_code,
        ResponseCode::ServFail
    );
    assert_eq!(up.count("bad"), 0, "no query was sent over an unverified connection");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn next_moves_to_the_following_forward_line() {
    let first = Upstream::start();
    let second = Upstream::start();
    let k = Kdns::start(&format!(
        ".:PORT {{\n    forward . {} {{\n        next NXDOMAIN SERVFAIL\n    }}\n    forward . {}\n}}\n",
        first.addr, second.addr
    ));
    assert_eq!(
        udp(k.addr(), &query("nxdomain.example.", RecordType::A)).metadata.response_code,
        ResponseCode::NXDomain
    );
    assert_eq!((first.count("nxdomain."), second.count("nxdomain.")), (1, 1));
    assert_eq!(udp(k.addr(), &query("plain.example.org.", RecordType::A)).answers[0].data, ok_ip());
    assert_eq!((first.count("plain."), second.count("plain.")), (1, 0));
}

#[test]
fn prefer_udp_attempt_cap_and_health_check_domain() {
    let up = Upstream::start();
    let k = Kdns::start(&format!(
        ".:PORT {{\n    forward . {} {{\n        prefer_udp\n        max_connect_attempts 1\n        read_timeout 200ms\n        health_check 100ms no_rec domain hc.kdns.test\n    }}\n}}\n",
        up.addr
    ));
    // A TCP client, but the upstream is asked over UDP.
    assert_eq!(tcp(k.addr(), &query("viaudp.example.org.", RecordType::A)).answers[0].data, ok_ip());
    assert!(up.seen().iter().any(|s| s.qname == "viaudp.example.org." && !s.tcp));
    // One attempt only, then the failure starts a health check with the configured domain.
    assert_eq!(
        udp(k.addr(), &query("drop.example.org.", RecordType::A)).metadata.response_code,
        ResponseCode::ServFail
    );
    assert_eq!(up.count("drop."), 1);
    let deadline = Instant::now() + Duration::from_secs(3);
    while !up.seen().iter().any(|s| s.qname == "hc.kdns.test." && s.qtype == RecordType::NS)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(up.seen().iter().any(|s| s.qname == "hc.kdns.test." && s.qtype == RecordType::NS), "health check sent");
}

#[test]
fn upstream_ids_are_random_and_source_ports_rotate() {
    let up = Upstream::start();
    let k = Kdns::start(&format!(".:PORT {{\n    forward . {}\n}}\n", up.addr));
    let mut q = query("rand.example.org.", RecordType::A);
    let n = 600u16;
    for i in 0..n {
        q.metadata.id = 7; // the client always uses the same ID
        q.queries[0] = hickory_proto::op::Query::query(format!("r{i}.example.org.").parse().unwrap(), RecordType::A);
        udp(k.addr(), &q);
    }
    let seen: Vec<_> = up.seen().into_iter().filter(|s| s.qname.starts_with('r')).collect();
    assert_eq!(seen.len(), n as usize);
    let ids: std::collections::HashSet<u16> = seen.iter().map(|s| s.id).collect();
    let ports: std::collections::HashSet<u16> = seen.iter().map(|s| s.src.port()).collect();
    // 600 draws from 65,536 IDs collide a few times at most.
    assert!(ids.len() >= 590, "only {} distinct upstream IDs", ids.len());
    // Pooled sockets are replaced after UDP_SOCKET_USES queries each: 600 queries over a pool
    // of 4 sockets must have used at least 6 different source ports, and no port more than 100 times.
    assert!(ports.len() >= 6, "only {} distinct source ports", ports.len());
    for p in &ports {
        let uses = seen.iter().filter(|s| s.src.port() == *p).count();
        assert!(uses <= 100, "port {p} carried {uses} queries");
    }
}
