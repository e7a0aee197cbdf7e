//! The `kubernetes` plugin end to end: the real binary against the fake API server, answers
//! checked record by record against the Kubernetes DNS specification and CoreDNS's behaviour.

mod common;

use common::upstream::Upstream;
use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use kdns_fakeapi::objects::{self, ep, Ep};
use kdns_fakeapi::{FakeApi, Fault, Kind};
use std::time::Duration;

fn rrs(records: &[hickory_proto::rr::Record]) -> Vec<String> {
    let mut v: Vec<String> = records.iter().map(|r| r.to_string()).collect();
    v.sort();
    v
}

fn ask(k: &Kdns, name: &str, t: RecordType) -> Message {
    udp(k.addr(), &query(name, t))
}

fn answers(k: &Kdns, name: &str, t: RecordType) -> Vec<String> {
    let r = ask(k, name, t);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError, "{name} {t}: {r:?}");
    rrs(&r.answers)
}

/// NXDOMAIN or NODATA: the rcode, AA, no answers and the zone's SOA in authority.
fn negative(k: &Kdns, name: &str, t: RecordType, code: ResponseCode) {
    let r = ask(k, name, t);
    assert_eq!(r.metadata.response_code, code, "{name} {t}");
    assert!(r.metadata.authoritative, "{name} {t}: AA");
    assert!(r.answers.is_empty(), "{name} {t}: {:?}", r.answers);
    assert_eq!(r.authorities.len(), 1, "{name} {t}: SOA in authority");
    assert_eq!(r.authorities[0].record_type(), RecordType::SOA);
}

/// The cluster every record test runs against.
fn cluster(api: &FakeApi) {
    for ns in ["default", "kube-system", "shop", "empty"] {
        api.apply(Kind::Namespace, objects::namespace(ns));
    }
    api.apply(Kind::Service, objects::service("default", "kubernetes", &["10.96.0.1"], &[("https", 443, "TCP")]));
    api.apply(
        Kind::Service,
        objects::service("kube-system", "kube-dns", &["10.96.0.10"], &[("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")]),
    );
    api.apply(Kind::Service, objects::service("shop", "web", &["10.96.12.7", "fd00:96::c07"], &[("http", 80, "TCP")]));
    api.apply(Kind::Service, objects::service("shop", "noport", &["10.96.12.8"], &[]));
    api.apply(
        Kind::Service,
        objects::service("shop", "db", &[], &[("postgres", 5432, "TCP"), ("metrics", 9187, "TCP")]),
    );
    api.apply(
        Kind::EndpointSlice,
        objects::slice(
            "shop",
            "db-v4",
            "db",
            "IPv4",
            &[("postgres", 5432, "TCP"), ("metrics", 9187, "TCP")],
            &[
                Ep { addresses: &["10.244.1.21"], hostname: Some("db-0"), ready: true, pod: Some("db-0") },
                Ep { addresses: &["10.244.2.22"], hostname: Some("db-1"), ready: true, pod: Some("db-1") },
                Ep { addresses: &["10.244.3.23"], hostname: Some("db-2"), ready: false, pod: Some("db-2") },
            ],
        ),
    );
    api.apply(
        Kind::EndpointSlice,
        objects::slice(
            "shop",
            "db-v6",
            "db",
            "IPv6",
            &[("postgres", 5432, "TCP")],
            &[Ep { addresses: &["fd00:244::21"], hostname: Some("db-0"), ready: true, pod: None }],
        ),
    );
    api.apply(Kind::Service, objects::service("shop", "cold", &[], &[("http", 80, "TCP")]));
    api.apply(
        Kind::EndpointSlice,
        objects::slice(
            "shop",
            "cold-1",
            "cold",
            "IPv4",
            &[("http", 80, "TCP")],
            &[Ep { addresses: &["10.244.9.9"], hostname: None, ready: false, pod: None }],
        ),
    );
    api.apply(
        Kind::EndpointSlice,
        objects::slice(
            "shop",
            "web-1",
            "web",
            "IPv4",
            &[("http", 8080, "TCP")],
            &[Ep { addresses: &["10.244.1.30"], hostname: None, ready: true, pod: Some("web-abc") }],
        ),
    );
    api.apply(Kind::Service, objects::external_name("shop", "payments", "api.payments.example.com"));
    api.apply(Kind::Service, objects::external_name("shop", "alias", "web.shop.svc.cluster.local"));
    api.apply(Kind::Service, objects::external_name("shop", "literal", "192.0.2.1"));
}

/// The kubeadm Corefile (coredns reference §2) with the API endpoint, ports and upstream of the
/// test environment.
fn kubeadm(api: &FakeApi, upstream: &Upstream) -> String {
    format!(
        ".:PORT {{
    errors
    health {{
       lameduck 5s
    }}
    ready 127.0.0.1:READY
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
       endpoint {}
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }}
    prometheus 127.0.0.1:METRICS
    forward . {} {{
       max_concurrent 1000
    }}
    cache 30 {{
       disable success cluster.local
       disable denial cluster.local
    }}
    loop
    reload
    loadbalance
}}
",
        api.url(),
        upstream.addr
    )
}

fn with_ports(corefile: &str) -> (String, u16, u16) {
    let (ready, metrics) = (free_port(), free_port());
    (corefile.replace("READY", &ready.to_string()).replace("METRICS", &metrics.to_string()), ready, metrics)
}

