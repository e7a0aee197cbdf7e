//! What a server does with the bytes a client sent: accept a query, or reject it with the
//! answer the reliability table prescribes (drop, FORMERR, NOTIMP, BADVERS, REFUSED).

use crate::message::{flag, Edns, Header, Message};
use crate::{opcode, rcode, rtype, HEADER_LEN};

/// Why a packet is not handed to the plugin chain, and what to send instead.
#[derive(Debug, PartialEq, Eq)]
pub enum Rejection {
    /// No reply at all: no readable header, or not a query (QR set).
    Drop,
    /// A header-only reply with this rcode (FORMERR, NOTIMP), built by [`error_reply`].
    Header(Header, u16),
    /// A full reply (BADVERS carries the question and an OPT record).
    Reply(Box<Message>),
}

/// Validates a client query. Mirrors miekg/dns's accept rules (QR → drop; opcode other than
/// QUERY → NOTIMP; QDCOUNT ≠ 1, ANCOUNT > 1, NSCOUNT > 1, ARCOUNT > 2 → FORMERR; unpack error →
/// FORMERR) plus the stricter RFC rules the reliability reference recommends: two OPT records,
/// an OPT owner other than the root or outside the additional section → FORMERR; EDNS version
/// above 0 → BADVERS; QTYPE OPT → FORMERR; TSIG/TKEY/MAILA/MAILB → NOTIMP. Zone transfers are
/// queries here: the server refuses them after routing (no transfer plugin is built). Trailing
/// bytes after the message are ignored, as CoreDNS does.
pub fn check_query(packet: &[u8]) -> Result<Message, Rejection> {
    let mut msg = Message::default();
    check_query_into(packet, &mut msg)?;
    Ok(msg)
}

/// [`check_query`] decoding into `msg`, whose buffers are reused (the hot path keeps one per
/// worker). `msg` holds the query only when this returns `Ok`.
pub fn check_query_into(packet: &[u8], msg: &mut Message) -> Result<(), Rejection> {
    let header = match Header::parse(packet) {
        Ok(h) => h,
        Err(_) => return Err(Rejection::Drop),
    };
    if header.has(flag::QR) {
        return Err(Rejection::Drop);
    }
    if header.opcode() != opcode::QUERY {
        return Err(Rejection::Header(header, rcode::NOTIMP));
    }
    if header.qdcount != 1 || header.ancount > 1 || header.nscount > 1 || header.arcount > 2 {
        return Err(Rejection::Header(header, rcode::FORMERR));
    }
    if msg.decode_into(packet).is_err() && !short_question(packet, &header, msg) {
        return Err(Rejection::Header(header, rcode::FORMERR));
    }
    if let Some(edns) = &msg.edns {
        // RFC 7873 §5.2.2: a COOKIE option that cannot hold a client cookie (8 octets) plus an
        // optional server cookie (8 to 32 octets) is a malformed query.
        if edns.options.iter().any(|(code, data)| *code == 10 && !(data.len() == 8 || (16..=40).contains(&data.len())))
        {
            return Err(Rejection::Header(header, rcode::FORMERR));
        }
        if edns.version > 0 {
            let mut reply = Message::reply_to(msg);
            reply.rcode = rcode::BADVERS;
            // CoreDNS answers BADVERS with a bare OPT: version 0, buffer size 0, no DO, no options.
            reply.edns = Some(Edns::default());
            return Err(Rejection::Reply(Box::new(reply)));
        }
    }
    match msg.questions[0].qtype {
        rtype::OPT => Err(Rejection::Header(header, rcode::FORMERR)),
        rtype::TSIG | rtype::TKEY | rtype::MAILA | rtype::MAILB => Err(Rejection::Header(header, rcode::NOTIMP)),
        _ => Ok(()),
    }
}

/// miekg/dns reads a question that ends after its name (or after its type) as type and class 0
/// (class 0), and CoreDNS then handles it like any query (REFUSED for the class, in a block
/// without `forward` or `chaos`). Only when no record follows: a count it cannot read is an
/// error there too. Fills `msg` with that question and returns true when `packet` is one.
fn short_question(packet: &[u8], header: &Header, msg: &mut Message) -> bool {
    if header.ancount != 0 || header.nscount != 0 || header.arcount != 0 {
        return false;
    }
    let Ok((name, end)) = crate::Name::read(packet, HEADER_LEN) else { return false };
    let qtype = match packet.len() - end {
        0 => 0,
        2 => u16::from_be_bytes([packet[end], packet[end + 1]]),
        _ => return false,
    };
    *msg = Message { id: header.id, flags: header.flags, ..Message::default() };
    msg.questions.push(crate::Question { name, qtype, qclass: 0 });
    true
}

