//! The request path from bytes to bytes: validate, route to a zone, run the chain, write the
//! reply the way CoreDNS's ScrubWriter does (EDNS reflected, truncated to the client's buffer).

use crate::config::{Block, ZoneTable};
use crate::metrics;
use crate::plugin::{Body, BoxFuture, ChainCursor, Done, Origin, Proto, Reply, Request, Rest, Step};
use kdns_wire::{check_query_into, class, error_reply, rcode, rtype, Edns, Message, Rejection};
use std::cell::Cell;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// EDNS options CoreDNS reflects back to the client (NSID, EXPIRE, COOKIE, TCP keepalive,
/// padding: `request.supportedOptions`); others are dropped unless registered with
/// [`support_option`].
const SUPPORTED_OPTIONS: [u16; 5] = [3, 9, 10, 11, 12];

/// Option codes registered by plugin setup (CoreDNS's `edns.SetSupportedOption`, called by
/// `rewrite … edns0 local`), stored as code + 1 (0: free slot). Process-wide and never cleared,
/// as in CoreDNS; the first 32 registered count.
static EXTRA_OPTIONS: [std::sync::atomic::AtomicU32; 32] = [const { std::sync::atomic::AtomicU32::new(0) }; 32];

/// Makes `code` an option the server reflects back to clients.
pub fn support_option(code: u16) {
    use std::sync::atomic::Ordering;
    let want = code as u32 + 1;
    for slot in &EXTRA_OPTIONS {
        match slot.compare_exchange(0, want, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return,
            Err(held) if held == want => return,
            Err(_) => {}
        }
    }
}

fn supported_option(code: u16) -> bool {
    // Slots fill in order (a slot is tried only after the ones before it were taken), so the
    // first free one ends the registered codes.
    SUPPORTED_OPTIONS.contains(&code)
        || EXTRA_OPTIONS
            .iter()
            .map(|slot| slot.load(std::sync::atomic::Ordering::Relaxed))
            .take_while(|&held| held != 0)
            .any(|held| held == code as u32 + 1)
}

pub enum Outcome {
    /// `out` holds the reply.
    Reply,
    /// Send nothing.
    Drop,
    /// The chain is waiting; drive this to completion, then send its bytes.
    Pending(Box<PendingReply>),
}

/// A query whose handler returned a future.
pub struct PendingReply {
    fut: BoxFuture,
    origin: Origin,
    index: usize,
    msg: Message,
    wire_len: usize,
    start: Instant,
}

impl PendingReply {
    /// Awaits the handler, runs the way back and encodes. Returns the bytes to send.
    pub async fn finish(mut self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        std::future::poll_fn(|cx| self.poll_into(cx, &mut out)).await;
        out
    }

    /// Polls the handler once; when it is done, runs the way back and writes the reply into
    /// `out` (a panic inside the handler becomes SERVFAIL, or aborts under `debug`). The UDP
    /// worker drives its waiting queries with this itself, without a task per query; once it
    /// returned `Ready` it must not be polled again.
    pub fn poll_into(&mut self, cx: &mut Context<'_>, out: &mut Vec<u8>) -> Poll<()> {
        let fut = &mut self.fut;
        let reply = match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(reply)) => reply,
            Err(panic) => self.origin.recover(&self.msg, panic),
        };
        let req = self.origin.request(&self.msg, self.wire_len, self.start, None);
        finish_chain(&self.origin.block, self.index, &req, reply, out);
        Poll::Ready(())
    }
}

