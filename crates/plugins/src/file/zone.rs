//! One loaded zone and the RFC 1034 §4.3.2 lookup over it: delegations, CNAME chasing inside
//! the zone, wildcards (RFC 4592), empty non-terminals, NXDOMAIN/NODATA with the SOA.

use kdns_wire::{rcode, rtype, Name, RData, Record};
use std::collections::{HashMap, HashSet};

/// How many CNAMEs inside the zone are followed for one answer (CoreDNS stops at 8 too).
const MAX_CHASE: usize = 8;

pub struct Zone {
    /// Lower case.
    pub origin: Name,
    pub soa: Record,
    /// Records by lower-case owner name, in file order.
    nodes: HashMap<Name, Vec<Record>>,
    /// Names that exist only because something below them does (empty non-terminals).
    ancestors: HashSet<Name>,
    pub records: usize,
}

/// What a lookup produced.
#[derive(Debug, Default, PartialEq)]
pub struct Answer {
    pub rcode: u16,
    pub authoritative: bool,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
    pub additional: Vec<Record>,
    /// The target of the last CNAME when it leaves the zone (the caller resolves it elsewhere).
    pub leaves_zone: Option<Name>,
}

impl Answer {
    pub fn is_nxdomain(&self) -> bool {
        self.rcode == rcode::NXDOMAIN
    }
}

impl Zone {
    /// Builds the zone from parsed records; exactly one SOA, at the origin, is required.
    pub fn new(origin: &Name, records: Vec<Record>) -> Result<Zone, String> {
        let origin = origin.to_lowercase();
        let mut nodes: HashMap<Name, Vec<Record>> = HashMap::new();
        let mut soa = None;
        let count = records.len();
        for rr in records {
            let owner = rr.name.to_lowercase();
            if rr.rtype == rtype::SOA {
                if owner != origin {
                    return Err(format!("SOA record for {} is not at the zone apex {origin}", rr.name));
                }
                if soa.is_some() {
                    return Err(format!("more than one SOA record for {origin}"));
                }
                soa = Some(rr.clone());
            }
            nodes.entry(owner).or_default().push(rr);
        }
        let soa = soa.ok_or_else(|| format!("no SOA record for {origin}"))?;
        if let Some(rrs) = nodes.get(&origin) {
            if rrs.iter().any(|r| r.rtype == rtype::CNAME) {
                return Err(format!("CNAME at the zone apex {origin}"));
            }
        }
        for (name, rrs) in &nodes {
            if rrs.iter().any(|r| r.rtype == rtype::CNAME) && rrs.iter().any(|r| r.rtype != rtype::CNAME) {
                return Err(format!("{name} has a CNAME and other data"));
            }
        }
        let mut ancestors = HashSet::new();
        for name in nodes.keys() {
            let mut n = name.parent();
            while let Some(p) = n {
                if p.label_count() < origin.label_count() || !ancestors.insert(p.clone()) {
                    break;
                }
                n = p.parent();
            }
        }
        Ok(Zone { origin, soa, nodes, ancestors, records: count })
    }

    pub fn serial(&self) -> u32 {
        match &self.soa.data {
            RData::Soa { serial, .. } => *serial,
            _ => 0,
        }
    }

    fn rrset(&self, name: &Name, t: u16) -> Vec<Record> {
        self.nodes.get(name).map(|rrs| rrs.iter().filter(|r| r.rtype == t).cloned().collect()).unwrap_or_default()
    }

    fn exists(&self, name: &Name) -> bool {
        self.nodes.contains_key(name) || self.ancestors.contains(name)
    }

    /// The highest zone cut between the apex (exclusive) and `qname` (inclusive), if any.
    fn delegation(&self, qname: &Name, qtype: u16) -> Option<Name> {
        let mut highest = None;
        let mut n = Some(qname.clone());
        while let Some(name) = n.filter(|n| n.label_count() > self.origin.label_count()) {
            // The parent side answers DS at a cut (RFC 4035 §3.1.4.1).
            let ds_at_qname = &name == qname && qtype == rtype::DS;
            if !ds_at_qname && self.nodes.get(&name).is_some_and(|rrs| rrs.iter().any(|r| r.rtype == rtype::NS)) {
                highest = Some(name.clone());
            }
            n = name.parent();
        }
        highest
    }

