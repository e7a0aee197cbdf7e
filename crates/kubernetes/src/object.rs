//! Projections: the few fields of each API object that DNS answers need (read straight from the
//! API's JSON by `decode`), so memory follows the DNS data, not the API's. Lists are boxed
//! slices: exact-size allocations, no spare capacity.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

/// The EndpointSlice label naming its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// When the endpoints controller saw the change that produced this slice (programming latency).
pub const TRIGGER_TIME_ANNOTATION: &str = "endpoints.kubernetes.io/last-change-trigger-time";

impl Endpoint {
    pub fn new(addresses: Box<[IpAddr]>, hostname: Option<Box<str>>, pod_name: Option<Box<str>>) -> Endpoint {
        let names = (hostname.is_some() || pod_name.is_some()).then(|| Box::new(EndpointNames { hostname, pod_name }));
        Endpoint { addresses, names }
    }
    pub fn hostname(&self) -> Option<&str> {
        self.names.as_ref()?.hostname.as_deref()
    }
    pub fn pod_name(&self) -> Option<&str> {
        self.names.as_ref()?.pod_name.as_deref()
    }
}

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
    pub ips: Box<[IpAddr]>,
    pub ports: Box<[Port]>,
    pub has_selector: bool,
    /// `spec.externalIPs` then `status.loadBalancer.ingress` (IP, else hostname), for
    /// `k8s_external`.
    pub external: Box<[ExternalHost]>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExternalHost {
    Ip(IpAddr),
    /// A load balancer known by name (cloud load balancers): answered with a CNAME.
    Name(Box<str>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub addresses: Box<[IpAddr]>,
    /// Hostname and pod name, boxed together: both are rare (StatefulSet pods;
    /// `endpoint_pod_names`), and one pointer per endpoint is cheaper than two empty strings.
    pub names: Option<Box<EndpointNames>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointNames {
    pub hostname: Option<Box<str>>,
    /// `targetRef` name when it is a pod with a name shorter than 64 characters.
    pub pod_name: Option<Box<str>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slice {
    pub namespace: Arc<str>,
    pub name: Arc<str>,
    pub service: Arc<str>,
    pub ports: Box<[Port]>,
    /// Ready endpoints only (a missing `ready` condition counts as ready, as in CoreDNS).
    pub endpoints: Box<[Endpoint]>,
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
