use super::*;
use crate::testutil;

fn acl(directive: &str) -> Result<Acl, kdns_corefile::Error> {
    let c = testutil::corefile(&format!(".:53 {{\n{directive}\n}}\n"));
    let ds: Vec<&kdns_corefile::Directive> = c.blocks[0].directives.iter().collect();
    Ok(Acl::new(super::setup::policies(&[".".to_string()], &ds)?))
}

#[test]
fn first_matching_rule_decides_and_nothing_matching_allows() {
    let a = acl("acl example.org {\n    block type AAAA net 192.168.0.0/16\n    filter type MX\n    drop net 10.0.0.1\n    allow net 2001:db8::/32\n    block\n}").unwrap();
    let n = |s: &str| Name::from_ascii(s).unwrap();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(a.decide(&n("www.example.org."), 28, &ip("192.168.1.1")).0, Action::Block);
    assert_eq!(a.decide(&n("www.example.org."), 15, &ip("1.2.3.4")).0, Action::Filter);
    assert_eq!(a.decide(&n("www.example.org."), 1, &ip("10.0.0.1")).0, Action::Drop);
    assert_eq!(a.decide(&n("www.example.org."), 1, &ip("2001:db8::5")).0, Action::Allow);
    assert_eq!(a.decide(&n("www.example.org."), 1, &ip("1.2.3.4")).0, Action::Block, "catch-all block");
    assert_eq!(a.decide(&n("www.example.com."), 1, &ip("1.2.3.4")).0, Action::Allow, "outside the zones");
    assert_eq!(a.decide(&n("x.example.org."), 1, &ip("::ffff:10.0.0.1")).0, Action::Drop, "mapped IPv4");
}

#[test]
fn bad_rules_are_errors() {
    for bad in [
        "acl {\n    deny\n}",
        "acl {\n    block type NOPE\n}",
        "acl {\n    block net 10.0.0.0/33\n}",
        "acl {\n    block net nothing\n}",
        "acl {\n    block 10.0.0.1\n}",
    ] {
        assert!(acl(bad).is_err(), "{bad}");
    }
    assert!(acl("acl {\n    allow type * net *\n}").is_ok());
}
