//! The answer engine: a query name and type against the index, computed synchronously, with
//! CoreDNS's rules for which records exist and when a name is NXDOMAIN or NODATA
//! (`plugin/kubernetes` `parse.go`, `kubernetes.go`, `reverse.go`, `ns.go` and
//! `plugin/backend_lookup.go`).

use crate::index::{Index, OwnerKind};
use crate::object::{Port, ServiceKind};
use kdns_wire::{rtype, Name, RData, Record};
use std::collections::HashSet;
use std::net::IpAddr;

/// Schema version of the Kubernetes DNS specification we implement.
pub const DNS_SCHEMA_VERSION: &str = "1.1.0";
const DNS_VERSION_TTL: u32 = 28800;
/// CoreDNS stops following CNAMEs once the chain is longer than this (`maxCnameChainLength`).
const MAX_CNAME_CHAIN: usize = 10;

mod external;
pub use external::ExternalAnswer;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodMode {
    Disabled,
    Insecure,
    Verified,
}

/// The plugin options the answers depend on.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The zone PTR targets are built in (the first non-reverse zone), e.g. `cluster.local.`.
    pub primary: String,
    pub ttl: u32,
    pub pods: PodMode,
    pub endpoint_pod_names: bool,
    /// `namespaces`: only these are exposed (empty: all).
    pub namespaces: Vec<String>,
    pub ignore_empty_service: bool,
    /// This server's own addresses, for NS answers and `ns.dns.<zone>`.
    pub local_ips: Vec<IpAddr>,
}

/// An ExternalName target outside our zones: the caller resolves it elsewhere and appends the
/// answers after the CNAME that is already in the answer section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chase {
    pub target: Name,
    pub qtype: u16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Records to answer with; empty is NODATA.
    Answer { answer: Vec<Record>, additional: Vec<Record>, chase: Option<Chase> },
    /// NXDOMAIN-class: nothing with this name (fallthrough and the unsynced SERVFAIL apply).
    NameError,
    /// Zone transfers are not served by this plugin.
    Refused,
}

impl Outcome {
    fn records(answer: Vec<Record>) -> Outcome {
        Outcome::Answer { answer, additional: Vec::new(), chase: None }
    }
    fn nodata() -> Outcome {
        Outcome::records(Vec::new())
    }
}

#[derive(Clone, Debug)]
enum Host {
    Ip(IpAddr),
    Name(String),
}

/// One backend of a query (CoreDNS's `msg.Service`): an address or an external name, a port, and
/// the domain an SRV record points at.
#[derive(Clone, Debug)]
struct Entry {
    host: Host,
    port: i32,
    target: String,
}

struct NotFound;

/// The zone part of `qname` in the case it was asked in.
pub fn asked_zone(qname: &Name, zone: &Name) -> Name {
    qname.suffix(zone.label_count())
}

/// Lower-cased labels of `qname` below `zone`, left to right.
fn relative_labels(qname: &Name, zone: &Name) -> Vec<String> {
    let n = qname.label_count() - zone.label_count();
    qname.labels().take(n).map(|l| String::from_utf8_lossy(l).to_ascii_lowercase()).collect()
}

pub fn is_reverse(zone: &Name) -> bool {
    use kdns_wire::name::is_subdomain_wire;
    let wire = zone.as_wire();
    is_subdomain_wire(wire, b"\x07in-addr\x04arpa\x00") || is_subdomain_wire(wire, b"\x03ip6\x04arpa\x00")
}

/// The IP a reverse name stands for (all four or all 32 labels), if any.
pub fn reverse_ip(qname: &Name) -> Option<IpAddr> {
    let labels: Vec<String> = qname.labels().map(|l| String::from_utf8_lossy(l).to_ascii_lowercase()).collect();
    let n = labels.len();
    if n == 6 && labels[4] == "in-addr" && labels[5] == "arpa" {
        let parts: Vec<&str> = labels[..4].iter().rev().map(String::as_str).collect();
        return parts.join(".").parse().ok();
    }
    if n == 34 && labels[32] == "ip6" && labels[33] == "arpa" {
        let mut hex = String::with_capacity(39);
        for (i, l) in labels[..32].iter().rev().enumerate() {
            if l.len() != 1 || !l.as_bytes()[0].is_ascii_hexdigit() {
                return None;
            }
            if i > 0 && i % 4 == 0 {
                hex.push(':');
            }
            hex.push_str(l);
        }
        return hex.parse().ok();
    }
    None
}

/// CoreDNS's endpoint name for an address without hostname: the IP with `.`/`:` as `-`.
pub fn dashed(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => {
            let mut s = v6.to_string().replace(':', "-");
            if s.ends_with('-') {
                s.push('0');
            }
            if s.starts_with('-') {
                s.insert(0, '0');
            }
            s
        }
    }
}

