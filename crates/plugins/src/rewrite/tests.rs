use super::*;
use crate::testutil;

fn rules(text: &str) -> Result<Rewrite, kdns_corefile::Error> {
    let c = testutil::corefile(&format!(".:53 {{\n{text}\n}}\n"));
    let rules = c.blocks[0].directives.iter().map(super::setup::rule).collect::<Result<Vec<_>, _>>()?;
    Ok(Rewrite { rules })
}

fn asked(r: &Rewrite, name: &str, qtype: u16) -> Option<(String, u16)> {
    let q = testutil::query(name, qtype);
    r.plan(&q).map(|p| (p.msg.questions[0].name.to_string(), p.msg.questions[0].qtype))
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
    assert_eq!(r.plan(&q).unwrap().msg.questions[0].qclass, 1);
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
        "rewrite edns0 local set 0xffee abc",
        "rewrite name a. b. answer sideways",
        "rewrite frobnicate a b",
    ] {
        let e = rules(bad).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("plugin/rewrite"), "{bad}: {e}");
    }
}
