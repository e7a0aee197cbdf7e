//! `etcd`: SkyDNS-style service records stored in etcd (`/skydns/org/example/www` →
//! `{"host":"10.0.0.1","port":8080}`), read through etcd's v3 API on every query as CoreDNS does
//! (put `cache` in front for load).

mod client;
mod setup;
#[cfg(test)]
mod tests;

pub use setup::setup;

use client::Client;
use kdns_server::plugin::{Plugin, Reply, Request, Rest, Step};
use kdns_wire::{flag, rcode, rtype, Message, Name, RData, Record};
use std::net::IpAddr;
use std::sync::Arc;

/// CoreDNS's etcd defaults: TTL of records without one, SOA minimum TTL.
const DEFAULT_TTL: u32 = 300;
const MIN_TTL: u32 = 30;
const DEFAULT_PRIORITY: u16 = 10;
const MAX_CNAME_CHAIN: usize = 8;

pub struct Etcd {
    zones: Vec<Name>,
    /// Key prefix without trailing slash, e.g. `/skydns`.
    path: String,
    fallthrough: crate::pkg::zones::Fallthrough,
    client: Arc<Client>,
}

/// One stored service (SkyDNS's `msg.Service`), with the key it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Service {
    pub host: String,
    pub port: u16,
    pub priority: u16,
    pub weight: u16,
    pub text: String,
    pub mail: bool,
    pub ttl: u32,
    pub target_strip: usize,
    pub key: String,
}

impl Service {
    fn parse(key: &str, value: &[u8]) -> Result<Service, String> {
        let v: serde_json::Value =
            serde_json::from_slice(value).map_err(|e| format!("plugin/etcd: bad JSON in {key}: {e}"))?;
        let num = |f: &str| v.get(f).and_then(|x| x.as_u64()).unwrap_or(0);
        Ok(Service {
            host: v.get("host").and_then(|h| h.as_str()).unwrap_or("").to_string(),
            port: num("port") as u16,
            priority: num("priority") as u16,
            weight: num("weight") as u16,
            text: v.get("text").and_then(|t| t.as_str()).unwrap_or("").to_string(),
            mail: v.get("mail").and_then(|m| m.as_bool()).unwrap_or(false),
            ttl: num("ttl") as u32,
            target_strip: num("targetstrip") as usize,
            key: key.to_string(),
        })
    }

    fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// The host as a domain name (CNAME, PTR, SRV and MX targets), when it is not an address.
    fn target(&self) -> Option<Name> {
        if self.host.is_empty() || self.ip().is_some() {
            return None;
        }
        Name::from_ascii(&format!("{}.", self.host.trim_end_matches('.'))).ok()
    }

    fn ttl(&self) -> u32 {
        if self.ttl == 0 {
            DEFAULT_TTL
        } else {
            self.ttl
        }
    }
}

impl Etcd {
    /// `/skydns/org/example/www` for `www.example.org.`; the position of a `*`/`any` label when
    /// there is one (the path is cut there and keys are matched segment by segment).
    fn key_for(&self, name: &Name) -> (String, Vec<String>, bool) {
        let mut labels: Vec<String> = name.labels().map(|l| String::from_utf8_lossy(l).to_ascii_lowercase()).collect();
        labels.reverse();
        let star = labels.iter().position(|l| l == "*" || l == "any");
        let cut = star.unwrap_or(labels.len());
        let mut path = self.path.clone();
        for l in &labels[..cut] {
            path.push('/');
            path.push_str(l);
        }
        (path, labels, star.is_some())
    }

    /// The name a key stands for (`/skydns/org/example/www/x1` → `x1.www.example.org.`), with
    /// `strip` leading labels removed (SkyDNS's `targetstrip`).
    fn domain(&self, key: &str, strip: usize) -> Option<Name> {
        let rest = key.strip_prefix(&self.path)?;
        let mut labels: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        labels.reverse();
        let text = labels.get(strip..)?.join(".");
        Name::from_ascii(&format!("{text}.")).ok()
    }

    /// CoreDNS's `Records`: every service at or below the name (exact: at the name only);
    /// `None` when there is none (NXDOMAIN).
    async fn records(&self, name: &Name, exact: bool) -> Result<Option<Vec<Service>>, String> {
        let (path, segments, star) = self.key_for(name);
        let kvs = match (exact, star) {
            // The key at the cut is shorter than the pattern, so only keys below it can match.
            (false, true) => self.client.range(&format!("{path}/"), true).await?,
            (false, false) => {
                let below = self.client.range(&format!("{path}/"), true).await?;
                if below.is_empty() {
                    self.client.range(&path, false).await?
                } else {
                    below
                }
            }
            (true, _) => self.client.range(&path, false).await?,
        };
        let mut out: Vec<Service> = Vec::new();
        for kv in kvs {
            if star {
                let parts: Vec<&str> =
                    kv.key.strip_prefix(&self.path).unwrap_or("").split('/').filter(|s| !s.is_empty()).collect();
                let matches = parts.len() >= segments.len()
                    && segments.iter().zip(&parts).all(|(s, p)| s == "*" || s == "any" || s == p);
                if !matches {
                    continue;
                }
            }
            let s = Service::parse(&kv.key, &kv.value)?;
            if !out.iter().any(|o| o.key == s.key) {
                out.push(s);
            }
        }
        Ok((!out.is_empty()).then_some(out))
    }

