//! DNS listeners: one SO_REUSEPORT UDP socket per worker and one TCP listener per address.
//!
//! Each UDP socket has its own OS thread running a current-thread tokio runtime: when the
//! socket is readable it reads a batch with `recvmmsg`, answers what the chain answers
//! synchronously (cache hits, kubernetes, hosts, …) straight from that loop into a batch of
//! replies sent with one `sendmmsg`, and keeps waiting work (a forwarded miss) in a slab of its
//! own ([`crate::waiting`]) that the loop polls when a query is woken — no task per query — and
//! whose replies join the next batch. A miss therefore never changes threads (forward keeps its
//! upstream sockets per thread, their readers on this runtime), and a hit never touches a task,
//! a lock or the allocator. Work that must outlive the worker goes to the main runtime
//! ([`crate::background`]). The zone table is read through a cell whose generation the worker
//! checks once per batch, so a reload swaps the table without touching the sockets.

use crate::batch::{Inbox, Outbox};
use crate::config::{ListenerKey, ZoneTable};
use crate::handler::{handle, Outcome};
use crate::plugin::Proto;
use crate::waiting::Waiting;
use kdns_wire::Message;
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// TCP timeouts CoreDNS uses by default.
pub const TCP_READ_TIMEOUT: Duration = Duration::from_secs(3);
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
const TCP_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Queries one TCP connection may have waiting on upstreams at once (pipelining, RFC 7766).
const TCP_MAX_PENDING: usize = 128;
/// Largest UDP query read. Queries are small (a question and an OPT record; CoreDNS reads at
/// most 512 bytes by default), so 4 KiB leaves room for any EDNS option a client sends; larger
/// datagrams are dropped, never cut and misread.
const UDP_QUERY_MAX: usize = 4096;
/// Datagrams read (and replies sent) per system call when a worker is busy.
const UDP_BATCH: usize = 32;
/// How often a UDP worker blocked in the kernel wakes to look at its stop and drain flags.
const UDP_IDLE_WAKE: Duration = Duration::from_millis(100);

/// The current zone table of a listener; replaced whole on reload. Readers on the hot path
/// keep their own `Arc` and compare the generation, so they take the lock only after a reload.
#[derive(Clone)]
pub struct TableCell(Arc<TableSlot>);

struct TableSlot {
    table: RwLock<Arc<ZoneTable>>,
    generation: AtomicU64,
}

/// Every live listener's table, for a query a plugin asks of the whole server again
/// ([`crate::plugin::Rest::run_routed`], CoreDNS's "upstream" lookups go through the server too).
static TABLES: std::sync::Mutex<Vec<(ListenerKey, std::sync::Weak<TableSlot>)>> = std::sync::Mutex::new(Vec::new());

/// The current table of the listener a query arrived on (`local`: the address it was sent to).
pub(crate) fn table_for(local: std::net::SocketAddr) -> Option<Arc<ZoneTable>> {
    let mut tables = TABLES.lock().unwrap_or_else(|e| e.into_inner());
    tables.retain(|(_, slot)| slot.strong_count() > 0);
    let matching = |exact: bool| {
        tables.iter().find(|(key, _)| {
            key.port == local.port() && if exact { key.ip == Some(local.ip()) } else { key.ip.is_none() }
        })
    };
    let (_, slot) = matching(true).or_else(|| matching(false))?;
    let slot = slot.upgrade()?;
    let table = slot.table.read().unwrap_or_else(|e| e.into_inner()).clone();
    Some(table)
}

