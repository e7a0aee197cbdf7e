//! The fail-open supervisor: a small parent process owns the interface, the rules, the
//! templating and the metrics port, and runs the DNS server as its child. It probes the child
//! with real DNS queries on every local IP; when the child exits (crash, SIGKILL, OOM kill) or
//! stops answering, it hands DNS back to the cluster DNS at once (NOTRACK rules out, link-local
//! IPs DNATed to the cluster DNS Service), restarts the child, and takes DNS back once the child
//! answers again.
//!
//! The parent never serves DNS and never holds the cache, so its memory stays small and flat;
//! the child's `oom_score_adj` is raised so the kernel's OOM killer picks it, not the parent.
//! Several instances on one node (a DaemonSet surge) find each other by abstract unix sockets:
//! the newest manages the interface and rules, and the last one out tears them down.

use crate::peers;
use crate::rules::Family;
use crate::{child_restarts, probe_failures, Agent, Role};
use kdns_server::{error, info, warning, PluginDef};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// Environment variable that makes a `kdns node-cache` process the supervised child.
pub const CHILD_ENV: &str = "KDNS_NODECACHE_CHILD";
/// Environment variable naming the file where the supervisor keeps its metrics for the child's
/// prometheus endpoint (node-cache's metric appears on the annotated port, as with node-cache).
pub const METRICS_ENV: &str = "KDNS_NODECACHE_METRICS";
/// A child that never answered is given this long before it is restarted.
const STARTUP_GRACE: Duration = Duration::from_secs(60);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long a stopping child may take (lameduck plus draining) before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(30);

enum Event {
    Exited(u32, String),
}

/// Runs the supervisor until a signal stops it; returns the exit code.
pub fn run(settings: crate::settings::Settings, plugins: Vec<PluginDef>, args: Vec<String>) -> i32 {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            kdns_server::log::stderr_line(&format!("cannot start runtime: {e}"));
            return 1;
        }
    };
    let code = rt.block_on(supervise(settings, plugins, args));
    kdns_server::log::flush();
    code
}

struct Probe {
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
    targets: Vec<SocketAddr>,
    timeout: Duration,
    next_id: u16,
}

impl Probe {
    fn new(local_ips: &[IpAddr], port: u16, timeout: Duration) -> std::io::Result<Probe> {
        let bind = |addr: &str| -> std::io::Result<UdpSocket> {
            let s = std::net::UdpSocket::bind(addr)?;
            s.set_nonblocking(true)?;
            UdpSocket::from_std(s)
        };
        let v4 = if local_ips.iter().any(|i| i.is_ipv4()) { Some(bind("0.0.0.0:0")?) } else { None };
        let v6 = if local_ips.iter().any(|i| i.is_ipv6()) { Some(bind("[::]:0")?) } else { None };
        Ok(Probe {
            v4,
            v6,
            targets: local_ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect(),
            timeout,
            next_id: fastrand::u16(..),
        })
    }

    fn ports(&self) -> (u16, u16) {
        let port = |s: &Option<UdpSocket>| s.as_ref().and_then(|s| s.local_addr().ok()).map_or(0, |a| a.port());
        (port(&self.v4), port(&self.v6))
    }

    /// One round: `kdns-probe. CH TXT` to every local IP; true when all answered in time.
    async fn round(&mut self) -> bool {
        let mut waiting = Vec::new();
        for target in self.targets.clone() {
            self.next_id = self.next_id.wrapping_add(1);
            let id = self.next_id;
            let sock = if target.is_ipv4() { &self.v4 } else { &self.v6 };
            let Some(sock) = sock else { return false };
            if sock.send_to(&probe_query(id), target).await.is_err() {
                return false;
            }
            waiting.push((Family::of(&target.ip()), id));
        }
        let deadline = tokio::time::Instant::now() + self.timeout;
        let (mut b4, mut b6) = ([0u8; 512], [0u8; 512]);
        while !waiting.is_empty() {
            let recv = async {
                match (&self.v4, &self.v6) {
                    (Some(a), Some(b)) => tokio::select! {
                        r = a.recv(&mut b4) => r.map(|n| (Family::V4, n)),
                        r = b.recv(&mut b6) => r.map(|n| (Family::V6, n)),
                    },
                    (Some(a), None) => a.recv(&mut b4).await.map(|n| (Family::V4, n)),
                    (None, Some(b)) => b.recv(&mut b6).await.map(|n| (Family::V6, n)),
                    (None, None) => Err(std::io::Error::other("no probe socket")),
                }
            };
            match tokio::time::timeout_at(deadline, recv).await {
                Ok(Ok((family, n))) => {
                    let buf = if family == Family::V4 { &b4 } else { &b6 };
                    if n >= 12 && buf[2] & 0x80 != 0 {
                        let id = u16::from_be_bytes([buf[0], buf[1]]);
                        waiting.retain(|w| *w != (family, id));
                    }
                }
                Ok(Err(_)) => {}
                Err(_) => return false,
            }
        }
        true
    }
}

