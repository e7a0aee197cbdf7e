//! One upstream: exchanges over UDP (per thread, a small pool of connected sockets shared by
//! concurrent queries and matched by random ID, each socket replaced by one on a fresh
//! kernel-random port after [`UDP_SOCKET_USES`] queries) and TCP (one pipelined connection
//! shared by every thread, reused within `expire`), reply validation (ID, QR, question), and
//! the health-check state.
//!
//! UDP pools are per thread because a UDP worker runs its misses on its own runtime: a socket
//! whose reader task lives on the same thread delivers the reply without waking another
//! thread. The shared TCP connection and the health prober run on the main runtime
//! ([`kdns_server::background`]), which outlives any one worker.

use kdns_server::metrics::Kind;
use kdns_server::plugin::Reply;
use kdns_wire::{check_message, class, flag, rtype, Header, Message, Question, HEADER_LEN};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};

kdns_server::metric_family!(pub request_duration, "coredns_proxy_request_duration_seconds", "Histogram of the time each request took.", Kind::Histogram(&kdns_server::metrics::TIME_BUCKETS), ["proxy_name", "to", "rcode"]);
kdns_server::metric_family!(pub healthcheck_failures, "coredns_proxy_healthcheck_failures_total", "Counter of the number of failed healthchecks.", Kind::Counter, ["proxy_name", "to"]);
kdns_server::metric_family!(pub conn_cache_hits, "coredns_proxy_conn_cache_hits_total", "Counter of connection cache hits per upstream and protocol.", Kind::Counter, ["proxy_name", "to", "proto"]);
kdns_server::metric_family!(pub conn_cache_misses, "coredns_proxy_conn_cache_misses_total", "Counter of connection cache misses per upstream and protocol.", Kind::Counter, ["proxy_name", "to", "proto"]);
kdns_server::metric_family!(pub healthcheck_broken, "coredns_forward_healthcheck_broken_total", "Counter of the number of complete failures of the healthchecks.", Kind::Counter, []);
// kdns addition (no CoreDNS equivalent): replies that failed validation (ID, QR, question) and
// were dropped — a spoofing or broken-upstream signal.
kdns_server::metric_family!(pub mismatched_replies, "kdns_forward_mismatched_replies_total", "Counter of upstream replies dropped because ID, QR bit or question did not match the query.", Kind::Counter, ["to"]);

