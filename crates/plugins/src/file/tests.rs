use super::*;
use crate::testutil;
use kdns_server::plugin::Step;
use kdns_wire::rtype;

fn write_zone(tag: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kdns-file-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("db");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn setup_options_and_errors() {
    let db = write_zone("setup", "@ SOA ns h 1 2 3 4 5\nwww A 192.0.2.1\n");
    let p = db.display();
    let (r, contrib, _) =
        testutil::run_setup(setup, "file", &format!("example.org {{\n file {p} example.org {{\n reload 0\n }}\n}}"));
    assert!(r.unwrap().is_some());
    assert!(contrib.tasks.is_empty(), "reload 0 starts no watcher");
    let (r, contrib, _) = testutil::run_setup(setup, "file", &format!("example.org {{\n file {p} example.org\n}}"));
    assert!(r.unwrap().is_some());
    assert_eq!(contrib.tasks.len(), 1, "reload every minute by default");
    for (text, what) in [
        ("file".to_string(), "Wrong argument count"),
        (format!("file {p} example.org {{\n reload soon\n }}"), "invalid duration"),
        (format!("file {p} example.org {{\n transfer to *\n }}"), "transfer"),
        (format!("file {p} example.org {{\n bogus\n }}"), "unknown property"),
        ("file /nonexistent/db example.org {\n reload 0\n }".to_string(), "No such file"),
        (
            format!(
                "file {} example.org",
                write_zone("ooz", "@ SOA ns h 1 2 3 4 5\nwww.other.org. A 192.0.2.1\n").display()
            ),
            "out of zone",
        ),
    ] {
        let (r, _, _) = testutil::run_setup(setup, "file", &format!(".:53 {{\n{text}\n}}"));
        let e = r.err().unwrap_or_else(|| panic!("{text} should fail")).to_string();
        assert!(e.contains(what), "{text}: {e}");
    }
    // A missing file with reload on is a warning: the zone answers SERVFAIL until it appears.
    let (r, _, _) = testutil::run_setup(setup, "file", ".:53 {\n file /nonexistent/db example.org\n}");
    let plugin = r.unwrap().unwrap();
    let q = testutil::query("www.example.org.", rtype::A);
    let req = testutil::request(&q, "127.0.0.1:5000".parse().unwrap());
    let Step::Reply(reply) = plugin.serve(&req) else { panic!("not loaded must answer") };
    assert_eq!(reply.rcode_value(), kdns_wire::rcode::SERVFAIL);
}

#[test]
fn serves_its_zones_and_passes_the_rest() {
    let db = write_zone("serve", "@ SOA ns h 1 2 3 4 5\n@ NS ns\nns A 192.0.2.53\nwww A 192.0.2.1\n");
    let p = db.display();
    let (r, _, _) = testutil::run_setup(
        setup,
        "file",
        &format!(".:53 {{\n file {p} example.org {{\n fallthrough other.example.org\n }}\n}}"),
    );
    let plugin = r.unwrap().unwrap();
    let ask = |name: &str| {
        let q = testutil::query(name, rtype::A);
        let req = testutil::request(&q, "127.0.0.1:5000".parse().unwrap());
        match plugin.serve(&req) {
            Step::Reply(r) => Some(r.as_message().into_owned()),
            Step::Next => None,
            _ => panic!("file never waits"),
        }
    };
    let m = ask("www.example.org.").unwrap();
    assert!(m.has(kdns_wire::flag::AA));
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.authority.len(), 1);
    assert!(m.additional.is_empty(), "no glue for the authority section, as CoreDNS");
    assert_eq!(ask("nope.example.org.").unwrap().rcode, kdns_wire::rcode::NXDOMAIN);
    assert!(ask("nope.other.example.org.").is_none(), "NXDOMAIN falls through in the listed zone");
    assert!(ask("www.example.net.").is_none(), "other zones pass");
}
