use crate::testutil::*;
use std::time::Duration;

#[test]
fn defaults_and_limits() {
    let (_, c, _) = run_setup(super::setup, "reload", ".:53 {\n reload\n}");
    let s = c.reload.unwrap();
    assert_eq!((s.interval, s.jitter), (Duration::from_secs(30), Duration::from_secs(15)));
    let (_, c, _) = run_setup(super::setup, "reload", ".:53 {\n reload 10s 9s\n}");
    assert_eq!(c.reload.unwrap().jitter, Duration::from_secs(5));
    let (_, c, _) = run_setup(super::setup, "reload", ".:53 {\n reload 2s 0s\n}");
    assert_eq!(c.reload.unwrap().jitter, Duration::ZERO);
    let (r, _, _) = run_setup(super::setup, "reload", ".:53 {\n reload 1s\n}");
    assert!(r.err().unwrap().message.contains("greater or equal to 2s"));
    let (r, _, _) = run_setup(super::setup, "reload", ".:53 {\n reload soon\n}");
    assert!(r.is_err());
}
