//! cache in front of forward and the scriptable upstream: CoreDNS's caching rules end to end.

mod common;

use common::upstream::Upstream;
use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use std::time::Duration;

fn start(up: &Upstream, cache: &str, extra: &str) -> Kdns {
    Kdns::start(&format!(".:PORT {{\n    {cache}\n    forward . {}\n{extra}}}\n", up.addr))
}

#[test]
fn hits_are_authoritative_with_decreasing_ttl_and_the_clients_case() {
    let up = Upstream::start();
    let k = start(&up, "cache 30", "");
    let first = udp(k.addr(), &query("www.example.org.", RecordType::A));
    assert_eq!(first.answers[0].ttl, 30, "first reply already carries the capped TTL");
    assert!(!first.metadata.authoritative);
    std::thread::sleep(Duration::from_millis(1100));
    // hickory writes names lower-cased, so set the mixed case in the packet itself
    let mut packet = query("www.example.org.", RecordType::A).to_vec().unwrap();
    packet[13..16].copy_from_slice(b"WwW");
    packet[17..24].copy_from_slice(b"ExAmPlE");
    let raw = udp_raw(k.addr(), &packet, Duration::from_secs(2)).unwrap();
    assert_eq!(&raw[13..16], b"WwW", "question case echoed");
    assert_eq!(&raw[17..24], b"ExAmPlE");
    let hit = hickory_proto::op::Message::from_vec(&raw).unwrap();
    assert_eq!(up.count("www."), 1, "served from cache");
    assert!(hit.metadata.authoritative, "AA on hits");
    assert!(hit.metadata.recursion_available);
    assert!(hit.answers[0].ttl <= 29 && hit.answers[0].ttl >= 28, "{}", hit.answers[0].ttl);
    // EDNS on a hit: the client's OPT is reflected.
    let e = udp(k.addr(), &with_edns(query("www.example.org.", RecordType::A), 1400));
    assert_eq!(e.edns.unwrap().max_payload(), 1400);
    // TCP hit as well.
    assert!(tcp(k.addr(), &query("www.example.org.", RecordType::A)).metadata.authoritative);
    assert_eq!(up.count("www."), 1);
}

#[test]
fn forwarded_replies_carry_neither_the_upstream_opt_nor_ad_unless_asked() {
    let up = Upstream::start();
    let k = start(&up, "cache 30", "");
    for round in ["miss", "hit"] {
        let plain = udp(k.addr(), &query("ad.example.org.", RecordType::A));
        assert!(plain.edns.is_none(), "{round}: no OPT for a client without EDNS");
        assert!(!plain.metadata.authentic_data, "{round}: AD only when asked with DO or AD");
        assert_eq!(plain.answers[0].ttl, 30, "{round}");
        let e = udp(k.addr(), &with_edns(query("ad.example.org.", RecordType::A), 1400));
        let opt = e.edns.expect("the client's OPT reflected");
        assert_eq!(opt.max_payload(), 1400, "{round}: our OPT, not the upstream's 4096");
        assert!(opt.options().as_ref().is_empty(), "{round}: the upstream's NSID is not passed on");
    }
    let mut asked = with_edns(query("ad.example.net.", RecordType::A), 1232);
    asked.metadata.authentic_data = true;
    let r = udp(k.addr(), &asked);
    assert!(r.metadata.authentic_data, "AD kept for a client that set AD");
    assert_eq!(up.count("ad.example.org."), 1, "the rounds above: one miss, then hits");
}

#[test]
fn keys_separate_type_and_do_bit() {
    let up = Upstream::start();
    let k = start(&up, "cache", "");
    udp(k.addr(), &query("k.example.org.", RecordType::A));
    udp(k.addr(), &query("k.example.org.", RecordType::AAAA));
    let mut d = with_edns(query("k.example.org.", RecordType::A), 1232);
    d.edns.as_mut().unwrap().flags_mut().dnssec_ok = true;
    udp(k.addr(), &d);
    udp(k.addr(), &d);
    udp(k.addr(), &query("k.example.org.", RecordType::A));
    assert_eq!(up.count("k."), 3);
}