impl Origin {
    fn request<'a>(
        &'a self,
        msg: &'a Message,
        wire_len: usize,
        start: Instant,
        chain: Option<&'a ChainCursor<'a>>,
    ) -> Request<'a> {
        Request {
            msg,
            wire_len,
            remote: self.remote,
            local: self.local,
            proto: self.proto,
            server: &self.stats.server,
            zone: &self.stats.zone,
            stats: &self.stats,
            start,
            chain,
            upstream_ad: Default::default(),
        }
    }

    /// Awaits a handler's future; a panic inside it becomes SERVFAIL (or aborts under `debug`).
    async fn settle(&self, fut: BoxFuture, msg: &Message) -> Reply {
        match (CatchUnwind { inner: fut }).await {
            Ok(r) => r,
            Err(panic) => self.recover(msg, panic),
        }
    }

    fn recover(&self, msg: &Message, panic: Box<dyn std::any::Any + Send>) -> Reply {
        recovered(&self.stats.server, msg, panic, self.block.debug)
    }
}

/// `kdns-probe.` in wire form: the query name of the node-cache supervisor's probe (class CH).
pub const PROBE_NAME: &[u8] = b"\x0akdns-probe\x00";

/// Handles one received packet. Synchronous answers land in `out`. `msg` is the caller's
/// scratch message the query is decoded into (its buffers are reused from query to query).
pub fn handle(
    packet: &[u8],
    remote: SocketAddr,
    local: SocketAddr,
    proto: Proto,
    table: &ZoneTable,
    msg: &mut Message,
    out: &mut Vec<u8>,
) -> Outcome {
    // A decoded query may still be rejected whole (BADVERS), but CoreDNS refuses other classes
    // before it looks at the EDNS version, so that reply waits for the class check.
    let badvers = match check_query_into(packet, msg) {
        Ok(()) => None,
        Err(Rejection::Drop) => return Outcome::Drop,
        Err(Rejection::Header(h, code)) => {
            error_reply(&h, code, out);
            return Outcome::Reply;
        }
        Err(Rejection::Reply(reply)) => Some(reply),
    };
    let q = &msg.questions[0];
    // The node-cache supervisor's liveness probe: answered by the server core itself (no plugin,
    // no upstream, no metrics), so it measures only that this process receives and replies.
    if badvers.is_none() && q.qclass == class::CH && q.name.as_wire() == PROBE_NAME {
        let header = kdns_wire::Header { id: msg.id, flags: msg.flags, ..Default::default() };
        error_reply(&header, rcode::NOERROR, out);
        return Outcome::Reply;
    }
    let class_refused = q.qclass != class::IN && !table.chaos;
    if let Some(reply) = badvers.filter(|_| !class_refused) {
        let limit = if proto == Proto::Tcp { 65535 } else { 512 };
        reply.encode(out, limit);
        return Outcome::Reply;
    }
    let routed = if class_refused { None } else { table.route(&q.name, q.qtype == rtype::DS) };
    let entry = routed.filter(|e| !e.block.plugins.is_empty());
    // `bufsize` acts on the request itself, as CoreDNS's does: later plugins, the upstream and the
    // reply's truncation all see the lowered size.
    if let (Some(limit), Some(edns)) = (entry.and_then(|e| e.block.bufsize), msg.edns.as_mut()) {
        edns.udp_size = edns.udp_size.min(limit);
    }
    let msg: &Message = msg;
    // Read from the chain's clock (a test's is manual): what the plugins age and file by. As
    // CoreDNS's, the request's time starts once the message is decoded.
    let start = entry.map_or_else(Instant::now, |e| e.block.clock.now());
    let stats = entry.map_or(&table.dropped, |e| &e.stats);
    let cursor = entry.map(|e| ChainCursor { block: &e.block, stats: &e.stats, at: Cell::new(0) });
    let req = Request {
        msg,
        wire_len: packet.len(),
        remote,
        local,
        proto,
        server: &stats.server,
        zone: &stats.zone,
        stats,
        start,
        chain: cursor.as_ref(),
        upstream_ad: Default::default(),
    };
    let Some(entry) = entry else {
        let size = if class_refused {
            // Written before CoreDNS wraps the writer in its scrubber: no OPT, even for an EDNS query.
            let mut refused = Message::reply_to(msg);
            refused.rcode = rcode::REFUSED;
            refused.encode_with(out, 512, None).len
        } else {
            write_reply(&req, Reply::rcode(msg, rcode::REFUSED, None).body_mut(), out)
        };
        report(&req, "", rcode::REFUSED, size);
        return Outcome::Reply;
    };
    let block = &entry.block;
    // A zone transfer (no transfer plugin is built) is refused as CoreDNS's chain refuses it:
    // after routing, seen by the block's observers like any refused query.
    if matches!(msg.questions[0].qtype, rtype::AXFR | rtype::IXFR) {
        finish_chain(block, block.plugins.len(), &req, Reply::rcode(msg, rcode::REFUSED, None), out);
        return Outcome::Reply;
    }
    let run = catch_unwind(AssertUnwindSafe(|| run_chain(block, 0, &req)));
    let (index, step) = match run {
        Ok(v) => v,
        Err(panic) => (block.plugins.len(), Step::Reply(recovered(req.server, msg, panic, block.debug))),
    };
    match step {
        Step::Reply(reply) => {
            finish_chain(block, index, &req, reply, out);
            Outcome::Reply
        }
        Step::Pending(fut) => Outcome::Pending(Box::new(PendingReply {
            fut,
            origin: req.origin(block, stats),
            index,
            msg: msg.clone(),
            wire_len: packet.len(),
            start,
        })),
        Step::Drop => Outcome::Drop,
        Step::Next => unreachable!("run_chain never returns Next"),
    }
}

