//! Drop-in at the edges: what a client sees where CoreDNS 1.14.7's rules are easy to miss
//! (classes, BADVERS, server-written errors, stray braces, plugins given twice, zone transfers,
//! short questions, template and rewrite details, what the cache keeps and what the upstream
//! receives). Each case was read from CoreDNS v1.14.7's source; see docs/compatibility.md.

mod common;

use common::upstream::Upstream;
use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{DNSClass, RData, RecordType};
use std::time::Duration;

fn with_class(mut m: Message, class: DNSClass) -> Message {
    m.queries[0].set_query_class(class);
    m
}

/// A query whose name keeps its case (hickory's `Name::from_str` lower-cases).
fn query_cased(name: &str, rtype: RecordType) -> Message {
    let mut m = query("placeholder.", rtype);
    m.queries[0].set_name(hickory_proto::rr::Name::from_ascii(name).unwrap());
    m
}

fn raw(addr: std::net::SocketAddr, m: &Message) -> Vec<u8> {
    udp_raw(addr, &m.to_vec().unwrap(), Duration::from_secs(3)).expect("a reply")
}

/// Classes other than IN pass where a block on the listener has `forward` (or `chaos`), and are
/// refused elsewhere, before the EDNS version is looked at and without an OPT in the reply.
#[test]
fn classes_are_refused_without_forward_or_chaos_and_before_badvers() {
    let up = Upstream::start();
    let fwd = Kdns::start(&format!(".:PORT {{\n    forward . {}\n}}\n", up.addr));
    let r = udp(fwd.addr(), &with_class(query("hs.example.org.", RecordType::A), DNSClass::HS));
    assert_eq!(r.metadata.response_code, ResponseCode::NoError, "forwarded");
    assert_eq!(up.count("hs"), 1, "the upstream got the HS query");

    let k = Kdns::start(".:PORT {\n    whoami\n}\n");
    for class in [DNSClass::CH, DNSClass::HS, DNSClass::NONE, DNSClass::Unknown(300)] {
        let m = with_edns(with_class(query("example.org.", RecordType::A), class), 1232);
        let bytes = raw(k.addr(), &m);
        let r = Message::from_vec(&bytes).unwrap();
        assert_eq!(r.metadata.response_code, ResponseCode::Refused, "{class:?}");
        assert!(r.edns.is_none(), "{class:?}: the class refusal has no OPT");
        assert_eq!(r.queries[0].query_class(), class, "the question is kept");
    }
    // EDNS version 1 in class CH: the class decides first.
    let mut v1 = with_edns(with_class(query("example.org.", RecordType::A), DNSClass::CH), 1232);
    v1.edns.as_mut().unwrap().set_version(1);
    assert_eq!(Message::from_vec(&raw(k.addr(), &v1)).unwrap().metadata.response_code, ResponseCode::Refused);
    // In class IN it is BADVERS, with a bare OPT: version 0, buffer size 0, no DO.
    let mut v1 = with_edns(query("example.org.", RecordType::A), 1232);
    v1.edns.as_mut().unwrap().set_version(1);
    v1.edns.as_mut().unwrap().set_dnssec_ok(true);
    let r = Message::from_vec(&raw(k.addr(), &v1)).unwrap();
    assert_eq!(u16::from(r.metadata.response_code), 16);
    let e = r.edns.as_ref().expect("an OPT");
    assert_eq!((e.version(), e.max_payload(), e.flags().dnssec_ok), (0, 512, false), "{e:?}");
    let bytes = raw(k.addr(), &v1);
    let n = bytes.len();
    assert_eq!(&bytes[n - 11..n - 6], &[0, 0, 41, 0, 0], "OPT owner root, type 41, size 0");
}