#[test]
fn kubeadm_corefile_answers_every_record_of_the_spec() {
    let api = FakeApi::start();
    cluster(&api);
    let up = Upstream::start();
    let (conf, ready, _) = with_ports(&kubeadm(&api, &up));
    let conf = conf.replace("    health {\n       lameduck 5s\n    }\n", "");
    let k = Kdns::start(&conf);
    let (code, _) = http_get(&format!("127.0.0.1:{ready}"), "/ready").unwrap();
    assert_eq!(code, 200, "synced before serving");

    // R1 schema version (28800 s, capped to 30 by `cache 30` as in CoreDNS, where a disabled
    // zone is not stored but its TTLs are still capped).
    assert_eq!(
        answers(&k, "dns-version.cluster.local.", RecordType::TXT),
        ["dns-version.cluster.local. 30 IN TXT 1.1.0"]
    );
    // R2/R3 ClusterIP, dual stack; the other family of a single-stack name is NODATA.
    assert_eq!(
        answers(&k, "web.shop.svc.cluster.local.", RecordType::A),
        ["web.shop.svc.cluster.local. 30 IN A 10.96.12.7"]
    );
    assert_eq!(
        answers(&k, "web.shop.svc.cluster.local.", RecordType::AAAA),
        ["web.shop.svc.cluster.local. 30 IN AAAA fd00:96::c07"]
    );
    negative(&k, "kubernetes.default.svc.cluster.local.", RecordType::AAAA, ResponseCode::NoError);
    // Case-insensitive match, case preserved in the answer.
    // (Raw bytes: the client library folds case when it writes names.)
    let mut packet = query("web.shop.svc.cluster.local.", RecordType::A).to_vec().unwrap();
    packet[13..16].copy_from_slice(b"WEB");
    let reply = udp_raw(k.addr(), &packet, Duration::from_secs(2)).unwrap();
    let r = Message::from_vec(&reply).unwrap();
    assert_eq!((r.metadata.response_code, r.answers.len()), (ResponseCode::NoError, 1));
    assert!(reply.windows(3).any(|w| w == b"WEB") && !reply.windows(3).any(|w| w == b"web"), "case kept");
    // A service without ports still has its address.
    assert_eq!(answers(&k, "noport.shop.svc.cluster.local.", RecordType::A).len(), 1);
    // R4 SRV of a named port: 0 100 port target, address in additional (both families: 50).
    let r = ask(&k, "_http._tcp.web.shop.svc.cluster.local.", RecordType::SRV);
    assert_eq!(
        rrs(&r.answers),
        ["_http._tcp.web.shop.svc.cluster.local. 30 IN SRV 0 50 80 web.shop.svc.cluster.local."]
    );
    assert_eq!(
        rrs(&r.additionals),
        ["web.shop.svc.cluster.local. 30 IN A 10.96.12.7", "web.shop.svc.cluster.local. 30 IN AAAA fd00:96::c07"]
    );
    let r = ask(&k, "_dns._udp.kube-dns.kube-system.svc.cluster.local.", RecordType::SRV);
    assert_eq!(rrs(&r.answers), ["_dns._udp.kube-dns.kube-system.svc.cluster.local. 30 IN SRV 0 100 53 kube-dns.kube-system.svc.cluster.local."]);
    // Port and protocol both must match; unknown → NXDOMAIN.
    negative(&k, "_dns._tcp.kube-dns.kube-system.svc.cluster.local.", RecordType::SRV, ResponseCode::NXDomain);
    // A bare SRV query lists every port.
    assert_eq!(
        answers(&k, "kube-dns.kube-system.svc.cluster.local.", RecordType::SRV).len(),
        1,
        "same target and port dedup"
    );
    // R6 headless: ready endpoints only.
    assert_eq!(
        answers(&k, "db.shop.svc.cluster.local.", RecordType::A),
        ["db.shop.svc.cluster.local. 30 IN A 10.244.1.21", "db.shop.svc.cluster.local. 30 IN A 10.244.2.22"]
    );
    assert_eq!(
        answers(&k, "db.shop.svc.cluster.local.", RecordType::AAAA),
        ["db.shop.svc.cluster.local. 30 IN AAAA fd00:244::21"]
    );
    // Headless with no ready endpoint: NXDOMAIN for every type.
    negative(&k, "cold.shop.svc.cluster.local.", RecordType::A, ResponseCode::NXDomain);
    negative(&k, "cold.shop.svc.cluster.local.", RecordType::TXT, ResponseCode::NXDomain);
    // R7 endpoint hostnames (both families for a hostname in both slices); dashed IP names.
    assert_eq!(
        answers(&k, "db-1.db.shop.svc.cluster.local.", RecordType::A),
        ["db-1.db.shop.svc.cluster.local. 30 IN A 10.244.2.22"]
    );
    assert_eq!(
        answers(&k, "db-0.db.shop.svc.cluster.local.", RecordType::AAAA),
        ["db-0.db.shop.svc.cluster.local. 30 IN AAAA fd00:244::21"]
    );
    negative(&k, "db-2.db.shop.svc.cluster.local.", RecordType::A, ResponseCode::NXDomain);
    assert_eq!(
        answers(&k, "10-244-1-30.web.shop.svc.cluster.local.", RecordType::A),
        ["10-244-1-30.web.shop.svc.cluster.local. 30 IN A 10.244.1.30"]
    );
    // R8 headless SRV: N ready endpoints × M ports, weight ⌊100/n⌋, targets' addresses in additional.
    let r = ask(&k, "_postgres._tcp.db.shop.svc.cluster.local.", RecordType::SRV);
    assert_eq!(
        rrs(&r.answers),
        [
            "_postgres._tcp.db.shop.svc.cluster.local. 30 IN SRV 0 33 5432 db-0.db.shop.svc.cluster.local.",
            "_postgres._tcp.db.shop.svc.cluster.local. 30 IN SRV 0 33 5432 db-1.db.shop.svc.cluster.local.",
        ]
    );
    assert_eq!(r.additionals.len(), 3, "db-0 has v4 and v6, db-1 v4: {:?}", r.additionals);
    // 2 ready v4 endpoints × 2 ports + db-0 on v6 (same target and port as on v4: deduplicated).
    assert_eq!(answers(&k, "db.shop.svc.cluster.local.", RecordType::SRV).len(), 4);
    // R5/R9 PTR: cluster IPs (v4 and v6) name the service, endpoint IPs the endpoint.
    assert_eq!(
        answers(&k, "10.0.96.10.in-addr.arpa.", RecordType::PTR),
        ["10.0.96.10.in-addr.arpa. 30 IN PTR kube-dns.kube-system.svc.cluster.local."]
    );
    assert_eq!(
        answers(&k, "22.2.244.10.in-addr.arpa.", RecordType::PTR),
        ["22.2.244.10.in-addr.arpa. 30 IN PTR db-1.db.shop.svc.cluster.local."]
    );
    let v6 = "7.0.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.0.d.f.ip6.arpa.";
    assert_eq!(answers(&k, v6, RecordType::PTR), [format!("{v6} 30 IN PTR web.shop.svc.cluster.local.")]);
    // An unknown reverse name falls through (kubeadm: fallthrough in-addr.arpa) to forward.
    let r = ask(&k, "9.9.9.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(up.count("9.9.9.10.in-addr.arpa"), 1, "asked upstream");
    // R10 ExternalName: CNAME and the target through the rest of the chain (forward).
    assert_eq!(
        answers(&k, "payments.shop.svc.cluster.local.", RecordType::A),
        [
            "api.payments.example.com. 30 IN A 192.0.2.1",
            "payments.shop.svc.cluster.local. 30 IN CNAME api.payments.example.com.",
        ]
    );
    // An ExternalName inside the zone is followed locally.
    assert_eq!(
        answers(&k, "alias.shop.svc.cluster.local.", RecordType::A),
        [
            "alias.shop.svc.cluster.local. 30 IN CNAME web.shop.svc.cluster.local.",
            "web.shop.svc.cluster.local. 30 IN A 10.96.12.7"
        ]
    );
    negative(&k, "literal.shop.svc.cluster.local.", RecordType::A, ResponseCode::NXDomain);
    negative(&k, "_http._tcp.payments.shop.svc.cluster.local.", RecordType::SRV, ResponseCode::NXDomain);
    // Pods (insecure): any IP-shaped label in an existing namespace.
    assert_eq!(
        answers(&k, "10-244-7-7.shop.pod.cluster.local.", RecordType::A),
        ["10-244-7-7.shop.pod.cluster.local. 30 IN A 10.244.7.7"]
    );
    assert_eq!(answers(&k, "fd00-10-244-1--50.shop.pod.cluster.local.", RecordType::AAAA).len(), 1);
    negative(&k, "10-244-7-7.nowhere.pod.cluster.local.", RecordType::A, ResponseCode::NXDomain);
    negative(&k, "not-an-ip.shop.pod.cluster.local.", RecordType::A, ResponseCode::NXDomain);
    // Apex: SOA with CoreDNS's fields, NS, NODATA for A.
    let r = ask(&k, "cluster.local.", RecordType::SOA);
    let soa = r.answers[0].to_string();
    assert!(soa.starts_with("cluster.local. 30 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. "), "{soa}");
    assert!(soa.ends_with(" 7200 1800 86400 30"), "{soa}");
    assert!(!ask(&k, "cluster.local.", RecordType::NS).answers.is_empty());
    negative(&k, "cluster.local.", RecordType::A, ResponseCode::NoError);
    negative(&k, "svc.cluster.local.", RecordType::A, ResponseCode::NoError);
    negative(&k, "pod.cluster.local.", RecordType::A, ResponseCode::NoError);
    // NXDOMAIN vs NODATA (spec reference §1.5).
    negative(&k, "empty.svc.cluster.local.", RecordType::A, ResponseCode::NoError);
    negative(&k, "ghost.svc.cluster.local.", RecordType::A, ResponseCode::NXDomain);
    negative(&k, "nope.shop.svc.cluster.local.", RecordType::A, ResponseCode::NXDomain);
    negative(&k, "web.shop.svc.cluster.local.", RecordType::MX, ResponseCode::NoError);
    negative(&k, "web.shop.svc.cluster.local.", RecordType::TXT, ResponseCode::NoError);
    negative(&k, "foo.cluster.local.", RecordType::A, ResponseCode::NXDomain);
    negative(&k, "a.b.c.web.shop.svc.cluster.local.", RecordType::A, ResponseCode::NXDomain);
    negative(&k, "_tcp.db.shop.svc.cluster.local.", RecordType::A, ResponseCode::NXDomain);
    negative(&k, "nope.db.shop.svc.cluster.local.", RecordType::A, ResponseCode::NXDomain);
    negative(&k, "web.shop.svc.cluster.local.", RecordType::SOA, ResponseCode::NoError);
    let r = ask(&k, "cluster.local.", RecordType::AXFR);
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);
    // Names outside the cluster zone go on to forward.
    assert_eq!(answers(&k, "example.org.", RecordType::A), ["example.org. 30 IN A 192.0.2.1"]);
    // TCP answers the same.
    let r = tcp(k.addr(), &query("web.shop.svc.cluster.local.", RecordType::A));
    assert_eq!(rrs(&r.answers), ["web.shop.svc.cluster.local. 30 IN A 10.96.12.7"]);
}

