//! `loop`: detects simple forwarding loops at startup by sending itself a random HINFO query;
//! seeing that query more than twice means the upstream sends it back to us, and the process
//! exits with CoreDNS's message (in Kubernetes: CrashLoopBackOff instead of a DNS storm).

#[cfg(test)]
mod tests;

use kdns_corefile::{Directive, Error};
use kdns_server::plugin::{once, Plugin, Request, SetupCtx, Step};
use kdns_wire::{class, rtype, Message, Name, Question};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Loop {
    pub zone: String,
    pub qname: Name,
    seen: AtomicU32,
    disabled: AtomicBool,
}

impl Plugin for Loop {
    fn name(&self) -> &'static str {
        "loop"
    }

    fn serve(&self, req: &Request<'_>) -> Step {
        if req.qtype() != rtype::HINFO || self.disabled.load(Ordering::Relaxed) {
            return Step::Next;
        }
        if req.qname().eq_ignore_case(&self.qname) {
            let seen = self.seen.fetch_add(1, Ordering::AcqRel) + 1;
            if seen > 2 {
                // Many hops of the loop get here at once; exit(3) is not safe to call from
                // several threads, so only the first one reports and exits.
                static EXITING: AtomicBool = AtomicBool::new(false);
                if EXITING.swap(true, Ordering::AcqRel) {
                    return Step::Next;
                }
                kdns_server::log::line(format!(
                    "[FATAL] plugin/loop: Loop ({} -> {}) detected for zone {:?}, see https://coredns.io/plugins/loop#troubleshooting. Query: \"HINFO {}\"",
                    req.remote, req.local, self.zone, self.qname
                ));
                kdns_server::log::flush();
                std::process::exit(1);
            }
        }
        Step::Next
    }
}

pub fn setup(ctx: &mut SetupCtx<'_>, ds: &[&Directive]) -> Result<Option<Arc<dyn Plugin>>, Error> {
    once("loop", ds)?;
    if let Some(a) = ds[0].args.first() {
        return Err(Error::at(a, "plugin/loop: this plugin takes no arguments"));
    }
    let zone = ctx.zones.first().cloned().unwrap_or_else(|| ".".into());
    let label = |n: u64| (n & ((1 << 62) - 1)).to_string();
    let text = format!("{}.{}.{}", label(fastrand::u64(..)), label(fastrand::u64(..)), zone.trim_start_matches('.'));
    let qname = Name::from_ascii(&text).map_err(|e| Error::at(&ds[0].name, format!("plugin/loop: {e}")))?;
    let ip = ctx.listen.first().copied().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let target = SocketAddr::new(ip, ctx.port);
    let plugin = Arc::new(Loop { zone, qname, seen: AtomicU32::new(0), disabled: AtomicBool::new(false) });
    ctx.contrib.tasks.push(Box::pin(probe(plugin.clone(), target)));
    Ok(Some(plugin))
}

/// Every second for up to 30 s, ask ourselves the HINFO question; the first reply (any rcode)
/// means no loop. As in CoreDNS, a failed attempt resets the counter, and the plugin switches
/// itself off 2 s after the probe succeeded (or after 30 s).
async fn probe(l: Arc<Loop>, target: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if exchange(&l.qname, target).await {
            tokio::time::sleep(Duration::from_secs(2)).await;
            break;
        }
        l.seen.store(0, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    l.disabled.store(true, Ordering::Relaxed);
}

async fn exchange(qname: &Name, target: SocketAddr) -> bool {
    let q = Message {
        id: fastrand::u16(..),
        questions: vec![Question { name: qname.clone(), qtype: rtype::HINFO, qclass: class::IN }],
        ..Message::default()
    };
    let bind: SocketAddr =
        if target.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { (std::net::Ipv6Addr::UNSPECIFIED, 0).into() };
    let Ok(sock) = tokio::net::UdpSocket::bind(bind).await else { return false };
    if sock.send_to(&q.to_vec(), target).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 512];
    matches!(tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf)).await, Ok(Ok(_)))
}
