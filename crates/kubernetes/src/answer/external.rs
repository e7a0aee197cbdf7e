//! CoreDNS's `k8s_external` answers: `<service>.<namespace>.<zone>` (and `_port._proto.` SRV
//! names) resolve to a Service's external IPs and load-balancer ingress; with `headless`, a
//! headless Service resolves to its ready endpoints (`<endpoint>.<service>.<namespace>.<zone>`
//! to one of them). The apex has a static SOA and `ns1.<apex>.<zone>`, whose addresses are the
//! external IPs of the Services in front of this server.

use super::{family_matches, name, port_matches, strip_underscore, Engine, Entry, Host, Outcome};
use crate::object::{ExternalHost, ServiceKind};
use kdns_wire::{rcode, rtype, Name, RData, Record};
use std::net::IpAddr;

/// What an external-zone query produced.
pub struct ExternalAnswer {
    pub outcome: Outcome,
    /// Always true: CoreDNS 1.14.7 sets AA on every reply of this plugin, apex and `dns`
    /// subdomain included.
    pub authoritative: bool,
}

impl Engine<'_> {
    /// The SOA `k8s_external` writes for `zone` (static serial, as CoreDNS).
    pub fn external_soa(&self, zone: &Name, apex: &str) -> Record {
        let z = zone.to_string();
        let ttl = self.settings.ttl;
        Record::new(
            zone.clone(),
            ttl,
            RData::Soa {
                mname: name(&format!("ns1.{apex}.{z}")).unwrap_or_else(Name::root),
                rname: name(&format!("hostmaster.{apex}.{z}")).unwrap_or_else(Name::root),
                serial: 12345,
                refresh: 7200,
                retry: 1800,
                expire: 86400,
                minimum: ttl,
            },
        )
    }

    /// The external addresses of the Services whose endpoints are this server's own addresses;
    /// this server's addresses when it is not behind one (CoreDNS outside a cluster).
    pub fn external_ns_addresses(&self) -> Vec<IpAddr> {
        let Some(fronting) = self.services_in_front() else {
            return self.settings.local_ips.clone();
        };
        let mut out = Vec::new();
        for (_, svc) in fronting {
            for h in &svc.external {
                if let ExternalHost::Ip(ip) = h {
                    if !out.contains(ip) {
                        out.push(*ip);
                    }
                }
            }
        }
        out
    }

    /// Answers `qname` in the external `zone` (lower case); `apex` is the label of the
    /// nameserver subdomain (default `dns`).
    pub fn external(&self, zone: &Name, qname: &Name, qtype: u16, apex: &str, headless: bool) -> ExternalAnswer {
        let labels = super::relative_labels(qname, zone);
        let ttl = self.settings.ttl;
        let n = labels.len();
        let soa_only = |authoritative| ExternalAnswer { outcome: Outcome::nodata(), authoritative };
        if n == 0 {
            // Records of the apex are owned by the configured zone; the nameserver's addresses
            // by `ns1.<apex>.` and the name as asked (CoreDNS's `serveApex`).
            let outcome = match qtype {
                rtype::SOA => Outcome::records(vec![self.external_soa(zone, apex)]),
                rtype::NS => {
                    let target = name(&format!("ns1.{apex}.{zone}")).unwrap_or_else(Name::root);
                    let glue = name(&format!("ns1.{apex}.{qname}")).unwrap_or_else(|| target.clone());
                    let additional =
                        self.external_ns_addresses().into_iter().map(|ip| super::address_record(glue.clone(), ttl, ip));
                    Outcome::Answer {
                        answer: vec![Record::new(zone.clone(), ttl, RData::Ns(target.clone()))],
                        additional: additional.collect(),
                        chase: None,
                    }
                }
                _ => Outcome::nodata(),
            };
            return ExternalAnswer { outcome, authoritative: true };
        }
        if labels[n - 1] == apex {
            return match n {
                1 => soa_only(true),
                2 if labels[0] == "ns1" => {
                    let answer = self
                        .external_ns_addresses()
                        .into_iter()
                        .filter(|ip| family_matches(qtype, ip))
                        .map(|ip| super::address_record(qname.clone(), ttl, ip))
                        .collect();
                    ExternalAnswer { outcome: Outcome::records(answer), authoritative: true }
                }
                _ => ExternalAnswer { outcome: Outcome::NameError, authoritative: true },
            };
        }
        let (entries, found) = self.external_entries(zone, &labels, headless);
        let outcome = if !found {
            Outcome::NameError
        } else {
            match qtype {
                rtype::A | rtype::AAAA => self.addresses(zone, qname, qtype, entries, super::MAX_CNAME_CHAIN - 1),
                rtype::SRV => self.srv(qname, entries),
                _ => Outcome::nodata(),
            }
        };
        ExternalAnswer { outcome, authoritative: true }
    }

    /// CoreDNS's `External`: backends for `[endpoint.][_port._proto.]service.namespace`; `found`
    /// is false for NXDOMAIN.
    fn external_entries(&self, zone: &Name, labels: &[String], headless: bool) -> (Vec<Entry>, bool) {
        let n = labels.len();
        let ns = labels[n - 1].as_str();
        if !self.exposed(ns) {
            return (Vec::new(), false);
        }
        if n == 1 {
            return (Vec::new(), true);
        }
        let service = labels[n - 2].as_str();
        let rest = &labels[..n - 2];
        let (port, proto, endpoint) = match rest {
            [] => ("", "", None),
            [p, t] if p.starts_with('_') && t.starts_with('_') => (strip_underscore(p), strip_underscore(t), None),
            [e] if headless => ("", "", Some(e.as_str())),
            _ => return (Vec::new(), false),
        };
        fn any(s: &str) -> &str {
            if s == "*" {
                ""
            } else {
                s
            }
        }
        let (port, proto) = (any(port), any(proto));
        let Some(entry) = self.index.service_entry(ns, service) else {
            return (Vec::new(), false);
        };
        let Some(svc) = entry.service.as_ref() else {
            return (Vec::new(), false);
        };
        let target = format!("{service}.{ns}.{zone}");
        let mut out = Vec::new();
        if headless && svc.kind == ServiceKind::Headless {
            let mut slices: Vec<_> = entry.slices.iter().collect();
            slices.sort_by(|a, b| a.name.cmp(&b.name));
            for slice in slices {
                for p in slice.ports.iter().filter(|p| port_matches(port, proto, p)) {
                    for ep in &slice.endpoints {
                        for ip in &ep.addresses {
                            let ep_name = self.endpoint_name(ep, ip);
                            if endpoint.is_some_and(|e| e != ep_name) {
                                continue;
                            }
                            out.push(Entry {
                                host: Host::Ip(*ip),
                                port: p.port,
                                target: format!("{ep_name}.{target}"),
                            });
                        }
                    }
                }
            }
        }
        if endpoint.is_none() {
            for h in &svc.external {
                for p in svc.ports.iter().filter(|p| port_matches(port, proto, p)) {
                    let host = match h {
                        ExternalHost::Ip(ip) => Host::Ip(*ip),
                        ExternalHost::Name(n) => Host::Name(n.to_string()),
                    };
                    out.push(Entry { host, port: p.port, target: target.clone() });
                }
            }
        }
        let found = !out.is_empty();
        (out, found)
    }
}

impl ExternalAnswer {
    /// NXDOMAIN for a name error, NOERROR otherwise (NODATA included).
    pub fn rcode(&self) -> u16 {
        match self.outcome {
            Outcome::NameError => rcode::NXDOMAIN,
            _ => rcode::NOERROR,
        }
    }
}
