//! Admin HTTP listeners (health, ready, metrics). One listener per address, shared by every
//! plugin that asks for that address; routes are swapped on reload while the socket stays open,
//! so a reload (good or bad) never takes /health or /metrics down.

use crate::plugin::Route;
use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub type Routes = Arc<RwLock<HashMap<String, Route>>>;

pub struct AdminListener {
    pub addr: SocketAddr,
    pub routes: Routes,
    task: JoinHandle<()>,
}

impl Drop for AdminListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Resolves a Go-style listen address: `:8080` (all addresses), `localhost:9153`, `[::1]:8181`.
pub fn resolve(addr: &str) -> io::Result<SocketAddr> {
    let addr = addr.trim();
    if let Some(port) = addr.strip_prefix(':') {
        let port: u16 =
            port.parse().map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("bad port in {addr:?}")))?;
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    if let Ok(a) = addr.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Some(port) = addr.strip_prefix("localhost:") {
        let port: u16 =
            port.parse().map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("bad port in {addr:?}")))?;
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    addr.to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("cannot resolve {addr:?}")))
}

/// Binds `addr` and serves `routes` on it.
pub fn start(addr: SocketAddr, routes: Routes) -> io::Result<AdminListener> {
    let sock = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    sock.set_reuse_address(true)?;
    // Two instances on one node (a surge during a DaemonSet upgrade) share the port.
    sock.set_reuse_port(true)?;
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    sock.listen(128)?;
    let std_listener: std::net::TcpListener = sock.into();
    let local = std_listener.local_addr()?;
    let listener = TcpListener::from_std(std_listener)?;
    let r = routes.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let routes = r.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let routes = routes.clone();
                    async move { Ok::<_, Infallible>(respond(&routes, req.uri().path())) }
                });
                let conn = http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(5))
                    .serve_connection(TokioIo::new(stream), svc);
                let _ = tokio::time::timeout(Duration::from_secs(30), conn).await;
            });
        }
    });
    Ok(AdminListener { addr: local, routes, task })
}

fn respond(routes: &Routes, path: &str) -> Response<Full<Bytes>> {
    let route = routes.read().unwrap_or_else(|e| e.into_inner()).get(path).cloned();
    let (status, body, content_type) = match route {
        Some(f) => {
            let (s, b) = f();
            let ct = if path == "/metrics" {
                "text/plain; version=0.0.4; charset=utf-8"
            } else if path.ends_with(".json") {
                "application/json"
            } else if path == "/status" {
                "text/html; charset=utf-8"
            } else {
                "text/plain; charset=utf-8"
            };
            (s, b, ct)
        }
        None => (404, "404 page not found\n".to_string(), "text/plain; charset=utf-8"),
    };
    Response::builder()
        .status(status)
        .header("Content-Type", content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// A tiny HTTP/1.0 GET used by the health self-check; returns the status code.
pub async fn get_status(addr: SocketAddr, path: &str) -> io::Result<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let target = if addr.ip().is_unspecified() {
        SocketAddr::new(
            if addr.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() },
            addr.port(),
        )
    } else {
        addr
    };
    let mut s = tokio::net::TcpStream::connect(target).await?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {target}\r\n\r\n").as_bytes()).await?;
    let mut buf = Vec::with_capacity(256);
    s.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad HTTP response"))
}
