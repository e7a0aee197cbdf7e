//! The pods of one node, for the node cache (`kdns node-cache -podsource`): a list and watch of
//! Pods with `fieldSelector=spec.nodeName=<node>` through kube-rs's typed API (about 110 objects,
//! so the typed `Pod` is fine here, unlike the cluster-wide reflector), projected to address →
//! namespace, name and the resolver kubelet gives the pod (`dnsPolicy`, `dnsConfig`,
//! `hostNetwork`, the node's own search list). The API server going away never clears what was
//! last listed: the caller keeps serving it while the loop retries with backoff.

use super::api::{ApiOptions, Backoff};
use super::Observer;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kdns_wire::Name;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

/// kubelet's default `ndots` for ClusterFirst pods.
pub const CLUSTER_FIRST_NDOTS: u8 = 5;

/// One pod of the node as the node cache needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodePod {
    pub namespace: String,
    pub name: String,
    pub host_network: bool,
    pub addresses: Vec<IpAddr>,
    /// The pod's search list and ndots, and whether the cluster DNS (here: this node cache) is
    /// its only nameserver; `None` when kubelet gives it the node's resolver (`Default`, or
    /// ClusterFirst on the host network).
    pub resolver: Option<PodResolver>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodResolver {
    pub search: Vec<Name>,
    pub ndots: u8,
    pub cluster_dns_only: bool,
}

/// What kubelet adds from the node: its resolv.conf's search list (ClusterFirst pods get it after
/// their cluster domains).
#[derive(Clone, Debug, Default)]
pub struct NodeResolv {
    pub search: Vec<String>,
}

