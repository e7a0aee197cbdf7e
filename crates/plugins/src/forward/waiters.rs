//! The table both multiplexers share: queries waiting on one upstream socket or connection, by
//! the random ID each was sent with.
//!
//! A waiting query is a slot in the table, not a channel: the reader stores the reply in the
//! slot and wakes the query's waker, and the query takes it on its next poll. A slot may carry
//! a deadline, which the socket's reader enforces ([`Waiters::expire`]), so a UDP exchange
//! needs no timer of its own; the reader is woken only when a new deadline comes before the
//! one it sleeps towards.

use rustc_hash::FxHashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

/// Why a waiting query got no value.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Gone {
    /// The connection or socket went away without a reply for it.
    Closed,
    /// Its deadline passed.
    TimedOut,
}

enum State<T> {
    Waiting { waker: Option<Waker>, deadline: Option<Instant> },
    Ready(T),
    Gone(Gone),
}

struct Table<T> {
    slots: FxHashMap<u16, State<T>>,
    /// The deadline the reader sleeps towards, and how to wake it for an earlier one.
    reader_until: Option<Instant>,
    reader: Option<Waker>,
}

impl<T> Table<T> {
    /// Wakes the reader when `deadline` comes before the one it sleeps towards. Waking under
    /// the lock is fine: a waker only schedules its task.
    fn wake_reader_for(&mut self, deadline: Option<Instant>) {
        let sooner = deadline.is_some_and(|d| self.reader_until.is_none_or(|until| d < until));
        if sooner {
            self.reader_until = deadline;
            if let Some(w) = self.reader.take() {
                w.wake();
            }
        }
    }
}

/// Queries waiting on one shared upstream connection or socket, by the random ID each was
/// sent with; the connection's reader delivers each reply to its query.
pub(super) struct Waiters<T>(Mutex<Table<T>>);

impl<T> Default for Waiters<T> {
    fn default() -> Self {
        Waiters(Mutex::new(Table { slots: FxHashMap::default(), reader_until: None, reader: None }))
    }
}

impl<T> Waiters<T> {
    fn table(&self) -> std::sync::MutexGuard<'_, Table<T>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh random ID not in use here, and where its reply will arrive; with a deadline,
    /// the reader ends the wait with [`Gone::TimedOut`] once it passes.
    pub(super) fn register(&self, deadline: Option<Instant>) -> Waiting<'_, T> {
        let mut table = self.table();
        let mut id = fastrand::u16(..);
        while table.slots.contains_key(&id) {
            id = fastrand::u16(..);
        }
        table.slots.insert(id, State::Waiting { waker: None, deadline });
        table.wake_reader_for(deadline);
        Waiting { table: self, id }
    }

    /// Hands `value` to the query waiting on `id`; false when none does.
    pub(super) fn deliver(&self, id: u16, value: T) -> bool {
        let mut table = self.table();
        let Some(slot) = table.slots.get_mut(&id) else { return false };
        let State::Waiting { waker, .. } = slot else { return false };
        let waker = waker.take();
        *slot = State::Ready(value);
        drop(table);
        if let Some(w) = waker {
            w.wake();
        }
        true
    }

    pub(super) fn is_empty(&self) -> bool {
        self.table().slots.is_empty()
    }

    /// Ends every wait with a value made by `value` (an error for all of them).
    pub(super) fn fail_all(&self, mut value: impl FnMut() -> T) {
        self.end_all(|| State::Ready(value()));
    }

    /// Ends every wait with [`Gone::Closed`].
    pub(super) fn close_all(&self) {
        self.end_all(|| State::Gone(Gone::Closed));
    }

    fn end_all(&self, mut end: impl FnMut() -> State<T>) {
        let mut wake = Vec::new();
        let mut table = self.table();
        for slot in table.slots.values_mut() {
            if let State::Waiting { waker, .. } = slot {
                wake.extend(waker.take());
                *slot = end();
            }
        }
        drop(table);
        wake.into_iter().for_each(Waker::wake);
    }

    /// For the reader: ends the waits whose deadline is past `now` with [`Gone::TimedOut`] and
    /// returns when to sweep again: the earliest deadline still ahead, or `horizon` if sooner.
    /// Until then `reader` is woken only by a registration with a deadline before that.
    pub(super) fn expire(&self, now: Instant, horizon: Instant, reader: &Waker) -> Instant {
        let mut wake = Vec::new();
        let mut table = self.table();
        let mut next: Option<Instant> = None;
        for slot in table.slots.values_mut() {
            if let State::Waiting { waker, deadline: Some(d) } = slot {
                if *d <= now {
                    wake.extend(waker.take());
                    *slot = State::Gone(Gone::TimedOut);
                } else if next.is_none_or(|n| *d < n) {
                    next = Some(*d);
                }
            }
        }
        let until = next.map_or(horizon, |n| n.min(horizon));
        table.reader_until = Some(until);
        if !table.reader.as_ref().is_some_and(|w| w.will_wake(reader)) {
            table.reader = Some(reader.clone());
        }
        drop(table);
        wake.into_iter().for_each(Waker::wake);
        until
    }

    /// True once a registration took the reader's waker to call it to an earlier sweep.
    pub(super) fn reader_called(&self) -> bool {
        let table = self.table();
        table.reader_until.is_some() && table.reader.is_none()
    }
}

