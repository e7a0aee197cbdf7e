//! The HTTP side: routing, lists, watch streams, faults.

use crate::select::Selector;
use crate::{Change, Fault, Inner, Kind};
use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// A response body fed line by line from a task (watch streams).
pub struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

type Resp = Response<ChannelBody>;

/// A JSON response whose body is whatever the task behind `rx` sends (watch streams).
fn streaming(rx: mpsc::Receiver<Bytes>) -> Resp {
    let mut r = Response::new(ChannelBody { rx });
    r.headers_mut().insert("content-type", "application/json".parse().expect("static"));
    r
}

/// A receiver holding one finished body.
fn body(bytes: Vec<u8>) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(1);
    let _ = tx.try_send(Bytes::from(bytes));
    rx
}

fn json_response(code: u16, v: &Value) -> Resp {
    let mut r = streaming(body(serde_json::to_vec(v).unwrap_or_default()));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r
}

fn status_object(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

fn status(code: u16, reason: &str, message: &str) -> Resp {
    json_response(code, &status_object(code, reason, message))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_params(q: Option<&str>) -> HashMap<String, String> {
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

pub(crate) async fn serve(listener: tokio::net::TcpListener, inner: Arc<Inner>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        if inner.lock().down {
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let conn_inner = inner.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let inner = conn_inner.clone();
                async move { Ok::<_, Infallible>(handle(req, inner)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn handle(req: Request<Incoming>, inner: Arc<Inner>) -> Resp {
    let path = req.uri().path().to_string();
    let params = query_params(req.uri().query());
    if inner.lock().down {
        return status(503, "ServiceUnavailable", "the server is currently unable to handle the request");
    }
    match path.as_str() {
        "/version" => {
            return json_response(200, &json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-kdns-fake"}))
        }
        "/healthz" | "/readyz" | "/livez" => return Response::new(ChannelBody { rx: body(b"ok".to_vec()) }),
        // Benchmark hook: what an API server restart after a compaction does to every client.
        "/fake/relist" => {
            // One step past every client's resourceVersion: their resumed watches get 410.
            inner.lock().rv += 1;
            inner.compact();
            inner.cut_streams();
            return json_response(200, &json!({"relist": true}));
        }
        "/api" | "/apis" | "/api/v1" | "/apis/discovery.k8s.io" | "/apis/discovery.k8s.io/v1" => {
            return json_response(200, &discovery(&path))
        }
        _ => {}
    }
    let Some((kind, ns)) = Kind::from_path(&path) else {
        return status(404, "NotFound", "the server could not find the requested resource");
    };
    if req.method() != hyper::Method::GET {
        return status(405, "MethodNotAllowed", "only GET is served; tests write through the handle");
    }
    let watching = matches!(params.get("watch").map(String::as_str), Some("true" | "1"));
    let fault = {
        let mut st = inner.lock();
        let queue = st.faults.entry(kind).or_default();
        match queue.front() {
            Some(Fault::WatchGone | Fault::Stall) if !watching => None,
            Some(_) => queue.pop_front(),
            None => None,
        }
    };
    match fault {
        Some(Fault::Status(code)) => return status(code, "InternalError", "injected fault"),
        Some(Fault::WatchGone) => return status(410, "Expired", "too old resource version (injected as HTTP status)"),
        Some(Fault::Stall) => return stall(inner),
        None => {}
    }
    let selector = match Selector::parse(
        params.get("labelSelector").map_or("", String::as_str),
        params.get("fieldSelector").map_or("", String::as_str),
    ) {
        Ok(s) => s,
        Err(e) => return status(400, "BadRequest", &e),
    };
    if watching {
        watch(kind, ns, selector, &params, inner)
    } else {
        list(kind, ns, selector, &params, inner)
    }
}

/// One entry of an APIResourceList: what this server serves of a kind (reads only).
fn resource(name: &str, singular: &str, kind: &str, namespaced: bool, short: &[&str]) -> Value {
    let mut r = json!({"name": name, "singularName": singular, "namespaced": namespaced, "kind": kind,
        "verbs": ["get", "list", "watch"]});
    if !short.is_empty() {
        r["shortNames"] = json!(short);
    }
    r
}

/// The discovery documents, in the shapes a real API server writes them.
fn discovery(path: &str) -> Value {
    let group_version = json!({"groupVersion": "discovery.k8s.io/v1", "version": "v1"});
    let group = json!({"name": "discovery.k8s.io", "versions": [group_version], "preferredVersion": group_version});
    match path {
        "/api" => json!({"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]}),
        "/apis" => json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [group]}),
        "/apis/discovery.k8s.io" => {
            let mut g = group;
            g["kind"] = json!("APIGroup");
            g["apiVersion"] = json!("v1");
            g
        }
        "/api/v1" => json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
            resource("namespaces", "namespace", "Namespace", false, &["ns"]),
            resource("pods", "pod", "Pod", true, &["po"]),
            resource("services", "service", "Service", true, &["svc"]),
        ]}),
        _ => {
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "discovery.k8s.io/v1", "resources": [
                resource("endpointslices", "endpointslice", "EndpointSlice", true, &[]),
            ]})
        }
    }
}

fn stall(inner: Arc<Inner>) -> Resp {
    let (tx, rx) = mpsc::channel::<Bytes>(1);
    let mut generation = inner.generation.subscribe();
    tokio::spawn(async move {
        let _ = generation.changed().await;
        drop(tx);
    });
    streaming(rx)
}

fn in_scope(obj: &Value, kind: Kind, ns: &Option<String>, selector: &Selector) -> bool {
    let ns_ok = match ns {
        Some(n) if kind != Kind::Namespace => obj["metadata"]["namespace"].as_str() == Some(n.as_str()),
        _ => true,
    };
    ns_ok && selector.matches(obj)
}

/// List items carry no kind/apiVersion (what the real server does).
fn list_item(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("kind");
        m.remove("apiVersion");
    }
    o
}

fn list(
    kind: Kind,
    ns: Option<String>,
    selector: Selector,
    params: &HashMap<String, String>,
    inner: Arc<Inner>,
) -> Resp {
    let mut st = inner.lock();
    *st.lists.entry(kind).or_default() += 1;
    let limit = params.get("limit").and_then(|l| l.parse::<usize>().ok()).filter(|l| *l > 0);
    let (rv, mut items) = if let Some(token) = params.get("continue").filter(|t| !t.is_empty()) {
        match st.pages.remove(token) {
            Some(page) => page,
            None => {
                drop(st);
                return status(410, "Expired", "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.");
            }
        }
    } else {
        if let Some(want) = params.get("resourceVersion").and_then(|v| v.parse::<u64>().ok()) {
            if want > st.rv {
                drop(st);
                return status(504, "Timeout", "Too large resource version");
            }
            if want != 0
                && want < st.compacted
                && params.get("resourceVersionMatch").map(String::as_str) == Some("Exact")
            {
                drop(st);
                return status(410, "Expired", &format!("too old resource version: {want}"));
            }
        }
        let items: Vec<Value> = st
            .objects
            .iter()
            .filter(|((k, _, _), o)| *k == kind && in_scope(o, kind, &ns, &selector))
            .map(|(_, o)| list_item(o))
            .collect();
        (st.rv, items)
    };
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(limit) = limit {
        if items.len() > limit {
            let rest = items.split_off(limit);
            st.next_token += 1;
            let token = format!("page-{}-{}", rv, st.next_token);
            meta["continue"] = json!(token);
            meta["remainingItemCount"] = json!(rest.len());
            st.pages.insert(token, (rv, rest));
        }
    }
    drop(st);
    json_response(
        200,
        &json!({"kind": format!("{}List", kind.kind()), "apiVersion": kind.api_version(), "metadata": meta, "items": items}),
    )
}

fn event_line(kind: &str, obj: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": obj})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// What a watcher with this scope sees of a change (selector transitions included).
fn visible(change: &Change, kind: Kind, ns: &Option<String>, selector: &Selector) -> Option<Bytes> {
    if change.kind != kind {
        return None;
    }
    let was = change.old.as_ref().is_some_and(|o| in_scope(o, kind, ns, selector));
    let is = change.new.as_ref().is_some_and(|o| in_scope(o, kind, ns, selector));
    match (was, is, &change.new) {
        (false, true, Some(n)) => Some(event_line("ADDED", n)),
        (true, true, Some(n)) => Some(event_line("MODIFIED", n)),
        (true, false, Some(n)) => Some(event_line("DELETED", n)),
        (true, false, None) => change.old.as_ref().map(|o| event_line("DELETED", o)),
        _ => None,
    }
}

fn watch(
    kind: Kind,
    ns: Option<String>,
    selector: Selector,
    params: &HashMap<String, String>,
    inner: Arc<Inner>,
) -> Resp {
    let bookmarks = params.get("allowWatchBookmarks").is_some_and(|v| v == "true");
    let initial = params.get("sendInitialEvents").is_some_and(|v| v == "true");
    if params.contains_key("resourceVersionMatch") && inner.lock().no_watch_list {
        return status(
            422,
            "Invalid",
            &format!(
                "{} is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch",
                kind.plural()
            ),
        );
    }
    if initial && params.get("resourceVersionMatch").map(String::as_str) != Some("NotOlderThan") {
        return status(422, "Invalid", "sendInitialEvents requires resourceVersionMatch=NotOlderThan");
    }
    let timeout = params.get("timeoutSeconds").and_then(|t| t.parse::<u64>().ok()).unwrap_or(1800);
    let from = params.get("resourceVersion").and_then(|v| v.parse::<u64>().ok());
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let mut lines = Vec::new();
    let (mut events, last, interval, generation, pause) = {
        let mut st = inner.lock();
        *st.watches.entry(kind).or_default() += 1;
        if initial {
            // A streaming list is a list too (what `lists` counts: full reads of a kind).
            *st.lists.entry(kind).or_default() += 1;
        }
        let events = inner.events.subscribe();
        match from {
            Some(rv) if rv != 0 && !initial => {
                if rv < st.compacted {
                    let msg = format!("too old resource version: {rv} ({})", st.compacted + 1);
                    lines.push(event_line("ERROR", &status_object(410, "Expired", &msg)));
                } else {
                    lines.extend(st.log.iter().filter(|c| c.rv > rv).filter_map(|c| visible(c, kind, &ns, &selector)));
                }
            }
            // No RV, RV 0 or a streaming list: the current state as synthetic ADDED events.
            _ => {
                for ((k, _, _), o) in &st.objects {
                    if *k == kind && in_scope(o, kind, &ns, &selector) {
                        lines.push(event_line("ADDED", o));
                    }
                }
                if initial && bookmarks {
                    let mark = json!({"kind": kind.kind(), "apiVersion": kind.api_version(),
                        "metadata": {"resourceVersion": st.rv.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}}});
                    lines.push(event_line("BOOKMARK", &mark));
                }
            }
        }
        let expired = lines.first().is_some_and(|l| l.starts_with(b"{\"type\":\"ERROR\""));
        let last = if expired { None } else { Some(st.rv) };
        (events, last, st.bookmark_interval.filter(|_| bookmarks), inner.generation.subscribe(), st.initial_event_pause)
    };
    let mut generation = generation;
    tokio::spawn(async move {
        for (n, l) in lines.into_iter().enumerate() {
            if let Some(pause) = pause.filter(|_| n > 0 && n % 100 == 0) {
                tokio::time::sleep(pause).await;
            }
            if tx.send(l).await.is_err() {
                return;
            }
        }
        let Some(mut last) = last else { return };
        let deadline = tokio::time::sleep(Duration::from_secs(timeout));
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(interval.unwrap_or(Duration::from_secs(3600)));
        tick.tick().await;
        loop {
            tokio::select! {
                biased;
                _ = generation.changed() => return,
                _ = &mut deadline => return,
                _ = tick.tick(), if interval.is_some() => {
                    let mark = json!({"kind": kind.kind(), "apiVersion": kind.api_version(), "metadata": {"resourceVersion": last.to_string()}});
                    if tx.send(event_line("BOOKMARK", &mark)).await.is_err() { return; }
                }
                ev = events.recv() => match ev {
                    Ok(change) => {
                        // A cut stream must not deliver what happened after the cut.
                        if generation.has_changed().unwrap_or(true) { return; }
                        if change.rv <= last { continue; }
                        last = change.rv;
                        if let Some(line) = visible(&change, kind, &ns, &selector) {
                            if tx.send(line).await.is_err() { return; }
                        }
                    }
                    // A watcher too slow to keep up is dropped, as the apiserver does.
                    Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    });
    streaming(rx)
}