/// Walks the chain until a plugin answers. Returns that plugin's index and its step.
fn run_chain(block: &Block, from: usize, req: &Request<'_>) -> (usize, Step) {
    for (i, p) in block.plugins.iter().enumerate().skip(from) {
        if !p.serves() {
            continue;
        }
        if let Some(c) = req.chain {
            c.at.set(i);
        }
        match p.serve(req) {
            Step::Next => continue,
            other => return (i, other),
        }
    }
    let last = block.plugins.last().map_or("", |p| p.name());
    let err = format!("plugin/{last}: no next plugin found");
    (block.plugins.len(), Step::Reply(Reply::servfail(req.msg, err)))
}

impl Rest {
    /// Runs the detached plugins with `msg` and returns their reply after their own way back
    /// (respond hooks of the plugins between here and the one that answered). Nothing is written
    /// to a client and no observer runs: this is a background refresh, not a query.
    pub async fn run(self, msg: Message) -> Reply {
        let start = self.origin.block.clock.now();
        let (index, step) = self.start(&msg, start);
        let reply = match step {
            Step::Pending(fut) => self.origin.settle(fut, &msg).await,
            Step::Reply(r) => r,
            // A background run has no client to stay silent to: a dropped query is a failure.
            Step::Drop => Reply::servfail(&msg, "dropped".into()),
            Step::Next => unreachable!("run_chain never returns Next"),
        };
        self.way_back(&msg, start, index, reply)
    }

    /// Like [`Rest::run`], but a name that belongs to another server block of the same
    /// listener is asked of that block's whole chain (its cache included), as if a client had
    /// sent it there; a name of this block goes on from here.
    pub async fn run_routed(self, msg: Message) -> Reply {
        let Some(q) = msg.questions.first() else { return self.run(msg).await };
        let other = crate::listener::table_for(self.origin.local).and_then(|table| {
            let entry = table.route(&q.name, q.qtype == rtype::DS)?;
            (!std::sync::Arc::ptr_eq(&entry.block, &self.origin.block))
                .then(|| (entry.block.clone(), entry.stats.clone()))
        });
        match other {
            Some((block, stats)) => {
                let origin = Origin { block, stats, ..self.origin.clone() };
                Rest { origin, from: 0 }.run(msg).await
            }
            None => self.run(msg).await,
        }
    }