/// The IP a `pod` label names: three dashes and no `--` is IPv4, anything else IPv6.
fn pod_ip(label: &str) -> Option<IpAddr> {
    let text = if label.matches('-').count() == 3 && !label.contains("--") {
        label.replace('-', ".")
    } else {
        label.replace('-', ":")
    };
    text.parse().ok()
}

fn strip_underscore(s: &str) -> &str {
    s.strip_prefix('_').unwrap_or(s)
}

fn port_matches(port: &str, proto: &str, p: &Port) -> bool {
    (port.is_empty() || port.eq_ignore_ascii_case(&p.name))
        && (proto.is_empty() || proto.eq_ignore_ascii_case(&p.protocol))
}

fn name(text: &str) -> Option<Name> {
    Name::from_ascii(text).ok()
}

fn address_record(owner: Name, ttl: u32, ip: IpAddr) -> Record {
    match ip {
        IpAddr::V4(v4) => Record::new(owner, ttl, RData::A(v4)),
        IpAddr::V6(v6) => Record::new(owner, ttl, RData::Aaaa(v6)),
    }
}

fn family_matches(qtype: u16, ip: &IpAddr) -> bool {
    matches!((qtype, ip), (rtype::A, IpAddr::V4(_)) | (rtype::AAAA, IpAddr::V6(_)))
}

pub struct Engine<'a> {
    pub index: &'a Index,
    pub settings: &'a Settings,
}

