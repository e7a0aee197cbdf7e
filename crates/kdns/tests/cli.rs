//! Command line: CoreDNS flags, multi-call names, startup errors that name file and line.

mod common;

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use std::process::Command;

fn run(args: &[&str], dir: &std::path::Path) -> (i32, String, String) {
    run_to_exit(args, dir)
}

fn start_error(corefile: &str) -> String {
    let dir = temp_dir("bad");
    std::fs::write(dir.join("Corefile"), corefile).unwrap();
    let (code, _, err) = run(&["-conf", "Corefile"], &dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, 1, "{err}");
    err
}

#[test]
fn version_and_plugins() {
    let dir = temp_dir("cli");
    let (code, out, _) = run(&["-version"], &dir);
    assert_eq!(code, 0);
    assert!(out.starts_with("kdns-"), "{out}");
    for form in [["-plugins"], ["--plugins"]] {
        let (code, out, _) = run(&form, &dir);
        assert_eq!(code, 0);
        for p in [
            "dns.whoami",
            "dns.log",
            "dns.errors",
            "dns.health",
            "dns.ready",
            "dns.prometheus",
            "dns.hosts",
            "dns.reload",
        ] {
            assert!(out.lines().any(|l| l.trim() == p), "{p} missing in {out}");
        }
    }
    let (code, _, err) = run(&["-nosuchflag"], &dir);
    assert_eq!(code, 2);
    assert!(err.contains("flag provided but not defined: -nosuchflag"));
    let (code, _, err) = run(&["-conf", "Corefile", "extra"], &dir);
    assert_eq!(code, 1, "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Output to a pipe whose reader is gone (`kdns -version | head -0`): the process dies of
/// SIGPIPE without a word, as CoreDNS does, never a panic message with exit 101.
#[test]
#[allow(unsafe_code)]
fn closed_stdout_ends_quietly_by_sigpipe() {
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::os::unix::process::ExitStatusExt;
    let dir = temp_dir("pipe");
    for args in [&["-version"][..], &["-plugins"], &["version"], &["check", "-conf", "stdin"]] {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills two descriptors that this test then owns.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: both descriptors were just created and are owned here alone.
        let (reader, writer) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        drop(reader);
        let mut child = Command::new(BIN)
            .args(args)
            .current_dir(&dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::from(writer))
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            let _ = stdin.write_all(b".:1053 {\n    whoami\n}\n");
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{args:?}: {:?} {stderr}", out.status);
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_corefiles_name_file_and_line() {
    let e = start_error(".:0 {\n    whoami\n    frobnicate\n}\n");
    assert!(e.contains("Corefile:3 - Error during parsing: Unknown directive 'frobnicate'"), "{e}");
    let e = start_error(".:0 {\n    whoami\n    dnstap /tmp/dnstap.sock\n}\n");
    assert!(e.contains("Corefile:3") && e.contains("plugin 'dnstap' is not built"), "{e}");
    let e = start_error(".:0 {\n    whoami\n");
    assert!(e.contains("Corefile:1"), "{e}");
    let e = start_error("example.org:0 {\n    whoami\n}\nexample.org:0 {\n    whoami\n}\n");
    assert!(e.contains("Corefile:4") && e.contains("already defined"), "{e}");
    let e = start_error("tls://.:0 {\n    whoami\n}\n");
    assert!(e.contains("not supported"), "{e}");
    let e = start_error(".:0 {\n    reload 1s\n}\n");
    assert!(e.contains("Corefile:2") && e.contains("2s"), "{e}");
    let e = start_error(".:0 {\n    import missing.conf\n}\n");
    assert!(e.contains("Corefile:2") && e.contains("missing.conf"), "{e}");
}

#[test]
fn default_corefile_with_dns_port_flag() {
    let dir = temp_dir("default");
    let port = free_port();
    let child = Command::new(BIN)
        .args(["-dns.port", &port.to_string(), "-quiet"])
        .current_dir(&dir)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let reply = first_answer(child, port, "x.org.");
    let reply = reply.expect("built-in whoami answers");
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(reply.additionals.iter().any(|r| r.record_type() == RecordType::SRV));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn node_cache_flags_are_checked_before_anything_changes() {
    let dir = temp_dir("nc");
    let d = path_str(&dir);
    // -setupinterface/-setupiptables stay on: a bad value must stop before netlink or iptables
    // are touched (this test runs without root and without a namespace).
    for (args, needle) in [
        (vec!["node-cache", "-localip", ""], "invalid localip specified - \"\""),
        (vec!["node-cache", "-localip", "169.254.20.10,"], "invalid localip specified"),
        (vec!["node-cache", "-localip", "169.254.20.10", "-syncinterval", "soon"], "-syncinterval"),
        (vec!["node-cache", "-localip", "169.254.20.10", "-health-port", "99999"], "-health-port"),
        (vec!["node-cache", "-localip", "169.254.20.10", "-interfacename", "much-too-long-name"], "-interfacename"),
        (vec!["node-cache", "-localip", "169.254.20.10", "-firewall", "pf"], "-firewall"),
        (vec!["node-cache", "-nosuchflag"], "flag provided but not defined: -nosuchflag"),
        // The stock manifest passes only args: -localip alone selects node-cache mode.
        (vec!["-localip", "169.254.20.10,", "-conf", "/etc/Corefile"], "invalid localip specified"),
    ] {
        let (code, _, err) = run(&args, &dir);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    // A template that needs the upstream Service's variable, without it: a clear error naming
    // the variable, and no Corefile with `<nil>` in it.
    std::fs::write(dir.join("Corefile.base"), ".:53 {\n    forward . __PILLAR__CLUSTER__DNS__\n}\n").unwrap();
    let conf = format!("{d}/Corefile");
    let base = format!("{d}/Corefile.base");
    let (code, out, err) = run(
        &[
            "node-cache",
            "-localip",
            "169.254.20.10",
            "-conf",
            &conf,
            "-basecorefile",
            &base,
            "-upstreamsvc",
            "no-such-upstream",
            "-setupinterface=false",
            "-setupiptables=false",
        ],
        &dir,
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("NO_SUCH_UPSTREAM_SERVICE_HOST"), "{out}");
    assert!(err.contains("no Corefile to load"), "{err}");
    assert!(!dir.join("Corefile").exists());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn node_cache_renders_the_template_and_serves_without_touching_the_node() {
    // The Cilium local-redirect setup: no interface, no rules, the template rendered and served.
    let dir = temp_dir("nc-lrp");
    let port = free_port();
    let upstream = common::upstream::Upstream::start();
    std::fs::write(
        dir.join("Corefile.base"),
        "cluster.local:__PORT__ {\n    bind 127.0.0.1\n    forward . __PILLAR__CLUSTER__DNS__:__UP__ {\n        force_tcp\n    }\n    prometheus __PROMETHEUS__ENDPOINT__\n}\n"
            .replace("__PORT__", &port.to_string())
            .replace("__UP__", &upstream.addr.port().to_string()),
    )
    .unwrap();
    let metrics_port = free_port();
    let node_metrics_port = free_port();
    let child = std::process::Command::new(common::BIN)
        .args([
            "node-cache",
            "-localip",
            "127.0.0.1",
            "-conf",
            &path_str(&dir.join("Corefile")),
            "-basecorefile",
            &path_str(&dir.join("Corefile.base")),
            "-setupinterface=false",
            "-setupiptables=false",
            "-prometheus-listen-address",
            &format!("127.0.0.1:{metrics_port}"),
            "-metrics-listen-address",
            &format!("127.0.0.1:{node_metrics_port}"),
        ])
        .env("KUBE_DNS_SERVICE_HOST", "127.0.0.1")
        .current_dir(&dir)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let written = std::fs::read_to_string(dir.join("Corefile")).unwrap_or_default();
    let reply = first_answer_keep(child, port, "svc.cluster.local.", |child| {
        let scrape = http_get(&format!("127.0.0.1:{node_metrics_port}"), "/metrics").map(|r| r.1).unwrap_or_default();
        let _ = child.kill();
        let _ = child.wait();
        scrape
    });
    let (reply, scrape) = reply;
    let written = if written.is_empty() { std::fs::read_to_string(dir.join("Corefile")).unwrap() } else { written };
    assert!(written.contains("forward . 127.0.0.1:"), "{written}");
    assert!(written.contains(&format!("prometheus 127.0.0.1:{metrics_port}")), "{written}");
    let reply = reply.expect("node-cache answers from the rendered Corefile");
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(upstream.seen().iter().any(|s| s.tcp && s.qname == "svc.cluster.local."), "force_tcp kept");
    assert!(scrape.contains("coredns_nodecache_setup_errors_total{errortype=\"configmap\"} 0"), "{scrape}");
    assert!(scrape.contains("coredns_nodecache_config_generation 1"), "{scrape}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn import_globs_snippets_and_env() {
    let dir = temp_dir("imp");
    std::fs::create_dir_all(dir.join("custom")).unwrap();
    std::fs::write(dir.join("custom/a.override"), "hosts {\n    10.9.9.9 imported.example.org\n}\n").unwrap();
    let corefile = "(base) {\n    errors\n}\n.:{$KDNS_TEST_PORT} {\n    import base\n    import custom/*.override\n}\n";
    std::fs::write(dir.join("Corefile"), corefile).unwrap();
    let port = free_port();
    let child = Command::new(BIN)
        .args(["-conf", "Corefile"])
        .env("KDNS_TEST_PORT", port.to_string())
        .current_dir(&dir)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let answered = first_answer(child, port, "imported.example.org.");
    let r = answered.expect("answer");
    assert_eq!(
        format!("{:?}", r.answers[0].data),
        format!("{:?}", hickory_proto::rr::RData::A("10.9.9.9".parse().unwrap()))
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn corefile_in_working_directory_and_coredns_name() {
    let dir = temp_dir("cwd");
    let port = free_port();
    std::fs::write(dir.join("Corefile"), format!(".:{port} {{\n    whoami\n}}\n")).unwrap();
    let link = dir.join("coredns");
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    let child = Command::new(&link).current_dir(&dir).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let ok = first_answer(child, port, "x.org.").is_some();
    assert!(ok, "./Corefile is loaded when -conf is not given, also when invoked as coredns");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn corefile_from_stdin() {
    use std::io::Write;
    let dir = temp_dir("stdin");
    let port = free_port();
    let mut child = Command::new(BIN)
        .args(["-conf", "stdin", "-quiet"])
        .current_dir(&dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!(".:{port} {{\n    whoami\n}}\n").as_bytes()).unwrap();
    drop(stdin);
    let ok = first_answer(child, port, "x.org.").is_some();
    assert!(ok, "-conf stdin reads the Corefile from standard input");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn check_describes_a_corefile_without_serving_it() {
    let dir = temp_dir("check");
    std::fs::write(
        dir.join("Corefile"),
        "cluster.local:5353 {\n    errors\n    cache 30\n    forward . 10.0.0.53\n    prometheus :9253\n    health :8080 {\n        lameduck 5s\n    }\n}\n.:5353 {\n    bind 127.0.0.1\n    whoami\n}\n",
    )
    .unwrap();
    let (code, out, err) = run(&["check", "-conf", "Corefile"], &dir);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Corefile: OK, 2 server block(s)"), "{out}");
    assert!(out.contains("cluster.local. on :5353\n    prometheus -> errors -> cache -> forward"), "{out}");
    assert!(out.contains(". on 127.0.0.1:5353\n    whoami"), "{out}");
    assert!(out.contains("http :8080/health") && out.contains("lameduck 5s"), "{out}");
    std::fs::write(dir.join("Bad"), ".:53 {\n    forward\n}\n").unwrap();
    let (code, _, err) = run(&["check", "-conf", "Bad"], &dir);
    assert_eq!(code, 1);
    assert!(err.contains("Bad:2 - Error during parsing"), "{err}");
    let (code, out, _) = run(&["version"], &dir);
    assert_eq!(code, 0);
    assert!(out.starts_with("kdns-") && out.contains("CoreDNS-1.14.7 compatible"), "{out}");
    let _ = std::fs::remove_dir_all(dir);
}
