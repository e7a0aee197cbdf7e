//! Forward's UDP: per thread, a small pool of connected sockets per upstream, each shared by
//! concurrent queries matched by random ID and replaced by one on a fresh kernel-random port
//! after [`UDP_SOCKET_USES`] queries.
//!
//! Pools are per thread because a UDP worker runs its misses on its own runtime: a socket whose
//! reader task lives on the same thread delivers the reply without waking another thread.

use super::mismatched_replies;
use super::waiters::Waiters;
use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::net::UdpSocket;

/// Queries one pooled UDP socket carries before a socket on a new random port replaces it: the
/// cost of a socket is shared by many queries, while a port an off-path attacker may have found
/// stays useful to them only briefly (CoreDNS keeps its UDP sockets until they idle out).
pub const UDP_SOCKET_USES: u32 = 100;
/// Pooled UDP sockets per upstream and thread, used in turn.
const UDP_POOL: usize = 4;

/// One thread's UDP sockets to one upstream.
struct LocalPool {
    /// The upstream's identity token: compared by address (a live `Weak` keeps the address from
    /// being reused), and dead once the upstream is dropped (a reload replaced it).
    owner: Weak<()>,
    sockets: [Option<Arc<UdpMux>>; UDP_POOL],
    next: usize,
}

thread_local! {
    static UDP_POOLS: RefCell<Vec<LocalPool>> = const { RefCell::new(Vec::new()) };
}

/// A socket of this thread's pool for the upstream `token` stands for, with uses left, or a new
/// one connected to `addr` in its slot. Returns it and whether it was reused.
pub(super) fn pooled(token: &Arc<()>, addr: SocketAddr, label: &str) -> io::Result<(Arc<UdpMux>, bool)> {
    UDP_POOLS.with_borrow_mut(|pools| {
        let me = Arc::as_ptr(token);
        let i = match pools.iter().position(|p| Weak::as_ptr(&p.owner) == me) {
            Some(i) => i,
            None => {
                // Pools of upstreams a reload dropped go now; their readers end once idle.
                pools.retain(|p| p.owner.strong_count() > 0);
                pools.push(LocalPool { owner: Arc::downgrade(token), sockets: Default::default(), next: 0 });
                pools.len() - 1
            }
        };
        let pool = &mut pools[i];
        let slot = &mut pool.sockets[pool.next % UDP_POOL];
        pool.next = pool.next.wrapping_add(1);
        if let Some(m) = slot.as_ref() {
            if m.reading.load(Ordering::Acquire) && m.uses.fetch_add(1, Ordering::Relaxed) < UDP_SOCKET_USES {
                return Ok((m.clone(), true));
            }
        }
        let bind: SocketAddr =
            if addr.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { (std::net::Ipv6Addr::UNSPECIFIED, 0).into() };
        let std_sock = std::net::UdpSocket::bind(bind)?;
        std_sock.connect(addr)?;
        std_sock.set_nonblocking(true)?;
        // The replaced socket's reader ends once its last query is answered.
        let mux = UdpMux::start(UdpSocket::from_std(std_sock)?, label.to_string());
        *slot = Some(mux.clone());
        Ok((mux, false))
    })
}

/// One connected UDP socket to an upstream shared by concurrent queries: a reader task hands
/// each datagram to the query waiting for its ID (the query validates it). The reader ends once
/// it holds the last reference: the pool has replaced the socket and no query waits on it.
pub struct UdpMux {
    pub(super) sock: UdpSocket,
    pub(super) waiters: Waiters<io::Result<Vec<u8>>>,
    uses: AtomicU32,
    pub(super) local: Option<SocketAddr>,
    /// Cleared when the reader task ends or is dropped with its runtime (a thread that ran
    /// more than one runtime must not reuse a socket nobody reads).
    reading: AtomicBool,
}

thread_local! {
    /// Upstream UDP replies are read here, one byte more than a DNS message can be, so an
    /// oversized reply is seen as such.
    static RECV_BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; 65536].into_boxed_slice());
}

