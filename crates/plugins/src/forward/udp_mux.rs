//! Forward's UDP: per thread, a small pool of connected sockets per upstream, each shared by
//! concurrent queries matched by random ID and replaced by one on a fresh kernel-random port
//! after [`UDP_SOCKET_USES`] queries.
//!
//! Pools are per thread because a UDP worker runs its misses on its own runtime: a socket whose
//! reader task lives on the same thread delivers the reply without waking another thread.

use super::mismatched_replies;
use super::waiters::Waiters;
use kdns_server::batch::{send_connected, Inbox};
use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::io::unix::AsyncFd;

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
        // SAFETY: the AsyncFd owns the socket, so its descriptor stays open and is not reused
        // for as long as it is registered.
        #[allow(unsafe_code)]
        let registered = unsafe { AsyncFd::register(std_sock) }?;
        // The replaced socket's reader ends once its last query is answered.
        let mux = UdpMux::start(registered, label.to_string());
        *slot = Some(mux.clone());
        Ok((mux, false))
    })
}

/// One connected UDP socket to an upstream shared by concurrent queries: a reader task hands
/// each datagram to the query waiting for its ID (the query validates it). The reader ends once
/// it holds the last reference: the pool has replaced the socket and no query waits on it.
pub struct UdpMux {
    sock: AsyncFd<std::net::UdpSocket>,
    pub(super) waiters: Waiters<io::Result<Vec<u8>>>,
    uses: AtomicU32,
    pub(super) local: Option<SocketAddr>,
    /// Cleared when the reader task ends or is dropped with its runtime (a thread that ran
    /// more than one runtime must not reuse a socket nobody reads).
    reading: AtomicBool,
}

/// Upstream replies one reader takes in with one `recvmmsg`.
const UDP_READ_BATCH: usize = 16;

thread_local! {
    /// Upstream UDP replies are read here, in buffers larger than any datagram, so a reply
    /// bigger than the client may take is seen whole (and answered with TC). Only the pages a
    /// reply touches become resident, and the readers of a thread take turns with it.
    static REPLY_INBOX: RefCell<Inbox> = RefCell::new(Inbox::new(UDP_READ_BATCH, 65536));
}

/// An upstream query waiting for the end of its worker's turn: its socket, bytes and ID.
type Queued = (Arc<UdpMux>, Vec<u8>, u16);

thread_local! {
    /// Upstream queries of this worker's turn, in the order they were asked.
    static QUEUED: RefCell<Vec<Queued>> = const { RefCell::new(Vec::new()) };
}

/// Sends the turn's queued upstream queries: one `sendmmsg` per socket. A datagram the kernel
/// refuses fails its query's wait with the error.
pub(super) fn send_queued() {
    QUEUED.with_borrow_mut(|queued| {
        // Queries of a turn rotate through the pool's sockets: group them by socket (the order
        // between sockets does not matter, within one it is kept).
        queued.sort_by_key(|(mux, _, _)| Arc::as_ptr(mux) as usize);
        for run in queued.chunk_by(|a, b| Arc::ptr_eq(&a.0, &b.0)) {
            let mux = &run[0].0;
            send_connected(
                mux.sock.as_raw_fd(),
                run,
                |(_, wire, _)| wire,
                |(_, _, id), e| {
                    mux.waiters.deliver(*id, Err(e));
                },
            );
        }
        queued.clear();
    });
}

/// How often an idle UDP reader looks whether its socket is still in use.
const UDP_READER_TICK: Duration = Duration::from_secs(1);

impl UdpMux {
    fn start(sock: AsyncFd<std::net::UdpSocket>, label: String) -> Arc<UdpMux> {
        let local = sock.get_ref().local_addr().ok();
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

    /// Sends one query datagram with `id` (the socket is connected to the upstream). On a UDP
    /// worker the datagram joins the worker's turn and leaves with the others for the same
    /// socket in one `sendmmsg` when the turn ends; a failure then ends the query's wait with
    /// the error.
    pub(super) async fn send(self: &Arc<Self>, wire: Vec<u8>, id: u16) -> io::Result<()> {
        if kdns_server::waiting::polled_by_udp_worker() {
            QUEUED.with_borrow_mut(|q| q.push((self.clone(), wire, id)));
            return Ok(());
        }
        self.send_now(&wire).await
    }

    async fn send_now(&self, wire: &[u8]) -> io::Result<()> {
        loop {
            match self.sock.get_ref().send(wire) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.sock.writable().await?.clear_ready(),
                r => return r.map(|_| ()),
            }
        }
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
            let mut ready = tokio::select! {
                biased;
                r = self.sock.ready(interest) => match r {
                    Ok(g) => g,
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
            // Everything queued, a batch per system call, into this thread's buffers: a reader
            // holds none of its own, so the sockets replaced under load cost no memory. A read
            // that returns less than a batch emptied the queue: readiness is cleared without
            // asking the kernel again (a datagram arriving after it raises a new edge).
            loop {
                let got = REPLY_INBOX.with_borrow_mut(|inbox| {
                    let n = inbox.recv(self.sock.get_ref(), libc::MSG_DONTWAIT)?;
                    for i in 0..n {
                        let (Some(bytes), _) = inbox.get(i) else { continue };
                        // From this thread's reply buffers: the reply usually goes out as these
                        // bytes and the buffer comes back once it is sent.
                        let mut reply = kdns_server::plugin::wire_buffer(bytes.len());
                        reply.extend_from_slice(bytes);
                        let id = (reply.len() >= 2).then(|| u16::from_be_bytes([reply[0], reply[1]]));
                        if !id.is_some_and(|id| self.waiters.deliver(id, Ok(reply))) {
                            // Nobody asked with this ID (spoofed, garbage, or late after a timeout).
                            mismatched_replies().with(&[&label]).inc();
                        }
                    }
                    Ok::<usize, io::Error>(n)
                });
                match got {
                    Ok(n) if n == UDP_READ_BATCH => continue,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    // ICMP port unreachable and the like concern the upstream, so every query
                    // waiting on this socket fails now (as each would on a socket of its own).
                    Err(e) => self.waiters.fail_all(|| Err(io::Error::new(e.kind(), e.to_string()))),
                }
                ready.clear_ready();
                break;
            }
        }
    }
}
