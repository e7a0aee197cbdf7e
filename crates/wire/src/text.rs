//! Resource records in presentation (zone file) format, one per line: `NAME [TTL] [CLASS] TYPE
//! RDATA`, TTL and class in either order, relative names made absolute. Covers the types the
//! `template` plugin writes (A, AAAA, CNAME, NS, PTR, MX, SRV, TXT, SOA, HINFO).

use crate::{class, rtype, Name, RData, Record};

fn tokens(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                // A closing quote ends its string even when empty; an opening one ends any word.
                if quoted || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                quoted = !quoted;
            }
            '\\' => cur.push(chars.next().ok_or("dangling backslash")?),
            ';' if !quoted => break,
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if quoted {
        return Err("unterminated quoted string".into());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

fn name(text: &str) -> Result<Name, String> {
    let fq = if text.ends_with('.') { text.to_string() } else { format!("{text}.") };
    Name::from_ascii(&fq).map_err(|e| format!("bad name {text:?}: {e}"))
}

fn num<T: std::str::FromStr>(t: Option<&String>, what: &str) -> Result<T, String> {
    let t = t.ok_or_else(|| format!("missing {what}"))?;
    t.parse().map_err(|_| format!("bad {what} {t:?}"))
}

/// Parses one record; the default TTL applies when the line has none (3600, as miekg/dns).
pub fn parse_rr(line: &str) -> Result<Record, String> {
    let t = tokens(line)?;
    let owner = name(t.first().ok_or("empty record")?)?;
    let mut i = 1;
    let mut ttl = 3600u32;
    let mut cls = class::IN;
    for _ in 0..2 {
        match t.get(i).map(|s| s.to_ascii_uppercase()) {
            Some(s) if s.chars().all(|c| c.is_ascii_digit()) => {
                ttl = s.parse().map_err(|_| format!("bad TTL {s:?}"))?;
                i += 1;
            }
            Some(s) if ["IN", "CH", "HS", "ANY"].contains(&s.as_str()) => {
                cls = match s.as_str() {
                    "IN" => class::IN,
                    "CH" => class::CH,
                    "HS" => class::HS,
                    _ => class::ANY,
                };
                i += 1;
            }
            _ => {}
        }
    }
    let ty = t.get(i).ok_or("missing type")?;
    let code = rtype::from_name(ty).ok_or_else(|| format!("unknown type {ty:?}"))?;
    let rd = &t[i + 1..];
    let need = |n: usize| if rd.len() == n { Ok(()) } else { Err(format!("{ty} needs {n} fields, got {}", rd.len())) };
    let data = match code {
        rtype::A => {
            need(1)?;
            RData::A(rd[0].parse().map_err(|_| format!("bad IPv4 {:?}", rd[0]))?)
        }
        rtype::AAAA => {
            need(1)?;
            RData::Aaaa(rd[0].parse().map_err(|_| format!("bad IPv6 {:?}", rd[0]))?)
        }
        rtype::CNAME | rtype::NS | rtype::PTR => {
            need(1)?;
            let n = name(&rd[0])?;
            match code {
                rtype::CNAME => RData::Cname(n),
                rtype::NS => RData::Ns(n),
                _ => RData::Ptr(n),
            }
        }
        rtype::MX => {
            need(2)?;
            RData::Mx { preference: num(rd.first(), "preference")?, exchange: name(&rd[1])? }
        }
        rtype::SRV => {
            need(4)?;
            RData::Srv {
                priority: num(rd.first(), "priority")?,
                weight: num(rd.get(1), "weight")?,
                port: num(rd.get(2), "port")?,
                target: name(&rd[3])?,
            }
        }
        rtype::SOA => {
            need(7)?;
            RData::Soa {
                mname: name(&rd[0])?,
                rname: name(&rd[1])?,
                serial: num(rd.get(2), "serial")?,
                refresh: num(rd.get(3), "refresh")?,
                retry: num(rd.get(4), "retry")?,
                expire: num(rd.get(5), "expire")?,
                minimum: num(rd.get(6), "minimum")?,
            }
        }
        rtype::TXT => {
            if rd.is_empty() || rd.iter().any(|s| s.len() > 255) {
                return Err("TXT needs strings of at most 255 octets".into());
            }
            RData::Txt(rd.iter().map(|s| s.as_bytes().to_vec()).collect())
        }
        rtype::HINFO => {
            need(2)?;
            RData::Hinfo { cpu: rd[0].as_bytes().to_vec(), os: rd[1].as_bytes().to_vec() }
        }
        _ => return Err(format!("type {ty} is not supported in text records")),
    };
    let mut rr = Record::new(owner, ttl, data);
    rr.class = cls;
    Ok(rr)
}

#[cfg(test)]
mod tests {
    use super::*;

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
