//! Real distribution Corefiles (tests/corefiles/: kubeadm today and as of Kubernetes 1.13, the
//! coredns/deployment one, k3s with NodeHosts and custom imports, RKE2, EKS, AKS with
//! `custom/*.override` and `custom/*.server`, OpenShift, kubespray and its nodelocaldns) start unchanged against the
//! fake API server and answer: a Service, a reverse lookup, a forwarded name, and what each
//! distribution adds. Only what ties a file to a cluster is replaced for the test: the API
//! endpoint (in-cluster config → the fake API server's URL), listen ports, `/etc/resolv.conf`
//! (→ the scriptable upstream) and paths under /etc/coredns. The node-local-dns Corefile is
//! run in network namespaces by tests/nodecache.rs.

mod common;

use common::upstream::Upstream;
use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};
use kdns_fakeapi::{objects, FakeApi, Kind};
use std::net::SocketAddr;
use std::path::Path;

fn prepare(file: &str, api: &FakeApi, upstream: &Upstream, dir: &Path) -> (String, u16) {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corefiles").join(file)).unwrap();
    let chaos_port = free_port();
    let mut out = String::new();
    for line in text.lines() {
        let mut l = line.to_string();
        // Listen ports and admin addresses of this test run.
        l = l.replace("hostname.bind:5353", &format!("hostname.bind:{chaos_port}"));
        l = l.replace(".:5353", ".:PORT").replace(".:53 ", ".:PORT ");
        for from in ["0.0.0.0:9153", "127.0.0.1:9153", ":9153", ":8080"] {
            if l.trim_end().ends_with(from) {
                l = l.replacen(from, &format!("127.0.0.1:{}", free_port()), 1);
            }
        }
        if l.trim() == "ready" {
            l = format!("{l} 127.0.0.1:{}", free_port());
        }
        if l.trim() == "health" {
            l = format!("{l} 127.0.0.1:{}", free_port());
        }
        if l.trim_start().starts_with("health {") {
            l = l.replace("health {", &format!("health 127.0.0.1:{} {{", free_port()));
        }
        l = l.replace("/etc/resolv.conf", &upstream.addr.to_string());
        l = l.replace("/etc/coredns/NodeHosts", &path_str(&dir.join("NodeHosts")));
        l = l.replace("/etc/coredns/custom/", &format!("{}/", path_str(&dir.join("custom"))));
        // AKS imports relative to the Corefile's directory (/etc/coredns).
        l = l.replace("import custom/", &format!("import {}/", path_str(&dir.join("custom"))));
        out.push_str(&l);
        out.push('\n');
        // In-cluster configuration → the fake API server.
        if l.trim_start().starts_with("kubernetes ") && l.trim_end().ends_with('{') {
            out.push_str(&format!("        endpoint {}\n", api.url()));
        }
    }
    (out, chaos_port)
}

fn start(file: &str) -> (Kdns, u16, FakeApi, Upstream) {
    let api = FakeApi::start();
    for ns in ["default", "kube-system"] {
        api.apply(Kind::Namespace, objects::namespace(ns));
    }
    api.apply(Kind::Service, objects::service("default", "kubernetes", &["10.96.0.1"], &[("https", 443, "TCP")]));
    api.apply(Kind::Service, objects::service("kube-system", "kube-dns", &["10.96.0.10"], &[("dns", 53, "UDP")]));
    let upstream = Upstream::start();
    let dir = temp_dir("corefiles");
    std::fs::create_dir_all(dir.join("custom")).unwrap();
    std::fs::write(dir.join("NodeHosts"), "172.18.0.2 k3s-server\n172.18.0.3 k3s-agent-1\n").unwrap();
    // AKS and k3s users drop extra zones and overrides into custom/.
    std::fs::write(
        dir.join("custom/corp.server"),
        format!("corp.example:PORT {{\n    forward . {}\n}}\n", upstream.addr),
    )
    .unwrap();
    std::fs::write(dir.join("custom/log.override"), "log\n").unwrap();
    let (corefile, chaos) = prepare(file, &api, &upstream, &dir);
    let k = Kdns::start(&corefile);
    (k, chaos, api, upstream)
}

fn check_common(file: &str, k: &Kdns) {
    let svc = udp(k.addr(), &query("kubernetes.default.svc.cluster.local.", RecordType::A));
    assert_eq!(svc.metadata.response_code, ResponseCode::NoError, "{file}");
    assert_eq!(svc.answers[0].data, RData::A("10.96.0.1".parse().unwrap()), "{file}");
    let ptr = udp(k.addr(), &query("10.0.96.10.in-addr.arpa.", RecordType::PTR));
    assert_eq!(ptr.answers.len(), 1, "{file}: {ptr:?}");
    assert_eq!(ptr.answers[0].data.to_string(), "kube-dns.kube-system.svc.cluster.local.", "{file}");
    let ext = udp(k.addr(), &query("www.example.com.", RecordType::A));
    assert_eq!(ext.answers[0].data, RData::A("192.0.2.1".parse().unwrap()), "{file}: forwarded");
    let nx = udp(k.addr(), &query("nosuch.default.svc.cluster.local.", RecordType::A));
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain, "{file}");
}

