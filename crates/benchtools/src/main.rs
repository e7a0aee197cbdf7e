//! `kdns-bench`: the programs `bench/peers.sh` and `bench/callgrind.sh` need besides dnsperf.
//!
//! * `reflect ADDR [--plain]` — the canned-answer floor: a UDP server that answers every query
//!   with one fixed A record and does nothing else (recvmmsg/sendmmsg batches, or one
//!   recvfrom/sendto per query with `--plain`). What a DNS server costs per query on this
//!   machine when it does no DNS work at all.
//! * `load ADDR FILE [options]` — a batching load generator (sendmmsg/recvmmsg over several
//!   sockets, a fixed number of queries in flight, optional fixed rate) for where dnsperf itself
//!   is the bottleneck, and for latency percentiles at a fixed rate. Reads dnsperf's query file
//!   format (`name TYPE` per line) and prints one `key=value` line.
//! * `hits N` — answers N queries from the cache through `handler::handle` (no sockets), after a
//!   warm-up: run under callgrind by `bench/callgrind.sh`, whose difference between two values of
//!   N is the deterministic instruction count of one cache hit.

use kdns_server::batch::{Inbox, Outbox};
use std::collections::VecDeque;
use std::io::{self, BufRead};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("reflect") => reflect(&args[1..]),
        Some("load") => load(&args[1..]),
        Some("hits") => hits(&args[1..]),
        _ => Err("usage: kdns-bench reflect ADDR [--plain] | kdns-bench load ADDR FILE [--seconds S] [--inflight N] [--rate QPS] [--sockets K] [--once] [--histogram]".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kdns-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

type Res = Result<(), String>;

/// `hits N`: N cache hits through the shared fixture (the allocation test's), for callgrind.
fn hits(args: &[String]) -> Res {
    let n: usize = args.first().and_then(|a| a.parse().ok()).ok_or("usage: kdns-bench hits N")?;
    let mut hits = kdns_benchtools::Hits::warmed()?;
    let mut bytes = 0usize;
    for i in 0..n {
        bytes += hits.answer(i)?.len();
    }
    println!("hits={n} reply_bytes={bytes}");
    Ok(())
}

fn addr(s: Option<&String>) -> Result<SocketAddr, String> {
    s.ok_or("missing address")?.parse().map_err(|e| format!("bad address: {e}"))
}

/// Offset just past the question of `q` (12-byte header, one name, type and class).
fn question_end(q: &[u8]) -> Option<usize> {
    let mut at = 12;
    loop {
        let len = *q.get(at)? as usize;
        if len == 0 {
            at += 1;
            break;
        }
        if len & 0xC0 != 0 {
            return None;
        }
        at += 1 + len;
    }
    (at + 4 <= q.len()).then_some(at + 4)
}

/// The canned answer: the query's header and question, QR/RA set, one A record 192.0.2.1.
fn canned(q: &[u8], out: &mut Vec<u8>) -> bool {
    let Some(end) = question_end(q) else { return false };
    out.clear();
    out.extend_from_slice(&q[..end]);
    out[2] = 0x80 | (q[2] & 0x01);
    out[3] = 0x80;
    out[4..12].copy_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0]);
    out.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x01, 0x2c, 0, 4, 192, 0, 2, 1]);
    true
}

fn reflect(args: &[String]) -> Res {
    let bind = addr(args.first())?;
    let plain = args.iter().any(|a| a == "--plain");
    let sock = UdpSocket::bind(bind).map_err(|e| format!("bind {bind}: {e}"))?;
    let _ = socket2::SockRef::from(&sock).set_recv_buffer_size(4 << 20);
    if plain {
        let mut buf = [0u8; 4096];
        let mut out = Vec::with_capacity(512);
        loop {
            let (n, from) = sock.recv_from(&mut buf).map_err(|e| e.to_string())?;
            if canned(&buf[..n], &mut out) {
                let _ = sock.send_to(&out, from);
            }
        }
    }
    let mut inbox = Inbox::new(64, 4096);
    let mut outbox = Outbox::new(64);
    loop {
        let n = match inbox.recv(&sock, libc::MSG_WAITFORONE) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.to_string()),
        };
        for i in 0..n {
            let (Some(q), Some(from)) = inbox.get(i) else { continue };
            if canned(q, outbox.next_buf()) {
                outbox.commit(from);
            }
        }
        outbox.flush(sock.as_raw_fd());
    }
}

fn read_queries(path: &str) -> Result<Vec<Vec<u8>>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let mut out = Vec::new();
    for (n, line) in io::BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| format!("{path}: {e}"))?;
        let mut parts = line.split_whitespace();
        let Some(name) = parts.next() else { continue };
        let t = parts.next().unwrap_or("A");
        let q = kdns_wire::rtype::from_name(t)
            .and_then(|t| kdns_benchtools::query(name, t, None))
            .ok_or(format!("{path}:{}: bad query {line:?}", n + 1))?;
        out.push(q);
    }
    if out.is_empty() {
        return Err(format!("{path}: no queries"));
    }
    Ok(out)
}

