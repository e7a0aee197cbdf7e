use crate::testutil::*;

#[test]
fn address_and_route() {
    let (r, c, _) = run_setup(super::setup, "prometheus", ".:53 {\n prometheus :19153\n}");
    assert!(r.unwrap().is_some());
    assert_eq!(c.routes[0].0, ":19153");
    let (status, body) = (c.routes[0].2)();
    assert_eq!(status, 200);
    assert!(body.contains("coredns_build_info{"));
    let (_, c, _) = run_setup(super::setup, "prometheus", ".:53 {\n prometheus\n}");
    assert_eq!(c.routes[0].0, "localhost:9153");
    let (r, _, _) = run_setup(super::setup, "prometheus", ".:53 {\n prometheus nowhere:x\n}");
    assert!(r.is_err());
}
