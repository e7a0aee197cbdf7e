//! Reload (poll and SIGUSR1, good and broken Corefiles), SIGTERM with lameduck, pidfile.

mod common;

use common::upstream::Upstream;
use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};
use std::time::{Duration, Instant};

fn corefile(ip: &str, admin: u16) -> String {
    format!(
        ".:PORT {{\n    reload 2s 0s\n    health 127.0.0.1:{admin} {{\n        lameduck 2s\n    }}\n    ready 127.0.0.1:{}\n    prometheus 127.0.0.1:{}\n    hosts {{\n        {ip} svc.example.org\n    }}\n}}\n",
        admin + 1,
        admin + 2
    )
}

fn admin_ports() -> u16 {
    // three consecutive free TCP ports
    loop {
        let p = free_port();
        if p < 65000 && (1..3).all(|i| std::net::TcpListener::bind(("127.0.0.1", p + i)).is_ok()) {
            return p;
        }
    }
}

fn a_of(k: &Kdns) -> Option<RData> {
    udp(k.addr(), &query("svc.example.org.", RecordType::A)).answers.first().map(|r| r.data.clone())
}

#[test]
fn reload_applies_good_config_and_keeps_old_on_bad_one() {
    let admin = admin_ports();
    let k = Kdns::start(&corefile("10.0.0.1", admin));
    let health = format!("127.0.0.1:{admin}");
    let metrics = format!("127.0.0.1:{}", admin + 2);
    assert_eq!(a_of(&k), Some(RData::A("10.0.0.1".parse().unwrap())));
    let first_hash = k.wait_for_line("Running configuration SHA512 = ", Duration::from_secs(2));

    // Good change, picked up by the poller.
    k.rewrite(&corefile("10.0.0.2", admin));
    let r = udp_until(k.addr(), &query("svc.example.org.", RecordType::A), Duration::from_secs(8), |r| {
        r.answers.first().map(|a| a.data.clone()) == Some(RData::A("10.0.0.2".parse().unwrap()))
    });
    assert_eq!(r.answers[0].data, RData::A("10.0.0.2".parse().unwrap()), "reload not applied");
    k.wait_for_line("Reloading complete", Duration::from_secs(2));
    assert_eq!(k.count_lines("Running configuration SHA512 = "), 2);
    assert!(!k.lines().contains(&first_hash) || k.count_lines(&first_hash) == 1);

    // Broken change: unknown directive. Old config keeps serving, admin listeners stay up.
    k.rewrite(
        &format!("{}\n.:PORT {{\n    frobnicate\n}}\n", corefile("10.0.0.3", admin))
            .replace("hosts {", "hosts {\n        bogus-line-that-is-fine-to-skip"),
    );
    let err = k.wait_for_line("Corefile changed but reload failed", Duration::from_secs(8));
    assert!(err.starts_with("[ERROR] plugin/reload: "), "{err}");
    assert!(err.contains("Corefile:"), "error names the file and line: {err}");
    assert_eq!(a_of(&k), Some(RData::A("10.0.0.2".parse().unwrap())));
    assert_eq!(http_get(&health, "/health").map(|r| r.0), Some(200));
    let scrape = http_get(&metrics, "/metrics").unwrap().1;
    assert_eq!(metric(&scrape, "coredns_reload_failed_total"), Some(1.0), "{scrape}");
    // The bad file is not retried while it stays the same.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(k.count_lines("Corefile changed but reload failed"), 1);
    // Nor is one that does not even parse (unclosed block): one failure, then quiet.
    k.rewrite(".:PORT {\n    whoami\n");
    let deadline = Instant::now() + Duration::from_secs(8);
    while k.count_lines("Corefile changed but reload failed") < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(k.count_lines("Corefile changed but reload failed"), 2);
    std::thread::sleep(Duration::from_millis(4500));
    assert_eq!(k.count_lines("Corefile changed but reload failed"), 2, "unparsable file retried");
    assert_eq!(a_of(&k), Some(RData::A("10.0.0.2".parse().unwrap())));
}

#[test]
fn sigusr1_reloads_and_a_bad_port_change_keeps_everything() {
    let admin = admin_ports();
    let k = Kdns::start(&corefile("10.0.0.1", admin).replace("reload 2s 0s", ""));
    k.rewrite(&corefile("10.0.0.9", admin).replace("reload 2s 0s", ""));
    k.signal(libc::SIGUSR1);
    k.wait_for_line("SIGUSR1: Reloading", Duration::from_secs(3));
    let r = udp_until(k.addr(), &query("svc.example.org.", RecordType::A), Duration::from_secs(3), |r| {
        r.answers.first().map(|a| a.data.clone()) == Some(RData::A("10.0.0.9".parse().unwrap()))
    });
    assert_eq!(r.answers[0].data, RData::A("10.0.0.9".parse().unwrap()));
    // Move health to a port that is taken: the reload fails before anything is closed.
    let blocker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = blocker.local_addr().unwrap().port();
    let bad = corefile("10.0.0.10", admin)
        .replace("reload 2s 0s", "")
        .replace(&format!("health 127.0.0.1:{admin}"), &format!("health 127.0.0.1:{taken}"));
    k.rewrite(&bad);
    k.signal(libc::SIGUSR1);
    k.wait_for_line("Corefile changed but reload failed", Duration::from_secs(3));
    assert_eq!(a_of(&k), Some(RData::A("10.0.0.9".parse().unwrap())));
    assert_eq!(http_get(&format!("127.0.0.1:{admin}"), "/health").map(|r| r.0), Some(200));
    assert_eq!(http_get(&format!("127.0.0.1:{}", admin + 1), "/ready").map(|r| r.0), Some(200));
}

