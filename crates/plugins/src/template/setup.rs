use super::{Part, RrTemplate, Template, Templates};
use crate::pkg::zones::Fallthrough;
use kdns_corefile::{Directive, Dispenser, Error, Token};
use kdns_server::plugin::{Plugin, SetupCtx};
use kdns_wire::{class, rcode, rtype, Name};
use regex::Regex;
use std::sync::Arc;

/// `template CLASS TYPE [ZONE...] { match REGEX... | answer RR | additional RR | authority RR |
/// rcode CODE | fallthrough [ZONE...] }`, any number of times per block.
pub fn setup(ctx: &mut SetupCtx<'_>, ds: &[&Directive]) -> Result<Option<Arc<dyn Plugin>>, Error> {
    let templates = ds.iter().map(|d| template(ctx.zones, d)).collect::<Result<Vec<_>, _>>()?;
    let mut zones: Vec<Name> = templates.iter().flat_map(|t| t.zones.iter().cloned()).collect();
    zones.dedup();
    Ok(Some(Arc::new(Templates { zones, templates })))
}

fn err(t: &Token, msg: impl std::fmt::Display) -> Error {
    Error::at(t, format!("plugin/template: {msg}"))
}

pub(super) fn template(block_zones: &[String], d: &Directive) -> Result<Template, Error> {
    let disp = Dispenser::new(d);
    let args = disp.args();
    let (Some(c), Some(t)) = (args.first(), args.get(1)) else {
        return Err(Error::at(&d.name, "plugin/template: CLASS and TYPE are required"));
    };
    let qclass = match c.text.to_ascii_uppercase().as_str() {
        "IN" => class::IN,
        "CH" => class::CH,
        "HS" => class::HS,
        "ANY" => class::ANY,
        other => return Err(err(c, format!("invalid query class {other}"))),
    };
    let qtype = rtype::from_name(&t.text).ok_or_else(|| err(t, format!("invalid RR class {}", t.text)))?;
    let zones = crate::pkg::zones::plugin_zones("template", &args[2..], block_zones, &d.name)?;
    let mut tpl = Template {
        zones,
        qclass,
        qtype,
        regexes: Vec::new(),
        answer: Vec::new(),
        additional: Vec::new(),
        authority: Vec::new(),
        rcode: rcode::NOERROR,
        fallthrough: Fallthrough::default(),
    };
    for (prop, values) in disp.block() {
        match prop.text.as_str() {
            "match" => {
                if values.is_empty() {
                    return Err(err(prop, "match needs at least one regex"));
                }
                for v in values {
                    tpl.regexes
                        .push(Regex::new(&v.text).map_err(|e| err(v, format!("invalid regex {:?}: {e}", v.text)))?);
                }
            }
            "answer" | "additional" | "authority" => {
                if values.is_empty() {
                    return Err(err(prop, format!("{} needs a record template", prop.text)));
                }
                for v in values {
                    let rr = RrTemplate { source: v.text.clone(), parts: parse_template(v)? };
                    match prop.text.as_str() {
                        "answer" => tpl.answer.push(rr),
                        "additional" => tpl.additional.push(rr),
                        _ => tpl.authority.push(rr),
                    }
                }
            }
            "rcode" => {
                let v = values.first().ok_or_else(|| err(prop, "rcode needs a value"))?;
                tpl.rcode = match v.text.to_ascii_uppercase().as_str() {
                    "NOERROR" => rcode::NOERROR,
                    "FORMERR" => rcode::FORMERR,
                    "SERVFAIL" => rcode::SERVFAIL,
                    "NXDOMAIN" => rcode::NXDOMAIN,
                    "NOTIMP" => rcode::NOTIMP,
                    "REFUSED" => rcode::REFUSED,
                    other => return Err(err(v, format!("unknown rcode {other}"))),
                };
            }
            "fallthrough" => tpl.fallthrough = Fallthrough::parse("template", &values)?,
            "upstream" => {}
            "ederror" => return Err(err(prop, "ederror is not supported by this kdns build yet")),
            other => return Err(err(prop, format!("unknown property {other:?}"))),
        }
    }
    if tpl.regexes.is_empty() {
        tpl.regexes.push(Regex::new(".*").expect("static regex"));
    }
    Ok(tpl)
}

/// Splits a record template into text and `{{ … }}` expressions (the forms Corefiles use).
pub(super) fn parse_template(t: &Token) -> Result<Vec<Part>, Error> {
    let mut parts = Vec::new();
    let mut rest = t.text.as_str();
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            parts.push(Part::Text(rest[..start].to_string()));
        }
        let end = rest[start..].find("}}").ok_or_else(|| err(t, "unclosed {{ in template"))? + start;
        let expr = rest[start + 2..end].trim().trim_start_matches('-').trim_end_matches('-').trim();
        parts.push(expression(t, expr)?);
        rest = &rest[end + 2..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_string()));
    }
    Ok(parts)
}

fn expression(t: &Token, expr: &str) -> Result<Part, Error> {
    let words: Vec<&str> = expr.split_whitespace().collect();
    Ok(match words.as_slice() {
        [".Name"] => Part::Name,
        [".Zone"] => Part::Zone,
        [".Class"] => Part::Class,
        [".Type"] => Part::Type,
        [".Remote"] => Part::Remote,
        ["index", ".Match", n] => Part::Match(n.parse().map_err(|_| err(t, format!("bad group index in {expr:?}")))?),
        ["index", ".Group", g] => Part::Group(g.trim_matches('"').to_string()),
        [g] if g.starts_with(".Group.") => Part::Group(g[".Group.".len()..].to_string()),
        _ => {
            return Err(err(t, format!("template expression {{{{ {expr} }}}} is not supported by this kdns build yet")))
        }
    })
}
