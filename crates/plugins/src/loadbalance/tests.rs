use super::*;
use crate::testutil::*;
use kdns_wire::{Message, Name};
use std::collections::HashSet;
use std::net::Ipv4Addr;

fn a(i: u8) -> Record {
    Record::new(Name::from_ascii("x.org.").unwrap(), 30, RData::A(Ipv4Addr::new(10, 0, 0, i)))
}

#[test]
fn shuffles_addresses_keeps_cname_first() {
    let cname = Record::new(Name::from_ascii("y.org.").unwrap(), 30, RData::Cname(Name::from_ascii("x.org.").unwrap()));
    let mut firsts = HashSet::new();
    for _ in 0..200 {
        let mut rrs = vec![a(1), cname.clone(), a(2), a(3)];
        round_robin(&mut rrs);
        assert_eq!(rrs[0].rtype, rtype::CNAME);
        assert_eq!(rrs.len(), 4);
        firsts.insert(rrs[1].data.clone());
    }
    assert_eq!(firsts.len(), 3, "every address should come first sometimes");
}

#[test]
fn prefer_moves_subnet_first_and_errors_only_untouched() {
    let (p, _, _) =
        run_setup(super::setup, "loadbalance", ".:53 {\n loadbalance round_robin {\n  prefer 10.0.0.3/32\n }\n}");
    let p = p.unwrap().unwrap();
    let q = query("x.org.", rtype::A);
    let req = request(&q, "127.0.0.1:1".parse().unwrap());
    for _ in 0..20 {
        let mut m = Message::reply_to(&q);
        m.answers = vec![a(1), a(2), a(3)];
        let mut reply = Reply::message(m, "test");
        p.respond(&req, &mut reply);
        assert_eq!(reply.as_message().answers[0].data, RData::A(Ipv4Addr::new(10, 0, 0, 3)));
    }
    let mut m = Message::reply_to(&q);
    m.rcode = rcode::SERVFAIL;
    m.answers = vec![a(1), a(2)];
    let mut reply = Reply::message(m.clone(), "test");
    p.respond(&req, &mut reply);
    assert_eq!(reply.as_message().into_owned(), m);
}

#[test]
fn setup_errors() {
    for text in [
        ".:53 {\n loadbalance weighted f\n}",
        ".:53 {\n loadbalance random\n}",
        ".:53 {\n loadbalance {\n  prefer 10.0.0.0/99\n }\n}",
    ] {
        let (p, _, _) = run_setup(super::setup, "loadbalance", text);
        assert!(p.is_err(), "{text}");
    }
}
