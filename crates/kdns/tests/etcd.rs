//! The `etcd` plugin against a real etcd (Debian's `etcd-server`, started here on loopback
//! ports with a private data directory), records written through etcd's v3 JSON API.

mod common;

use common::upstream::Upstream;
use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Etcd {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn etcd_binary() -> Option<&'static str> {
    ["/usr/bin/etcd", "/usr/local/bin/etcd"].into_iter().find(|p| std::path::Path::new(p).exists())
}

/// Starts etcd, or returns None (and says so) when it is not installed and not required.
fn start_etcd() -> Option<Etcd> {
    let Some(bin) = etcd_binary() else {
        assert!(std::env::var("KDNS_REQUIRE_ETCD").as_deref() != Ok("1"), "KDNS_REQUIRE_ETCD=1 but no etcd binary");
        eprintln!("etcd not installed (Debian package etcd-server): etcd tests not run");
        return None;
    };
    let (port, peer) = (free_port(), free_port());
    let dir = temp_dir("etcd");
    let child = Command::new(bin)
        .args(["--name", "kdns-test", "--data-dir"])
        .arg(dir.join("data"))
        .args(["--listen-client-urls", &format!("http://127.0.0.1:{port}")])
        .args(["--advertise-client-urls", &format!("http://127.0.0.1:{port}")])
        .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
        .args(["--initial-advertise-peer-urls", &format!("http://127.0.0.1:{peer}")])
        .args(["--initial-cluster", &format!("kdns-test=http://127.0.0.1:{peer}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start etcd");
    let etcd = Etcd { child, port, dir };
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if post(port, "/v3/kv/range", r#"{"key":"AA=="}"#, None).is_some_and(|(code, _)| code == 200) {
            return Some(etcd);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("etcd did not start on 127.0.0.1:{port}");
}

/// One HTTP/1.1 POST to etcd's JSON gateway: (status, body).
fn post(port: u16, path: &str, body: &str, token: Option<&str>) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let auth = token.map(|t| format!("Authorization: {t}\r\n")).unwrap_or_default();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, out.split("\r\n\r\n").nth(1).unwrap_or("").to_string()))
}

