//! The node-cache agent: the Corefile from the template and the kube-dns ConfigMap, the
//! interface and the rules of the current mode (intercepting or failed open), node-cache's
//! metrics port, and the server's [`Embedder`] hooks when it runs in one process with the
//! server (or as the supervised child, which only keeps cache snapshots).

use crate::metrics::{
    config_generation, failopen_total, intercepting, interface_present, last_sync, owner, rules_expected,
    rules_present, setup_errors, ERROR_TYPES,
};
use crate::netif;
use crate::rules::{self, Backend, Rule};
use crate::settings::{Firewall, Settings};
use crate::template::{self, DirSnapshot, KubeDnsConfig};
use crate::warm;
use kdns_server::lifecycle::{self, BoxFuture, Control, Embedder, Source};
use kdns_server::{error, info, warning, PluginDef};
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

fn count_error(kind: &str) {
    setup_errors().with(&[kind]).inc();
}

/// Which part of node-cache mode this process plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// node-cache's layout (`-supervise=false`): one process does everything.
    InProcess,
    /// The supervisor: interface, rules, templating, probing and the child; no DNS.
    Supervisor,
    /// The supervised DNS server: DNS and its cache, nothing on the node.
    Child,
}

/// The node-cache agent: created before the server starts (everything it needs is checked
/// there), then driven by the server's lifecycle or by the supervisor.
pub struct Agent {
    settings: Settings,
    role: Role,
    plugins: Vec<PluginDef>,
    rules: Vec<Rule>,
    /// The fail-open set (supervisor only).
    fallback: Vec<Rule>,
    backend: Option<Arc<dyn Backend>>,
    state: tokio::sync::Mutex<State>,
    failed_open: std::sync::atomic::AtomicBool,
    manage: std::sync::atomic::AtomicBool,
    /// `/ready` on the metrics port: the DNS server answered the last probe and no stop has
    /// begun (supervisor only; what a redirecting dataplane's readiness follows).
    ready: Arc<std::sync::atomic::AtomicBool>,
}

#[derive(Default)]
struct State {
    torn_down: bool,
    kubedns: KubeDnsConfig,
    template_version: Option<String>,
    kubedns_version: Option<String>,
    generation: u64,
    metrics_listener: Option<kdns_server::admin::AdminListener>,
}

impl Agent {
    /// Checks the environment (rule backend available, upstream variable when the template
    /// needs it) and writes the first Corefile; nothing on the node changes here.
    /// `probe_ports`: the supervisor's probe sockets (v4, v6), exempted from the fallback.
    pub fn with_role(
        mut settings: Settings,
        plugins: Vec<PluginDef>,
        role: Role,
        probe_ports: (u16, u16),
    ) -> Result<Agent, String> {
        if role == Role::Child {
            settings.setup_interface = false;
            settings.setup_iptables = false;
        } else {
            for f in ERROR_TYPES {
                setup_errors().with(&[f]);
            }
        }
        let rules = rules::rule_set(&settings.local_ips, settings.dns_port, settings.health_port);
        let upstream = std::env::var(settings.upstream_env()).ok().and_then(|v| v.trim().parse().ok());
        let fallback = if role == Role::Supervisor {
            rules::fallback_set(&settings.local_ips, settings.dns_port, upstream, probe_ports)
        } else {
            Vec::new()
        };
        let backend: Option<Arc<dyn Backend>> =
            if settings.setup_iptables { Some(pick_backend(settings.firewall)?) } else { None };
        if role != Role::Child {
            rules_expected().with(&[]).set(if backend.is_some() { rules.len() as f64 } else { 0.0 });
        }
        let agent = Agent {
            settings,
            role,
            plugins,
            rules,
            fallback,
            backend,
            state: tokio::sync::Mutex::new(State::default()),
            failed_open: std::sync::atomic::AtomicBool::new(role == Role::Supervisor),
            manage: std::sync::atomic::AtomicBool::new(true),
            ready: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        };
        if role != Role::Child {
            let mut state = agent.state.try_lock().map_err(|_| "agent state busy".to_string())?;
            agent.refresh_config(&mut state, true);
        }
        if !agent.settings.conf.exists() {
            return Err(format!(
                "no Corefile to load: {} does not exist and none could be rendered from {}",
                agent.settings.conf.display(),
                agent.settings.base_corefile.display()
            ));
        }
        Ok(agent)
    }

