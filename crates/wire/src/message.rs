//! Owned DNS messages: decode with validation, encode with optional compression and truncation.

use crate::name::Name;
use crate::{class, rtype, WireError, HEADER_LEN};
use std::net::{Ipv4Addr, Ipv6Addr};

/// Header flag bits (RFC 1035 §4.1.1, RFC 4035 §3.2).
pub mod flag {
    pub const QR: u16 = 1 << 15;
    pub const AA: u16 = 1 << 10;
    pub const TC: u16 = 1 << 9;
    pub const RD: u16 = 1 << 8;
    pub const RA: u16 = 1 << 7;
    pub const Z: u16 = 1 << 6;
    pub const AD: u16 = 1 << 5;
    pub const CD: u16 = 1 << 4;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Header {
    pub id: u16,
    /// All 16 flag bits including opcode and the low 4 bits of the rcode.
    pub flags: u16,
    pub qdcount: u16,
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
}

impl Header {
    pub fn parse(msg: &[u8]) -> Result<Header, WireError> {
        if msg.len() < HEADER_LEN {
            return Err(WireError::Short);
        }
        let u = |i: usize| u16::from_be_bytes([msg[i], msg[i + 1]]);
        Ok(Header { id: u(0), flags: u(2), qdcount: u(4), ancount: u(6), nscount: u(8), arcount: u(10) })
    }
    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0xF) as u8
    }
    pub fn has(&self, bit: u16) -> bool {
        self.flags & bit != 0
    }
    pub fn rcode_low(&self) -> u16 {
        self.flags & 0xF
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question {
    pub name: Name,
    pub qtype: u16,
    pub qclass: u16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub name: Name,
    pub rtype: u16,
    pub class: u16,
    pub ttl: u32,
    pub data: RData,
}

impl Record {
    pub fn new(name: Name, ttl: u32, data: RData) -> Record {
        Record { name, rtype: data.rtype(), class: class::IN, ttl, data }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RData {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Ns(Name),
    Cname(Name),
    Ptr(Name),
    Mx {
        preference: u16,
        exchange: Name,
    },
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: Name,
    },
    Soa {
        mname: Name,
        rname: Name,
        serial: u32,
        refresh: u32,
        retry: u32,
        expire: u32,
        minimum: u32,
    },
    Txt(Vec<Vec<u8>>),
    Hinfo {
        cpu: Vec<u8>,
        os: Vec<u8>,
    },
    /// Any other type, kept as opaque bytes (RFC 3597: never compressed, so safe to copy).
    Other {
        rtype: u16,
        data: Vec<u8>,
    },
}

impl RData {
    pub fn rtype(&self) -> u16 {
        match self {
            RData::A(_) => rtype::A,
            RData::Aaaa(_) => rtype::AAAA,
            RData::Ns(_) => rtype::NS,
            RData::Cname(_) => rtype::CNAME,
            RData::Ptr(_) => rtype::PTR,
            RData::Mx { .. } => rtype::MX,
            RData::Srv { .. } => rtype::SRV,
            RData::Soa { .. } => rtype::SOA,
            RData::Txt(_) => rtype::TXT,
            RData::Hinfo { .. } => rtype::HINFO,
            RData::Other { rtype, .. } => *rtype,
        }
    }
}

/// The OPT pseudo-record (RFC 6891), lifted out of the additional section.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Edns {
    pub udp_size: u16,
    /// Upper 8 bits of the 12-bit rcode.
    pub ext_rcode: u8,
    pub version: u8,
    pub dnssec_ok: bool,
    /// The 15 remaining flag bits (Z), kept for completeness.
    pub z: u16,
    pub options: Vec<(u16, Vec<u8>)>,
}

impl Edns {
    pub fn new(udp_size: u16) -> Edns {
        Edns { udp_size, ..Edns::default() }
    }
    fn encoded_len(&self) -> usize {
        11 + self.options.iter().map(|(_, d)| 4 + d.len()).sum::<usize>()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Message {
    pub id: u16,
    /// Flag bits without the rcode; the rcode lives in `rcode` (12 bits with EDNS).
    pub flags: u16,
    pub rcode: u16,
    pub questions: Vec<Question>,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
    pub additional: Vec<Record>,
    pub edns: Option<Edns>,
}

/// Outcome of encoding with a size limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Encoded {
    pub len: usize,
    pub truncated: bool,
}

impl Message {
    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0xF) as u8
    }
    pub fn has(&self, bit: u16) -> bool {
        self.flags & bit != 0
    }
    pub fn set(&mut self, bit: u16, on: bool) {
        if on {
            self.flags |= bit;
        } else {
            self.flags &= !bit;
        }
    }

    /// A reply skeleton as miekg/dns `SetReply` makes it: same ID, opcode, RD and CD, QR set,
    /// the first question copied.
    pub fn reply_to(query: &Message) -> Message {
        let keep = query.flags & (0xF << 11 | flag::RD | flag::CD);
        Message {
            id: query.id,
            flags: keep | flag::QR,
            rcode: 0,
            questions: query.questions.iter().take(1).cloned().collect(),
            ..Message::default()
        }
    }

    pub fn decode(msg: &[u8]) -> Result<Message, WireError> {
        let mut out = Message::default();
        out.decode_into(msg)?;
        Ok(out)
    }

    /// [`Message::decode`] into this message, reusing its buffers: a query with one question and
    /// at most a bare OPT record decodes without allocating once the buffers have grown. On error
    /// the message holds whatever was decoded so far and must not be used.
    pub fn decode_into(&mut self, msg: &[u8]) -> Result<(), WireError> {
        let header = Header::parse(msg)?;
        self.id = header.id;
        self.flags = header.flags & !0xF;
        self.rcode = header.rcode_low();
        self.answers.clear();
        self.authority.clear();
        self.additional.clear();
        let mut edns_slot = self.edns.take().or_else(|| SPARE_EDNS.with(|s| s.take()));
        let result = self.decode_sections(msg, &header, &mut edns_slot);
        if let Some(unused) = edns_slot {
            SPARE_EDNS.with(|s| s.set(Some(unused)));
        }
        result
    }

    fn decode_sections(&mut self, msg: &[u8], header: &Header, edns_slot: &mut Option<Edns>) -> Result<(), WireError> {
        let qd = header.qdcount as usize;
        self.questions.truncate(qd);
        let mut pos = HEADER_LEN;
        for i in 0..qd {
            if i == self.questions.len() {
                self.questions.push(Question { name: Name::root(), qtype: 0, qclass: 0 });
            }
            let q = &mut self.questions[i];
            let next = q.name.read_in_place(msg, pos)?;
            let fixed = msg.get(next..next + 4).ok_or(WireError::Short)?;
            q.qtype = u16::from_be_bytes([fixed[0], fixed[1]]);
            q.qclass = u16::from_be_bytes([fixed[2], fixed[3]]);
            pos = next + 4;
        }
        for (count, section) in [(header.ancount, 0), (header.nscount, 1), (header.arcount, 2)] {
            for _ in 0..count {
                // The usual OPT (root owner, in the additional section) is read in place so an
                // EDNS query costs no allocation; anything else goes through the general reader.
                if section == 2 && msg.get(pos) == Some(&0) && msg.get(pos + 1..pos + 3) == Some(&[0, 41][..]) {
                    if self.edns.is_some() {
                        return Err(WireError::BadOpt);
                    }
                    let fixed = msg.get(pos + 3..pos + 11).ok_or(WireError::Short)?;
                    let class = u16::from_be_bytes([fixed[0], fixed[1]]);
                    let ttl = u32::from_be_bytes([fixed[2], fixed[3], fixed[4], fixed[5]]);
                    let rdlen = u16::from_be_bytes([fixed[6], fixed[7]]) as usize;
                    let data = msg.get(pos + 11..pos + 11 + rdlen).ok_or(WireError::Short)?;
                    let mut edns = edns_slot.take().unwrap_or_default();
                    edns.udp_size = class;
                    edns.ext_rcode = (ttl >> 24) as u8;
                    edns.version = (ttl >> 16) as u8;
                    edns.dnssec_ok = ttl & 0x8000 != 0;
                    edns.z = (ttl & 0x7FFF) as u16;
                    parse_options_into(data, &mut edns.options)?;
                    self.rcode |= (edns.ext_rcode as u16) << 4;
                    self.edns = Some(edns);
                    pos += 11 + rdlen;
                    continue;
                }
                let (rr, next) = read_record(msg, pos)?;
                pos = next;
                if rr.rtype == rtype::OPT {
                    // An OPT outside the additional section, or with an owner other than root.
                    return Err(WireError::BadOpt);
                }
                match section {
                    0 => self.answers.push(rr),
                    1 => self.authority.push(rr),
                    _ => self.additional.push(rr),
                }
            }
        }
        Ok(())
    }

    /// Encodes into `out` (cleared first). Compresses names. When the message does not fit in
    /// `max_size`, whole records are dropped from the end (answer, then authority, then
    /// additional), TC is set, and the OPT record is always kept (as miekg/dns `Truncate`).
    pub fn encode(&self, out: &mut Vec<u8>, max_size: usize) -> Encoded {
        self.encode_with(out, max_size, self.edns.as_ref())
    }

    /// Encodes as [`Message::encode`] would with `edns` in place of the message's own OPT
    /// (`None`: no OPT record), without cloning the message to change it.
    pub fn encode_with(&self, out: &mut Vec<u8>, max_size: usize, edns: Option<&Edns>) -> Encoded {
        let max_size = max_size.clamp(512, 65535);
        out.clear();
        let mut enc = Encoder { buf: out, names: Vec::new() };
        let rcode_low = self.rcode & 0xF;
        enc.buf.extend_from_slice(&self.id.to_be_bytes());
        enc.buf.extend_from_slice(&((self.flags & !0xF) | rcode_low).to_be_bytes());
        enc.buf.extend_from_slice(&[0; 8]);
        // Bare OPT (no options) is always kept room for; options go when they do not fit.
        let bare_opt = if edns.is_some() { 11 } else { 0 };
        let mut truncated = false;
        let mut qd = 0u16;
        for q in &self.questions {
            let mark = (enc.buf.len(), enc.names.len());
            enc.name(&q.name, true);
            enc.buf.extend_from_slice(&q.qtype.to_be_bytes());
            enc.buf.extend_from_slice(&q.qclass.to_be_bytes());
            if enc.buf.len() + bare_opt > max_size {
                enc.buf.truncate(mark.0);
                enc.names.truncate(mark.1);
                truncated = true;
                break;
            }
            qd += 1;
        }
        let full_opt = edns.map_or(0, Edns::encoded_len);
        let keep_options = enc.buf.len() + full_opt <= max_size;
        let opt_len = if keep_options { full_opt } else { bare_opt };
        let limit = if truncated { 0 } else { max_size.saturating_sub(opt_len) };
        let mut counts = [0u16; 3];
        'sections: for (i, section) in [&self.answers, &self.authority, &self.additional].into_iter().enumerate() {
            for rr in section {
                let mark = (enc.buf.len(), enc.names.len());
                enc.record(rr);
                if enc.buf.len() > limit {
                    enc.buf.truncate(mark.0);
                    enc.names.truncate(mark.1);
                    truncated = true;
                    break 'sections;
                }
                counts[i] += 1;
            }
        }
        let mut arcount = counts[2];
        if let Some(edns) = edns {
            if keep_options {
                enc.opt(edns, (self.rcode >> 4) as u8);
            } else {
                let bare = Edns { options: Vec::new(), ..edns.clone() };
                enc.opt(&bare, (self.rcode >> 4) as u8);
            }
            arcount += 1;
        }
        let buf = enc.buf;
        buf[4..6].copy_from_slice(&qd.to_be_bytes());
        buf[6..8].copy_from_slice(&counts[0].to_be_bytes());
        buf[8..10].copy_from_slice(&counts[1].to_be_bytes());
        buf[10..12].copy_from_slice(&arcount.to_be_bytes());
        if truncated {
            buf[2] |= (flag::TC >> 8) as u8;
        }
        Encoded { len: buf.len(), truncated }
    }

    /// Encodes without a size limit into a fresh buffer (tests, cold paths).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(512);
        self.encode(&mut v, 65535);
        v
    }
}

