//! Process lifecycle: load a Corefile into a running instance, reload it atomically (a failed
//! reload leaves the old instance serving, sockets and admin listeners included), and react to
//! signals the way CoreDNS does (SIGTERM lameduck, SIGINT, SIGQUIT, SIGUSR1 reload, SIGHUP
//! ignored).

use crate::admin::{self, AdminListener, Routes};
use crate::config::{self, Instance, ListenerKey};
use crate::listener::{self, InFlight, Listener};
use crate::metrics;
use crate::plugin::{format_duration, PluginDef, Readiness, ReloadSettings, Route};
use kdns_corefile::Corefile;
use sha2::{Digest, Sha512};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Where the Corefile comes from.
#[derive(Clone, Debug)]
pub enum Source {
    File(PathBuf),
    /// Text given once (stdin or the built-in default); reloads re-use it.
    Text {
        name: String,
        text: String,
    },
}

impl Source {
    pub fn read(&self) -> Result<(String, String, PathBuf), String> {
        match self {
            Source::File(p) => {
                let bytes = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
                let text = String::from_utf8(bytes).map_err(|e| {
                    let at = e.utf8_error().valid_up_to();
                    let line = e.as_bytes()[..at].iter().filter(|b| **b == b'\n').count() + 1;
                    format!("{}:{line} - Error during parsing: invalid UTF-8", p.display())
                })?;
                Ok((
                    p.display().to_string(),
                    text,
                    p.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(".")),
                ))
            }
            Source::Text { name, text } => Ok((name.clone(), text.clone(), PathBuf::from("."))),
        }
    }
}

/// A mode that runs around the DNS server (node-cache mode): it learns when the first
/// configuration serves and is awaited when the process stops, before the listeners close.
pub trait Embedder: Send + Sync {
    /// Awaited once, after the Corefile parsed and before the first configuration binds.
    fn starting(&self) -> BoxFuture;
    /// Runs from the moment the first configuration serves until the process stops.
    fn serving(&self, control: Control) -> BoxFuture;
    /// Awaited on SIGTERM (after lameduck), SIGINT and SIGQUIT while the DNS sockets still answer.
    fn stopping(&self) -> BoxFuture;
}

pub type BoxFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Lets an [`Embedder`] ask the running server for things.
#[derive(Clone)]
pub struct Control {
    tx: mpsc::Sender<Event>,
}

impl Control {
    /// Re-reads the Corefile now, as SIGUSR1 does but without reloading an unchanged file. Never
    /// blocks: the request is dropped when the server is busy with a reload or a stop already.
    pub fn reload(&self) {
        let _ = self.tx.try_send(Event::Reload("request"));
    }
}

pub struct Options {
    pub source: Source,
    pub dns_port: u16,
    pub pidfile: Option<PathBuf>,
    pub quiet: bool,
    pub plugins: Vec<PluginDef>,
    pub workers: usize,
    pub version_lines: Vec<String>,
    pub embedder: Option<Arc<dyn Embedder>>,
}

/// Parses the Corefile and returns it with its SHA-512 (of the canonical parsed form).
pub fn parse(source: &Source) -> Result<(Corefile, String, PathBuf), String> {
    let (name, text, dir) = source.read()?;
    let corefile =
        kdns_corefile::parse_str(&text, &name, &dir, &kdns_corefile::process_env).map_err(|e| e.to_string())?;
    let hash = hex(&Sha512::digest(corefile.canonical().as_bytes()));
    Ok((corefile, hash, dir))
}

/// Checks a Corefile the way a reload would (parse, then set up every plugin) without binding
/// or starting anything; the error names the file and line.
pub fn check(source: &Source, plugins: &[PluginDef], dns_port: u16) -> Result<(), String> {
    let (corefile, _, dir) = parse(source)?;
    config::build(&corefile, plugins, dns_port, &dir).map(|_| ()).map_err(|e| e.to_string())
}