impl TableCell {
    pub fn new(t: Arc<ZoneTable>) -> TableCell {
        TableCell(Arc::new(TableSlot { table: RwLock::new(t), generation: AtomicU64::new(0) }))
    }
    pub fn load(&self) -> Arc<ZoneTable> {
        self.0.table.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
    pub fn store(&self, t: Arc<ZoneTable>) {
        *self.0.table.write().unwrap_or_else(|e| e.into_inner()) = t;
        self.0.generation.fetch_add(1, Ordering::Release);
    }
    fn generation(&self) -> u64 {
        self.0.generation.load(Ordering::Acquire)
    }
}

/// A worker's copy of the table, refreshed when the cell's generation moves.
struct CachedTable {
    cell: TableCell,
    generation: u64,
    table: Arc<ZoneTable>,
}

impl CachedTable {
    fn new(cell: TableCell) -> CachedTable {
        let generation = cell.generation();
        let table = cell.load();
        CachedTable { cell, generation, table }
    }
    fn current(&mut self) -> &ZoneTable {
        let g = self.cell.generation();
        if g != self.generation {
            self.generation = g;
            self.table = self.cell.load();
        }
        &self.table
    }
}

/// Queries being answered right now (for graceful stop).
#[derive(Clone, Default)]
pub struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(&self) -> InFlightGuard {
        self.0.fetch_add(1, Ordering::AcqRel);
        InFlightGuard(self.0.clone())
    }
    pub fn count(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

struct InFlightGuard(Arc<AtomicUsize>);
impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A bound listener: its UDP worker threads, its TCP task and its table cell.
pub struct Listener {
    pub table: TableCell,
    tasks: Vec<JoinHandle<()>>,
    udp: Vec<(Arc<std::net::UdpSocket>, std::thread::JoinHandle<()>)>,
    /// Set by [`Listener::stop`]; the UDP workers look at it between batches.
    stop: Arc<AtomicBool>,
    /// True once [`Listener::drain`] ran; the TCP task and the UDP workers watch it.
    drain: tokio::sync::watch::Sender<bool>,
}

impl Listener {
    /// Stops at once: the TCP task is aborted and each UDP worker is woken by shutting its
    /// socket down, so it leaves the SO_REUSEPORT group now rather than at its next idle wake.
    pub fn stop(&self) {
        for t in &self.tasks {
            t.abort();
        }
        self.stop.store(true, Ordering::Release);
        for (sock, _) in &self.udp {
            // A shutdown UDP socket wakes its blocked reader with an empty read.
            let _ = socket2::SockRef::from(&**sock).shutdown(std::net::Shutdown::Both);
        }
    }

    /// Stops taking new queries without losing queued ones: the TCP listener closes, and each
    /// UDP socket is connected to a sink address, which takes it out of its SO_REUSEPORT group
    /// (the kernel hands new datagrams to the group's other sockets, e.g. a successor
    /// process's) while the datagrams already queued on it are still read and answered. The
    /// tasks end when their queues are empty; in-flight answers still go out.
    pub fn drain(&self) {
        for (sock, _) in &self.udp {
            let bound = sock.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
            if let Err(e) = socket2::SockRef::from(&**sock).connect(&drain_sink(bound).into()) {
                crate::debug!("udp drain: {e}");
            }
        }
        let _ = self.drain.send(true);
    }

    /// True when every socket task and worker has finished (after [`Listener::drain`]).
    pub fn drained(&self) -> bool {
        self.tasks.iter().all(|t| t.is_finished()) && self.udp.iter().all(|(_, t)| t.is_finished())
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop();
    }
}

fn bind_addr(key: &ListenerKey, v6: bool) -> SocketAddr {
    match key.ip {
        Some(ip) => SocketAddr::new(ip, key.port),
        None if v6 => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), key.port),
        None => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), key.port),
    }
}

fn socket(addr: SocketAddr, ty: Type, dual: bool) -> io::Result<Socket> {
    let domain = if addr.is_ipv4() { Domain::IPV4 } else { Domain::IPV6 };
    let proto = if ty == Type::DGRAM { Protocol::UDP } else { Protocol::TCP };
    let s = Socket::new(domain, ty, Some(proto))?;
    if addr.is_ipv6() {
        s.set_only_v6(!dual)?;
    }
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    if ty == Type::DGRAM {
        let _ = s.set_recv_buffer_size(4 << 20);
        let _ = s.set_send_buffer_size(4 << 20);
        // A worker with nothing waiting blocks in recvmmsg and wakes this often to see its
        // flags; with queries waiting it reads with MSG_DONTWAIT when the socket is readable.
        s.set_nonblocking(false)?;
        s.set_read_timeout(Some(UDP_IDLE_WAKE))?;
    }
    s.bind(&addr.into())?;
    Ok(s)
}