#[test]
fn changes_resume_relist_and_outages() {
    let api = FakeApi::start();
    cluster(&api);
    let up = Upstream::start();
    let (conf, ready, metrics) = with_ports(&kubeadm(&api, &up));
    let k = Kdns::start(&conf);
    let a = |name: &str| ask(&k, name, RecordType::A);
    let eventually = |name: &str, want: ResponseCode, answers_len: usize| {
        let r = udp_until(k.addr(), &query(name, RecordType::A), Duration::from_secs(5), |r| {
            r.metadata.response_code == want && r.answers.len() == answers_len
        });
        assert_eq!((r.metadata.response_code, r.answers.len()), (want, answers_len), "{name}");
    };
    // Added, changed, deleted while serving.
    api.apply(Kind::Service, objects::service("shop", "new", &["10.96.50.1"], &[("http", 80, "TCP")]));
    eventually("new.shop.svc.cluster.local.", ResponseCode::NoError, 1);
    let mut s = objects::slice("shop", "web-1", "web", "IPv4", &[("http", 8080, "TCP")], &[ep(&["10.244.1.31"])]);
    let trigger = "2020-01-01T00:00:00Z";
    s["metadata"]["annotations"] = serde_json::json!({"endpoints.kubernetes.io/last-change-trigger-time": trigger});
    api.apply(Kind::EndpointSlice, s);
    eventually("10-244-1-31.web.shop.svc.cluster.local.", ResponseCode::NoError, 1);
    api.delete(Kind::Service, "shop", "new");
    eventually("new.shop.svc.cluster.local.", ResponseCode::NXDomain, 0);
    let scrape = metrics_text(metrics);
    assert_eq!(
        metric(&scrape, "coredns_kubernetes_dns_programming_duration_seconds_count{service_kind=\"cluster_ip\"}"),
        Some(1.0)
    );
    let host = api.addr.to_string();
    let ok_lists = metric(
        &scrape,
        &format!("coredns_kubernetes_rest_client_requests_total{{code=\"200\",host=\"{host}\",method=\"GET\"}}"),
    );
    assert!(
        ok_lists.is_some_and(|n| n >= 3.0),
        "3 streaming lists (each then the watch): {ok_lists:?}\n{}",
        scrape.lines().filter(|l| l.contains("kubernetes")).collect::<Vec<_>>().join("\n")
    );

    // A dropped watch resumes from its resourceVersion: no new list.
    let lists = api.lists(Kind::Service);
    api.cut_streams();
    api.apply(Kind::Service, objects::service("shop", "after-cut", &["10.96.50.2"], &[]));
    eventually("after-cut.shop.svc.cluster.local.", ResponseCode::NoError, 1);
    assert_eq!(api.lists(Kind::Service), lists, "resumed without a relist");
    assert!(api.watches(Kind::Service) >= 2, "a new watch after the cut");

    // Bookmarks keep an idle watch's resourceVersion fresh: after a compaction it still resumes
    // without a relist (the change below is of a kind the Service watch does not see).
    api.set_bookmarks(Some(Duration::from_millis(100)));
    api.cut_streams();
    std::thread::sleep(Duration::from_millis(300));
    api.apply(Kind::Pod, objects::pod("shop", "unwatched", "10.244.5.5", "Running"));
    std::thread::sleep(Duration::from_millis(400));
    api.compact();
    api.cut_streams();
    api.apply(Kind::Service, objects::service("shop", "after-bookmark", &["10.96.50.3"], &[]));
    eventually("after-bookmark.shop.svc.cluster.local.", ResponseCode::NoError, 1);
    assert_eq!(api.lists(Kind::Service), lists, "bookmarked watch resumed after compaction without a relist");
    api.set_bookmarks(None);

    // History compacted while the watch was down: 410 Expired in the stream → relist, and an
    // object deleted in the gap disappears.
    api.set_down(true);
    api.delete(Kind::Service, "shop", "after-cut");
    api.compact();
    // While the API is down, the last data keeps answering.
    assert_eq!(a("web.shop.svc.cluster.local.").answers.len(), 1);
    api.set_down(false);
    eventually("after-cut.shop.svc.cluster.local.", ResponseCode::NXDomain, 0);
    assert!(api.lists(Kind::Service) > lists, "relisted after 410");

    // 410 as the HTTP status of the watch request (kube-runtime alone would retry forever).
    let lists = api.lists(Kind::Namespace);
    api.fault(Kind::Namespace, Fault::WatchGone);
    api.fault(Kind::Namespace, Fault::WatchGone);
    api.cut_streams();
    api.apply(Kind::Namespace, objects::namespace("late"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while api.lists(Kind::Namespace) == lists && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(api.lists(Kind::Namespace) > lists, "relisted after HTTP 410");
    let r = udp_until(k.addr(), &query("late.svc.cluster.local.", RecordType::A), Duration::from_secs(10), |r| {
        r.metadata.response_code == ResponseCode::NoError
    });
    assert_eq!(r.metadata.response_code, ResponseCode::NoError, "namespace seen after the relist");
    let (code, _) = http_get(&format!("127.0.0.1:{ready}"), "/ready").unwrap();
    assert_eq!(code, 200);
}

#[test]
fn api_down_at_startup_servfail_until_synced() {
    let api = FakeApi::start();
    cluster(&api);
    api.set_down(true);
    let (conf, ready, _) = with_ports(&format!(
        ".:PORT {{\n    ready 127.0.0.1:READY\n    kubernetes cluster.local {{\n        endpoint {}\n        startup_timeout 1s\n    }}\n}}\n",
        api.url()
    ));
    let started = std::time::Instant::now();
    let k = Kdns::start(&conf);
    assert!(started.elapsed() >= Duration::from_millis(900), "waited for startup_timeout");
    k.wait_for_line("starting server with unsynced Kubernetes API", Duration::from_secs(2));
    let r = ask(&k, "nope.shop.svc.cluster.local.", RecordType::A);
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail, "not NXDOMAIN while unsynced");
    assert_eq!(r.authorities.len(), 1);
    let (code, body) = http_get(&format!("127.0.0.1:{ready}"), "/ready").unwrap();
    assert_eq!((code, body.trim()), (503, "kubernetes"));
    api.set_down(false);
    let r = udp_until(k.addr(), &query("nope.shop.svc.cluster.local.", RecordType::A), Duration::from_secs(15), |r| {
        r.metadata.response_code == ResponseCode::NXDomain
    });
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(ask(&k, "web.shop.svc.cluster.local.", RecordType::A).answers.len(), 1);
    let (code, _) = http_get(&format!("127.0.0.1:{ready}"), "/ready").unwrap();
    assert_eq!(code, 200);
}

#[test]
fn options_filter_and_shape_answers() {
    let api = FakeApi::start();
    cluster(&api);
    api.apply(Kind::Service, objects::service("shop", "idle", &["10.96.60.1"], &[("http", 80, "TCP")]));
    // `labels` applies to the Pod watch too.
    for (name, ip, phase) in [("web-abc", "10.244.1.30", "Running"), ("done", "10.244.1.99", "Succeeded")] {
        let mut pod = objects::pod("shop", name, ip, phase);
        pod["metadata"]["labels"]["team"] = serde_json::json!("a");
        api.apply(Kind::Pod, pod);
    }
    let mut labelled = objects::service("shop", "team-a", &["10.96.70.1"], &[]);
    labelled["metadata"]["labels"] = serde_json::json!({"team": "a"});
    api.apply(Kind::Service, labelled);
    let url = api.url();
    let conf = format!(
        "a.test:PORT {{\n    kubernetes a.test {{\n        endpoint {url}\n        namespaces shop\n        endpoint_pod_names\n        ignore empty_service\n        ttl 7\n    }}\n}}\n\
         b.test:PORT {{\n    kubernetes b.test {{\n        endpoint {url}\n        pods verified\n        noendpoints\n        labels team=a\n        fallthrough\n    }}\n    whoami\n}}\n"
    );
    let k = Kdns::start(&conf);
    assert_eq!(answers(&k, "dns-version.a.test.", RecordType::TXT), ["dns-version.a.test. 28800 IN TXT 1.1.0"]);
    // namespaces: only shop is visible.
    assert_eq!(answers(&k, "web.shop.svc.a.test.", RecordType::A), ["web.shop.svc.a.test. 7 IN A 10.96.12.7"]);
    negative(&k, "kubernetes.default.svc.a.test.", RecordType::A, ResponseCode::NXDomain);
    // ignore empty_service: a ClusterIP service without endpoints is NXDOMAIN.
    negative(&k, "idle.shop.svc.a.test.", RecordType::A, ResponseCode::NXDomain);
    // endpoint_pod_names: the pod name replaces the dashed IP.
    let r = ask(&k, "_postgres._tcp.db.shop.svc.a.test.", RecordType::SRV);
    assert!(rrs(&r.answers).iter().all(|s| s.contains(" db-0.db.") || s.contains(" db-1.db.")), "{:?}", r.answers);
    assert_eq!(
        answers(&k, "web-abc.web.shop.svc.a.test.", RecordType::A),
        ["web-abc.web.shop.svc.a.test. 7 IN A 10.244.1.30"]
    );
    // labels: only matching services are watched; noendpoints: headless answers nothing;
    // fallthrough: NXDOMAIN-class answers go on (to whoami here).
    assert_eq!(answers(&k, "team-a.shop.svc.b.test.", RecordType::A).len(), 1);
    let r = ask(&k, "web.shop.svc.b.test.", RecordType::A);
    assert!(r.answers.is_empty() && !r.additionals.is_empty(), "fell through to whoami: {r:?}");
    // pods verified: only live pods in that namespace.
    let r = ask(&k, "10-244-1-30.shop.pod.b.test.", RecordType::A);
    assert_eq!(rrs(&r.answers), ["10-244-1-30.shop.pod.b.test. 5 IN A 10.244.1.30"]);
    let r = ask(&k, "10-244-1-99.shop.pod.b.test.", RecordType::A);
    assert!(r.answers.is_empty(), "a finished pod is not served: {r:?}");
    // Bad options name the file and line.
    let (code, _out, err) = run_to_exit(&["-conf", "Corefile", "-dns.port", "0"], &{
        let d = temp_dir("kubebad");
        std::fs::write(d.join("Corefile"), ".:53 {\n    kubernetes cluster.local {\n        ttl 3601\n    }\n}\n")
            .unwrap();
        d
    });
    assert_ne!(code, 0);
    assert!(
        err.contains("Corefile:3 - Error during parsing: plugin/kubernetes: ttl must be in range [0, 3600]: 3601"),
        "{err}"
    );
}

#[test]
fn autopath_answers_the_search_path_in_one_query() {
    let api = FakeApi::start();
    cluster(&api);
    // The test client's address is a pod in namespace shop.
    api.apply(Kind::Pod, objects::pod("shop", "client", "127.0.0.1", "Running"));
    let up = Upstream::start();
    let (conf, _, metrics) = with_ports(&format!(
        ".:PORT {{\n    prometheus 127.0.0.1:METRICS\n    autopath @kubernetes\n    kubernetes cluster.local {{\n        endpoint {}\n        pods verified\n    }}\n    forward . {}\n}}\n",
        api.url(),
        up.addr
    ));
    let k = Kdns::start(&conf);
    // kubernetes.default.shop.svc.cluster.local → kubernetes.default.svc.cluster.local.
    let r = ask(&k, "kubernetes.default.shop.svc.cluster.local.", RecordType::A);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        r.answers.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        [
            "kubernetes.default.shop.svc.cluster.local. 5 IN CNAME kubernetes.default.svc.cluster.local.",
            "kubernetes.default.svc.cluster.local. 5 IN A 10.96.0.1",
        ]
    );
    assert_eq!(r.queries[0].name().to_string(), "kubernetes.default.shop.svc.cluster.local.");
    // An external name: the cluster tries are NXDOMAIN, then the host's search domains and the
    // name as given go to forward (which answers everything here).
    let r = ask(&k, "github.com.shop.svc.cluster.local.", RecordType::A);
    assert_eq!(r.answers.len(), 2, "{r:?}");
    assert!(
        r.answers[0].to_string().starts_with("github.com.shop.svc.cluster.local. 300 IN CNAME github.com."),
        "{r:?}"
    );
    assert!(r.answers[1].to_string().ends_with("300 IN A 192.0.2.1"), "{r:?}");
    // A name in the client's own namespace is answered directly, no CNAME.
    assert_eq!(
        answers(&k, "web.shop.svc.cluster.local.", RecordType::A),
        ["web.shop.svc.cluster.local. 5 IN A 10.96.12.7"]
    );
    // Nothing anywhere: the first NXDOMAIN comes back unchanged.
    let r = ask(&k, "nxdomain.shop.svc.cluster.local.", RecordType::A);
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(r.queries[0].name().to_string(), "nxdomain.shop.svc.cluster.local.");
    let scrape = metrics_text(metrics);
    assert_eq!(metric(&scrape, &format!("coredns_autopath_success_total{{server=\"dns://:{}\"}}", k.port)), Some(3.0));
}

