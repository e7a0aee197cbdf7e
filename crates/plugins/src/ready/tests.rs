use crate::testutil::*;

#[test]
fn address() {
    let (r, c, _) = run_setup(super::setup, "ready", ".:53 {\n ready 127.0.0.1:18181\n}");
    assert!(r.unwrap().is_none());
    assert_eq!(c.ready_addresses, vec![("127.0.0.1:18181".to_string(), false)]);
    let (_, c, _) = run_setup(super::setup, "ready", ".:53 {\n ready\n}");
    assert_eq!(c.ready_addresses, vec![(":8181".to_string(), false)]);
    let (_, c, _) = run_setup(super::setup, "ready", ".:53 {\n ready {\n  monitor continuously\n }\n}");
    assert_eq!(c.ready_addresses, vec![(":8181".to_string(), true)]);
    let (r, _, _) = run_setup(super::setup, "ready", ".:53 {\n ready a b\n}");
    assert!(r.is_err());
}