#[test]
fn a_question_cut_after_its_name_is_a_class_0_query() {
    let k = Kdns::start(".:PORT {\n    whoami\n}\n");
    let full = query("example.org.", RecordType::A).to_vec().unwrap();
    let cut = &full[..full.len() - 4];
    let reply = udp_raw(k.addr(), cut, Duration::from_secs(3)).expect("a reply");
    assert_eq!(reply[3] & 0xF, 5, "REFUSED for class 0");
    let r = Message::from_vec(&reply).unwrap();
    assert_eq!(u16::from(r.queries[0].query_class()), 0);
    assert_eq!(u16::from(r.queries[0].query_type()), 0);
    let mut no_record = full.clone();
    no_record[11] = 1;
    let reply = udp_raw(k.addr(), &no_record, Duration::from_secs(3)).expect("a reply");
    assert_eq!(reply[3] & 0xF, 1, "ARCOUNT 1 without the record: FORMERR");
}

/// `header` rules act on replies plugins write; an error the server writes itself (the chain
/// ended without an answer) goes out without them, as in CoreDNS.
#[test]
fn header_rules_leave_server_written_errors_alone() {
    let k = Kdns::start(
        ".:PORT {\n    header {\n        response set aa ra\n    }\n    whoami\n}\nnone.example.:PORT {\n    header {\n        response set aa ra\n    }\n}\n",
    );
    let r = udp(k.addr(), &query("example.org.", RecordType::A));
    assert!(r.metadata.authoritative && r.metadata.recursion_available, "whoami's reply gets the rules");
    let r = udp(k.addr(), &query("x.none.example.", RecordType::A));
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
    assert!(!r.metadata.authoritative && !r.metadata.recursion_available, "{:?}", r.metadata);
}

/// A stray `}` is a server block key in CoreDNS's parser: the zone `}.`, with its RFC 1035
/// warning in the startup banner; the rest of the file serves as before.
#[test]
fn a_stray_brace_is_a_zone_with_a_warning_not_an_error() {
    let port = free_port().to_string();
    let k = Kdns::start_with(".:PORT {\n    whoami\n}\n}\n", &["-dns.port", &port]);
    k.wait_for_line("Warning: Domain \"}.\" does not follow RFC1035 preferred syntax", Duration::from_secs(5));
    k.wait_for_line(&format!("}}.:{port}"), Duration::from_secs(5));
    let r = udp(k.addr(), &query("example.org.", RecordType::A));
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
}

/// `health` twice in a block loads (the last address wins) and a normal start logs no health
/// warning (the first self-check runs a second after start, as CoreDNS's ticker).
#[test]
fn health_given_twice_loads_and_starts_quietly() {
    let (first, last) = (free_port(), free_port());
    let k =
        Kdns::start(&format!(".:PORT {{\n    health 127.0.0.1:{first}\n    health 127.0.0.1:{last}\n    whoami\n}}\n"));
    assert_eq!(http_get(&format!("127.0.0.1:{last}"), "/health").map(|r| r.0), Some(200));
    std::thread::sleep(Duration::from_millis(2500));
    let lines = k.lines();
    assert!(!lines.iter().any(|l| l.contains("[WARNING]")), "{lines:?}");
}

/// A zone transfer is refused as CoreDNS's chain refuses it: after routing, so the block's
/// `prometheus` counts it under its zone with rcode REFUSED.
#[test]
fn zone_transfers_are_refused_and_counted_by_the_block() {
    let mport = free_port();
    let k = Kdns::start(&format!(".:PORT {{\n    prometheus 127.0.0.1:{mport}\n    whoami\n}}\n"));
    let r = tcp(k.addr(), &query("example.org.", RecordType::AXFR));
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);
    let s = metrics_text(mport);
    let series = format!(
        "coredns_dns_responses_total{{plugin=\"\",rcode=\"REFUSED\",server=\"dns://:{}\",view=\"\",zone=\".\"}}",
        k.port
    );
    assert_eq!(metric(&s, &series), Some(1.0), "{s}");
}