/// How often an idle UDP reader looks whether its socket is still in use.
const UDP_READER_TICK: Duration = Duration::from_secs(1);

impl UdpMux {
    fn start(sock: UdpSocket, label: String) -> Arc<UdpMux> {
        let local = sock.local_addr().ok();
        let mux = Arc::new(UdpMux {
            sock,
            waiters: Waiters::default(),
            uses: AtomicU32::new(1),
            local,
            reading: AtomicBool::new(true),
        });
        tokio::spawn(mux.clone().read(label));
        mux
    }

    async fn read(self: Arc<Self>, label: String) {
        struct Reading<'a>(&'a UdpMux);
        impl Drop for Reading<'_> {
            fn drop(&mut self) {
                self.0.reading.store(false, Ordering::Release);
                // Nobody enforces deadlines any more: no query may wait on this socket forever.
                self.0.waiters.close_all();
            }
        }
        let _reading = Reading(&self);
        // The reader also ends waits whose deadline passed (no timer per query): it sleeps
        // until the earliest deadline or the next tick, and a query registered with a sooner
        // deadline wakes it.
        let sleep = tokio::time::sleep(UDP_READER_TICK);
        tokio::pin!(sleep);
        let mut sweep = true;
        while Arc::strong_count(&self) > 1 {
            if sweep {
                sweep = false;
                let now = tokio::time::Instant::now();
                let horizon = (now + UDP_READER_TICK).into_std();
                let until = std::future::poll_fn(|cx| {
                    std::task::Poll::Ready(self.waiters.expire(now.into_std(), horizon, cx.waker()))
                })
                .await;
                sleep.as_mut().reset(tokio::time::Instant::from_std(until));
            }
            // ERROR too: an ICMP error (port unreachable) makes the socket report only EPOLLERR.
            let interest = tokio::io::Interest::READABLE | tokio::io::Interest::ERROR;
            let ready = tokio::select! {
                biased;
                r = self.sock.ready(interest) => match r {
                    Ok(r) => r,
                    // The runtime is going away.
                    Err(_) => break,
                },
                _ = &mut sleep => {
                    sweep = true;
                    continue;
                }
                _ = std::future::poll_fn(|_| {
                    if self.waiters.reader_called() { std::task::Poll::Ready(()) } else { std::task::Poll::Pending }
                }) => {
                    sweep = true;
                    continue;
                }
            };
            // One interest at a time: tokio's try_io only tries (and clears) a single one.
            let which = if ready.is_error() { tokio::io::Interest::ERROR } else { tokio::io::Interest::READABLE };
            // Everything queued, into this thread's buffer: a reader holds no buffer of its own,
            // so the sockets replaced under load (hundreds a second, each read until its last
            // reply or the next tick) cost no memory.
            loop {
                let got = RECV_BUF.with_borrow_mut(|buf| {
                    self.sock.try_io(which, || {
                        use std::io::Read;
                        (&*socket2::SockRef::from(&self.sock)).read(buf).map(|n| {
                            // From this thread's reply buffers: the reply usually goes out as
                            // these bytes and the buffer comes back once it is sent.
                            let mut reply = kdns_server::plugin::wire_buffer(n);
                            reply.extend_from_slice(&buf[..n]);
                            reply
                        })
                    })
                });
                match got {
                    Ok(bytes) => {
                        let id = (bytes.len() >= 2).then(|| u16::from_be_bytes([bytes[0], bytes[1]]));
                        if !id.is_some_and(|id| self.waiters.deliver(id, Ok(bytes))) {
                            // Nobody asked with this ID (spoofed, garbage, or late after a timeout).
                            mismatched_replies().with(&[&label]).inc();
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    // ICMP port unreachable and the like concern the upstream, so every query
                    // waiting on this socket fails now (as each would on a socket of its own).
                    Err(e) => {
                        self.waiters.fail_all(|| Err(io::Error::new(e.kind(), e.to_string())));
                        break;
                    }
                }
            }
        }
    }
}