    /// The Corefile source the server loads.
    pub fn source(&self) -> Source {
        Source::File(self.settings.conf.clone())
    }

    fn cluster_dns(&self) -> Result<IpAddr, String> {
        let var = self.settings.upstream_env();
        std::env::var(&var).ok().and_then(|v| v.trim().parse().ok()).ok_or(var)
    }

    /// Re-reads the template and kube-dns directories; renders, checks and writes the Corefile
    /// when either changed (or when `force`). Returns true when a new Corefile was written.
    fn refresh_config(&self, state: &mut State, force: bool) -> bool {
        let template_dir = self.settings.base_corefile.parent().unwrap_or(Path::new("."));
        let template_snap = template::read_dir(template_dir);
        let kubedns_snap: Option<Result<DirSnapshot, String>> =
            self.settings.kubedns_cm.as_deref().map(template::read_dir);
        let template_version = template_snap.as_ref().ok().map(|s| s.version.clone());
        let kubedns_version = kubedns_snap.as_ref().and_then(|r| r.as_ref().ok()).map(|s| s.version.clone());
        if !force && template_version == state.template_version && kubedns_version == state.kubedns_version {
            return false;
        }
        state.template_version = template_version;
        state.kubedns_version = kubedns_version;
        match kubedns_snap {
            Some(Ok(snap)) => match KubeDnsConfig::from_files(&snap.files) {
                Ok(cfg) => state.kubedns = cfg,
                Err(e) => {
                    error!("Invalid config: {e}");
                    count_error("configmap");
                    return false;
                }
            },
            Some(Err(e)) => {
                error!("Failed to sync kube-dns config directory: {e}");
                count_error("configmap");
            }
            None => {}
        }
        let template_text = match std::fs::read_to_string(&self.settings.base_corefile) {
            Ok(t) => t,
            Err(e) => {
                error!("Failed to read node-cache coreFile {} - {e}", self.settings.base_corefile.display());
                count_error("configmap");
                return false;
            }
        };
        let local_ips = self.settings.local_ip_list();
        let vars = template::Vars {
            local_ips: &local_ips,
            dns_port: self.settings.dns_port,
            cluster_dns: self.cluster_dns(),
            prometheus_endpoint: &self.settings.prometheus_listen,
        };
        let rendered = match template::render(&template_text, &vars, &state.kubedns) {
            Ok(t) => match self.settings.pod_source.as_ref().filter(|p| p.search_expansion) {
                Some(p) => template::with_search_expansion(&t, &p.cluster_domain),
                None => t,
            },
            Err(e) => {
                error!("Not updating the Corefile: {e}");
                count_error("configmap");
                return false;
            }
        };
        if std::fs::read_to_string(&self.settings.conf).is_ok_and(|cur| cur == rendered) {
            return false;
        }
        let check = Source::Text { name: self.settings.conf.display().to_string(), text: rendered.clone() };
        if let Err(e) = lifecycle::check(&check, &self.plugins, self.settings.dns_port) {
            error!("Rendered Corefile is invalid, keeping the current one: {e}");
            count_error("configmap");
            return false;
        }
        if let Err(e) = write_atomically(&self.settings.conf, &rendered) {
            error!("Failed to write config file {} - err {e}", self.settings.conf.display());
            count_error("configmap");
            return false;
        }
        state.generation += 1;
        config_generation().with(&[]).set(state.generation as f64);
        let upstreams = if state.kubedns.upstream_nameservers.is_empty() {
            "/etc/resolv.conf".to_string()
        } else {
            state.kubedns.upstream_nameservers.join(" ")
        };
        info!(
            "Updated Corefile with {} custom stubdomains and upstream servers {upstreams}",
            state.kubedns.stub_domains.len()
        );
        info!("Using config file:\n{rendered}");
        true
    }

