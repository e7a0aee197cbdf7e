//! RFC 1035 §5 master files: `$ORIGIN`, `$TTL`, `@`, relative and inherited owners, TTL and
//! class in either order, TTL units (`1h30m`, `1d`, `1w`), parentheses across lines, comments,
//! quoted strings with `\DDD` escapes and RFC 3597 `\# LEN HEX` data for any type. `$INCLUDE` is
//! refused as miekg/dns (and so CoreDNS's `file`) refuses it by default; `$GENERATE` is not
//! supported. Errors carry the line number.

use crate::{class, rtype, Name, RData, Record};

/// One field of a record line: raw text (escapes kept), and whether it was quoted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Field {
    pub text: String,
    pub quoted: bool,
}

/// A parse error with the 1-based line where the record starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for ZoneError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ZoneError {}

/// A logical record line: where it starts, whether it began with blank space (owner inherited),
/// and its fields.
struct Logical {
    line: usize,
    blank_owner: bool,
    fields: Vec<Field>,
}

/// Splits text into logical lines (parentheses join physical lines; `;` starts a comment).
fn logical_lines(text: &str) -> Result<Vec<Logical>, ZoneError> {
    let mut out = Vec::new();
    let mut cur: Option<Logical> = None;
    let mut word = String::new();
    let mut word_quoted = false;
    let mut in_word = false;
    let mut quoted = false;
    let mut quote_line = 0usize;
    let mut depth = 0usize;
    let mut paren_line = 0usize;
    let mut line = 1usize;
    let mut at_line_start = true;
    let mut chars = text.chars().peekable();
    let flush = |cur: &mut Option<Logical>, word: &mut String, word_quoted: &mut bool, in_word: &mut bool| {
        if *in_word {
            if let Some(l) = cur.as_mut() {
                l.fields.push(Field { text: std::mem::take(word), quoted: *word_quoted });
            }
            *in_word = false;
            *word_quoted = false;
        }
    };
    while let Some(c) = chars.next() {
        if cur.is_none() && c != '\n' {
            cur = Some(Logical { line, blank_owner: at_line_start && (c == ' ' || c == '\t'), fields: Vec::new() });
        }
        at_line_start = false;
        if quoted {
            match c {
                '"' => {
                    quoted = false;
                    flush(&mut cur, &mut word, &mut word_quoted, &mut in_word);
                }
                '\\' => {
                    word.push('\\');
                    if let Some(n) = chars.next() {
                        if n == '\n' {
                            line += 1;
                        }
                        word.push(n);
                    }
                }
                '\n' => {
                    line += 1;
                    word.push('\n');
                }
                c => word.push(c),
            }
            continue;
        }
        match c {
            '"' => {
                flush(&mut cur, &mut word, &mut word_quoted, &mut in_word);
                quoted = true;
                quote_line = line;
                in_word = true;
                word_quoted = true;
            }
            '\\' => {
                in_word = true;
                word.push('\\');
                if let Some(n) = chars.next() {
                    word.push(n);
                }
            }
            ';' => {
                flush(&mut cur, &mut word, &mut word_quoted, &mut in_word);
                while chars.peek().is_some_and(|&n| n != '\n') {
                    chars.next();
                }
            }
            '(' => {
                flush(&mut cur, &mut word, &mut word_quoted, &mut in_word);
                if depth == 0 {
                    paren_line = line;
                }
                depth += 1;
            }
            ')' => {
                flush(&mut cur, &mut word, &mut word_quoted, &mut in_word);
                depth = depth.checked_sub(1).ok_or(ZoneError { line, message: "unbalanced ')'".into() })?;
            }
            '\n' => {
                flush(&mut cur, &mut word, &mut word_quoted, &mut in_word);
                line += 1;
                if depth == 0 {
                    at_line_start = true;
                    if let Some(l) = cur.take() {
                        if !l.fields.is_empty() {
                            out.push(l);
                        }
                    }
                }
            }
            c if c.is_whitespace() => flush(&mut cur, &mut word, &mut word_quoted, &mut in_word),
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if quoted {
        return Err(ZoneError { line: quote_line, message: "unterminated quoted string".into() });
    }
    if depth > 0 {
        return Err(ZoneError {
            line: paren_line,
            message: "unbalanced '(': missing ')' before the end of the file".into(),
        });
    }
    flush(&mut cur, &mut word, &mut word_quoted, &mut in_word);
    if let Some(l) = cur.take() {
        if !l.fields.is_empty() {
            out.push(l);
        }
    }
    Ok(out)
}

/// Decodes a character-string: `\DDD` and `\X` escapes.
pub(crate) fn decode_string(raw: &str) -> Result<Vec<u8>, String> {
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            let (value, used) = crate::name::unescape(&b[i + 1..]).ok_or_else(|| format!("bad escape in {raw:?}"))?;
            out.push(value);
            i += 1 + used;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// A TTL: seconds, or BIND units (`1w2d3h4m5s`, case-insensitive).
pub fn parse_ttl(text: &str) -> Option<u32> {
    if text.is_empty() {
        return None;
    }
    if let Ok(n) = text.parse::<u32>() {
        return Some(n);
    }
    let mut total: u64 = 0;
    let mut num: Option<u64> = None;
    for c in text.chars() {
        if let Some(d) = c.to_digit(10) {
            num = Some(num.unwrap_or(0).checked_mul(10)?.checked_add(d as u64)?);
            continue;
        }
        let mult = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return None,
        };
        total = total.checked_add(num.take()?.checked_mul(mult)?)?;
    }
    if let Some(n) = num {
        total = total.checked_add(n)?;
    }
    u32::try_from(total).ok()
}

/// Makes a possibly relative name absolute (`@` is the origin).
pub(crate) fn absolute(text: &str, origin: &Name) -> Result<Name, String> {
    if text == "@" {
        return Ok(origin.clone());
    }
    let ends_with_dot = text.ends_with('.') && !text.ends_with("\\.");
    let full = if ends_with_dot {
        text.to_string()
    } else if origin.is_root() {
        format!("{text}.")
    } else {
        format!("{text}.{origin}")
    };
    Name::from_ascii(&full).map_err(|e| format!("bad name {text:?}: {e}"))
}

fn num<T: std::str::FromStr>(f: Option<&Field>, what: &str) -> Result<T, String> {
    let f = f.ok_or_else(|| format!("missing {what}"))?;
    f.text.parse().map_err(|_| format!("bad {what} {:?}", f.text))
}

fn hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return Err(format!("odd number of hex digits in {text:?}"));
    }
    digits
        .chunks(2)
        .map(|p| {
            std::str::from_utf8(p)
                .ok()
                .and_then(|s| u8::from_str_radix(s, 16).ok())
                .ok_or_else(|| format!("bad hex {text:?}"))
        })
        .collect()
}

