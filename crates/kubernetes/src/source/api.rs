//! The API source: a kube-rs client (in-cluster service account, `kubeconfig`, or `endpoint`
//! with optional client TLS) and one `kube_runtime::watcher` per kind feeding the index.
//!
//! Watch-level behaviour comes from kube-runtime (paginated list, resume from the last
//! resourceVersion, bookmarks, relist on an in-stream 410, exponential backoff). One gap is
//! closed here: a 410 that arrives as the HTTP status of the watch request, which kube-runtime
//! would retry forever with the same dead resourceVersion, restarts the watcher with a relist.

use super::{Change, Observer, Shared};
use crate::object::{self, Kind, Object};
use futures::StreamExt;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, Config};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// How to reach the API server and what to watch (the `kubernetes` plugin's options).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApiOptions {
    pub endpoint: Option<String>,
    /// Client certificate, key and CA bundle (PEM files) for `endpoint`.
    pub tls: Option<[PathBuf; 3]>,
    pub kubeconfig: Option<(PathBuf, Option<String>)>,
    pub labels: Option<String>,
    pub namespace_labels: Option<String>,
    pub slices: bool,
    pub pods: bool,
}

/// Field selector of the Pod watch: finished pods no longer own their IP.
pub const LIVE_PODS: &str = "status.phase!=Succeeded,status.phase!=Failed,status.phase!=Unknown";

/// Consecutive HTTP-level 410 answers to a watch request before the watcher starts over.
const GONE_RESTART: u32 = 2;

pub async fn config(opts: &ApiOptions) -> Result<Config, String> {
    if let Some((path, context)) = &opts.kubeconfig {
        let kc = Kubeconfig::read_from(path).map_err(|e| format!("kubeconfig {}: {e}", path.display()))?;
        let options = KubeConfigOptions { context: context.clone(), ..Default::default() };
        return Config::from_custom_kubeconfig(kc, &options)
            .await
            .map_err(|e| format!("kubeconfig {}: {e}", path.display()));
    }
    if let Some(url) = &opts.endpoint {
        let uri = url.parse().map_err(|e| format!("endpoint {url}: {e}"))?;
        let mut c = Config::new(uri);
        if let Some([cert, key, ca]) = &opts.tls {
            c.auth_info.client_certificate = Some(cert.to_string_lossy().into_owned());
            c.auth_info.client_key = Some(key.to_string_lossy().into_owned());
            c.root_cert_file = Some(ca.clone());
        }
        return Ok(c);
    }
    Config::incluster().map_err(|e| format!("in-cluster configuration: {e}"))
}

/// Builds the client with a layer that reports every request to the observer.
pub fn client(config: Config, observer: Arc<dyn Observer>) -> Result<Client, String> {
    let host: Arc<str> = Arc::from(config.cluster_url.authority().map_or("", |a| a.as_str()));
    let builder = kube::client::ClientBuilder::try_from(config).map_err(|e| e.to_string())?;
    Ok(builder.with_layer(&MeasureLayer { observer, host }).build())
}

#[derive(Clone)]
struct MeasureLayer {
    observer: Arc<dyn Observer>,
    host: Arc<str>,
}

impl<S> tower::Layer<S> for MeasureLayer {
    type Service = Measure<S>;
    fn layer(&self, inner: S) -> Measure<S> {
        Measure { inner, observer: self.observer.clone(), host: self.host.clone() }
    }
}

/// Times each request up to its response headers, as client-go's metrics do.
#[derive(Clone)]
pub struct Measure<S> {
    inner: S,
    observer: Arc<dyn Observer>,
    host: Arc<str>,
}

impl<S, B, R> tower::Service<http::Request<B>> for Measure<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    R: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let verb = req.method().as_str().to_string();
        let (observer, host) = (self.observer.clone(), self.host.clone());
        let start = Instant::now();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let result = fut.await;
            let code = match &result {
                Ok(resp) => resp.status().as_u16().to_string(),
                Err(_) => "<error>".to_string(),
            };
            observer.request(&verb, &host, &code, start.elapsed().as_secs_f64());
            result
        })
    }
}

