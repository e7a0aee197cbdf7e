use super::{Kubernetes, PluginObserver, Synced};
use crate::pkg::links;
use kdns_corefile::{Directive, Dispenser, Error, Token};
use kdns_kubernetes::answer::{is_reverse, PodMode, Settings};
use kdns_kubernetes::source::{api, dir, reflector, Shared};
use kdns_kubernetes::Index;
use kdns_server::plugin::{once, parse_duration, Plugin, SetupCtx};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const DEFAULT_TTL: u32 = 5;
const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the offline source looks at its directory.
const MANIFEST_POLL: Duration = Duration::from_secs(1);

fn err(at: &Token, msg: impl std::fmt::Display) -> Error {
    Error::at(at, format!("plugin/kubernetes: {msg}"))
}

/// Checks a label selector the way the API server parses it: comma-separated requirements of
/// `k`, `!k`, `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`.
pub(crate) fn valid_selector(s: &str) -> bool {
    let mut depth = 0;
    let mut parts = Vec::new();
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        if depth < 0 {
            return false;
        }
        cur.push(c);
    }
    parts.push(cur);
    let key_ok =
        |k: &str| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    depth == 0
        && parts.iter().all(|p| {
            let p = p.trim();
            let words: Vec<&str> = p.split_whitespace().collect();
            if let [k, op, rest @ ..] = words.as_slice() {
                if *op == "in" || *op == "notin" {
                    let set = rest.join(" ");
                    return key_ok(k) && set.starts_with('(') && set.ends_with(')');
                }
            }
            if let Some(k) = p.strip_prefix('!') {
                return key_ok(k.trim());
            }
            for op in ["==", "!=", "="] {
                if let Some((k, v)) = p.split_once(op) {
                    return key_ok(k.trim())
                        && v.trim().chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
                }
            }
            key_ok(p)
        })
}

