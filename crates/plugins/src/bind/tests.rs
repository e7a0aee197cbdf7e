use crate::testutil::*;
use std::net::IpAddr;

#[test]
fn addresses_interfaces_and_except() {
    let (r, _, listen) = run_setup(super::setup, "bind", ".:53 {\n bind 127.0.0.1 ::1\n}");
    assert!(r.unwrap().is_none());
    assert_eq!(listen, vec!["127.0.0.1".parse::<IpAddr>().unwrap(), "::1".parse().unwrap()]);
    let (_, _, listen) = run_setup(super::setup, "bind", ".:53 {\n bind lo {\n  except ::1\n }\n}");
    assert!(listen.contains(&"127.0.0.1".parse().unwrap()));
    assert!(!listen.contains(&"::1".parse().unwrap()));
}

#[test]
fn bad_input() {
    let (r, _, _) = run_setup(super::setup, "bind", ".:53 {\n bind no-such-if0\n}");
    let e = r.err().unwrap();
    assert_eq!(e.line, 2);
    assert!(e.message.contains("no-such-if0"));
    let (r, _, _) = run_setup(super::setup, "bind", ".:53 {\n bind\n}");
    assert!(r.is_err());
    let (r, _, _) = run_setup(super::setup, "bind", ".:53 {\n bind 127.0.0.1 {\n except 127.0.0.1\n }\n}");
    assert!(r.is_err());
}