thread_local! {
    /// Buffers of decoded queries kept across queries of different shapes (EDNS or not, with
    /// options or not), so [`Message::decode_into`] stays allocation-free on a worker thread.
    static SPARE_EDNS: std::cell::Cell<Option<Edns>> = const { std::cell::Cell::new(None) };
    static SPARE_OPTIONS: std::cell::RefCell<Vec<(u16, Vec<u8>)>> = const { std::cell::RefCell::new(Vec::new()) };
}
/// Option buffers kept per thread (queries carry one or two options: cookie, padding, ECS).
const SPARE_OPTIONS_MAX: usize = 8;

/// EDNS options into `out`, reusing its entries' buffers (and this thread's spare ones).
fn parse_options_into(mut data: &[u8], out: &mut Vec<(u16, Vec<u8>)>) -> Result<(), WireError> {
    let mut n = 0;
    while !data.is_empty() {
        if data.len() < 4 {
            return Err(WireError::BadOpt);
        }
        let code = u16::from_be_bytes([data[0], data[1]]);
        let len = u16::from_be_bytes([data[2], data[3]]) as usize;
        let value = data.get(4..4 + len).ok_or(WireError::BadOpt)?;
        match out.get_mut(n) {
            Some((c, v)) => {
                *c = code;
                v.clear();
                v.extend_from_slice(value);
            }
            None => {
                let spare = SPARE_OPTIONS.with(|s| s.try_borrow_mut().ok().and_then(|mut s| s.pop()));
                let mut v = spare.map_or_else(Vec::new, |(_, v)| v);
                v.clear();
                v.extend_from_slice(value);
                out.push((code, v));
            }
        }
        n += 1;
        data = &data[4 + len..];
    }
    if out.len() > n {
        SPARE_OPTIONS.with(|s| {
            if let Ok(mut s) = s.try_borrow_mut() {
                while out.len() > n && s.len() < SPARE_OPTIONS_MAX {
                    s.extend(out.pop());
                }
            }
        });
        out.truncate(n);
    }
    Ok(())
}