/// One query's place in a [`Waiters`] table, left when the exchange ends however it ends
/// (answer, error, timeout, cancellation). Awaiting it gives the value delivered for its ID.
pub(super) struct Waiting<'a, T> {
    table: &'a Waiters<T>,
    pub(super) id: u16,
}

impl<T> Waiting<'_, T> {
    /// Waits again on the same ID (until `deadline`) after a reply for it failed validation.
    pub(super) fn rearm(&mut self, deadline: Option<Instant>) {
        let mut table = self.table.table();
        if let Some(slot) = table.slots.get_mut(&self.id) {
            if !matches!(slot, State::Waiting { .. }) {
                *slot = State::Waiting { waker: None, deadline };
            }
        }
        table.wake_reader_for(deadline);
    }
}

impl<T> Future for Waiting<'_, T> {
    type Output = Result<T, Gone>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut table = self.table.table();
        let Some(slot) = table.slots.get_mut(&self.id) else { return Poll::Ready(Err(Gone::Closed)) };
        match slot {
            State::Waiting { waker, .. } => {
                if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
            State::Ready(_) | State::Gone(_) => {
                let done = std::mem::replace(slot, State::Gone(Gone::Closed));
                Poll::Ready(match done {
                    State::Ready(v) => Ok(v),
                    State::Gone(g) => Err(g),
                    State::Waiting { .. } => unreachable!("matched above"),
                })
            }
        }
    }
}

impl<T> Drop for Waiting<'_, T> {
    fn drop(&mut self) {
        // The ID is ours until here: deliveries only change a slot, they never remove it.
        self.table.table().slots.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
        let waker = Waker::noop();
        Pin::new(f).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn a_delivered_value_reaches_its_id_only() {
        let table = Waiters::<u32>::default();
        let mut a = table.register(None);
        let mut b = table.register(None);
        assert_ne!(a.id, b.id);
        assert!(poll_once(&mut a).is_pending());
        assert!(table.deliver(b.id, 7));
        assert!(!table.deliver(b.id, 8), "a second reply for the same wait is not taken");
        assert!(poll_once(&mut a).is_pending());
        assert_eq!(poll_once(&mut b), Poll::Ready(Ok(7)));
        let (id_a, id_b) = (a.id, b.id);
        drop(a);
        drop(b);
        assert!(table.is_empty());
        assert!(!table.deliver(id_a, 1) && !table.deliver(id_b, 1));
    }

    #[test]
    fn deadlines_end_waits_and_the_reader_learns_the_next_one() {
        let table = Waiters::<u32>::default();
        let now = Instant::now();
        let mut soon = table.register(Some(now + Duration::from_millis(10)));
        let mut later = table.register(Some(now + Duration::from_secs(5)));
        let mut never = table.register(None);
        let next = table.expire(now + Duration::from_millis(20), now + Duration::from_secs(60), Waker::noop());
        assert_eq!(next, now + Duration::from_secs(5));
        assert_eq!(table.expire(now, now + Duration::from_secs(1), Waker::noop()), now + Duration::from_secs(1));
        assert_eq!(poll_once(&mut soon), Poll::Ready(Err(Gone::TimedOut)));
        assert!(poll_once(&mut later).is_pending());
        assert!(poll_once(&mut never).is_pending());
        table.close_all();
        assert_eq!(poll_once(&mut later), Poll::Ready(Err(Gone::Closed)));
        assert_eq!(poll_once(&mut never), Poll::Ready(Err(Gone::Closed)));
    }

    #[test]
    fn a_sooner_deadline_wakes_the_reader() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        struct Count(AtomicUsize);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let reader = Waker::from(count.clone());
        let table = Waiters::<u32>::default();
        let now = Instant::now();
        let _far = table.register(Some(now + Duration::from_secs(5)));
        table.expire(now, now + Duration::from_secs(60), &reader);
        assert!(!table.reader_called());
        let _later = table.register(Some(now + Duration::from_secs(6)));
        assert_eq!(count.0.load(Ordering::SeqCst), 0, "a later deadline leaves the reader asleep");
        let _sooner = table.register(Some(now + Duration::from_secs(1)));
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(table.reader_called());
    }

    #[test]
    fn a_rearmed_wait_takes_the_next_reply() {
        let table = Waiters::<u32>::default();
        let mut w = table.register(None);
        assert!(table.deliver(w.id, 1));
        assert_eq!(poll_once(&mut w), Poll::Ready(Ok(1)));
        w.rearm(None);
        assert!(poll_once(&mut w).is_pending());
        assert!(table.deliver(w.id, 2));
        assert_eq!(poll_once(&mut w), Poll::Ready(Ok(2)));
    }
}
