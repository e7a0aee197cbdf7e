use super::*;
use crate::testutil::*;
use kdns_server::Step;

fn serve(p: &Arc<dyn kdns_server::Plugin>, name: &str, qtype: u16) -> Step {
    let q = query(name, qtype);
    p.serve(&request(&q, "127.0.0.1:5".parse().unwrap()))
}

#[test]
fn inline_entries_answer_a_aaaa_ptr() {
    let (p, _, _) = run_setup(
        super::setup,
        "hosts",
        ".:53 {\n hosts /nonexistent/hosts {\n  10.0.0.1 web.example.org Web2.example.org\n  fd00::1 web.example.org\n  ttl 60\n }\n}",
    );
    let p = p.unwrap().unwrap();
    let Step::Reply(r) = serve(&p, "WEB.example.org.", rtype::A) else { panic!() };
    assert_eq!(r.as_message().answers.len(), 1);
    assert_eq!(r.as_message().answers[0].ttl, 60);
    assert_eq!(r.as_message().answers[0].name.to_string(), "web.example.org.");
    assert!(r.as_message().has(flag::AA));
    let Step::Reply(r) = serve(&p, "web.example.org.", rtype::AAAA) else { panic!() };
    assert_eq!(r.as_message().answers[0].data, RData::Aaaa("fd00::1".parse().unwrap()));
    let Step::Reply(r) = serve(&p, "web2.example.org.", rtype::AAAA) else { panic!() };
    assert!(r.as_message().answers.is_empty() && r.written, "name exists: NODATA");
    let Step::Reply(r) = serve(&p, "1.0.0.10.in-addr.arpa.", rtype::PTR) else { panic!() };
    assert_eq!(r.as_message().answers.len(), 2);
    assert!(matches!(serve(&p, "2.0.0.10.in-addr.arpa.", rtype::PTR), Step::Next));
    let Step::Reply(r) = serve(&p, "nope.example.org.", rtype::A) else { panic!() };
    assert!(!r.written);
    assert_eq!(r.as_message().rcode, rcode::SERVFAIL);
}

#[test]
fn fallthrough_and_zones() {
    let (p, _, _) = run_setup(
        super::setup,
        "hosts",
        ".:53 {\n hosts /nonexistent example.org {\n  10.0.0.1 a.example.org\n  fallthrough\n }\n}",
    );
    let p = p.unwrap().unwrap();
    assert!(matches!(serve(&p, "b.example.org.", rtype::A), Step::Next));
    assert!(matches!(serve(&p, "a.example.net.", rtype::A), Step::Next));
}

#[test]
fn file_is_read_and_bad_options_rejected() {
    let dir = std::env::temp_dir().join(format!("kdns-hosts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("hosts");
    std::fs::write(&f, "# comment\n192.0.2.7 db.local db\nnot-an-ip x\n").unwrap();
    let (p, _, _) = run_setup(super::setup, "hosts", &format!(".:53 {{\n hosts {}\n}}", f.display()));
    let p = p.unwrap().unwrap();
    let Step::Reply(r) = serve(&p, "db.", rtype::A) else { panic!() };
    assert_eq!(r.as_message().answers[0].data, RData::A("192.0.2.7".parse().unwrap()));
    for text in
        [".:53 {\n hosts {\n  ttl 0\n }\n}", ".:53 {\n hosts {\n  bogus\n }\n}", ".:53 {\n hosts {\n  reload x\n }\n}"]
    {
        let (p, _, _) = run_setup(super::setup, "hosts", text);
        assert_eq!(p.err().unwrap().line, 3, "{text}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn reverse_names() {
    assert_eq!(reverse_to_ip(&Name::from_ascii("4.3.2.1.in-addr.arpa.").unwrap()), Some("1.2.3.4".parse().unwrap()));
    let v6 = Name::from_ascii("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.").unwrap();
    assert_eq!(reverse_to_ip(&v6), Some("fd00::1".parse().unwrap()));
    assert_eq!(reverse_to_ip(&Name::from_ascii("3.2.1.in-addr.arpa.").unwrap()), None);
}
