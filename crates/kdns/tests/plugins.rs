//! Plugin behaviour that needs time or files: hosts file reload, errors consolidation, log classes.

mod common;

use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use std::time::Duration;

#[test]
fn hosts_file_changes_are_picked_up() {
    let dir = temp_dir("hostsfile");
    let hosts = dir.join("hosts");
    std::fs::write(&hosts, "10.1.1.1 db.example.org\n").unwrap();
    let k = Kdns::start(&format!(".:PORT {{\n    hosts {} {{\n        reload 200ms\n    }}\n}}\n", hosts.display()));
    let q = query("db.example.org.", RecordType::A);
    assert_eq!(udp(k.addr(), &q).answers[0].data, RData::A("10.1.1.1".parse().unwrap()));
    std::fs::write(&hosts, "10.1.1.2 db.example.org\n# grew a comment so the size changes\n").unwrap();
    let r = udp_until(k.addr(), &q, Duration::from_secs(5), |r| {
        r.answers.first().map(|a| a.data.clone()) == Some(RData::A("10.1.1.2".parse().unwrap()))
    });
    assert_eq!(r.answers[0].data, RData::A("10.1.1.2".parse().unwrap()));
    let r = udp(k.addr(), &query("2.1.1.10.in-addr.arpa.", RecordType::PTR));
    assert_eq!(r.answers.len(), 1);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn errors_consolidate_summarises_repeats() {
    let k = Kdns::start(
        "example.org:PORT {\n    errors {\n        consolidate 1s \"no next plugin found$\" warning\n    }\n    hosts {\n        10.0.0.1 a.example.org\n        fallthrough\n    }\n}\n",
    );
    for i in 0..3 {
        let r = udp(k.addr(), &query(&format!("miss{i}.example.org."), RecordType::A));
        assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
    }
    let line = k.wait_for_line("errors like", Duration::from_secs(4));
    assert_eq!(line, "[WARNING] plugin/errors: 3 errors like 'no next plugin found$' occurred in last 1s");
    assert_eq!(k.count_lines("[ERROR] plugin/errors"), 0, "consolidated errors are not logged one by one");
}

#[test]
fn log_classes_filter_lines() {
    let k = Kdns::start(
        "example.org:PORT {\n    log . \"{type} {name} {rcode}\" {\n        class error\n    }\n    hosts {\n        10.0.0.1 a.example.org\n    }\n}\n",
    );
    udp(k.addr(), &query("a.example.org.", RecordType::A));
    udp(k.addr(), &query("zz.example.org.", RecordType::A));
    k.wait_for_line("[INFO] A zz.example.org. SERVFAIL", Duration::from_secs(3));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(k.count_lines("a.example.org."), 0, "success is not in class error");
}

#[test]
fn chaos_opens_the_ch_class_nsid_and_minimal() {
    use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
    use hickory_proto::rr::DNSClass;
    let k = Kdns::start(
        ".:PORT {\n    chaos kdns-test alice\n    nsid node-7\n    minimal\n    hosts {\n        10.0.0.1 a.example.org\n    }\n    whoami\n}\n",
    );
    let mut q = query("version.bind.", RecordType::TXT);
    q.queries[0].set_query_class(DNSClass::CH);
    let r = udp(k.addr(), &q);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        format!("{:?}", r.answers[0].data),
        format!("{:?}", RData::TXT(hickory_proto::rr::rdata::TXT::new(vec!["kdns-test".into()])))
    );
    // NSID for a client that asks.
    let mut q = with_edns(query("a.example.org.", RecordType::A), 1232);
    q.edns.as_mut().unwrap().options_mut().insert(EdnsOption::Unknown(u16::from(EdnsCode::NSID), vec![]));
    let r = udp(k.addr(), &q);
    let nsid = r.edns.unwrap().options().as_ref().iter().find_map(|(c, o)| {
        (u16::from(*c) == 3).then(|| match o {
            EdnsOption::Unknown(_, d) => d.clone(),
            EdnsOption::NSID(p) => p.as_ref().to_vec(),
            other => format!("{other:?}").into_bytes(),
        })
    });
    assert!(nsid.is_some_and(|d| String::from_utf8_lossy(&d).contains("node-7")));
    // minimal: whoami's additional records are removed from its positive answer.
    let r = udp(k.addr(), &query("x.example.net.", RecordType::A));
    assert!(r.additionals.is_empty(), "{:?}", r.additionals);

    // Without chaos a CH query is refused.
    let k2 = Kdns::start(".:PORT {\n    whoami\n}\n");
    let mut q = query("version.bind.", RecordType::TXT);
    q.queries[0].set_query_class(DNSClass::CH);
    assert_eq!(udp(k2.addr(), &q).metadata.response_code, ResponseCode::Refused);
}

