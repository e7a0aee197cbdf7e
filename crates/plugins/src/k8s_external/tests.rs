use super::*;
use crate::testutil;

#[test]
fn setup_options_and_errors() {
    let (r, _, _) = testutil::run_setup(
        setup,
        "k8s_external",
        ".:53 {\n k8s_external example.org {\n apex ext\n ttl 0\n headless\n fallthrough\n }\n}",
    );
    assert!(r.unwrap().is_some());
    for (text, what) in [
        ("k8s_external example.org {\n apex a.b\n }", "one DNS label"),
        ("k8s_external example.org {\n ttl 3601\n }", "[0, 3600]"),
        ("k8s_external example.org {\n ttl\n }", "Wrong argument count"),
        ("k8s_external example.org {\n headless yes\n }", "unknown property"),
        ("k8s_external example.org {\n bogus\n }", "unknown property"),
    ] {
        let (r, _, _) = testutil::run_setup(setup, "k8s_external", &format!(".:53 {{\n{text}\n}}"));
        let e = r.err().unwrap_or_else(|| panic!("{text} should fail")).to_string();
        assert!(e.contains(what), "{text}: {e}");
    }
}

#[test]
fn without_kubernetes_it_passes() {
    let (r, _, _) = testutil::run_setup(setup, "k8s_external", ".:53 {\n k8s_external example.org\n}");
    let plugin = r.unwrap().unwrap();
    let q = testutil::query("web.shop.example.org.", kdns_wire::rtype::A);
    let req = testutil::request(&q, "127.0.0.1:5000".parse().unwrap());
    assert!(matches!(plugin.serve(&req), Step::Next));
}