fn char_string(f: &Field) -> Result<Vec<u8>, String> {
    let s = decode_string(&f.text)?;
    if s.len() > 255 {
        return Err(format!("character string longer than 255 octets: {:?}", f.text));
    }
    Ok(s)
}

/// The RDATA of type `code` from its fields; names relative to `origin`.
pub(crate) fn rdata(code: u16, ty: &str, rd: &[Field], origin: &Name) -> Result<RData, String> {
    if rd.first().is_some_and(|f| f.text == "\\#" && !f.quoted) {
        let len: usize = num(rd.get(1), "RFC 3597 data length")?;
        let data = hex(&rd[2..].iter().map(|f| f.text.as_str()).collect::<String>())?;
        if data.len() != len {
            return Err(format!("RFC 3597 data is {} octets, length says {len}", data.len()));
        }
        let rr = crate::Message::decode_rdata(code, &data).map_err(|e| format!("bad {ty} data: {e}"))?;
        return Ok(rr);
    }
    let need = |n: usize| if rd.len() == n { Ok(()) } else { Err(format!("{ty} needs {n} fields, got {}", rd.len())) };
    let name = |f: &Field| absolute(&f.text, origin);
    Ok(match code {
        rtype::A => {
            need(1)?;
            RData::A(rd[0].text.parse().map_err(|_| format!("bad IPv4 address {:?}", rd[0].text))?)
        }
        rtype::AAAA => {
            need(1)?;
            RData::Aaaa(rd[0].text.parse().map_err(|_| format!("bad IPv6 address {:?}", rd[0].text))?)
        }
        rtype::CNAME | rtype::NS | rtype::PTR | rtype::DNAME => {
            need(1)?;
            let n = name(&rd[0])?;
            match code {
                rtype::CNAME => RData::Cname(n),
                rtype::NS => RData::Ns(n),
                rtype::PTR => RData::Ptr(n),
                _ => RData::Other { rtype: code, data: n.as_wire().to_vec() },
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
            let t = |i: usize, what: &str| parse_ttl(&rd[i].text).ok_or_else(|| format!("bad {what} {:?}", rd[i].text));
            RData::Soa {
                mname: name(&rd[0])?,
                rname: name(&rd[1])?,
                serial: num(rd.get(2), "serial")?,
                refresh: t(3, "refresh")?,
                retry: t(4, "retry")?,
                expire: t(5, "expire")?,
                minimum: t(6, "minimum")?,
            }
        }
        rtype::TXT | rtype::SPF => {
            if rd.is_empty() {
                return Err(format!("{ty} needs at least one string"));
            }
            let strings = rd.iter().map(char_string).collect::<Result<Vec<_>, _>>()?;
            if code == rtype::TXT {
                RData::Txt(strings)
            } else {
                let mut data = Vec::new();
                for s in strings {
                    data.push(s.len() as u8);
                    data.extend(s);
                }
                RData::Other { rtype: code, data }
            }
        }
        rtype::HINFO => {
            need(2)?;
            RData::Hinfo { cpu: char_string(&rd[0])?, os: char_string(&rd[1])? }
        }
        rtype::CAA => {
            need(3)?;
            let flags: u8 = num(rd.first(), "CAA flags")?;
            let tag = rd[1].text.as_bytes();
            if tag.is_empty() || tag.len() > 255 || !tag.iter().all(u8::is_ascii_alphanumeric) {
                return Err(format!("bad CAA tag {:?}", rd[1].text));
            }
            let mut data = vec![flags, tag.len() as u8];
            data.extend_from_slice(tag);
            data.extend(decode_string(&rd[2].text)?);
            RData::Other { rtype: code, data }
        }
        rtype::DS | rtype::SSHFP | rtype::TLSA => {
            let fixed = if code == rtype::DS {
                3
            } else if code == rtype::SSHFP {
                2
            } else {
                3
            };
            if rd.len() <= fixed {
                return Err(format!("{ty} needs {} numeric fields and hex data", fixed));
            }
            let mut data = Vec::new();
            if code == rtype::DS {
                data.extend(num::<u16>(rd.first(), "key tag")?.to_be_bytes());
            } else {
                data.push(num::<u8>(rd.first(), "first field")?);
            }
            for f in &rd[1..fixed] {
                data.push(num::<u8>(Some(f), "field")?);
            }
            data.extend(hex(&rd[fixed..].iter().map(|f| f.text.as_str()).collect::<String>())?);
            RData::Other { rtype: code, data }
        }
        rtype::NAPTR => {
            need(6)?;
            let mut data = Vec::new();
            data.extend(num::<u16>(rd.first(), "order")?.to_be_bytes());
            data.extend(num::<u16>(rd.get(1), "preference")?.to_be_bytes());
            for f in &rd[2..5] {
                let s = char_string(f)?;
                data.push(s.len() as u8);
                data.extend(s);
            }
            data.extend_from_slice(name(&rd[5])?.as_wire());
            RData::Other { rtype: code, data }
        }
        _ => {
            return Err(format!(
                "type {ty} is not supported in zone files (write it in RFC 3597 form: {ty} \\# LENGTH HEX)"
            ))
        }
    })
}

/// Parses a whole zone; every record must lie in `origin` (CoreDNS's "out of zone data").
pub fn parse_zone(text: &str, origin: &Name) -> Result<Vec<Record>, ZoneError> {
    let mut records = Vec::new();
    let mut current_origin = origin.clone();
    let mut default_ttl: Option<u32> = None;
    let mut last_ttl: Option<u32> = None;
    let mut last_owner: Option<Name> = None;
    for l in logical_lines(text)? {
        let err = |message: String| ZoneError { line: l.line, message };
        let f = &l.fields;
        if !l.blank_owner && f[0].text.starts_with('$') && !f[0].quoted {
            match f[0].text.to_ascii_uppercase().as_str() {
                "$ORIGIN" => {
                    let [_, o] = f.as_slice() else {
                        return Err(err("$ORIGIN needs one name".into()));
                    };
                    current_origin = absolute(&o.text, &current_origin).map_err(err)?;
                }
                "$TTL" => {
                    let [_, t] = f.as_slice() else {
                        return Err(err("$TTL needs one value".into()));
                    };
                    default_ttl = Some(parse_ttl(&t.text).ok_or_else(|| err(format!("bad $TTL {:?}", t.text)))?);
                }
                "$INCLUDE" => return Err(err("$INCLUDE directive not allowed".into())),
                other => return Err(err(format!("{other} directive is not supported"))),
            }
            continue;
        }
        let mut i = 0;
        let owner = if l.blank_owner {
            last_owner.clone().ok_or_else(|| err("record without an owner name".into()))?
        } else {
            i = 1;
            absolute(&f[0].text, &current_origin).map_err(err)?
        };
        let mut ttl = None;
        let mut cls = class::IN;
        for _ in 0..2 {
            let Some(tok) = f.get(i) else { break };
            let up = tok.text.to_ascii_uppercase();
            if ttl.is_none() && tok.text.starts_with(|c: char| c.is_ascii_digit()) {
                ttl = Some(parse_ttl(&tok.text).ok_or_else(|| err(format!("bad TTL {:?}", tok.text)))?);
                i += 1;
            } else if let Some(c) = match up.as_str() {
                "IN" => Some(class::IN),
                "CH" => Some(class::CH),
                "HS" => Some(class::HS),
                _ => up.strip_prefix("CLASS").and_then(|n| n.parse().ok()),
            } {
                cls = c;
                i += 1;
            }
        }
        let ty = f.get(i).ok_or_else(|| err("missing record type".into()))?;
        let code = rtype::from_name(&ty.text).ok_or_else(|| err(format!("unknown record type {:?}", ty.text)))?;
        let data = rdata(code, &ty.text.to_ascii_uppercase(), &f[i + 1..], &current_origin).map_err(err)?;
        if !owner.to_lowercase().is_subdomain_of(&origin.to_lowercase()) {
            return Err(err(format!("out of zone data: {owner} is not in {origin}")));
        }
        let ttl = match ttl {
            Some(t) => {
                last_ttl = Some(t);
                t
            }
            None => default_ttl.or(last_ttl).unwrap_or(3600),
        };
        let mut rr = Record::new(owner.clone(), ttl, data);
        rr.class = cls;
        records.push(rr);
        last_owner = Some(owner);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Name {
        Name::from_ascii("example.org.").unwrap()
    }

    #[test]
    fn a_typical_zone_parses() {
        let text = "$TTL 1h\n$ORIGIN example.org.\n@ IN SOA ns1 hostmaster (\n  2024010101 ; serial\n  7200 3600 1w 300 )\n  IN NS ns1\nns1 IN A 192.0.2.1\nwww 300 IN A 192.0.2.2\n    IN AAAA 2001:db8::2\nmail IN 60 MX 10 mx.other.net.\n_sip._udp SRV 0 5 5060 www\ntxt TXT \"hello world\" \"a\\\"b\\059\"\n*.wild CNAME www\n";
        let rrs = parse_zone(text, &origin()).unwrap();
        assert_eq!(rrs.len(), 9);
        let RData::Soa { serial, expire, minimum, mname, .. } = &rrs[0].data else { panic!() };
        assert_eq!((*serial, *expire, *minimum), (2024010101, 604_800, 300));
        assert_eq!(mname.to_string(), "ns1.example.org.");
        assert_eq!(rrs[0].ttl, 3600);
        assert_eq!(rrs[1].name.to_string(), "example.org.");
        assert_eq!(rrs[3].ttl, 300);
        assert_eq!(rrs[4].name.to_string(), "www.example.org.");
        assert_eq!(rrs[4].ttl, 3600, "$TTL applies to records without a TTL");
        assert_eq!(rrs[5].ttl, 60);
        assert!(
            matches!(&rrs[6].data, RData::Srv { port: 5060, target, .. } if target.to_string() == "www.example.org.")
        );
        assert_eq!(rrs[7].data, RData::Txt(vec![b"hello world".to_vec(), b"a\"b;".to_vec()]));
        assert_eq!(rrs[8].name.to_string(), "*.wild.example.org.");
    }

    #[test]
    fn errors_name_their_line() {
        let bad = [
            ("@ SOA a b 1 2 3 4 5\nwww A 300.1.1.1\n", 2, "bad IPv4"),
            ("@ SOA a b 1 2 3 4 5\n$INCLUDE other\n", 2, "$INCLUDE"),
            ("@ SOA a b 1 2 3 4 5\nwww.other.net. A 1.2.3.4\n", 2, "out of zone"),
            ("@ SOA a b 1 2 3 4 5\nx BOGUS 1\n", 2, "unknown record type"),
            ("@ SOA a b 1 2 3 4 5\n\nx TXT \"open\n", 3, "unterminated"),
            ("@ SOA ( a b 1 2 3 4 5\n", 1, "unbalanced"),
            ("  A 1.2.3.4\n", 1, "without an owner"),
            ("x A \\# 4 0102\n", 1, "RFC 3597"),
            ("x RRSIG A 1 2 3\n", 1, "not supported"),
        ];
        for (text, line, what) in bad {
            let e = parse_zone(text, &origin()).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.message.contains(what), "{text:?}: {e}");
        }
    }

    #[test]
    fn generic_and_extra_types() {
        let text = "x A \\# 4 c0000201\ny CAA 0 issue \"letsencrypt.org\"\nz TYPE65534 \\# 2 abcd\n";
        let rrs = parse_zone(text, &origin()).unwrap();
        assert_eq!(rrs[0].data, RData::A("192.0.2.1".parse().unwrap()));
        assert!(matches!(&rrs[1].data, RData::Other { rtype: 257, data } if data.ends_with(b"letsencrypt.org")));
        assert_eq!(rrs[2].data, RData::Other { rtype: 65534, data: vec![0xab, 0xcd] });
    }

    #[test]
    fn ttl_units() {
        assert_eq!(parse_ttl("1h30m"), Some(5400));
        assert_eq!(parse_ttl("1W"), Some(604_800));
        assert_eq!(parse_ttl("90"), Some(90));
        assert_eq!(parse_ttl("h"), None);
        assert_eq!(parse_ttl("99999999999"), None);
    }
}
