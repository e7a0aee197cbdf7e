use crate::testutil::*;
use std::time::Duration;

#[test]
fn address_and_lameduck() {
    let (r, c, _) = run_setup(super::setup, "health", ".:53 {\n health 127.0.0.1:18080 {\n  lameduck 5s\n }\n}");
    assert!(r.unwrap().is_none());
    assert_eq!(c.lameduck, Some(Duration::from_secs(5)));
    assert_eq!(c.routes[0].0, "127.0.0.1:18080");
    assert_eq!(c.routes[0].1, "/health");
    assert_eq!((c.routes[0].2)(), (200, "OK".to_string()));
    let (_, c, _) = run_setup(super::setup, "health", ".:53 {\n health\n}");
    assert_eq!(c.routes[0].0, ":8080");
}

#[test]
fn bad_lameduck() {
    let (r, _, _) = run_setup(super::setup, "health", ".:53 {\n health {\n  lameduck soon\n }\n}");
    assert_eq!(r.err().unwrap().line, 3);
}

/// CoreDNS parses every `health` line of a block: the last address and lameduck win.
#[test]
fn given_twice_the_last_address_wins() {
    let (r, c, _) = run_setup(
        super::setup,
        "health",
        ".:53 {\n health 127.0.0.1:18080\n health 127.0.0.1:18081 {\n  lameduck 2s\n }\n health\n}",
    );
    assert!(r.unwrap().is_none());
    assert_eq!(c.routes.len(), 1);
    assert_eq!(c.routes[0].0, "127.0.0.1:18081");
    assert_eq!(c.lameduck, Some(Duration::from_secs(2)));
    assert_eq!(c.tasks.len(), 1, "one self-check");
}
