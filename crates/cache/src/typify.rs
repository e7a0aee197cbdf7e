//! Response classification as CoreDNS 1.14.7's cache makes it: `response.Typify`, then the
//! cache's own rules (`cacheResponseType`, `MinimalTTLWithMaximum`, `key`), including its test of
//! whether an answer answers the question (`answersQuestion`, which keeps incomplete CNAME
//! chains out). The same decision is read from a message or, without decoding, from wire bytes.

use crate::entry::Records;
use kdns_wire::{class, flag, opcode, rcode, rtype, Header, Message, Name, RData, HEADER_LEN};
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

/// CoreDNS's fail-safe TTL for answers without records.
pub const MINIMAL_DEFAULT_TTL: Duration = Duration::from_secs(5);

/// CoreDNS's `response.Typify`.
pub fn typify(m: &Message) -> ResponseType {
    Facts::of(m, false).typify()
}

/// What the cache decides a reply by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Classification {
    /// `response.Typify`, turned into NoData for answers that do not answer the question when an
    /// SOA bounds them (`cacheResponseType`).
    pub kind: ResponseType,
    /// The smallest record TTL, 5 s for replies without records or that are no answer; the
    /// caller caps it at its configured maximum (CoreDNS starts the minimum there: the same).
    pub msg_ttl: Duration,
    /// CoreDNS's `key` admits it: not truncated, not an error other than SERVFAIL/NOTIMP, not
    /// meta or update, and no denial without an SOA to bound it (NXDOMAIN, or answers that do
    /// not answer).
    pub storable: bool,
}

/// [`Classification`] of a decoded reply.
pub fn classify_reply(m: &Message) -> Classification {
    Facts::of(m, !m.answers.is_empty() && !answers_question(m)).decide()
}

/// [`Classification`] of a reply in wire form without OPT (a forwarded answer the forwarder
/// checked), in one walk over its records. Answers that are records at the question name are
/// judged in place; a CNAME among them (or a CNAME question) is followed on the decoded message.
/// `None` when it does not walk.
pub fn classify_wire(wire: &[u8]) -> Option<Classification> {
    let header = Header::parse(wire).ok()?;
    let (qname_len, mut records) = Records::start(wire)?;
    let at = HEADER_LEN + qname_len;
    let qname = &wire[HEADER_LEN..at];
    let (qtype, qclass) =
        (u16::from_be_bytes([wire[at], wire[at + 1]]), u16::from_be_bytes([wire[at + 2], wire[at + 3]]));
    let mut f = Facts {
        op: header.opcode(),
        qtype: Some(qtype),
        answers: header.ancount > 0,
        code: header.rcode_low(),
        truncated: header.has(flag::TC),
        ..Facts::default()
    };
    let (mut found, mut chain) = (false, qtype == rtype::CNAME);
    while let Some(r) = records.next(wire)? {
        match r.section {
            0 if class_matches(r.class, qclass) && kdns_wire::name::name_at_equals(wire, r.owner_at, qname, true) => {
                chain |= r.rtype == rtype::CNAME && qtype != rtype::ANY;
                found |= qtype == rtype::ANY || r.rtype == qtype;
            }
            1 => {
                f.soa |= r.rtype == rtype::SOA;
                f.ns += (r.rtype == rtype::NS) as usize;
            }
            _ => {}
        }
        let ttl = u32::from_be_bytes([wire[r.ttl_at], wire[r.ttl_at + 1], wire[r.ttl_at + 2], wire[r.ttl_at + 3]]);
        f.min_ttl = Some(f.min_ttl.map_or(ttl, |m| m.min(ttl)));
    }
    // Only a NOERROR reply can answer; other rcodes never reach the question test.
    f.non_answer = f.answers
        && match (f.code == rcode::NOERROR, chain) {
            (true, true) => !answers_question(&Message::decode(wire).ok()?),
            (true, false) => !found,
            (false, _) => true,
        };
    Some(f.decide())
}

/// What the decision is made from, read from either form of a reply.
#[derive(Default)]
struct Facts {
    op: u8,
    qtype: Option<u16>,
    answers: bool,
    code: u16,
    soa: bool,
    ns: usize,
    truncated: bool,
    /// Answers that do not answer the question.
    non_answer: bool,
    min_ttl: Option<u32>,
}

impl Facts {
    fn of(m: &Message, non_answer: bool) -> Facts {
        let records = m.answers.iter().chain(&m.authority).chain(&m.additional);
        Facts {
            op: m.opcode(),
            qtype: m.questions.first().map(|q| q.qtype),
            answers: !m.answers.is_empty(),
            code: m.rcode,
            soa: m.authority.iter().any(|r| r.rtype == rtype::SOA),
            ns: m.authority.iter().filter(|r| r.rtype == rtype::NS).count(),
            truncated: m.has(flag::TC),
            non_answer,
            min_ttl: records.map(|r| r.ttl).min(),
        }
    }