/// Binds UDP sockets (one per worker, the first one fixing the port when `:0` is asked for) and
/// the TCP listener. A wildcard key binds `[::]` dual-stack, falling back to `0.0.0.0`.
fn bind_all(key: &ListenerKey, workers: usize) -> io::Result<(Vec<std::net::UdpSocket>, std::net::TcpListener)> {
    let mut last_err = None;
    for v6 in [true, false] {
        if key.ip.is_some() && !v6 {
            break;
        }
        let addr = bind_addr(key, v6);
        let dual = key.ip.is_none();
        let attempt = (|| -> io::Result<_> {
            let first = socket(addr, Type::DGRAM, dual)?;
            let port = first.local_addr()?.as_socket().map_or(addr.port(), |a| a.port());
            let addr = SocketAddr::new(addr.ip(), port);
            let mut udp = vec![std::net::UdpSocket::from(first)];
            for _ in 1..workers {
                udp.push(socket(addr, Type::DGRAM, dual)?.into());
            }
            let tcp = socket(addr, Type::STREAM, dual)?;
            tcp.listen(1024)?;
            Ok((udp, tcp.into()))
        })();
        match attempt {
            Ok(v) => return Ok(v),
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("no address to bind")))
}

/// Binds and starts serving `table` on `key`. Must run inside the tokio runtime.
pub fn start(key: ListenerKey, table: Arc<ZoneTable>, workers: usize, inflight: InFlight) -> io::Result<Listener> {
    let (udp, tcp) = bind_all(&key, workers.max(1))?;
    let cell = TableCell::new(table);
    TABLES.lock().unwrap_or_else(|e| e.into_inner()).push((key, Arc::downgrade(&cell.0)));
    let (drain, drain_rx) = tokio::sync::watch::channel(false);
    let stop = Arc::new(AtomicBool::new(false));
    let runtime = tokio::runtime::Handle::current();
    let mut workers = Vec::new();
    for (i, s) in udp.into_iter().enumerate() {
        let sock = Arc::new(s);
        let (sock2, cell2, inflight2, stop2, rt, drain2) =
            (sock.clone(), cell.clone(), inflight.clone(), stop.clone(), runtime.clone(), drain_rx.clone());
        let thread = std::thread::Builder::new()
            .name(format!("kdns-udp-{}-{i}", key.port))
            .spawn(move || udp_worker(sock2, cell2, inflight2, stop2, rt, drain2))?;
        workers.push((sock, thread));
    }
    let tcp = TcpListener::from_std(tcp)?;
    let tasks = vec![tokio::spawn(tcp_accept(tcp, cell.clone(), inflight, drain_rx))];
    Ok(Listener { table: cell, tasks, udp: workers, stop, drain })
}

fn unmap(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => a,
        },
        a => a,
    }
}

/// Where a draining UDP socket is connected: a port nothing answers on, at the socket's own
/// address (loopback for wildcard sockets). Connecting sends nothing.
fn drain_sink(local: SocketAddr) -> SocketAddr {
    let ip = match local.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        ip if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, 9)
}

/// One UDP worker thread: a current-thread runtime of its own (so a forwarded miss is sent,
/// answered and replied to on this thread, never handed to another), reading batches with
/// `recvmmsg`, answering what the chain answers synchronously, and polling waiting work itself. Ends on stop, or on drain once its queue is empty and its own waiting queries
/// are answered.
fn udp_worker(
    sock: Arc<std::net::UdpSocket>,
    cell: TableCell,
    inflight: InFlight,
    stop: Arc<AtomicBool>,
    main: tokio::runtime::Handle,
    drain: tokio::sync::watch::Receiver<bool>,
) {
    crate::background::set_main(main);
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            crate::error!("udp worker: cannot start its runtime: {e}");
            return;
        }
    };
    rt.block_on(udp_serve(sock, cell, inflight, stop, drain));
    // Dropping the runtime ends what is left on it: idle upstream socket readers.
}

/// Batches between forced yields to the runtime when none of the worker's queries wait, so
/// background work spawned here (socket readers ending, timers) still runs under steady load.
const UDP_YIELD_EVERY: u32 = 16;
/// The same while queries of this worker wait on the runtime (their upstream replies).
const UDP_YIELD_WAITING: u32 = 4;

