//! One list/watch loop per kind, reading the API server's bytes straight into the index.
//!
//! - **Initial list and relists** use the streaming list (`watch` with `sendInitialEvents=true`,
//!   `resourceVersionMatch=NotOlderThan`): objects arrive one per line as ADDED events and the
//!   bookmark annotated `k8s.io/initial-events-end` closes the list, after which the same stream
//!   carries the changes. A server that refuses it (HTTP 400/422: older than 1.27 or the feature
//!   off) switches this kind to paginated lists (`limit=500` pages, then a watch), with a warning
//!   and `kdns_kubernetes_list_fallbacks_total`.
//! - **No gap during a relist**: the index keeps answering from what it has; objects are
//!   replaced as they arrive and those the new list did not name are removed when it completes
//!   (`Index::init` / `init_done`), so a relist never empties it and costs no second copy.
//! - **Watches resume** from the last resourceVersion (bookmarks keep it fresh); only an expired
//!   resourceVersion (410, in the stream or as the HTTP status) relists, after a random delay of
//!   up to [`RELIST_JITTER`] so replicas that lost their watches together do not list together.
//! - **Client-side limits** as client-go applies them: a token bucket (QPS, burst) in front of
//!   every request, timed into `coredns_kubernetes_rest_client_rate_limiter_duration_seconds`,
//!   and at most `max_inflight` requests waiting for their response headers.

use super::api::ApiOptions;
use super::{Change, Shared};
use crate::decode::{read_page, Keep, Projected, RawEvent, RawObject};
use crate::object::Kind;
use futures::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};
use kube::api::{ListParams, WatchParams};
use kube::Client;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, SemaphorePermit};

/// The longest random delay before a relist.
pub const RELIST_JITTER: Duration = Duration::from_secs(3);
/// Items per page of a paginated list (client-go's default).
const PAGE_SIZE: u32 = 500;
/// client-go's defaults when the Corefile sets no limit.
const DEFAULT_QPS: f64 = 5.0;
const DEFAULT_BURST: u32 = 10;
/// A line buffer grown beyond this by one huge object is given back afterwards.
const KEEP_BUFFER: usize = 256 * 1024;

/// client-go's client-side limits: a token bucket and an in-flight cap.
pub struct Limiter {
    qps: f64,
    burst: f64,
    /// (tokens, when they were counted); tokens go negative for reservations in the future.
    bucket: Mutex<(f64, Instant)>,
    inflight: Option<Semaphore>,
}

impl Limiter {
    pub fn new(qps: f64, burst: u32, max_inflight: u32) -> Limiter {
        let qps = if qps > 0.0 { qps } else { DEFAULT_QPS };
        let burst = f64::from(if burst > 0 { burst } else { DEFAULT_BURST });
        Limiter {
            qps,
            burst,
            bucket: Mutex::new((burst, Instant::now())),
            inflight: (max_inflight > 0).then(|| Semaphore::new(max_inflight as usize)),
        }
    }

    /// How long the next request must wait for its token (the token is taken now).
    pub fn reserve(&self, now: Instant) -> Duration {
        let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let refill = now.saturating_duration_since(b.1).as_secs_f64() * self.qps;
        b.0 = (b.0 + refill).min(self.burst) - 1.0;
        b.1 = now;
        if b.0 >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-b.0 / self.qps)
        }
    }

    /// Waits for a token and an in-flight slot; the slot is held until the permit drops
    /// (after the response headers).
    async fn admit(&self) -> (Duration, Option<SemaphorePermit<'_>>) {
        let start = Instant::now();
        let wait = self.reserve(start);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let waited = start.elapsed();
        let permit = match &self.inflight {
            Some(s) => s.acquire().await.ok(),
            None => None,
        };
        (waited, permit)
    }
}

/// Why a list or watch ended.
#[derive(Debug)]
enum End {
    /// The stream ended normally (timeout, closed): watch again from the last resourceVersion.
    Closed,
    /// The resourceVersion expired (410): list again.
    Gone,
    /// The server does not serve streaming lists: fall back to paginated lists.
    Unsupported(String),
    /// Anything else: back off, then watch (or list) again.
    Failed(String),
}