impl Engine<'_> {
    /// The SOA CoreDNS puts at the apex and in negative answers.
    pub fn soa(&self, zone: &Name) -> Record {
        let z = zone.to_string();
        let mname = name(&format!("ns.dns.{z}")).unwrap_or_else(Name::root);
        let rname = name(&format!("hostmaster.{z}")).unwrap_or_else(Name::root);
        let ttl = self.settings.ttl;
        Record::new(
            zone.clone(),
            ttl.min(300),
            RData::Soa {
                mname,
                rname,
                serial: self.index.serial(),
                refresh: 7200,
                retry: 1800,
                expire: 86400,
                minimum: ttl,
            },
        )
    }

    /// Answers `qname`/`qtype` inside `zone` (one of the plugin's zones, lower case).
    pub fn lookup(&self, zone: &Name, qname: &Name, qtype: u16) -> Outcome {
        self.lookup_chain(zone, qname, qtype, 0)
    }

    fn lookup_chain(&self, zone: &Name, qname: &Name, qtype: u16, depth: usize) -> Outcome {
        let labels = relative_labels(qname, zone);
        let apex = labels.is_empty();
        // CoreDNS keeps the zone part of the query in the case it was asked in: SOA owners and
        // the targets it builds (SRV, pod names) carry it, and a few of its checks compare that
        // asked-case zone with the lower-cased query name, so they only match a lower-case zone.
        let asked = asked_zone(qname, zone);
        let lower_zone = asked.as_wire() == zone.as_wire();
        let default_ns = labels == ["ns", "dns"] && lower_zone;
        let ttl = self.settings.ttl;
        match qtype {
            rtype::AXFR | rtype::IXFR => Outcome::Refused,
            rtype::SOA if apex => Outcome::records(vec![self.soa(&asked)]),
            // Below the apex SOA is NODATA whether the name exists or not (CoreDNS's handler).
            rtype::SOA => Outcome::nodata(),
            rtype::NS if apex && lower_zone => self.ns(zone, qname),
            rtype::A | rtype::AAAA if default_ns => Outcome::records(
                self.ns_addresses(zone)
                    .into_iter()
                    .filter(|(_, ip)| family_matches(qtype, ip))
                    .map(|(_, ip)| address_record(qname.clone(), ttl, ip))
                    .collect(),
            ),
            rtype::A | rtype::AAAA => match self.find(&asked, &labels) {
                Err(NotFound) => Outcome::NameError,
                Ok(entries) => self.addresses(zone, qname, qtype, entries, depth),
            },
            // TXT only ever answers `dns-version`; for other names it tells an existing name
            // (NODATA) from everything else, and a name that exists without backends (the
            // apex, `svc.<zone>`, `<ns>.svc.<zone>`) counts as missing.
            rtype::TXT if labels == ["dns-version"] => Outcome::records(vec![Record::new(
                qname.clone(),
                DNS_VERSION_TTL,
                RData::Txt(vec![DNS_SCHEMA_VERSION.as_bytes().to_vec()]),
            )]),
            rtype::TXT => match self.find(&asked, &labels) {
                Ok(entries) if !entries.is_empty() => Outcome::nodata(),
                _ => Outcome::NameError,
            },
            rtype::PTR => self.ptr(&asked, zone, qname),
            _ if default_ns => Outcome::nodata(),
            // CNAME: the first backend, when it is a name (an ExternalName service).
            rtype::CNAME => match self.find(&asked, &labels) {
                Err(NotFound) => Outcome::NameError,
                Ok(entries) => match entries.into_iter().next().map(|e| e.host) {
                    Some(Host::Name(target)) => match name(&target) {
                        Some(target) => Outcome::records(vec![Record::new(qname.clone(), ttl, RData::Cname(target))]),
                        None => Outcome::nodata(),
                    },
                    _ => Outcome::nodata(),
                },
            },
            rtype::SRV => match self.find(&asked, &labels) {
                Err(NotFound) => Outcome::NameError,
                Ok(entries) => self.srv(qname, entries),
            },
            // Every other type (MX included: no backend here is a mail host): the name's
            // existence decides between NODATA and NXDOMAIN.
            _ => match self.find(&asked, &labels) {
                Err(NotFound) => Outcome::NameError,
                Ok(_) => Outcome::nodata(),
            },
        }
    }

    fn exposed(&self, ns: &str) -> bool {
        let configured = self.settings.namespaces.is_empty() || self.settings.namespaces.iter().any(|n| n == ns);
        configured && self.index.namespace_exists(ns)
    }

    /// CoreDNS's `Records`: the backends a name stands for. `Ok(empty)` is NODATA. `zone` is the
    /// query's zone in the case it was asked in (targets are built from it).
    fn find(&self, zone: &Name, labels: &[String]) -> Result<Vec<Entry>, NotFound> {
        if labels.is_empty() || labels == ["svc"] || labels == ["pod"] {
            return Ok(Vec::new());
        }
        if is_reverse(zone) {
            return Err(NotFound);
        }
        let n = labels.len();
        let kind = labels[n - 1].as_str();
        if kind != "svc" && kind != "pod" {
            return Err(NotFound);
        }
        let ns = labels[n - 2].as_str();
        let service = if n >= 3 { labels[n - 3].as_str() } else { "" };
        let (endpoint, port, proto) = match n {
            0..=3 => ("", "", ""),
            4 => (labels[0].as_str(), "", ""),
            5 => ("", strip_underscore(&labels[0]), strip_underscore(&labels[1])),
            _ => return Err(NotFound),
        };
        if !self.exposed(ns) {
            return Err(NotFound);
        }
        if kind == "pod" {
            // Endpoint and port labels in front of a pod name are ignored, as in CoreDNS.
            if self.settings.pods == PodMode::Disabled {
                return Err(NotFound);
            }
            if service.is_empty() {
                return Ok(Vec::new());
            }
            return self.find_pod(zone, ns, service);
        }
        if service.is_empty() {
            return Ok(Vec::new());
        }
        self.find_service(zone, ns, service, endpoint, port, proto)
    }

    /// A pod name's backend: its address, port 0, and the pod name itself as the SRV target.
    fn find_pod(&self, zone: &Name, ns: &str, label: &str) -> Result<Vec<Entry>, NotFound> {
        let ip = pod_ip(label).ok_or(NotFound)?;
        let entry = || Entry { host: Host::Ip(ip), port: 0, target: format!("{label}.{ns}.pod.{zone}") };
        if self.settings.pods == PodMode::Verified {
            let count = self.index.pods_with_ip(&ip).iter().filter(|(pns, _)| &**pns == ns).count();
            return if count == 0 { Err(NotFound) } else { Ok((0..count).map(|_| entry()).collect()) };
        }
        Ok(vec![entry()])
    }

    fn endpoint_name(&self, ep: &crate::object::Endpoint, ip: &IpAddr) -> String {
        if let Some(h) = ep.hostname() {
            return h.to_string();
        }
        if self.settings.endpoint_pod_names {
            if let Some(p) = ep.pod_name() {
                return p.to_string();
            }
        }
        dashed(ip)
    }

    fn find_service(
        &self,
        zone: &Name,
        ns: &str,
        service: &str,
        endpoint: &str,
        port: &str,
        proto: &str,
    ) -> Result<Vec<Entry>, NotFound> {
        let entry = self.index.service_entry(ns, service).ok_or(NotFound)?;
        let svc = entry.service.as_ref().ok_or(NotFound)?;
        let svc_domain = format!("{}.{}.svc.{}", svc.name, svc.namespace, zone);
        if self.settings.ignore_empty_service
            && svc.kind == ServiceKind::ClusterIp
            && entry.slices.iter().all(|s| s.endpoints.iter().all(|e| e.addresses.is_empty()))
        {
            return Err(NotFound);
        }
        let mut out = Vec::new();
        let mut found = false;
        match &svc.kind {
            ServiceKind::ExternalName(target) => {
                if !endpoint.is_empty() || !port.is_empty() || !proto.is_empty() || target.parse::<IpAddr>().is_ok() {
                    return Err(NotFound);
                }
                let mut t = target.to_string();
                if !t.ends_with('.') {
                    t.push('.');
                }
                out.push(Entry { host: Host::Name(t), port: 0, target: String::new() });
                found = true;
            }
            kind if *kind == ServiceKind::Headless || !endpoint.is_empty() => {
                for slice in &entry.slices {
                    for ep in &slice.endpoints {
                        for ip in &ep.addresses {
                            let ep_name = self.endpoint_name(ep, ip);
                            if !endpoint.is_empty() && !endpoint.eq_ignore_ascii_case(&ep_name) {
                                continue;
                            }
                            for p in slice.ports.iter().filter(|p| port_matches(port, proto, p)) {
                                found = true;
                                out.push(Entry {
                                    host: Host::Ip(*ip),
                                    port: p.port,
                                    target: format!("{ep_name}.{svc_domain}"),
                                });
                            }
                        }
                    }
                }
            }
            _ => {
                for p in svc.ports.iter().filter(|p| port_matches(port, proto, p)) {
                    found = true;
                    for ip in &svc.ips {
                        out.push(Entry { host: Host::Ip(*ip), port: p.port, target: svc_domain.clone() });
                    }
                }
            }
        }
        if found {
            Ok(out)
        } else {
            Err(NotFound)
        }
    }

    /// A, AAAA and TXT from backends: addresses of the asked family (deduplicated), CNAMEs for
    /// external names, followed inside our zone or handed back as a [`Chase`].
    fn addresses(&self, zone: &Name, qname: &Name, qtype: u16, entries: Vec<Entry>, depth: usize) -> Outcome {
        let ttl = self.settings.ttl;
        let mut answer = Vec::new();
        let mut seen = HashSet::new();
        let mut chase = None;
        for e in entries {
            match e.host {
                Host::Ip(ip) if family_matches(qtype, &ip) && seen.insert(ip) => {
                    answer.push(address_record(qname.clone(), ttl, ip));
                }
                Host::Ip(_) => {}
                Host::Name(target) => {
                    let Some(target) = name(&target) else { continue };
                    // A target at or below the query name would loop (CoreDNS's "x CNAME x").
                    if target.is_subdomain_of(qname) || depth > MAX_CNAME_CHAIN {
                        continue;
                    }
                    let cname = Record::new(qname.clone(), ttl, RData::Cname(target.clone()));
                    if target.is_subdomain_of(zone) {
                        if let Outcome::Answer { answer: next, chase: next_chase, .. } =
                            self.lookup_chain(zone, &target, qtype, depth + 1)
                        {
                            if !next.is_empty() {
                                answer.push(cname);
                                answer.extend(next);
                                chase = next_chase;
                            }
                        }
                    } else {
                        answer.push(cname);
                        chase = Some(Chase { target, qtype });
                    }
                }
            }
        }
        Outcome::Answer { answer, additional: Vec::new(), chase }
    }

    /// SRV as CoreDNS builds it: priority 0, weight ⌊100/n⌋ over all backends (at least 1),
    /// records deduplicated on (target, port), one address per (target, IP) in additional.
    /// ExternalName services have no SRV records (CoreDNS drops name backends for SRV).
    fn srv(&self, qname: &Name, mut entries: Vec<Entry>) -> Outcome {
        let ttl = self.settings.ttl;
        entries.retain(|e| matches!(e.host, Host::Ip(_)));
        // The same float steps as CoreDNS (100 / total weight × 100, floored).
        let weight = ((100.0 / (100.0 * entries.len().max(1) as f64)) * 100.0).floor().max(1.0) as u16;
        let mut answer = Vec::new();
        let mut additional = Vec::new();
        let mut seen_srv = HashSet::new();
        let mut seen_addr = HashSet::new();
        for e in entries {
            if e.port < 0 {
                continue;
            }
            let port = e.port as u16;
            match e.host {
                Host::Ip(ip) => {
                    let Some(target) = name(&e.target) else { continue };
                    if seen_srv.insert((e.target.clone(), port)) {
                        answer.push(Record::new(
                            qname.clone(),
                            ttl,
                            RData::Srv { priority: 0, weight, port, target: target.clone() },
                        ));
                    }
                    if seen_addr.insert((e.target, ip)) {
                        additional.push(address_record(target, ttl, ip));
                    }
                }
                Host::Name(_) => {}
            }
        }
        Outcome::Answer { answer, additional, chase: None }
    }

    /// PTR: a cluster IP names its service (first match only); otherwise every endpoint with
    /// the address names `<endpoint>.<service>`; names that are not a full reverse address
    /// exist only as the apex.
    fn ptr(&self, asked: &Name, zone: &Name, qname: &Name) -> Outcome {
        let Some(ip) = reverse_ip(qname) else {
            let labels = relative_labels(qname, zone);
            return match self.find(asked, &labels) {
                Err(NotFound) => Outcome::NameError,
                Ok(_) => Outcome::nodata(),
            };
        };
        let ttl = self.settings.ttl;
        let primary = &self.settings.primary;
        let visible = |ns: &str| self.settings.namespaces.is_empty() || self.exposed(ns);
        let owners = self.index.ip_owners(&ip);
        for o in owners {
            if o.kind == OwnerKind::Service {
                let (ns, svc) = (&o.ns, &o.name);
                if visible(ns) {
                    if let Some(target) = name(&format!("{svc}.{ns}.svc.{primary}")) {
                        return Outcome::records(vec![Record::new(qname.clone(), ttl, RData::Ptr(target))]);
                    }
                }
            }
        }
        let mut answer = Vec::new();
        for o in owners {
            if o.kind != OwnerKind::Endpoint {
                continue;
            }
            let ns = &o.ns;
            let Some(slice) = self.index.slice(ns, &o.name).filter(|_| visible(ns)) else { continue };
            for ep in slice.endpoints.iter().filter(|e| e.addresses.contains(&ip)) {
                let text = format!("{}.{}.{}.svc.{primary}", self.endpoint_name(ep, &ip), slice.service, ns);
                if let Some(target) = name(&text) {
                    let rr = Record::new(qname.clone(), ttl, RData::Ptr(target));
                    if !answer.contains(&rr) {
                        answer.push(rr);
                    }
                }
            }
        }
        if answer.is_empty() {
            Outcome::NameError
        } else {
            Outcome::records(answer)
        }
    }

    /// The slices whose endpoints are this server's own addresses, with their services (CoreDNS's
    /// `nsAddrs`: the Services in front of this server); `None` when no local address is an
    /// endpoint (a server outside the cluster).
    fn services_in_front(&self) -> Option<Vec<(&crate::object::Slice, &crate::object::Service)>> {
        let mut found = false;
        let mut out = Vec::new();
        for local in &self.settings.local_ips {
            for o in self.index.ip_owners(local) {
                if o.kind != OwnerKind::Endpoint {
                    continue;
                }
                let ns = &o.ns;
                let Some(slice) = self.index.slice(ns, &o.name) else { continue };
                found = true;
                if let Some(svc) = self.index.service_entry(ns, &slice.service).and_then(|e| e.service.as_deref()) {
                    out.push((slice, svc));
                }
            }
        }
        found.then_some(out)
    }

    /// (name, address) pairs for NS answers: the services whose endpoints are this server's own
    /// addresses, or `ns.dns.<zone>` with the local addresses when none is found.
    fn ns_addresses(&self, zone: &Name) -> Vec<(String, IpAddr)> {
        let Some(fronting) = self.services_in_front() else {
            return self.settings.local_ips.iter().map(|ip| (format!("ns.dns.{zone}"), *ip)).collect();
        };
        let mut out = Vec::new();
        for (slice, svc) in fronting {
            let svc_name = format!("{}.{}.svc.{}", svc.name, svc.namespace, zone);
            if svc.kind == ServiceKind::Headless {
                for ep in &slice.endpoints {
                    for ip in &ep.addresses {
                        out.push((format!("{}.{svc_name}", self.endpoint_name(ep, ip)), *ip));
                    }
                }
            } else {
                out.extend(svc.ips.iter().map(|ip| (svc_name.clone(), *ip)));
            }
        }
        out
    }

    fn ns(&self, zone: &Name, qname: &Name) -> Outcome {
        let ttl = self.settings.ttl;
        let mut answer = Vec::new();
        let mut additional = Vec::new();
        for (target, ip) in self.ns_addresses(zone) {
            let Some(target) = name(&target) else { continue };
            let ns = Record::new(qname.clone(), ttl, RData::Ns(target.clone()));
            if !answer.contains(&ns) {
                answer.push(ns);
            }
            additional.push(address_record(target, ttl, ip));
        }
        Outcome::Answer { answer, additional, chase: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::{Endpoint, Namespace, Object, Port, Service, Slice};
    use std::sync::Arc;

    fn port(name: &str, p: i32) -> Port {
        Port { name: name.into(), protocol: "TCP".into(), port: p }
    }

    fn index() -> Index {
        let mut ix = Index::new(true, false);
        for k in crate::object::Kind::ALL {
            ix.init(k);
        }
        ix.upsert(Object::Namespace(Namespace { name: Arc::from("kube-system") }));
        ix.upsert(Object::Service(Service {
            namespace: Arc::from("kube-system"),
            name: Arc::from("kube-dns"),
            kind: ServiceKind::ClusterIp,
            ips: vec!["10.96.0.10".parse().unwrap()].into(),
            ports: vec![port("dns", 53)].into(),
            has_selector: true,
            external: Vec::new().into(),
        }));
        ix.upsert(Object::Slice(Slice {
            namespace: Arc::from("kube-system"),
            name: Arc::from("kube-dns-1"),
            service: Arc::from("kube-dns"),
            ports: vec![port("dns", 53)].into(),
            endpoints: vec![Endpoint::new(vec!["192.0.2.53".parse().unwrap()].into(), None, None)].into(),
            trigger_time: None,
        }));
        for k in crate::object::Kind::ALL {
            ix.init_done(k);
        }
        ix
    }

    fn settings(local: &str) -> Settings {
        Settings {
            primary: "cluster.local.".into(),
            ttl: 5,
            pods: PodMode::Disabled,
            endpoint_pod_names: false,
            namespaces: vec![],
            ignore_empty_service: false,
            local_ips: vec![local.parse().unwrap()],
        }
    }

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    #[test]
    fn ns_names_the_service_whose_endpoint_is_this_server() {
        let ix = index();
        let s = settings("192.0.2.53");
        let e = Engine { index: &ix, settings: &s };
        let Outcome::Answer { answer, additional, .. } =
            e.lookup(&n("cluster.local."), &n("cluster.local."), rtype::NS)
        else {
            panic!("NS answers");
        };
        assert_eq!(
            answer,
            [Record::new(n("cluster.local."), 5, RData::Ns(n("kube-dns.kube-system.svc.cluster.local.")))]
        );
        assert_eq!(
            additional,
            [Record::new(n("kube-dns.kube-system.svc.cluster.local."), 5, RData::A("10.96.0.10".parse().unwrap()))]
        );
        // Not an endpoint of any service: ns.dns.<zone> with the local address, also for A.
        let s = settings("198.51.100.7");
        let e = Engine { index: &ix, settings: &s };
        let Outcome::Answer { answer, .. } = e.lookup(&n("cluster.local."), &n("cluster.local."), rtype::NS) else {
            panic!("NS answers");
        };
        assert_eq!(answer[0].data, RData::Ns(n("ns.dns.cluster.local.")));
        let Outcome::Answer { answer, .. } = e.lookup(&n("cluster.local."), &n("ns.dns.cluster.local."), rtype::A)
        else {
            panic!("A answers");
        };
        assert_eq!(answer[0].data, RData::A("198.51.100.7".parse().unwrap()));
    }

    /// The index above plus an ExternalName service and a headless service without endpoints.
    fn sweep_index() -> Index {
        let mut ix = index();
        ix.init(crate::object::Kind::Service);
        for svc in [
            Service {
                namespace: Arc::from("kube-system"),
                name: Arc::from("kube-dns"),
                kind: ServiceKind::ClusterIp,
                ips: vec!["10.96.0.10".parse().unwrap()].into(),
                ports: vec![port("dns", 53)].into(),
                has_selector: true,
                external: Vec::new().into(),
            },
            Service {
                namespace: Arc::from("kube-system"),
                name: Arc::from("ext"),
                kind: ServiceKind::ExternalName("example.org".into()),
                ips: vec![].into(),
                ports: vec![].into(),
                has_selector: false,
                external: Vec::new().into(),
            },
            Service {
                namespace: Arc::from("kube-system"),
                name: Arc::from("empty"),
                kind: ServiceKind::Headless,
                ips: vec![].into(),
                ports: vec![].into(),
                has_selector: true,
                external: Vec::new().into(),
            },
        ] {
            ix.upsert(Object::Service(svc));
        }
        ix.init_done(crate::object::Kind::Service);
        ix
    }

    /// What CoreDNS 1.14.7's kubernetes handler answers, per name kind and query type: `NX`,
    /// `NODATA`, or the answer types in order (its `ServeDNS` type switch, `Services`'s TXT and
    /// SRV rules, the fake A lookup for other types).
    #[test]
    fn every_query_type_against_every_name_kind() {
        let ix = sweep_index();
        let mut s = settings("198.51.100.7");
        s.pods = PodMode::Insecure;
        let e = Engine { index: &ix, settings: &s };
        let zone = n("cluster.local.");
        let show = |o: Outcome| match o {
            Outcome::NameError => "NX".to_string(),
            Outcome::Refused => "REFUSED".to_string(),
            Outcome::Answer { answer, .. } if answer.is_empty() => "NODATA".to_string(),
            Outcome::Answer { answer, .. } => {
                answer.iter().map(|r| kdns_wire::rtype::name(r.rtype).to_string()).collect::<Vec<_>>().join(",")
            }
        };
        let cases: &[(&str, &[(u16, &str)])] = &[
            (
                "ext.kube-system.svc.cluster.local.",
                &[
                    (rtype::CNAME, "CNAME"),
                    (rtype::A, "CNAME"),
                    (rtype::TXT, "NODATA"),
                    (rtype::SRV, "NODATA"),
                    (rtype::MX, "NODATA"),
                    (rtype::HINFO, "NODATA"),
                    (rtype::SOA, "NODATA"),
                    (rtype::NS, "NODATA"),
                    (rtype::PTR, "NODATA"),
                ],
            ),
            (
                "kube-dns.kube-system.svc.cluster.local.",
                &[(rtype::CNAME, "NODATA"), (rtype::TXT, "NODATA"), (rtype::SRV, "SRV"), (rtype::AAAA, "NODATA")],
            ),
            (
                "1-2-3-4.kube-system.pod.cluster.local.",
                &[
                    (rtype::A, "A"),
                    (rtype::AAAA, "NODATA"),
                    (rtype::SRV, "SRV"),
                    (rtype::TXT, "NODATA"),
                    (rtype::CNAME, "NODATA"),
                    (rtype::MX, "NODATA"),
                ],
            ),
            ("x.1-2-3-4.kube-system.pod.cluster.local.", &[(rtype::A, "A")]),
            ("_a._b.1-2-3-4.kube-system.pod.cluster.local.", &[(rtype::A, "A")]),
            ("1-2-3.kube-system.pod.cluster.local.", &[(rtype::A, "NX"), (rtype::TXT, "NX")]),
            ("kube-system.pod.cluster.local.", &[(rtype::A, "NODATA"), (rtype::TXT, "NX")]),
            (
                "cluster.local.",
                &[
                    (rtype::TXT, "NX"),
                    (rtype::A, "NODATA"),
                    (rtype::CNAME, "NODATA"),
                    (rtype::SOA, "SOA"),
                    (rtype::NS, "NS"),
                    (rtype::MX, "NODATA"),
                    (rtype::PTR, "NODATA"),
                ],
            ),
            ("svc.cluster.local.", &[(rtype::TXT, "NX"), (rtype::A, "NODATA")]),
            ("kube-system.svc.cluster.local.", &[(rtype::TXT, "NX"), (rtype::A, "NODATA")]),
            ("empty.kube-system.svc.cluster.local.", &[(rtype::A, "NX"), (rtype::TXT, "NX")]),
            ("dns-version.cluster.local.", &[(rtype::TXT, "TXT"), (rtype::A, "NX")]),
            (
                "ns.dns.cluster.local.",
                &[
                    (rtype::A, "A"),
                    (rtype::AAAA, "NODATA"),
                    (rtype::TXT, "NX"),
                    (rtype::PTR, "NX"),
                    (rtype::SRV, "NODATA"),
                    (rtype::MX, "NODATA"),
                    (rtype::CNAME, "NODATA"),
                    (rtype::HINFO, "NODATA"),
                    (rtype::SOA, "NODATA"),
                ],
            ),
            // The zone in upper case: CoreDNS's ns.dns and apex NS checks compare it with the
            // lower-cased name, so they do not match.
            ("ns.dns.CLUSTER.local.", &[(rtype::A, "NX"), (rtype::HINFO, "NX")]),
            ("Cluster.Local.", &[(rtype::NS, "NODATA"), (rtype::SOA, "SOA")]),
            ("nope.kube-system.svc.cluster.local.", &[(rtype::SOA, "NODATA"), (rtype::HINFO, "NX")]),
            ("cluster.local.", &[(rtype::AXFR, "REFUSED")]),
        ];
        let mut wrong = Vec::new();
        for (qname, types) in cases {
            for (qtype, want) in *types {
                let got = show(e.lookup(&zone, &n(qname), *qtype));
                if got != *want {
                    wrong.push(format!("{qname} {}: got {got}, want {want}", kdns_wire::rtype::name(*qtype)));
                }
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn pod_srv_and_soa_keep_the_asked_case_of_the_zone() {
        let ix = sweep_index();
        let mut s = settings("198.51.100.7");
        s.pods = PodMode::Insecure;
        let e = Engine { index: &ix, settings: &s };
        let Outcome::Answer { answer, additional, .. } =
            e.lookup(&n("cluster.local."), &n("1-2-3-4.Kube-System.pod.Cluster.Local."), rtype::SRV)
        else {
            panic!("SRV answers");
        };
        let target = n("1-2-3-4.kube-system.pod.Cluster.Local.");
        assert_eq!(answer[0].data, RData::Srv { priority: 0, weight: 100, port: 0, target: target.clone() });
        assert_eq!(additional, [Record::new(target, 5, RData::A("1.2.3.4".parse().unwrap()))]);
        let Outcome::Answer { answer, .. } =
            e.lookup(&n("cluster.local."), &n("ext.kube-system.svc.cluster.local."), rtype::CNAME)
        else {
            panic!("CNAME answers");
        };
        assert_eq!(answer[0].data, RData::Cname(n("example.org.")));
        assert_eq!(asked_zone(&n("A.B.Cluster.LOCAL."), &n("cluster.local.")).to_string(), "Cluster.LOCAL.");
        // Pods disabled: `<ns>.pod.<zone>` does not exist.
        let s = settings("198.51.100.7");
        let e = Engine { index: &ix, settings: &s };
        assert_eq!(e.lookup(&n("cluster.local."), &n("kube-system.pod.cluster.local."), rtype::A), Outcome::NameError);
    }

    /// CoreDNS 1.14.7's k8s_external sets AA everywhere, apex and `dns` subdomain included; the
    /// apex records are owned by the configured zone whatever the case asked.
    #[test]
    fn external_apex_is_authoritative_and_owned_by_the_zone() {
        let ix = sweep_index();
        let s = settings("198.51.100.7");
        let e = Engine { index: &ix, settings: &s };
        let zone = n("example.com.");
        for (qname, qtype) in [("EXAMPLE.com.", rtype::SOA), ("example.com.", rtype::NS), ("example.com.", rtype::A)] {
            let a = e.external(&zone, &n(qname), qtype, "dns", false);
            assert!(a.authoritative, "{qname} {qtype}");
            if let Outcome::Answer { answer, .. } = &a.outcome {
                assert!(answer.iter().all(|r| r.name == zone), "{answer:?}");
            }
        }
        for qname in ["dns.example.com.", "ns1.dns.example.com.", "x.y.dns.example.com."] {
            assert!(e.external(&zone, &n(qname), rtype::A, "dns", false).authoritative, "{qname}");
        }
    }

    #[test]
    fn soa_fields_follow_the_ttl() {
        let ix = index();
        let mut s = settings("192.0.2.53");
        s.ttl = 3600;
        let e = Engine { index: &ix, settings: &s };
        let soa = e.soa(&n("cluster.local."));
        assert_eq!(soa.ttl, 300, "SOA TTL is min(ttl, 300)");
        let RData::Soa { minimum, refresh, retry, expire, .. } = soa.data else { panic!() };
        assert_eq!((minimum, refresh, retry, expire), (3600, 7200, 1800, 86400));
    }

    #[test]
    fn reverse_names_and_dashed_ips() {
        assert!(is_reverse(&n("in-addr.arpa.")) && is_reverse(&n("0.10.IN-ADDR.arpa.")) && is_reverse(&n("ip6.arpa.")));
        assert!(!is_reverse(&n("cluster.local.")) && !is_reverse(&n("arpa.")) && !is_reverse(&n("xin-addr.arpa.")));
        assert_eq!(reverse_ip(&n("10.0.96.10.in-addr.arpa.")), Some("10.96.0.10".parse().unwrap()));
        assert_eq!(reverse_ip(&n("0.96.10.in-addr.arpa.")), None);
        assert_eq!(dashed(&"10.244.1.5".parse().unwrap()), "10-244-1-5");
        assert_eq!(dashed(&"fd00::1".parse().unwrap()), "fd00--1");
        assert_eq!(dashed(&"fd00::".parse().unwrap()), "fd00--0");
        assert_eq!(pod_ip("fd00-10-244-1--50"), Some("fd00:10:244:1::50".parse().unwrap()));
        assert_eq!(pod_ip("1-2-3-4"), Some("1.2.3.4".parse().unwrap()));
        assert_eq!(pod_ip("1-2-3"), None);
    }

    #[test]
    fn relist_removes_what_disappeared_and_bumps_the_serial_only_on_change() {
        let mut ix = index();
        assert!(ix.synced());
        assert!(ix.service_entry("kube-system", "kube-dns").is_some());
        assert_eq!(ix.ip_owners(&"10.96.0.10".parse().unwrap()).len(), 1);
        // Identical object: nothing changes.
        let same = ix.service_entry("kube-system", "kube-dns").unwrap().service.clone().unwrap();
        assert!(!ix.upsert(Object::Service(*same)).changed);
        // A relist without the service deletes it and its IP index.
        ix.init(crate::object::Kind::Service);
        assert!(ix.init_done(crate::object::Kind::Service).changed);
        assert!(ix.service_entry("kube-system", "kube-dns").and_then(|e| e.service.as_ref()).is_none());
        assert!(ix.ip_owners(&"10.96.0.10".parse().unwrap()).is_empty());
        // The slice is still there (its own kind was not relisted).
        assert_eq!(ix.ip_owners(&"192.0.2.53".parse().unwrap()).len(), 1);
    }
}