#[test]
fn negative_answers_use_the_soa_ttl_and_soa_less_nxdomain_is_not_cached() {
    let up = Upstream::start();
    let k = start(&up, "cache", "");
    let r = udp(k.addr(), &query("nxdomain.example.", RecordType::A));
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(r.authorities[0].ttl, 60, "min TTL over the records: the SOA RR's 60");
    let r = udp(k.addr(), &query("nxdomain.example.", RecordType::A));
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    assert!(r.metadata.authoritative);
    assert_eq!(up.count("nxdomain."), 1);
    for _ in 0..2 {
        assert_eq!(
            udp(k.addr(), &query("nxnosoa.example.", RecordType::A)).metadata.response_code,
            ResponseCode::NXDomain
        );
    }
    assert_eq!(up.count("nxnosoa."), 2, "RFC 2308 §5: no SOA, no negative caching");
}

#[test]
fn servfail_is_cached_briefly_unless_disabled() {
    let up = Upstream::start();
    let k = start(&up, "cache", "");
    for _ in 0..3 {
        udp(k.addr(), &query("servfail.example.", RecordType::A));
    }
    assert_eq!(up.count("servfail."), 1);
    let up2 = Upstream::start();
    let k2 = start(&up2, "cache {\n        servfail 0\n    }", "");
    for _ in 0..3 {
        udp(k2.addr(), &query("servfail.example.", RecordType::A));
    }
    assert_eq!(up2.count("servfail."), 3);
}

#[test]
fn disable_success_and_denial_per_zone() {
    let up = Upstream::start();
    let k =
        start(&up, "cache 30 {\n        disable success example.org\n        disable denial example.org\n    }", "");
    udp(k.addr(), &query("a.example.org.", RecordType::A));
    udp(k.addr(), &query("a.example.org.", RecordType::A));
    assert_eq!(up.count("a.example.org."), 2, "success disabled for example.org");
    udp(k.addr(), &query("a.example.net.", RecordType::A));
    udp(k.addr(), &query("a.example.net.", RecordType::A));
    assert_eq!(up.count("a.example.net."), 1);

    // keepttl and the minimum TTL: crates/plugins/src/cache/tests.rs (on the chain's clock).
}

#[test]
fn cache_metrics_have_coredns_names_and_labels() {
    let up = Upstream::start();
    let mport = free_port();
    let k = start(&up, "cache 30", &format!("    prometheus 127.0.0.1:{mport}\n"));
    for _ in 0..3 {
        udp(k.addr(), &query("m.example.org.", RecordType::A));
    }
    udp(k.addr(), &query("nxdomain.example.", RecordType::A));
    let s = metrics_text(mport);
    let server = format!("dns://:{}", k.port);
    let m = |series: String| metric(&s, &series).unwrap_or_else(|| panic!("missing {series}\n{s}"));
    assert_eq!(m(format!("coredns_cache_requests_total{{server=\"{server}\",view=\"\",zones=\".\"}}")), 4.0);
    assert_eq!(
        m(format!("coredns_cache_hits_total{{server=\"{server}\",type=\"success\",view=\"\",zones=\".\"}}")),
        2.0
    );
    assert_eq!(m(format!("coredns_cache_misses_total{{server=\"{server}\",view=\"\",zones=\".\"}}")), 2.0);
    assert_eq!(m(format!("coredns_cache_entries{{server=\"{server}\",type=\"success\",view=\"\",zones=\".\"}}")), 1.0);
    assert_eq!(m(format!("coredns_cache_entries{{server=\"{server}\",type=\"denial\",view=\"\",zones=\".\"}}")), 1.0);
    assert_eq!(m(format!("coredns_dns_responses_total{{plugin=\"cache\",rcode=\"NOERROR\",server=\"{server}\",view=\"\",zone=\".\"}}")), 2.0);
    assert_eq!(m(format!("coredns_dns_responses_total{{plugin=\"forward\",rcode=\"NOERROR\",server=\"{server}\",view=\"\",zone=\".\"}}")), 1.0);
}