    /// A and AAAA records in this zone for the names the given records point at.
    fn glue(&self, rrs: &[Record]) -> Vec<Record> {
        let mut out = Vec::new();
        for rr in rrs {
            let target = match &rr.data {
                RData::Ns(n) | RData::Mx { exchange: n, .. } | RData::Srv { target: n, .. } => n.to_lowercase(),
                _ => continue,
            };
            if !target.is_subdomain_of(&self.origin) {
                continue;
            }
            for t in [rtype::A, rtype::AAAA] {
                for g in self.rrset(&target, t) {
                    if !out.contains(&g) {
                        out.push(g);
                    }
                }
            }
        }
        out
    }

    /// Answers `qname`/`qtype` (`qname` as asked; owner names in answers keep its case).
    pub fn lookup(&self, qname: &Name, qtype: u16) -> Answer {
        let mut out = Answer { authoritative: true, ..Answer::default() };
        let mut name = qname.clone();
        for _ in 0..=MAX_CHASE {
            let key = name.to_lowercase();
            if !key.is_subdomain_of(&self.origin) {
                out.leaves_zone = Some(name);
                return out;
            }
            if let Some(cut) = self.delegation(&key, qtype) {
                if out.answers.is_empty() {
                    out.authoritative = false;
                }
                let ns = self.rrset(&cut, rtype::NS);
                out.additional = self.glue(&ns);
                out.authority = ns;
                return out;
            }
            // The records at the name, or at the wildcard that covers it; every record taken
            // from them is owned by the asked name, which synthesises wildcard answers.
            let rrs = match self.nodes.get(&key) {
                Some(rrs) => rrs,
                None if self.exists(&key) => {
                    out.authority = vec![self.soa.clone()];
                    return out;
                }
                None => match self.wildcard(&key) {
                    Some(rrs) => rrs,
                    None => {
                        out.rcode = rcode::NXDOMAIN;
                        out.authority = vec![self.soa.clone()];
                        return out;
                    }
                },
            };
            let owned = |r: &Record| Record { name: name.clone(), ..r.clone() };
            let matching: Vec<Record> = rrs.iter().filter(|r| r.rtype == qtype).map(owned).collect();
            if !matching.is_empty() {
                let mut additional = self.glue(&matching);
                if qtype != rtype::NS || key != self.origin {
                    out.authority = self.rrset(&self.origin, rtype::NS);
                }
                out.answers.extend(matching);
                additional.retain(|g| !out.answers.contains(g));
                out.additional = additional;
                return out;
            }
            let Some(cname) = rrs.iter().find(|r| r.rtype == rtype::CNAME).map(owned) else {
                out.authority = vec![self.soa.clone()];
                return out;
            };
            let RData::Cname(target) = &cname.data else { unreachable!("filtered on type") };
            name = target.clone();
            out.answers.push(cname);
            if out.answers.iter().any(|a| a.name.eq_ignore_case(&name)) {
                return out;
            }
        }
        out
    }

