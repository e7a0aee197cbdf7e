use crate::testutil::*;
use kdns_server::Step;
use kdns_wire::{rcode, rtype, RData};

fn ask(name: &str, qtype: u16) -> kdns_wire::Message {
    let (p, _, _) = run_setup(super::setup, "local", ".:53 {\n local\n}");
    let p = p.unwrap().unwrap();
    let q = query(name, qtype);
    match p.serve(&request(&q, "127.0.0.1:1".parse().unwrap())) {
        Step::Reply(r) => r.as_message().into_owned(),
        _ => kdns_wire::Message::default(),
    }
}

#[test]
fn localhost_and_loopback_reverse() {
    assert_eq!(ask("localhost.", rtype::A).answers[0].data, RData::A("127.0.0.1".parse().unwrap()));
    assert_eq!(ask("localhost.", rtype::AAAA).answers[0].data, RData::Aaaa("::1".parse().unwrap()));
    let m = ask("localhost.", rtype::MX);
    assert!(m.answers.is_empty() && m.authority[0].rtype == rtype::SOA && m.rcode == rcode::NOERROR);
    assert_eq!(
        ask("1.0.0.127.in-addr.arpa.", rtype::PTR).answers[0].data,
        RData::Ptr(kdns_wire::Name::from_ascii("localhost.").unwrap())
    );
    let m = ask("2.0.0.127.in-addr.arpa.", rtype::PTR);
    assert_eq!(m.rcode, rcode::NXDOMAIN);
    assert_eq!(m.authority[0].name.to_string(), "127.in-addr.arpa.");
    assert_eq!(ask("127.in-addr.arpa.", rtype::NS).answers[0].rtype, rtype::NS);
}

#[test]
fn localhost_subdomains_and_legacy_prefix() {
    assert_eq!(ask("app.localhost.", rtype::A).answers[0].data, RData::A("127.0.0.1".parse().unwrap()));
    assert_eq!(ask("localhost.example.org.", rtype::AAAA).answers[0].data, RData::Aaaa("::1".parse().unwrap()));
    // Other names pass through (an empty default message here).
    assert!(ask("example.org.", rtype::A).questions.is_empty());
}