#[test]
fn k8s_external_answers_external_ips_load_balancers_and_headless_services() {
    let api = FakeApi::start();
    let upstream = Upstream::start();
    cluster(&api);
    let mut web = objects::service("shop", "web", &["10.96.12.7"], &[("http", 80, "TCP"), ("https", 443, "TCP")]);
    web["spec"]["externalIPs"] = serde_json::json!(["192.0.2.80", "2001:db8::80"]);
    web["status"] = serde_json::json!({"loadBalancer": {"ingress": [{"ip": "198.51.100.80"}]}});
    api.apply(Kind::Service, web);
    let mut elb = objects::service("shop", "elb", &["10.96.12.9"], &[("http", 80, "TCP")]);
    elb["spec"]["type"] = "LoadBalancer".into();
    elb["status"] = serde_json::json!({"loadBalancer": {"ingress": [{"hostname": "lb-1.elb.example.net"}]}});
    api.apply(Kind::Service, elb);
    let k = Kdns::start(&format!(
        ".:PORT {{
    kubernetes cluster.local {{
        endpoint {}
    }}
    k8s_external example.org {{
        ttl 7
        headless
    }}
    forward . {}
}}
",
        api.url(),
        upstream.addr
    ));
    let a = ask(&k, "web.shop.example.org.", RecordType::A);
    assert!(a.metadata.authoritative);
    assert_eq!(
        rrs(&a.answers),
        ["web.shop.example.org. 7 IN A 192.0.2.80", "web.shop.example.org. 7 IN A 198.51.100.80"]
    );
    assert_eq!(
        answers(&k, "web.shop.example.org.", RecordType::AAAA),
        ["web.shop.example.org. 7 IN AAAA 2001:db8::80"]
    );
    let srv = ask(&k, "_https._tcp.web.shop.example.org.", RecordType::SRV);
    assert_eq!(rrs(&srv.answers), ["_https._tcp.web.shop.example.org. 7 IN SRV 0 33 443 web.shop.example.org."]);
    assert_eq!(srv.additionals.iter().filter(|r| r.record_type() != RecordType::OPT).count(), 3);
    // A load balancer known by name: CNAME, then its addresses from the rest of the block.
    let lb = answers(&k, "elb.shop.example.org.", RecordType::A);
    assert_eq!(
        lb,
        ["elb.shop.example.org. 7 IN CNAME lb-1.elb.example.net.", "lb-1.elb.example.net. 300 IN A 192.0.2.1"]
    );
    // Headless: the ready endpoints, one of them by its hostname.
    assert_eq!(
        answers(&k, "db.shop.example.org.", RecordType::A),
        ["db.shop.example.org. 7 IN A 10.244.1.21", "db.shop.example.org. 7 IN A 10.244.2.22"]
    );
    assert_eq!(
        answers(&k, "db-1.db.shop.example.org.", RecordType::A),
        ["db-1.db.shop.example.org. 7 IN A 10.244.2.22"]
    );
    // No external address: NXDOMAIN; a namespace alone: NODATA; both with the zone's SOA.
    negative(&k, "noport.shop.example.org.", RecordType::A, ResponseCode::NXDomain);
    negative(&k, "web.nonexistent.example.org.", RecordType::A, ResponseCode::NXDomain);
    negative(&k, "shop.example.org.", RecordType::A, ResponseCode::NoError);
    negative(&k, "web.shop.example.org.", RecordType::MX, ResponseCode::NoError);
    // The apex: static SOA, NS ns1.dns.<zone> with this server's addresses.
    let soa = ask(&k, "example.org.", RecordType::SOA);
    assert_eq!(
        rrs(&soa.answers),
        ["example.org. 7 IN SOA ns1.dns.example.org. hostmaster.dns.example.org. 12345 7200 1800 86400 7"]
    );
    let ns = ask(&k, "example.org.", RecordType::NS);
    assert_eq!(rrs(&ns.answers), ["example.org. 7 IN NS ns1.dns.example.org."]);
    assert!(ns.additionals.iter().any(|r| r.name.to_string() == "ns1.dns.example.org."), "{ns:?}");
    let ns1 = ask(&k, "ns1.dns.example.org.", RecordType::A);
    assert!(!ns1.answers.is_empty());
    assert_eq!(ask(&k, "ns2.dns.example.org.", RecordType::A).metadata.response_code, ResponseCode::NXDomain);
    // The cluster zone is unaffected.
    assert_eq!(
        answers(&k, "web.shop.svc.cluster.local.", RecordType::A),
        ["web.shop.svc.cluster.local. 5 IN A 10.96.12.7"]
    );
    // External IPs follow the API.
    let mut web = objects::service("shop", "web", &["10.96.12.7"], &[("http", 80, "TCP")]);
    web["spec"]["externalIPs"] = serde_json::json!(["192.0.2.81"]);
    api.apply(Kind::Service, web);
    let r = udp_until(k.addr(), &query("web.shop.example.org.", RecordType::A), Duration::from_secs(5), |r| {
        r.answers.len() == 1
    });
    assert_eq!(rrs(&r.answers), ["web.shop.example.org. 7 IN A 192.0.2.81"]);
}

