use super::*;
use crate::testutil;

fn plugin(text: &str) -> Result<Option<Arc<dyn Plugin>>, kdns_corefile::Error> {
    testutil::run_setup(setup, "etcd", &format!(".:53 {{\n{text}\n}}")).0
}

#[test]
fn setup_options_and_errors() {
    assert!(plugin("etcd skydns.local {\n path /dns\n endpoint http://127.0.0.1:2379 https://10.0.0.1:2379\n credentials u p\n fallthrough\n}").unwrap().is_some());
    assert!(plugin("etcd").unwrap().is_some(), "defaults: /skydns on http://localhost:2379");
    for (text, what) in [
        ("etcd {\n endpoint 127.0.0.1:2379\n}", "http:// or https://"),
        ("etcd {\n endpoint\n}", "Wrong argument count"),
        ("etcd {\n credentials onlyuser\n}", "username and a password"),
        ("etcd {\n stubzones\n}", "removed"),
        ("etcd {\n tls /nonexistent/cert /nonexistent/key\n}", "cannot read"),
        ("etcd {\n bogus\n}", "unknown property"),
    ] {
        let e = plugin(text).err().unwrap_or_else(|| panic!("{text} should fail")).to_string();
        assert!(e.contains(what), "{text}: {e}");
    }
}

#[test]
fn keys_and_domains() {
    let e = Etcd {
        zones: vec![Name::from_ascii("skydns.local.").unwrap()],
        path: "/skydns".into(),
        fallthrough: crate::pkg::zones::Fallthrough::default(),
        client: Arc::new(Client::new(Vec::new(), None, None)),
    };
    let (path, _, star) = e.key_for(&Name::from_ascii("WWW.skydns.local.").unwrap());
    assert_eq!((path.as_str(), star), ("/skydns/local/skydns/www", false));
    let (path, segments, star) = e.key_for(&Name::from_ascii("x.*.skydns.local.").unwrap());
    assert_eq!((path.as_str(), star), ("/skydns/local/skydns", true));
    assert_eq!(segments, ["local", "skydns", "*", "x"]);
    assert_eq!(e.domain("/skydns/local/skydns/multi/x1", 0).unwrap().to_string(), "x1.multi.skydns.local.");
    assert_eq!(e.domain("/skydns/local/skydns/multi/x1", 1).unwrap().to_string(), "multi.skydns.local.");
    assert!(e.domain("/other/x", 0).is_none());
    let s = Service::parse(
        "/k",
        br#"{"host":"10.0.0.1","port":53,"priority":5,"weight":7,"mail":true,"ttl":9,"targetstrip":1,"text":"t"}"#,
    )
    .unwrap();
    assert_eq!((s.port, s.priority, s.weight, s.mail, s.ttl(), s.target_strip), (53, 5, 7, true, 9, 1));
    assert!(Service::parse("/k", b"nope").unwrap_err().contains("bad JSON in /k"));
}
