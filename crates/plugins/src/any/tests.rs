use crate::testutil::*;
use kdns_server::Step;
use kdns_wire::{rtype, RData};

#[test]
fn any_gets_hinfo_others_pass() {
    let (p, _, _) = run_setup(super::setup, "any", ".:53 {\n any\n}");
    let p = p.unwrap().unwrap();
    let q = query("example.org.", rtype::ANY);
    let Step::Reply(r) = p.serve(&request(&q, "127.0.0.1:1".parse().unwrap())) else { panic!() };
    assert_eq!(r.as_message().answers[0].ttl, 8482);
    assert!(matches!(&r.as_message().answers[0].data, RData::Hinfo { cpu, .. } if cpu == b"ANY obsoleted"));
    let q = query("example.org.", rtype::A);
    assert!(matches!(p.serve(&request(&q, "127.0.0.1:1".parse().unwrap())), Step::Next));
}