/// `count` services `svc-N.ns-(N % 10)` with cluster IPs, loaded without watch history.
fn many_services(api: &FakeApi, count: usize) {
    api.load(Kind::Namespace, (0..10).map(|n| objects::namespace(&format!("ns-{n}"))));
    api.load(
        Kind::Service,
        (0..count).map(|i| {
            let ip = format!("10.96.{}.{}", i / 250, i % 250 + 1);
            objects::service(&format!("ns-{}", i % 10), &format!("svc-{i}"), &[&ip], &[("http", 80, "TCP")])
        }),
    );
}

/// kdns serving cluster.local from `api` (with `extra` lines of kubernetes options), once its
/// `/ready` says 200; returns it, its ready port and its metrics port.
fn serving(api: &FakeApi, extra: &str, within: Duration) -> (Kdns, u16, u16) {
    let (conf, ready, metrics) = with_ports(&format!(
        ".:PORT {{\n    ready 127.0.0.1:READY\n    prometheus 127.0.0.1:METRICS\n    kubernetes cluster.local {{\n        endpoint {}\n{extra}    }}\n}}\n",
        api.url()
    ));
    let k = Kdns::start(&conf);
    netns::wait_until("/ready 200", within, || {
        http_get(&format!("127.0.0.1:{ready}"), "/ready").is_some_and(|(code, _)| code == 200)
    });
    (k, ready, metrics)
}

