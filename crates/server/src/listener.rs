//! DNS listeners: one SO_REUSEPORT UDP socket per worker thread and one TCP listener per
//! address. The zone table is read through an `ArcSwap`-like cell on every packet, so a reload
//! swaps the table without touching the sockets.

use crate::config::{ListenerKey, ZoneTable};
use crate::handler::{handle, Outcome};
use crate::plugin::Proto;
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// TCP timeouts CoreDNS uses by default.
pub const TCP_READ_TIMEOUT: Duration = Duration::from_secs(3);
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
const TCP_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Queries one TCP connection may have waiting on upstreams at once (pipelining, RFC 7766).
const TCP_MAX_PENDING: usize = 128;
const MAX_UDP_PAYLOAD: usize = 65535;

/// The current zone table of a listener; replaced whole on reload.
#[derive(Clone)]
pub struct TableCell(Arc<RwLock<Arc<ZoneTable>>>);

impl TableCell {
    pub fn new(t: Arc<ZoneTable>) -> TableCell {
        TableCell(Arc::new(RwLock::new(t)))
    }
    pub fn load(&self) -> Arc<ZoneTable> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
    pub fn store(&self, t: Arc<ZoneTable>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = t;
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

/// A bound listener: its sockets' tasks and its table cell.
pub struct Listener {
    pub table: TableCell,
    tasks: Vec<JoinHandle<()>>,
    drain: tokio::sync::watch::Sender<bool>,
}

impl Listener {
    pub fn stop(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }

    /// Stops taking new queries without losing queued ones: the TCP listener closes, and each
    /// UDP socket is connected to a sink address, which takes it out of its SO_REUSEPORT group
    /// (the kernel hands new datagrams to the group's other sockets, e.g. a successor
    /// process's) while the datagrams already queued on it are still read and answered. The
    /// tasks end when their queues are empty; in-flight answers still go out.
    pub fn drain(&self) {
        let _ = self.drain.send(true);
    }

    /// True when every socket task has finished (after [`Listener::drain`]).
    pub fn drained(&self) -> bool {
        self.tasks.iter().all(|t| t.is_finished())
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
    let (drain, drain_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for s in udp {
        let sock = Arc::new(UdpSocket::from_std(s)?);
        tasks.push(tokio::spawn(udp_loop(sock, cell.clone(), inflight.clone(), drain_rx.clone())));
    }
    let tcp = TcpListener::from_std(tcp)?;
    tasks.push(tokio::spawn(tcp_accept(tcp, cell.clone(), inflight, drain_rx)));
    Ok(Listener { table: cell, tasks, drain })
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

/// How long a draining socket waits for one more queued datagram before it is considered empty.
const DRAIN_IDLE: Duration = Duration::from_millis(50);

async fn udp_loop(
    sock: Arc<UdpSocket>,
    cell: TableCell,
    inflight: InFlight,
    mut drain: tokio::sync::watch::Receiver<bool>,
) {
    let bound = sock.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let local = unmap(bound);
    let mut buf = vec![0u8; MAX_UDP_PAYLOAD];
    let mut out = Vec::with_capacity(4096);
    let mut draining = false;
    loop {
        let received = if draining {
            match tokio::time::timeout(DRAIN_IDLE, sock.recv_from(&mut buf)).await {
                Ok(r) => r,
                Err(_) => return,
            }
        } else {
            tokio::select! {
                biased;
                r = sock.recv_from(&mut buf) => r,
                _ = drain.changed() => {
                    draining = true;
                    if let Err(e) = socket2::SockRef::from(&*sock).connect(&drain_sink(bound).into()) {
                        crate::debug!("udp drain: {e}");
                    }
                    continue;
                }
            }
        };
        let (len, peer) = match received {
            Ok(v) => v,
            Err(e) => {
                // ICMP errors from earlier sends surface here on Linux; they are not fatal.
                crate::debug!("udp receive error: {e}");
                continue;
            }
        };
        let guard = inflight.enter();
        let table = cell.load();
        match handle(&buf[..len], unmap(peer), local, Proto::Udp, &table, &mut out) {
            Outcome::Reply => {
                let _ = sock.send_to(&out, peer).await;
            }
            Outcome::Drop => {}
            Outcome::Pending(p) => {
                let sock = sock.clone();
                tokio::spawn(async move {
                    let _guard = guard;
                    let bytes = p.finish().await;
                    let _ = sock.send_to(&bytes, peer).await;
                });
                continue;
            }
        }
        drop(guard);
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
        match handle(&buf, peer, local, Proto::Tcp, &table, &mut out) {
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
