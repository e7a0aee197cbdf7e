//! Giving freed memory back to the system after a burst (a Kubernetes list, a relist): the
//! binary registers its allocator's collector; libraries call [`release`] without knowing
//! which allocator that is.

use std::sync::OnceLock;

static RELEASE: OnceLock<fn()> = OnceLock::new();

/// Registers the allocator's "return free pages now" function (once, from `main`).
pub fn set_release(f: fn()) {
    let _ = RELEASE.set(f);
}

/// Returns free memory to the system, when an allocator hook is registered.
pub fn release() {
    if let Some(f) = RELEASE.get() {
        f();
    }
}
