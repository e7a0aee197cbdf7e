//! The bad-input catalogue beyond malformed queries (reliability.md §3.2 and §3.3): broken
//! Corefiles fail at startup with file and line and never half-start, and extreme Kubernetes
//! objects (a 10,000-endpoint headless service, objects in odd order, self-referencing
//! ExternalNames, names starting with digits, invalid endpoint hostnames) are answered
//! correctly and within DNS's size limits over UDP and TCP.

mod common;

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use std::fmt::Write as _;
use std::time::Duration;

#[test]
fn broken_corefiles_fail_with_file_and_line() {
    let dir = temp_dir("badcore");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("unclosed block", b".:53 {\n    whoami\n".to_vec(), "Corefile"),
        ("invalid UTF-8", b".:53 {\n    forward . \xff\xfe\n}\n".to_vec(), "Corefile:2"),
        ("plugin twice", b".:53 {\n    cache\n    cache\n}\n".to_vec(), "Corefile:3"),
        ("duplicate server block", b".:53 {\n    whoami\n}\n.:53 {\n    whoami\n}\n".to_vec(), "Corefile:4"),
        ("bad duration", b".:53 {\n    health {\n        lameduck 5q\n    }\n}\n".to_vec(), "Corefile:3"),
        ("bad port", b".:99999 {\n    whoami\n}\n".to_vec(), "Corefile:1"),
        ("bad upstream address", b".:53 {\n    forward . 300.1.1.1\n}\n".to_vec(), "Corefile:2"),
        ("unknown directive", b".:53 {\n    frobnicate\n}\n".to_vec(), "Corefile:2"),
        ("bufsize out of range", b".:53 {\n    bufsize 100\n    whoami\n}\n".to_vec(), "Corefile:2"),
        ("self import", b"(s) {\n    import s\n}\n.:53 {\n    import s\n}\n".to_vec(), "Corefile"),
        ("invalid first byte", b"\x00.:53 {\n    whoami\n}\n".to_vec(), "Corefile"),
    ];
    for (what, text, needle) in cases {
        std::fs::write(dir.join("Corefile"), &text).unwrap();
        // `kdns check` and a real start agree, and the start never binds anything.
        let (code, _, err) = run_to_exit(&["check", "-conf", "Corefile"], &dir);
        assert_eq!(code, 1, "{what}: check accepted it");
        assert!(err.contains(needle), "{what}: {err}");
        assert!(!err.contains("panicked"), "{what}: {err}");
        let (code, out, err) = run_to_exit(&["-conf", "Corefile", "-dns.port", "0"], &dir);
        assert_eq!(code, 1, "{what}: started anyway\n{out}");
        assert!(err.contains(needle), "{what}: {err}");
    }
    // An environment variable that is not set becomes empty, as in CoreDNS: `{$UNSET}:53` is the
    // root zone on port 53, not an error.
    std::fs::write(dir.join("Corefile"), "{$KDNS_SURELY_UNSET}:53 {\n    whoami\n}\n").unwrap();
    let (code, out, err) = run_to_exit(&["check", "-conf", "Corefile"], &dir);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(". on :53"), "{out}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Writes a manifests directory: a headless service with `n` ready endpoints in slices of 1,000