    /// The records of the wildcard at the closest encloser of a name that does not exist.
    fn wildcard(&self, key: &Name) -> Option<&Vec<Record>> {
        let mut encloser = key.parent();
        while let Some(e) = encloser {
            if e.label_count() < self.origin.label_count() {
                return None;
            }
            if self.exists(&e) || e == self.origin {
                return self.nodes.get(&e.prepend_label(b"*").ok()?);
            }
            encloser = e.parent();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kdns_wire::zonefile::parse_zone;

    const ZONE: &str = "$TTL 300
@       IN SOA ns1 hostmaster 7 7200 3600 1209600 60
        IN NS  ns1
        IN MX  10 mail
ns1     IN A   192.0.2.1
mail    IN A   192.0.2.25
www     IN A   192.0.2.80
        IN AAAA 2001:db8::80
alias   IN CNAME www
outside IN CNAME www.example.net.
loop1   IN CNAME loop2
loop2   IN CNAME loop1
*.apps  IN A   192.0.2.99
a.b.c   IN TXT \"deep\"
sub     IN NS  ns.sub
ns.sub  IN A   192.0.2.53
_http._tcp IN SRV 0 0 80 www
";

    fn zone() -> Zone {
        let origin = Name::from_ascii("example.org.").unwrap();
        Zone::new(&origin, parse_zone(ZONE, &origin).unwrap()).unwrap()
    }

    fn q(z: &Zone, name: &str, t: u16) -> Answer {
        z.lookup(&Name::from_ascii(name).unwrap(), t)
    }

    fn names(rrs: &[Record]) -> Vec<String> {
        rrs.iter().map(|r| format!("{} {}", r.name, kdns_wire::rtype::name(r.rtype))).collect()
    }

    #[test]
    fn positive_answers_carry_apex_ns_and_glue() {
        let z = zone();
        let a = q(&z, "WWW.example.org.", rtype::A);
        assert_eq!((a.rcode, a.authoritative), (0, true));
        assert_eq!(names(&a.answers), ["WWW.example.org. A"]);
        assert_eq!(names(&a.authority), ["example.org. NS"]);
        let mx = q(&z, "example.org.", rtype::MX);
        assert_eq!(names(&mx.additional), ["mail.example.org. A"]);
        let srv = q(&z, "_http._tcp.example.org.", rtype::SRV);
        assert_eq!(names(&srv.additional), ["www.example.org. A", "www.example.org. AAAA"]);
        let ns = q(&z, "example.org.", rtype::NS);
        assert!(ns.authority.is_empty());
        assert_eq!(names(&ns.additional), ["ns1.example.org. A"]);
        assert_eq!(z.serial(), 7);
    }

    #[test]
    fn negative_answers() {
        let z = zone();
        let nx = q(&z, "nope.example.org.", rtype::A);
        assert_eq!(nx.rcode, rcode::NXDOMAIN);
        assert_eq!(names(&nx.authority), ["example.org. SOA"]);
        let nodata = q(&z, "www.example.org.", rtype::TXT);
        assert_eq!((nodata.rcode, nodata.answers.len()), (0, 0));
        assert_eq!(names(&nodata.authority), ["example.org. SOA"]);
        let ent = q(&z, "b.c.example.org.", rtype::A);
        assert_eq!((ent.rcode, ent.answers.len()), (0, 0), "empty non-terminal is NODATA");
    }

    #[test]
    fn cnames_are_chased_inside_the_zone() {
        let z = zone();
        let a = q(&z, "alias.example.org.", rtype::A);
        assert_eq!(names(&a.answers), ["alias.example.org. CNAME", "www.example.org. A"]);
        let c = q(&z, "alias.example.org.", rtype::CNAME);
        assert_eq!(names(&c.answers), ["alias.example.org. CNAME"]);
        let out = q(&z, "outside.example.org.", rtype::A);
        assert_eq!((out.rcode, names(&out.answers)), (0, vec!["outside.example.org. CNAME".to_string()]));
        assert_eq!(out.leaves_zone.map(|n| n.to_string()), Some("www.example.net.".into()));
        assert!(a.leaves_zone.is_none() && c.leaves_zone.is_none());
        let looped = q(&z, "loop1.example.org.", rtype::A);
        assert_eq!(looped.answers.len(), 2, "a loop ends after one round");
    }

    #[test]
    fn wildcards_and_delegations() {
        let z = zone();
        let w = q(&z, "anything.apps.example.org.", rtype::A);
        assert_eq!(names(&w.answers), ["anything.apps.example.org. A"]);
        let deeper = q(&z, "x.y.apps.example.org.", rtype::A);
        assert_eq!(deeper.answers.len(), 1, "wildcards match more than one label");
        let r = q(&z, "host.sub.example.org.", rtype::A);
        assert!(!r.authoritative && r.answers.is_empty());
        assert_eq!(names(&r.authority), ["sub.example.org. NS"]);
        assert_eq!(names(&r.additional), ["ns.sub.example.org. A"]);
        let glue = q(&z, "ns.sub.example.org.", rtype::A);
        assert!(glue.answers.is_empty() && !glue.authoritative, "glue below a cut is a referral");
    }

    #[test]
    fn the_example_zone_loads() {
        let origin = Name::from_ascii("example.org.").unwrap();
        let text = include_str!("../../../../examples/zones/db.example.org");
        let z = Zone::new(&origin, parse_zone(text, &origin).unwrap()).unwrap();
        assert_eq!(z.serial(), 2024010101);
        assert_eq!(z.records, 15);
        let a = q(&z, "api.example.org.", rtype::A);
        assert_eq!(names(&a.answers), ["api.example.org. CNAME", "www.example.org. A"]);
    }

    #[test]
    fn bad_zones_are_refused() {
        let origin = Name::from_ascii("example.org.").unwrap();
        for (text, what) in [
            ("www A 192.0.2.1\n", "no SOA"),
            ("@ SOA a b 1 2 3 4 5\n@ SOA a b 2 2 3 4 5\n", "more than one"),
            ("@ SOA a b 1 2 3 4 5\nx CNAME y\nx A 192.0.2.1\n", "CNAME and other"),
        ] {
            let err = Zone::new(&origin, parse_zone(text, &origin).unwrap()).err().unwrap();
            assert!(err.contains(what), "{err}");
        }
    }
}
