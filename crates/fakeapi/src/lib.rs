//! A fake Kubernetes API server for tests and benchmarks: the list/watch semantics kdns (and
//! kube-rs) rely on, reproduced faithfully enough to fail the client where a real server would.
//!
//! - one global, strictly increasing resourceVersion shared by all kinds (like etcd);
//! - lists: `limit`/`continue` pages from one consistent snapshot, list RV in metadata, items
//!   without `kind`/`apiVersion` (as the real server writes them), label and field selectors;
//!   an expired continue token answers HTTP 410 `Expired`;
//! - watches: NDJSON stream of `{"type","object"}` lines from the requested RV, `BOOKMARK`s when
//!   allowed, `timeoutSeconds`, selector transitions as ADDED/DELETED, and an in-stream `ERROR`
//!   410 when the RV is older than the retained history (`compact`);
//! - streaming lists (`sendInitialEvents=true`, `resourceVersionMatch=NotOlderThan`): the
//!   state as ADDED events, then the bookmark annotated `k8s.io/initial-events-end`; or refused
//!   with 422 like a server before 1.27 (`set_watch_list(false)`);
//! - discovery: `/api`, `/apis`, `/api/v1`, `/apis/discovery.k8s.io[/v1]` as a real server
//!   writes them (resource lists with kinds, verbs, short names);
//! - faults: next request of a kind answers an HTTP status (5xx, 410 …), the server goes down
//!   (connections reset, streams cut) and comes back, streams stall.
//!
//! State is plain JSON objects; tests drive it through [`FakeApi`] (a handle usable from
//! synchronous code: the server runs on its own thread and runtime).

pub mod generate;
mod http;
mod select;

use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

/// The four kinds kdns watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Service,
    EndpointSlice,
    Namespace,
    Pod,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Service, Kind::EndpointSlice, Kind::Namespace, Kind::Pod];
    pub fn kind(self) -> &'static str {
        match self {
            Kind::Service => "Service",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::Namespace => "Namespace",
            Kind::Pod => "Pod",
        }
    }
    pub fn api_version(self) -> &'static str {
        match self {
            Kind::EndpointSlice => "discovery.k8s.io/v1",
            _ => "v1",
        }
    }
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Service => "services",
            Kind::EndpointSlice => "endpointslices",
            Kind::Namespace => "namespaces",
            Kind::Pod => "pods",
        }
    }
    fn from_path(path: &str) -> Option<(Kind, Option<String>)> {
        let rest = path.strip_prefix("/api/v1/").or_else(|| path.strip_prefix("/apis/discovery.k8s.io/v1/"))?;
        let (ns, plural) = match rest.strip_prefix("namespaces/") {
            Some(r) if r.contains('/') => {
                let (ns, p) = r.split_once('/')?;
                (Some(ns.to_string()), p)
            }
            _ => (None, rest),
        };
        let core = path.starts_with("/api/v1/");
        let kind = match (core, plural) {
            (true, "services") => Kind::Service,
            (true, "namespaces") if ns.is_none() => Kind::Namespace,
            (true, "pods") => Kind::Pod,
            (false, "endpointslices") => Kind::EndpointSlice,
            _ => return None,
        };
        Some((kind, ns))
    }
}

/// One change in the event log: the object before and after (None for add / delete).
#[derive(Clone, Debug)]
pub(crate) struct Change {
    pub rv: u64,
    pub kind: Kind,
    pub old: Option<Value>,
    pub new: Option<Value>,
}

/// A fault for the next matching request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this HTTP status and a `Status` body (list or watch).
    Status(u16),
    /// Answer a watch with HTTP 410 (a proxy or aggregated API doing it wrong).
    WatchGone,
    /// Accept a watch and never send anything or close.
    Stall,
}

#[derive(Default)]
pub(crate) struct State {
    pub rv: u64,
    pub objects: BTreeMap<(Kind, String, String), Value>,
    pub log: VecDeque<Change>,
    /// Changes with rv ≤ this are gone from the log (a watch from older RVs gets 410).
    pub compacted: u64,
    pub history: usize,
    /// Continue token → (list RV, remaining items).
    pub pages: HashMap<String, (u64, Vec<Value>)>,
    pub next_token: u64,
    pub faults: HashMap<Kind, VecDeque<Fault>>,
    pub down: bool,
    /// Bumped by `cut_streams`/`set_down`: streams of an older generation end.
    pub generation: u64,
    pub lists: HashMap<Kind, u64>,
    pub watches: HashMap<Kind, u64>,
    pub bookmark_interval: Option<Duration>,
    /// Streaming lists refused (an API server before 1.27, or WatchList off).
    pub no_watch_list: bool,
    /// A pause after every 100 initial events of a watch (a big cluster's slow list).
    pub initial_event_pause: Option<Duration>,
}

