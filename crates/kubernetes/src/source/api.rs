//! The API source: a kube-rs client (in-cluster service account, `kubeconfig`, or `endpoint`
//! with optional client TLS) for transport and authentication, and one list/watch loop per kind
//! (`reflector.rs`) that decodes the response bytes straight into the index.

use super::Observer;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

/// How to reach the API server and what to watch (the `kubernetes` plugin's options).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ApiOptions {
    pub endpoint: Option<String>,
    /// Client certificate, key and CA bundle (PEM files) for `endpoint`.
    pub tls: Option<[PathBuf; 3]>,
    pub kubeconfig: Option<(PathBuf, Option<String>)>,
    pub labels: Option<String>,
    pub namespace_labels: Option<String>,
    pub slices: bool,
    pub pods: bool,
    /// Endpoint pod names are kept (`endpoint_pod_names`).
    pub pod_names: bool,
    /// Client-side limits (`apiserver_qps`, `apiserver_burst`, `apiserver_max_inflight`); 0 is
    /// client-go's default (5 per second, burst 10, no in-flight limit).
    pub qps: f64,
    pub burst: u32,
    pub max_inflight: u32,
}

/// Field selector of the Pod watch: finished pods no longer own their IP.
pub const LIVE_PODS: &str = "status.phase!=Succeeded,status.phase!=Failed,status.phase!=Unknown";

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

/// Retry delays: 0.5 s doubling to 30 s, back to 0.5 s after a success.
pub struct Backoff(std::time::Duration);

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff(std::time::Duration::from_millis(500))
    }
}

impl Backoff {
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(std::time::Duration::from_secs(30));
    }
    pub fn reset(&mut self) {
        *self = Backoff::default();
    }
}

/// The client for `opts`, retried with [`Backoff`] until it can be built (`what` names the
/// caller in the warning); also returns the API server's host.
pub async fn connect(opts: &ApiOptions, observer: &Arc<dyn Observer>, what: &str) -> (Client, Arc<str>) {
    let mut backoff = Backoff::default();
    loop {
        match config(opts).await.and_then(|c| client(c, observer.clone())) {
            Ok(built) => return built,
            Err(e) => {
                observer.warning(&format!("{what}cannot reach the Kubernetes API: {e}"));
                backoff.wait().await;
            }
        }
    }
}

/// Builds the client with a layer that reports every request to the observer; also returns
/// the API server's host (`host` label of the REST client metrics).
pub fn client(config: Config, observer: Arc<dyn Observer>) -> Result<(Client, Arc<str>), String> {
    let host: Arc<str> = Arc::from(config.cluster_url.authority().map_or("", |a| a.as_str()));
    let builder = kube::client::ClientBuilder::try_from(config).map_err(|e| e.to_string())?;
    Ok((builder.with_layer(&MeasureLayer { observer, host: host.clone() }).build(), host))
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
