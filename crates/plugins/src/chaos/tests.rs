use crate::testutil::*;
use kdns_server::Step;
use kdns_wire::{class, rtype, RData};

#[test]
fn answers_version_authors_hostname() {
    let (p, _, _) = run_setup(super::setup, "chaos", ".:53 {\n chaos MyDNS-1 alice bob\n}");
    let p = p.unwrap().unwrap();
    let ask = |name: &str| {
        let mut q = query(name, rtype::TXT);
        q.questions[0].qclass = class::CH;
        p.serve(&request(&q, "127.0.0.1:1".parse().unwrap()))
    };
    let Step::Reply(r) = ask("version.bind.") else { panic!() };
    assert_eq!(r.as_message().answers[0].data, RData::Txt(vec![b"MyDNS-1".to_vec()]));
    assert_eq!(r.as_message().answers[0].class, class::CH);
    let Step::Reply(r) = ask("authors.bind.") else { panic!() };
    assert_eq!(r.as_message().answers.len(), 2);
    let Step::Reply(r) = ask("hostname.bind.") else { panic!() };
    assert_eq!(r.as_message().answers.len(), 1);
    assert!(matches!(ask("other.bind."), Step::Next));
}
