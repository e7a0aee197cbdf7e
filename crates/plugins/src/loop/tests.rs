use crate::testutil::*;

#[test]
fn probe_name_is_random_under_the_first_zone() {
    let (p, c, _) = run_setup(super::setup, "loop", ".:53 {\n loop\n}");
    assert!(p.unwrap().is_some());
    assert_eq!(c.tasks.len(), 1);
    let (p, _, _) = run_setup(super::setup, "loop", ".:53 {\n loop x\n}");
    assert!(p.is_err());
}