/// `kdns-probe. CH TXT`, answered by the server core itself.
fn probe_query(id: u16) -> Vec<u8> {
    let mut q = Vec::with_capacity(32);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    q.extend_from_slice(kdns_server::handler::PROBE_NAME);
    q.extend_from_slice(&[0, 16, 0, 3]);
    q
}

struct Child {
    pid: u32,
    answered: bool,
    started: tokio::time::Instant,
}

fn spawn_child(args: &[String], events: &mpsc::UnboundedSender<Event>, metrics: &Path) -> std::io::Result<Child> {
    let exe = std::env::current_exe()?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("node-cache").args(args).env(CHILD_ENV, "1").env(METRICS_ENV, metrics);
    die_with_parent(&mut cmd);
    let mut child = cmd.spawn()?;
    let pid = child.id();
    // The child holds the cache: when memory runs out it is the one to go, not the supervisor.
    let _ = std::fs::write(format!("/proc/{pid}/oom_score_adj"), "1000");
    let tx = events.clone();
    std::thread::Builder::new().name("kdns-child-wait".into()).spawn(move || {
        let status = child.wait().map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
        let _ = tx.send(Event::Exited(pid, status));
    })?;
    Ok(Child { pid, answered: false, started: tokio::time::Instant::now() })
}

#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl(2) is async-signal-safe and touches only the new process.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

#[allow(unsafe_code)]
fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