    fn start(&self, msg: &Message, start: Instant) -> (usize, Step) {
        let o = &self.origin;
        let cursor = ChainCursor { block: &o.block, stats: &o.stats, at: Cell::new(self.from) };
        let req = o.request(msg, 0, start, Some(&cursor));
        match catch_unwind(AssertUnwindSafe(|| run_chain(&o.block, self.from, &req))) {
            Ok(v) => v,
            Err(panic) => (o.block.plugins.len(), Step::Reply(o.recover(msg, panic))),
        }
    }

    fn way_back(&self, msg: &Message, start: Instant, index: usize, mut reply: Reply) -> Reply {
        let o = &self.origin;
        let req = o.request(msg, 0, start, None);
        let between = &o.block.plugins[self.from.min(index)..index.min(o.block.plugins.len())];
        let back = catch_unwind(AssertUnwindSafe(|| {
            for p in between.iter().rev() {
                p.respond(&req, &mut reply);
            }
        }));
        match back {
            Ok(()) => reply,
            Err(panic) => o.recover(msg, panic),
        }
    }
}

/// The way back: respond hooks, write, observe hooks (innermost first).
fn finish_chain(block: &Block, index: usize, req: &Request<'_>, mut reply: Reply, out: &mut Vec<u8>) {
    let before = &block.plugins[..index.min(block.plugins.len())];
    // A reply only an rcode stands for (chain end, no upstream, REFUSED) is written by the server
    // core in CoreDNS, past every plugin's response writer: `header`, `nsid`, `minimal` and the
    // cache never see it.
    let back = catch_unwind(AssertUnwindSafe(|| {
        if reply.written {
            for p in before.iter().rev() {
                p.respond(req, &mut reply);
            }
        }
    }));
    if let Err(panic) = back {
        reply = recovered(req.server, req.msg, panic, block.debug);
    }
    let size = write_reply(req, reply.body_mut(), out);
    let done = Done {
        reply: &reply,
        size,
        plugin: reply.plugin,
        error: reply.error.as_deref(),
        duration: req.start.elapsed(),
    };
    let _ = catch_unwind(AssertUnwindSafe(|| {
        for p in before.iter().rev() {
            p.observe(req, &done);
        }
    }));
    reply.recycle();
}

/// Applies CoreDNS's `SizeAndDo` + `Scrub`: reflect the client's OPT (version 0, its buffer size,
/// its DO bit, supported options only), drop OPT for non-EDNS clients, truncate to the client's
/// buffer with TC. Returns the number of bytes written.
pub fn write_reply(req: &Request<'_>, body: &mut Body, out: &mut Vec<u8>) -> usize {
    let limit = match req.proto {
        Proto::Tcp => 65535,
        Proto::Udp => req.msg.edns.as_ref().map_or(512, |e| e.udp_size.max(512) as usize),
    };
    if let Body::Wire(bytes) = body {
        if write_wire(req, bytes, limit, out) {
            return out.len();
        }
        // Does not fit: take the general path, which truncates whole records.
        let decoded = Message::decode(bytes).unwrap_or_else(|_| Message::reply_to(req.msg));
        *body = Body::Message(decoded);
    }
    let Body::Message(msg) = body else { unreachable!("wire handled above") };
    match &req.msg.edns {
        Some(q) => {
            let mut o = msg.edns.take().unwrap_or_else(|| Edns { options: reflected_options(q), ..Edns::default() });
            o.version = 0;
            o.udp_size = q.udp_size;
            o.dnssec_ok = o.dnssec_ok || q.dnssec_ok;
            o.z = 0;
            msg.edns = Some(o);
        }
        None => msg.edns = None,
    }
    if !msg.has(kdns_wire::flag::QR) {
        msg.set(kdns_wire::flag::QR, true);
    }
    msg.id = req.msg.id;
    let encoded = msg.encode(out, limit);
    if encoded.truncated {
        msg.set(kdns_wire::flag::TC, true);
    }
    encoded.len
}

fn reflected_options(q: &Edns) -> Vec<(u16, Vec<u8>)> {
    q.options.iter().filter(|(c, _)| supported_option(*c)).cloned().collect()
}

