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

mod child;
pub mod machine;
mod probe;

use crate::metrics::{child_restarts, probe_failures};
use crate::peers;
use crate::{Agent, Role};
use kdns_server::{error, info, warning, PluginDef};
use machine::{Action, Event, Limits, Machine, Peers};
use probe::Probe;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Environment variable that makes a `kdns node-cache` process the supervised child.
pub const CHILD_ENV: &str = "KDNS_NODECACHE_CHILD";
/// Environment variable naming the file where the supervisor keeps its metrics for the child's
/// prometheus endpoint (node-cache's metric appears on the annotated port, as with node-cache).
pub const METRICS_ENV: &str = "KDNS_NODECACHE_METRICS";
/// How long a stopping child may take (lameduck plus draining) before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(30);

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

async fn supervise(settings: crate::settings::Settings, plugins: Vec<PluginDef>, args: Vec<String>) -> i32 {
    let mut probe = match Probe::new(&settings.local_ips, settings.dns_port, settings.probe_timeout) {
        Ok(p) => p,
        Err(e) => {
            kdns_server::log::stderr_line(&format!("node-cache: probe socket: {e}"));
            return 1;
        }
    };
    let limits = Limits { hung_after: settings.probe_failures, ..Limits::default() };
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
    let peers_now = || {
        let others = peers::others(&instance_prefix, &registration.me);
        Peers { others: !others.is_empty(), newer: others.iter().any(|p| p.start_ms > registration.me.start_ms) }
    };
    crate::metrics::intercepting().with(&[]).set(0.0);
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
    agent.serve_metrics().await;
    let (exits_tx, mut exits) = mpsc::unbounded_channel();
    let mut driver = Driver {
        agent: agent.clone(),
        args,
        exits_tx,
        metrics_file: std::env::temp_dir().join(format!("kdns-node-cache-{}.metrics", std::process::id())),
        restart_at: None,
        stop_signal: libc::SIGTERM,
        running: false,
    };
    let (mut machine, first) = Machine::new(limits, peers_now());
    export_metrics(&driver.metrics_file);
    // Interface and the fail-open rules until the server answers: link-local IPs reach the
    // cluster DNS from the first second. Then the child; without one there is nothing to run.
    for action in first {
        match driver.act(action, &mut exits).await {
            Some(Event::SpawnFailed) => {
                agent.shutdown().await;
                return 1;
            }
            Some(started) => driver.feed(&mut machine, started, &mut exits).await,
            None => {}
        }
    }
    driver.running = true;
    let start = tokio::time::Instant::now();
    let settings = agent.settings();
    let mut probe_tick = tokio::time::interval(settings.probe_interval);
    let mut sync_tick = tokio::time::interval_at(start + settings.sync_interval, settings.sync_interval);
    let mut poll_tick = tokio::time::interval_at(start + settings.config_sync_interval, settings.config_sync_interval);
    for t in [&mut probe_tick, &mut sync_tick, &mut poll_tick] {
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    let stop_signal = loop {
        let restart = async {
            match driver.restart_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let event = tokio::select! {
            Some((pid, status)) = exits.recv() => {
                if machine.child() == Some(pid) {
                    error!("DNS server (pid {pid}) exited: {status}");
                }
                Event::Exited { pid }
            }
            _ = restart => {
                driver.restart_at = None;
                Event::RestartDue
            }
            _ = probe_tick.tick() => {
                export_metrics(&driver.metrics_file);
                let answered = if machine.wants_probe() { Some(probe.round().await) } else { None };
                Event::Probed { answered, peers: peers_now() }
            }
            _ = sync_tick.tick() => {
                agent.sync().await;
                continue;
            }
            _ = poll_tick.tick() => {
                if agent.poll_config().await && settings.reload_with_signal {
                    if let Some(pid) = machine.child() {
                        child::signal(pid, libc::SIGUSR1);
                    }
                }
                continue;
            }
            _ = usr1.recv() => {
                if let Some(pid) = machine.child() {
                    child::signal(pid, libc::SIGUSR1);
                }
                continue;
            }
            _ = hup.recv() => continue,
            _ = term.recv() => break libc::SIGTERM,
            _ = int.recv() => break libc::SIGINT,
            _ = quit.recv() => break libc::SIGQUIT,
        };
        driver.feed(&mut machine, event, &mut exits).await;
    };
    driver.stop_signal = stop_signal;
    driver.feed(&mut machine, Event::Stop { peers: peers_now() }, &mut exits).await;
    drop(registration);
    let _ = std::fs::remove_file(&driver.metrics_file);
    0
}

/// Carries out the machine's actions with the agent, the child and the clock.
struct Driver {
    agent: Arc<Agent>,
    args: Vec<String>,
    exits_tx: mpsc::UnboundedSender<(u32, String)>,
    metrics_file: PathBuf,
    /// When the machine wants [`Event::RestartDue`].
    restart_at: Option<tokio::time::Instant>,
    /// Passed on to the child when the supervisor stops.
    stop_signal: i32,
    /// Past the first start (manager changes are logged from then on).
    running: bool,
}

type Exits = mpsc::UnboundedReceiver<(u32, String)>;

impl Driver {
    /// Feeds `event`, and the events the actions lead to, until the machine is settled.
    async fn feed(&mut self, machine: &mut Machine, event: Event, exits: &mut Exits) {
        let mut events = std::collections::VecDeque::from([event]);
        while let Some(event) = events.pop_front() {
            for action in machine.on(event, std::time::Instant::now()) {
                events.extend(self.act(action, exits).await);
            }
        }
    }

    /// Carries out one action; starting a child answers with the event of its outcome.
    async fn act(&mut self, action: Action, exits: &mut Exits) -> Option<Event> {
        let agent = &self.agent;
        match action {
            Action::FailOpen(reason) => {
                agent.fail_open(reason).await;
                export_metrics(&self.metrics_file);
            }
            Action::Intercept => {
                agent.intercept().await;
                export_metrics(&self.metrics_file);
            }
            Action::Sync => agent.sync().await,
            Action::Manage(on) => {
                if self.running && on != agent.is_managing() {
                    if on {
                        info!("No newer instance on this node: managing interface and rules");
                    } else {
                        info!("A newer instance runs on this node: handing interface and rules over to it");
                    }
                }
                agent.set_manage(on);
                crate::metrics::owner().with(&[]).set(if on { 1.0 } else { 0.0 });
            }
            Action::Ready(ready) => agent.set_ready(ready),
            Action::Kill { pid, failed_rounds } => {
                warning!("DNS server (pid {pid}) did not answer {failed_rounds} probes in a row: restarting it");
                child::signal(pid, libc::SIGKILL);
            }
            Action::Spawn => {
                return Some(match child::spawn(&self.args, &self.exits_tx, &self.metrics_file) {
                    Ok(pid) => Event::Spawned { pid },
                    Err(e) => {
                        if self.running {
                            error!("cannot start the DNS server: {e}");
                        } else {
                            kdns_server::log::stderr_line(&format!("node-cache: cannot start the DNS server: {e}"));
                        }
                        Event::SpawnFailed
                    }
                });
            }
            Action::Restarted(pid) => {
                child_restarts().with(&[]).inc();
                info!("Started the DNS server again (pid {pid})");
            }
            Action::RestartAt(at) => self.restart_at = Some(tokio::time::Instant::from_std(at)),
            Action::CountProbeFailure => probe_failures().with(&[]).inc(),
            Action::TearDown => agent.shutdown().await,
            Action::HandOver => {
                info!("Another instance serves this node: leaving interface and rules to it");
                agent.shutdown_without_teardown().await;
            }
            Action::StopChild(pid) => {
                child::signal(pid, self.stop_signal);
                let deadline = tokio::time::Instant::now() + STOP_GRACE;
                loop {
                    match tokio::time::timeout_at(deadline, exits.recv()).await {
                        Ok(Some((exited, _))) if exited == pid => break,
                        Ok(Some(_)) => continue,
                        Ok(None) => break,
                        Err(_) => {
                            warning!("DNS server (pid {pid}) did not stop within {STOP_GRACE:?}: killing it");
                            child::signal(pid, libc::SIGKILL);
                            break;
                        }
                    }
                }
            }
        }
        None
    }
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
