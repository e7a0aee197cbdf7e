//! Forward's TCP: one connection (plain or TLS) per upstream shared by every thread and every
//! concurrent query (RFC 7766 pipelining), dialled on the main runtime, which outlives any one
//! worker ([`kdns_server::background`]).

use super::upstream::{io_error, timeout_error, ExchangeError, TlsTarget, Transport};
use super::waiters::Waiters;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Opens the TCP (or TLS) connection to `addr` and starts its multiplexer.
pub(super) async fn dial(
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

/// One TCP connection to an upstream shared by concurrent queries (RFC 7766 pipelining): a
/// writer task sends frames, a reader task hands each reply to the query waiting for its ID.
/// The connection closes when the upstream closes it or after `expire` without traffic.
pub struct Mux {
    pub(super) tx: mpsc::Sender<Vec<u8>>,
    pub(super) waiters: Arc<Waiters<Vec<u8>>>,
    pub(super) closed: Arc<AtomicBool>,
    pub(super) local: Option<SocketAddr>,
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
            w.close_all();
        });
        Arc::new(Mux { tx, waiters, closed, local, opened: Instant::now(), last_used_ms: AtomicU64::new(0) })
    }

    pub(super) fn touch(&self) {
        self.last_used_ms.store(self.opened.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    pub(super) fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_used_ms.load(Ordering::Relaxed));
        self.opened.elapsed().saturating_sub(last)
    }
}
