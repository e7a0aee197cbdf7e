//! The malformed-query table of the reliability reference (§3.1), against the real binary.

mod common;

use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use std::time::Duration;

/// A valid query for example.org A with id 0xBEEF and RD set.
fn good() -> Vec<u8> {
    let mut m = query("example.org.", RecordType::A);
    m.metadata.id = 0xBEEF;
    m.to_vec().unwrap()
}

fn rcode_of(reply: &[u8]) -> u8 {
    reply[3] & 0x0F
}

#[test]
fn malformed_queries_get_the_rfc_answer_and_the_server_survives() {
    let k = Kdns::start(".:PORT {\n    whoami\n}\n");
    let a = k.addr();
    let wait = Duration::from_millis(400);
    let mut cases: Vec<(&str, Vec<u8>, Option<u8>)> = Vec::new();
    cases.push(("empty", vec![], None));
    cases.push(("short header", good()[..11].to_vec(), None));
    let mut qr = good();
    qr[2] |= 0x80;
    cases.push(("QR set", qr, None));
    cases.push(("header only, QDCOUNT=1", good()[..12].to_vec(), Some(1)));
    let mut qd0 = good()[..12].to_vec();
    qd0[5] = 0;
    cases.push(("QDCOUNT=0", qd0, Some(1)));
    let mut qd2 = good();
    qd2[5] = 2;
    cases.push(("QDCOUNT=2", qd2, Some(1)));
    let truncated = good()[..good().len() - 3].to_vec();
    cases.push(("question truncated", truncated, Some(1)));
    let mut label40 = good();
    label40[12] = 0x40;
    cases.push(("label type 0x40", label40, Some(1)));
    let mut looped = good()[..12].to_vec();
    looped.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
    cases.push(("pointer loop", looped, Some(1)));
    let mut beyond = good()[..12].to_vec();
    beyond.extend_from_slice(&[0xC0, 200, 0, 1, 0, 1]);
    cases.push(("pointer beyond end", beyond, Some(1)));
    let mut long = good()[..12].to_vec();
    for _ in 0..5 {
        long.push(60);
        long.extend_from_slice(&[b'a'; 60]);
    }
    long.extend_from_slice(&[0, 0, 1, 0, 1]);
    cases.push(("name > 255", long, Some(1)));
    let mut iquery = good();
    iquery[2] |= 1 << 3;
    cases.push(("opcode IQUERY", iquery, Some(4)));
    let mut update = good();
    update[2] |= 5 << 3;
    cases.push(("opcode UPDATE", update, Some(4)));
    let two_opt = {
        let mut b = with_edns(query("example.org.", RecordType::A), 1232).to_vec().unwrap();
        let opt = b[b.len() - 11..].to_vec();
        b.extend_from_slice(&opt);
        b[11] = 2;
        b
    };
    cases.push(("two OPT", two_opt, Some(1)));
    let opt_owner = {
        let mut b = with_edns(query("example.org.", RecordType::A), 1232).to_vec().unwrap();
        let n = b.len();
        // replace the root owner (0) with a pointer to the question name
        b.splice(n - 11..n - 10, [0xC0, 12]);
        b
    };
    cases.push(("OPT owner not root", opt_owner, Some(1)));
    let qtype_opt = query("example.org.", RecordType::OPT).to_vec().unwrap();
    cases.push(("QTYPE OPT", qtype_opt, Some(1)));
    cases.push(("QTYPE AXFR over UDP", query("example.org.", RecordType::AXFR).to_vec().unwrap(), Some(5)));
    cases.push(("QTYPE TSIG", query("example.org.", RecordType::TSIG).to_vec().unwrap(), Some(4)));
    // The rest of reliability.md §3.1, row by row.
    let mut qd_max = good();
    qd_max[4] = 0xff;
    qd_max[5] = 0xff;
    cases.push(("QDCOUNT=65535", qd_max, Some(1)));
    let mut label80 = good();
    label80[12] = 0x80;
    cases.push(("label type 0x80", label80, Some(1)));
    let mut forward_ptr = good()[..12].to_vec();
    forward_ptr.extend_from_slice(&[0xC0, 18, 0, 1, 0, 1, 3, b'c', b'o', b'm', 0]);
    cases.push(("forward pointer", forward_ptr, Some(1)));
    for (what, opcode) in [("opcode STATUS", 2u8), ("opcode NOTIFY", 4), ("opcode 15", 15)] {
        let mut p = good();
        p[2] |= opcode << 3;
        cases.push((what, p, Some(4)));
    }
    for (what, class) in [("class CH", 3u16), ("class NONE", 254), ("class ANY", 255), ("class 1234", 1234)] {
        let mut p = good();
        let n = p.len();
        p[n - 2..].copy_from_slice(&class.to_be_bytes());
        cases.push((what, p, Some(5)));
    }
    cases.push(("QTYPE MAILB", query("example.org.", RecordType::Unknown(253)).to_vec().unwrap(), Some(4)));
    cases.push(("QTYPE MAILA", query("example.org.", RecordType::Unknown(254)).to_vec().unwrap(), Some(4)));
    cases.push(("QTYPE TKEY", query("example.org.", RecordType::Unknown(249)).to_vec().unwrap(), Some(4)));
    cases.push(("QTYPE IXFR over UDP", query("example.org.", RecordType::IXFR).to_vec().unwrap(), Some(5)));
    // OPT: RDATA with an option whose length runs past the RDATA; RDLEN past the packet.
    let edns = |rdata: &[u8], rdlen: u16| {
        let mut b = good();
        b[11] = 1;
        b.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0]);
        b.extend_from_slice(&rdlen.to_be_bytes());
        b.extend_from_slice(rdata);
        b
    };
    cases.push(("EDNS option overruns RDATA", edns(&[0, 10, 0, 8, 1, 2], 6), Some(1)));
    cases.push(("OPT RDLEN beyond packet", edns(&[0, 10, 0, 2, 1, 2], 60), Some(1)));
    let mut ar_missing = good();
    ar_missing[11] = 1;
    cases.push(("ARCOUNT=1, no record", ar_missing, Some(1)));
    let mut an_garbage = good();
    an_garbage[7] = 1;
    an_garbage.extend_from_slice(&[0xff, 0xff, 0xff]);
    cases.push(("ANCOUNT=1 garbage", an_garbage, Some(1)));
    cases.push(("malformed COOKIE (5 octets)", edns(&[0, 10, 0, 5, 1, 2, 3, 4, 5], 9), Some(1)));

    for (what, packet, want) in cases {
        let reply = udp_raw(a, &packet, wait);
        match want {
            None => assert!(reply.is_none(), "{what}: expected no reply, got {reply:?}"),
            Some(rc) => {
                let reply = reply.unwrap_or_else(|| panic!("{what}: expected rcode {rc}, got nothing"));
                assert_eq!(rcode_of(&reply), rc, "{what}");
                if packet.len() >= 2 {
                    assert_eq!(&reply[..2], &packet[..2], "{what}: ID echoed");
                }
                assert!(reply[2] & 0x80 != 0, "{what}: QR set");
                assert!(reply.len() <= packet.len().max(512), "{what}: reply never amplifies");
            }
        }
        // The server still answers good queries after each bad one.
        let ok = udp(a, &query("alive.example.org.", RecordType::A));
        assert_eq!(ok.metadata.response_code, ResponseCode::NoError, "after {what}");
    }
}

