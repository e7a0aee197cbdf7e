//! forward in a real chain (through the server core, no listener) against upstreams on loopback
//! sockets in this process: failover past an upstream that refuses the connection, failover
//! rcodes, and the plugin after forward for `next`.

use kdns_server::testing::{query, Chain};
use kdns_wire::{rcode, rtype, Message, RData, Record};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A UDP upstream on loopback answering every query with `code` (and an A record when NOERROR),
/// counting what it received; stops when dropped.
struct Upstream {
    addr: SocketAddr,
    seen: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Upstream {
    fn answering(code: u16) -> Upstream {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let addr = sock.local_addr().unwrap();
        let (seen, stop) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
        let (s, st) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !st.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else { continue };
                let Ok(q) = Message::decode(&buf[..n]) else { continue };
                s.fetch_add(1, Ordering::SeqCst);
                let mut m = Message::reply_to(&q);
                m.rcode = code;
                if code == rcode::NOERROR {
                    m.answers.push(Record::new(q.questions[0].name.clone(), 60, RData::A([192, 0, 2, 53].into())));
                }
                let _ = sock.send_to(&m.to_vec(), from);
            }
        });
        Upstream { addr, seen, stop }
    }

    fn seen(&self) -> usize {
        self.seen.load(Ordering::SeqCst)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A loopback port nothing listens on: the kernel answers with ICMP port unreachable.
fn closed_port() -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap()
}

fn chain(forward: &str) -> Chain {
    Chain::new(&format!(".:53 {{\n    {forward}\n}}\n"), &crate::all(), None).expect("the chain builds")
}

#[tokio::test]
async fn an_upstream_that_refuses_is_passed_over_at_once() {
    let good = Upstream::answering(rcode::NOERROR);
    let dead = closed_port();
    let mut c = chain(&format!("forward . {dead} {} {{\n        policy sequential\n    }}", good.addr));
    let started = Instant::now();
    let r = c.ask(&query("a.example.org.", rtype::A)).await.unwrap();
    assert_eq!((r.rcode, r.answers.len()), (rcode::NOERROR, 1));
    assert_eq!(good.seen(), 1);
    assert!(started.elapsed() < Duration::from_secs(1), "no read timeout waited: {:?}", started.elapsed());
}

#[tokio::test]
async fn failover_rcodes_send_the_query_to_the_next_upstream() {
    let broken = Upstream::answering(rcode::SERVFAIL);
    let good = Upstream::answering(rcode::NOERROR);
    let mut c = chain(&format!(
        "forward . {} {} {{\n        policy sequential\n        failover SERVFAIL\n    }}",
        broken.addr, good.addr
    ));
    let r = c.ask(&query("b.example.org.", rtype::A)).await.unwrap();
    assert_eq!((r.rcode, broken.seen(), good.seen()), (rcode::NOERROR, 1, 1));
    // Without failover the first upstream's SERVFAIL is the answer.
    let mut plain = chain(&format!("forward . {} {} {{\n        policy sequential\n    }}", broken.addr, good.addr));
    let r = plain.ask(&query("c.example.org.", rtype::A)).await.unwrap();
    assert_eq!((r.rcode, broken.seen(), good.seen()), (rcode::SERVFAIL, 2, 1));
}

#[tokio::test]
async fn every_upstream_refusing_is_servfail() {
    let mut c = chain(&format!("forward . {} {}", closed_port(), closed_port()));
    let r = c.ask(&query("d.example.org.", rtype::A)).await.unwrap();
    assert_eq!(r.rcode, rcode::SERVFAIL);
}
