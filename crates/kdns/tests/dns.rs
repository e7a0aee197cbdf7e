//! Queries over real UDP and TCP sockets: routing, EDNS, truncation, TCP framing and timeouts.

mod common;

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, RData, RecordType};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn many_hosts(n: u8) -> String {
    (1..=n).map(|i| format!("        10.0.1.{i} big.example.org\n")).collect()
}

#[test]
fn whoami_over_udp_and_tcp() {
    let k = Kdns::start(".:PORT {\n    whoami\n}\n");
    for reply in
        [udp(k.addr(), &query("example.org.", RecordType::A)), tcp(k.addr(), &query("example.org.", RecordType::A))]
    {
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert!(reply.metadata.authoritative);
        let a = reply.additionals.iter().find(|r| r.record_type() == RecordType::A).expect("A in additional");
        assert_eq!(a.data, RData::A("127.0.0.1".parse().unwrap()));
        assert!(reply.additionals.iter().any(|r| r.record_type() == RecordType::SRV));
    }
    let r = tcp(k.addr(), &query("example.org.", RecordType::A));
    assert!(r.additionals.iter().any(|rr| rr.name.to_string() == "_tcp.example.org."));
}

#[test]
fn longest_suffix_routing_and_refused() {
    let k = Kdns::start(
        "example.org:PORT {\n    hosts {\n        10.0.0.1 a.example.org\n    }\n}\n\
         sub.example.org:PORT {\n    hosts {\n        10.0.0.2 a.sub.example.org\n    }\n}\n\
         10.0.0.0/24:PORT {\n    whoami\n}\n",
    );
    let r = udp(k.addr(), &query("A.Example.ORG.", RecordType::A));
    assert_eq!(r.answers[0].data, RData::A("10.0.0.1".parse().unwrap()));
    let r = udp(k.addr(), &query("a.sub.example.org.", RecordType::A));
    assert_eq!(r.answers[0].data, RData::A("10.0.0.2".parse().unwrap()));
    // Not served: REFUSED.
    let r = udp(k.addr(), &query("example.net.", RecordType::A));
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);
    // CIDR key became a reverse zone.
    let r = udp(k.addr(), &query("5.0.0.10.in-addr.arpa.", RecordType::PTR));
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    let r = udp(k.addr(), &query("5.1.0.10.in-addr.arpa.", RecordType::PTR));
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);
}

#[test]
fn non_in_class_is_refused() {
    let k = Kdns::start(".:PORT {\n    whoami\n}\n");
    let mut m = query("version.bind.", RecordType::TXT);
    m.queries[0].set_query_class(DNSClass::CH);
    assert_eq!(udp(k.addr(), &m).metadata.response_code, ResponseCode::Refused);
}

#[test]
fn edns_is_reflected_and_badvers() {
    let k = Kdns::start(".:PORT {\n    whoami\n}\n");
    let r = udp(k.addr(), &with_edns(query("example.org.", RecordType::A), 1400));
    let e = r.edns.expect("OPT reflected");
    assert_eq!(e.max_payload(), 1400);
    assert_eq!(e.version(), 0);
    let r = udp(k.addr(), &query("example.org.", RecordType::A));
    assert!(r.edns.is_none(), "no OPT for a client without EDNS");
    let mut m = with_edns(query("example.org.", RecordType::A), 1232);
    m.edns.as_mut().unwrap().set_version(1);
    let r = udp(k.addr(), &m);
    assert_eq!(u16::from(r.metadata.response_code), 16, "BADVERS (16)");
    assert_eq!(r.edns.unwrap().version(), 0);
}

#[test]
fn udp_truncation_follows_client_buffer() {
    let k = Kdns::start(&format!(".:PORT {{\n    hosts {{\n{}    }}\n}}\n", many_hosts(60)));
    let q = query("big.example.org.", RecordType::A);
    // No EDNS: 512 bytes, TC set, whole records only.
    let raw = udp_raw(k.addr(), &q.to_vec().unwrap(), Duration::from_secs(2)).unwrap();
    assert!(raw.len() <= 512, "{}", raw.len());
    let r = hickory_proto::op::Message::from_vec(&raw).unwrap();
    assert!(r.metadata.truncation);
    assert!(!r.answers.is_empty() && r.answers.len() < 60);
    // EDNS buffer below 512 is treated as 512.
    let raw = udp_raw(k.addr(), &with_edns(q.clone(), 100).to_vec().unwrap(), Duration::from_secs(2)).unwrap();
    assert!(raw.len() <= 512 && raw.len() > 400, "{}", raw.len());
    // Large EDNS buffer: everything fits.
    let r = udp(k.addr(), &with_edns(q.clone(), 4096));
    assert!(!r.metadata.truncation);
    assert_eq!(r.answers.len(), 60);
    // TCP: everything.
    let r = tcp(k.addr(), &q);
    assert!(!r.metadata.truncation);
    assert_eq!(r.answers.len(), 60);
}