kdns_server::metric_family!(pub max_concurrent_rejects, "coredns_forward_max_concurrent_rejects_total", "Counter of the number of queries rejected because the concurrent queries were at maximum.", Kind::Counter, []);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    pub fn as_str(&self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

/// Why an exchange failed, worded like Go's net errors so `errors` lines look familiar.
#[derive(Debug)]
pub struct ExchangeError {
    pub message: String,
}

impl std::fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

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

pub struct Upstream {
    pub addr: SocketAddr,
    /// `to` label: `127.0.0.1:53`.
    pub label: String,
    tls: Option<TlsTarget>,
    pub fails: AtomicU32,
    probing: AtomicBool,
    tcp: Mutex<Option<Arc<Mux>>>,
    dialing: tokio::sync::Mutex<()>,
    /// Identifies this upstream's per-thread UDP pools.
    token: Arc<()>,
}

impl Upstream {
    pub fn new(addr: SocketAddr) -> Upstream {
        Upstream::with_tls(addr, None)
    }

    /// An upstream reached over DNS-over-TLS (RFC 7858) when `tls` is set.
    pub fn with_tls(addr: SocketAddr, tls: Option<TlsTarget>) -> Upstream {
        Upstream {
            addr,
            tls,
            label: addr.to_string(),
            fails: AtomicU32::new(0),
            probing: AtomicBool::new(false),
            tcp: Mutex::new(None),
            dialing: tokio::sync::Mutex::new(()),
            token: Arc::new(()),
        }
    }

    /// Down when consecutive failed health checks exceed `max_fails` (0 disables).
    pub fn is_down(&self, max_fails: u32) -> bool {
        max_fails != 0 && self.fails.load(Ordering::Relaxed) > max_fails
    }

    /// Sends `query` (its ID replaced by a fresh random one) and returns the checked reply
    /// (see [`accept`]) with the original ID restored.
    pub async fn exchange(
        &self,
        query: &Message,
        transport: Transport,
        read_timeout: Duration,
        expire: Duration,
    ) -> Result<Reply, ExchangeError> {
        // Encoded once; each transport writes its own ID into the first two bytes.
        let wire = query.to_vec();
        // tls:// upstreams are always TCP-TLS, whatever the client or force_tcp/prefer_udp say.
        let transport = if self.tls.is_some() { Transport::Tcp } else { transport };
        match transport {
            Transport::Udp => self.exchange_udp(wire, query, read_timeout).await,
            Transport::Tcp => self.exchange_tcp(wire, query, read_timeout, expire).await,
        }
    }

    /// A socket of this thread's pool with uses left, or a new one in its slot. Returns it and
    /// whether it was reused.
    fn udp_socket(&self) -> io::Result<(Arc<UdpMux>, bool)> {
        UDP_POOLS.with_borrow_mut(|pools| {
            let me = Arc::as_ptr(&self.token);
            let i = match pools.iter().position(|p| Weak::as_ptr(&p.owner) == me) {
                Some(i) => i,
                None => {
                    // Pools of upstreams a reload dropped go now; their readers end once idle.
                    pools.retain(|p| p.owner.strong_count() > 0);
                    pools.push(LocalPool { owner: Arc::downgrade(&self.token), sockets: Default::default(), next: 0 });
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
            let bind: SocketAddr = if self.addr.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let std_sock = std::net::UdpSocket::bind(bind)?;
            std_sock.connect(self.addr)?;
            std_sock.set_nonblocking(true)?;
            // The replaced socket's reader ends once its last query is answered.
            let mux = UdpMux::start(UdpSocket::from_std(std_sock)?, self.label.clone());
            *slot = Some(mux.clone());
            Ok((mux, false))
        })
    }

    async fn exchange_udp(&self, mut wire: Vec<u8>, q: &Message, timeout: Duration) -> Result<Reply, ExchangeError> {
        let (mux, reused) = self.udp_socket().map_err(|e| self.err("dial", Transport::Udp, None, e))?;
        let which = if reused { conn_cache_hits() } else { conn_cache_misses() };
        which.with(&["forward", &self.label, "udp"]).inc();
        let local = mux.local;
        let mut waiting = mux.waiters.register();
        let id = waiting.id;
        wire[0..2].copy_from_slice(&id.to_be_bytes());
        mux.sock.send(&wire).await.map_err(|e| self.err("write", Transport::Udp, local, e))?;
        let deadline = tokio::time::Instant::now() + timeout;
        // Room for what we asked for (the client's EDNS size, at least 512): an upstream that
        // sends more than allowed is detected instead of silently cut (CoreDNS turns that into
        // a TC reply too).
        let size = q.edns.as_ref().map_or(512, |e| e.udp_size.max(512) as usize);
        loop {
            let bytes = match tokio::time::timeout_at(deadline, &mut waiting.rx).await {
                Ok(Ok(Ok(b))) => b,
                Ok(Ok(Err(e))) => return Err(self.err("read", Transport::Udp, local, e)),
                Ok(Err(_)) => {
                    return Err(self.err(
                        "read",
                        Transport::Udp,
                        local,
                        io::Error::from(io::ErrorKind::ConnectionReset),
                    ))
                }
                Err(_) => return Err(self.timeout("read", Transport::Udp, local)),
            };
            if bytes.len() > size {
                let mut tc = Message::reply_to(q);
                tc.set(flag::TC, true);
                return Ok(Reply::message(tc, "forward"));
            }
            // Out-of-order or spoofed replies are skipped (and counted); keep waiting for ours.
            match accept(bytes, id, q) {
                Ok(reply) => return Ok(reply),
                Err(rejected) => {
                    mismatched_replies().with(&[&self.label]).inc();
                    if rejected == Rejected::WrongQuestion {
                        return Ok(wrong_reply(q));
                    }
                }
            }
            waiting.rearm();
        }
    }

    /// The live multiplexed connection, or a new one. Returns it and whether it was reused.
    async fn connection(&self, timeout: Duration, expire: Duration) -> Result<(Arc<Mux>, bool), ExchangeError> {
        if let Some(m) = self.live_connection(expire) {
            return Ok((m, true));
        }
        // One dial at a time: concurrent queries wait for it and then share the connection.
        let _dialing = self.dialing.lock().await;
        if let Some(m) = self.live_connection(expire) {
            return Ok((m, true));
        }
        conn_cache_misses().with(&["forward", &self.label, "tcp"]).inc();
        // Dialled on the main runtime: the connection is shared by every thread and must not
        // end with the UDP worker whose query happened to open it. Boxed: the dial (TLS
        // handshake included) is a few KiB of state every exchange future would otherwise carry
        // and move, for the rare query that opens a connection.
        let addr = self.addr;
        let mux = kdns_server::background::run(Box::pin(dial(addr, self.tls.clone(), timeout, expire)))
            .await
            .unwrap_or_else(|| Err(ExchangeError { message: format!("dial tcp {addr}: shutting down") }))?;
        *self.tcp.lock().unwrap_or_else(|e| e.into_inner()) = Some(mux.clone());
        Ok((mux, false))
    }

    fn live_connection(&self, expire: Duration) -> Option<Arc<Mux>> {
        let cur = self.tcp.lock().unwrap_or_else(|e| e.into_inner());
        let m = cur.as_ref().filter(|m| !m.closed.load(Ordering::Acquire) && m.idle_for() < expire)?;
        conn_cache_hits().with(&["forward", &self.label, "tcp"]).inc();
        Some(m.clone())
    }

    /// TCP exchange over the shared connection: queries are pipelined and matched by ID.
    async fn exchange_tcp(
        &self,
        wire: Vec<u8>,
        q: &Message,
        timeout: Duration,
        expire: Duration,
    ) -> Result<Reply, ExchangeError> {
        let (mux, reused) = self.connection(timeout, expire).await?;
        let local = mux.local;
        let mut waiting = mux.waiters.register();
        let id = waiting.id;
        let mut frame = Vec::with_capacity(wire.len() + 2);
        frame.extend_from_slice(&(wire.len() as u16).to_be_bytes());
        frame.extend_from_slice(&wire);
        frame[2..4].copy_from_slice(&id.to_be_bytes());
        mux.touch();
        if mux.tx.send(frame).await.is_err() {
            return Err(ExchangeError { message: format!("cached connection to {} was closed", self.addr) });
        }
        match tokio::time::timeout(timeout, &mut waiting.rx).await {
            Ok(Ok(reply)) => {
                let accepted = accept(reply, id, q);
                if accepted.is_err() {
                    mismatched_replies().with(&[&self.label]).inc();
                }
                match accepted {
                    Ok(reply) => Ok(reply),
                    Err(Rejected::WrongQuestion) => Ok(wrong_reply(q)),
                    Err(Rejected::Foreign) => Err(ExchangeError {
                        message: format!("read tcp {}: reply does not match the question", self.addr),
                    }),
                }
            }
            Ok(Err(_)) if reused => {
                Err(ExchangeError { message: format!("cached connection to {} was closed", self.addr) })
            }
            Ok(Err(_)) => Err(self.err("read", Transport::Tcp, local, io::Error::from(io::ErrorKind::ConnectionReset))),
            Err(_) => Err(self.timeout("read", Transport::Tcp, local)),
        }
    }

    fn err(&self, op: &str, t: Transport, local: Option<SocketAddr>, e: io::Error) -> ExchangeError {
        io_error(op, t, self.addr, local, e)
    }

    fn timeout(&self, op: &str, t: Transport, local: Option<SocketAddr>) -> ExchangeError {
        timeout_error(op, t, self.addr, local)
    }

    /// Starts the prober unless one runs: `. IN NS` (or `domain`) every `interval` until a
    /// reply parses, then resets the failure count (CoreDNS semantics: any parsed reply is healthy).
    pub fn start_probe(self: &Arc<Self>, check: HealthCheck) {
        if self.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let up = self.clone();
        kdns_server::background::spawn(async move {
            loop {
                let mut q = Message { flags: if check.recursion_desired { flag::RD } else { 0 }, ..Message::default() };
                q.questions.push(Question { name: check.domain.clone(), qtype: rtype::NS, qclass: class::IN });
                match up.exchange(&q, check.transport, Duration::from_secs(1), Duration::ZERO).await {
                    Ok(_) => {
                        up.fails.store(0, Ordering::Relaxed);
                        break;
                    }
                    Err(_) => {
                        healthcheck_failures().with(&["forward", &up.label]).inc();
                        up.fails.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(check.interval).await;
            }
            up.probing.store(false, Ordering::Release);
        });
    }
}

fn io_error(op: &str, t: Transport, addr: SocketAddr, local: Option<SocketAddr>, e: io::Error) -> ExchangeError {
    let from = local.map(|l| format!("{l}->")).unwrap_or_default();
    ExchangeError { message: format!("{op} {} {from}{addr}: {e}", t.as_str()) }
}

fn timeout_error(op: &str, t: Transport, addr: SocketAddr, local: Option<SocketAddr>) -> ExchangeError {
    let from = local.map(|l| format!("{l}->")).unwrap_or_default();
    ExchangeError { message: format!("{op} {} {from}{addr}: i/o timeout", t.as_str()) }
}

/// Opens the TCP (or TLS) connection to `addr` and starts its multiplexer.
async fn dial(
    addr: SocketAddr,
    tls: Option<TlsTarget>,
    timeout: Duration,
    expire: Duration,
) -> Result<Arc<Mux>, ExchangeError> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| timeout_error("dial", Transport::Tcp, addr, None))?
        .map_err(|e| io_error("dial", Transport::Tcp, addr, None, e))?;
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().ok();
    Ok(match tls {
        None => Mux::start(stream, local, expire),
        Some(t) => {
            let connector = tokio_rustls::TlsConnector::from(t.config.clone());
            let tls = tokio::time::timeout(timeout, connector.connect(t.server_name.clone(), stream))
                .await
                .map_err(|_| timeout_error("tls handshake", Transport::Tcp, addr, local))?
                .map_err(|e| io_error("tls handshake", Transport::Tcp, addr, local, e))?;
            Mux::start(tls, local, expire)
        }
    })
}

#[derive(Clone, Debug)]
pub struct HealthCheck {
    pub interval: Duration,
    pub recursion_desired: bool,
    pub domain: kdns_wire::Name,
    pub transport: Transport,
}

/// Why an upstream datagram is not the answer to a query.
#[derive(Debug, PartialEq, Eq)]
pub enum Rejected {
    /// Not well-formed, or another query's ID: not ours, keep waiting (UDP).
    Foreign,
    /// Our ID, but not a reply to our question (QR clear, no single question, another name,
    /// type or class): CoreDNS answers the client FORMERR.
    WrongQuestion,
}

/// What the client gets for an upstream reply to the wrong question: FORMERR with the question,
/// as CoreDNS's forward writes it (`state.Match` failed).
fn wrong_reply(q: &Message) -> Reply {
    let mut m = Message::reply_to(q);
    m.rcode = kdns_wire::rcode::FORMERR;
    Reply::message(m, "forward")
}

/// Accepts `bytes` only as the answer to `q` sent with `id`: QR set, same ID, one question
/// equal to ours (name case-insensitively, type and class; RFC 5452 §9.1), and the whole message
/// well-formed by the decoder's rules ([`check_message`]). The reply is returned with the
/// query's ID and without the upstream's OPT (EDNS is hop-by-hop; the server writes its own).
/// It stays in wire form, records as the upstream sent them and anything after the last one
/// cut, unless its OPT is not the last record or carries an extended rcode, or a name is read
/// through a pointer to bytes that are not an earlier name's: those are decoded.
pub fn accept(mut bytes: Vec<u8>, id: u16, q: &Message) -> Result<Reply, Rejected> {
    let checked = check_message(&bytes).map_err(|_| Rejected::Foreign)?;
    let header = Header::parse(&bytes).map_err(|_| Rejected::Foreign)?;
    let asked = q.questions.first().ok_or(Rejected::Foreign)?;
    if header.id != id {
        return Err(Rejected::Foreign);
    }
    if !header.has(flag::QR) || header.qdcount != 1 {
        return Err(Rejected::WrongQuestion);
    }
    let qname_end = checked.question_name_end.ok_or(Rejected::WrongQuestion)?;
    let fixed = &bytes[qname_end..qname_end + 4];
    if u16::from_be_bytes([fixed[0], fixed[1]]) != asked.qtype
        || u16::from_be_bytes([fixed[2], fixed[3]]) != asked.qclass
        || !kdns_wire::name::name_at_equals(&bytes, HEADER_LEN, asked.name.as_wire(), true)
    {
        return Err(Rejected::WrongQuestion);
    }
    match checked.opt_at {
        // Names read through pointers into the header or a TTL would change with the patches
        // below (here, and the cache's TTLs).
        _ if !checked.relayable => return decoded(&bytes, q),
        None => bytes.truncate(checked.end),
        Some(at) if checked.opt_is_last && checked.rcode < 16 => {
            bytes.truncate(at);
            let arcount = header.arcount - 1;
            bytes[10..12].copy_from_slice(&arcount.to_be_bytes());
        }
        Some(_) => return decoded(&bytes, q),
    }
    bytes[0..2].copy_from_slice(&q.id.to_be_bytes());
    Ok(Reply::wire(bytes, "forward"))
}

/// The decoding path of [`accept`]: the reply as a message, with the query's ID and no OPT.
fn decoded(bytes: &[u8], q: &Message) -> Result<Reply, Rejected> {
    let mut m = Message::decode(bytes).map_err(|_| Rejected::Foreign)?;
    m.id = q.id;
    m.edns = None;
    Ok(Reply::message(m, "forward"))
}

/// Where and how to reach a DNS-over-TLS upstream.
#[derive(Clone)]
pub struct TlsTarget {
    pub config: Arc<rustls::ClientConfig>,
    pub server_name: rustls::pki_types::ServerName<'static>,
}

impl std::fmt::Debug for TlsTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TlsTarget({:?})", self.server_name)
    }
}

/// Queries waiting on one shared upstream connection or socket, by the random ID each was
/// sent with; the connection's reader task delivers each reply to its query.
struct Waiters<T>(Mutex<HashMap<u16, oneshot::Sender<T>>>);

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
    fn register(&self) -> Waiting<'_, T> {
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
    fn deliver(&self, id: u16, value: T) -> bool {
        let waiter = self.map().remove(&id);
        waiter.map(|tx| tx.send(value)).is_some()
    }

    fn is_empty(&self) -> bool {
        self.map().is_empty()
    }

    /// Removes every waiter; each is woken with a closed channel.
    fn take_all(&self) -> Vec<oneshot::Sender<T>> {
        self.map().drain().map(|(_, tx)| tx).collect()
    }
}

