//! A flood of never-seen names (dnsperf, bounded in time) through cache + forward: memory stays
//! under a ceiling, the cache stays within its entry and byte budget, and a cached name keeps
//! being answered from the cache during the flood. Also: with a tiny RLIMIT_NOFILE, a flood of
//! TCP connections is shed instead of exhausting descriptors, and UDP keeps answering.
//! dnsperf comes from the test command (as root); without it the flood part says so.

mod common;

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// RSS ceiling for the default cache (10,000 entries per type, 2 KiB each on average) under a
/// unique-name flood; documented in docs/reliability.md (measured: 27 MiB, debug build).
const RSS_CEILING_KIB: u64 = 64 * 1024;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn unique_name_flood_keeps_memory_bounded_and_cached_names_answered() {
    if Command::new("dnsperf").arg("-h").stdout(Stdio::null()).stderr(Stdio::null()).status().is_err() {
        assert!(std::env::var("KDNS_REQUIRE_NETNS").as_deref() != Ok("1"), "dnsperf missing");
        eprintln!("flood: dnsperf not installed, not run");
        return;
    }
    // The upstream answers every name at once (whoami), so the flood reaches the cache at full rate.
    let upstream = Kdns::start(".:PORT {\n    bind 127.0.0.1\n    whoami\n}\n");
    let k = Kdns::start(&format!(".:PORT {{\n    bind 127.0.0.1\n    cache\n    forward . {}\n}}\n", upstream.addr()));
    let hot = udp(k.addr(), &query("hot.flood.example.", RecordType::A));
    assert_eq!(hot.metadata.response_code, ResponseCode::NoError);
    let names = k.dir.join("names");
    let text: String =
        (0..300_000u32).map(|i| format!("u{i}-{}.flood.example. A\n", i.wrapping_mul(2_654_435_761))).collect();
    std::fs::write(&names, text).unwrap();
    let perf = Command::new("dnsperf")
        .args(["-s", "127.0.0.1", "-p", &k.port.to_string(), "-d"])
        .arg(&names)
        .args(["-l", "6", "-c", "8", "-q", "500", "-t", "2"])
        .output();
    let watcher = {
        let (pid, addr) = (k.child.id(), k.addr());
        std::thread::spawn(move || {
            let (mut peak, mut cached, mut asked) = (0u64, 0u32, 0u32);
            let end = Instant::now() + Duration::from_secs(6);
            while Instant::now() < end {
                peak = peak.max(rss_kib(pid));
                asked += 1;
                let packet = query("hot.flood.example.", RecordType::A).to_vec().unwrap();
                if let Some(r) = udp_raw(addr, &packet, Duration::from_millis(500)) {
                    // AA is set on cache hits (CoreDNS's cache writes it).
                    if r.len() > 3 && r[2] & 0x04 != 0 {
                        cached += 1;
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            (peak, cached, asked)
        })
    };
    let out = perf.unwrap();
    let (peak, cached, asked) = watcher.join().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    let line = |what: &str| report.lines().find(|l| l.contains(what)).unwrap_or("").trim().to_string();
    eprintln!(
        "flood: {} | {} | {} | peak RSS {peak} KiB | cached name answered from cache {cached}/{asked}",
        line("Queries sent"),
        line("Queries completed"),
        line("Queries per second")
    );
    assert!(peak < RSS_CEILING_KIB, "RSS {peak} KiB over the ceiling");
    assert!(cached * 10 >= asked * 9, "cached name answered from cache only {cached}/{asked} times");
    assert!(
        udp(k.addr(), &query("after.flood.example.", RecordType::A)).metadata.response_code == ResponseCode::NoError
    );
}

#[test]
fn tcp_connection_flood_is_shed_below_the_descriptor_limit() {
    use std::os::unix::process::CommandExt;
    let dir = temp_dir("tcpflood");
    let port = free_port();
    std::fs::write(dir.join("Corefile"), format!(".:{port} {{\n    bind 127.0.0.1\n    whoami\n}}\n")).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["-conf", "Corefile"]).current_dir(&dir);
    #[allow(unsafe_code)]
    // SAFETY: setrlimit(2) in the child before exec; touches only the new process.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit { rlim_cur: 128, rlim_max: 128 };
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            Ok(())
        });
    }
    let k = Kdns::from_command(cmd, dir.clone(), dir.join("Corefile"));
    k.wait_for_line("kdns-", Duration::from_secs(10));
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    // Far more connections than descriptors: they are accepted and shed, never left to exhaust
    // the process (which would stop UDP replies and accepts for good).
    let mut conns = Vec::new();
    for _ in 0..300 {
        if let Ok(c) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            conns.push(c);
        }
    }
    let r = udp(addr, &query("still.example.", RecordType::A));
    assert_eq!(r.metadata.response_code, ResponseCode::NoError, "UDP answers during the TCP flood");
    drop(conns);
    std::thread::sleep(Duration::from_millis(300));
    let r = tcp(addr, &query("tcp.again.example.", RecordType::A));
    assert_eq!(r.metadata.response_code, ResponseCode::NoError, "TCP answers once the flood is gone");
    k.wait_for_line("TCP connections", Duration::from_secs(2));
}