fn is_http_gone(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::InitialListFailed(kube::Error::Api(s)) => s.code == 410,
        _ => false,
    }
}

/// Watches one kind for as long as the task lives.
async fn watch<K>(
    client: Client,
    kind: Kind,
    config: watcher::Config,
    shared: Arc<Shared>,
    project: fn(&K) -> Option<Object>,
    live: fn(&K) -> bool,
) where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let api: Api<K> = Api::all(client);
    loop {
        let stream = watcher(api.clone(), config.clone()).default_backoff();
        futures::pin_mut!(stream);
        let mut gone = 0;
        while let Some(item) = stream.next().await {
            match item {
                Ok(Event::Init) => {
                    shared.apply(Change::Init(kind));
                }
                Ok(Event::InitApply(o)) | Ok(Event::Apply(o)) => {
                    gone = 0;
                    let change = match project(&o) {
                        Some(p) if live(&o) => Change::Upsert(p),
                        Some(p) => Change::Delete(p),
                        None => Change::Remove(kind, key(&o)),
                    };
                    shared.apply(change);
                }
                Ok(Event::Delete(o)) => {
                    let change = match project(&o) {
                        Some(p) => Change::Delete(p),
                        None => Change::Remove(kind, key(&o)),
                    };
                    shared.apply(change);
                }
                Ok(Event::InitDone) => {
                    gone = 0;
                    shared.apply(Change::InitDone(kind));
                }
                Err(e) => {
                    shared.observer.warning(&format!("{} watch: {e}", kind.as_str()));
                    if is_http_gone(&e) {
                        gone += 1;
                        if gone >= GONE_RESTART {
                            shared.observer.warning(&format!("{}: resourceVersion expired, relisting", kind.as_str()));
                            break;
                        }
                    }
                }
            }
        }
    }
}

fn key<K: kube::Resource>(o: &K) -> (Arc<str>, Arc<str>) {
    let m = o.meta();
    (Arc::from(m.namespace.as_deref().unwrap_or("")), Arc::from(m.name.as_deref().unwrap_or("")))
}

/// Connects and runs every watcher; a client that cannot be built is retried with backoff
/// (the index stays unsynced meanwhile: SERVFAIL, not NXDOMAIN).
pub async fn run(opts: ApiOptions, shared: Arc<Shared>) {
    let mut delay = Duration::from_millis(500);
    let client = loop {
        match config(&opts).await.and_then(|c| client(c, shared.observer.clone())) {
            Ok(c) => break c,
            Err(e) => {
                shared.observer.warning(&format!("cannot reach the Kubernetes API: {e}"));
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    };
    let mut base = watcher::Config::default();
    if let Some(l) = &opts.labels {
        base = base.labels(l);
    }
    let mut ns_config = watcher::Config::default();
    if let Some(l) = &opts.namespace_labels {
        ns_config = ns_config.labels(l);
    }
    let mut tasks: Vec<Pin<Box<dyn Future<Output = ()> + Send>>> = vec![
        Box::pin(watch::<core::Service>(
            client.clone(),
            Kind::Service,
            base.clone(),
            shared.clone(),
            |s| object::service(s).map(Object::Service),
            |_| true,
        )),
        Box::pin(watch::<core::Namespace>(
            client.clone(),
            Kind::Namespace,
            ns_config,
            shared.clone(),
            |n| object::namespace(n).map(Object::Namespace),
            |_| true,
        )),
    ];
    if opts.slices {
        tasks.push(Box::pin(watch::<discovery::EndpointSlice>(
            client.clone(),
            Kind::Slice,
            base.clone(),
            shared.clone(),
            |s| object::slice(s).map(Object::Slice),
            |_| true,
        )));
    }
    if opts.pods {
        tasks.push(Box::pin(watch::<core::Pod>(
            client.clone(),
            Kind::Pod,
            base.clone().fields(LIVE_PODS),
            shared.clone(),
            |p| object::pod(p).map(Object::Pod),
            object::pod_is_live,
        )));
    }
    futures::future::join_all(tasks).await;
}