fn read_record(msg: &[u8], pos: usize) -> Result<(Record, usize), WireError> {
    let (name, next) = Name::read(msg, pos)?;
    let fixed = msg.get(next..next + 10).ok_or(WireError::Short)?;
    let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
    let class = u16::from_be_bytes([fixed[2], fixed[3]]);
    let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
    let rdlen = u16::from_be_bytes([fixed[8], fixed[9]]) as usize;
    let start = next + 10;
    let end = start + rdlen;
    let rdata = msg.get(start..end).ok_or(WireError::Short)?;
    let data = read_rdata(msg, rtype, start, end, rdata)?;
    Ok((Record { name, rtype, class, ttl, data }, end))
}

impl Message {
    /// RDATA of one type from uncompressed bytes (RFC 3597 `\\#` data in zone files).
    pub fn decode_rdata(rtype: u16, data: &[u8]) -> Result<RData, WireError> {
        read_rdata(data, rtype, 0, data.len(), data)
    }
}

fn read_rdata(msg: &[u8], rtype: u16, start: usize, end: usize, rdata: &[u8]) -> Result<RData, WireError> {
    // Names inside RDATA may be compressed for the RFC 1035 types; decompress them against the
    // whole message, then insist the RDATA was consumed exactly.
    let name_at = |pos: usize| -> Result<(Name, usize), WireError> {
        let (n, next) = Name::read(&msg[..end], pos)?;
        Ok((n, next))
    };
    let exact = |next: usize, data: RData| {
        if next == end {
            Ok(data)
        } else {
            Err(WireError::BadRdata)
        }
    };
    let u16_at = |p: usize| -> Result<u16, WireError> {
        msg.get(p..p + 2).filter(|_| p + 2 <= end).map(|b| u16::from_be_bytes([b[0], b[1]])).ok_or(WireError::BadRdata)
    };
    match rtype {
        rtype::A => {
            let b: [u8; 4] = rdata.try_into().map_err(|_| WireError::BadRdata)?;
            Ok(RData::A(Ipv4Addr::from(b)))
        }
        rtype::AAAA => {
            let b: [u8; 16] = rdata.try_into().map_err(|_| WireError::BadRdata)?;
            Ok(RData::Aaaa(Ipv6Addr::from(b)))
        }
        rtype::NS | rtype::CNAME | rtype::PTR => {
            let (n, next) = name_at(start)?;
            exact(
                next,
                match rtype {
                    rtype::NS => RData::Ns(n),
                    rtype::CNAME => RData::Cname(n),
                    _ => RData::Ptr(n),
                },
            )
        }
        rtype::MX => {
            let preference = u16_at(start)?;
            let (exchange, next) = name_at(start + 2)?;
            exact(next, RData::Mx { preference, exchange })
        }
        rtype::SRV => {
            let (priority, weight, port) = (u16_at(start)?, u16_at(start + 2)?, u16_at(start + 4)?);
            let (target, next) = name_at(start + 6)?;
            exact(next, RData::Srv { priority, weight, port, target })
        }
        rtype::SOA => {
            let (mname, p) = name_at(start)?;
            let (rname, p) = name_at(p)?;
            let nums = msg.get(p..p + 20).filter(|_| p + 20 <= end).ok_or(WireError::BadRdata)?;
            let n = |i: usize| u32::from_be_bytes([nums[i], nums[i + 1], nums[i + 2], nums[i + 3]]);
            exact(
                p + 20,
                RData::Soa { mname, rname, serial: n(0), refresh: n(4), retry: n(8), expire: n(12), minimum: n(16) },
            )
        }
        rtype::TXT | rtype::HINFO => {
            let mut strings = Vec::new();
            let mut rest = rdata;
            while !rest.is_empty() {
                let len = rest[0] as usize;
                let s = rest.get(1..1 + len).ok_or(WireError::BadRdata)?;
                strings.push(s.to_vec());
                rest = &rest[1 + len..];
            }
            if rtype == rtype::TXT {
                Ok(RData::Txt(strings))
            } else if strings.len() == 2 {
                let os = strings.pop().unwrap_or_default();
                let cpu = strings.pop().unwrap_or_default();
                Ok(RData::Hinfo { cpu, os })
            } else {
                Err(WireError::BadRdata)
            }
        }
        _ => Ok(RData::Other { rtype, data: rdata.to_vec() }),
    }
}