#[test]
fn local_answers_loopback_names_without_forwarding() {
    let up = common::upstream::Upstream::start();
    let k = Kdns::start(&format!(".:PORT {{\n    local\n    forward . {}\n}}\n", up.addr));
    let r = udp(k.addr(), &query("localhost.", RecordType::A));
    assert_eq!(format!("{:?}", r.answers[0].data), format!("{:?}", RData::A("127.0.0.1".parse().unwrap())));
    assert_eq!(
        udp(k.addr(), &query("9.9.9.127.in-addr.arpa.", RecordType::PTR)).metadata.response_code,
        ResponseCode::NXDomain
    );
    assert_eq!(udp(k.addr(), &query("localhost.example.org.", RecordType::A)).answers.len(), 1);
    udp(k.addr(), &query("www.example.org.", RecordType::A));
    assert_eq!(up.seen().len(), 1, "only the non-local name was forwarded");
}

#[test]
fn bufsize_lowers_the_clients_edns_size() {
    let hosts: String = (1..=60).map(|i| format!("        10.0.1.{i} big.example.org\n")).collect();
    let k = Kdns::start(&format!(".:PORT {{\n    bufsize 512\n    hosts {{\n{hosts}    }}\n}}\n"));
    let raw = udp_raw(
        k.addr(),
        &with_edns(query("big.example.org.", RecordType::A), 4096).to_vec().unwrap(),
        Duration::from_secs(2),
    )
    .unwrap();
    assert!(raw.len() <= 512, "reply truncated to bufsize: {}", raw.len());
    let r = hickory_proto::op::Message::from_vec(&raw).unwrap();
    assert!(r.metadata.truncation);
}