    fn soa(&self, zone: &Name) -> Record {
        let z = zone.to_string();
        let serial =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as u32).unwrap_or(0);
        Record::new(
            zone.clone(),
            MIN_TTL,
            RData::Soa {
                mname: Name::from_ascii(&format!("ns.dns.{z}")).unwrap_or_else(|_| Name::root()),
                rname: Name::from_ascii(&format!("hostmaster.{z}")).unwrap_or_else(|_| Name::root()),
                serial,
                refresh: 7200,
                retry: 1800,
                expire: 86400,
                minimum: MIN_TTL,
            },
        )
    }

    fn zone_of(&self, name: &Name) -> Option<&Name> {
        self.zones.iter().filter(|z| name.is_subdomain_of(z)).max_by_key(|z| z.label_count())
    }

    /// A or AAAA with CNAMEs followed inside our zones; a CNAME leaving them is returned for the
    /// rest of the chain to resolve.
    async fn addresses(&self, qname: &Name, qtype: u16) -> Result<(Option<Vec<Record>>, Option<Name>), String> {
        let mut answer = Vec::new();
        let mut name = qname.clone();
        for depth in 0..MAX_CNAME_CHAIN {
            let services = match self.records(&name, false).await? {
                Some(s) => s,
                None if depth == 0 => return Ok((None, None)),
                None => break,
            };
            let mut next = None;
            for s in &services {
                match s.ip() {
                    Some(ip) => {
                        let rr = addr_record(&name, s.ttl(), ip);
                        let family = if ip.is_ipv4() { rtype::A } else { rtype::AAAA };
                        if family == qtype && !answer.iter().any(|r: &Record| r.data == rr.data) {
                            answer.push(rr);
                        }
                    }
                    None if next.is_none() => {
                        let Some(target) = s.target() else { continue };
                        if target.eq_ignore_case(&name)
                            || answer.iter().any(|r: &Record| r.name.eq_ignore_case(&target))
                        {
                            continue;
                        }
                        answer.push(Record::new(name.clone(), s.ttl(), RData::Cname(target.clone())));
                        next = Some(target);
                    }
                    None => {}
                }
            }
            let Some(target) = next else { break };
            if self.zone_of(&target).is_none() {
                return Ok((Some(answer), Some(target)));
            }
            name = target;
        }
        Ok((Some(answer), None))
    }

    async fn answer(&self, req_msg: &Message, zone: &Name) -> Result<(Option<Message>, Option<(Name, u16)>), String> {
        let q = &req_msg.questions[0];
        let qname = &q.name;
        let mut m = Message::reply_to(req_msg);
        m.set(flag::AA, true);
        let mut chase = None;
        // Whether the name exists (false: NXDOMAIN).
        let exists = match q.qtype {
            rtype::A | rtype::AAAA => {
                let (records, out) = self.addresses(qname, q.qtype).await?;
                chase = out.map(|t| (t, q.qtype));
                records.map(|r| m.answers = r).is_some()
            }
            rtype::SOA => {
                m.answers.push(self.soa(zone));
                true
            }
            rtype::NS if qname.eq_ignore_case(zone) => {
                let ns_name = Name::from_ascii(&format!("ns.dns.{zone}")).map_err(|e| e.to_string())?;
                let services = self.records(&ns_name, false).await?;
                for s in services.iter().flatten() {
                    let (Some(ip), Some(target)) = (s.ip(), self.domain(&s.key, s.target_strip)) else { continue };
                    m.answers.push(Record::new(zone.clone(), s.ttl(), RData::Ns(target.clone())));
                    m.additional.push(addr_record(&target, s.ttl(), ip));
                }
                services.is_some()
            }
            rtype::TXT | rtype::CNAME | rtype::PTR | rtype::SRV | rtype::MX => {
                let exact = matches!(q.qtype, rtype::CNAME | rtype::PTR);
                match self.records(qname, exact).await? {
                    None => false,
                    Some(services) => {
                        let owned = |s: &Service, data| Record::new(qname.clone(), s.ttl(), data);
                        match q.qtype {
                            rtype::TXT => m.answers.extend(
                                services
                                    .iter()
                                    .filter(|s| !s.text.is_empty())
                                    .map(|s| owned(s, RData::Txt(txt_strings(&s.text)))),
                            ),
                            rtype::CNAME => m
                                .answers
                                .extend(services.iter().find_map(|s| s.target().map(|t| owned(s, RData::Cname(t))))),
                            rtype::PTR => m
                                .answers
                                .extend(services.iter().filter_map(|s| s.target().map(|t| owned(s, RData::Ptr(t))))),
                            _ => (m.answers, m.additional) = self.srv_mx(qname, q.qtype, &services),
                        }
                        true
                    }
                }
            }
            // Any other type: an A lookup tells NODATA from NXDOMAIN.
            _ => self.addresses(qname, rtype::A).await?.0.is_some(),
        };
        if !exists {
            if self.fallthrough.through(qname) {
                return Ok((None, None));
            }
            m.rcode = rcode::NXDOMAIN;
        }
        if m.answers.is_empty() {
            m.authority = vec![self.soa(zone)];
            m.additional.clear();
        }
        Ok((Some(m), chase))
    }

    /// SRV and MX as CoreDNS's backend builds them: weights shared within a priority, targets
    /// named after the key for address hosts (with the address in additional).
    fn srv_mx(&self, qname: &Name, qtype: u16, services: &[Service]) -> (Vec<Record>, Vec<Record>) {
        let mut totals: std::collections::HashMap<u16, u32> = std::collections::HashMap::new();
        for s in services {
            *totals.entry(priority(s)).or_default() += if s.weight == 0 { 100 } else { s.weight as u32 };
        }
        let (mut answers, mut extra) = (Vec::new(), Vec::new());
        for s in services {
            if qtype == rtype::MX && !s.mail {
                continue;
            }
            let (target, glue) = match s.ip() {
                Some(ip) => match self.domain(&s.key, s.target_strip) {
                    Some(t) => (t.clone(), Some(addr_record(&t, s.ttl(), ip))),
                    None => continue,
                },
                None => match s.target() {
                    Some(t) => (t, None),
                    None => continue,
                },
            };
            let data = if qtype == rtype::MX {
                RData::Mx { preference: priority(s), exchange: target }
            } else {
                let total = totals.get(&priority(s)).copied().unwrap_or(100).max(1) as f64;
                let w = if s.weight == 0 { 100.0 } else { s.weight as f64 };
                let weight = (100.0 / total * w).floor() as u16;
                RData::Srv { priority: priority(s), weight, port: s.port, target }
            };
            let rr = Record::new(qname.clone(), s.ttl(), data);
            if !answers.contains(&rr) {
                answers.push(rr);
            }
            if let Some(g) = glue {
                if !extra.contains(&g) {
                    extra.push(g);
                }
            }
        }
        (answers, extra)
    }
}

