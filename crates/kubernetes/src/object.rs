//! Projections: the few fields of each API object that DNS answers need. Full objects are
//! dropped as soon as they are projected, so memory follows the DNS data, not the API's.

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

/// The EndpointSlice label naming its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// When the endpoints controller saw the change that produced this slice (programming latency).
pub const TRIGGER_TIME_ANNOTATION: &str = "endpoints.kubernetes.io/last-change-trigger-time";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceKind {
    ClusterIp,
    Headless,
    ExternalName(Box<str>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    pub name: Box<str>,
    pub protocol: Box<str>,
    /// -1 is CoreDNS's sentinel for an object without ports: addresses answer, SRV skips it.
    pub port: i32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub namespace: Arc<str>,
    pub name: Arc<str>,
    pub kind: ServiceKind,
    /// Cluster IPs, primary first (empty for headless and ExternalName services).
    pub ips: Vec<IpAddr>,
    pub ports: Vec<Port>,
    pub has_selector: bool,
    /// `spec.externalIPs` then `status.loadBalancer.ingress` (IP, else hostname), for
    /// `k8s_external`.
    pub external: Vec<ExternalHost>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExternalHost {
    Ip(IpAddr),
    /// A load balancer known by name (cloud load balancers): answered with a CNAME.
    Name(Box<str>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub addresses: Vec<IpAddr>,
    pub hostname: Option<Box<str>>,
    /// `targetRef` name when it is a pod with a name shorter than 64 characters.
    pub pod_name: Option<Box<str>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slice {
    pub namespace: Arc<str>,
    pub name: Arc<str>,
    pub service: Arc<str>,
    pub ports: Vec<Port>,
    /// Ready endpoints only (a missing `ready` condition counts as ready, as in CoreDNS).
    pub endpoints: Vec<Endpoint>,
    pub trigger_time: Option<SystemTime>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pod {
    pub namespace: Arc<str>,
    pub name: Arc<str>,
    pub ip: Option<IpAddr>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Namespace {
    pub name: Arc<str>,
}

/// One projected object of any watched kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Object {
    Service(Service),
    Slice(Slice),
    Namespace(Namespace),
    Pod(Pod),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Service = 0,
    Slice = 1,
    Namespace = 2,
    Pod = 3,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Service, Kind::Slice, Kind::Namespace, Kind::Pod];
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Service => "services",
            Kind::Slice => "endpointslices",
            Kind::Namespace => "namespaces",
            Kind::Pod => "pods",
        }
    }
}

impl Object {
    pub fn kind(&self) -> Kind {
        match self {
            Object::Service(_) => Kind::Service,
            Object::Slice(_) => Kind::Slice,
            Object::Namespace(_) => Kind::Namespace,
            Object::Pod(_) => Kind::Pod,
        }
    }
    /// (namespace, name); namespaces have an empty namespace.
    pub fn key(&self) -> (Arc<str>, Arc<str>) {
        match self {
            Object::Service(s) => (s.namespace.clone(), s.name.clone()),
            Object::Slice(s) => (s.namespace.clone(), s.name.clone()),
            Object::Namespace(n) => (Arc::from(""), n.name.clone()),
            Object::Pod(p) => (p.namespace.clone(), p.name.clone()),
        }
    }
}

fn meta_names(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<(Arc<str>, Arc<str>)> {
    let name = meta.name.as_deref()?;
    Some((Arc::from(meta.namespace.as_deref().unwrap_or("")), Arc::from(name)))
}

/// Parses an IP the way the API server writes it; anything else (empty, `None`) is skipped.
fn ip(s: &str) -> Option<IpAddr> {
    s.parse().ok()
}

/// (name, protocol, port) of Service or EndpointSlice ports; an object without ports gets
/// CoreDNS's sentinel port -1.
fn ports<'a>(list: impl Iterator<Item = (Option<&'a str>, Option<&'a str>, Option<i32>)>) -> Vec<Port> {
    let mut out: Vec<Port> = list
        .map(|(name, protocol, port)| Port {
            name: name.unwrap_or("").into(),
            protocol: protocol.unwrap_or("TCP").into(),
            port: port.unwrap_or(-1),
        })
        .collect();
    if out.is_empty() {
        out.push(Port { name: "".into(), protocol: "".into(), port: -1 });
    }
    out
}

pub fn service(svc: &core::Service) -> Option<Service> {
    let (namespace, name) = meta_names(&svc.metadata)?;
    let spec = svc.spec.as_ref()?;
    let kind = if spec.type_.as_deref() == Some("ExternalName") {
        ServiceKind::ExternalName(spec.external_name.as_deref().unwrap_or("").into())
    } else if spec.cluster_ip.as_deref() == Some("None") {
        ServiceKind::Headless
    } else {
        ServiceKind::ClusterIp
    };
    let mut ips = Vec::new();
    if kind == ServiceKind::ClusterIp {
        match &spec.cluster_ips {
            Some(list) if !list.is_empty() => ips.extend(list.iter().filter_map(|s| ip(s))),
            _ => ips.extend(spec.cluster_ip.as_deref().and_then(ip)),
        }
    }
    let ports = ports(spec.ports.iter().flatten().map(|p| (p.name.as_deref(), p.protocol.as_deref(), Some(p.port))));
    let has_selector = spec.selector.as_ref().is_some_and(|s| !s.is_empty());
    let mut external: Vec<ExternalHost> =
        spec.external_ips.iter().flatten().filter_map(|s| ip(s)).map(ExternalHost::Ip).collect();
    let ingress = svc.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|lb| lb.ingress.as_ref());
    for i in ingress.into_iter().flatten() {
        match (i.ip.as_deref().and_then(ip), i.hostname.as_deref().filter(|h| !h.is_empty())) {
            (Some(addr), _) => external.push(ExternalHost::Ip(addr)),
            (None, Some(host)) => external.push(ExternalHost::Name(host.into())),
            (None, None) => {}
        }
    }
    Some(Service { namespace, name, kind, ips, ports, has_selector, external })
}

pub fn slice(es: &discovery::EndpointSlice) -> Option<Slice> {
    let (namespace, name) = meta_names(&es.metadata)?;
    // FQDN slices are deprecated and carry no addresses DNS can serve.
    if es.address_type != "IPv4" && es.address_type != "IPv6" {
        return None;
    }
    let service: Arc<str> = Arc::from(es.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?.as_str());
    let ports = ports(es.ports.iter().flatten().map(|p| (p.name.as_deref(), p.protocol.as_deref(), p.port)));
    let endpoints = es
        .endpoints
        .iter()
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
        .map(|e| Endpoint {
            addresses: e.addresses.iter().filter_map(|a| ip(a)).collect(),
            hostname: e.hostname.as_deref().filter(|h| !h.is_empty()).map(Into::into),
            pod_name: e
                .target_ref
                .as_ref()
                .filter(|r| r.kind.as_deref().is_none_or(|k| k == "Pod"))
                .and_then(|r| r.name.as_deref())
                .filter(|n| !n.is_empty() && n.len() < 64)
                .map(Into::into),
        })
        .filter(|e| !e.addresses.is_empty())
        .collect();
    let trigger_time =
        es.metadata.annotations.as_ref().and_then(|a| a.get(TRIGGER_TIME_ANNOTATION)).and_then(|t| parse_rfc3339(t));
    Some(Slice { namespace, name, service, ports, endpoints, trigger_time })
}

pub fn pod(p: &core::Pod) -> Option<Pod> {
    let (namespace, name) = meta_names(&p.metadata)?;
    let ip = p.status.as_ref().and_then(|s| s.pod_ip.as_deref()).and_then(ip);
    Some(Pod { namespace, name, ip })
}

/// Pods that are finished or being deleted no longer own their IP (CoreDNS #2842).
pub fn pod_is_live(p: &core::Pod) -> bool {
    let phase = p.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("");
    p.metadata.deletion_timestamp.is_none() && !matches!(phase, "Succeeded" | "Failed" | "Unknown")
}

pub fn namespace(n: &core::Namespace) -> Option<Namespace> {
    Some(Namespace { name: Arc::from(n.metadata.name.as_deref()?) })
}

/// RFC 3339 (`2026-01-02T03:04:05.123456789Z` or with an offset) to a system time.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    s.parse::<jiff::Timestamp>().ok().map(SystemTime::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn rfc3339() {
        let t = parse_rfc3339("2026-11-21T10:00:00.5Z").unwrap();
        assert_eq!(t.duration_since(UNIX_EPOCH).unwrap(), Duration::from_millis(1_795_255_200_500));
        let t2 = parse_rfc3339("2026-11-21T11:00:00.5+01:00").unwrap();
        assert_eq!(t, t2);
        assert!(parse_rfc3339("yesterday").is_none());
        assert!(parse_rfc3339("2026-13-21T10:00:00Z").is_none());
    }
}
