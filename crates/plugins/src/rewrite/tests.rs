use super::*;
use crate::testutil;

fn rules(text: &str) -> Result<Rewrite, kdns_corefile::Error> {
    let c = testutil::corefile(&format!(".:53 {{\n{text}\n}}\n"));
    let rules = c.blocks[0].directives.iter().map(super::setup::rule).collect::<Result<Vec<_>, _>>()?;
    Ok(Rewrite { rules })
}

fn req(q: &Message) -> Request<'_> {
    testutil::request(q, "192.0.2.77:5353".parse().unwrap())
}

fn asked(r: &Rewrite, name: &str, qtype: u16) -> Option<(String, u16)> {
    let q = testutil::query(name, qtype);
    r.plan(&req(&q)).map(|p| (p.msg.questions[0].name.to_string(), p.msg.questions[0].qtype))
}

#[test]
fn name_match_types() {
    let r = rules("rewrite name exact old.example.org new.example.org").unwrap();
    assert_eq!(asked(&r, "OLD.example.org.", 1), Some(("new.example.org.".into(), 1)));
    assert_eq!(asked(&r, "x.old.example.org.", 1), None);
    let r = rules("rewrite name suffix .svc.example.com .svc.cluster.local").unwrap();
    assert_eq!(asked(&r, "web.ns.svc.example.com.", 1).unwrap().0, "web.ns.svc.cluster.local.");
    let r = rules("rewrite name prefix www- web-").unwrap();
    assert_eq!(asked(&r, "www-1.example.", 1).unwrap().0, "web-1.example.");
    let r = rules("rewrite name substring .legacy. .current.").unwrap();
    assert_eq!(asked(&r, "a.legacy.example.", 1).unwrap().0, "a.current.example.");
    let r = rules(r"rewrite name regex (.*)\.mesh\.local\. {1}.default.svc.cluster.local. answer auto").unwrap();
    assert_eq!(asked(&r, "api.mesh.local.", 1).unwrap().0, "api.default.svc.cluster.local.");
}

#[test]
fn stop_and_continue_and_type_class() {
    let r = rules("rewrite name a.example. b.example.\nrewrite type A AAAA").unwrap();
    assert_eq!(asked(&r, "a.example.", 1), Some(("b.example.".into(), 1)), "stop after the first rewrite");
    let r = rules("rewrite continue name a.example. b.example.\nrewrite type A AAAA").unwrap();
    assert_eq!(asked(&r, "a.example.", 1), Some(("b.example.".into(), 28)));
    let r = rules("rewrite class CH IN").unwrap();
    let mut q = testutil::query("x.", 16);
    q.questions[0].qclass = 3;
    assert_eq!(r.plan(&req(&q)).unwrap().msg.questions[0].qclass, 1);
}

#[test]
fn bad_rules_name_the_problem() {
    for bad in [
        "rewrite",
        "rewrite name only-one",
        "rewrite name regex ([ x",
        "rewrite type A NOTATYPE",
        "rewrite class IN XX",
        "rewrite ttl example. 30-10",
        "rewrite edns0 local set 0xffee 0xabc",
        "rewrite edns0 local frob 0xffee 0xab",
        "rewrite edns0 subnet set 33 56",
        "rewrite edns0 nsid set extra",
        "rewrite rcode x.example. BOGUS NOERROR",
        "rewrite cname exact only-one",
        "rewrite name a. b. answer sideways",
        "rewrite frobnicate a b",
    ] {
        let e = rules(bad).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("plugin/rewrite"), "{bad}: {e}");
    }
}

#[test]
fn edns0_options_set_replace_append_unset() {
    let r = rules("rewrite continue edns0 local set 0xffee 0xabcd\nrewrite continue edns0 local append 0xffef {client_ip}:{qtype}\nrewrite continue edns0 subnet set 24 56\nrewrite edns0 nsid replace").unwrap();
    let q = testutil::query("x.example.", 1);
    let plan = r.plan(&req(&q)).unwrap();
    let opt = plan.msg.edns.expect("an OPT record is added");
    assert_eq!(opt.udp_size, 4096);
    assert_eq!(
        opt.options,
        vec![(0xffee, vec![0xab, 0xcd]), (0xffef, b"192.0.2.77:A".to_vec()), (8, vec![0, 1, 24, 0, 192, 0, 2])],
        "nsid replace does nothing without an NSID option"
    );
    let r = rules("rewrite edns0 local unset 0xffee").unwrap();
    let mut q = testutil::query("x.example.", 1);
    q.edns = Some(kdns_wire::Edns {
        udp_size: 1232,
        options: vec![(0xffee, vec![1]), (10, vec![2; 8])],
        ..Default::default()
    });
    assert_eq!(r.plan(&req(&q)).unwrap().msg.edns.unwrap().options, vec![(10, vec![2; 8])]);
}

#[test]
fn rcode_rules_match_names() {
    let r = rules("rewrite rcode suffix .example. NXDOMAIN 5").unwrap();
    let q = testutil::query("a.example.", 1);
    assert_eq!(r.plan(&req(&q)).unwrap().rcodes, vec![(3, 5)]);
    assert!(r.plan(&req(&testutil::query("a.other.", 1))).is_none());
}