/// `kdns check`: validates like [`check`] and describes the result — every listener with the
/// zones it serves and each zone's plugin chain (plugins with a query handler, in execution
/// order), then the HTTP endpoints, lameduck and reload settings.
pub fn describe(source: &Source, plugins: &[PluginDef], dns_port: u16) -> Result<String, String> {
    use std::fmt::Write as _;
    let (corefile, hash, dir) = parse(source)?;
    let instance = config::build(&corefile, plugins, dns_port, &dir).map_err(|e| e.to_string())?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: OK, {} server block(s)",
        source.read().map(|r| r.0).unwrap_or_default(),
        corefile.blocks.len()
    );
    for w in &corefile.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    let mut chains: BTreeMap<(String, String), Vec<&'static str>> = BTreeMap::new();
    for (server, zone, name) in &instance.enabled {
        chains.entry((server.clone(), zone.clone())).or_default().push(name);
    }
    for ((server, zone), names) in &chains {
        let listener = server.trim_start_matches("dns://");
        let _ = writeln!(out, "{zone} on {listener}\n    {}", names.join(" -> "));
    }
    for (addr, path, _) in &instance.contrib.routes {
        let _ = writeln!(out, "http {addr}{path}");
    }
    for (addr, _) in &instance.contrib.ready_addresses {
        let _ = writeln!(out, "http {addr}/ready");
    }
    if let Some(d) = instance.contrib.lameduck {
        let _ = writeln!(out, "lameduck {}", format_duration(d));
    }
    if let Some(r) = instance.contrib.reload {
        let _ = writeln!(out, "reload every {} (jitter {})", format_duration(r.interval), format_duration(r.jitter));
    }
    let _ = writeln!(out, "SHA512 {hash}");
    Ok(out)
}