    /// One reconcile pass: rules (when `with_rules`) then the interface, as node-cache orders it.
    async fn setup_networking(&self, with_rules: bool) {
        let state = self.state.lock().await;
        if state.torn_down {
            return;
        }
        let mut complete = true;
        if with_rules {
            if let Some(backend) = self.backend.as_ref().filter(|_| self.manages()) {
                let (wanted, unwanted) = if self.failed_open.load(Ordering::Acquire) {
                    (self.fallback.clone(), self.rules.clone())
                } else {
                    (self.rules.clone(), self.fallback.clone())
                };
                let backend = backend.clone();
                let result = tokio::task::spawn_blocking(move || backend.ensure(&wanted, &unwanted)).await;
                match result {
                    Ok(Ok(report)) => {
                        for r in &report.added {
                            info!("Added back nodelocaldns rule - {r}");
                        }
                        if report.removed > 0 {
                            info!("Removed {} nodelocaldns rules of the other mode", report.removed);
                        }
                        if report.duplicates_removed > 0 {
                            warning!("Removed {} duplicate nodelocaldns rules", report.duplicates_removed);
                        }
                        rules_present().with(&[]).set(report.present as f64);
                    }
                    Ok(Err(e)) => {
                        complete = false;
                        if e.lock {
                            info!(
                                "Error checking/adding iptables rules, due to xtables lock in use, retrying in {:?}",
                                self.settings.sync_interval
                            );
                            count_error("iptables_lock");
                        } else {
                            error!("Error adding iptables rules - {e}");
                            count_error("iptables");
                        }
                        self.refresh_rules_gauge().await;
                    }
                    Err(e) => {
                        complete = false;
                        error!("rule sync task failed: {e}");
                        count_error("iptables");
                    }
                }
            }
        }
        if self.settings.setup_interface && self.manages() {
            complete &= self.ensure_interface().await;
        }
        drop(state);
        if complete {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
            last_sync().with(&[]).set(now);
        }
    }

    async fn refresh_rules_gauge(&self) {
        if let Some(backend) = &self.backend {
            let (backend, rules) = (backend.clone(), self.rules.clone());
            if let Ok(Ok(n)) = tokio::task::spawn_blocking(move || backend.count_present(&rules)).await {
                rules_present().with(&[]).set(n as f64);
            }
        }
    }

    async fn ensure_interface(&self) -> bool {
        let name = &self.settings.interface_name;
        let netif = match netif::Netif::open() {
            Ok(n) => n,
            Err(e) => {
                error!("Error checking dummy device {name} - netlink: {e}");
                count_error("interface_check");
                return false;
            }
        };
        let ok = match netif.ensure(name, &self.settings.local_ips).await {
            Ok(done) => {
                if let Some(kind) = done.fallback_kind {
                    warning!("This kernel has no dummy link type: created {name} as a {kind} without ports instead");
                }
                if done.created {
                    info!("Added interface - {name}");
                }
                for ip in &done.addresses_added {
                    if !done.created {
                        info!("Added back address {ip} to {name}");
                    }
                }
                true
            }
            Err(netif::NetifError::Add(e)) => {
                error!("Failed to add non-existent interface {name}: {e}");
                count_error("interface_add");
                false
            }
            Err(netif::NetifError::Check(e)) => {
                error!("Error checking dummy device {name} - {e}");
                count_error("interface_check");
                false
            }
        };
        let present = matches!(netif.check(name, &self.settings.local_ips).await, Ok((true, n)) if n == self.settings.local_ips.len());
        interface_present().with(&[]).set(if present { 1.0 } else { 0.0 });
        ok && present
    }

    async fn teardown(&self) {
        let mut state = self.state.lock().await;
        if state.torn_down {
            return;
        }
        state.torn_down = true;
        if self.settings.skip_teardown {
            info!("Skipping teardown (-skipteardown): rules and interface stay");
            return;
        }
        info!("Tearing down");
        if let Some(backend) = &self.backend {
            let backend = backend.clone();
            let mut rules = self.rules.clone();
            rules.extend(self.fallback.iter().cloned());
            match tokio::task::spawn_blocking(move || backend.remove(&rules)).await {
                Ok(Ok(n)) => {
                    info!("Removed {n} nodelocaldns rules");
                    rules_present().with(&[]).set(0.0);
                }
                Ok(Err(e)) => {
                    error!("Error removing nodelocaldns rules - {e}");
                    count_error(if e.lock { "iptables_lock" } else { "iptables" });
                }
                Err(e) => error!("rule teardown task failed: {e}"),
            }
        }
        if self.settings.setup_interface {
            match netif::Netif::open() {
                Ok(netif) => match netif.remove(&self.settings.interface_name).await {
                    Ok(_) => interface_present().with(&[]).set(0.0),
                    Err(e) => error!("Error removing interface {} - {e}", self.settings.interface_name),
                },
                Err(e) => error!("Error removing interface {} - netlink: {e}", self.settings.interface_name),
            }
        }
    }