#[test]
fn streaming_lists_and_the_paginated_fallback() {
    // A current API server: one streaming list per kind, however many objects.
    let api = FakeApi::start();
    many_services(&api, 1200);
    let (k, _, metrics) = serving(&api, "", Duration::from_secs(10));
    assert_eq!(answers(&k, "svc-1199.ns-9.svc.cluster.local.", RecordType::A).len(), 1);
    assert_eq!(api.lists(Kind::Service), 1, "one streaming list, no pages");
    let scrape = metrics_text(metrics);
    assert!(!scrape.contains("kdns_kubernetes_list_fallbacks_total{"), "no fallback against a current server");
    drop(k);

    // A server that refuses streaming lists (422): paginated lists per kind, with a warning and
    // a metric, then ordinary watches.
    let api = FakeApi::start();
    many_services(&api, 1200);
    api.set_watch_list(false);
    let (k, _, metrics) = serving(&api, "", Duration::from_secs(15));
    k.wait_for_line("services: the API server refused a streaming list", Duration::from_secs(2));
    assert_eq!(
        answers(&k, "svc-0.ns-0.svc.cluster.local.", RecordType::A),
        ["svc-0.ns-0.svc.cluster.local. 5 IN A 10.96.0.1"]
    );
    assert_eq!(answers(&k, "svc-1199.ns-9.svc.cluster.local.", RecordType::A).len(), 1);
    assert_eq!(api.lists(Kind::Service), 3, "after the refused streaming list, three pages of 500");
    let scrape = metrics_text(metrics);
    for resource in ["services", "namespaces", "endpointslices"] {
        assert_eq!(
            metric(&scrape, &format!("kdns_kubernetes_list_fallbacks_total{{resource=\"{resource}\"}}")),
            Some(1.0),
            "{resource}"
        );
    }
    api.apply(Kind::Service, objects::service("ns-3", "late", &["10.96.99.1"], &[]));
    let r = udp_until(k.addr(), &query("late.ns-3.svc.cluster.local.", RecordType::A), Duration::from_secs(5), |r| {
        !r.answers.is_empty()
    });
    assert_eq!(r.answers.len(), 1, "changes arrive over the watch that follows the pages");
}

