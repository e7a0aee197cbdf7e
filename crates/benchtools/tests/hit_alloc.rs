//! The cache-hit path allocates nothing: a counting global allocator watches `handler::handle`
//! answer queries from the cache, through the chain a node cache runs (prometheus, errors,
//! cache in front of an answering plugin), with and without EDNS, asked in the case the entry
//! was stored with (another case rebuilds the reply so owners keep the stored case, as CoreDNS
//! does, and that path allocates). The fixture is the one `bench/callgrind.sh` counts
//! instructions on.

use kdns_benchtools::Hits;
use kdns_wire::{rcode, Message};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: defers to the system allocator; only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn cache_hits_do_not_allocate() {
    let mut hits = Hits::warmed().unwrap();
    COUNTING.with(|c| c.set(true));
    for i in 0..4000 {
        hits.answer(i).unwrap();
    }
    COUNTING.with(|c| c.set(false));
    let allocations = ALLOCATIONS.load(Ordering::Relaxed);

    // Each reply really is a cache hit: the cache's TTL cap (30) instead of hosts's 3600, the
    // client's ID and spelling of the name, and EDNS only when asked for.
    for i in 0..hits.queries.len() {
        let reply = Message::decode(hits.answer(i).unwrap()).unwrap();
        let asked = Message::decode(&hits.queries[i]).unwrap();
        assert_eq!(reply.id, 0x4242);
        assert_eq!(reply.rcode, rcode::NOERROR);
        assert_eq!(reply.answers.len(), 2);
        assert!(reply.answers.iter().all(|rr| rr.ttl <= 30), "{:?}", reply.answers);
        assert_eq!(reply.questions[0].name.as_wire(), asked.questions[0].name.as_wire());
        assert_eq!(reply.edns.is_some(), asked.edns.is_some());
    }
    assert_eq!(allocations, 0, "{allocations} allocations in 4,000 cache hits");
}