async fn udp_serve(
    sock: Arc<std::net::UdpSocket>,
    cell: TableCell,
    inflight: InFlight,
    stop: Arc<AtomicBool>,
    mut drain: tokio::sync::watch::Receiver<bool>,
) {
    let local = unmap(sock.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0))));
    // SAFETY: the AsyncFd holds an Arc of the socket, so its descriptor stays open and is not
    // replaced for as long as it is registered.
    #[allow(unsafe_code)]
    let ready = match unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(sock.clone(), tokio::io::Interest::READABLE)
    } {
        Ok(r) => r,
        Err(e) => {
            crate::error!("udp worker: cannot watch its socket: {e}");
            return;
        }
    };
    // Queries waiting on an upstream, polled by this loop (no task per query); their replies
    // join the synchronous answers in the batch sent with one `sendmmsg` per turn.
    let mut waiting = Waiting::new();
    let fd = sock.as_raw_fd();
    let mut out = Outbox::new(UDP_BATCH);
    let mut inbox = Inbox::new(UDP_BATCH, UDP_QUERY_MAX);
    let mut table = CachedTable::new(cell);
    let mut scratch = Message::default();
    let mut batches = 0u32;
    // The last read returned fewer datagrams than a batch holds: the queue was empty then.
    let mut drained = false;
    loop {
        if stop.load(Ordering::Acquire) {
            return;
        }
        // Replies of the waiting queries woken since the last turn.
        waiting.poll_ready(&mut out, fd);
        end_turn(&mut out, fd);
        // Nothing of ours waiting: block in the kernel as a plain receive loop does, one system
        // call per batch. Otherwise read what is there and let the runtime run (upstream
        // readers, timers) until the socket is readable or a waiting query is woken.
        let idle = waiting.len() == 0;
        if !idle && drained {
            // The last read took everything queued: wait for the socket's next datagram (its
            // readiness edge) or a woken query without asking the kernel first.
            drained = !wait_for_work(&ready, &waiting, &mut drain).await;
            continue;
        }
        let flags = if idle { libc::MSG_WAITFORONE } else { libc::MSG_DONTWAIT };
        let n = match inbox.recv(&*sock, flags) {
            Ok(0) => continue,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                if idle && *drain.borrow() {
                    return;
                }
                if !idle {
                    // Draining or not: the waiting queries finish and their replies go out.
                    drained = !wait_for_work(&ready, &waiting, &mut drain).await;
                }
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // ICMP errors from earlier sends surface here on Linux; they are not fatal.
                crate::debug!("udp receive error: {e}");
                continue;
            }
        };
        drained = n < UDP_BATCH;
        let table = table.current();
        for i in 0..n {
            let (Some(packet), Some(peer)) = inbox.get(i) else { continue };
            let client = unmap(peer);
            match handle(packet, client, local, Proto::Udp, table, &mut scratch, out.next_buf()) {
                Outcome::Reply => out.commit(peer),
                Outcome::Drop => {}
                Outcome::Pending(p) => {
                    if waiting.insert(p, peer, inflight.enter(), out.next_buf()) {
                        out.commit(peer);
                    }
                }
            }
        }
        end_turn(&mut out, fd);
        batches = batches.wrapping_add(1);
        // The runtime runs (upstream readers, timers) whenever the socket runs dry (the wait
        // above); while queries keep coming it gets a turn every few batches, sooner when
        // queries of ours wait on it.
        let every = if waiting.len() > 0 { UDP_YIELD_WAITING } else { UDP_YIELD_EVERY };
        if batches.is_multiple_of(every) {
            tokio::task::yield_now().await;
        }
    }
}

/// Ends a turn of the worker loop: what the polled queries queued (their upstream queries)
/// goes out, then the turn's replies in one `sendmmsg`.
fn end_turn(out: &mut Outbox, fd: std::os::fd::RawFd) {
    crate::waiting::turn_end();
    out.flush(fd);
}

/// Lets the runtime run until the worker's socket turns readable (true), a waiting query is
/// woken, or a drain begins. Readiness is edge-triggered and cleared here, before the read
/// that follows, so a datagram arriving after that read raises it again.
async fn wait_for_work(
    ready: &tokio::io::unix::AsyncFd<Arc<std::net::UdpSocket>>,
    waiting: &Waiting<InFlightGuard>,
    drain: &mut tokio::sync::watch::Receiver<bool>,
) -> bool {
    tokio::select! {
        r = ready.readable() => {
            if let Ok(mut g) = r {
                g.clear_ready();
            }
            true
        }
        _ = waiting.ready_list().notify.notified() => false,
        _ = drain.changed() => false,
    }
}

