//! A whole message checked in place: every name, every record and the RDATA of the types
//! [`Message::decode`](crate::Message::decode) understands, by the same rules, without building
//! a [`Message`](crate::Message). A forwarder that passes a checked upstream reply on as bytes
//! (its ID restored, its OPT removed) sends exactly what a decode and re-encode would have
//! accepted, without the allocations of either.

use crate::name::{walk_name, NameStep};
use crate::{rtype, Header, WireError, HEADER_LEN};

/// What [`check_message`] learned on the way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checked {
    /// The full response code: the header's four bits and OPT's extended ones.
    pub rcode: u16,
    /// Where the last record ends; bytes after it belong to no section.
    pub end: usize,
    /// Where the first question's name ends (its type and class follow), if there is one.
    pub question_name_end: Option<usize>,
    /// Where the OPT record starts, when there is one.
    pub opt_at: Option<usize>,
    /// Whether the OPT record is the last record of the message (removing it then moves no
    /// other record, so no compression pointer changes meaning).
    pub opt_is_last: bool,
    /// Whether every compression pointer lands inside the bytes of a name read before it (as
    /// every real compressor writes them). Only then can the bytes be relayed with their ID,
    /// counts and TTLs patched: the decoder also accepts pointers into the header or into a
    /// record's TTL, and patching those bytes would change what such a name says.
    pub relayable: bool,
}

/// How many names' spans [`check_message`] keeps; a message with more is not relayable.
const MAX_SPANS: usize = 64;

/// Where the names read so far lie (their own bytes, pointers not followed).
struct Spans {
    at: [(u16, u16); MAX_SPANS],
    len: usize,
    relayable: bool,
}

impl Spans {
    fn new() -> Spans {
        Spans { at: [(0, 0); MAX_SPANS], len: 0, relayable: true }
    }

    /// Notes that the bytes [start, end) were read through a pointer.
    fn read_through_pointer(&mut self, start: usize, end: usize) {
        let inside = self.at[..self.len].iter().any(|&(s, e)| s as usize <= start && end <= e as usize);
        self.relayable &= inside;
    }

    fn push(&mut self, start: usize, end: usize) {
        match (self.at.get_mut(self.len), u16::try_from(start), u16::try_from(end)) {
            (Some(slot), Ok(s), Ok(e)) => {
                *slot = (s, e);
                self.len += 1;
            }
            _ => self.relayable = false,
        }
    }
}

/// Checks `msg` by the rules of [`Message::decode`](crate::Message::decode): it succeeds exactly
/// when the decode would.
pub fn check_message(msg: &[u8]) -> Result<Checked, WireError> {
    let header = Header::parse(msg)?;
    let mut pos = HEADER_LEN;
    let mut spans = Spans::new();
    let mut question_name_end = None;
    for _ in 0..header.qdcount {
        pos = name_end_tracked(msg, pos, &mut spans)?;
        question_name_end = question_name_end.or(Some(pos));
        msg.get(pos..pos + 4).ok_or(WireError::Short)?;
        pos += 4;
    }
    let mut checked = Checked {
        rcode: header.rcode_low(),
        end: pos,
        question_name_end,
        opt_at: None,
        opt_is_last: false,
        relayable: false,
    };
    for (count, section) in [(header.ancount, 0), (header.nscount, 1), (header.arcount, 2)] {
        for _ in 0..count {
            checked.opt_is_last = false;
            if section == 2 && msg.get(pos) == Some(&0) && msg.get(pos + 1..pos + 3) == Some(&[0, 41][..]) {
                if checked.opt_at.is_some() {
                    return Err(WireError::BadOpt);
                }
                let fixed = msg.get(pos + 3..pos + 11).ok_or(WireError::Short)?;
                let rdlen = u16::from_be_bytes([fixed[6], fixed[7]]) as usize;
                let options = msg.get(pos + 11..pos + 11 + rdlen).ok_or(WireError::Short)?;
                check_options(options)?;
                checked.rcode |= (fixed[2] as u16) << 4;
                checked.opt_at = Some(pos);
                checked.opt_is_last = true;
                pos += 11 + rdlen;
                continue;
            }
            pos = record_end(msg, pos, &mut spans)?;
        }
    }
    checked.end = pos;
    checked.relayable = spans.relayable;
    Ok(checked)
}