#[test]
fn acl_allows_blocks_filters_and_drops_by_source_and_type() {
    let metrics = free_port();
    let k = Kdns::start(&format!(
        ".:PORT {{\n    bind 127.0.0.1\n    prometheus 127.0.0.1:{metrics}\n    acl {{\n        drop net 127.0.0.9\n        block net 127.0.0.7\n        filter type MX\n        allow\n    }}\n    whoami\n}}\n"
    ));
    let ask = |src: &str, qtype: RecordType| -> Option<Message> {
        let s = std::net::UdpSocket::bind((src, 0)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        s.send_to(&query("who.example.", qtype).to_vec().unwrap(), k.addr()).unwrap();
        let mut buf = [0u8; 1500];
        s.recv(&mut buf).ok().map(|n| Message::from_vec(&buf[..n]).unwrap())
    };
    let ok = ask("127.0.0.1", RecordType::A).expect("allowed");
    assert_eq!(ok.metadata.response_code, ResponseCode::NoError);
    assert!(!ok.additionals.is_empty(), "whoami answered");
    assert_eq!(ask("127.0.0.7", RecordType::A).expect("blocked").metadata.response_code, ResponseCode::Refused);
    let mx = ask("127.0.0.1", RecordType::MX).expect("filtered");
    assert_eq!(mx.metadata.response_code, ResponseCode::NoError);
    assert!(mx.answers.is_empty() && mx.additionals.is_empty(), "{mx:?}");
    assert!(!mx.metadata.authoritative, "CoreDNS's filtered reply is not authoritative");
    assert!(ask("127.0.0.9", RecordType::A).is_none(), "dropped: no reply");
    let scrape = metrics_text(metrics);
    // acl writes its REFUSED itself: the response is acl's in the plugin label.
    assert!(scrape.contains("coredns_dns_responses_total{plugin=\"acl\",rcode=\"REFUSED\""), "{scrape}");
    for (m, v) in [
        ("coredns_acl_blocked_requests_total{server=\"dns://127.0.0.1:", 1.0),
        ("coredns_acl_dropped_requests_total{server=\"dns://127.0.0.1:", 1.0),
        ("coredns_acl_filtered_requests_total{server=\"dns://127.0.0.1:", 1.0),
    ] {
        let line = scrape.lines().find(|l| l.starts_with(m)).unwrap_or_else(|| panic!("{m} missing\n{scrape}"));
        assert!(line.ends_with(&format!(" {v}")), "{line}");
    }
    assert!(scrape.contains("coredns_acl_allowed_requests_total{server=\"dns://127.0.0.1:"));
}

#[test]
fn rewrite_name_type_and_ttl_with_answers_restored() {
    let k = Kdns::start(
        ".:PORT {\n    bind 127.0.0.1\n    rewrite continue name exact old.example.org new.example.org answer auto\n    rewrite ttl exact new.example.org 30\n    rewrite name suffix .legacy.internal .example.org\n    rewrite type MX A\n    hosts {\n        10.0.0.5 new.example.org\n        10.0.0.6 web.example.org\n    }\n}\n",
    );
    // Exact rename with `answer auto`: the client sees its own name everywhere.
    let r = udp(k.addr(), &query("old.example.org.", RecordType::A));
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(r.queries[0].name().to_string(), "old.example.org.");
    assert_eq!(r.answers.len(), 1, "{r:?}");
    assert_eq!(r.answers[0].name.to_string(), "old.example.org.");
    assert_eq!(r.answers[0].data, RData::A("10.0.0.5".parse().unwrap()));
    assert_eq!(r.answers[0].ttl, 30, "continue: the ttl rule applied too");
    // Suffix rename without answer rewriting: the question is restored, the answer keeps the
    // name that was looked up (CoreDNS's behaviour).
    let r = udp(k.addr(), &query("web.legacy.internal.", RecordType::A));
    assert_eq!(r.queries[0].name().to_string(), "web.legacy.internal.");
    assert_eq!(r.answers[0].name.to_string(), "web.example.org.");
    assert_eq!(r.answers[0].data, RData::A("10.0.0.6".parse().unwrap()));
    // Type rewrite: an MX question answered as A, question type restored.
    let r = udp(k.addr(), &query("web.example.org.", RecordType::MX));
    assert_eq!(r.queries[0].query_type(), RecordType::MX);
    assert_eq!(r.answers[0].data, RData::A("10.0.0.6".parse().unwrap()));
    // Names no rule touches pass untouched.
    let r = udp(k.addr(), &query("web.example.org.", RecordType::A));
    assert_eq!(r.answers[0].ttl, 3600);
    // A broken rule fails at startup with file and line.
    let dir = temp_dir("rw");
    std::fs::write(dir.join("Corefile"), ".:53 {\n    rewrite name regex ([ x\n    whoami\n}\n").unwrap();
    let (code, _, err) = run_to_exit(&["-conf", "Corefile"], &dir);
    assert_eq!(code, 1);
    assert!(err.contains("Corefile:2") && err.contains("plugin/rewrite: invalid regex"), "{err}");
}

#[test]
fn template_answers_from_regex_groups_and_blocks_aaaa() {
    let metrics = free_port();
    let k = Kdns::start(&format!(
        ".:PORT {{\n    bind 127.0.0.1\n    prometheus 127.0.0.1:{metrics}\n    template IN A ip.example {{\n        match \"^ip-(?P<a>[0-9]+)-(?P<b>[0-9]+)\\.ip\\.example\\.$\"\n        answer \"{{{{ .Name }}}} 60 IN A 10.0.{{{{ .Group.a }}}}.{{{{ index .Match 2 }}}}\"\n    }}\n    template ANY AAAA {{\n        rcode NOERROR\n    }}\n    template IN TXT other.example {{\n        match ^known\\.\n        answer \"{{{{ .Name }}}} 5 IN TXT \\\"hello {{{{ .Remote }}}}\\\"\"\n        fallthrough\n    }}\n    template IN MX strict.example {{\n        match ^mail\\.\n        answer \"{{{{ .Name }}}} 5 IN MX 10 mx.strict.example.\"\n    }}\n    whoami\n}}\n"
    ));
    let r = udp(k.addr(), &query("ip-1-2.ip.example.", RecordType::A));
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert!(r.metadata.authoritative);
    assert_eq!(r.answers[0].data, RData::A("10.0.1.2".parse().unwrap()));
    assert_eq!(r.answers[0].ttl, 60);
    // AAAA blocked everywhere with an empty NOERROR.
    let r = udp(k.addr(), &query("anything.example.", RecordType::AAAA));
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert!(r.answers.is_empty());
    // A matching TXT uses the client's address; a name the regex does not match falls through.
    let r = udp(k.addr(), &query("known.other.example.", RecordType::TXT));
    assert_eq!(r.answers[0].data, RData::TXT(hickory_proto::rr::rdata::TXT::new(vec!["hello 127.0.0.1".into()])));
    let r = udp(k.addr(), &query("unknown.other.example.", RecordType::TXT));
    assert!(!r.additionals.is_empty(), "fell through to whoami");
    // Without fallthrough, a non-matching name is SERVFAIL (CoreDNS 1.14.7).
    let r = udp(k.addr(), &query("www.strict.example.", RecordType::MX));
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
    let r = udp(k.addr(), &query("mail.strict.example.", RecordType::MX));
    assert_eq!(r.answers.len(), 1);
    let scrape = metrics_text(metrics);
    assert!(scrape.contains("coredns_template_matches_total{class=\"IN\",server=\"dns://127.0.0.1:"), "{scrape}");
}

#[test]
fn file_serves_a_zone_and_reloads_on_serial_change_only() {
    let dir = temp_dir("filezone");
    let db = dir.join("db.example.org");
    let zone = |serial: u32, ip: &str| {
        format!(
            "$ORIGIN example.org.\n$TTL 300\n@ IN SOA ns1 hostmaster ( {serial} 7200 3600 1w 60 )\n  IN NS ns1\nns1 IN A 192.0.2.53\nwww IN A {ip}\nalias IN CNAME www\nout IN CNAME host.outside.test.\n*.apps 60 IN A 192.0.2.99\n"
        )
    };
    std::fs::write(&db, zone(1, "192.0.2.1")).unwrap();
    let up = common::upstream::Upstream::start();
    let k = Kdns::start(&format!(
        "example.org:PORT {{\n    file {} {{\n        reload 200ms\n    }}\n    forward . {}\n}}\n.:PORT {{\n    whoami\n}}\n",
        db.display(),
        up.addr
    ));
    let r = udp(k.addr(), &query("alias.example.org.", RecordType::A));
    assert!(r.metadata.authoritative);
    assert_eq!(r.answers.len(), 2);
    assert_eq!(r.answers[1].data, RData::A("192.0.2.1".parse().unwrap()));
    assert_eq!(r.authorities.len(), 1, "apex NS in the authority section");
    // A CNAME leaving the zone is resolved by the plugins after file (here forward).
    let r = udp(k.addr(), &query("out.example.org.", RecordType::A));
    assert_eq!(r.answers.len(), 2, "{r:?}");
    assert_eq!(r.answers[1].data, RData::A("192.0.2.1".parse().unwrap()));
    assert_eq!(up.count("host.outside.test."), 1);
    let r = udp(k.addr(), &query("x.apps.example.org.", RecordType::A));
    assert_eq!((r.answers[0].ttl, r.answers[0].data.clone()), (60, RData::A("192.0.2.99".parse().unwrap())));
    let r = udp(k.addr(), &query("nope.example.org.", RecordType::A));
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(r.authorities[0].record_type(), RecordType::SOA);
    let r = tcp(k.addr(), &query("www.example.org.", RecordType::TXT));
    assert_eq!((r.metadata.response_code, r.answers.len()), (ResponseCode::NoError, 0));

    // Same serial, new data: not reloaded (CoreDNS only follows the serial).
    std::fs::write(&db, zone(1, "192.0.2.2")).unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let r = udp(k.addr(), &query("www.example.org.", RecordType::A));
    assert_eq!(r.answers[0].data, RData::A("192.0.2.1".parse().unwrap()));
    // A broken file is logged and the old zone keeps serving.
    std::fs::write(&db, "@ IN SOA ns1 hostmaster 3 1 1 1 1\nwww IN A 999.0.0.1\n").unwrap();
    k.wait_for_line("Failed to reload zone", Duration::from_secs(5));
    let r = udp(k.addr(), &query("www.example.org.", RecordType::A));
    assert_eq!(r.answers[0].data, RData::A("192.0.2.1".parse().unwrap()));
    // A new serial is picked up.
    std::fs::write(&db, zone(2, "192.0.2.2")).unwrap();
    let r = udp_until(k.addr(), &query("www.example.org.", RecordType::A), Duration::from_secs(5), |r| {
        r.answers.first().map(|a| a.data.clone()) == Some(RData::A("192.0.2.2".parse().unwrap()))
    });
    assert_eq!(r.answers[0].data, RData::A("192.0.2.2".parse().unwrap()));
    k.wait_for_line("Successfully reloaded zone \"example.org.\"", Duration::from_secs(2));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn file_zone_errors_name_the_file_and_line() {
    let dir = temp_dir("filebad");
    let db = dir.join("db.bad");
    std::fs::write(&db, "@ IN SOA ns1 hostmaster 1 2 3 4 5\n\nwww IN A 192.0.2.300\n").unwrap();
    let conf = dir.join("Corefile");
    std::fs::write(&conf, format!("example.org {{\n    file {}\n}}\n", db.display())).unwrap();
    let (code, _, err) = run_to_exit(&["check", "-conf", &path_str(&conf)], &dir);
    assert_eq!(code, 1);
    assert!(err.contains("Corefile:2") && err.contains("db.bad: line 3: bad IPv4 address"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn rewrite_edns0_rcode_and_cname_targets() {
    let up = common::upstream::Upstream::start();
    let k = Kdns::start(&format!(
        ".:PORT {{\n    bind 127.0.0.1\n    rewrite continue edns0 local set 0xffee {{qtype}}-{{client_ip}}\n    rewrite continue edns0 subnet set 24 56\n    rewrite continue rcode suffix .rc.example. NXDOMAIN REFUSED\n    rewrite cname exact old.target.example. new.target.example.\n    template IN A alias.example {{\n        answer \"{{{{ .Name }}}} 60 IN CNAME old.target.example.\"\n    }}\n    forward . {}\n}}\n",
        up.addr
    ));
    // EDNS0 options reach the upstream (the client sent none).
    let r = udp(k.addr(), &query("opts.example.", RecordType::A));
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    let seen = up.seen();
    let s = seen.iter().find(|s| s.qname == "opts.example.").expect("forwarded");
    assert_eq!(s.edns_options, 2, "local 0xffee and client subnet");
    // An upstream NXDOMAIN becomes REFUSED for names the rcode rule matches.
    let r = udp(k.addr(), &query("nxdomain.rc.example.", RecordType::A));
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);
    let r = udp(k.addr(), &query("nxdomain.other.example.", RecordType::A));
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    // A CNAME target is rewritten and the new target resolved.
    let r = udp(k.addr(), &query("www.alias.example.", RecordType::A));
    let got: Vec<String> = r.answers.iter().map(|a| a.to_string()).collect();
    assert_eq!(
        got,
        ["www.alias.example. 60 IN CNAME new.target.example.", "new.target.example. 300 IN A 192.0.2.1"],
        "{r:?}"
    );
    assert_eq!(up.count("new.target.example."), 1);
}
