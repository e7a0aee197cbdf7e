//! Reply validation: an upstream's bytes are the answer to a query only when the whole message
//! is well-formed by the decoder's rules and ID, QR and question match (RFC 5452 §9.1).

use kdns_server::plugin::Reply;
use kdns_wire::flag;
use kdns_wire::{check_message, Header, Message, HEADER_LEN};

/// Why an upstream datagram is not the answer to a query.
#[derive(Debug, PartialEq, Eq)]
pub enum Rejected {
    /// Not well-formed, or another query's ID: not ours, keep waiting (UDP).
    Foreign,
    /// Our ID, but not a reply to our question (QR clear, no single question, another name,
    /// type or class): CoreDNS answers the client FORMERR.
    WrongQuestion,
}

/// What the client gets for an upstream reply to the wrong question: FORMERR with the question,
/// as CoreDNS's forward writes it (`state.Match` failed).
pub(super) fn wrong_reply(q: &Message) -> Reply {
    let mut m = Message::reply_to(q);
    m.rcode = kdns_wire::rcode::FORMERR;
    Reply::message(m, "forward")
}

/// Accepts `bytes` only as the answer to `q` sent with `id`: QR set, same ID, one question
/// equal to ours (name case-insensitively, type and class; RFC 5452 §9.1), and the whole message
/// well-formed by the decoder's rules ([`check_message`]). The reply is returned with the
/// query's ID and without the upstream's OPT (EDNS is hop-by-hop; the server writes its own).
/// It stays in wire form, records as the upstream sent them and anything after the last one
/// cut, unless its OPT is not the last record or carries an extended rcode, or a name is read
/// through a pointer to bytes that are not an earlier name's: those are decoded.
pub fn accept(mut bytes: Vec<u8>, id: u16, q: &Message) -> Result<Reply, Rejected> {
    let checked = check_message(&bytes).map_err(|_| Rejected::Foreign)?;
    let header = Header::parse(&bytes).map_err(|_| Rejected::Foreign)?;
    let asked = q.questions.first().ok_or(Rejected::Foreign)?;
    if header.id != id {
        return Err(Rejected::Foreign);
    }
    if !header.has(flag::QR) || header.qdcount != 1 {
        return Err(Rejected::WrongQuestion);
    }
    let qname_end = checked.question_name_end.ok_or(Rejected::WrongQuestion)?;
    let fixed = &bytes[qname_end..qname_end + 4];
    if u16::from_be_bytes([fixed[0], fixed[1]]) != asked.qtype
        || u16::from_be_bytes([fixed[2], fixed[3]]) != asked.qclass
        || !kdns_wire::name::name_at_equals(&bytes, HEADER_LEN, asked.name.as_wire(), true)
    {
        return Err(Rejected::WrongQuestion);
    }
    match checked.opt_at {
        // Names read through pointers into the header or a TTL would change with the patches
        // below (here, and the cache's TTLs).
        _ if !checked.relayable => return decoded(&bytes, q),
        None => bytes.truncate(checked.end),
        Some(at) if checked.opt_is_last && checked.rcode < 16 => {
            bytes.truncate(at);
            let arcount = header.arcount - 1;
            bytes[10..12].copy_from_slice(&arcount.to_be_bytes());
        }
        Some(_) => return decoded(&bytes, q),
    }
    bytes[0..2].copy_from_slice(&q.id.to_be_bytes());
    Ok(Reply::wire(bytes, "forward"))
}

/// The decoding path of [`accept`]: the reply as a message, with the query's ID and no OPT.
fn decoded(bytes: &[u8], q: &Message) -> Result<Reply, Rejected> {
    let mut m = Message::decode(bytes).map_err(|_| Rejected::Foreign)?;
    m.id = q.id;
    m.edns = None;
    Ok(Reply::message(m, "forward"))
}

#[cfg(test)]
mod accept_tests {
    use super::*;
    use kdns_server::plugin::Body;
    use kdns_wire::{class, rtype, Question};
    use kdns_wire::{Edns, Name, RData, Record};
    use std::net::Ipv4Addr;

    fn query() -> Message {
        let mut q = Message { id: 0x1234, flags: flag::RD, ..Default::default() };
        q.questions.push(Question {
            name: Name::from_ascii("WWW.example.org.").unwrap(),
            qtype: rtype::A,
            qclass: class::IN,
        });
        q.edns = Some(Edns::new(1232));
        q
    }

    /// The upstream's answer to `query()` sent with ID 99: a CNAME chain and an OPT record.
    fn answer() -> Message {
        let mut m = Message { id: 99, flags: flag::QR | flag::RD | flag::RA, ..Default::default() };
        let asked = Name::from_ascii("www.example.org.").unwrap();
        let target = Name::from_ascii("web.example.org.").unwrap();
        m.questions.push(Question { name: asked.clone(), qtype: rtype::A, qclass: class::IN });
        m.answers.push(Record::new(asked, 300, RData::Cname(target.clone())));
        m.answers.push(Record::new(target, 60, RData::A(Ipv4Addr::new(192, 0, 2, 7))));
        let mut e = Edns::new(4096);
        e.options.push((10, vec![7; 16]));
        m.edns = Some(e);
        m
    }

