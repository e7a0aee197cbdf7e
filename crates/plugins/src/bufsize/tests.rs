use crate::testutil::*;

#[test]
fn default_and_range() {
    let (r, _, _) = run_setup(super::setup, "bufsize", ".:53 {\n bufsize\n}");
    assert!(r.unwrap().is_none());
    for bad in ["511", "4097", "big"] {
        let (r, _, _) = run_setup(super::setup, "bufsize", &format!(".:53 {{\n bufsize {bad}\n}}"));
        assert_eq!(r.err().unwrap().line, 2, "{bad}");
    }
}
