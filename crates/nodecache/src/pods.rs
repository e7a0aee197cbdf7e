//! The pod source of the DNS-serving process (`-podsource`): this node's pods, watched through
//! `kdns_kubernetes::source::node_pods`, published into the server's client directory
//! (`kdns_server::clients`), which the core, `forward`, `log`, the status page and the search
//! expansion read. Host-network pods are left out: their address is the node's, shared by many.

use crate::settings::PodSource;
use kdns_kubernetes::source::api::ApiOptions;
use kdns_kubernetes::source::node_pods::{self, NodePod, NodeResolv};
use kdns_server::clients::{self, Pod, Resolver};
use kdns_server::{info, warning};
use std::sync::Arc;

struct Log;

impl kdns_kubernetes::source::Observer for Log {
    fn info(&self, msg: &str) {
        info!("{msg}");
    }
    fn warning(&self, msg: &str) {
        warning!("{msg}");
    }
}

/// Starts the watch on the current runtime; the directory keeps the last list whenever the API
/// server is away.
pub fn start(source: &PodSource) {
    clients::enable();
    let opts = ApiOptions { kubeconfig: source.kubeconfig.clone().map(|k| (k, None)), ..ApiOptions::default() };
    // node-local-dns runs with dnsPolicy Default: this resolv.conf is the node's, the one kubelet
    // appends to ClusterFirst pods' search lists.
    let node = NodeResolv {
        search: kdns_plugins::pkg::resolv::resolv_search(std::path::Path::new("/etc/resolv.conf"))
            .map(|names| names.iter().map(|n| n.to_string()).collect())
            .unwrap_or_default(),
    };
    let (node_name, domain) = (source.node_name.clone(), source.cluster_domain.clone());
    tokio::spawn(node_pods::run(opts, node_name, domain, node, Arc::new(Log), publish));
}

fn publish(pods: Vec<NodePod>) {
    clients::publish(pods.into_iter().filter(|p| !p.host_network).flat_map(|p| {
        let pod = Pod {
            namespace: p.namespace.as_str().into(),
            name: p.name.as_str().into(),
            resolver: p.resolver.map(|r| Resolver {
                search: r.search,
                ndots: r.ndots,
                node_is_its_resolver: r.cluster_dns_only,
            }),
        };
        p.addresses.into_iter().map(move |ip| (ip, pod.clone()))
    }));
}
