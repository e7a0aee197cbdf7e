//! Response classification and minimal TTL (CoreDNS `response.Typify`,
//! `dnsutil.MinimalTTLWithMaximum`) and the cache's own test of whether an answer answers its
//! question (CoreDNS 1.14's `answersQuestion`, which keeps incomplete CNAME chains out).

use crate::entry::{walk_answers, walk_records};
use kdns_wire::{class, opcode, rcode, rtype, Header, Message, Name, RData, HEADER_LEN};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseType {
    NoError,
    NameError,
    NoData,
    Delegation,
    ServerError,
    Meta,
    Update,
    OtherError,
}

pub fn typify(m: &Message) -> ResponseType {
    let soa = m.authority.iter().any(|r| r.rtype == rtype::SOA);
    let ns = m.authority.iter().filter(|r| r.rtype == rtype::NS).count();
    classify(m.opcode(), m.questions.first().map(|q| q.qtype), !m.answers.is_empty(), m.rcode, soa, ns)
}

fn classify(op: u8, qtype: Option<u16>, answers: bool, code: u16, soa: bool, ns: usize) -> ResponseType {
    match op {
        opcode::UPDATE => return ResponseType::Update,
        opcode::NOTIFY => return ResponseType::Meta,
        _ => {}
    }
    if matches!(qtype, Some(rtype::AXFR | rtype::IXFR)) {
        return ResponseType::Meta;
    }
    if answers && code == rcode::NOERROR {
        return ResponseType::NoError;
    }
    if answers && code == rcode::NXDOMAIN {
        return ResponseType::OtherError;
    }
    match code {
        rcode::NOERROR if soa => ResponseType::NoData,
        // Without an SOA too: the cache then declines to store it (no denial TTL).
        rcode::NXDOMAIN => ResponseType::NameError,
        rcode::SERVFAIL | rcode::NOTIMP => ResponseType::ServerError,
        rcode::NOERROR if ns > 0 => ResponseType::Delegation,
        rcode::NOERROR => ResponseType::NoError,
        _ => ResponseType::OtherError,
    }
}

/// CoreDNS's fail-safe TTL for answers without records.
pub const MINIMAL_DEFAULT_TTL: Duration = Duration::from_secs(5);

/// The smallest TTL of all records (OPT excluded); 5 s when there are no records or the type is
/// not a cacheable answer. The caller caps it at its configured maximum (CoreDNS starts the
/// minimum at that maximum, which is the same).
pub fn minimal_ttl(m: &Message, t: ResponseType) -> Duration {
    if !matches!(t, ResponseType::NoError | ResponseType::NameError | ResponseType::NoData) {
        return MINIMAL_DEFAULT_TTL;
    }
    if m.answers.is_empty() && m.authority.is_empty() && m.additional.is_empty() {
        return MINIMAL_DEFAULT_TTL;
    }
    let min = m.answers.iter().chain(&m.authority).chain(&m.additional).map(|r| r.ttl as u64).min().unwrap_or(0);
    Duration::from_secs(min)
}

/// Whether a NOERROR reply's answer section answers its question: a record of the asked type
/// (any record for ANY) at the end of the CNAME chain that starts at the question name, the
/// chain unambiguous and without loops; for CNAME questions, one CNAME target at the name.
pub fn answers_question(m: &Message) -> bool {
    let Some(q) = m.questions.first() else { return false };
    if m.rcode != rcode::NOERROR || m.answers.is_empty() {
        return false;
    }
    let class_ok = |c: u16| q.qclass == class::ANY || c == q.qclass;
    if q.qtype == rtype::ANY {
        return m.answers.iter().any(|r| class_ok(r.class) && r.name.eq_ignore_case(&q.name));
    }
    // The one CNAME target at `owner` (`Ok(None)`: none), or `Err` when there are several.
    let target_of = |owner: &Name| -> Result<Option<Name>, ()> {
        let mut target: Option<&Name> = None;
        for r in &m.answers {
            let RData::Cname(t) = &r.data else { continue };
            if !class_ok(r.class) || !r.name.eq_ignore_case(owner) {
                continue;
            }
            match target {
                Some(prev) if !prev.eq_ignore_case(t) => return Err(()),
                _ => target = Some(t),
            }
        }
        Ok(target.cloned())
    };
    if q.qtype == rtype::CNAME {
        return matches!(target_of(&q.name), Ok(Some(_)));
    }
    let mut name = q.name.clone();
    let mut visited: Vec<Name> = Vec::new();
    loop {
        if visited.iter().any(|v| v.eq_ignore_case(&name)) {
            return false;
        }
        visited.push(name.clone());
        match target_of(&name) {
            Err(()) => return false,
            Ok(None) => break,
            Ok(Some(t)) => name = t,
        }
    }
    m.answers.iter().any(|r| r.rtype == q.qtype && class_ok(r.class) && r.name.eq_ignore_case(&name))
}