#[test]
fn a_relist_never_takes_answers_away() {
    let api = FakeApi::start();
    many_services(&api, 3000);
    let (k, ready, metrics) = serving(&api, "", Duration::from_secs(10));
    api.apply(Kind::Service, objects::service("ns-1", "doomed", &["10.96.99.2"], &[]));
    let doomed = "doomed.ns-1.svc.cluster.local.";
    let r = udp_until(k.addr(), &query(doomed, RecordType::A), Duration::from_secs(5), |r| !r.answers.is_empty());
    assert_eq!(r.answers.len(), 1);

    // The API server restarts with its history compacted and a deletion in the gap; its lists
    // are slow (30 ms per 100 objects), so the relist takes about a second.
    api.set_initial_event_pause(Some(Duration::from_millis(30)));
    api.set_down(true);
    api.delete(Kind::Service, "ns-1", "doomed");
    api.compact();
    api.set_down(false);
    let start = std::time::Instant::now();
    let mut asked = 0;
    loop {
        for i in [0usize, 1499, 2999] {
            let name = format!("svc-{i}.ns-{}.svc.cluster.local.", i % 10);
            let r = ask(&k, &name, RecordType::A);
            assert_eq!(
                (r.metadata.response_code, r.answers.len()),
                (ResponseCode::NoError, 1),
                "{name} during the relist"
            );
            asked += 1;
        }
        if ask(&k, doomed, RecordType::A).metadata.response_code == ResponseCode::NXDomain {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "the deletion never arrived");
    }
    assert!(asked > 30, "asked throughout the relist: {asked}");
    let scrape = metrics_text(metrics);
    assert!(metric(&scrape, "kdns_kubernetes_relists_total{resource=\"services\"}").is_some_and(|n| n >= 1.0));
    let (code, _) = http_get(&format!("127.0.0.1:{ready}"), "/ready").unwrap();
    assert_eq!(code, 200, "ready throughout");
}