/// One query's place in a [`Waiters`] table, left when the exchange ends however it ends
/// (answer, error, timeout, cancellation).
struct Waiting<'a, T> {
    table: &'a Waiters<T>,
    id: u16,
    rx: oneshot::Receiver<T>,
}

impl<T> Waiting<'_, T> {
    /// Waits again on the same ID after a reply for it failed validation.
    fn rearm(&mut self) {
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

/// One TCP connection to an upstream shared by concurrent queries (RFC 7766 pipelining): a
/// writer task sends frames, a reader task hands each reply to the query waiting for its ID.
/// The connection closes when the upstream closes it or after `expire` without traffic.
pub struct Mux {
    tx: mpsc::Sender<Vec<u8>>,
    waiters: Arc<Waiters<Vec<u8>>>,
    closed: Arc<AtomicBool>,
    local: Option<SocketAddr>,
    opened: Instant,
    last_used_ms: AtomicU64,
}

impl Mux {
    fn start<S>(stream: S, local: Option<SocketAddr>, expire: Duration) -> Arc<Mux>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
    {
        let (mut rd, mut wr) = tokio::io::split(stream);
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(256);
        let waiters: Arc<Waiters<Vec<u8>>> = Arc::default();
        let closed = Arc::new(AtomicBool::new(false));
        let c = closed.clone();
        tokio::spawn(async move {
            while let Some(frame) = rx.recv().await {
                if wr.write_all(&frame).await.is_err() {
                    break;
                }
            }
            c.store(true, Ordering::Release);
        });
        let (w, c) = (waiters.clone(), closed.clone());
        let idle = expire.max(Duration::from_millis(100));
        tokio::spawn(async move {
            loop {
                let mut len = [0u8; 2];
                match tokio::time::timeout(idle, rd.read_exact(&mut len)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) => break,
                    Err(_) if w.is_empty() => break,
                    Err(_) => continue,
                }
                let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
                if rd.read_exact(&mut buf).await.is_err() {
                    break;
                }
                if buf.len() < 2 {
                    continue;
                }
                let id = u16::from_be_bytes([buf[0], buf[1]]);
                w.deliver(id, buf);
            }
            c.store(true, Ordering::Release);
            // Dropping the senders wakes every waiter with an error.
            drop(w.take_all());
        });
        Arc::new(Mux { tx, waiters, closed, local, opened: Instant::now(), last_used_ms: AtomicU64::new(0) })
    }

    fn touch(&self) {
        self.last_used_ms.store(self.opened.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_used_ms.load(Ordering::Relaxed));
        self.opened.elapsed().saturating_sub(last)
    }
}