/// Wire bodies (cache hits): copy, append the client's OPT, done — no parse. False when the
/// result would exceed `limit`.
fn write_wire(req: &Request<'_>, bytes: &[u8], limit: usize, out: &mut Vec<u8>) -> bool {
    out.clear();
    out.extend_from_slice(bytes);
    if out.len() < kdns_wire::HEADER_LEN {
        return false;
    }
    out[0..2].copy_from_slice(&req.msg.id.to_be_bytes());
    out[2] |= 0x80;
    if let Some(q) = &req.msg.edns {
        let options = || q.options.iter().filter(|(c, _)| supported_option(*c));
        out.push(0);
        out.extend_from_slice(&kdns_wire::rtype::OPT.to_be_bytes());
        out.extend_from_slice(&q.udp_size.to_be_bytes());
        out.extend_from_slice(&[0, 0, if q.dnssec_ok { 0x80 } else { 0 }, 0]);
        let rdlen: usize = options().map(|(_, d)| 4 + d.len()).sum();
        out.extend_from_slice(&(rdlen as u16).to_be_bytes());
        for (code, data) in options() {
            out.extend_from_slice(&code.to_be_bytes());
            out.extend_from_slice(&(data.len() as u16).to_be_bytes());
            out.extend_from_slice(data);
        }
        let arcount = u16::from_be_bytes([out[10], out[11]]).wrapping_add(1);
        out[10..12].copy_from_slice(&arcount.to_be_bytes());
    }
    out.len() <= limit
}

fn recovered(server: &str, query: &Message, panic: Box<dyn std::any::Any + Send>, debug: bool) -> Reply {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    if debug {
        crate::error!("Panic in server {server:?} with debug on, not recovering: {what}");
        crate::log::flush();
        std::process::abort();
    }
    metrics::panics_total().with(&[]).inc();
    crate::error!("Recovered from panic in server: {server:?} {what}");
    let mut r = Reply::rcode(query, rcode::SERVFAIL, None);
    r.plugin = "";
    r
}

/// CoreDNS `vars.Report`: the per-query metrics (used by `prometheus` and for dropped queries).
pub fn report(req: &Request<'_>, plugin: &'static str, code: u16, size: usize) {
    crate::clients::count_reply(req.remote.ip(), code);
    let proto = if req.proto == Proto::Tcp { 1 } else { 0 };
    let seconds = req.start.elapsed().as_secs_f64();
    req.stats.report(
        proto,
        req.family(),
        metric_type_index(req.qtype()),
        req.do_bit(),
        seconds,
        req.wire_len,
        size,
        code,
        plugin,
    );
}

/// CoreDNS's `type` label: a fixed set of types, everything else `other`.
fn metric_type_index(t: u16) -> usize {
    match t {
        rtype::A => 0,
        rtype::AAAA => 1,
        rtype::CNAME => 2,
        rtype::DNSKEY => 3,
        rtype::DS => 4,
        rtype::MX => 5,
        rtype::NSEC3 => 6,
        rtype::NSEC => 7,
        rtype::NS => 8,
        rtype::PTR => 9,
        rtype::RRSIG => 10,
        rtype::SOA => 11,
        rtype::SRV => 12,
        rtype::TXT => 13,
        rtype::HTTPS => 14,
        rtype::SVCB => 15,
        rtype::IXFR => 16,
        rtype::AXFR => 17,
        rtype::ANY => 18,
        _ => 19,
    }
}

/// Turns a panic inside a pending handler into an error value instead of killing the task.
struct CatchUnwind {
    inner: BoxFuture,
}

impl Future for CatchUnwind {
    type Output = Result<Reply, Box<dyn std::any::Any + Send>>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.inner;
        match catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(r)) => Poll::Ready(Ok(r)),
            Err(p) => Poll::Ready(Err(p)),
        }
    }
}