/// Where the record at `pos` ends.
fn record_end(msg: &[u8], pos: usize, spans: &mut Spans) -> Result<usize, WireError> {
    let next = name_end_tracked(msg, pos, spans)?;
    let fixed = msg.get(next..next + 10).ok_or(WireError::Short)?;
    let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
    let rdlen = u16::from_be_bytes([fixed[8], fixed[9]]) as usize;
    let start = next + 10;
    let end = start + rdlen;
    let rdata = msg.get(start..end).ok_or(WireError::Short)?;
    if rtype == rtype::OPT {
        // An OPT outside the additional section, or with an owner other than root.
        return Err(WireError::BadOpt);
    }
    check_rdata(&msg[..end], rtype, start, rdata, spans)?;
    Ok(end)
}

fn check_rdata(msg: &[u8], rtype: u16, start: usize, rdata: &[u8], spans: &mut Spans) -> Result<(), WireError> {
    let end = msg.len();
    let mut name_end = |at: usize| name_end_tracked(msg, at, spans);
    let exact = |next: usize| if next == end { Ok(()) } else { Err(WireError::BadRdata) };
    let fixed = |p: usize, n: usize| if p + n <= end { Ok(p + n) } else { Err(WireError::BadRdata) };
    match rtype {
        rtype::A if rdata.len() == 4 => Ok(()),
        rtype::AAAA if rdata.len() == 16 => Ok(()),
        rtype::A | rtype::AAAA => Err(WireError::BadRdata),
        rtype::NS | rtype::CNAME | rtype::PTR => exact(name_end(start)?),
        rtype::MX => exact(name_end(fixed(start, 2)?)?),
        rtype::SRV => exact(name_end(fixed(start, 6)?)?),
        rtype::SOA => {
            let mname_end = name_end(start)?;
            let p = name_end(mname_end)?;
            exact(fixed(p, 20)?)
        }
        rtype::TXT | rtype::HINFO => {
            let mut strings = 0;
            let mut rest = rdata;
            while let Some(&len) = rest.first() {
                rest = rest.get(1 + len as usize..).ok_or(WireError::BadRdata)?;
                strings += 1;
            }
            if rtype == rtype::HINFO && strings != 2 {
                return Err(WireError::BadRdata);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn check_options(mut data: &[u8]) -> Result<(), WireError> {
    while !data.is_empty() {
        if data.len() < 4 {
            return Err(WireError::BadOpt);
        }
        let len = u16::from_be_bytes([data[2], data[3]]) as usize;
        data = data.get(4 + len..).ok_or(WireError::BadOpt)?;
    }
    Ok(())
}

/// Where the name at `offset` ends (see [`walk_name`]), noting in `spans` where the name lies
/// and whether what its pointers lead to lies inside names read before.
fn name_end_tracked(msg: &[u8], offset: usize, spans: &mut Spans) -> Result<usize, WireError> {
    // Start of the bytes being read: the name's own, then each pointer's target.
    let mut segment = offset;
    let mut followed = false;
    let end = walk_name(msg, offset, |step| match step {
        NameStep::Pointer { at, target } => {
            if followed {
                spans.read_through_pointer(segment, at + 2);
            }
            followed = true;
            segment = target;
        }
        NameStep::Root { at } if followed => spans.read_through_pointer(segment, at + 1),
        _ => {}
    })?;
    spans.push(offset, end);
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name::name_at_equals;
    use crate::{class, flag, Edns, Message, Name, Question, RData, Record};
    use std::net::Ipv4Addr;

    fn samples() -> Vec<Vec<u8>> {
        let n = Name::from_ascii("www.Example.org.").unwrap();
        let zone = Name::from_ascii("example.org.").unwrap();
        let mut m = Message { id: 7, flags: flag::QR | flag::RD | flag::RA, ..Default::default() };
        m.questions.push(Question { name: n.clone(), qtype: rtype::A, qclass: class::IN });
        m.answers.push(Record::new(n.clone(), 300, RData::Cname(Name::from_ascii("web.example.org.").unwrap())));
        m.answers.push(Record::new(n.clone(), 60, RData::A(Ipv4Addr::new(192, 0, 2, 2))));
        m.authority.push(Record::new(zone.clone(), 60, RData::Ns(Name::from_ascii("ns.example.org.").unwrap())));
        m.additional.push(Record::new(
            zone.clone(),
            60,
            RData::Mx { preference: 10, exchange: Name::from_ascii("mx.example.org.").unwrap() },
        ));
        m.additional.push(Record::new(zone.clone(), 60, RData::Txt(vec![b"a".to_vec(), b"".to_vec()])));
        let mut with_opt = m.clone();
        let mut e = Edns::new(1232);
        e.options.push((10, vec![1; 8]));
        with_opt.edns = Some(e);
        let mut soa = Message { id: 8, flags: flag::QR, rcode: 3, ..Default::default() };
        soa.questions.push(Question { name: n.clone(), qtype: rtype::AAAA, qclass: class::IN });
        soa.authority.push(Record::new(
            zone.clone(),
            30,
            RData::Soa {
                mname: Name::from_ascii("ns.example.org.").unwrap(),
                rname: Name::from_ascii("host.example.org.").unwrap(),
                serial: 1,
                refresh: 2,
                retry: 3,
                expire: 4,
                minimum: 5,
            },
        ));
        soa.additional.push(Record::new(
            n,
            5,
            RData::Srv { priority: 1, weight: 2, port: 53, target: Name::from_ascii("t.example.org.").unwrap() },
        ));
        // Names at the length limit, the owner of the answer one label longer via a pointer.
        let long = format!("{}.{}.{}.{}.", "a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(59));
        let long = Name::from_ascii(&long).unwrap();
        let mut limit = Message { id: 9, flags: flag::QR, ..Default::default() };
        limit.questions.push(Question { name: long.clone(), qtype: rtype::HINFO, qclass: class::IN });
        limit.answers.push(Record::new(long, 5, RData::Hinfo { cpu: b"x86".to_vec(), os: b"linux".to_vec() }));
        let mut bytes: Vec<Vec<u8>> = [m, with_opt, soa, limit].iter().map(|m| m.to_vec()).collect();
        // A raw record whose owner is one label plus a pointer to the 253-octet question name.
        let last = bytes.last_mut().unwrap();
        last[7] += 1;
        last.extend_from_slice(&[1, b'e', 0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 192, 0, 2, 1]);
        bytes
    }

    #[test]
    fn accepts_exactly_what_decode_accepts_under_mutation() {
        // A deterministic mutation walk over several shapes: flipped bytes, cut tails, and
        // appended junk. Whatever decodes must check, and nothing else.
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut accepted = 0;
        let mut agree = |m: &[u8]| {
            let decoded = Message::decode(m);
            let checked = check_message(m);
            assert_eq!(decoded.is_ok(), checked.is_ok(), "{m:?}: {decoded:?} vs {checked:?}");
            if let (Ok(d), Ok(c)) = (decoded, checked) {
                accepted += 1;
                assert_eq!(d.rcode, c.rcode);
                assert_eq!(d.edns.is_some(), c.opt_at.is_some());
            }
        };
        for base in samples() {
            let checked = check_message(&base).expect("an encoded message checks");
            assert_eq!(checked.end, base.len());
            // Every single byte at every value, and every cut.
            for i in 0..base.len() {
                let mut m = base.clone();
                for v in 0..=255u8 {
                    m[i] = v;
                    agree(&m);
                }
                agree(&base[..i]);
            }
            for _ in 0..5_000 {
                let mut m = base.clone();
                for _ in 0..1 + next() % 3 {
                    match next() % 4 {
                        0 | 1 => {
                            let i = (next() as usize) % m.len();
                            m[i] = next() as u8;
                        }
                        2 => {
                            let cut = (next() as usize) % (m.len() + 1);
                            m.truncate(cut);
                        }
                        _ => m.push(next() as u8),
                    }
                    if m.is_empty() {
                        break;
                    }
                }
                agree(&m);
            }
        }
        assert!(accepted > 1_000, "the walk must also reach accepted variants: {accepted}");
    }

    #[test]
    fn finds_the_opt_record_and_the_extended_rcode() {
        let s = samples();
        let c = check_message(&s[1]).unwrap();
        let at = c.opt_at.unwrap();
        assert!(c.opt_is_last);
        assert_eq!(&s[1][at..at + 3], &[0, 0, 41]);
        assert_eq!(check_message(&s[0]).unwrap().opt_at, None);
        let mut badvers = s[1].clone();
        badvers[at + 5] = 1; // extended rcode 1 -> BADVERS (16)
        assert_eq!(check_message(&badvers).unwrap().rcode, 16);
        let mut junk = s[0].clone();
        junk.extend_from_slice(b"trailing");
        assert_eq!(check_message(&junk).unwrap().end, s[0].len());
    }

    #[test]
    fn names_are_at_most_255_octets_as_decode_counts_them() {
        for (labels, ok) in [([63u8, 63, 63, 61], true), ([63, 63, 63, 62], false)] {
            let mut m = vec![0, 1, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0];
            for l in labels {
                m.push(l);
                m.extend(std::iter::repeat_n(b'x', l as usize));
            }
            m.extend_from_slice(&[0, 0, 1, 0, 1]);
            assert_eq!(Message::decode(&m).is_ok(), ok);
            assert_eq!(check_message(&m).is_ok(), ok);
        }
    }

    #[test]
    fn pointers_outside_earlier_names_make_a_message_unrelayable() {
        for (i, m) in samples().iter().enumerate() {
            assert!(check_message(m).unwrap().relayable, "sample {i}: our own compression");
        }
        // The SOA's rname as a pointer to offset 0, whose byte (the ID's high byte, 0) reads as
        // the root name: the decoder accepts it, a relay must not patch the ID under it.
        let mut m = vec![0x00, 0x18, 0x85, 0, 0, 1, 0, 1, 0, 0, 0, 0];
        m.extend_from_slice(b"\x01a\x00\x00\x06\x00\x01");
        m.extend_from_slice(&[0xC0, 12, 0, 6, 0, 1, 0, 0, 0, 30, 0, 24, 0xC0, 12, 0xC0, 0]);
        m.extend_from_slice(&[0; 20]);
        assert!(Message::decode(&m).is_ok());
        assert!(!check_message(&m).unwrap().relayable, "a pointer into the header");
        // Found by fuzzing: an A record's owner is a pointer to the last byte of the SRV
        // answer's TTL (0x32, read as a 50-octet label); patching the TTL changes that name.
        let ttl_pointer = [
            0, 3, 133, 0, 0, 1, 0, 1, 0, 0, 0, 3, 5, 95, 104, 116, 116, 112, 0, 0, 33, 0, 1, 192, 12, 0, 33, 0, 1, 0,
            0, 0, 50, 0, 34, 0, 33, 0, 30, 0, 80, 3, 119, 101, 98, 4, 115, 104, 111, 112, 3, 115, 118, 99, 7, 99, 108,
            117, 115, 116, 101, 114, 5, 108, 255, 255, 255, 3, 0, 192, 23, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 96, 12,
            7, 192, 32, 28, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 31, 0, 0, 128, 0, 0, 0,
        ];
        assert!(Message::decode(&ttl_pointer).is_ok());
        assert!(!check_message(&ttl_pointer).unwrap().relayable, "a pointer into a TTL");
        // A pointer to a pointer that lies in an earlier name is fine.
        assert!(check_message(&with_a_pointer_chain()).unwrap().relayable);
    }

    /// Question `a.` then an answer owned by a pointer to the question, then an A record owned
    /// by a pointer to the answer's owner (itself a pointer).
    fn with_a_pointer_chain() -> Vec<u8> {
        let mut m = vec![0, 1, 0x80, 0, 0, 1, 0, 2, 0, 0, 0, 0, 1, b'a', 0, 0, 1, 0, 1];
        m.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 192, 0, 2, 1]);
        m.extend_from_slice(&[0xC0, 19, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 192, 0, 2, 2]);
        m
    }

    #[test]
    fn compares_compressed_names_without_case() {
        let s = samples();
        let asked = Name::from_ascii("WWW.example.ORG.").unwrap();
        assert!(name_at_equals(&s[0], HEADER_LEN, asked.as_wire(), true));
        assert!(!name_at_equals(&s[0], HEADER_LEN, asked.as_wire(), false), "exactly: the case differs");
        let exact = Name::from_ascii("www.Example.org.").unwrap();
        assert!(name_at_equals(&s[0], HEADER_LEN, exact.as_wire(), false));
        assert!(!name_at_equals(&s[0], HEADER_LEN, Name::from_ascii("ww.example.org.").unwrap().as_wire(), true));
        // The first answer's owner is a pointer to the question.
        let owner = check_message(&s[0]).unwrap().question_name_end.unwrap() + 4;
        assert_eq!(s[0][owner] & 0xC0, 0xC0);
        assert!(name_at_equals(&s[0], owner, asked.as_wire(), true));
    }
}
