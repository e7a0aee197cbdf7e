use super::*;
use crate::testutil::run_setup;

#[test]
fn setup_reads_a_resolv_conf_or_names_a_plugin() {
    let dir = std::env::temp_dir().join(format!("kdns-autopath-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let resolv = dir.join("resolv.conf");
    std::fs::write(&resolv, "nameserver 10.0.0.1\nsearch a.example b.example\n").unwrap();
    let text = format!(".:53 {{\n    autopath {}\n}}\n", resolv.display());
    assert!(run_setup(setup, "autopath", &text).0.is_ok());
    assert_eq!(
        static_path(&resolv).unwrap(),
        [Name::from_ascii("a.example.").unwrap(), Name::from_ascii("b.example.").unwrap(), Name::root()]
    );
    assert!(run_setup(setup, "autopath", ".:53 {\n    autopath @kubernetes\n}\n").0.is_ok());
    let e =
        run_setup(setup, "autopath", ".:53 {\n    autopath /nonexistent/resolv.conf\n}\n").0.err().unwrap().to_string();
    assert!(e.contains("Corefile:2") && e.contains("plugin/autopath: failed to parse"), "{e}");
    assert!(run_setup(setup, "autopath", ".:53 {\n    autopath\n}\n").0.is_err());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn cnamer_points_the_asked_name_at_the_answer() {
    let asked = Name::from_ascii("web.ns.svc.cluster.local.").unwrap();
    let found = Name::from_ascii("web.svc.cluster.local.").unwrap();
    let mut m = Message::default();
    m.questions.push(kdns_wire::Question { name: found.clone(), qtype: 1, qclass: 1 });
    m.answers.push(Record::new(found.clone(), 17, RData::A("10.0.0.1".parse().unwrap())));
    cnamer(&mut m, &asked);
    assert_eq!(m.answers[0], Record::new(asked.clone(), 17, RData::Cname(found)));
    assert_eq!(m.questions[0].name, asked);
}