/// TCP connections open in this process, and how many may be: half the descriptor limit, so
/// a connection flood never takes the descriptors UDP replies, upstream exchanges and the admin
/// listeners need. Connections beyond it are accepted and closed at once (so the kernel's
/// backlog does not fill and stall accepts) and counted.
static TCP_OPEN: AtomicUsize = AtomicUsize::new(0);

#[allow(unsafe_code)]
fn tcp_limit() -> usize {
    static LIMIT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(|| {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit only writes the struct we pass.
        let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 { lim.rlim_cur } else { 1024 };
        (soft.min(1 << 20) as usize / 2).max(16)
    })
}

crate::metric_family!(
    tcp_shed,
    "kdns_tcp_connections_shed_total",
    "TCP connections closed at once because the connection limit (half of RLIMIT_NOFILE) was reached (kdns addition).",
    crate::metrics::Kind::Counter,
    []
);

struct TcpSlot;
impl Drop for TcpSlot {
    fn drop(&mut self) {
        TCP_OPEN.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn tcp_accept(
    listener: TcpListener,
    cell: TableCell,
    inflight: InFlight,
    mut drain: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = drain.changed() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                if TCP_OPEN.fetch_add(1, Ordering::AcqRel) >= tcp_limit() {
                    TCP_OPEN.fetch_sub(1, Ordering::AcqRel);
                    drop(stream);
                    let shed = tcp_shed();
                    if shed.with(&[]).get().is_multiple_of(1000) {
                        crate::warning!(
                            "{} TCP connections open (limit {}, half of RLIMIT_NOFILE): closing new ones",
                            tcp_limit(),
                            tcp_limit()
                        );
                    }
                    shed.with(&[]).inc();
                    continue;
                }
                let slot = TcpSlot;
                let _ = stream.set_nodelay(true);
                let (cell, inflight) = (cell.clone(), inflight.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    tcp_conn(stream, unmap(peer), cell, inflight).await
                });
            }
            Err(e) => {
                crate::debug!("tcp accept error: {e}");
                // Out of file descriptors and similar: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// One TCP connection: length-prefixed queries, pipelined. Synchronous answers are queued in
/// order; pending ones are written when they complete (RFC 7766 allows any order).
async fn tcp_conn(stream: TcpStream, peer: SocketAddr, cell: TableCell, inflight: InFlight) {
    let local = stream.local_addr().map(unmap).unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            match tokio::time::timeout(TCP_WRITE_TIMEOUT, wr.write_all(&frame)).await {
                Ok(Ok(())) => {}
                _ => break,
            }
        }
        let _ = wr.shutdown().await;
    });
    let pending = Arc::new(tokio::sync::Semaphore::new(TCP_MAX_PENDING));
    let mut first = true;
    let mut buf = Vec::with_capacity(512);
    let mut out = Vec::with_capacity(512);
    let mut scratch = Message::default();
    loop {
        let timeout = if first { TCP_READ_TIMEOUT } else { TCP_IDLE_TIMEOUT };
        first = false;
        let mut len = [0u8; 2];
        match tokio::time::timeout(timeout, rd.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            _ => break,
        }
        let n = u16::from_be_bytes(len) as usize;
        buf.resize(n, 0);
        match tokio::time::timeout(TCP_READ_TIMEOUT, rd.read_exact(&mut buf)).await {
            Ok(Ok(_)) => {}
            _ => break,
        }
        let guard = inflight.enter();
        let table = cell.load();
        match handle(&buf, peer, local, Proto::Tcp, &table, &mut scratch, &mut out) {
            Outcome::Reply => {
                if tx.send(frame(&out)).await.is_err() {
                    break;
                }
            }
            Outcome::Drop => {}
            Outcome::Pending(p) => {
                // Bound what one connection may have in flight: stop reading until a slot frees.
                let Ok(permit) = pending.clone().acquire_owned().await else { break };
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _guard = guard;
                    let _permit = permit;
                    let bytes = p.finish().await;
                    let _ = tx.send(frame(&bytes)).await;
                });
                continue;
            }
        }
        drop(guard);
    }
    drop(tx);
    let _ = writer.await;
}

fn frame(msg: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(msg.len() + 2);
    f.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    f.extend_from_slice(msg);
    f
}