    fn manages(&self) -> bool {
        self.manage.load(Ordering::Acquire)
    }

    /// Whether this instance manages the interface and rules (another, newer instance on the
    /// node takes them over during an upgrade).
    pub fn set_manage(&self, on: bool) {
        if self.manage.swap(on, Ordering::AcqRel) != on {
            owner().with(&[]).set(if on { 1.0 } else { 0.0 });
        }
    }

    pub fn is_managing(&self) -> bool {
        self.manages()
    }

    /// Stops syncing without touching interface or rules (another instance keeps them).
    pub async fn shutdown_without_teardown(&self) {
        self.state.lock().await.torn_down = true;
    }

    /// What `/ready` says from now on (see [`Agent`]'s `ready`).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    pub fn is_failed_open(&self) -> bool {
        self.failed_open.load(Ordering::Acquire)
    }

    /// Hands DNS back to the cluster DNS: NOTRACK rules out (kube-proxy's NAT applies to the
    /// ClusterIP again), link-local IPs DNATed to the cluster DNS, in one transaction.
    pub async fn fail_open(&self, reason: &str) {
        failopen_total().with(&[reason]).inc();
        intercepting().with(&[]).set(0.0);
        if !self.failed_open.swap(true, Ordering::AcqRel) {
            warning!(
                "Failing open ({reason}): DNS to {} goes to the cluster DNS until the local server answers again",
                self.settings.local_ip_list()
            );
        }
        self.setup_networking(true).await;
    }

    /// Takes DNS on the local IPs back (the server answers probes).
    pub async fn intercept(&self) {
        let was_open = self.failed_open.swap(false, Ordering::AcqRel);
        if was_open {
            info!("Local DNS server answers: serving DNS to {} on this node", self.settings.local_ip_list());
        }
        self.setup_networking(true).await;
        // Only now: until the NOTRACK rules are in, kube-proxy's NAT still sends DNS to the cluster.
        intercepting().with(&[]).set(1.0);
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The periodic sync (interface and rules of the current mode).
    pub async fn sync(&self) {
        self.setup_networking(true).await;
    }

    /// Polls the template and kube-dns directories; true when a new Corefile was written.
    pub async fn poll_config(&self) -> bool {
        let mut state = self.state.lock().await;
        !state.torn_down && self.refresh_config(&mut state, false)
    }

    /// Removes rules and interface (unless `-skipteardown`); later syncs do nothing.
    pub async fn shutdown(&self) {
        self.teardown().await;
    }

    /// Serves node-cache's own metrics port.
    pub async fn serve_metrics(&self) {
        self.start_metrics_listener().await;
    }

    async fn start_metrics_listener(&self) {
        let addr = match kdns_server::admin::resolve(&self.settings.metrics_listen) {
            Ok(a) => a,
            Err(e) => {
                error!("Failed to start metrics handler: {e}");
                return;
            }
        };
        let routes = kdns_server::admin::Routes::default();
        let render: kdns_server::plugin::Route = Arc::new(|| (200, kdns_server::metrics::registry().render()));
        let ready = self.ready.clone();
        let readiness: kdns_server::plugin::Route = Arc::new(move || match ready.load(Ordering::Acquire) {
            true => (200, "OK".into()),
            false => (503, "not ready".into()),
        });
        {
            let mut table = routes.write().unwrap_or_else(|e| e.into_inner());
            table.insert("/metrics".into(), render);
            if self.role == Role::Supervisor {
                table.insert("/ready".into(), readiness);
            }
        }
        match kdns_server::admin::start(addr, routes) {
            Ok(l) => self.state.lock().await.metrics_listener = Some(l),
            // As node-cache: the DNS cache matters more than its own metrics port.
            Err(e) => error!("Failed to start metrics handler: listen tcp {addr}: {e}"),
        }
    }
}