#[test]
fn client_side_limits_space_the_requests() {
    // Paginated lists make many requests: 1600 services are four pages, plus the namespace and
    // slice lists and the refused streaming lists. At 4 per second with a burst of 1 they take
    // over a second; each wait is timed into CoreDNS's rate limiter histogram.
    let api = FakeApi::start();
    many_services(&api, 1600);
    api.set_watch_list(false);
    let started = std::time::Instant::now();
    let limits = "        apiserver_qps 4\n        apiserver_burst 1\n        apiserver_max_inflight 1\n";
    let (k, _, metrics) = serving(&api, limits, Duration::from_secs(20));
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1200), "ready after {took:?}: requests were not spaced");
    assert_eq!(answers(&k, "svc-1599.ns-9.svc.cluster.local.", RecordType::A).len(), 1);
    let scrape = metrics_text(metrics);
    let host = api.addr.to_string();
    let series = |s: &str| {
        metric(
            &scrape,
            &format!(
                "coredns_kubernetes_rest_client_rate_limiter_duration_seconds_{s}{{host=\"{host}\",verb=\"GET\"}}"
            ),
        )
    };
    let (count, sum) = (series("count").unwrap_or(0.0), series("sum").unwrap_or(0.0));
    assert!(count >= 9.0, "every request passes the limiter: {count}");
    assert!(sum >= 1.5, "requests waited for tokens: {sum} s over {count} requests");
}
