use crate::testutil::*;
use kdns_server::plugin::Reply;
use kdns_wire::{rcode, rtype, Message, Name, RData, Record};

fn reply(code: u16, with_answer: bool) -> Reply {
    let q = query("a.example.org.", rtype::A);
    let mut m = Message::reply_to(&q);
    m.rcode = code;
    let n = Name::from_ascii("a.example.org.").unwrap();
    if with_answer {
        m.answers.push(Record::new(n.clone(), 60, RData::A("10.0.0.1".parse().unwrap())));
    }
    m.authority.push(Record::new(Name::from_ascii("example.org.").unwrap(), 60, RData::Ns(n.clone())));
    m.additional.push(Record::new(n, 60, RData::A("10.0.0.2".parse().unwrap())));
    Reply::message(m, "test")
}

#[test]
fn positive_answers_lose_authority_and_additional_only() {
    let (p, _, _) = run_setup(super::setup, "minimal", ".:53 {\n minimal\n}");
    let p = p.unwrap().unwrap();
    let q = query("a.example.org.", rtype::A);
    let req = request(&q, "127.0.0.1:1".parse().unwrap());
    let mut r = reply(rcode::NOERROR, true);
    p.respond(&req, &mut r);
    assert!(r.as_message().authority.is_empty() && r.as_message().additional.is_empty());
    assert_eq!(r.as_message().answers.len(), 1);
    // A delegation (NS in authority, no answer) and errors are left alone.
    let mut d = reply(rcode::NOERROR, false);
    p.respond(&req, &mut d);
    assert_eq!(d.as_message().authority.len(), 1);
    let mut e = reply(rcode::NXDOMAIN, false);
    p.respond(&req, &mut e);
    assert_eq!(e.as_message().additional.len(), 1);
}
