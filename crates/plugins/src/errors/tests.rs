use crate::testutil::*;

#[test]
fn consolidate_parses() {
    let (p, c, _) = run_setup(
        super::setup,
        "errors",
        ".:53 {\n errors {\n  consolidate 5m \".* i/o timeout$\" warning show_first\n  consolidate 30s \"^Failed to .+\"\n  stacktrace\n }\n}",
    );
    assert!(p.unwrap().is_some());
    assert_eq!(c.tasks.len(), 2);
}

#[test]
fn bad_options_name_the_line() {
    for (text, line) in [
        (".:53 {\n errors {\n  consolidate 5m\n }\n}", 3),
        (".:53 {\n errors {\n  consolidate 5m \"(\"\n }\n}", 3),
        (".:53 {\n errors {\n  consolidate x y\n }\n}", 3),
        (".:53 {\n errors {\n  frobnicate\n }\n}", 3),
        (".:53 {\n errors\n errors\n}", 3),
    ] {
        let (p, _, _) = run_setup(super::setup, "errors", text);
        assert_eq!(p.err().unwrap().line, line, "{text}");
    }
}