/// One connected UDP socket to an upstream shared by concurrent queries: a reader task hands
/// each datagram to the query waiting for its ID (the query validates it). The reader ends once
/// it holds the last reference: the pool has replaced the socket and no query waits on it.
pub struct UdpMux {
    sock: UdpSocket,
    waiters: Waiters<io::Result<Vec<u8>>>,
    uses: AtomicU32,
    local: Option<SocketAddr>,
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
        struct Reading<'a>(&'a AtomicBool);
        impl Drop for Reading<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _reading = Reading(&self.reading);
        while Arc::strong_count(&self) > 1 {
            // ERROR too: an ICMP error (port unreachable) makes the socket report only EPOLLERR.
            let interest = tokio::io::Interest::READABLE | tokio::io::Interest::ERROR;
            let ready = match tokio::time::timeout(UDP_READER_TICK, self.sock.ready(interest)).await {
                Ok(Ok(r)) => r,
                // The runtime is going away.
                Ok(Err(_)) => break,
                Err(_) => continue,
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
                        for tx in self.waiters.take_all() {
                            let _ = tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                        }
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod accept_tests {
    use super::*;
    use kdns_server::plugin::Body;
    use kdns_wire::{Edns, Name, RData, Record};
    use std::net::Ipv4Addr;

    fn query() -> Message {
        let mut q = Message { id: 0x1234, flags: flag::RD, ..Default::default() };
        q.questions.push(Question {
            name: Name::from_ascii("WWW.example.org.").unwrap(),
            qtype: rtype::A,
            qclass: class::IN,
        });
        q.edns = Some(Edns::new(1232));
        q
    }

    /// The upstream's answer to `query()` sent with ID 99: a CNAME chain and an OPT record.
    fn answer() -> Message {
        let mut m = Message { id: 99, flags: flag::QR | flag::RD | flag::RA, ..Default::default() };
        let asked = Name::from_ascii("www.example.org.").unwrap();
        let target = Name::from_ascii("web.example.org.").unwrap();
        m.questions.push(Question { name: asked.clone(), qtype: rtype::A, qclass: class::IN });
        m.answers.push(Record::new(asked, 300, RData::Cname(target.clone())));
        m.answers.push(Record::new(target, 60, RData::A(Ipv4Addr::new(192, 0, 2, 7))));
        let mut e = Edns::new(4096);
        e.options.push((10, vec![7; 16]));
        m.edns = Some(e);
        m
    }

    fn wire_of(r: &Reply) -> &[u8] {
        match r.body() {
            Body::Wire(b) => b,
            Body::Message(m) => panic!("expected wire, got {m:?}"),
        }
    }

    #[test]
    fn a_matching_reply_stays_bytes_with_the_query_id_and_without_the_upstream_opt() {
        let mut bytes = answer().to_vec();
        bytes.extend_from_slice(b"junk after the last record");
        let r = accept(bytes, 99, &query()).expect("accepted");
        let m = Message::decode(wire_of(&r)).unwrap();
        let mut expected = answer();
        expected.id = 0x1234;
        expected.edns = None;
        assert_eq!(m, expected, "same records, no OPT, the client's ID");
        assert_eq!(Message::decode(wire_of(&r)).unwrap().to_vec(), wire_of(&r), "nothing after the last record");
    }

    #[test]
    fn an_opt_with_an_extended_rcode_or_not_last_is_decoded() {
        let mut badvers = answer();
        badvers.rcode = 16;
        let r = accept(badvers.to_vec(), 99, &query()).expect("accepted");
        let Body::Message(m) = r.body() else { panic!("an extended rcode needs the decoded path") };
        assert_eq!((m.rcode, m.id, m.edns.is_none()), (16, 0x1234, true));
        let mut opt_first = answer();
        opt_first.additional.push(Record::new(
            Name::from_ascii("x.example.org.").unwrap(),
            5,
            RData::A(Ipv4Addr::LOCALHOST),
        ));
        // Encoded with OPT last; rebuilt as: records before the A one, OPT, then the A record.
        let with_opt = opt_first.to_vec();
        let opt_at = check_message(&with_opt).unwrap().opt_at.unwrap();
        let mut before_a = opt_first.clone();
        before_a.additional.clear();
        before_a.edns = None;
        let a_at = before_a.to_vec().len();
        let mut bytes = with_opt[..a_at].to_vec();
        bytes.extend_from_slice(&with_opt[opt_at..]);
        bytes.extend_from_slice(&with_opt[a_at..opt_at]);
        assert!(!check_message(&bytes).unwrap().opt_is_last);
        let r = accept(bytes, 99, &query()).expect("accepted");
        let Body::Message(m) = r.body() else { panic!("an OPT before other records is decoded") };
        assert_eq!((m.additional.len(), m.edns.is_none()), (1, true));
    }

    #[test]
    fn a_name_pointing_into_the_header_is_decoded_not_relayed() {
        // A CNAME whose target is a pointer to offset 1, the low byte of the upstream's ID
        // (0x0100): read there it is the root name. Relayed with our ID in its place, the same
        // bytes would say something else.
        let mut m = answer();
        m.answers.truncate(1);
        m.answers[0].data = RData::Cname(Name::from_ascii("org.").unwrap());
        m.edns = None;
        let mut bytes = m.to_vec();
        bytes[0..2].copy_from_slice(&0x0100u16.to_be_bytes());
        let target = bytes.len() - 2;
        assert_eq!(u16::from_be_bytes([bytes[target - 2], bytes[target - 1]]), 2, "the target is one pointer");
        bytes[target..].copy_from_slice(&[0xC0, 1]);
        assert!(!check_message(&bytes).unwrap().relayable);
        let r = accept(bytes, 0x0100, &query()).expect("accepted");
        let Body::Message(m) = r.body() else { panic!("decoded, not relayed") };
        assert_eq!(m.answers[0].data, RData::Cname(Name::root()), "read against the upstream's ID, not ours");
    }

    #[test]
    fn anything_not_the_answer_to_this_query_is_refused() {
        let q = query();
        let ok = answer().to_vec();
        assert_eq!(accept(ok.clone(), 98, &q).err(), Some(Rejected::Foreign), "another ID");
        let mut not_reply = answer();
        not_reply.flags &= !flag::QR;
        assert_eq!(accept(not_reply.to_vec(), 99, &q).err(), Some(Rejected::WrongQuestion), "QR clear");
        let mut other_type = answer();
        other_type.questions[0].qtype = rtype::AAAA;
        assert_eq!(accept(other_type.to_vec(), 99, &q).err(), Some(Rejected::WrongQuestion), "another type");
        let mut other_name = answer();
        other_name.questions[0].name = Name::from_ascii("ww.example.org.").unwrap();
        assert_eq!(accept(other_name.to_vec(), 99, &q).err(), Some(Rejected::WrongQuestion), "another name");
        let mut two = answer();
        two.questions.push(two.questions[0].clone());
        assert_eq!(accept(two.to_vec(), 99, &q).err(), Some(Rejected::WrongQuestion), "two questions");
        for cut in [11, 20, ok.len() - 1] {
            assert_eq!(accept(ok[..cut].to_vec(), 99, &q).err(), Some(Rejected::Foreign), "cut at {cut}");
        }
        let mut bad_pointer = ok.clone();
        let owner = check_message(&ok).unwrap().question_name_end.unwrap() + 4;
        bad_pointer[owner + 1] = 0xFF; // a pointer forward, past the end
        assert_eq!(accept(bad_pointer, 99, &q).err(), Some(Rejected::Foreign), "bad compression pointer");
    }
}
#[cfg(test)]
mod future_size {
    #[test]
    fn an_exchange_future_stays_small() {
        // Every forwarded query's future holds one and is moved into its box: the TCP dial (TLS
        // handshake) once made it 3.5 KiB, a few hundred nanoseconds of memmove per miss.
        let up = super::Upstream::new("127.0.0.1:53".parse().unwrap());
        let q = kdns_wire::Message::default();
        let t = std::time::Duration::from_secs(1);
        let f = up.exchange(&q, super::Transport::Udp, t, t);
        assert!(std::mem::size_of_val(&f) <= 1024, "{} bytes", std::mem::size_of_val(&f));
    }
}