/// kubelet's resolver for a pod (pkg/kubelet/network/dns): ClusterFirst gets
/// `<ns>.svc.<domain> svc.<domain> <domain>` then the node's searches with `ndots:5`; `None` gets
/// only its `dnsConfig`; `dnsConfig` searches and nameservers are appended, options override.
pub fn resolver_of(pod: &Pod, cluster_domain: &str, node: &NodeResolv) -> Option<PodResolver> {
    let spec = pod.spec.as_ref()?;
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let host_network = spec.host_network.unwrap_or(false);
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let domain = cluster_domain.trim_end_matches('.');
    let (mut search, mut ndots, mut cluster_dns_only) = match (policy, host_network) {
        ("ClusterFirst", false) | ("ClusterFirstWithHostNet", _) => {
            let mut s = vec![format!("{namespace}.svc.{domain}"), format!("svc.{domain}"), domain.to_string()];
            s.extend(node.search.iter().cloned());
            (s, CLUSTER_FIRST_NDOTS, true)
        }
        ("None", _) => (Vec::new(), 1, false),
        // Default, or ClusterFirst on the host network: the node's resolver, not ours to predict.
        _ => return None,
    };
    if let Some(cfg) = &spec.dns_config {
        for s in cfg.searches.iter().flatten() {
            search.push(s.clone());
        }
        // Another nameserver beside the cluster DNS: the pod's resolver may ask it instead.
        if cfg.nameservers.as_ref().is_some_and(|ns| !ns.is_empty()) {
            cluster_dns_only = false;
        }
        for o in cfg.options.iter().flatten() {
            if o.name.as_deref() == Some("ndots") {
                if let Some(n) = o.value.as_deref().and_then(|v| v.parse::<u8>().ok()) {
                    ndots = n.min(15);
                }
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    let mut search: Vec<Name> = search
        .into_iter()
        .map(|s| s.trim_end_matches('.').to_ascii_lowercase())
        // A lone "." (kubernetes/kubernetes#132036) or an empty entry searches nothing.
        .filter(|s| !s.is_empty())
        .filter(|s| seen.insert(s.clone()))
        .filter_map(|s| Name::from_ascii(&format!("{s}.")).ok())
        .collect();
    search.truncate(32);
    Some(PodResolver { search, ndots, cluster_dns_only })
}

/// The projection of one Pod; `None` for pods that own no address (finished, not yet
/// scheduled an IP).
pub fn project(pod: &Pod, cluster_domain: &str, node: &NodeResolv) -> Option<NodePod> {
    let status = pod.status.as_ref()?;
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return None;
    }
    let mut addresses: Vec<IpAddr> =
        status.pod_ips.iter().flatten().filter_map(|p| p.ip.parse().ok()).collect::<Vec<IpAddr>>();
    if addresses.is_empty() {
        addresses.extend(status.pod_ip.as_deref().and_then(|ip| ip.parse::<IpAddr>().ok()));
    }
    if addresses.is_empty() {
        return None;
    }
    Some(NodePod {
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        host_network: pod.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false),
        addresses,
        resolver: resolver_of(pod, cluster_domain, node),
    })
}

/// Lists and watches the node's pods for as long as the task runs; `publish` gets the whole set
/// after the list and after every change (the caller swaps it in). Errors are retried with
/// backoff (0.5 s doubling to 30 s); a 410 Gone lists again.
pub async fn run(
    opts: ApiOptions,
    node_name: String,
    cluster_domain: String,
    node: NodeResolv,
    observer: Arc<dyn Observer>,
    publish: impl Fn(Vec<NodePod>) + Send + Sync + 'static,
) {
    let selector = format!("spec.nodeName={node_name}");
    let (client, _) = super::api::connect(&opts, &observer, "pod source: ").await;
    let api: Api<Pod> = Api::all(client);
    let mut backoff = Backoff::default();
    let mut pods: BTreeMap<(String, String), NodePod> = BTreeMap::new();
    let publish_all = |pods: &BTreeMap<(String, String), NodePod>| publish(pods.values().cloned().collect());
    loop {
        let list = match api.list(&ListParams::default().fields(&selector)).await {
            Ok(list) => list,
            Err(e) => {
                observer.warning(&format!("pod source: listing the pods of node {node_name}: {e}"));
                backoff.wait().await;
                continue;
            }
        };
        backoff.reset();
        pods.clear();
        for p in &list.items {
            if let Some(np) = project(p, &cluster_domain, &node) {
                pods.insert((np.namespace.clone(), np.name.clone()), np);
            }
        }
        publish_all(&pods);
        observer.info(&format!("pod source: {} pods of node {node_name}", pods.len()));
        let mut rv = list.metadata.resource_version.unwrap_or_default();
        // Watch from the list's version until the stream ends (resume) or the version is gone.
        'watch: loop {
            let wp = WatchParams::default().fields(&selector).timeout(290);
            let stream = match api.watch(&wp, &rv).await {
                Ok(s) => s,
                Err(e) => {
                    observer.warning(&format!("pod source: watching the pods of node {node_name}: {e}"));
                    backoff.wait().await;
                    if is_gone(&e) {
                        break 'watch;
                    }
                    continue;
                }
            };
            let mut stream = stream.boxed();
            loop {
                let (pod, now) = match stream.try_next().await {
                    Ok(Some(WatchEvent::Added(p) | WatchEvent::Modified(p))) => {
                        let now = project(&p, &cluster_domain, &node);
                        (p, now)
                    }
                    Ok(Some(WatchEvent::Deleted(p))) => (p, None),
                    Ok(Some(WatchEvent::Bookmark(b))) => {
                        rv = b.metadata.resource_version;
                        continue;
                    }
                    Ok(Some(WatchEvent::Error(e))) if e.code == 410 => break 'watch,
                    Ok(Some(WatchEvent::Error(e))) => {
                        observer.warning(&format!("pod source: watch error: {}", e.message));
                        break;
                    }
                    // The server closed the stream (its timeout): watch on from where we are.
                    Ok(None) => break,
                    Err(e) => {
                        observer.warning(&format!("pod source: watch stream: {e}"));
                        backoff.wait().await;
                        break;
                    }
                };
                let meta = pod.metadata;
                rv = meta.resource_version.unwrap_or(rv);
                let key = (meta.namespace.unwrap_or_default(), meta.name.unwrap_or_default());
                match now {
                    Some(np) => pods.insert(key, np),
                    None => pods.remove(&key),
                };
                publish_all(&pods);
            }
        }
        observer.info("pod source: resourceVersion too old, listing again");
    }
}

