//! Where work runs that must outlive the query that started it.
//!
//! A UDP worker runs the queries it cannot answer at once (forwarded misses) on a runtime of
//! its own thread, so a miss never hops between threads (docs/performance.md). That runtime
//! ends with the worker (a listener removed by a reload, a drain), and everything spawned on
//! it ends too. Work that must outlive the worker or that other threads share — health
//! probes, pooled upstream TCP connections, cache refreshes, client connection drivers —
//! goes to the process's main runtime through [`spawn`]; the worker thread records which
//! one that is. On any other thread (the main runtime itself, tests) it is the current
//! runtime.

use std::cell::RefCell;
use std::future::Future;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

thread_local! {
    static MAIN: RefCell<Option<Handle>> = const { RefCell::new(None) };
}

/// Marks this thread as a worker whose background work belongs to `main`.
pub(crate) fn set_main(main: Handle) {
    MAIN.with_borrow_mut(|m| *m = Some(main));
}

/// Spawns `fut` on the main runtime (the current one when this thread is not a worker).
pub fn spawn<F>(fut: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match MAIN.with_borrow(|m| m.clone()) {
        Some(h) => h.spawn(fut),
        None => tokio::spawn(fut),
    }
}

/// Runs `fut` on the main runtime and waits for it: for work that creates sockets or tasks
/// other threads will share. `None` when the main runtime is shutting down.
pub async fn run<F>(fut: F) -> Option<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    if MAIN.with_borrow(|m| m.is_none()) {
        return Some(fut.await);
    }
    spawn(fut).await.ok()
}
