use super::*;
use crate::testutil::*;
use kdns_server::plugin::{Done, Reply};
use kdns_wire::{flag, Message};
use std::time::Duration;

fn done_for(reply: &Reply, size: usize) -> Done<'_> {
    Done { reply, size, plugin: "whoami", error: None, duration: Duration::from_micros(37990) }
}

#[test]
fn common_format_matches_coredns() {
    let mut q = query("Example.org.", kdns_wire::rtype::A);
    q.id = 29008;
    q.edns = Some(kdns_wire::Edns::new(4096));
    let mut m = Message::reply_to(&q);
    m.set(flag::RA, true);
    let r = Reply::message(m, "whoami");
    let req = request(&q, "[::1]:50759".parse().unwrap());
    let req = kdns_server::Request { wire_len: 41, ..req };
    let line = Format::compile(COMMON_FORMAT).render(&req, &done_for(&r, 68));
    assert_eq!(line, "[::1]:50759 - 29008 \"A IN example.org. udp 41 false 4096\" NOERROR qr,rd,ra 68 0.03799s");
    let line = Format::compile("{combined}").render(&req, &done_for(&r, 68));
    assert!(line.ends_with(" \"QUERY\""), "{line}");
    let line = Format::compile("{remote} {nope} {>rd}").render(&req, &done_for(&r, 68));
    assert_eq!(line, "::1 - true".replace("::1", "[::1]"));
}

#[test]
fn setup_forms() {
    let (p, _, _) = run_setup(
        super::setup,
        "log",
        ".:53 {\n log\n log example.org \"{remote} {type}\" {\n  class denial error\n }\n}",
    );
    assert!(p.is_ok());
    let (p, _, _) = run_setup(super::setup, "log", ".:53 {\n log {\n  class nope\n }\n}");
    assert_eq!(p.err().unwrap().line, 3);
}

#[test]
fn classes() {
    let q = query("example.org.", kdns_wire::rtype::A);
    let with = |code: u16| {
        let mut m = Message::reply_to(&q);
        m.rcode = code;
        Reply::message(m, "x")
    };
    assert_eq!(classify(&done_for(&with(kdns_wire::rcode::NOERROR), 10)), Class::Success);
    assert_eq!(classify(&done_for(&with(kdns_wire::rcode::NXDOMAIN), 10)), Class::Denial);
    assert_eq!(classify(&done_for(&with(kdns_wire::rcode::SERVFAIL), 10)), Class::Error);
}
