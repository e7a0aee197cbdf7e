//! The table both multiplexers share: queries waiting on one upstream socket or connection, by
//! the random ID each was sent with.

use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::oneshot;

/// Queries waiting on one shared upstream connection or socket, by the random ID each was
/// sent with; the connection's reader task delivers each reply to its query.
pub(super) struct Waiters<T>(Mutex<HashMap<u16, oneshot::Sender<T>>>);

impl<T> Default for Waiters<T> {
    fn default() -> Self {
        Waiters(Mutex::new(HashMap::new()))
    }
}

impl<T> Waiters<T> {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<u16, oneshot::Sender<T>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh random ID not in use here, and where its reply will arrive.
    pub(super) fn register(&self) -> Waiting<'_, T> {
        let (tx, rx) = oneshot::channel();
        let mut map = self.map();
        let mut id = fastrand::u16(..);
        while map.contains_key(&id) {
            id = fastrand::u16(..);
        }
        map.insert(id, tx);
        Waiting { table: self, id, rx }
    }

    /// Hands `value` to the query waiting on `id`; false when none does.
    pub(super) fn deliver(&self, id: u16, value: T) -> bool {
        let waiter = self.map().remove(&id);
        waiter.map(|tx| tx.send(value)).is_some()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.map().is_empty()
    }

    /// Removes every waiter; each is woken with a closed channel.
    pub(super) fn take_all(&self) -> Vec<oneshot::Sender<T>> {
        self.map().drain().map(|(_, tx)| tx).collect()
    }
}

/// One query's place in a [`Waiters`] table, left when the exchange ends however it ends
/// (answer, error, timeout, cancellation).
pub(super) struct Waiting<'a, T> {
    table: &'a Waiters<T>,
    pub(super) id: u16,
    pub(super) rx: oneshot::Receiver<T>,
}

impl<T> Waiting<'_, T> {
    /// Waits again on the same ID after a reply for it failed validation.
    pub(super) fn rearm(&mut self) {
        let (tx, rx) = oneshot::channel();
        self.table.map().insert(self.id, tx);
        self.rx = rx;
    }
}

impl<T> Drop for Waiting<'_, T> {
    fn drop(&mut self) {
        // Only our own registration: once answered, the ID may already belong to another query.
        self.rx.close();
        let mut map = self.table.map();
        if map.get(&self.id).is_some_and(|tx| tx.is_closed()) {
            map.remove(&self.id);
        }
    }
}