struct Reflector {
    client: Client,
    kind: Kind,
    /// The collection's list and watch URLs.
    request: kube::core::Request,
    labels: Option<String>,
    fields: Option<&'static str>,
    shared: Arc<Shared>,
    limiter: Arc<Limiter>,
    host: Arc<str>,
    keep: Keep,
    /// The resourceVersion to watch from (None: list first).
    rv: Option<String>,
    streaming: bool,
    /// Streaming lists that ended before their initial-events-end bookmark, in a row.
    unfinished: u32,
    buf: Vec<u8>,
}

fn collection(kind: Kind) -> &'static str {
    match kind {
        Kind::Service => "/api/v1/services",
        Kind::Namespace => "/api/v1/namespaces",
        Kind::Pod => "/api/v1/pods",
        Kind::Slice => "/apis/discovery.k8s.io/v1/endpointslices",
    }
}

/// Uniformly random in [0, max).
fn jitter(max: Duration) -> Duration {
    max.mul_f64(fastrand::f64())
}

fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

impl Reflector {
    async fn open(
        &self,
        request: Result<http::Request<Vec<u8>>, kube::core::request::Error>,
    ) -> Result<impl AsyncBufRead + Unpin + use<>, kube::Error> {
        let request = request.map_err(kube::Error::BuildRequest)?;
        let (waited, permit) = self.limiter.admit().await;
        self.shared.observer.throttled("GET", &self.host, waited.as_secs_f64());
        if waited >= Duration::from_secs(1) {
            self.shared.observer.info(&format!(
                "Waited for {:.3}s due to client-side throttling, not priority and fairness, request: GET:{}",
                waited.as_secs_f64(),
                self.request.url_path
            ));
        }
        let body = self.client.request_stream(request).await;
        drop(permit);
        body.map(Box::pin)
    }

    fn apply(&mut self, raw: RawObject<'_>, deleted: bool) {
        let change = match raw.project(self.kind, self.keep) {
            None => return,
            Some(Projected::Live(o)) if !deleted => Change::Upsert(o),
            Some(Projected::Live(o) | Projected::Gone(o)) => Change::Delete(o),
            Some(Projected::Nothing(kind, key)) => Change::Remove(kind, key),
        };
        self.shared.apply(change);
    }

    fn trim_buffer(&mut self) {
        self.buf.clear();
        if self.buf.capacity() > KEEP_BUFFER {
            self.buf.shrink_to(KEEP_BUFFER / 4);
        }
    }

    /// A paginated list into the index; on success `rv` is the list's resourceVersion.
    async fn list(&mut self) -> Result<(), End> {
        let mut token: Option<String> = None;
        let mut started = false;
        loop {
            let mut page = ListParams::default().limit(PAGE_SIZE);
            page.continue_token = token.take();
            page.label_selector = self.labels.clone();
            page.field_selector = self.fields.map(str::to_owned);
            let mut body = self.open(self.request.list(&page)).await.map_err(|e| match status_code(&e) {
                Some(410) => End::Gone,
                _ => End::Failed(format!("list: {e}")),
            })?;
            self.buf.clear();
            body.read_to_end(&mut self.buf).await.map_err(|e| End::Failed(format!("list: {e}")))?;
            if !started {
                self.shared.apply(Change::Init(self.kind));
                started = true;
            }
            let page = std::mem::take(&mut self.buf);
            let mut de = serde_json::Deserializer::from_slice(&page);
            let meta = read_page(&mut de, |raw| self.apply(raw, false));
            self.buf = page;
            self.trim_buffer();
            let meta = meta.map_err(|e| End::Failed(format!("list: undecodable page: {e}")))?;
            match meta.continue_token {
                Some(t) => token = Some(t),
                None => {
                    self.shared.apply(Change::InitDone(self.kind));
                    self.rv = meta.resource_version;
                    return Ok(());
                }
            }
        }
    }