#[test]
fn tolerated_oddities_are_answered() {
    let k = Kdns::start(".:PORT {\n    whoami\n}\n");
    let mut trailing = good();
    trailing.extend_from_slice(b"garbage");
    let r = udp_raw(k.addr(), &trailing, Duration::from_secs(2)).unwrap();
    assert_eq!(rcode_of(&r), 0);
    let mut z = good();
    z[3] |= 0x40;
    assert_eq!(rcode_of(&udp_raw(k.addr(), &z, Duration::from_secs(2)).unwrap()), 0);
    let mut tc = good();
    tc[2] |= 0x02;
    assert_eq!(rcode_of(&udp_raw(k.addr(), &tc, Duration::from_secs(2)).unwrap()), 0);
    let unknown = query("example.org.", RecordType::Unknown(65280)).to_vec().unwrap();
    assert_eq!(rcode_of(&udp_raw(k.addr(), &unknown, Duration::from_secs(2)).unwrap()), 0);
    // RD=0 is forwarded/answered like any query (CoreDNS-compatible); QTYPE ANY and QTYPE 0 are
    // answered.
    let mut rd0 = good();
    rd0[2] &= !0x01;
    assert_eq!(rcode_of(&udp_raw(k.addr(), &rd0, Duration::from_secs(2)).unwrap()), 0);
    let any = query("example.org.", RecordType::ANY).to_vec().unwrap();
    assert_eq!(rcode_of(&udp_raw(k.addr(), &any, Duration::from_secs(2)).unwrap()), 0);
    let zero = query("example.org.", RecordType::Unknown(0)).to_vec().unwrap();
    let rc = rcode_of(&udp_raw(k.addr(), &zero, Duration::from_secs(2)).unwrap());
    assert!(rc == 0 || rc == 1, "QTYPE 0: answered or FORMERR, got {rc}");
    // EDNS version 1: BADVERS (extended rcode 16) with an OPT of version 0.
    let mut m = with_edns(query("example.org.", RecordType::A), 1232);
    if let Some(e) = m.edns.as_mut() {
        e.set_version(1);
    }
    let reply = Message::from_vec(&udp_raw(k.addr(), &m.to_vec().unwrap(), Duration::from_secs(2)).unwrap()).unwrap();
    assert_eq!(u16::from(reply.metadata.response_code), 16, "BADVERS");
    assert_eq!(reply.edns.as_ref().map(|e| e.version()), Some(0));
    // Buffer size 100 is treated as 512; an unknown option is ignored and not echoed.
    let small = with_edns(query("example.org.", RecordType::A), 100);
    let reply =
        Message::from_vec(&udp_raw(k.addr(), &small.to_vec().unwrap(), Duration::from_secs(2)).unwrap()).unwrap();
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    let mut unknown_opt = with_edns(query("example.org.", RecordType::A), 1232).to_vec().unwrap();
    let n = unknown_opt.len();
    unknown_opt[n - 2..].copy_from_slice(&6u16.to_be_bytes());
    unknown_opt.extend_from_slice(&[0xfd, 0xe9, 0, 2, 7, 7]);
    let reply = udp_raw(k.addr(), &unknown_opt, Duration::from_secs(2)).unwrap();
    assert_eq!(rcode_of(&reply), 0);
    assert!(!reply.windows(2).any(|w| w == [0xfd, 0xe9]), "unknown option not echoed");
}

#[test]
fn malformed_tcp_frames_do_not_kill_the_server() {
    let k = Kdns::start(".:PORT {\n    whoami\n}\n");
    let mut s = std::net::TcpStream::connect(k.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    tcp_send(&mut s, &good()[..12]);
    let r = tcp_recv(&mut s).unwrap();
    assert_eq!(rcode_of(&r), 1);
    tcp_send(&mut s, &good());
    assert_eq!(rcode_of(&tcp_recv(&mut s).unwrap()), 0);
    // A frame that promises more than it sends, then the peer goes away.
    std::io::Write::write_all(&mut s, &[0x01, 0x00, 0xAB]).unwrap();
    drop(s);
    assert_eq!(udp(k.addr(), &query("x.org.", RecordType::A)).metadata.response_code, ResponseCode::NoError);
}