/// What the reload poller compares: the parsed Corefile's SHA-512, or for a file that does not
/// parse, a hash of its text — so a broken file fails (and is counted) once, not on every tick.
fn fingerprint(source: &Source, parsed: &Result<(Corefile, String, PathBuf), String>) -> String {
    match parsed {
        Ok((_, hash, _)) => hash.clone(),
        Err(_) => source
            .read()
            .map(|(_, text, _)| format!("unparsed:{}", hex(&Sha512::digest(text.as_bytes()))))
            .unwrap_or_default(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

enum Event {
    Reload(&'static str),
    Stop(StopKind),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum StopKind {
    Term,
    Int,
    Quit,
}

struct Running {
    listeners: BTreeMap<ListenerKey, Listener>,
    admin: HashMap<SocketAddr, AdminListener>,
    tasks: Vec<JoinHandle<()>>,
    lameduck: Option<Duration>,
    reload: Option<ReloadSettings>,
    hash: String,
}

/// How long draining listeners may take to answer what they already took in (forward's own
/// budget for a query is 5 s too).
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// Drains `listeners` (no new queries; queued datagrams and the forwarded queries their UDP
/// workers wait on, which run on those workers' own runtimes, are still answered) and waits
/// until they are done — and nothing is in flight anywhere, when `inflight` is given — for at
/// most [`DRAIN_LIMIT`].
async fn drain(listeners: &[&Listener], inflight: Option<&InFlight>) {
    for l in listeners {
        l.drain();
    }
    let deadline = tokio::time::Instant::now() + DRAIN_LIMIT;
    while (inflight.is_some_and(|i| i.count() > 0) || !listeners.iter().all(|l| l.drained()))
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Shared state the admin routes read.
#[derive(Clone, Default)]
struct Shared {
    shutting_down: Arc<AtomicBool>,
    current_hash: Arc<Mutex<String>>,
}

/// Runs kdns until a signal stops it. Returns the process exit code.
pub fn run(opts: Options) -> i32 {
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(opts.workers.max(1)).enable_all().build()
    {
        Ok(rt) => rt,
        Err(e) => {
            crate::log::stderr_line(&format!("cannot start runtime: {e}"));
            return 1;
        }
    };
    let code = rt.block_on(run_async(opts));
    crate::log::flush();
    rt.shutdown_timeout(Duration::from_secs(1));
    code
}

async fn run_async(opts: Options) -> i32 {
    let shared = Shared::default();
    let inflight = InFlight::default();
    let (tx, mut rx) = mpsc::channel::<Event>(16);
    let (corefile, hash, dir) = match parse(&opts.source) {
        Ok(v) => v,
        Err(e) => {
            crate::log::stderr_line(&e.to_string());
            return 1;
        }
    };
    for w in &corefile.warnings {
        crate::warning!("{w}");
    }
    let mut running = Running {
        listeners: BTreeMap::new(),
        admin: HashMap::new(),
        tasks: Vec::new(),
        lameduck: None,
        reload: None,
        hash: String::new(),
    };
    if let Some(e) = &opts.embedder {
        e.starting().await;
    }
    match apply(&mut running, &opts, &corefile, &hash, &dir, &shared, &inflight, &tx).await {
        Ok(banner) => {
            if !opts.quiet {
                for line in banner {
                    crate::log::line(line);
                }
            }
            if running.reload.is_some() {
                crate::info!(plugin = "reload", "Running configuration SHA512 = {hash}");
            }
            if !opts.quiet {
                for l in &opts.version_lines {
                    crate::log::line(l.clone());
                }
            }
        }
        Err(e) => {
            crate::log::flush();
            crate::log::stderr_line(&e.to_string());
            return 1;
        }
    }
    if let Some(p) = &opts.pidfile {
        if let Err(e) = std::fs::write(p, format!("{}\n", std::process::id())) {
            crate::log::stderr_line(&format!("Could not write pidfile: {e}"));
            return 1;
        }
    }
    spawn_signals(tx.clone());
    let embedded = opts.embedder.as_ref().map(|e| tokio::spawn(e.serving(Control { tx: tx.clone() })));
    let code = loop {
        let Some(ev) = rx.recv().await else { break 0 };
        match ev {
            Event::Reload(why) => {
                if why == "SIGUSR1" {
                    crate::info!("SIGUSR1: Reloading");
                }
                reload(&mut running, &opts, &shared, &inflight, &tx, why).await;
            }
            Event::Stop(kind) => break stop(&mut running, &opts, &shared, &inflight, kind, &mut rx).await,
        }
    };
    if let Some(task) = embedded {
        task.abort();
    }
    if let Some(p) = &opts.pidfile {
        let _ = std::fs::remove_file(p);
    }
    code
}

async fn reload(
    running: &mut Running,
    opts: &Options,
    shared: &Shared,
    inflight: &InFlight,
    tx: &mpsc::Sender<Event>,
    why: &str,
) {
    let parsed = parse(&opts.source);
    // A bad file is not retried by the poller: remember what was seen first (as CoreDNS does).
    *shared.current_hash.lock().unwrap_or_else(|e| e.into_inner()) = fingerprint(&opts.source, &parsed);
    let result = match parsed {
        Err(e) => Err(e),
        Ok((_, hash, _)) if why != "SIGUSR1" && hash == running.hash => Ok(None),
        Ok((corefile, hash, dir)) => {
            if why != "SIGUSR1" {
                crate::info!("Reloading");
            }
            apply(running, opts, &corefile, &hash, &dir, shared, inflight, tx).await.map(|_| Some(hash))
        }
    };
    match result {
        Ok(None) => {}
        Ok(Some(hash)) => {
            if running.reload.is_some() {
                crate::info!(plugin = "reload", "Running configuration SHA512 = {hash}");
            }
            crate::info!("Reloading complete");
        }
        Err(e) => {
            metrics::reload_failed_total().with(&[]).inc();
            crate::error!(plugin = "reload", "Corefile changed but reload failed: {e}");
        }
    }
}

/// Tasks of an instance being applied: aborted when dropped before [`NewTasks::keep`].
struct NewTasks(Vec<tokio::task::JoinHandle<()>>);

impl NewTasks {
    fn keep(mut self) -> Vec<tokio::task::JoinHandle<()>> {
        std::mem::take(&mut self.0)
    }
}

impl Drop for NewTasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Builds the instance, binds what is new, then swaps everything in. On error nothing changes.
#[allow(clippy::too_many_arguments)]
async fn apply(
    running: &mut Running,
    opts: &Options,
    corefile: &Corefile,
    hash: &str,
    dir: &Path,
    shared: &Shared,
    inflight: &InFlight,
    tx: &mpsc::Sender<Event>,
) -> Result<Vec<String>, String> {
    let Instance { listeners, mut contrib, enabled, banner } =
        config::build(corefile, &opts.plugins, opts.dns_port, dir).map_err(|e| e.to_string())?;

    // 0. Start the new instance's tasks (watchers must run to sync), then wait for its startup
    // conditions. Until the commit below they are the only trace of it: aborted on failure.
    let new_tasks = NewTasks(contrib.tasks.drain(..).map(tokio::spawn).collect());
    for wait in contrib.startup.drain(..) {
        wait.await;
    }

    // 1. Bind DNS listeners that do not exist yet.
    let mut fresh = BTreeMap::new();
    for (key, table) in &listeners {
        if !running.listeners.contains_key(key) {
            let l = listener::start(*key, table.clone(), opts.workers, inflight.clone())
                .map_err(|e| format!("listen {}: {e}", key.label().trim_start_matches("dns://")))?;
            fresh.insert(*key, l);
        }
    }

    // 2. Admin routes, grouped by resolved address.
    let mut wanted: HashMap<SocketAddr, HashMap<String, Route>> = HashMap::new();
    for (addr, path, route) in contrib.routes.drain(..) {
        let a = admin::resolve(&addr).map_err(|e| format!("{addr}: {e}"))?;
        wanted.entry(a).or_default().insert(path, route);
    }
    let readiness = std::mem::take(&mut contrib.readiness);
    let seen_ready: Arc<Mutex<HashSet<&'static str>>> = Arc::default();
    for (addr, continuously) in &contrib.ready_addresses {
        let a = admin::resolve(addr).map_err(|e| format!("{addr}: {e}"))?;
        let seen = if *continuously { None } else { Some(seen_ready.clone()) };
        let route = ready_route(readiness.clone(), seen, shared.shutting_down.clone());
        wanted.entry(a).or_default().insert("/ready".into(), route);
    }
    let mut fresh_admin = HashMap::new();
    for addr in wanted.keys() {
        if !running.admin.contains_key(addr) {
            let l = admin::start(*addr, Routes::default()).map_err(|e| format!("listen tcp {addr}: {e}"))?;
            fresh_admin.insert(*addr, l);
        }
    }

    // 3. Commit: nothing below can fail.
    running.admin.extend(fresh_admin);
    running.admin.retain(|addr, _| wanted.contains_key(addr));
    for (addr, routes) in wanted {
        if let Some(l) = running.admin.get(&addr) {
            *l.routes.write().unwrap_or_else(|e| e.into_inner()) = routes;
        }
    }
    running.listeners.extend(fresh);
    // Listeners the new Corefile dropped finish what they took in, then close.
    for (_, l) in running.listeners.extract_if(.., |k, _| !listeners.contains_key(k)) {
        tokio::spawn(async move { drain(&[&l], None).await });
    }
    for (key, table) in listeners {
        if let Some(l) = running.listeners.get(&key) {
            l.table.store(table);
        }
    }
    for t in running.tasks.drain(..) {
        t.abort();
    }
    running.tasks = new_tasks.keep();
    running.lameduck = contrib.lameduck;
    running.reload = contrib.reload;
    running.hash = hash.to_string();
    *shared.current_hash.lock().unwrap_or_else(|e| e.into_inner()) = hash.to_string();
    if let Some(settings) = running.reload {
        running.tasks.push(tokio::spawn(poll_corefile(settings, opts.source.clone(), shared.clone(), tx.clone())));
        metrics::reload_version_info().clear();
        metrics::reload_version_info().with(&["sha512", hash]).set(1.0);
    }
    let fam = metrics::plugin_enabled();
    fam.clear();
    for (server, zone, name) in enabled {
        fam.with(&[&server, &zone, "", name]).set(1.0);
    }
    Ok(banner)
}

/// `/ready`: 200 `OK` when every readiness check passes, else 503 with the sorted,
/// comma-separated names of those that do not; 503 `Shutting down` in lameduck. With `seen`
/// (`monitor until-ready`) a check that passed once is not asked again; without it
/// (`monitor continuously`) every request asks all of them.
pub fn ready_route(
    readiness: Vec<Arc<dyn Readiness>>,
    seen: Option<Arc<Mutex<HashSet<&'static str>>>>,
    shutting: Arc<AtomicBool>,
) -> Route {
    Arc::new(move || {
        if shutting.load(Ordering::Relaxed) {
            return (503, "Shutting down\n".into());
        }
        let mut seen = seen.as_ref().map(|s| s.lock().unwrap_or_else(|e| e.into_inner()));
        let mut not_ready: Vec<&str> = Vec::new();
        for r in readiness.iter() {
            if seen.as_ref().is_some_and(|s| s.contains(r.name())) {
                continue;
            }
            if r.ready() {
                if let Some(s) = seen.as_mut() {
                    s.insert(r.name());
                }
            } else {
                not_ready.push(r.name());
            }
        }
        if not_ready.is_empty() {
            return (200, "OK".into());
        }
        not_ready.sort_unstable();
        not_ready.dedup();
        let list = not_ready.join(",");
        crate::info!(plugin = "ready", "Plugins not ready: {:?}", list);
        (503, list)
    })
}

/// The reload plugin's poller: every interval ± jitter/2, re-parse and compare hashes.
async fn poll_corefile(settings: ReloadSettings, source: Source, shared: Shared, tx: mpsc::Sender<Event>) {
    let jitter = settings.jitter.as_secs_f64();
    let offset = if jitter > 0.0 { fastrand::f64() * jitter - jitter / 2.0 } else { 0.0 };
    let period = Duration::from_secs_f64((settings.interval.as_secs_f64() + offset).max(0.1));
    loop {
        tokio::time::sleep(period).await;
        let seen = fingerprint(&source, &parse(&source));
        let current = shared.current_hash.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if seen != current {
            let _ = tx.send(Event::Reload("poll")).await;
        }
    }
}

fn spawn_signals(tx: mpsc::Sender<Event>) {
    use tokio::signal::unix::{signal, SignalKind};
    let pairs: [(SignalKind, Option<Event>); 5] = [
        (SignalKind::terminate(), Some(Event::Stop(StopKind::Term))),
        (SignalKind::interrupt(), Some(Event::Stop(StopKind::Int))),
        (SignalKind::quit(), Some(Event::Stop(StopKind::Quit))),
        (SignalKind::user_defined1(), Some(Event::Reload("SIGUSR1"))),
        (SignalKind::hangup(), None),
    ];
    for (kind, event) in pairs {
        let Ok(mut s) = signal(kind) else { continue };
        let tx = tx.clone();
        tokio::spawn(async move {
            while s.recv().await.is_some() {
                let ev = match &event {
                    Some(Event::Stop(k)) => Event::Stop(*k),
                    Some(Event::Reload(w)) => Event::Reload(w),
                    None => continue, // SIGHUP is ignored, as in CoreDNS.
                };
                if tx.send(ev).await.is_err() {
                    break;
                }
            }
        });
    }
}

async fn stop(
    running: &mut Running,
    opts: &Options,
    shared: &Shared,
    inflight: &InFlight,
    kind: StopKind,
    rx: &mut mpsc::Receiver<Event>,
) -> i32 {
    shared.shutting_down.store(true, Ordering::Relaxed);
    match kind {
        StopKind::Quit => {
            crate::info!("SIGQUIT: Shutting down");
            if let Some(e) = &opts.embedder {
                e.stopping().await;
            }
            return 0;
        }
        StopKind::Int => {
            crate::info!("SIGINT: Shutting down");
            if let Some(e) = &opts.embedder {
                e.stopping().await;
            }
        }
        StopKind::Term => {
            crate::info!("SIGTERM: Shutting down servers then terminating");
            if let Some(d) = running.lameduck {
                crate::info!(plugin = "health", "Going into lameduck mode for {}", format_duration(d));
                // DNS keeps answering; a second SIGINT/SIGTERM cuts the wait short.
                tokio::select! {
                    _ = tokio::time::sleep(d) => {}
                    Some(Event::Stop(_)) = rx.recv() => {}
                }
            }
            if let Some(e) = &opts.embedder {
                e.stopping().await;
            }
        }
    }
    // No new queries, but everything already received (queued or in flight) is answered.
    drain(&running.listeners.values().collect::<Vec<_>>(), Some(inflight)).await;
    for t in running.tasks.drain(..) {
        t.abort();
    }
    running.listeners.clear();
    running.admin.clear();
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    struct Check(&'static str, Arc<AtomicBool>);
    impl Readiness for Check {
        fn name(&self) -> &'static str {
            self.0
        }
        fn ready(&self) -> bool {
            self.1.load(Ordering::Relaxed)
        }
    }

    #[test]
    fn ready_lists_plugins_not_ready_and_remembers_ready_ones() {
        let k8s = Arc::new(AtomicBool::new(false));
        let erratic = Arc::new(AtomicBool::new(false));
        let checks: Vec<Arc<dyn Readiness>> =
            vec![Arc::new(Check("kubernetes", k8s.clone())), Arc::new(Check("erratic", erratic.clone()))];
        let shutting = Arc::new(AtomicBool::new(false));
        let route = ready_route(checks.clone(), Some(Arc::default()), shutting.clone());
        assert_eq!(route(), (503, "erratic,kubernetes".to_string()));
        erratic.store(true, Ordering::Relaxed);
        assert_eq!(route(), (503, "kubernetes".to_string()));
        k8s.store(true, Ordering::Relaxed);
        assert_eq!(route(), (200, "OK".to_string()));
        // until-ready: a plugin that was ready once is not asked again
        k8s.store(false, Ordering::Relaxed);
        assert_eq!(route().0, 200);
        // continuously: a plugin that stops being ready shows up again
        let continuous = ready_route(checks, None, Arc::new(AtomicBool::new(false)));
        assert_eq!(continuous(), (503, "kubernetes".to_string()));
        k8s.store(true, Ordering::Relaxed);
        assert_eq!(continuous().0, 200);
        shutting.store(true, Ordering::Relaxed);
        assert_eq!(route().0, 503);
    }
}