/// What the cache needs to know of a reply in wire form besides [`typify_wire`]: whether its
/// authority section has an SOA, and whether its answer section answers the question
/// ([`answers_question`]). Replies whose answers are only records at the question name are
/// read in place; CNAME chains and CNAME questions are decoded. `None` when it does not walk.
pub fn soa_and_answering_wire(wire: &[u8]) -> Option<(bool, bool)> {
    let header = Header::parse(wire).ok()?;
    let mut soa = false;
    let qname_len = walk_records(wire, |section, t, _| soa |= section == 1 && t == rtype::SOA)?;
    if header.rcode_low() != rcode::NOERROR || header.ancount == 0 {
        return Some((soa, false));
    }
    let qname = &wire[HEADER_LEN..HEADER_LEN + qname_len];
    let at = HEADER_LEN + qname_len;
    let qtype = u16::from_be_bytes([wire[at], wire[at + 1]]);
    let qclass = u16::from_be_bytes([wire[at + 2], wire[at + 3]]);
    let class_ok = |c: u16| qclass == class::ANY || c == qclass;
    let (mut found, mut chain) = (false, qtype == rtype::CNAME);
    walk_answers(wire, |owner_at, t, c| {
        if !class_ok(c) || !kdns_wire::name::name_at_equals(wire, owner_at, qname, true) {
            return;
        }
        chain |= t == rtype::CNAME && qtype != rtype::ANY;
        found |= qtype == rtype::ANY || t == qtype;
    })?;
    if !chain {
        return Some((soa, found));
    }
    let m = Message::decode(wire).ok()?;
    Some((soa, answers_question(&m)))
}

/// [`typify`] and [`minimal_ttl`] of a reply in wire form without OPT (a forwarded answer the
/// forwarder checked), without decoding it. `None` when it does not walk.
pub fn typify_wire(wire: &[u8]) -> Option<(ResponseType, Duration)> {
    let mut soa = false;
    let mut ns = 0;
    let mut min_ttl: Option<u32> = None;
    let qname_len = walk_records(wire, |section, t, ttl_at| {
        if section == 1 {
            soa |= t == rtype::SOA;
            ns += (t == rtype::NS) as usize;
        }
        let ttl = u32::from_be_bytes([wire[ttl_at], wire[ttl_at + 1], wire[ttl_at + 2], wire[ttl_at + 3]]);
        min_ttl = Some(min_ttl.map_or(ttl, |m| m.min(ttl)));
    })?;
    let header = Header::parse(wire).ok()?;
    let at = HEADER_LEN + qname_len;
    let qtype = u16::from_be_bytes([wire[at], wire[at + 1]]);
    let kind = classify(header.opcode(), Some(qtype), header.ancount > 0, header.rcode_low(), soa, ns);
    let ttl = match (kind, min_ttl) {
        (ResponseType::NoError | ResponseType::NameError | ResponseType::NoData, Some(min)) => {
            Duration::from_secs(min as u64)
        }
        _ => MINIMAL_DEFAULT_TTL,
    };
    Some((kind, ttl))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kdns_wire::{class, flag, Name, Question, RData, Record};
    use std::net::Ipv4Addr;

    #[test]
    fn the_wire_view_classifies_as_the_message_does() {
        let n = Name::from_ascii("a.example.org.").unwrap();
        let zone = Name::from_ascii("example.org.").unwrap();
        let soa = RData::Soa {
            mname: zone.clone(),
            rname: zone.clone(),
            serial: 1,
            refresh: 2,
            retry: 3,
            expire: 4,
            minimum: 5,
        };
        let base = |code: u16, qtype: u16| {
            let mut m = Message { id: 1, flags: flag::QR, rcode: code, ..Default::default() };
            m.questions.push(Question { name: n.clone(), qtype, qclass: class::IN });
            m
        };
        let mut cases = Vec::new();
        let mut answer = base(rcode::NOERROR, rtype::A);
        answer.answers.push(Record::new(n.clone(), 300, RData::A(Ipv4Addr::LOCALHOST)));
        answer.additional.push(Record::new(n.clone(), 20, RData::A(Ipv4Addr::LOCALHOST)));
        cases.push(answer);
        let mut nx = base(rcode::NXDOMAIN, rtype::A);
        nx.authority.push(Record::new(zone.clone(), 60, soa.clone()));
        cases.push(nx);
        let mut nodata = base(rcode::NOERROR, rtype::AAAA);
        nodata.authority.push(Record::new(zone.clone(), 7200, soa));
        cases.push(nodata);
        let mut delegation = base(rcode::NOERROR, rtype::A);
        delegation.authority.push(Record::new(zone.clone(), 60, RData::Ns(zone.clone())));
        cases.push(delegation);
        cases.push(base(rcode::SERVFAIL, rtype::A));
        cases.push(base(rcode::REFUSED, rtype::A));
        cases.push(base(rcode::NOERROR, rtype::AXFR));
        cases.push(base(rcode::NOERROR, rtype::A));
        let mut update = base(rcode::NOERROR, rtype::SOA);
        update.flags |= (opcode::UPDATE as u16) << 11;
        cases.push(update);
        for m in cases {
            let kind = typify(&m);
            assert_eq!(typify_wire(&m.to_vec()), Some((kind, minimal_ttl(&m, kind))), "{m:?}");
        }
        assert_eq!(typify_wire(&[0; 11]), None);
    }
}
