use crate::testutil::*;
use kdns_server::Step;
use kdns_wire::{flag, rtype, RData};

#[test]
fn answers_with_client_address_in_additional() {
    let (p, _, _) = run_setup(super::setup, "whoami", ".:53 {\n whoami\n}");
    let p = p.unwrap().unwrap();
    let q = query("Example.ORG.", rtype::A);
    let Step::Reply(r) = p.serve(&request(&q, "10.1.2.3:4444".parse().unwrap())) else { panic!("whoami must answer") };
    assert!(r.as_message().has(flag::AA));
    assert!(r.as_message().answers.is_empty());
    assert_eq!(r.as_message().additional[0].data, RData::A("10.1.2.3".parse().unwrap()));
    // The asked case, as CoreDNS writes it (it does not lower-case the owner).
    assert_eq!(r.as_message().additional[0].name.to_string(), "Example.ORG.");
    assert_eq!(r.as_message().additional[1].name.to_string(), "_udp.Example.ORG.");
    assert!(matches!(r.as_message().additional[1].data, RData::Srv { port: 4444, .. }));
}

#[test]
fn rejects_arguments() {
    let (p, _, _) = run_setup(super::setup, "whoami", ".:53 {\n whoami me\n}");
    assert_eq!(p.err().unwrap().line, 2);
}