/// The agent as the server's [`Embedder`].
pub struct NodeCache(pub Arc<Agent>);

impl Embedder for NodeCache {
    fn starting(&self) -> BoxFuture {
        let this = self.0.clone();
        Box::pin(async move {
            if this.role == Role::InProcess {
                this.start_metrics_listener().await;
                // Interface only: rules wait until the DNS listeners are up, so a cache that
                // cannot start never attracts traffic.
                this.setup_networking(false).await;
            }
        })
    }

    fn serving(&self, control: Control) -> BoxFuture {
        let this = self.0.clone();
        Box::pin(async move {
            let interface = this.settings.interface_name.clone();
            let file = this.settings.cache_snapshot.clone();
            // Before the first answers: take over a running instance's cache, else the file's.
            let _ = tokio::task::spawn_blocking({
                let (interface, file) = (interface.clone(), file.clone());
                move || warm::warm_up(&interface, file.as_deref())
            })
            .await;
            if let Err(e) = warm::serve(&interface) {
                warning!("cannot offer the cache to successors: {e}");
            }
            if this.role == Role::InProcess {
                this.setup_networking(true).await;
            }
            if let Some(source) = &this.settings.pod_source {
                crate::pods::start(source);
            }
            let mut sync = tokio::time::interval_at(
                tokio::time::Instant::now() + this.settings.sync_interval,
                this.settings.sync_interval,
            );
            let mut poll = tokio::time::interval_at(
                tokio::time::Instant::now() + this.settings.config_sync_interval,
                this.settings.config_sync_interval,
            );
            let mut snapshot =
                tokio::time::interval_at(tokio::time::Instant::now() + warm::SNAPSHOT_EVERY, warm::SNAPSHOT_EVERY);
            for t in [&mut sync, &mut poll, &mut snapshot] {
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            }
            let in_process = this.role == Role::InProcess;
            loop {
                tokio::select! {
                    _ = sync.tick(), if in_process => this.setup_networking(true).await,
                    _ = poll.tick(), if in_process => {
                        if this.poll_config().await && this.settings.reload_with_signal {
                            control.reload();
                        }
                    }
                    _ = snapshot.tick() => {
                        if let Some(path) = file.clone() {
                            let _ = tokio::task::spawn_blocking(move || warm::save(&path)).await;
                        }
                    }
                }
            }
        })
    }

    fn stopping(&self) -> BoxFuture {
        let this = self.0.clone();
        Box::pin(async move {
            if let Some(path) = this.settings.cache_snapshot.clone() {
                match tokio::task::spawn_blocking(move || warm::save(&path)).await {
                    Ok(Ok(n)) => info!("Saved {n} cache entries for the next start"),
                    Ok(Err(e)) => warning!("cannot save the cache: {e}"),
                    Err(_) => {}
                }
            }
            if this.role == Role::InProcess {
                this.teardown().await;
            }
        })
    }
}

fn pick_backend(firewall: Firewall) -> Result<Arc<dyn Backend>, String> {
    let nft_available = rules::on_path("nft");
    let iptables_available =
        ["iptables-nft-restore", "iptables-legacy-restore", "iptables-restore"].iter().any(|p| rules::on_path(p));
    match firewall {
        Firewall::Nftables if nft_available => Ok(Arc::new(rules::Nftables)),
        Firewall::Nftables => Err("-firewall nftables: the nft command is not installed".into()),
        Firewall::Iptables if iptables_available => Ok(Arc::new(rules::Iptables::detect())),
        Firewall::Iptables => Err("-firewall iptables: no iptables-restore is installed".into()),
        Firewall::Auto if nft_available && rules::Nftables::kube_proxy_uses_nftables() => Ok(Arc::new(rules::Nftables)),
        Firewall::Auto if iptables_available => Ok(Arc::new(rules::Iptables::detect())),
        Firewall::Auto if nft_available => Ok(Arc::new(rules::Nftables)),
        Firewall::Auto => {
            Err("neither iptables-restore nor nft is installed; install one or pass -setupiptables=false".into())
        }
    }
}

fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.kdns-tmp",
        path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| "Corefile".into())
    ));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}