fn is_gone(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 410)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).unwrap()
    }

    fn names(r: &PodResolver) -> Vec<String> {
        r.search.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn kubelets_search_list_for_each_policy() {
        let node = NodeResolv { search: vec!["corp.example.".into(), "lab.example".into()] };
        let p = pod(serde_json::json!({"metadata": {"namespace": "shop", "name": "web"}, "spec": {"containers": []}}));
        let r = resolver_of(&p, "cluster.local", &node).unwrap();
        assert_eq!(
            names(&r),
            ["shop.svc.cluster.local.", "svc.cluster.local.", "cluster.local.", "corp.example.", "lab.example."]
        );
        assert_eq!((r.ndots, r.cluster_dns_only), (5, true));

        // dnsConfig: searches appended (duplicates and a lone "." dropped), ndots overridden,
        // an extra nameserver means the pod may ask someone else.
        let p = pod(serde_json::json!({"metadata": {"namespace": "shop", "name": "web"}, "spec": {"containers": [],
            "dnsConfig": {"searches": ["extra.example", ".", "svc.cluster.local"], "nameservers": ["192.0.2.53"],
                          "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}}}));
        let r = resolver_of(&p, "cluster.local.", &NodeResolv::default()).unwrap();
        assert_eq!(names(&r), ["shop.svc.cluster.local.", "svc.cluster.local.", "cluster.local.", "extra.example."]);
        assert_eq!((r.ndots, r.cluster_dns_only), (2, false));

        // None: only its dnsConfig, glibc's ndots 1 unless set.
        let p = pod(serde_json::json!({"metadata": {"namespace": "a", "name": "b"}, "spec": {"containers": [],
            "dnsPolicy": "None", "dnsConfig": {"nameservers": ["10.96.0.10"], "searches": ["x.example"]}}}));
        let r = resolver_of(&p, "cluster.local", &node).unwrap();
        assert_eq!((names(&r), r.ndots, r.cluster_dns_only), (vec!["x.example.".to_string()], 1, false));

        // The node's resolver: Default, and ClusterFirst on the host network.
        for spec in [
            serde_json::json!({"containers": [], "dnsPolicy": "Default"}),
            serde_json::json!({"containers": [], "hostNetwork": true}),
        ] {
            let p = pod(serde_json::json!({"metadata": {"namespace": "a", "name": "b"}, "spec": spec}));
            assert_eq!(resolver_of(&p, "cluster.local", &node), None);
        }
        let p = pod(serde_json::json!({"metadata": {"namespace": "kube-system", "name": "agent"},
            "spec": {"containers": [], "hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"}}));
        assert!(resolver_of(&p, "cluster.local", &node).unwrap().cluster_dns_only);
    }

    #[test]
    fn finished_and_addressless_pods_own_nothing() {
        let node = NodeResolv::default();
        let live = pod(serde_json::json!({"metadata": {"namespace": "a", "name": "b"}, "spec": {"containers": []},
            "status": {"phase": "Running", "podIP": "10.1.0.5", "podIPs": [{"ip": "10.1.0.5"}, {"ip": "fd00::5"}]}}));
        let p = project(&live, "cluster.local", &node).unwrap();
        assert_eq!(p.addresses, ["10.1.0.5".parse::<IpAddr>().unwrap(), "fd00::5".parse().unwrap()]);
        let done = pod(serde_json::json!({"metadata": {"namespace": "a", "name": "b"}, "spec": {"containers": []},
            "status": {"phase": "Succeeded", "podIP": "10.1.0.5"}}));
        assert_eq!(project(&done, "cluster.local", &node), None);
        let pending = pod(serde_json::json!({"metadata": {"namespace": "a", "name": "b"}, "spec": {"containers": []},
            "status": {"phase": "Pending"}}));
        assert_eq!(project(&pending, "cluster.local", &node), None);
    }
}