pub(crate) struct Inner {
    pub state: Mutex<State>,
    pub events: broadcast::Sender<Change>,
    pub generation: tokio::sync::watch::Sender<u64>,
}

impl Inner {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets all history up to now (see [`FakeApi::compact`]).
    pub(crate) fn compact(&self) {
        let mut st = self.lock();
        st.compacted = st.rv;
        st.log.clear();
        st.pages.clear();
    }

    /// Ends every open watch stream (see [`FakeApi::cut_streams`]).
    pub(crate) fn cut_streams(&self) {
        let mut st = self.lock();
        st.generation += 1;
        let g = st.generation;
        drop(st);
        self.generation.send_replace(g);
    }
}

impl State {
    /// Gives `obj` the next resourceVersion and what the server fills in (kind, apiVersion,
    /// uid, the default namespace); returns the version.
    fn stamp(&mut self, kind: Kind, obj: &mut Value) -> u64 {
        self.rv += 1;
        obj["kind"] = json!(kind.kind());
        obj["apiVersion"] = json!(kind.api_version());
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        if obj["metadata"]["uid"].is_null() {
            obj["metadata"]["uid"] = json!(format!("uid-{}", self.rv));
        }
        if kind != Kind::Namespace && obj["metadata"]["namespace"].is_null() {
            obj["metadata"]["namespace"] = json!("default");
        }
        self.rv
    }
}

/// Handle to a running fake API server.
pub struct FakeApi {
    pub(crate) inner: Arc<Inner>,
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn key_of(kind: Kind, obj: &Value) -> (Kind, String, String) {
    let meta = &obj["metadata"];
    let ns = if kind == Kind::Namespace { "" } else { meta["namespace"].as_str().unwrap_or("default") };
    (kind, ns.to_string(), meta["name"].as_str().unwrap_or("").to_string())
}

impl FakeApi {
    /// Starts on 127.0.0.1 with an ephemeral port.
    pub fn start() -> FakeApi {
        FakeApi::start_on("127.0.0.1:0".parse().expect("literal"))
    }

