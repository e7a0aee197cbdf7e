//! A UDP worker's waiting queries (forwarded misses and other handlers that returned a future),
//! polled by the worker loop itself instead of being spawned as tokio tasks.
//!
//! Each waiting query sits in a slot of a slab; each slot has one waker, built once and reused
//! by every query that later takes the slot, which pushes the slot's index onto a ready list the
//! loop drains every turn. So a miss costs no task allocation, no scheduler bookkeeping and no
//! reply `Vec` of its own: the reply is written straight into the worker's outgoing batch. A
//! wake left over from a slot's earlier query only polls the current one once more, which a
//! future must tolerate anyway.

use crate::batch::Outbox;
use crate::handler::PendingReply;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

thread_local! {
    /// Set while a UDP worker polls one of its waiting queries.
    static POLLING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Work a plugin queues on a UDP worker's thread during a turn and the worker completes once
/// per turn, before it sends its replies or waits (forward's upstream queries, sent together).
static TURN_END: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();

/// True while a UDP worker loop polls one of its waiting queries: the loop calls the turn-end
/// hook before it sends its replies or waits. (Other tasks on the worker's runtime, polled while
/// the loop waits, see false.)
pub fn polled_by_udp_worker() -> bool {
    POLLING.get()
}

/// Sets the hook every UDP worker calls at the end of each turn (once per process).
pub fn set_turn_end(hook: fn()) {
    let _ = TURN_END.set(hook);
}

pub(crate) fn turn_end() {
    if let Some(hook) = TURN_END.get() {
        hook();
    }
}

/// Slots woken since the loop last looked, and how the loop is woken when it waits.
#[derive(Default)]
pub(crate) struct ReadyList {
    ready: Mutex<Vec<u32>>,
    pub(crate) notify: tokio::sync::Notify,
}

impl ReadyList {
    fn push(&self, index: u32) {
        let mut ready = self.ready.lock().unwrap_or_else(|e| e.into_inner());
        let first = ready.is_empty();
        ready.push(index);
        drop(ready);
        // The loop takes the whole list when it wakes, so one notification per batch of wakes.
        if first {
            self.notify.notify_one();
        }
    }

    fn take_into(&self, into: &mut Vec<u32>) {
        let mut ready = self.ready.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::swap(&mut *ready, into);
    }
}

struct SlotWaker {
    index: u32,
    list: Arc<ReadyList>,
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.list.push(self.index);
    }
}

/// One waiting query: its chain, where its reply goes, and what it holds for its lifetime
/// (the listener's in-flight count, for graceful stop).
struct Slot<G> {
    reply: Box<PendingReply>,
    peer: SocketAddr,
    _guard: G,
}

/// The slab of a worker's waiting queries.
pub(crate) struct Waiting<G> {
    slots: Vec<Option<Slot<G>>>,
    wakers: Vec<Waker>,
    free: Vec<u32>,
    list: Arc<ReadyList>,
    /// The ready list taken out for one drain (kept to reuse its allocation).
    draining: Vec<u32>,
}

impl<G> Waiting<G> {
    pub(crate) fn new() -> Waiting<G> {
        Waiting { slots: Vec::new(), wakers: Vec::new(), free: Vec::new(), list: Arc::default(), draining: Vec::new() }
    }

    /// Queries waiting: the slots not on the free list.
    pub(crate) fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    pub(crate) fn ready_list(&self) -> &ReadyList {
        &self.list
    }

    /// Takes in a waiting query and polls it once at once (a forwarded miss sends its upstream
    /// query now). Returns true when it finished in that poll and its reply is in `out`.
    pub(crate) fn insert(&mut self, reply: Box<PendingReply>, peer: SocketAddr, guard: G, out: &mut Vec<u8>) -> bool {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                let i = self.slots.len() as u32;
                self.slots.push(None);
                self.wakers.push(Waker::from(Arc::new(SlotWaker { index: i, list: self.list.clone() })));
                i
            }
        };
        self.slots[index as usize] = Some(Slot { reply, peer, _guard: guard });
        self.poll_slot(index, out).is_some()
    }

    /// Polls slot `index` if it holds a query; `Some(peer)` when that query finished with its
    /// reply written into `out` (the slot is free again).
    fn poll_slot(&mut self, index: u32, out: &mut Vec<u8>) -> Option<SocketAddr> {
        let slot = self.slots.get_mut(index as usize)?.as_mut()?;
        let mut cx = Context::from_waker(&self.wakers[index as usize]);
        out.clear();
        POLLING.set(true);
        let polled = slot.reply.poll_into(&mut cx, out);
        POLLING.set(false);
        match polled {
            Poll::Pending => None,
            Poll::Ready(()) => {
                let done = self.slots[index as usize].take()?;
                self.free.push(index);
                Some(done.peer)
            }
        }
    }

    /// Polls every woken query; each that finished has its reply queued in `out` (flushed to
    /// `fd` whenever it fills).
    pub(crate) fn poll_ready(&mut self, out: &mut Outbox, fd: RawFd) {
        let mut woken = std::mem::take(&mut self.draining);
        self.list.take_into(&mut woken);
        for &index in &woken {
            if out.is_full() {
                out.flush(fd);
            }
            if let Some(peer) = self.poll_slot(index, out.next_buf()) {
                out.commit(peer);
            }
        }
        woken.clear();
        self.draining = woken;
    }
}
