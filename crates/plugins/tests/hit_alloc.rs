//! The cache-hit path allocates nothing: a counting global allocator watches `handler::handle`
//! answer queries from the cache, through the chain a node cache runs (prometheus, errors,
//! cache in front of an answering plugin), with and without EDNS, in mixed case.

use kdns_corefile::parse_str;
use kdns_server::config::{build, ListenerKey};
use kdns_server::handler::{handle, Outcome};
use kdns_server::Proto;
use kdns_wire::{class, flag, rcode, rtype, Edns, Message, Name, Question};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;
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

fn query(name: &str, edns: Option<Edns>) -> Vec<u8> {
    Message {
        id: 0x4242,
        flags: flag::RD,
        questions: vec![Question { name: Name::from_ascii(name).unwrap(), qtype: rtype::A, qclass: class::IN }],
        edns,
        ..Default::default()
    }
    .to_vec()
}

#[test]
fn cache_hits_do_not_allocate() {
    let corefile = ".:5300 {\n    prometheus 127.0.0.1:0\n    errors\n    cache 30\n    hosts {\n        10.0.0.1 web.example.org\n        10.0.0.2 web.example.org\n    }\n}\n";
    let c = parse_str(corefile, "Corefile", Path::new("."), &|_| None).unwrap();
    let instance = build(&c, &kdns_plugins::all(), 53, Path::new(".")).unwrap();
    let table = instance.listeners[&ListenerKey { ip: None, port: 5300 }].clone();
    let client = "127.0.0.1:40000".parse().unwrap();
    let local = "127.0.0.1:5300".parse().unwrap();
    let cookie = Edns { udp_size: 1232, options: vec![(10, vec![1, 2, 3, 4, 5, 6, 7, 8])], ..Edns::new(1232) };
    let queries = [
        query("web.example.org.", None),
        query("WeB.ExAmple.ORG.", None),
        query("web.example.org.", Some(Edns::new(1232))),
        query("web.example.org.", Some(cookie)),
    ];
    let mut scratch = Message::default();
    let mut out = Vec::new();
    let answer = |packet: &[u8], scratch: &mut Message, out: &mut Vec<u8>| match handle(
        packet,
        client,
        local,
        Proto::Udp,
        &table,
        scratch,
        out,
    ) {
        Outcome::Reply => {}
        _ => panic!("a cache hit answers synchronously"),
    };
    // First pass fills the cache; the next ones grow the reused buffers to size.
    for _ in 0..3 {
        for q in &queries {
            answer(q, &mut scratch, &mut out);
        }
    }
    COUNTING.with(|c| c.set(true));
    for _ in 0..1000 {
        for q in &queries {
            answer(q, &mut scratch, &mut out);
        }
    }
    COUNTING.with(|c| c.set(false));
    let allocations = ALLOCATIONS.load(Ordering::Relaxed);

    // Each reply really is a cache hit: the cache's TTL cap (30) instead of hosts's 3600, the
    // client's ID and spelling of the name, and EDNS only when asked for.
    for q in &queries {
        answer(q, &mut scratch, &mut out);
        let reply = Message::decode(&out).unwrap();
        let asked = Message::decode(q).unwrap();
        assert_eq!(reply.id, 0x4242);
        assert_eq!(reply.rcode, rcode::NOERROR);
        assert_eq!(reply.answers.len(), 2);
        assert!(reply.answers.iter().all(|rr| rr.ttl <= 30), "{:?}", reply.answers);
        assert_eq!(reply.questions[0].name.as_wire(), asked.questions[0].name.as_wire());
        assert_eq!(reply.edns.is_some(), asked.edns.is_some());
    }
    assert_eq!(allocations, 0, "{allocations} allocations in 4,000 cache hits");
}