    /// A watch from `rv`, or with `initial` a streaming list whose changes follow on the same
    /// stream. Returns when the stream ends.
    async fn watch(&mut self, mut initial: bool) -> End {
        let mut params = WatchParams::default().timeout(240 + fastrand::u32(0..50));
        params.label_selector = self.labels.clone();
        params.field_selector = self.fields.map(str::to_owned);
        // A streaming list starts from the newest state (no resourceVersion), as client-go's
        // WatchList does; a watch resumes from the last one seen.
        let (params, from) =
            if initial { (params.initial_events(), "") } else { (params, self.rv.as_deref().unwrap_or("")) };
        let mut body = match self.open(self.request.watch(&params, from)).await {
            Ok(b) => b,
            Err(e) => {
                return match status_code(&e) {
                    Some(410) => End::Gone,
                    Some(400 | 422) if initial => End::Unsupported(e.to_string()),
                    _ => End::Failed(format!("watch: {e}")),
                }
            }
        };
        if initial {
            self.shared.apply(Change::Init(self.kind));
        }
        loop {
            self.trim_buffer();
            match body.read_until(b'\n', &mut self.buf).await {
                Ok(0) => {
                    return if initial {
                        self.unfinished += 1;
                        End::Failed("streaming list ended before its initial-events-end bookmark".into())
                    } else {
                        End::Closed
                    }
                }
                Ok(_) => {}
                Err(e) => return End::Failed(format!("watch: {e}")),
            }
            let line = std::mem::take(&mut self.buf);
            let outcome = self.event(&line, &mut initial);
            self.buf = line;
            if let Some(end) = outcome {
                return end;
            }
        }
    }

    /// Applies one watch line; `Some` ends the watch.
    fn event(&mut self, line: &[u8], initial: &mut bool) -> Option<End> {
        let line = line.trim_ascii();
        if line.is_empty() {
            return None;
        }
        let event: RawEvent = match serde_json::from_slice(line) {
            Ok(e) => e,
            Err(e) => return Some(End::Failed(format!("watch: undecodable event: {e}"))),
        };
        // Objects of a streaming list carry their own versions, not the list's (which comes with
        // its closing bookmark): no copy of theirs is kept.
        let rv = (!*initial || event.type_ == "BOOKMARK")
            .then(|| event.object.metadata.resource_version.as_deref().map(str::to_owned))
            .flatten();
        match &*event.type_ {
            "ADDED" | "MODIFIED" => self.apply(event.object, false),
            "DELETED" => self.apply(event.object, true),
            "BOOKMARK" => {
                let end = event.object.metadata.annotations.as_ref().is_some_and(|a| a.initial_events_end);
                if *initial && end {
                    *initial = false;
                    self.unfinished = 0;
                    self.shared.apply(Change::InitDone(self.kind));
                }
            }
            "ERROR" => {
                let o = &event.object;
                return Some(match o.code {
                    Some(410) => End::Gone,
                    code => End::Failed(format!(
                        "watch error {}: {}",
                        code.unwrap_or(0),
                        o.message.as_deref().unwrap_or("")
                    )),
                });
            }
            other => return Some(End::Failed(format!("watch: unknown event type {other:?}"))),
        }
        if !*initial {
            if let Some(rv) = rv {
                self.rv = Some(rv);
            }
        }
        None
    }

    async fn run(mut self) {
        let mut delay = Duration::ZERO;
        loop {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let end = if self.rv.is_some() {
                self.watch(false).await
            } else {
                // A relist, not the first list: spread the replicas out.
                if self.shared.read().kind_synced(self.kind) {
                    tokio::time::sleep(jitter(RELIST_JITTER)).await;
                }
                if self.streaming {
                    self.watch(true).await
                } else {
                    match self.list().await {
                        Ok(()) => End::Closed,
                        Err(end) => end,
                    }
                }
            };
            let resource = self.kind.as_str();
            delay = match end {
                End::Closed => Duration::ZERO,
                End::Gone => {
                    self.shared.observer.relist(resource);
                    self.shared.observer.info(&format!("{resource}: resourceVersion expired, relisting"));
                    self.rv = None;
                    Duration::ZERO
                }
                End::Unsupported(why) => {
                    self.streaming = false;
                    self.shared.observer.fallback(resource);
                    self.shared.observer.warning(&format!(
                        "{resource}: the API server refused a streaming list ({why}); using paginated lists"
                    ));
                    Duration::ZERO
                }
                End::Failed(why) => {
                    self.shared.observer.warning(&format!("{resource} watch: {why}"));
                    if self.streaming && self.unfinished >= 2 {
                        self.streaming = false;
                        self.shared.observer.fallback(resource);
                        self.shared
                            .observer
                            .warning(&format!("{resource}: streaming lists never completed; using paginated lists"));
                    }
                    // client-go's backoff: doubling from 0.8 s to 30 s, jittered.
                    let next = (delay * 2).clamp(Duration::from_millis(800), Duration::from_secs(30));
                    next.mul_f64(0.5 + fastrand::f64())
                }
            };
        }
    }
}

