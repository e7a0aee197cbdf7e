use crate::testutil::*;

#[test]
fn sets_debug_and_has_no_handler() {
    let (p, _, _) = run_setup(super::setup, "debug", ".:53 {\n debug\n}");
    assert!(p.unwrap().is_none());
    assert!(kdns_server::log::debug_enabled());
    // Given twice it loads, as in CoreDNS.
    let (p, _, _) = run_setup(super::setup, "debug", ".:53 {\n debug\n debug\n}");
    assert!(p.unwrap().is_none());
}
