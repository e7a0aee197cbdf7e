//! `/metrics` scraped and parsed after real queries: CoreDNS names, labels and buckets.

mod common;

use common::*;
use hickory_proto::rr::{DNSClass, RecordType};
use std::time::Duration;

#[test]
fn dns_metrics_count_what_was_asked() {
    let mport = free_port();
    let k = Kdns::start(&format!(
        ".:PORT {{\n    prometheus 127.0.0.1:{mport}\n    hosts {{\n        10.0.0.1 a.example.org\n    }}\n    whoami\n}}\nexample.net:PORT {{\n    prometheus 127.0.0.1:{mport}\n    whoami\n}}\n"
    ));
    for _ in 0..3 {
        udp(k.addr(), &query("a.example.org.", RecordType::A));
    }
    let mut do_q = with_edns(query("x.example.net.", RecordType::AAAA), 1232);
    do_q.edns.as_mut().unwrap().flags_mut().dnssec_ok = true;
    udp(k.addr(), &do_q);
    tcp(k.addr(), &query("x.example.net.", RecordType::MX));
    udp(k.addr(), &query("b.example.org.", RecordType::Unknown(65280)));
    let mut ch = query("version.bind.", RecordType::TXT);
    ch.queries[0].set_query_class(DNSClass::CH);
    udp(k.addr(), &ch);

    let maddr = format!("127.0.0.1:{mport}");
    let (status, s) = http_get(&maddr, "/metrics").unwrap();
    assert_eq!(status, 200);
    let server = format!("dns://:{}", k.port);
    let m = |series: String| metric(&s, &series).unwrap_or_else(|| panic!("missing {series}\n{s}"));
    assert_eq!(m(format!("coredns_dns_requests_total{{family=\"1\",proto=\"udp\",server=\"{server}\",type=\"A\",view=\"\",zone=\".\"}}")), 3.0);
    assert_eq!(m(format!("coredns_dns_requests_total{{family=\"1\",proto=\"udp\",server=\"{server}\",type=\"AAAA\",view=\"\",zone=\"example.net.\"}}")), 1.0);
    assert_eq!(m(format!("coredns_dns_requests_total{{family=\"1\",proto=\"tcp\",server=\"{server}\",type=\"MX\",view=\"\",zone=\"example.net.\"}}")), 1.0);
    assert_eq!(m(format!("coredns_dns_requests_total{{family=\"1\",proto=\"udp\",server=\"{server}\",type=\"other\",view=\"\",zone=\".\"}}")), 1.0);
    assert_eq!(m(format!("coredns_dns_requests_total{{family=\"1\",proto=\"udp\",server=\"{server}\",type=\"TXT\",view=\"\",zone=\"dropped\"}}")), 1.0);
    assert_eq!(m(format!("coredns_dns_responses_total{{plugin=\"hosts\",rcode=\"NOERROR\",server=\"{server}\",view=\"\",zone=\".\"}}")), 3.0);
    assert_eq!(
        m(format!(
            "coredns_dns_responses_total{{plugin=\"\",rcode=\"SERVFAIL\",server=\"{server}\",view=\"\",zone=\".\"}}"
        )),
        1.0
    );
    assert_eq!(m(format!("coredns_dns_responses_total{{plugin=\"\",rcode=\"REFUSED\",server=\"{server}\",view=\"\",zone=\"dropped\"}}")), 1.0);
    assert_eq!(m(format!("coredns_dns_do_requests_total{{server=\"{server}\",view=\"\",zone=\"example.net.\"}}")), 1.0);
    assert_eq!(
        m(format!("coredns_dns_request_duration_seconds_count{{server=\"{server}\",view=\"\",zone=\".\"}}")),
        4.0
    );
    assert_eq!(
        m(format!(
            "coredns_dns_request_duration_seconds_bucket{{server=\"{server}\",view=\"\",zone=\".\",le=\"+Inf\"}}"
        )),
        4.0
    );
    assert!(s.contains(&format!(
        "coredns_dns_request_duration_seconds_bucket{{server=\"{server}\",view=\"\",zone=\".\",le=\"0.00025\"}}"
    )));
    assert!(s.contains(&format!(
        "coredns_dns_request_duration_seconds_bucket{{server=\"{server}\",view=\"\",zone=\".\",le=\"8.192\"}}"
    )));
    assert_eq!(
        m(format!(
            "coredns_dns_request_size_bytes_bucket{{proto=\"udp\",server=\"{server}\",view=\"\",zone=\".\",le=\"0\"}}"
        )),
        0.0
    );
    assert!(s.contains(&format!("coredns_dns_response_size_bytes_bucket{{proto=\"tcp\",server=\"{server}\",view=\"\",zone=\"example.net.\",le=\"64000\"}} 1")));
    assert_eq!(m(format!("coredns_plugin_enabled{{name=\"hosts\",server=\"{server}\",view=\"\",zone=\".\"}}")), 1.0);
    assert_eq!(
        m(format!("coredns_plugin_enabled{{name=\"whoami\",server=\"{server}\",view=\"\",zone=\"example.net.\"}}")),
        1.0
    );
    assert_eq!(metric(&s, "coredns_panics_total"), Some(0.0));
    assert!(s.contains("# TYPE coredns_dns_request_duration_seconds histogram"));
    assert!(s.contains("# HELP coredns_dns_requests_total Counter of DNS requests made per zone, protocol and family."));
    assert!(s.lines().any(|l| l.starts_with("coredns_build_info{goversion=\"rustc\",revision=")));
    assert!(metric(&s, "process_resident_memory_bytes").unwrap() > 0.0);
    let (status, _) = http_get(&maddr, "/nope").unwrap();
    assert_eq!(status, 404);
    let _ = Duration::ZERO;
}