async fn supervise(settings: crate::settings::Settings, plugins: Vec<PluginDef>, args: Vec<String>) -> i32 {
    let mut probe = match Probe::new(&settings.local_ips, settings.dns_port, settings.probe_timeout) {
        Ok(p) => p,
        Err(e) => {
            kdns_server::log::stderr_line(&format!("node-cache: probe socket: {e}"));
            return 1;
        }
    };
    let threshold = settings.probe_failures;
    let interval = settings.probe_interval;
    let reload_with_signal = settings.reload_with_signal;
    let instance_prefix = format!("kdns-nodecache/{}", settings.interface_name);
    let agent = match Agent::with_role(settings, plugins, Role::Supervisor, probe.ports()) {
        Ok(a) => Arc::new(a),
        Err(e) => {
            kdns_server::log::flush();
            kdns_server::log::stderr_line(&format!("node-cache: {e}"));
            return 1;
        }
    };
    let registration = match peers::register(&instance_prefix) {
        Ok(r) => r,
        Err(e) => {
            kdns_server::log::stderr_line(&format!("node-cache: cannot register this instance: {e}"));
            return 1;
        }
    };
    crate::intercepting().with(&[]).set(0.0);
    // The newest instance manages interface and rules, but only once its own server answers: a
    // surge instance that is still starting leaves the running one's interception alone.
    let should_manage = |me: &peers::Peer, answered: bool| {
        let others = peers::others(&instance_prefix, me);
        !others.iter().any(|p| p.start_ms > me.start_ms) && (answered || others.is_empty())
    };
    let mut answered_once = false;
    let manage = should_manage(&registration.me, false);
    agent.set_manage(manage);
    crate::owner().with(&[]).set(if manage { 1.0 } else { 0.0 });
    agent.serve_metrics().await;
    // Interface, and the fail-open rules until the server answers: link-local IPs reach the
    // cluster DNS from the first second.
    agent.sync().await;
    let metrics_file = std::env::temp_dir().join(format!("kdns-node-cache-{}.metrics", std::process::id()));
    export_metrics(&metrics_file);

    let (events_tx, mut events) = mpsc::unbounded_channel::<Event>();
    let mut child = match spawn_child(&args, &events_tx, &metrics_file) {
        Ok(c) => Some(c),
        Err(e) => {
            kdns_server::log::stderr_line(&format!("node-cache: cannot start the DNS server: {e}"));
            agent.shutdown().await;
            return 1;
        }
    };
    use tokio::signal::unix::{signal as sig, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut quit), Ok(mut usr1), Ok(mut hup)) = (
        sig(SignalKind::terminate()),
        sig(SignalKind::interrupt()),
        sig(SignalKind::quit()),
        sig(SignalKind::user_defined1()),
        sig(SignalKind::hangup()),
    ) else {
        kdns_server::log::stderr_line("node-cache: cannot install signal handlers");
        return 1;
    };
    let start = tokio::time::Instant::now();
    let mut probe_tick = tokio::time::interval(interval);
    let sync_every = agent.settings().sync_interval;
    let mut sync_tick = tokio::time::interval_at(start + sync_every, sync_every);
    let poll_every = agent.settings().config_sync_interval;
    let mut poll_tick = tokio::time::interval_at(start + poll_every, poll_every);
    for t in [&mut probe_tick, &mut sync_tick, &mut poll_tick] {
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    let mut failures = 0u32;
    let mut backoff = Duration::ZERO;
    let mut restart_at: Option<tokio::time::Instant> = None;
    let stop_signal = loop {
        let restart = async {
            match restart_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some(Event::Exited(pid, status)) = events.recv() => {
                if child.as_ref().is_some_and(|c| c.pid == pid) {
                    child = None;
                    agent.set_ready(false);
                    error!("DNS server (pid {pid}) exited: {status}");
                    if !agent.is_failed_open() {
                        agent.fail_open("exited").await;
                        export_metrics(&metrics_file);
                    }
                    restart_at = Some(tokio::time::Instant::now() + backoff);
                    backoff = (backoff * 2).clamp(Duration::from_millis(200), MAX_BACKOFF);
                }
            }
            _ = restart => {
                restart_at = None;
                failures = 0;
                match spawn_child(&args, &events_tx, &metrics_file) {
                    Ok(c) => {
                        child_restarts().with(&[]).inc();
                        info!("Started the DNS server again (pid {})", c.pid);
                        child = Some(c);
                    }
                    Err(e) => {
                        error!("cannot start the DNS server: {e}");
                        restart_at = Some(tokio::time::Instant::now() + MAX_BACKOFF);
                    }
                }
            }
            _ = probe_tick.tick() => {
                export_metrics(&metrics_file);
                let answered = match child.as_mut() {
                    None => None,
                    Some(c) => {
                        let ok = probe.round().await;
                        if ok {
                            c.answered = true;
                            answered_once = true;
                        }
                        Some(ok)
                    }
                };
                let manage = should_manage(&registration.me, answered_once);
                if manage != agent.is_managing() {
                    if manage {
                        info!("No newer instance on this node: managing interface and rules");
                    } else {
                        info!("A newer instance runs on this node: handing interface and rules over to it");
                    }
                    agent.set_manage(manage);
                    if manage && !(answered == Some(true) && agent.is_failed_open()) {
                        agent.sync().await;
                    }
                }
                agent.set_ready(answered == Some(true));
                let Some(c) = child.as_mut() else { continue };
                if answered == Some(true) {
                    failures = 0;
                    if agent.is_failed_open() {
                        agent.intercept().await;
                        export_metrics(&metrics_file);
                        backoff = Duration::ZERO;
                    }
                } else {
                    failures += 1;
                    probe_failures().with(&[]).inc();
                    let hung = if c.answered { failures >= threshold } else { c.started.elapsed() > STARTUP_GRACE };
                    if hung {
                        warning!("DNS server (pid {}) did not answer {failures} probes in a row: restarting it", c.pid);
                        if !agent.is_failed_open() {
                            agent.fail_open("hung").await;
                            export_metrics(&metrics_file);
                        }
                        signal(c.pid, libc::SIGKILL);
                        failures = 0;
                    }
                }
            }
            _ = sync_tick.tick() => agent.sync().await,
            _ = poll_tick.tick() => {
                if agent.poll_config().await && reload_with_signal {
                    if let Some(c) = &child {
                        signal(c.pid, libc::SIGUSR1);
                    }
                }
            }
            _ = usr1.recv() => {
                if let Some(c) = &child {
                    signal(c.pid, libc::SIGUSR1);
                }
            }
            _ = hup.recv() => {}
            _ = term.recv() => break libc::SIGTERM,
            _ = int.recv() => break libc::SIGINT,
            _ = quit.recv() => break libc::SIGQUIT,
        }
    };

    // Unready at once: a redirecting dataplane (and a Service) moves DNS away while the server
    // still answers through its lameduck.
    agent.set_ready(false);
    // Last one out tears down; with another instance running, it keeps serving what we leave.
    let others = peers::others(&instance_prefix, &registration.me);
    if others.is_empty() {
        agent.shutdown().await;
    } else {
        let pids: Vec<String> = others.iter().map(|p| p.pid.to_string()).collect();
        info!("Another instance (pid {}) serves this node: leaving interface and rules to it", pids.join(", "));
        agent.set_manage(false);
        agent.shutdown_without_teardown().await;
    }
    if let Some(c) = child.take() {
        signal(c.pid, stop_signal);
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        loop {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(Event::Exited(pid, _))) if pid == c.pid => break,
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(_) => {
                    warning!("DNS server (pid {}) did not stop within {STOP_GRACE:?}: killing it", c.pid);
                    signal(c.pid, libc::SIGKILL);
                    break;
                }
            }
        }
    }
    drop(registration);
    let _ = std::fs::remove_file(&metrics_file);
    0
}

/// Writes this process's `coredns_nodecache_*` families where the child's scrape picks them up.
fn export_metrics(path: &PathBuf) {
    let text = kdns_server::metrics::registry().render();
    let mut out = String::new();
    for line in text.lines() {
        let name = line.strip_prefix("# HELP ").or_else(|| line.strip_prefix("# TYPE ")).unwrap_or(line);
        if name.starts_with("coredns_nodecache_") {
            out.push_str(line);
            out.push('\n');
        }
    }
    let tmp = path.with_extension("tmp");
    if std::fs::write(&tmp, out).is_ok() {
        let _ = std::fs::rename(&tmp, path);
    }
}
