//! A scriptable upstream DNS server for forward tests. The first label of the query name picks
//! the behaviour; everything it receives is recorded.
//!
//! | first label | behaviour |
//! |---|---|
//! | anything else | A 192.0.2.1, TTL 300 |
//! | `slow<MS>` | same, after MS milliseconds |
//! | `drop` | never answers |
//! | `servfail`, `refused` | that rcode |
//! | `nxdomain` | NXDOMAIN with an SOA in authority (SOA TTL 60) |
//! | `nxnosoa` | NXDOMAIN without SOA |
//! | `tc` | UDP: empty reply with TC; TCP: the answer |
//! | `garbage` | bytes that are not DNS |
//! | `badid` | the answer with a wrong ID (and nothing else) |
//! | `badq` | the answer for another name |
//! | `reset` | TCP: closes the connection without answering; UDP: drops |
//! | `big` | 60 A records |
//! | `ad` | the answer with AD set and an OPT record of its own (4096, an NSID option) |
//! | `cnameonly` | a CNAME to `gone.example.` and nothing for the target, no SOA |
//! | `ext…` | an external name, as a cluster DNS sees it: NXDOMAIN (SOA) under `cluster.local.`, A 192.0.2.1 elsewhere |
//! | `nodata…` | NOERROR without records outside `cluster.local.` (NXDOMAIN inside) |
#![allow(dead_code)]

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Seen {
    pub tcp: bool,
    pub id: u16,
    pub qname: String,
    pub qtype: RecordType,
    pub src: SocketAddr,
    pub edns_options: usize,
    /// The query's AD and CD bits.
    pub ad: bool,
    pub cd: bool,
}

pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

impl Upstream {
    pub fn start() -> Upstream {
        // The ephemeral UDP port may be taken for TCP by another test's connection: retry.
        let (udp, addr, tcp) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
            let addr = udp.local_addr().unwrap();
            if let Ok(tcp) = TcpListener::bind(addr) {
                break (udp, addr, tcp);
            }
        };
        Self::serve(udp, addr, tcp)
    }

    /// Listens on `addr` exactly (UDP and TCP), e.g. an address inside a network namespace.
    pub fn start_at(addr: SocketAddr) -> Upstream {
        let udp = UdpSocket::bind(addr).unwrap();
        let tcp = TcpListener::bind(addr).unwrap();
        Self::serve(udp, addr, tcp)
    }

    fn serve(udp: UdpSocket, addr: SocketAddr, tcp: TcpListener) -> Upstream {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        udp.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let (s, st) = (seen.clone(), stop.clone());
        let udp = Arc::new(udp);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65535];
            while !st.load(Ordering::Relaxed) {
                let Ok((n, src)) = udp.recv_from(&mut buf) else { continue };
                let Ok(q) = Message::from_vec(&buf[..n]) else { continue };
                record(&s, &q, false, src);
                let udp = udp.clone();
                std::thread::spawn(move || {
                    if let Some(bytes) = respond(&q, false) {
                        let _ = udp.send_to(&bytes, src);
                    }
                });
            }
        });
        let s = seen.clone();
        accept_loop(tcp, stop.clone(), move |conn, src| serve_stream(conn, &s, src));
        Upstream { addr, seen, stop }
    }

    /// The same script over DNS-over-TLS (RFC 7858) with the given certificate and key (PEM).
    pub fn start_tls(cert_pem: &str, key_pem: &str) -> Upstream {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(cert_pem.as_bytes()).collect::<Result<_, _>>().unwrap();
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .unwrap(),
        );
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = tcp.local_addr().unwrap();
        tcp.set_nonblocking(true).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let s = seen.clone();
        accept_loop(tcp, stop.clone(), move |sock, src| {
            let conn = rustls::ServerConnection::new(config.clone()).unwrap();
            serve_stream(rustls::StreamOwned::new(conn, sock), &s, src)
        });
        Upstream { addr, seen, stop }
    }

    pub fn count(&self, qname_prefix: &str) -> usize {
        self.seen.lock().unwrap().iter().filter(|s| s.qname.starts_with(qname_prefix)).count()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Accepts connections until `stop`, each served on its own thread by `serve`.
fn accept_loop(
    tcp: TcpListener,
    stop: Arc<AtomicBool>,
    serve: impl Fn(std::net::TcpStream, SocketAddr) + Send + Sync + 'static,
) {
    tcp.set_nonblocking(true).unwrap();
    let serve = Arc::new(serve);
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let Ok((conn, src)) = tcp.accept() else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            conn.set_nonblocking(false).unwrap();
            // As Go's net package (CoreDNS) does: without it, a pipelined reply waits for the
            // ACK of the previous one (Nagle against delayed ACK, ~40 ms).
            let _ = conn.set_nodelay(true);
            let serve = serve.clone();
            std::thread::spawn(move || serve(conn, src));
        }
    });
}