fn priority(s: &Service) -> u16 {
    if s.priority == 0 {
        DEFAULT_PRIORITY
    } else {
        s.priority
    }
}

fn addr_record(name: &Name, ttl: u32, ip: IpAddr) -> Record {
    match ip {
        IpAddr::V4(v4) => Record::new(name.clone(), ttl, RData::A(v4)),
        IpAddr::V6(v6) => Record::new(name.clone(), ttl, RData::Aaaa(v6)),
    }
}

fn txt_strings(text: &str) -> Vec<Vec<u8>> {
    text.as_bytes().chunks(255).map(<[u8]>::to_vec).collect()
}

/// The chain's handle: every query is answered by a task that owns a reference to the plugin.
pub struct Handler(Arc<Etcd>);

impl Plugin for Handler {
    fn name(&self) -> &'static str {
        "etcd"
    }

    fn serve(&self, req: &Request<'_>) -> Step {
        let Some(zone) = self.0.zone_of(req.qname()).cloned() else {
            return Step::Next;
        };
        let this = self.0.clone();
        let msg = req.msg.clone();
        let rest = req.rest();
        Step::Pending(Box::pin(async move { this.serve_async(msg, zone, rest).await }))
    }
}

impl Etcd {
    async fn serve_async(self: Arc<Self>, msg: Message, zone: Name, rest: Option<Rest>) -> Reply {
        // The pooled etcd connections are shared by every thread, so they are opened and driven
        // on the main runtime, not on the UDP worker this query arrived on.
        let (m, z) = (msg.clone(), zone.clone());
        let found = kdns_server::background::run(async move { self.answer(&m, &z).await })
            .await
            .unwrap_or_else(|| Err("shutting down".to_string()));
        match found {
            Err(e) => Reply::servfail(&msg, e),
            Ok((None, _)) => match rest {
                Some(rest) => rest.run(msg).await,
                None => Reply::rcode(&msg, rcode::SERVFAIL, None),
            },
            Ok((Some(mut m), chase)) => {
                if let (Some((target, qtype)), Some(rest)) = (chase, rest) {
                    crate::pkg::upstream::append_resolved(&mut m, target, qtype, rest).await;
                }
                Reply::message(m, "etcd")
            }
        }
    }
}