    fn wire_of(r: &Reply) -> &[u8] {
        match r.body() {
            Body::Wire(b) => b,
            Body::Message(m) => panic!("expected wire, got {m:?}"),
        }
    }

    #[test]
    fn a_matching_reply_stays_bytes_with_the_query_id_and_without_the_upstream_opt() {
        let mut bytes = answer().to_vec();
        bytes.extend_from_slice(b"junk after the last record");
        let r = accept(bytes, 99, &query()).expect("accepted");
        let m = Message::decode(wire_of(&r)).unwrap();
        let mut expected = answer();
        expected.id = 0x1234;
        expected.edns = None;
        assert_eq!(m, expected, "same records, no OPT, the client's ID");
        assert_eq!(Message::decode(wire_of(&r)).unwrap().to_vec(), wire_of(&r), "nothing after the last record");
    }

    #[test]
    fn an_opt_with_an_extended_rcode_or_not_last_is_decoded() {
        let mut badvers = answer();
        badvers.rcode = 16;
        let r = accept(badvers.to_vec(), 99, &query()).expect("accepted");
        let Body::Message(m) = r.body() else { panic!("an extended rcode needs the decoded path") };
        assert_eq!((m.rcode, m.id, m.edns.is_none()), (16, 0x1234, true));
        let mut opt_first = answer();
        opt_first.additional.push(Record::new(
            Name::from_ascii("x.example.org.").unwrap(),
            5,
            RData::A(Ipv4Addr::LOCALHOST),
        ));
        // Encoded with OPT last; rebuilt as: records before the A one, OPT, then the A record.
        let with_opt = opt_first.to_vec();
        let opt_at = check_message(&with_opt).unwrap().opt_at.unwrap();
        let mut before_a = opt_first.clone();
        before_a.additional.clear();
        before_a.edns = None;
        let a_at = before_a.to_vec().len();
        let mut bytes = with_opt[..a_at].to_vec();
        bytes.extend_from_slice(&with_opt[opt_at..]);
        bytes.extend_from_slice(&with_opt[a_at..opt_at]);
        assert!(!check_message(&bytes).unwrap().opt_is_last);
        let r = accept(bytes, 99, &query()).expect("accepted");
        let Body::Message(m) = r.body() else { panic!("an OPT before other records is decoded") };
        assert_eq!((m.additional.len(), m.edns.is_none()), (1, true));
    }

    #[test]
    fn a_name_pointing_into_the_header_is_decoded_not_relayed() {
        // A CNAME whose target is a pointer to offset 1, the low byte of the upstream's ID
        // (0x0100): read there it is the root name. Relayed with our ID in its place, the same
        // bytes would say something else.
        let mut m = answer();
        m.answers.truncate(1);
        m.answers[0].data = RData::Cname(Name::from_ascii("org.").unwrap());
        m.edns = None;
        let mut bytes = m.to_vec();
        bytes[0..2].copy_from_slice(&0x0100u16.to_be_bytes());
        let target = bytes.len() - 2;
        assert_eq!(u16::from_be_bytes([bytes[target - 2], bytes[target - 1]]), 2, "the target is one pointer");
        bytes[target..].copy_from_slice(&[0xC0, 1]);
        assert!(!check_message(&bytes).unwrap().relayable);
        let r = accept(bytes, 0x0100, &query()).expect("accepted");
        let Body::Message(m) = r.body() else { panic!("decoded, not relayed") };
        assert_eq!(m.answers[0].data, RData::Cname(Name::root()), "read against the upstream's ID, not ours");
    }

    #[test]
    fn anything_not_the_answer_to_this_query_is_refused() {
        let q = query();
        let ok = answer().to_vec();
        assert_eq!(accept(ok.clone(), 98, &q).err(), Some(Rejected::Foreign), "another ID");
        let mut not_reply = answer();
        not_reply.flags &= !flag::QR;
        assert_eq!(accept(not_reply.to_vec(), 99, &q).err(), Some(Rejected::WrongQuestion), "QR clear");
        let mut other_type = answer();
        other_type.questions[0].qtype = rtype::AAAA;
        assert_eq!(accept(other_type.to_vec(), 99, &q).err(), Some(Rejected::WrongQuestion), "another type");
        let mut other_name = answer();
        other_name.questions[0].name = Name::from_ascii("ww.example.org.").unwrap();
        assert_eq!(accept(other_name.to_vec(), 99, &q).err(), Some(Rejected::WrongQuestion), "another name");
        let mut two = answer();
        two.questions.push(two.questions[0].clone());
        assert_eq!(accept(two.to_vec(), 99, &q).err(), Some(Rejected::WrongQuestion), "two questions");
        for cut in [11, 20, ok.len() - 1] {
            assert_eq!(accept(ok[..cut].to_vec(), 99, &q).err(), Some(Rejected::Foreign), "cut at {cut}");
        }
        let mut bad_pointer = ok.clone();
        let owner = check_message(&ok).unwrap().question_name_end.unwrap() + 4;
        bad_pointer[owner + 1] = 0xFF; // a pointer forward, past the end
        assert_eq!(accept(bad_pointer, 99, &q).err(), Some(Rejected::Foreign), "bad compression pointer");
    }
}