/// Length-prefixed DNS over a stream (TCP or TLS): `drop` stays silent on an open connection,
/// `reset` closes it.
fn serve_stream(mut conn: impl Read + Write, seen: &Mutex<Vec<Seen>>, src: SocketAddr) {
    loop {
        let mut len = [0u8; 2];
        if conn.read_exact(&mut len).is_err() {
            return;
        }
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        if conn.read_exact(&mut buf).is_err() {
            return;
        }
        let Ok(q) = Message::from_vec(&buf) else { return };
        record(seen, &q, true, src);
        match respond(&q, true) {
            Some(bytes) => {
                let mut f = (bytes.len() as u16).to_be_bytes().to_vec();
                f.extend_from_slice(&bytes);
                if conn.write_all(&f).and_then(|_| conn.flush()).is_err() {
                    return;
                }
            }
            None if first_label(&q) == "reset" => return,
            None => {}
        }
    }
}

fn record(seen: &Mutex<Vec<Seen>>, q: &Message, tcp: bool, src: SocketAddr) {
    let Some(query) = q.queries.first() else { return };
    seen.lock().unwrap().push(Seen {
        tcp,
        id: q.metadata.id,
        qname: query.name().to_string(),
        qtype: query.query_type(),
        src,
        edns_options: q.edns.as_ref().map_or(0, |e| e.options().as_ref().len()),
        ad: q.metadata.authentic_data,
        cd: q.metadata.checking_disabled,
    });
}

fn first_label(q: &Message) -> String {
    q.queries
        .first()
        .map(|x| x.name().to_string())
        .unwrap_or_default()
        .split('.')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
}

fn respond(q: &Message, tcp: bool) -> Option<Vec<u8>> {
    let label = first_label(q);
    let query = q.queries.first()?.clone();
    let mut r = Message::new(q.metadata.id, MessageType::Response, q.metadata.op_code);
    r.metadata.recursion_desired = q.metadata.recursion_desired;
    r.metadata.checking_disabled = q.metadata.checking_disabled;
    r.metadata.recursion_available = true;
    r.add_query(query.clone());
    let a =
        |ip: [u8; 4]| Record::from_rdata(query.name().clone(), 300, RData::A(A::from(std::net::Ipv4Addr::from(ip))));
    match label.as_str() {
        l if l.starts_with("slow") => {
            let ms: u64 = l[4..].parse().unwrap_or(500);
            std::thread::sleep(Duration::from_millis(ms));
            r.answers.push(a([192, 0, 2, 1]));
        }
        "drop" | "reset" => return None,
        "servfail" => r.metadata.response_code = ResponseCode::ServFail,
        "nxnosoa" => r.metadata.response_code = ResponseCode::NXDomain,
        "refused" => r.metadata.response_code = ResponseCode::Refused,
        "nxdomain" => {
            r.metadata.response_code = ResponseCode::NXDomain;
            let soa =
                SOA::new(Name::from_str("ns.example.").unwrap(), Name::from_str("h.example.").unwrap(), 1, 2, 3, 4, 30);
            r.authorities.push(Record::from_rdata(Name::from_str("example.").unwrap(), 60, RData::SOA(soa)));
        }
        "tc" if !tcp => r.metadata.truncation = true,
        "garbage" => return Some(b"\x01\x02this is not dns at all".to_vec()),
        "badid" => {
            r.metadata.id = q.metadata.id.wrapping_add(1);
            r.answers.push(a([6, 6, 6, 6]));
        }
        "badq" => {
            r.queries.clear();
            r.add_query(hickory_proto::op::Query::query(Name::from_str("victim.example.").unwrap(), RecordType::A));
            r.answers.push(a([6, 6, 6, 6]));
        }
        "big" => {
            for i in 0..60u8 {
                r.answers.push(a([10, 1, 0, i]));
            }
        }
        "ad" => {
            r.metadata.authentic_data = true;
            r.answers.push(a([192, 0, 2, 1]));
            let mut e = hickory_proto::op::Edns::new();
            e.set_max_payload(4096);
            e.options_mut().insert(hickory_proto::rr::rdata::opt::EdnsOption::Unknown(3, b"upstream-nsid".to_vec()));
            r.set_edns(e);
        }
        "cnameonly" => r.answers.push(Record::from_rdata(
            query.name().clone(),
            300,
            RData::CNAME(hickory_proto::rr::rdata::CNAME(Name::from_str("gone.example.").unwrap())),
        )),
        l if (l.starts_with("ext") || l.starts_with("nodata"))
            && query.name().to_ascii().to_ascii_lowercase().ends_with(".cluster.local.") =>
        {
            r.metadata.response_code = ResponseCode::NXDomain;
            let soa = SOA::new(
                Name::from_str("ns.dns.cluster.local.").unwrap(),
                Name::from_str("hostmaster.cluster.local.").unwrap(),
                1,
                7200,
                1800,
                86400,
                5,
            );
            r.authorities.push(Record::from_rdata(Name::from_str("cluster.local.").unwrap(), 5, RData::SOA(soa)));
        }
        l if l.starts_with("nodata") => {}
        _ => r.answers.push(a([192, 0, 2, 1])),
    }
    r.to_vec().ok()
}