/// Connects and runs one reflector per watched kind; a client that cannot be built is retried
/// with backoff (the index stays unsynced meanwhile: SERVFAIL, not NXDOMAIN).
pub async fn run(opts: ApiOptions, shared: Arc<Shared>) {
    let (client, host) = super::api::connect(&opts, &shared.observer, "").await;
    let limiter = Arc::new(Limiter::new(opts.qps, opts.burst, opts.max_inflight));
    let mut kinds =
        vec![(Kind::Service, opts.labels.as_deref(), None), (Kind::Namespace, opts.namespace_labels.as_deref(), None)];
    if opts.slices {
        kinds.push((Kind::Slice, opts.labels.as_deref(), None));
    }
    if opts.pods {
        kinds.push((Kind::Pod, opts.labels.as_deref(), Some(super::api::LIVE_PODS)));
    }
    let tasks = kinds.into_iter().map(|(kind, labels, fields)| {
        Reflector {
            client: client.clone(),
            kind,
            request: kube::core::Request::new(collection(kind)),
            labels: labels.map(str::to_owned),
            fields,
            shared: shared.clone(),
            limiter: limiter.clone(),
            host: host.clone(),
            keep: Keep { pod_names: opts.pod_names },
            rv: None,
            streaming: true,
            unfinished: 0,
            buf: Vec::new(),
        }
        .run()
    });
    futures::future::join_all(tasks).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;

    #[test]
    fn token_bucket_allows_the_burst_then_the_rate() {
        let l = Limiter::new(10.0, 3, 0);
        let t0 = Instant::now();
        let waits: Vec<Duration> = (0..5).map(|_| l.reserve(t0)).collect();
        assert_eq!(&waits[..3], &[Duration::ZERO; 3]);
        assert_eq!(waits[3], Duration::from_millis(100));
        assert_eq!(waits[4], Duration::from_millis(200));
        // A second later the bucket has refilled to its burst, not beyond.
        let t1 = t0 + Duration::from_secs(2);
        let waits: Vec<Duration> = (0..4).map(|_| l.reserve(t1)).collect();
        assert_eq!(&waits[..3], &[Duration::ZERO; 3]);
        assert!(waits[3] > Duration::ZERO);
    }

    #[tokio::test]
    async fn max_inflight_holds_a_request_until_a_slot_is_given_back() {
        let l = Limiter::new(1000.0, 100, 2);
        let (_, a) = l.admit().await;
        let (_, b) = l.admit().await;
        assert!(a.is_some() && b.is_some());
        let mut third = Box::pin(l.admit());
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(third.as_mut().poll(&mut cx).is_pending(), "two in flight: the third waits");
        drop(a);
        let std::task::Poll::Ready((_, c)) = third.as_mut().poll(&mut cx) else {
            panic!("a slot came back: the third goes");
        };
        assert!(c.is_some());
        let unlimited = Limiter::new(1000.0, 100, 0);
        assert!(unlimited.admit().await.1.is_none(), "0 means no cap");
    }

    #[test]
    fn defaults_are_client_gos() {
        let l = Limiter::new(0.0, 0, 0);
        assert_eq!((l.qps, l.burst), (5.0, 10.0));
        assert!(l.inflight.is_none());
    }

    #[test]
    fn requests_carry_the_selectors_and_the_streaming_list_parameters() {
        let request = kube::core::Request::new(collection(Kind::Pod));
        let mut page = ListParams::default().limit(PAGE_SIZE).continue_token("a b/c");
        page.label_selector = Some("app in (a,b),x!=y".into());
        assert_eq!(
            request.list(&page).unwrap().uri().to_string(),
            "/api/v1/pods?&labelSelector=app+in+%28a%2Cb%29%2Cx%21%3Dy&limit=500&continue=a+b%2Fc"
        );
        let streaming = WatchParams::default().timeout(240).initial_events();
        assert_eq!(
            request.watch(&streaming, "").unwrap().uri().to_string(),
            "/api/v1/pods?&watch=true&timeoutSeconds=240&allowWatchBookmarks=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&resourceVersion="
        );
    }
}