/// template: regexes see the lower-cased name; `.Type` of an ANY query is the template's type;
/// a name no regex matches is SERVFAIL.
#[test]
fn template_matches_the_lower_cased_name_and_fills_type_for_any() {
    let k = Kdns::start(
        ".:PORT {\n    template IN TXT example.org {\n        match ^www\\.example\\.org\\.$\n        answer \"{{ .Name }} 60 IN TXT {{ .Type }}\"\n    }\n}\n",
    );
    let r = udp(k.addr(), &query_cased("WWW.Example.ORG.", RecordType::ANY));
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(r.answers.len(), 1, "{r:?}");
    assert_eq!(r.answers[0].name.to_string(), "www.example.org.");
    let RData::TXT(txt) = &r.answers[0].data else { panic!("{r:?}") };
    assert_eq!(txt.to_string(), "TXT");
    let r = udp(k.addr(), &query("other.example.org.", RecordType::TXT));
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
}

/// rewrite: an `exact` name rule maps answers back to the asked name without `answer auto`;
/// `ttl` rules reach every section (here the SOA in authority).
#[test]
fn rewrite_exact_maps_answers_back_and_ttl_reaches_every_section() {
    let up = Upstream::start();
    let k = Kdns::start(&format!(
        ".:PORT {{\n    rewrite name exact asked.example.org. plain.example.org.\n    rewrite ttl nxdomain.example.org. 10\n    forward . {}\n}}\n",
        up.addr
    ));
    let r = udp(k.addr(), &query("asked.example.org.", RecordType::A));
    assert_eq!(up.count("plain"), 1);
    assert_eq!(r.answers[0].name.to_string(), "asked.example.org.", "{r:?}");
    let r = udp(k.addr(), &query("nxdomain.example.org.", RecordType::A));
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(r.authorities[0].ttl, 10, "{r:?}");
}

/// What the cache keeps and what the upstream receives, as CoreDNS 1.14.7: a CNAME whose target
/// is absent (no SOA) is not cached; a CD query is cached under its own key and its hit carries
/// AA and CD; a miss asks the upstream with AD set (without a cache in front, the client's
/// flags go as they are); a hit keeps the owner case it was stored with.
#[test]
fn what_the_cache_keeps_and_the_upstream_receives() {
    let up = Upstream::start();
    let k = Kdns::start(&format!(".:PORT {{\n    cache\n    forward . {}\n}}\n", up.addr));
    for _ in 0..2 {
        let r = udp(k.addr(), &query("cnameonly.example.org.", RecordType::A));
        assert_eq!(r.answers.len(), 1);
    }
    assert_eq!(up.count("cnameonly"), 2, "an answer that does not answer is not cached");

    let mut cd = query("cd.example.org.", RecordType::A);
    cd.metadata.checking_disabled = true;
    let first = udp(k.addr(), &cd);
    assert!(first.metadata.checking_disabled);
    let hit = udp(k.addr(), &cd);
    assert_eq!(up.count("cd"), 1, "a CD query is cacheable");
    assert!(hit.metadata.authoritative && hit.metadata.checking_disabled, "{:?}", hit.metadata);
    let plain = udp(k.addr(), &query("cd.example.org.", RecordType::A));
    assert!(!plain.metadata.checking_disabled);
    assert_eq!(up.count("cd"), 2, "CD is part of the key");

    let seen = up.seen();
    assert!(seen.iter().all(|s| s.ad), "a cache miss asks with AD: {seen:?}");

    let miss = udp(k.addr(), &query_cased("MiXed.example.org.", RecordType::A));
    assert_eq!(miss.answers[0].name.to_string(), "MiXed.example.org.", "the owner as the upstream sent it");
    let hit = udp(k.addr(), &query("mixed.example.org.", RecordType::A));
    assert_eq!(up.count("MiXed"), 1, "the second query was a hit");
    assert_eq!(hit.queries[0].name().to_string(), "mixed.example.org.", "the question as asked");
    assert_eq!(hit.answers[0].name.to_string(), "MiXed.example.org.", "the owner as stored");

    let up2 = Upstream::start();
    let bare = Kdns::start(&format!(".:PORT {{\n    forward . {}\n}}\n", up2.addr));
    udp(bare.addr(), &query("noad.example.org.", RecordType::A));
    let seen = up2.seen();
    assert!(!seen[0].ad && !seen[0].cd, "without a cache the client's flags go upstream: {seen:?}");
}
