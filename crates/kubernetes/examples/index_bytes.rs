//! Where the index's bytes go: builds the index from a generated cluster (the fake API
//! server's generator, as JSON lines) through the same decoder the API source uses, and prints
//! the heap bytes live after each kind, per object and per endpoint. Counting allocator, no
//! sockets. `cargo run --release -p kdns-kubernetes --example index_bytes [SERVICES] [ENDPOINTS] [PODS]`

use kdns_kubernetes::decode::{Keep, Projected, RawObject};
use kdns_kubernetes::object::Kind;
use kdns_kubernetes::source::{Change, Quiet, Shared};
use kdns_kubernetes::Index;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);

#[allow(unsafe_code)]
// SAFETY: forwards to the system allocator, counting sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(n, Ordering::Relaxed);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

fn feed(shared: &Shared, kind: Kind, objects: impl Iterator<Item = String>) -> usize {
    shared.apply(Change::Init(kind));
    let mut n = 0;
    for json in objects {
        let raw: RawObject = serde_json::from_str(&json).expect("generated JSON");
        match raw.project(kind, Keep::default()) {
            Some(Projected::Live(o)) => {
                shared.apply(Change::Upsert(o));
            }
            _ => panic!("generated objects are live"),
        }
        n += 1;
    }
    shared.apply(Change::InitDone(kind));
    n
}

fn main() {
    let arg = |i: usize, d: usize| std::env::args().nth(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (services, endpoints, pods) = (arg(1, 10_000), arg(2, 100_000), arg(3, 0));
    let cluster = kdns_fakeapi::generate::Cluster { services, endpoints, pods, namespaces: 100 };
    let shared = Shared::new(Index::new(true, pods > 0), Arc::new(Quiet));
    let base = live();
    feed(&shared, Kind::Namespace, cluster.namespaces().map(|v| v.to_string()));
    let after_ns = live();
    let n_svc = feed(&shared, Kind::Service, cluster.services().map(|v| v.to_string()));
    let after_svc = live();
    let n_slices = feed(&shared, Kind::Slice, cluster.slices().map(|v| v.to_string()));
    let after_slices = live();
    let n_pods = feed(&shared, Kind::Pod, cluster.pods().map(|v| v.to_string()));
    let after_pods = live();
    let kib = |b: usize| b as f64 / 1024.0;
    println!("index heap for {services} services, {endpoints} endpoints, {pods} pods:");
    println!("  namespaces      {:>9.1} KiB", kib(after_ns - base));
    println!(
        "  services        {:>9.1} KiB  ({:.0} B per service)",
        kib(after_svc - after_ns),
        (after_svc - after_ns) as f64 / n_svc.max(1) as f64
    );
    println!(
        "  endpointslices  {:>9.1} KiB  ({} slices, {:.0} B per endpoint)",
        kib(after_slices - after_svc),
        n_slices,
        (after_slices - after_svc) as f64 / endpoints.max(1) as f64
    );
    println!(
        "  pods            {:>9.1} KiB  ({:.0} B per pod)",
        kib(after_pods - after_slices),
        (after_pods - after_slices) as f64 / n_pods.max(1) as f64
    );
    println!(
        "  total           {:>9.1} KiB  ({:.0} B per endpoint)",
        kib(after_pods - base),
        (after_pods - base) as f64 / endpoints.max(1) as f64
    );
    let by = shared.read().breakdown();
    for (what, bytes) in by {
        println!("    {what:<28} {:>9.1} KiB", kib(bytes));
    }
}