struct Encoder<'a> {
    buf: &'a mut Vec<u8>,
    /// Offsets of names (and name suffixes) already written, usable as compression targets.
    names: Vec<u16>,
}

impl Encoder<'_> {
    fn name(&mut self, name: &Name, compress: bool) {
        let wire = name.as_wire();
        let mut pos = 0;
        while wire[pos] != 0 {
            let suffix = &wire[pos..];
            if compress {
                if let Some(target) = self.find(suffix) {
                    self.buf.extend_from_slice(&(0xC000 | target).to_be_bytes());
                    return;
                }
            }
            let here = self.buf.len();
            if here < 0x3FFF {
                self.names.push(here as u16);
            }
            let len = wire[pos] as usize;
            self.buf.extend_from_slice(&wire[pos..pos + 1 + len]);
            pos += 1 + len;
        }
        self.buf.push(0);
    }

    /// Finds an earlier occurrence of the uncompressed `suffix`, byte for byte: a pointer to a
    /// name spelled in another case would change the case a client sees (the case of owner
    /// names is kept as the records carry it).
    fn find(&self, suffix: &[u8]) -> Option<u16> {
        self.names.iter().copied().find(|&off| crate::name::name_at_equals(self.buf, off as usize, suffix, false))
    }

    fn record(&mut self, rr: &Record) {
        self.name(&rr.name, true);
        self.buf.extend_from_slice(&rr.rtype.to_be_bytes());
        self.buf.extend_from_slice(&rr.class.to_be_bytes());
        self.buf.extend_from_slice(&rr.ttl.to_be_bytes());
        let len_at = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        match &rr.data {
            RData::A(ip) => self.buf.extend_from_slice(&ip.octets()),
            RData::Aaaa(ip) => self.buf.extend_from_slice(&ip.octets()),
            RData::Ns(n) | RData::Cname(n) | RData::Ptr(n) => self.name(n, true),
            RData::Mx { preference, exchange } => {
                self.buf.extend_from_slice(&preference.to_be_bytes());
                self.name(exchange, true);
            }
            RData::Srv { priority, weight, port, target } => {
                for v in [priority, weight, port] {
                    self.buf.extend_from_slice(&v.to_be_bytes());
                }
                // RFC 2782: the SRV target is not compressed.
                self.name(target, false);
            }
            RData::Soa { mname, rname, serial, refresh, retry, expire, minimum } => {
                self.name(mname, true);
                self.name(rname, true);
                for v in [serial, refresh, retry, expire, minimum] {
                    self.buf.extend_from_slice(&v.to_be_bytes());
                }
            }
            RData::Txt(strings) => {
                for s in strings {
                    self.char_string(s);
                }
            }
            RData::Hinfo { cpu, os } => {
                self.char_string(cpu);
                self.char_string(os);
            }
            RData::Other { data, .. } => self.buf.extend_from_slice(data),
        }
        let rdlen = (self.buf.len() - len_at - 2) as u16;
        self.buf[len_at..len_at + 2].copy_from_slice(&rdlen.to_be_bytes());
    }

    fn char_string(&mut self, s: &[u8]) {
        let s = &s[..s.len().min(255)];
        self.buf.push(s.len() as u8);
        self.buf.extend_from_slice(s);
    }

    fn opt(&mut self, edns: &Edns, ext_rcode: u8) {
        self.buf.push(0);
        self.buf.extend_from_slice(&rtype::OPT.to_be_bytes());
        self.buf.extend_from_slice(&edns.udp_size.to_be_bytes());
        let ttl = (ext_rcode as u32) << 24
            | (edns.version as u32) << 16
            | if edns.dnssec_ok { 0x8000 } else { 0 }
            | (edns.z as u32 & 0x7FFF);
        self.buf.extend_from_slice(&ttl.to_be_bytes());
        let rdlen: usize = edns.options.iter().map(|(_, d)| 4 + d.len()).sum();
        self.buf.extend_from_slice(&(rdlen as u16).to_be_bytes());
        for (code, data) in &edns.options {
            self.buf.extend_from_slice(&code.to_be_bytes());
            self.buf.extend_from_slice(&(data.len() as u16).to_be_bytes());
            self.buf.extend_from_slice(data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn sample() -> Message {
        let mut m = Message { id: 7, flags: flag::QR | flag::RD, ..Default::default() };
        m.questions.push(Question { name: name("www.example.org."), qtype: rtype::A, qclass: class::IN });
        for i in 0..3 {
            m.answers.push(Record::new(name("www.example.org."), 30, RData::A(Ipv4Addr::new(10, 0, 0, i))));
        }
        m.authority.push(Record::new(
            name("example.org."),
            60,
            RData::Soa {
                mname: name("ns.example.org."),
                rname: name("hostmaster.example.org."),
                serial: 1,
                refresh: 2,
                retry: 3,
                expire: 4,
                minimum: 5,
            },
        ));
        m.additional.push(Record::new(
            name("_udp.example.org."),
            0,
            RData::Srv { priority: 0, weight: 0, port: 53, target: name("x.example.org.") },
        ));
        m.edns = Some(Edns { udp_size: 1232, dnssec_ok: true, ..Default::default() });
        m
    }

    #[test]
    fn round_trip_with_compression() {
        let m = sample();
        let wire = m.to_vec();
        let back = Message::decode(&wire).unwrap();
        assert_eq!(back, m);
        // the second answer owner is a pointer to the question name
        assert!(wire.windows(2).any(|w| w == [0xC0, 12]));
    }

    #[test]
    fn compression_keeps_the_case_of_each_name() {
        // Found by the wire_query fuzz target: an owner differing from an earlier name only in
        // case was written as a pointer to it and decoded in the other case.
        let mut m = sample();
        m.answers.push(Record::new(name("WWW.Example.org."), 30, RData::A(Ipv4Addr::new(10, 0, 0, 9))));
        let back = Message::decode(&m.to_vec()).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.answers.last().unwrap().name.to_string(), "WWW.Example.org.");
        let crash = [
            0u8, 2, 1, 1, 0, 1, 0, 0, 0, 0, 0, 1, 3, 119, 101, 98, 4, 115, 104, 111, 112, 3, 115, 118, 114, 5, 108, 1,
            0, 0, 0, 0, 0, 0, 3, 114, 5, 76, 1, 0, 0, 0, 0, 0, 0, 3, 0, 1, 0, 0, 0, 0, 0, 62,
        ];
        let m = Message::decode(&crash).unwrap();
        assert_eq!(Message::decode(&m.to_vec()).unwrap(), m);
    }

    #[test]
    fn truncation_keeps_opt_and_sets_tc() {
        let mut m = sample();
        for i in 0..100 {
            m.answers.push(Record::new(name("www.example.org."), 30, RData::A(Ipv4Addr::new(10, 1, 0, i))));
        }
        let mut out = Vec::new();
        let e = m.encode(&mut out, 512);
        assert!(e.truncated && e.len <= 512);
        let back = Message::decode(&out).unwrap();
        assert!(back.has(flag::TC));
        assert!(back.edns.is_some());
        assert!(back.answers.len() < 103);
        assert!(back.authority.is_empty());
    }

    #[test]
    fn oversized_opt_options_are_dropped_not_overflowing() {
        let mut m = sample();
        m.edns.as_mut().unwrap().options.push((12, vec![0; 600]));
        let mut out = Vec::new();
        let e = m.encode(&mut out, 512);
        assert!(e.len <= 512, "{}", e.len);
        let back = Message::decode(&out).unwrap();
        assert!(back.edns.unwrap().options.is_empty());
        // and so many questions that not even they fit
        let mut q = Message::default();
        for i in 0..40 {
            q.questions.push(Question {
                name: name(&format!("{}{i}.example.org.", "x".repeat(30))),
                qtype: 1,
                qclass: 1,
            });
        }
        q.edns = Some(Edns::new(512));
        let e = q.encode(&mut out, 512);
        assert!(e.truncated && e.len <= 512);
        assert!(Message::decode(&out).unwrap().edns.is_some());
    }

    #[test]
    fn duplicate_opt_rejected() {
        let mut m = sample();
        m.additional.clear();
        let mut wire = m.to_vec();
        let opt = wire[wire.len() - 11..].to_vec();
        wire.extend_from_slice(&opt);
        wire[11] = 2;
        assert_eq!(Message::decode(&wire).unwrap_err(), WireError::BadOpt);
    }

    #[test]
    fn extended_rcode_round_trip() {
        let mut m = sample();
        m.rcode = 16; // BADVERS
        let back = Message::decode(&m.to_vec()).unwrap();
        assert_eq!(back.rcode, 16);
        assert_eq!(back.edns.unwrap().ext_rcode, 1);
    }
}