pub fn setup(ctx: &mut SetupCtx<'_>, ds: &[&Directive]) -> Result<Option<Arc<dyn Plugin>>, Error> {
    once("kubernetes", ds)?;
    let d = Dispenser::new(ds[0]);
    let args = d.args();
    let zones = crate::pkg::zones::plugin_zones("kubernetes", &args, ctx.zones, d.name())?;
    let Some(primary) = zones.iter().find(|z| !is_reverse(z)) else {
        return Err(err(d.name(), "non-reverse zone name must be used"));
    };

    let mut api = api::ApiOptions { slices: true, ..Default::default() };
    let mut manifests: Option<PathBuf> = None;
    let mut ttl = DEFAULT_TTL;
    let mut pods = PodMode::Disabled;
    let mut endpoint_pod_names = false;
    let mut namespaces: Vec<String> = Vec::new();
    let mut ignore_empty_service = false;
    let mut fallthrough = crate::pkg::zones::Fallthrough::default();
    let mut startup_timeout = DEFAULT_STARTUP_TIMEOUT;
    for (prop, vals) in d.block() {
        let texts: Vec<&str> = vals.iter().map(|t| t.text.as_str()).collect();
        let one = || match vals.as_slice() {
            [v] => Ok(*v),
            _ => Err(d.arg_err(prop)),
        };
        match prop.text.as_str() {
            "endpoint" => {
                let first = vals.first().ok_or_else(|| d.arg_err(prop))?;
                if vals.len() > 1 {
                    kdns_server::warning!(
                        plugin = "kubernetes",
                        "multiple endpoints have been deprecated, please specify a single endpoint: only {} is used",
                        first.text
                    );
                }
                api.endpoint = Some(first.text.clone());
            }
            "tls" => {
                let [cert, key, ca] = vals.as_slice() else {
                    return Err(d.arg_err(prop));
                };
                let path = |t: &Token| ctx.config_dir.join(&t.text);
                api.tls = Some([path(cert), path(key), path(ca)]);
            }
            "kubeconfig" => {
                let (file, context) = match vals.as_slice() {
                    [f] => (f, None),
                    [f, c] => (f, Some(c.text.clone())),
                    _ => return Err(d.arg_err(prop)),
                };
                api.kubeconfig = Some((ctx.config_dir.join(&file.text), context));
            }
            "namespaces" => {
                if vals.is_empty() {
                    return Err(d.arg_err(prop));
                }
                namespaces = texts.iter().map(|s| s.to_string()).collect();
            }
            "namespace_labels" | "labels" => {
                let expr = texts.join(" ");
                if vals.is_empty() || !valid_selector(&expr) {
                    return Err(err(prop, format!("unable to parse label selector value: '{expr}'")));
                }
                if prop.text == "labels" {
                    api.labels = Some(expr);
                } else {
                    api.namespace_labels = Some(expr);
                }
            }
            "pods" => {
                let v = one()?;
                pods = match v.text.as_str() {
                    "disabled" => PodMode::Disabled,
                    "insecure" => PodMode::Insecure,
                    "verified" => PodMode::Verified,
                    other => return Err(err(v, format!("invalid pods mode: {other}"))),
                };
            }
            "endpoint_pod_names" => {
                if !vals.is_empty() {
                    return Err(d.arg_err(prop));
                }
                endpoint_pod_names = true;
            }
            "ttl" => {
                let v = one()?;
                ttl = v
                    .text
                    .parse::<u32>()
                    .ok()
                    .filter(|t| *t <= 3600)
                    .ok_or_else(|| err(v, format!("ttl must be in range [0, 3600]: {}", v.text)))?;
            }
            // Removed from CoreDNS in 1.9 (kubeadm's Corefiles up to Kubernetes 1.15 carry it);
            // accepted and ignored so such a Corefile still loads.
            "upstream" => {
                kdns_server::warning!(plugin = "kubernetes", "upstream option is deprecated and ignored");
            }
            "noendpoints" => {
                if !vals.is_empty() {
                    return Err(d.arg_err(prop));
                }
                api.slices = false;
            }
            "fallthrough" => fallthrough = crate::pkg::zones::Fallthrough::parse("kubernetes", &vals)?,
            "ignore" => {
                let v = one()?;
                if v.text != "empty_service" {
                    return Err(err(v, format!("unable to parse ignore value: '{}'", v.text)));
                }
                ignore_empty_service = true;
            }
            "startup_timeout" => {
                let v = one()?;
                startup_timeout =
                    parse_duration(&v.text).ok_or_else(|| err(v, format!("invalid startup_timeout {:?}", v.text)))?;
            }
            "apiserver_qps" => {
                let v = one()?;
                // Go's ParseFloat(s, 32): the Corefile value as client-go's float32 QPS.
                let qps = v.text.parse::<f32>().map_err(|_| {
                    err(
                        v,
                        format!(
                            "invalid apiserver_qps {:?}: strconv.ParseFloat: parsing {:?}: invalid syntax",
                            v.text, v.text
                        ),
                    )
                })?;
                if qps < 0.0 {
                    return Err(err(v, "apiserver_qps must be >= 0"));
                }
                api.qps = f64::from(qps);
            }
            "apiserver_burst" | "apiserver_max_inflight" => {
                let v = one()?;
                let n = v.text.parse::<i64>().map_err(|_| {
                    err(
                        v,
                        format!(
                            "invalid {} {:?}: strconv.Atoi: parsing {:?}: invalid syntax",
                            prop.text, v.text, v.text
                        ),
                    )
                })?;
                if n < 0 {
                    return Err(err(v, format!("{} must be >= 0", prop.text)));
                }
                let n = u32::try_from(n).unwrap_or(u32::MAX);
                if prop.text == "apiserver_burst" {
                    api.burst = n;
                } else {
                    api.max_inflight = n;
                }
            }
            "manifests" => {
                manifests = Some(ctx.config_dir.join(one()?.text.as_str()));
            }
            "multicluster" | "zonal" => {
                return Err(err(prop, format!("{} is not supported by kdns yet", prop.text)));
            }
            "resyncperiod" => {
                return Err(err(prop, "resyncperiod has been removed (as in CoreDNS)"));
            }
            _ => return Err(err(prop, format!("unknown property '{}'", prop.text))),
        }
    }
    if !namespaces.is_empty() && api.namespace_labels.is_some() {
        return Err(err(d.name(), "namespaces and namespace_labels cannot both be set"));
    }
    api.pods = pods == PodMode::Verified;
    api.pod_names = endpoint_pod_names;

    let local_ips: Vec<IpAddr> = if ctx.listen.is_empty() {
        if_addrs::get_if_addrs().map(|l| l.into_iter().map(|i| i.ip()).collect()).unwrap_or_default()
    } else {
        ctx.listen.clone()
    };
    let settings = Settings {
        primary: primary.to_string(),
        ttl,
        pods,
        endpoint_pod_names,
        namespaces,
        ignore_empty_service,
        local_ips: local_ips.into_iter().filter(|ip| !ip.is_loopback()).collect(),
    };
    let shared = Shared::new(Index::new(api.slices, api.pods), Arc::new(PluginObserver));
    match manifests {
        Some(path) => {
            let task = dir::run(path, shared.clone(), api.pods, MANIFEST_POLL);
            ctx.contrib.tasks.push(Box::pin(task));
        }
        None => ctx.contrib.tasks.push(Box::pin(reflector::run(api, shared.clone()))),
    }
    ctx.contrib.startup.push(Box::pin(wait_for_sync(shared.clone(), startup_timeout)));
    ctx.contrib.readiness.push(Arc::new(Synced(shared.clone())));
    if let Some(cell) = ctx.links.get(links::K8S_EXTERNAL) {
        if let Some(cell) = cell.downcast_ref::<links::KubernetesCell>() {
            let _ = cell.set(links::KubernetesSource { settings: settings.clone(), shared: shared.clone() });
        }
    }
    let plugin = Arc::new(Kubernetes {
        zones,
        settings,
        fallthrough,
        shared,
        host_search: crate::pkg::resolv::resolv_search(std::path::Path::new("/etc/resolv.conf")).unwrap_or_default(),
    });
    if let Some(link) = ctx.links.get(links::AUTOPATH).and_then(|l| l.downcast_ref::<links::AutopathLink>()) {
        if link.plugin == "kubernetes" {
            let _ = link.source.set(plugin.clone());
        }
    }
    Ok(Some(plugin))
}

/// CoreDNS delays serving until the first sync or `startup_timeout`, whichever comes first.
async fn wait_for_sync(shared: Arc<Shared>, timeout: Duration) {
    let start = Instant::now();
    let mut last_log = start;
    while !shared.synced() {
        if start.elapsed() >= timeout {
            kdns_server::warning!(plugin = "kubernetes", "starting server with unsynced Kubernetes API");
            return;
        }
        if last_log.elapsed() >= Duration::from_millis(500) {
            kdns_server::info!(plugin = "kubernetes", "waiting for Kubernetes API before starting server");
            last_log = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
