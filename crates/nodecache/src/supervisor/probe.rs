//! The supervisor's probe: `kdns-probe. CH TXT` to every local IP from two sockets of its own
//! (their ports are exempted from the fail-open DNAT), answered by the child's server core.

use crate::rules::Family;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::net::UdpSocket;

pub(super) struct Probe {
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
    targets: Vec<SocketAddr>,
    timeout: Duration,
    next_id: u16,
}

impl Probe {
    pub(super) fn new(local_ips: &[IpAddr], port: u16, timeout: Duration) -> std::io::Result<Probe> {
        let bind = |addr: &str| -> std::io::Result<UdpSocket> {
            let s = std::net::UdpSocket::bind(addr)?;
            s.set_nonblocking(true)?;
            UdpSocket::from_std(s)
        };
        let v4 = if local_ips.iter().any(|i| i.is_ipv4()) { Some(bind("0.0.0.0:0")?) } else { None };
        let v6 = if local_ips.iter().any(|i| i.is_ipv6()) { Some(bind("[::]:0")?) } else { None };
        Ok(Probe {
            v4,
            v6,
            targets: local_ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect(),
            timeout,
            next_id: fastrand::u16(..),
        })
    }

    pub(super) fn ports(&self) -> (u16, u16) {
        let port = |s: &Option<UdpSocket>| s.as_ref().and_then(|s| s.local_addr().ok()).map_or(0, |a| a.port());
        (port(&self.v4), port(&self.v6))
    }

    /// One round: `kdns-probe. CH TXT` to every local IP; true when all answered in time.
    pub(super) async fn round(&mut self) -> bool {
        let mut waiting = Vec::new();
        for target in self.targets.clone() {
            self.next_id = self.next_id.wrapping_add(1);
            let id = self.next_id;
            let sock = if target.is_ipv4() { &self.v4 } else { &self.v6 };
            let Some(sock) = sock else { return false };
            if sock.send_to(&probe_query(id), target).await.is_err() {
                return false;
            }
            waiting.push((Family::of(&target.ip()), id));
        }
        let deadline = tokio::time::Instant::now() + self.timeout;
        let (mut b4, mut b6) = ([0u8; 512], [0u8; 512]);
        while !waiting.is_empty() {
            let recv = async {
                match (&self.v4, &self.v6) {
                    (Some(a), Some(b)) => tokio::select! {
                        r = a.recv(&mut b4) => r.map(|n| (Family::V4, n)),
                        r = b.recv(&mut b6) => r.map(|n| (Family::V6, n)),
                    },
                    (Some(a), None) => a.recv(&mut b4).await.map(|n| (Family::V4, n)),
                    (None, Some(b)) => b.recv(&mut b6).await.map(|n| (Family::V6, n)),
                    (None, None) => Err(std::io::Error::other("no probe socket")),
                }
            };
            match tokio::time::timeout_at(deadline, recv).await {
                Ok(Ok((family, n))) => {
                    let buf = if family == Family::V4 { &b4 } else { &b6 };
                    if n >= 12 && buf[2] & 0x80 != 0 {
                        let id = u16::from_be_bytes([buf[0], buf[1]]);
                        waiting.retain(|w| *w != (family, id));
                    }
                }
                Ok(Err(_)) => {}
                Err(_) => return false,
            }
        }
        true
    }
}

/// `kdns-probe. CH TXT`, answered by the server core itself.
fn probe_query(id: u16) -> Vec<u8> {
    let mut q = Vec::with_capacity(32);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    q.extend_from_slice(kdns_server::handler::PROBE_NAME);
    q.extend_from_slice(&[0, 16, 0, 3]);
    q
}
