use crate::testutil::*;
use kdns_server::plugin::Reply;
use kdns_wire::{flag, rtype, Message};

#[test]
fn rules_apply_in_order_to_messages_and_wire_bodies() {
    let (p, _, _) =
        run_setup(super::setup, "header", ".:53 {\n header {\n  set ra aa\n  clear rd\n  response clear aa\n }\n}");
    let p = p.unwrap().unwrap();
    let q = query("a.example.org.", rtype::A);
    let req = request(&q, "127.0.0.1:1".parse().unwrap());
    let mut r = Reply::message(Message::reply_to(&q), "x");
    p.respond(&req, &mut r);
    let m = r.as_message();
    assert!(m.has(flag::RA) && !m.has(flag::RD) && !m.has(flag::AA));
    let mut wire = Message::reply_to(&q);
    wire.rcode = 3;
    let mut r = Reply::wire(wire.to_vec(), "cache");
    p.respond(&req, &mut r);
    let m = r.as_message();
    assert!(m.has(flag::RA) && !m.has(flag::RD));
    assert_eq!(m.rcode, 3, "rcode bits untouched");
}

#[test]
fn bad_rules() {
    for text in [".:53 {\n header\n}", ".:53 {\n header {\n  set xx\n }\n}", ".:53 {\n header {\n  query set rd\n }\n}"]
    {
        let (r, _, _) = run_setup(super::setup, "header", text);
        assert!(r.is_err(), "{text}");
    }
}