struct LoadOptions {
    seconds: f64,
    inflight: usize,
    rate: Option<f64>,
    sockets: usize,
    once: bool,
    /// Print the latency histogram (log-2 buckets) and where the slow replies fell in time.
    histogram: bool,
}

fn load(args: &[String]) -> Res {
    let server = addr(args.first())?;
    let file = args.get(1).ok_or("missing query file")?;
    let mut o = LoadOptions { seconds: 5.0, inflight: 200, rate: None, sockets: 8, once: false, histogram: false };
    let mut it = args[2..].iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--seconds" => o.seconds = val()?.parse().map_err(|_| "bad --seconds")?,
            "--inflight" => o.inflight = val()?.parse().map_err(|_| "bad --inflight")?,
            "--rate" => o.rate = Some(val()?.parse().map_err(|_| "bad --rate")?),
            "--sockets" => o.sockets = val()?.parse().map_err(|_| "bad --sockets")?,
            "--once" => o.once = true,
            "--histogram" => o.histogram = true,
            other => return Err(format!("unknown option {other}")),
        }
    }
    let queries = read_queries(file)?;
    run_load(server, &queries, &o).map_err(|e| e.to_string())
}

/// Per-socket query IDs in flight: send time in ns since start (0 = free).
struct Slots {
    sent: Vec<u64>,
    next_id: u16,
}

fn run_load(server: SocketAddr, queries: &[Vec<u8>], o: &LoadOptions) -> io::Result<()> {
    let bind: SocketAddr = if server.is_ipv4() { "127.0.0.1:0" } else { "[::1]:0" }.parse().expect("literal");
    let mut socks = Vec::new();
    for _ in 0..o.sockets.max(1) {
        let s = UdpSocket::bind(bind)?;
        s.connect(server)?;
        s.set_nonblocking(true)?;
        let _ = socket2::SockRef::from(&s).set_recv_buffer_size(4 << 20);
        socks.push(s);
    }
    let mut slots: Vec<Slots> = socks.iter().map(|_| Slots { sent: vec![0; 65536], next_id: 1 }).collect();
    let mut order: VecDeque<(u8, u16, u64)> = VecDeque::new();
    let mut outboxes: Vec<Outbox> = socks.iter().map(|_| Outbox::new(32)).collect();
    let mut inbox = Inbox::new(64, 4096);
    let mut hist = vec![0u32; 1_000_001];
    // Send times (ms since start) of the replies slower than SLOW_US: whether the tail is a few
    // stalls (many slow replies sent within the same milliseconds) or spread over the run.
    let mut slow_at: Vec<u32> = Vec::new();
    let (mut sent, mut answered, mut lost, mut inflight) = (0u64, 0u64, 0u64, 0usize);
    let mut rcodes = [0u64; 16];
    let start = Instant::now();
    let deadline = Duration::from_secs_f64(o.seconds);
    let timeout_ns = 1_000_000_000u64;
    let mut next_query = 0usize;
    let mut rr = 0usize;
    let mut send_done_at: Option<Instant> = None;
    loop {
        let now = start.elapsed();
        let now_ns = now.as_nanos() as u64 + 1;
        let sending = if o.once { next_query < queries.len() } else { now < deadline };
        if !sending {
            let done = *send_done_at.get_or_insert_with(Instant::now);
            if inflight == 0 || done.elapsed() > Duration::from_secs(1) {
                break;
            }
        }
        let mut progressed = false;
        if sending {
            let mut budget = o.inflight.saturating_sub(inflight) as u64;
            if let Some(rate) = o.rate {
                budget = budget.min(((rate * now.as_secs_f64()) as u64 + 1).saturating_sub(sent));
            }
            while budget > 0 && !(o.once && next_query >= queries.len()) {
                let s = rr % socks.len();
                rr += 1;
                let slot = &mut slots[s];
                let id = slot.next_id;
                slot.next_id = slot.next_id.wrapping_add(1).max(1);
                if slot.sent[id as usize] != 0 {
                    continue;
                }
                let q = &queries[next_query % queries.len()];
                next_query += 1;
                let buf = outboxes[s].next_buf();
                buf.clear();
                buf.extend_from_slice(q);
                buf[0..2].copy_from_slice(&id.to_be_bytes());
                outboxes[s].commit(server);
                slot.sent[id as usize] = now_ns;
                order.push_back((s as u8, id, now_ns));
                sent += 1;
                inflight += 1;
                budget -= 1;
                if outboxes[s].is_full() {
                    outboxes[s].flush(socks[s].as_raw_fd());
                }
            }
            for (ob, s) in outboxes.iter_mut().zip(&socks) {
                if !ob.is_empty() {
                    ob.flush(s.as_raw_fd());
                    progressed = true;
                }
            }
        }
        for (s, sock) in socks.iter().enumerate() {
            while let Ok(n) = inbox.recv(sock, libc::MSG_DONTWAIT) {
                let at = start.elapsed().as_nanos() as u64 + 1;
                for i in 0..n {
                    let (Some(r), _) = inbox.get(i) else { continue };
                    if r.len() < 12 {
                        continue;
                    }
                    let id = u16::from_be_bytes([r[0], r[1]]) as usize;
                    let t = slots[s].sent[id];
                    if t == 0 {
                        continue;
                    }
                    slots[s].sent[id] = 0;
                    inflight -= 1;
                    answered += 1;
                    rcodes[(r[3] & 0xF) as usize] += 1;
                    let us = ((at - t) / 1000) as usize;
                    hist[us.min(1_000_000)] += 1;
                    if us >= SLOW_US {
                        slow_at.push((t / 1_000_000) as u32);
                    }
                }
                progressed |= n > 0;
                if n < 64 {
                    break;
                }
            }
        }
        while let Some(&(s, id, t)) = order.front() {
            let current = slots[s as usize].sent[id as usize];
            if current == t && now_ns.saturating_sub(t) < timeout_ns {
                break;
            }
            if current == t {
                slots[s as usize].sent[id as usize] = 0;
                inflight -= 1;
                lost += 1;
            }
            order.pop_front();
        }
        if !progressed {
            wait_readable(&socks, o.rate.is_some() || inflight >= o.inflight);
        }
    }
    let elapsed = if o.once { start.elapsed() } else { deadline.min(start.elapsed()) };
    let pct = |p: f64| -> f64 {
        let want = ((answered as f64) * p).ceil() as u64;
        let mut acc = 0u64;
        for (us, n) in hist.iter().enumerate() {
            acc += *n as u64;
            if acc >= want.max(1) {
                return us as f64 / 1000.0;
            }
        }
        0.0
    };
    let max = hist.iter().rposition(|&n| n > 0).unwrap_or(0) as f64 / 1000.0;
    println!(
        "sent={sent} answered={answered} lost={lost} qps={:.0} p50_ms={:.3} p99_ms={:.3} p999_ms={:.3} max_ms={max:.3} noerror={} servfail={} nxdomain={} refused={}",
        answered as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        pct(0.999),
        rcodes[0],
        rcodes[2],
        rcodes[3],
        rcodes[5]
    );
    if o.histogram {
        print_histogram(&hist, &slow_at);
    }
    Ok(())
}

