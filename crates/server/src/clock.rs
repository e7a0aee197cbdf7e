//! The time a chain reads. Production chains read the system's monotonic clock; a test chain
//! gets a manual one it moves forward itself, so TTL ageing, prefetch and stale windows are
//! tested in microseconds instead of sleeps. The server core stamps each request with it
//! (`Request::start`) and the cache reads it for everything it files or ages.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A monotonic clock: the system's, or a manual one shared by its clones.
#[derive(Clone, Debug, Default)]
pub struct Clock(Option<Arc<Manual>>);

#[derive(Debug)]
struct Manual {
    base: Instant,
    elapsed_ns: AtomicU64,
}

impl Clock {
    /// The system's monotonic clock.
    pub fn system() -> Clock {
        Clock(None)
    }

    /// A clock that stands still until [`Clock::advance`] moves it.
    pub fn manual() -> Clock {
        Clock(Some(Arc::new(Manual { base: Instant::now(), elapsed_ns: AtomicU64::new(0) })))
    }

    #[inline]
    pub fn now(&self) -> Instant {
        match &self.0 {
            None => Instant::now(),
            Some(m) => m.base + Duration::from_nanos(m.elapsed_ns.load(Ordering::Acquire)),
        }
    }

    /// Moves a manual clock forward (the system's cannot be moved: nothing happens).
    pub fn advance(&self, by: Duration) {
        if let Some(m) = &self.0 {
            m.elapsed_ns.fetch_add(by.as_nanos() as u64, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_its_clones_follow() {
        let c = Clock::manual();
        let t0 = c.now();
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(c.now(), t0);
        let clone = c.clone();
        c.advance(Duration::from_secs(30));
        assert_eq!(clone.now() - t0, Duration::from_secs(30));
        let s = Clock::system();
        let before = s.now();
        s.advance(Duration::from_secs(30));
        assert!(s.now() - before < Duration::from_secs(30));
    }
}
