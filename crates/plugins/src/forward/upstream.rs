//! One upstream and the exchange of one query with it: over UDP through this thread's pool of
//! shared sockets ([`super::udp_mux`]), over TCP or TLS through the one pipelined connection
//! every thread shares ([`super::tcp_mux`]), each reply checked by [`super::reply::accept`]
//! before it is returned. Errors are worded like Go's net errors so `errors` lines look
//! familiar.

use super::reply::{accept, wrong_reply, Rejected};
use super::tcp_mux::{dial, Mux};
use super::udp_mux;
use super::waiters::Gone;
use super::{conn_cache_hits, conn_cache_misses, mismatched_replies, request_duration};
use kdns_server::metrics::Series;
use kdns_server::plugin::Reply;
use kdns_wire::rcode;
use kdns_wire::{flag, Message};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

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

pub struct Upstream {
    pub addr: SocketAddr,
    /// `to` label: `127.0.0.1:53`.
    pub label: String,
    tls: Option<TlsTarget>,
    pub fails: AtomicU32,
    pub(super) probing: AtomicBool,
    tcp: Mutex<Option<Arc<Mux>>>,
    dialing: tokio::sync::Mutex<()>,
    /// Identifies this upstream's per-thread UDP pools.
    token: Arc<()>,
    series: UpstreamSeries,
}

/// This upstream's metric series, each resolved on first use (as CoreDNS's appear) and kept,
/// so a query does not look its labels up.
#[derive(Default)]
struct UpstreamSeries {
    /// `[udp, tcp][reused, dialled]`.
    conn: [[OnceLock<Arc<Series>>; 2]; 2],
    /// Request duration by rcode, for the rcodes a header can carry.
    duration: [OnceLock<Arc<Series>>; 16],
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
            series: UpstreamSeries::default(),
        }
    }

    fn count_conn(&self, t: Transport, reused: bool) {
        let slot = &self.series.conn[(t == Transport::Tcp) as usize][!reused as usize];
        slot.get_or_init(|| {
            let family = if reused { conn_cache_hits() } else { conn_cache_misses() };
            family.with(&["forward", &self.label, t.as_str()])
        })
        .inc();
    }

    /// `coredns_proxy_request_duration_seconds` for a reply with rcode `code`.
    pub fn observe_duration(&self, code: u16, seconds: f64) {
        let series = |code: u16| request_duration().with(&["forward", &self.label, &rcode::name(code)]);
        match self.series.duration.get(code as usize) {
            Some(slot) => slot.get_or_init(|| series(code)).observe(seconds),
            None => series(code).observe(seconds),
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

    async fn exchange_udp(&self, mut wire: Vec<u8>, q: &Message, timeout: Duration) -> Result<Reply, ExchangeError> {
        let (mux, reused) = udp_mux::pooled(&self.token, self.addr, &self.label)
            .map_err(|e| self.err("dial", Transport::Udp, None, e))?;
        self.count_conn(Transport::Udp, reused);
        let local = mux.local;
        // The socket's reader ends the wait at the deadline: no timer of this query's own.
        let deadline = std::time::Instant::now() + timeout;
        let mut waiting = mux.waiters.register(Some(deadline));
        let id = waiting.id;
        wire[0..2].copy_from_slice(&id.to_be_bytes());
        mux.send(wire, id).await.map_err(|e| self.err("write", Transport::Udp, local, e))?;
        // Room for what we asked for (the client's EDNS size, at least 512): an upstream that
        // sends more than allowed is detected instead of silently cut (CoreDNS turns that into
        // a TC reply too).
        let size = q.edns.as_ref().map_or(512, |e| e.udp_size.max(512) as usize);
        loop {
            let bytes = match (&mut waiting).await {
                Ok(Ok(b)) => b,
                Ok(Err(e)) => return Err(self.err("read", Transport::Udp, local, e)),
                Err(Gone::Closed) => {
                    return Err(self.err(
                        "read",
                        Transport::Udp,
                        local,
                        io::Error::from(io::ErrorKind::ConnectionReset),
                    ))
                }
                Err(Gone::TimedOut) => return Err(self.timeout("read", Transport::Udp, local)),
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
            waiting.rearm(Some(deadline));
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
        self.count_conn(Transport::Tcp, false);
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
        self.count_conn(Transport::Tcp, true);
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
        let mut waiting = mux.waiters.register(None);
        let id = waiting.id;
        let mut frame = Vec::with_capacity(wire.len() + 2);
        frame.extend_from_slice(&(wire.len() as u16).to_be_bytes());
        frame.extend_from_slice(&wire);
        frame[2..4].copy_from_slice(&id.to_be_bytes());
        mux.touch();
        if mux.tx.send(frame).await.is_err() {
            return Err(ExchangeError { message: format!("cached connection to {} was closed", self.addr) });
        }
        match tokio::time::timeout(timeout, &mut waiting).await {
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
            Err(_) => {
                self.retire(&mux);
                Err(self.timeout("read", Transport::Tcp, local))
            }
        }
    }

    /// After a read timeout the connection takes no new queries (CoreDNS closes a connection
    /// that timed out): an upstream that answers one connection in order would otherwise hold
    /// every later query behind the slow one. Queries already on it still get their replies.
    fn retire(&self, mux: &Arc<Mux>) {
        let mut cur = self.tcp.lock().unwrap_or_else(|e| e.into_inner());
        if cur.as_ref().is_some_and(|m| Arc::ptr_eq(m, mux)) {
            *cur = None;
        }
    }

    fn err(&self, op: &str, t: Transport, local: Option<SocketAddr>, e: io::Error) -> ExchangeError {
        io_error(op, t, self.addr, local, e)
    }

    fn timeout(&self, op: &str, t: Transport, local: Option<SocketAddr>) -> ExchangeError {
        timeout_error(op, t, self.addr, local)
    }
}

pub(super) fn io_error(
    op: &str,
    t: Transport,
    addr: SocketAddr,
    local: Option<SocketAddr>,
    e: io::Error,
) -> ExchangeError {
    let from = local.map(|l| format!("{l}->")).unwrap_or_default();
    ExchangeError { message: format!("{op} {} {from}{addr}: {e}", t.as_str()) }
}

pub(super) fn timeout_error(op: &str, t: Transport, addr: SocketAddr, local: Option<SocketAddr>) -> ExchangeError {
    let from = local.map(|l| format!("{l}->")).unwrap_or_default();
    ExchangeError { message: format!("{op} {} {from}{addr}: i/o timeout", t.as_str()) }
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