#[test]
fn distribution_corefiles_start_and_answer() {
    for file in [
        "kubeadm.Corefile",
        "kubeadm-1.13.Corefile",
        "coredns-deployment.Corefile",
        "rke2.Corefile",
        "eks.Corefile",
        "kubespray.Corefile",
    ] {
        let (k, _, _api, _up) = start(file);
        check_common(file, &k);
    }
}

#[test]
fn k3s_corefile_serves_node_hosts_and_custom_imports() {
    let (k, _, _api, upstream) = start("k3s.Corefile");
    check_common("k3s", &k);
    let r = udp(k.addr(), &query("k3s-agent-1.", RecordType::A));
    assert_eq!(r.answers[0].data, RData::A("172.18.0.3".parse().unwrap()), "NodeHosts");
    let r = udp(k.addr(), &query("host.corp.example.", RecordType::A));
    assert_eq!(r.metadata.response_code, ResponseCode::NoError, "custom *.server block");
    assert!(upstream.seen().iter().any(|s| s.qname == "host.corp.example."));
    k.wait_for_line("host.corp.example.", std::time::Duration::from_secs(2));
}

#[test]
fn aks_corefile_imports_custom_servers_and_overrides() {
    let (k, _, _api, _up) = start("aks.Corefile");
    check_common("aks", &k);
    let r = udp(k.addr(), &query("app.corp.example.", RecordType::A));
    assert_eq!(r.metadata.response_code, ResponseCode::NoError, "custom *.server block");
    // The *.override import added `log` to the main block.
    k.wait_for_line("\"A IN kubernetes.default.svc.cluster.local.", std::time::Duration::from_secs(2));
}

#[test]
fn openshift_corefile_with_bufsize_error_log_and_chaos_block() {
    let (k, chaos, _api, _up) = start("openshift.Corefile");
    check_common("openshift", &k);
    let r = udp(SocketAddr::from(([127, 0, 0, 1], chaos)), &{
        let mut q = query("hostname.bind.", RecordType::TXT);
        q.queries[0].set_query_class(hickory_proto::rr::DNSClass::CH);
        q
    });
    assert_eq!(r.metadata.response_code, ResponseCode::NoError, "chaos hostname.bind");
    assert_eq!(r.answers.len(), 1);
}

/// Kubespray's nodelocaldns ConfigMap (rendered with its defaults) in plain server mode: the
/// link-local bind address becomes 127.0.0.1, the cluster DNS service (force_tcp) and
/// /etc/resolv.conf the scriptable upstream. (The stock node-local-dns template runs in network
/// namespaces in tests/nodecache.rs.)
#[test]
fn kubespray_nodelocaldns_corefile_forwards_cluster_zones_over_tcp() {
    let upstream = Upstream::start();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corefiles/kubespray-nodelocaldns.Corefile"),
    )
    .unwrap();
    let (metrics, health) = (free_port(), free_port());
    let corefile = text
        .replace(":53 {", ":PORT {")
        .replace("169.254.25.10:9254", &format!("127.0.0.1:{health}"))
        .replace("169.254.25.10", "127.0.0.1")
        .replace("10.233.0.3", &upstream.addr.to_string())
        .replace("/etc/resolv.conf", &upstream.addr.to_string())
        .replace(":9253", &format!("127.0.0.1:{metrics}"));
    let k = Kdns::start(&corefile);
    let r = udp(k.addr(), &query("kubernetes.default.svc.cluster.local.", RecordType::A));
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(r.answers[0].data, RData::A("192.0.2.1".parse().unwrap()));
    let r = udp(k.addr(), &query("1.0.96.10.in-addr.arpa.", RecordType::PTR));
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    let r = udp(k.addr(), &query("www.example.com.", RecordType::A));
    assert_eq!(r.answers[0].data, RData::A("192.0.2.1".parse().unwrap()));
    let seen = upstream.seen();
    let over_tcp = |name: &str| seen.iter().find(|s| s.qname == name).map(|s| s.tcp);
    assert_eq!(over_tcp("kubernetes.default.svc.cluster.local."), Some(true), "force_tcp for the cluster zone");
    assert_eq!(over_tcp("1.0.96.10.in-addr.arpa."), Some(true));
    assert_eq!(over_tcp("www.example.com."), Some(false), "the rest over UDP");
    assert!(http_get(&format!("127.0.0.1:{health}"), "/health").is_some_and(|(code, _)| code == 200));
    let scrape = metrics_text(metrics);
    assert!(scrape.contains("coredns_dns_requests_total{"), "one prometheus listener shared by four blocks");
}