/// (slices first, as a watch may deliver them), plus the odd objects.
fn cluster(dir: &std::path::Path, n: usize) {
    let mut slices = String::from("apiVersion: discovery.k8s.io/v1\nkind: EndpointSliceList\nitems:\n");
    for chunk in 0..n.div_ceil(1000) {
        let _ = write!(
            slices,
            "- apiVersion: discovery.k8s.io/v1\n  kind: EndpointSlice\n  metadata: {{name: big-{chunk}, namespace: ns, labels: {{kubernetes.io/service-name: big}}}}\n  addressType: IPv4\n  ports: [{{name: http, port: 80, protocol: TCP}}]\n  endpoints:\n"
        );
        for i in chunk * 1000..((chunk + 1) * 1000).min(n) {
            let _ = writeln!(slices, "  - addresses: [10.{}.{}.{}]", 100 + i / 65536, (i / 256) % 256, i % 256);
        }
    }
    slices.push_str(
        "- apiVersion: discovery.k8s.io/v1\n  kind: EndpointSlice\n  metadata: {name: odd-1, namespace: ns, labels: {kubernetes.io/service-name: 1st-svc}}\n  addressType: IPv4\n  ports: [{name: http, port: 80, protocol: TCP}]\n  endpoints:\n  - addresses: [10.9.0.1]\n    hostname: Not_A_Label\n  - addresses: [10.9.0.2]\n    hostname: ok-host\n",
    );
    std::fs::write(dir.join("0-slices.yaml"), slices).unwrap();
    std::fs::write(
        dir.join("1-services.yaml"),
        "apiVersion: v1\nkind: List\nitems:\n\
- {apiVersion: v1, kind: Namespace, metadata: {name: ns}}\n\
- {apiVersion: v1, kind: Service, metadata: {name: big, namespace: ns}, spec: {clusterIP: None, selector: {app: big}, ports: [{name: http, port: 80, protocol: TCP}]}}\n\
- {apiVersion: v1, kind: Service, metadata: {name: 1st-svc, namespace: ns}, spec: {clusterIP: None, selector: {app: x}, ports: [{name: http, port: 80, protocol: TCP}]}}\n\
- {apiVersion: v1, kind: Service, metadata: {name: loop, namespace: ns}, spec: {type: ExternalName, externalName: loop.ns.svc.cluster.local}}\n\
- {apiVersion: v1, kind: Service, metadata: {name: ping, namespace: ns}, spec: {type: ExternalName, externalName: pong.ns.svc.cluster.local}}\n\
- {apiVersion: v1, kind: Service, metadata: {name: pong, namespace: ns}, spec: {type: ExternalName, externalName: ping.ns.svc.cluster.local}}\n",
    )
    .unwrap();
}

#[test]
fn extreme_kubernetes_objects_answer_within_dns_limits() {
    let dir = temp_dir("bigsvc");
    cluster(&dir, 10_000);
    let k = Kdns::start(&format!(
        ".:PORT {{\n    bind 127.0.0.1\n    kubernetes cluster.local {{\n        manifests {}\n    }}\n}}\n",
        dir.display()
    ));
    let big = query("big.ns.svc.cluster.local.", RecordType::A);
    // Loading 10,000 endpoints from YAML takes a moment in a debug build: ask until synced.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let over_udp = loop {
        let reply = udp_raw(k.addr(), &big.to_vec().unwrap(), Duration::from_secs(2))
            .and_then(|b| hickory_proto::op::Message::from_vec(&b).ok());
        match reply {
            Some(m) if m.metadata.response_code == ResponseCode::NoError => break m,
            _ => assert!(std::time::Instant::now() < deadline, "no answer for the big service"),
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(over_udp.metadata.truncation, "10,000 A records do not fit 512 bytes: TC");
    assert!(over_udp.to_vec().unwrap().len() <= 512);
    let over_tcp = tcp(k.addr(), &big);
    assert_eq!(over_tcp.metadata.response_code, ResponseCode::NoError);
    assert!(over_tcp.metadata.truncation, "~160 kB of records do not fit 65,535 bytes either: TC over TCP");
    let n = over_tcp.answers.len();
    assert!((3000..10_000).contains(&n), "{n} records in the TCP answer");
    assert!(over_tcp.to_vec().unwrap().len() <= 65_535);
    // A service name starting with a digit; endpoint hostnames are used as given (CoreDNS does
    // not validate them either; the API server does).
    let r = udp(k.addr(), &query("1st-svc.ns.svc.cluster.local.", RecordType::A));
    assert_eq!(r.answers.len(), 2, "{r:?}");
    let ok = udp(k.addr(), &query("ok-host.1st-svc.ns.svc.cluster.local.", RecordType::A));
    assert_eq!(ok.answers.len(), 1);
    let odd = udp(k.addr(), &query("not_a_label.1st-svc.ns.svc.cluster.local.", RecordType::A));
    assert_eq!(odd.answers.len(), 1);
    // ExternalName loops end (no hang, no unbounded CNAME chain).
    for name in ["loop.ns.svc.cluster.local.", "ping.ns.svc.cluster.local."] {
        let r = udp(k.addr(), &query(name, RecordType::A));
        assert!(r.answers.len() <= 16, "{name}: {} records", r.answers.len());
        assert!(
            matches!(r.metadata.response_code, ResponseCode::NoError | ResponseCode::ServFail),
            "{name}: {:?}",
            r.metadata.response_code
        );
    }
    // Still answering.
    let r = udp(k.addr(), &query("big.ns.svc.cluster.local.", RecordType::SRV));
    assert!(r.metadata.truncation || !r.answers.is_empty());
    let _ = std::fs::remove_dir_all(dir);
}
