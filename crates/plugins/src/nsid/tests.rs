use crate::testutil::*;
use kdns_server::plugin::Reply;
use kdns_wire::{rtype, Edns, Message};

#[test]
fn nsid_only_for_clients_that_ask() {
    let (p, _, _) = run_setup(super::setup, "nsid", ".:53 {\n nsid kdns node 1\n}");
    let p = p.unwrap().unwrap();
    let mut q = query("a.example.org.", rtype::A);
    let mut r = Reply::message(Message::reply_to(&q), "x");
    p.respond(&request(&q, "127.0.0.1:1".parse().unwrap()), &mut r);
    assert!(r.as_message().edns.is_none());
    q.edns = Some(Edns { udp_size: 1232, options: vec![(super::NSID, vec![])], ..Default::default() });
    let mut r = Reply::message(Message::reply_to(&q), "x");
    p.respond(&request(&q, "127.0.0.1:1".parse().unwrap()), &mut r);
    assert_eq!(r.as_message().edns.as_ref().unwrap().options, vec![(super::NSID, b"kdns node 1".to_vec())]);
}