#[test]
fn kubeadm_and_nodelocal_corefiles_run_unchanged() {
    let up = Upstream::start();
    let dir = temp_dir("resolv");
    std::fs::write(dir.join("resolv.conf"), format!("nameserver {}\n", up.addr.ip())).unwrap();
    let _ = dir;
    // kubeadm's cache/forward part (forward to an upstream instead of /etc/resolv.conf: the
    // test upstream does not listen on port 53).
    let k = Kdns::start(&format!(
        ".:PORT {{\n    errors\n    forward . {} {{\n       max_concurrent 1000\n    }}\n    cache 30 {{\n       disable success cluster.local\n       disable denial cluster.local\n    }}\n    loop\n    reload\n    loadbalance\n}}\n",
        up.addr
    ));
    udp(k.addr(), &query("ext.example.org.", RecordType::A));
    udp(k.addr(), &query("ext.example.org.", RecordType::A));
    assert_eq!(up.count("ext."), 1);
    udp(k.addr(), &query("svc.default.svc.cluster.local.", RecordType::A));
    udp(k.addr(), &query("svc.default.svc.cluster.local.", RecordType::A));
    assert_eq!(up.count("svc.default"), 2, "cluster.local not cached");
    drop(k);

    // NodeLocal DNSCache's Corefile with its placeholders filled for loopback.
    let health = free_port();
    let metrics = free_port();
    let nodelocal = format!(
        "cluster.local:PORT {{\n    errors\n    cache {{\n            success 9984 30\n            denial 9984 5\n    }}\n    reload\n    loop\n    bind 127.0.0.1\n    forward . {up} {{\n            force_tcp\n    }}\n    prometheus 127.0.0.1:{metrics}\n    health 127.0.0.1:{health}\n    }}\nin-addr.arpa:PORT {{\n    errors\n    cache 30\n    reload\n    loop\n    bind 127.0.0.1\n    forward . {up} {{\n            force_tcp\n    }}\n    prometheus 127.0.0.1:{metrics}\n    }}\nip6.arpa:PORT {{\n    errors\n    cache 30\n    reload\n    loop\n    bind 127.0.0.1\n    forward . {up} {{\n            force_tcp\n    }}\n    prometheus 127.0.0.1:{metrics}\n    }}\n.:PORT {{\n    errors\n    cache 30\n    reload\n    loop\n    bind 127.0.0.1\n    forward . {up}\n    prometheus 127.0.0.1:{metrics}\n    }}\n",
        up = up.addr
    );
    let k = Kdns::start(&nodelocal);
    let r = udp(k.addr(), &query("kubernetes.default.svc.cluster.local.", RecordType::A));
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    udp(k.addr(), &query("kubernetes.default.svc.cluster.local.", RecordType::A));
    assert_eq!(up.count("kubernetes.default"), 1);
    assert!(up.seen().iter().filter(|s| s.qname.starts_with("kubernetes.default")).all(|s| s.tcp), "force_tcp");
    udp(k.addr(), &query("example.com.", RecordType::A));
    assert!(up.seen().iter().any(|s| s.qname == "example.com." && !s.tcp));
    assert_eq!(http_get(&format!("127.0.0.1:{health}"), "/health").map(|r| r.0), Some(200));
    let _ = std::fs::remove_dir_all(temp_dir("unused"));
}

#[test]
fn bad_cache_options_fail_with_file_and_line() {
    let dir = temp_dir("cachebad");
    for (corefile, needle) in [
        (
            ".:0 {\n    cache {\n        prefetch 10 1m 95%\n    }\n}\n",
            "Corefile:3 - Error during parsing: plugin/cache: prefetch percentage should fall in range [10, 90]",
        ),
        (
            ".:0 {\n    cache {\n        serve_stale 1h sometimes\n    }\n}\n",
            "Corefile:3 - Error during parsing: plugin/cache: invalid value for serve_stale refresh mode",
        ),
        (
            ".:0 {\n    cache {\n        servfail 6m\n    }\n}\n",
            "Corefile:3 - Error during parsing: plugin/cache: caching SERVFAIL",
        ),
        (
            ".:0 {\n    cache {\n        disable everything\n    }\n}\n",
            "Corefile:3 - Error during parsing: plugin/cache: cache type for disable",
        ),
        (".:0 {\n    cache 0\n}\n", "Corefile:2 - Error during parsing: plugin/cache: cache TTL can not be zero"),
        (
            ".:0 {\n    cache -5\n}\n",
            "Corefile:2 - Error during parsing: plugin/cache: cache TTL can not be zero or negative: -5",
        ),
        (
            ".:0 {\n    cache\n    cache\n}\n",
            "Corefile:3 - Error during parsing: plugin/cache: this plugin can only be used once",
        ),
    ] {
        std::fs::write(dir.join("Corefile"), corefile).unwrap();
        let (code, _, err) = run_to_exit(&["-conf", "Corefile"], &dir);
        assert_eq!(code, 1, "{corefile}");
        assert!(err.contains(needle), "{corefile}: {err}");
    }
    let _ = std::fs::remove_dir_all(dir);
}