    fn typify(&self) -> ResponseType {
        match self.op {
            opcode::UPDATE => return ResponseType::Update,
            opcode::NOTIFY => return ResponseType::Meta,
            _ => {}
        }
        if matches!(self.qtype, Some(rtype::AXFR | rtype::IXFR)) {
            return ResponseType::Meta;
        }
        match self.code {
            rcode::NOERROR if self.answers => ResponseType::NoError,
            rcode::NXDOMAIN if self.answers => ResponseType::OtherError,
            rcode::NOERROR if self.soa => ResponseType::NoData,
            // Without an SOA too: the cache then declines to store it (no denial TTL).
            rcode::NXDOMAIN => ResponseType::NameError,
            rcode::SERVFAIL | rcode::NOTIMP => ResponseType::ServerError,
            rcode::NOERROR if self.ns > 0 => ResponseType::Delegation,
            rcode::NOERROR => ResponseType::NoError,
            _ => ResponseType::OtherError,
        }
    }

    fn decide(&self) -> Classification {
        let mut kind = self.typify();
        if kind == ResponseType::NoError && self.soa && self.non_answer {
            kind = ResponseType::NoData;
        }
        let msg_ttl = match (kind, self.min_ttl) {
            (ResponseType::NoError | ResponseType::NameError | ResponseType::NoData, Some(min)) => {
                Duration::from_secs(min as u64)
            }
            _ => MINIMAL_DEFAULT_TTL,
        };
        let denial_without_soa =
            !self.soa && (kind == ResponseType::NameError || (kind == ResponseType::NoError && self.non_answer));
        let storable = !self.truncated
            && !denial_without_soa
            && !matches!(kind, ResponseType::OtherError | ResponseType::Meta | ResponseType::Update);
        Classification { kind, msg_ttl, storable }
    }
}

fn class_matches(rr_class: u16, qclass: u16) -> bool {
    qclass == class::ANY || rr_class == qclass
}

/// Whether a NOERROR reply's answer section answers its question: a record of the asked type
/// (any record for ANY) at the end of the CNAME chain that starts at the question name, the
/// chain unambiguous and without loops; for CNAME questions, one CNAME target at the name.
fn answers_question(m: &Message) -> bool {
    let Some(q) = m.questions.first() else { return false };
    if m.rcode != rcode::NOERROR || m.answers.is_empty() {
        return false;
    }
    if q.qtype == rtype::ANY {
        return m.answers.iter().any(|r| class_matches(r.class, q.qclass) && r.name.eq_ignore_case(&q.name));
    }
    // The one CNAME target at `owner` (`Ok(None)`: none), or `Err` when there are several.
    let target_of = |owner: &Name| -> Result<Option<&Name>, ()> {
        let mut target: Option<&Name> = None;
        for r in &m.answers {
            let RData::Cname(t) = &r.data else { continue };
            if !class_matches(r.class, q.qclass) || !r.name.eq_ignore_case(owner) {
                continue;
            }
            match target {
                Some(prev) if !prev.eq_ignore_case(t) => return Err(()),
                _ => target = Some(t),
            }
        }
        Ok(target)
    };
    if q.qtype == rtype::CNAME {
        return matches!(target_of(&q.name), Ok(Some(_)));
    }
    let mut name = &q.name;
    let mut visited: Vec<&Name> = Vec::new();
    loop {
        if visited.iter().any(|v| v.eq_ignore_case(name)) {
            return false;
        }
        visited.push(name);
        match target_of(name) {
            Err(()) => return false,
            Ok(None) => break,
            Ok(Some(t)) => name = t,
        }
    }
    m.answers.iter().any(|r| r.rtype == q.qtype && class_matches(r.class, q.qclass) && r.name.eq_ignore_case(name))
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
        nodata.authority.push(Record::new(zone.clone(), 7200, soa.clone()));
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
        // A CNAME whose target is absent: NOERROR that does not answer (not stored without an
        // SOA, NODATA with one), and the same chain completed.
        let target = Name::from_ascii("b.example.org.").unwrap();
        let mut short_chain = base(rcode::NOERROR, rtype::A);
        short_chain.answers.push(Record::new(n.clone(), 300, RData::Cname(target.clone())));
        cases.push(short_chain.clone());
        let mut bounded = short_chain.clone();
        bounded.authority.push(Record::new(zone.clone(), 60, soa));
        cases.push(bounded.clone());
        let mut complete = short_chain.clone();
        complete.answers.push(Record::new(target, 30, RData::A(Ipv4Addr::LOCALHOST)));
        cases.push(complete.clone());
        let mut nx_no_soa = base(rcode::NXDOMAIN, rtype::A);
        nx_no_soa.answers.push(Record::new(n.clone(), 300, RData::A(Ipv4Addr::LOCALHOST)));
        cases.push(nx_no_soa);
        let mut truncated = base(rcode::NOERROR, rtype::A);
        truncated.flags |= flag::TC;
        cases.push(truncated);
        for m in &cases {
            assert_eq!(classify_wire(&m.to_vec()), Some(classify_reply(m)), "{m:?}");
        }
        let c = classify_reply(&short_chain);
        assert_eq!((c.kind, c.storable), (ResponseType::NoError, false), "a chain that stops short");
        let c = classify_reply(&bounded);
        assert_eq!((c.kind, c.storable), (ResponseType::NoData, true), "with an SOA it is NODATA");
        let c = classify_reply(&complete);
        assert_eq!((c.kind, c.storable, c.msg_ttl), (ResponseType::NoError, true, Duration::from_secs(30)));
        assert!(!classify_reply(cases.last().unwrap()).storable, "truncated");
        assert_eq!(classify_wire(&[0; 11]), None);
    }
}
