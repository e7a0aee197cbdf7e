//! Resource records in presentation (zone file) format, one per line: `NAME [TTL] [CLASS] TYPE
//! RDATA`, TTL and class in either order, relative names made absolute. Covers the types the
//! `template` plugin writes; the grammar is the zone file's ([`crate::zonefile`]).

use crate::zonefile::{self, ZoneError};
use crate::{Name, Record};

/// Parses one record with absolute (or root-relative) names; the default TTL applies when the
/// line has none (3600, as miekg/dns).
pub fn parse_rr(line: &str) -> Result<Record, String> {
    if line.contains('\n') {
        return Err("a record must be one line".into());
    }
    if line.trim_start().starts_with('$') {
        return Err("directives are not records".into());
    }
    let mut rrs = zonefile::parse_zone(line.trim_start(), &Name::root()).map_err(|e: ZoneError| e.message)?;
    match (rrs.pop(), rrs.is_empty()) {
        (Some(rr), true) => Ok(rr),
        _ => Err("empty record".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{rtype, RData};

    #[test]
    fn common_records_parse() {
        let r = parse_rr("www.example.org. 60 IN A 10.0.0.1").unwrap();
        assert_eq!((r.ttl, r.rtype), (60, rtype::A));
        let r = parse_rr("www.example.org IN 30 AAAA ::1").unwrap();
        assert_eq!((r.ttl, r.name.to_string().as_str()), (30, "www.example.org."));
        let r = parse_rr(r#"t.example. TXT "hello world" two"#).unwrap();
        assert_eq!(r.data, RData::Txt(vec![b"hello world".to_vec(), b"two".to_vec()]));
        assert_eq!(r.ttl, 3600);
        assert!(matches!(
            parse_rr("_x._tcp.example. 5 SRV 0 100 80 web.example.").unwrap().data,
            RData::Srv { port: 80, .. }
        ));
        assert!(matches!(
            parse_rr("example. SOA ns.example. h.example. 1 2 3 4 5").unwrap().data,
            RData::Soa { minimum: 5, .. }
        ));
        for bad in ["", "x. A", "x. A 1.2.3", "x. BOGUS 1", "x. MX ten mail.", "x. TXT \"open", "x. A 1.2.3.4 5.6.7.8"]
        {
            assert!(parse_rr(bad).is_err(), "{bad}");
        }
    }
}
