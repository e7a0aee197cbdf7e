//! The malformed-query table of the reliability reference (§3.1), against the real binary.

mod common;

use common::*;
use hickory_proto::op::ResponseCode;
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