#[test]
fn tcp_pipelining_and_many_queries_per_connection() {
    let k = Kdns::start(".:PORT {\n    whoami\n}\n");
    let mut s = TcpStream::connect(k.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let queries: Vec<_> = (0..5).map(|i| query(&format!("q{i}.example.org."), RecordType::A)).collect();
    let mut batch = Vec::new();
    for q in &queries {
        let b = q.to_vec().unwrap();
        batch.extend_from_slice(&(b.len() as u16).to_be_bytes());
        batch.extend_from_slice(&b);
    }
    std::io::Write::write_all(&mut s, &batch).unwrap();
    let mut ids: Vec<u16> =
        (0..5).map(|_| hickory_proto::op::Message::from_vec(&tcp_recv(&mut s).unwrap()).unwrap().metadata.id).collect();
    let mut want: Vec<u16> = queries.iter().map(|q| q.metadata.id).collect();
    ids.sort_unstable();
    want.sort_unstable();
    assert_eq!(ids, want);
    for i in 0..20 {
        let q = query(&format!("again{i}.example.org."), RecordType::AAAA);
        tcp_send(&mut s, &q.to_vec().unwrap());
        assert!(tcp_recv(&mut s).is_some());
    }
}

#[test]
fn tcp_read_timeout_closes_silent_connections() {
    let k = Kdns::start(".:PORT {\n    whoami\n}\n");
    let mut s = TcpStream::connect(k.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    let start = Instant::now();
    assert!(tcp_recv(&mut s).is_none(), "server must close, not answer");
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(2500) && waited < Duration::from_secs(6), "{waited:?}");
}

#[test]
fn blocks_on_one_port_share_a_listener_other_ports_get_their_own() {
    let other = free_port();
    let k = Kdns::start(&format!(
        "a.test:PORT {{\n    whoami\n}}\nb.test:PORT {{\n    any\n    whoami\n}}\nc.test:{other} {{\n    whoami\n}}\n"
    ));
    assert_eq!(udp(k.addr(), &query("x.a.test.", RecordType::A)).metadata.response_code, ResponseCode::NoError);
    let r = udp(k.addr(), &query("x.b.test.", RecordType::ANY));
    assert_eq!(r.answers[0].record_type(), RecordType::HINFO);
    assert_eq!(udp(k.addr(), &query("x.c.test.", RecordType::A)).metadata.response_code, ResponseCode::Refused);
    let other_addr = std::net::SocketAddr::from(([127, 0, 0, 1], other));
    assert_eq!(udp(other_addr, &query("x.c.test.", RecordType::A)).metadata.response_code, ResponseCode::NoError);
}

#[test]
fn chain_end_gives_servfail_and_errors_logs_it() {
    let k = Kdns::start("example.org:PORT {\n    errors\n    log\n    hosts {\n        10.0.0.1 a.example.org\n        fallthrough\n    }\n}\n");
    let r = udp(k.addr(), &query("b.example.org.", RecordType::A));
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
    k.wait_for_line(
        "[ERROR] plugin/errors: 2 b.example.org. A: plugin/hosts: no next plugin found",
        Duration::from_secs(3),
    );
    let line = k.wait_for_line("\"A IN b.example.org. udp", Duration::from_secs(3));
    assert!(line.starts_with("[INFO] 127.0.0.1:"), "{line}");
    assert!(line.contains(" SERVFAIL qr,rd "), "{line}");
}

#[test]
fn loadbalance_shuffles_answers() {
    let k = Kdns::start(&format!(".:PORT {{\n    loadbalance\n    hosts {{\n{}    }}\n}}\n", many_hosts(4)));
    let mut firsts = std::collections::HashSet::new();
    for _ in 0..40 {
        let r = udp(k.addr(), &query("big.example.org.", RecordType::A));
        assert_eq!(r.answers.len(), 4);
        firsts.insert(format!("{:?}", r.answers[0].data));
    }
    assert!(firsts.len() > 1, "answers never reordered");
}

/// One UDP worker thread per CPU, or per `GOMAXPROCS` when it is set (the knob CoreDNS
/// operators already use); every worker answers.
#[test]
fn gomaxprocs_sets_the_number_of_udp_workers() {
    let udp_workers = |k: &Kdns| -> usize {
        let prefix = format!("kdns-udp-{}", k.port);
        std::fs::read_dir(format!("/proc/{}/task", k.child.id()))
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|comm| comm.starts_with(&prefix[..prefix.len().min(15)]))
            .count()
    };
    let port = free_port();
    let dir = temp_dir("gomaxprocs");
    let conf = dir.join("Corefile");
    std::fs::write(&conf, format!(".:{port} {{\n    whoami\n}}\n")).unwrap();
    let mut cmd = std::process::Command::new(BIN);
    cmd.arg("-conf").arg(&conf).current_dir(&dir).env("GOMAXPROCS", "3");
    let mut k = Kdns::from_command(cmd, dir, conf);
    k.port = port;
    k.wait_for_line("kdns-", Duration::from_secs(10));
    assert_eq!(udp_workers(&k), 3);
    // Different source ports land on different SO_REUSEPORT sockets; all of them answer.
    for _ in 0..30 {
        let r = udp(k.addr(), &query("who.example.org.", RecordType::A));
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    }
}