/// Header-only reply as miekg/dns builds it for rejected queries: ID and RD/CD kept, QR set,
/// AA and Z cleared, opcode QUERY (kept for NOTIMP), no sections. Never larger than the query.
pub fn error_reply(header: &Header, rcode_value: u16, out: &mut Vec<u8>) {
    let mut flags = header.flags & (flag::RD | flag::CD | flag::AD | flag::TC | flag::RA);
    if rcode_value == rcode::NOTIMP {
        flags |= header.flags & (0xF << 11);
    }
    flags |= flag::QR | (rcode_value & 0xF);
    out.clear();
    out.extend_from_slice(&header.id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&[0; HEADER_LEN - 4]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{class, Name, Question};

    fn query(qtype: u16) -> Message {
        Message {
            id: 0x1234,
            flags: flag::RD,
            questions: vec![Question { name: Name::from_ascii("example.org.").unwrap(), qtype, qclass: class::IN }],
            ..Default::default()
        }
    }

    fn rcode_of(r: Result<Message, Rejection>) -> Option<u16> {
        match r {
            Ok(_) => None,
            Err(Rejection::Drop) => Some(999),
            Err(Rejection::Header(_, rc)) => Some(rc),
            Err(Rejection::Reply(m)) => Some(m.rcode),
        }
    }

    #[test]
    fn table() {
        let ok = query(rtype::A).to_vec();
        assert_eq!(rcode_of(check_query(&ok)), None);
        assert_eq!(rcode_of(check_query(&ok[..11])), Some(999));
        let mut qr = ok.clone();
        qr[2] |= 0x80;
        assert_eq!(rcode_of(check_query(&qr)), Some(999));
        assert_eq!(rcode_of(check_query(&ok[..12])), Some(rcode::FORMERR));
        let mut qd0 = ok.clone();
        qd0[5] = 0;
        assert_eq!(rcode_of(check_query(&qd0)), Some(rcode::FORMERR));
        let mut qd2 = ok.clone();
        qd2[5] = 2;
        assert_eq!(rcode_of(check_query(&qd2)), Some(rcode::FORMERR));
        let mut update = ok.clone();
        update[2] |= 5 << 3;
        assert_eq!(rcode_of(check_query(&update)), Some(rcode::NOTIMP));
        let mut garbage = ok.clone();
        garbage.extend_from_slice(b"trailing");
        assert_eq!(rcode_of(check_query(&garbage)), None);
        assert_eq!(rcode_of(check_query(&query(rtype::OPT).to_vec())), Some(rcode::FORMERR));
        assert_eq!(rcode_of(check_query(&query(rtype::AXFR).to_vec())), None, "refused by the server, after routing");
        let mut v1 = query(rtype::A);
        v1.edns = Some(Edns { udp_size: 4096, version: 1, ..Default::default() });
        assert_eq!(rcode_of(check_query(&v1.to_vec())), Some(rcode::BADVERS));
    }

    /// The edges miekg/dns decides for CoreDNS: a question cut after its name or its type is a
    /// query of class 0; cut inside the type, or with a record count it cannot read, FORMERR.
    #[test]
    fn short_questions_and_missing_records() {
        let ok = query(rtype::AAAA).to_vec();
        let name_end = ok.len() - 4;
        let q = check_query(&ok[..name_end]).expect("name only is a query");
        assert_eq!((q.questions[0].qtype, q.questions[0].qclass), (0, 0));
        assert_eq!(q.questions[0].name.to_string(), "example.org.");
        let q = check_query(&ok[..name_end + 2]).expect("name and type is a query");
        assert_eq!((q.questions[0].qtype, q.questions[0].qclass), (rtype::AAAA, 0));
        assert_eq!(rcode_of(check_query(&ok[..name_end + 1])), Some(rcode::FORMERR));
        assert_eq!(rcode_of(check_query(&ok[..name_end + 3])), Some(rcode::FORMERR));
        let mut ar1 = ok.clone();
        ar1[11] = 1;
        assert_eq!(rcode_of(check_query(&ar1)), Some(rcode::FORMERR), "ARCOUNT 1 without a record");
        let mut cut_ar1 = ok[..name_end].to_vec();
        cut_ar1[11] = 1;
        assert_eq!(rcode_of(check_query(&cut_ar1)), Some(rcode::FORMERR));
        // A question name that is a pointer into the header reads the header bytes as a name,
        // as miekg/dns does (the pointer goes backwards).
        let mut ptr = ok[..12].to_vec();
        ptr[4..6].copy_from_slice(&[0, 1]);
        ptr.extend_from_slice(&[0xC0, 5, 0, 1, 0, 1]);
        let q = check_query(&ptr).expect("a pointer into the header");
        assert_eq!(q.questions[0].name.as_wire(), &[1, 0, 0]);
    }

    #[test]
    fn error_reply_shape() {
        let ok = query(rtype::A).to_vec();
        let h = Header::parse(&ok).unwrap();
        let mut out = Vec::new();
        error_reply(&h, rcode::FORMERR, &mut out);
        let back = Header::parse(&out).unwrap();
        assert_eq!(back.id, 0x1234);
        assert!(back.has(flag::QR) && back.has(flag::RD));
        assert_eq!(back.rcode_low(), rcode::FORMERR);
        assert_eq!(out.len(), HEADER_LEN);
    }
}