    pub fn start_on(addr: SocketAddr) -> FakeApi {
        let (events, _) = broadcast::channel(65536);
        let (generation, _) = tokio::sync::watch::channel(0);
        let inner =
            Arc::new(Inner { state: Mutex::new(State { history: 100_000, ..State::default() }), events, generation });
        let std_listener = std::net::TcpListener::bind(addr).expect("bind fake API server");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("local addr");
        let (tx, rx) = tokio::sync::oneshot::channel();
        let server_inner = inner.clone();
        let thread = std::thread::spawn(move || {
            let rt =
                tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
                tokio::select! {
                    _ = http::serve(listener, server_inner) => {}
                    _ = rx => {}
                }
            });
            rt.shutdown_timeout(Duration::from_millis(100));
        });
        FakeApi { inner, addr, shutdown: Some(tx), thread: Some(thread) }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Creates or replaces an object (full JSON with `metadata.name`, and `namespace` for
    /// namespaced kinds); returns its new resourceVersion.
    pub fn apply(&self, kind: Kind, mut obj: Value) -> u64 {
        let mut st = self.inner.lock();
        let rv = st.stamp(kind, &mut obj);
        let key = key_of(kind, &obj);
        let old = st.objects.insert(key, obj.clone());
        self.record(&mut st, Change { rv, kind, old, new: Some(obj) });
        rv
    }

    /// Adds many objects at once, as if they had always been there: no watch events, no
    /// history (a generated cluster for benchmarks).
    pub fn load(&self, kind: Kind, objects: impl IntoIterator<Item = Value>) {
        let mut st = self.inner.lock();
        for mut obj in objects {
            st.stamp(kind, &mut obj);
            let key = key_of(kind, &obj);
            st.objects.insert(key, obj);
        }
        st.compacted = st.rv;
    }

    /// Deletes an object; false when it did not exist.
    pub fn delete(&self, kind: Kind, ns: &str, name: &str) -> bool {
        let mut st = self.inner.lock();
        let key = (kind, if kind == Kind::Namespace { String::new() } else { ns.to_string() }, name.to_string());
        let Some(mut old) = st.objects.remove(&key) else { return false };
        st.rv += 1;
        let rv = st.rv;
        // A DELETED event carries the last state with the deletion's resourceVersion.
        old["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.record(&mut st, Change { rv, kind, old: Some(old), new: None });
        true
    }

    fn record(&self, st: &mut State, change: Change) {
        st.log.push_back(change.clone());
        while st.log.len() > st.history {
            if let Some(c) = st.log.pop_front() {
                st.compacted = c.rv;
            }
        }
        let _ = self.inner.events.send(change);
    }

    /// Forgets all history: watches from any earlier resourceVersion get 410 Expired, and
    /// continue tokens expire.
    pub fn compact(&self) {
        self.inner.compact();
    }

    /// Queues a fault for the next request of `kind`.
    pub fn fault(&self, kind: Kind, fault: Fault) {
        self.inner.lock().faults.entry(kind).or_default().push_back(fault);
    }

    /// Down: every open stream is cut and new connections are closed at once. Up: serving again.
    pub fn set_down(&self, down: bool) {
        self.inner.lock().down = down;
        self.cut_streams();
    }

    /// Ends every open watch stream (a dropped connection, as when an apiserver restarts).
    pub fn cut_streams(&self) {
        self.inner.cut_streams();
    }

    /// Whether streaming lists (`sendInitialEvents=true`) are served; refused with HTTP 422 as
    /// an API server that predates them refuses `resourceVersionMatch` on a watch.
    pub fn set_watch_list(&self, on: bool) {
        self.inner.lock().no_watch_list = !on;
    }

    /// Pauses a watch's initial events (streaming lists) this long after every 100 objects.
    pub fn set_initial_event_pause(&self, pause: Option<Duration>) {
        self.inner.lock().initial_event_pause = pause;
    }

    /// BOOKMARK events on watches that allow them, at this interval (off by default).
    pub fn set_bookmarks(&self, every: Option<Duration>) {
        self.inner.lock().bookmark_interval = every;
    }

    /// How many lists / watches of `kind` were served.
    pub fn lists(&self, kind: Kind) -> u64 {
        self.inner.lock().lists.get(&kind).copied().unwrap_or(0)
    }
    pub fn watches(&self, kind: Kind) -> u64 {
        self.inner.lock().watches.get(&kind).copied().unwrap_or(0)
    }
    pub fn resource_version(&self) -> u64 {
        self.inner.lock().rv
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.cut_streams();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Object builders in the shapes the API server returns.
pub mod objects {
    use serde_json::{json, Value};

    pub fn namespace(name: &str) -> Value {
        json!({"metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}}})
    }

    /// A ClusterIP service (`ips` empty → headless) with `(name, port, protocol)` ports.
    pub fn service(ns: &str, name: &str, ips: &[&str], ports: &[(&str, i32, &str)]) -> Value {
        let ports: Vec<Value> = ports
            .iter()
            .map(|(n, p, proto)| json!({"name": n, "port": p, "protocol": proto, "targetPort": p}))
            .collect();
        let cluster_ip = ips.first().copied().unwrap_or("None");
        let ips: Vec<&str> = if ips.is_empty() { vec!["None"] } else { ips.to_vec() };
        json!({
            "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
            "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "clusterIPs": ips, "ports": ports,
                     "selector": {"app": name}, "sessionAffinity": "None"},
            "status": {"loadBalancer": {}}
        })
    }

    pub fn external_name(ns: &str, name: &str, target: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": ns},
               "spec": {"type": "ExternalName", "externalName": target}})
    }

    /// One endpoint: addresses, hostname, ready, target pod name.
    pub struct Ep<'a> {
        pub addresses: &'a [&'a str],
        pub hostname: Option<&'a str>,
        pub ready: bool,
        pub pod: Option<&'a str>,
    }

    pub fn ep<'a>(addresses: &'a [&'a str]) -> Ep<'a> {
        Ep { addresses, hostname: None, ready: true, pod: None }
    }

    pub fn slice(ns: &str, name: &str, service: &str, family: &str, ports: &[(&str, i32, &str)], eps: &[Ep]) -> Value {
        let ports: Vec<Value> =
            ports.iter().map(|(n, p, proto)| json!({"name": n, "port": p, "protocol": proto})).collect();
        let endpoints: Vec<Value> = eps
            .iter()
            .map(|e| {
                let mut v = json!({"addresses": e.addresses, "conditions": {"ready": e.ready, "serving": e.ready, "terminating": false}, "nodeName": "node-1"});
                if let Some(h) = e.hostname {
                    v["hostname"] = json!(h);
                }
                if let Some(p) = e.pod {
                    v["targetRef"] = json!({"kind": "Pod", "name": p, "namespace": ns});
                }
                v
            })
            .collect();
        json!({
            "metadata": {"name": name, "namespace": ns,
                         "labels": {"kubernetes.io/service-name": service, "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
            "addressType": family,
            "ports": ports,
            "endpoints": endpoints
        })
    }

    pub fn pod(ns: &str, name: &str, ip: &str, phase: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
               "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]},
               "status": {"phase": phase, "podIP": ip, "podIPs": [{"ip": ip}]}})
    }
}