/// Replies at least this slow (µs) count as the tail in `--histogram`'s stall report.
const SLOW_US: usize = 2000;

/// The latency distribution in log-2 buckets of µs, then how the replies slower than SLOW_US
/// fell in time: stalls of the host or the server show as many slow replies in few 10 ms
/// windows, a costlier path as slow replies spread over the whole run.
fn print_histogram(hist: &[u32], slow_at: &[u32]) {
    let mut lo = 0usize;
    let mut hi = 1usize;
    while lo < hist.len() {
        let n: u64 = hist[lo..hi.min(hist.len())].iter().map(|&n| n as u64).sum();
        if n > 0 {
            println!("hist_us {lo:>7}-{:<7} {n}", hi - 1);
        }
        lo = hi;
        hi *= 2;
    }
    let mut windows: Vec<u32> = slow_at.iter().map(|ms| ms / 10).collect();
    windows.sort_unstable();
    windows.dedup();
    println!(
        "slow_replies={} (>= {} ms) in {} distinct 10 ms windows{}",
        slow_at.len(),
        SLOW_US / 1000,
        windows.len(),
        if windows.is_empty() {
            String::new()
        } else {
            let at: Vec<String> = windows.iter().take(8).map(|w| (w * 10).to_string()).collect();
            format!(", starting at {} ms", at.join(", "))
        }
    );
}

/// Sleeps until a reply may be waiting (up to 1 ms when only time can make progress).
#[allow(unsafe_code)]
fn wait_readable(socks: &[UdpSocket], short: bool) {
    let mut fds: Vec<libc::pollfd> =
        socks.iter().map(|s| libc::pollfd { fd: s.as_raw_fd(), events: libc::POLLIN, revents: 0 }).collect();
    // SAFETY: fds is a valid array of pollfd for its length.
    unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as _, if short { 1 } else { 10 }) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canned_answer_copies_the_question_and_adds_one_record() {
        let q = kdns_benchtools::query("a.example", 1, None).unwrap();
        let mut out = Vec::new();
        assert!(canned(&q, &mut out));
        assert_eq!(&out[12..q.len()], &q[12..]);
        assert_eq!(&out[4..8], &[0, 1, 0, 1]);
        assert_eq!(out[2] & 0x80, 0x80);
        assert_eq!(out.len(), q.len() + 16);
        assert!(!canned(&q[..14], &mut out));
    }
}