fn b64(s: &str) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn put(etcd: &Etcd, key: &str, value: &str, token: Option<&str>) {
    let body = format!(r#"{{"key":"{}","value":"{}"}}"#, b64(key), b64(value));
    let (code, text) = post(etcd.port, "/v3/kv/put", &body, token).expect("etcd put");
    assert_eq!(code, 200, "{text}");
}

fn rrs(m: &[hickory_proto::rr::Record]) -> Vec<String> {
    let mut v: Vec<String> = m.iter().filter(|r| r.record_type() != RecordType::OPT).map(|r| r.to_string()).collect();
    v.sort();
    v
}

fn ask(k: &Kdns, name: &str, t: RecordType) -> Message {
    udp(k.addr(), &query(name, t))
}

#[test]
fn etcd_records_answer_as_skydns_does() {
    let Some(etcd) = start_etcd() else { return };
    let up = Upstream::start();
    for (key, value) in [
        ("www", r#"{"host":"10.0.0.1","ttl":60}"#),
        ("www6", r#"{"host":"2001:db8::1"}"#),
        ("multi/x1", r#"{"host":"10.0.0.2","port":8080}"#),
        ("multi/x2", r#"{"host":"10.0.0.3","port":8080}"#),
        ("alias", r#"{"host":"www.skydns.local"}"#),
        ("out", r#"{"host":"host.outside.test"}"#),
        ("txt", r#"{"text":"hello etcd"}"#),
        ("mail", r#"{"host":"10.0.0.25","mail":true,"priority":20}"#),
        ("dns/ns/ns1", r#"{"host":"10.0.0.53"}"#),
        ("bad", "this is not JSON"),
    ] {
        put(&etcd, &format!("/skydns/local/skydns/{key}"), value, None);
    }
    let k = Kdns::start(&format!(
        "skydns.local:PORT {{\n    etcd {{\n        path /skydns\n        endpoint http://127.0.0.1:{}\n    }}\n    forward . {}\n}}\n",
        etcd.port, up.addr
    ));
    let r = ask(&k, "www.skydns.local.", RecordType::A);
    assert!(r.metadata.authoritative);
    assert_eq!(rrs(&r.answers), ["www.skydns.local. 60 IN A 10.0.0.1"]);
    assert_eq!(
        rrs(&ask(&k, "www6.skydns.local.", RecordType::AAAA).answers),
        ["www6.skydns.local. 300 IN AAAA 2001:db8::1"]
    );
    let nodata = ask(&k, "www6.skydns.local.", RecordType::A);
    assert_eq!((nodata.metadata.response_code, nodata.answers.len()), (ResponseCode::NoError, 0));
    assert_eq!(nodata.authorities[0].record_type(), RecordType::SOA);
    // Several records for one name live below it; SRV names them after their keys.
    assert_eq!(
        rrs(&ask(&k, "multi.skydns.local.", RecordType::A).answers),
        ["multi.skydns.local. 300 IN A 10.0.0.2", "multi.skydns.local. 300 IN A 10.0.0.3"]
    );
    let srv = ask(&k, "multi.skydns.local.", RecordType::SRV);
    assert_eq!(
        rrs(&srv.answers),
        [
            "multi.skydns.local. 300 IN SRV 10 50 8080 x1.multi.skydns.local.",
            "multi.skydns.local. 300 IN SRV 10 50 8080 x2.multi.skydns.local."
        ]
    );
    assert_eq!(
        rrs(&srv.additionals),
        ["x1.multi.skydns.local. 300 IN A 10.0.0.2", "x2.multi.skydns.local. 300 IN A 10.0.0.3"]
    );
    assert_eq!(rrs(&ask(&k, "*.multi.skydns.local.", RecordType::A).answers).len(), 2, "wildcard label");
    // CNAMEs: inside the zone followed here, outside resolved by the rest of the block.
    assert_eq!(
        rrs(&ask(&k, "alias.skydns.local.", RecordType::A).answers),
        ["alias.skydns.local. 300 IN CNAME www.skydns.local.", "www.skydns.local. 60 IN A 10.0.0.1"]
    );
    assert_eq!(
        rrs(&ask(&k, "out.skydns.local.", RecordType::A).answers),
        ["host.outside.test. 300 IN A 192.0.2.1", "out.skydns.local. 300 IN CNAME host.outside.test."]
    );
    assert_eq!(
        rrs(&ask(&k, "txt.skydns.local.", RecordType::TXT).answers),
        ["txt.skydns.local. 300 IN TXT hello etcd"]
    );
    let mx = ask(&k, "mail.skydns.local.", RecordType::MX);
    assert_eq!(rrs(&mx.answers), ["mail.skydns.local. 300 IN MX 20 mail.skydns.local."]);
    assert_eq!(rrs(&mx.additionals), ["mail.skydns.local. 300 IN A 10.0.0.25"]);
    let ns = ask(&k, "skydns.local.", RecordType::NS);
    assert_eq!(rrs(&ns.answers), ["skydns.local. 300 IN NS ns1.ns.dns.skydns.local."]);
    assert_eq!(rrs(&ns.additionals), ["ns1.ns.dns.skydns.local. 300 IN A 10.0.0.53"]);
    let soa = ask(&k, "skydns.local.", RecordType::SOA);
    assert!(rrs(&soa.answers)[0].starts_with("skydns.local. 30 IN SOA ns.dns.skydns.local. hostmaster.skydns.local."));
    // Missing: NXDOMAIN with the SOA; unparsable value: SERVFAIL.
    let nx = ask(&k, "nope.skydns.local.", RecordType::A);
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(nx.authorities[0].record_type(), RecordType::SOA);
    assert_eq!(ask(&k, "bad.skydns.local.", RecordType::A).metadata.response_code, ResponseCode::ServFail);
    // Every query reads etcd: a change shows at once (tcp too).
    put(&etcd, "/skydns/local/skydns/www", r#"{"host":"10.0.0.9","ttl":60}"#, None);
    assert_eq!(
        rrs(&tcp(k.addr(), &query("www.skydns.local.", RecordType::A)).answers),
        ["www.skydns.local. 60 IN A 10.0.0.9"]
    );
    // etcd gone: SERVFAIL, the server itself stays up.
    drop(etcd);
    let r = ask(&k, "www.skydns.local.", RecordType::A);
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
}

#[test]
fn etcd_credentials_authenticate() {
    let Some(etcd) = start_etcd() else { return };
    let p = etcd.port;
    for (path, body) in [
        ("/v3/auth/user/add", r#"{"name":"root","password":"s3cret"}"#),
        ("/v3/auth/user/grant", r#"{"user":"root","role":"root"}"#),
    ] {
        let (code, text) = post(p, path, body, None).unwrap();
        assert_eq!(code, 200, "{path}: {text}");
    }
    put(&etcd, "/skydns/local/skydns/www", r#"{"host":"10.0.0.1"}"#, None);
    let (code, text) = post(p, "/v3/auth/enable", "{}", None).unwrap();
    assert_eq!(code, 200, "{text}");
    let corefile = |creds: &str| {
        format!(
            "skydns.local:PORT {{\n    etcd {{\n        endpoint http://127.0.0.1:{p}\n        {creds}\n    }}\n}}\n"
        )
    };
    let k = Kdns::start(&corefile("credentials root s3cret"));
    assert_eq!(rrs(&ask(&k, "www.skydns.local.", RecordType::A).answers), ["www.skydns.local. 300 IN A 10.0.0.1"]);
    let k = Kdns::start(&corefile("credentials root wrong"));
    assert_eq!(ask(&k, "www.skydns.local.", RecordType::A).metadata.response_code, ResponseCode::ServFail);
    let k = Kdns::start(&corefile(""));
    assert_eq!(ask(&k, "www.skydns.local.", RecordType::A).metadata.response_code, ResponseCode::ServFail);
}