#[test]
fn sigterm_lameduck_keeps_answering_then_exits() {
    let admin = admin_ports();
    let dir = temp_dir("pid");
    let pidfile = dir.join("kdns.pid");
    let mut k = Kdns::start_with(&corefile("10.0.0.1", admin), &["-pidfile", &path_str(&pidfile)]);
    let pid: u32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    assert_eq!(pid, k.child.id());
    let ready = format!("127.0.0.1:{}", admin + 1);
    assert_eq!(http_get(&ready, "/ready").map(|r| r.0), Some(200));
    let sent = Instant::now();
    k.signal(libc::SIGTERM);
    k.wait_for_line("SIGTERM: Shutting down servers then terminating", Duration::from_secs(2));
    k.wait_for_line("[INFO] plugin/health: Going into lameduck mode for 2s", Duration::from_secs(2));
    std::thread::sleep(Duration::from_millis(300));
    // During lameduck: not ready, healthy, DNS answers.
    assert_eq!(http_get(&ready, "/ready").map(|r| r.0), Some(503));
    assert_eq!(http_get(&format!("127.0.0.1:{admin}"), "/health").map(|r| r.0), Some(200));
    assert_eq!(udp(k.addr(), &query("svc.example.org.", RecordType::A)).metadata.response_code, ResponseCode::NoError);
    let code = k.wait_exit(Duration::from_secs(8));
    let took = sent.elapsed();
    assert_eq!(code, Some(0));
    assert!(took >= Duration::from_millis(1900) && took < Duration::from_secs(6), "exit after {took:?}");
    assert!(!pidfile.exists(), "pidfile removed on exit");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn sighup_is_ignored_and_sigint_stops() {
    let mut k = Kdns::start(".:PORT {\n    whoami\n}\n");
    k.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(udp(k.addr(), &query("x.org.", RecordType::A)).metadata.response_code, ResponseCode::NoError);
    k.signal(libc::SIGINT);
    assert_eq!(k.wait_exit(Duration::from_secs(5)), Some(0));
    k.wait_for_line("[INFO] SIGINT: Shutting down", Duration::from_secs(1));
    let mut k = Kdns::start(".:PORT {\n    health 127.0.0.1:0 {\n        lameduck 10s\n    }\n    whoami\n}\n");
    k.signal(libc::SIGQUIT);
    assert_eq!(k.wait_exit(Duration::from_secs(2)), Some(0), "SIGQUIT exits at once, no lameduck");
}

#[test]
fn reload_adds_and_removes_listeners() {
    let k = Kdns::start("a.test:PORT {\n    whoami\n}\n");
    let second = free_port();
    let second_addr = std::net::SocketAddr::from(([127, 0, 0, 1], second));
    k.rewrite(&format!("a.test:PORT {{\n    whoami\n}}\nb.test:{second} {{\n    whoami\n}}\n"));
    k.signal(libc::SIGUSR1);
    k.wait_for_line("Reloading complete", Duration::from_secs(3));
    assert_eq!(udp(second_addr, &query("x.b.test.", RecordType::A)).metadata.response_code, ResponseCode::NoError);
    assert_eq!(udp(k.addr(), &query("x.a.test.", RecordType::A)).metadata.response_code, ResponseCode::NoError);
    // Drop the first port: it stops answering, the second keeps going.
    k.rewrite(&format!("b.test:{second} {{\n    whoami\n}}\n"));
    k.signal(libc::SIGUSR1);
    let deadline = Instant::now() + Duration::from_secs(3);
    while k.count_lines("Reloading complete") < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(k.count_lines("Reloading complete"), 2);
    let gone = udp_raw(k.addr(), &query("x.a.test.", RecordType::A).to_vec().unwrap(), Duration::from_millis(300));
    assert!(gone.is_none(), "old listener must be closed");
    assert_eq!(udp(second_addr, &query("x.b.test.", RecordType::A)).metadata.response_code, ResponseCode::NoError);
}

#[test]
fn a_forwarded_query_in_flight_is_answered_when_a_reload_removes_its_listener() {
    // The miss waits on the removed listener's own UDP worker; draining must let it finish
    // (and its reply leave) before the worker and its runtime go away.
    let up = Upstream::start();
    let k = Kdns::start(&format!("a.test:PORT {{\n    forward . {}\n}}\n", up.addr));
    let second = free_port();
    let addr = k.addr();
    let slow = std::thread::spawn(move || {
        udp_raw(addr, &query("slow800.a.test.", RecordType::A).to_vec().unwrap(), Duration::from_secs(3))
    });
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(up.count("slow800."), 1, "the query must be waiting on the upstream");
    k.rewrite(&format!("b.test:{second} {{\n    whoami\n}}\n"));
    k.signal(libc::SIGUSR1);
    k.wait_for_line("Reloading complete", Duration::from_secs(3));
    let reply = slow.join().unwrap().expect("the in-flight query got no answer");
    let reply = hickory_proto::op::Message::from_vec(&reply).unwrap();
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(!reply.answers.is_empty(), "{reply:?}");
    let gone = udp_raw(k.addr(), &query("x.a.test.", RecordType::A).to_vec().unwrap(), Duration::from_millis(300));
    assert!(gone.is_none(), "old listener must be closed");
}
