use super::{Answer, EdnsAction, EdnsData, Field, Match, Rewrite, Rule};
use kdns_corefile::{Directive, Error, Token};
use kdns_server::plugin::{Plugin, SetupCtx};
use regex::Regex;
use std::sync::Arc;

/// `rewrite [continue|stop] FIELD [TYPE] FROM TO [answer …]`, any number of times per block.
pub fn setup(_ctx: &mut SetupCtx<'_>, ds: &[&Directive]) -> Result<Option<Arc<dyn Plugin>>, Error> {
    let mut rules = Vec::new();
    for d in ds {
        rules.push(rule(d)?);
    }
    Ok(Some(Arc::new(Rewrite { rules })))
}

fn err(t: &Token, msg: impl std::fmt::Display) -> Error {
    Error::at(t, format!("plugin/rewrite: {msg}"))
}

fn fqdn(s: &str) -> String {
    let l = s.to_ascii_lowercase();
    if l.ends_with('.') {
        l
    } else {
        format!("{l}.")
    }
}

fn regex(t: &Token) -> Result<Regex, Error> {
    Regex::new(&t.text).map_err(|e| err(t, format!("invalid regex {:?}: {e}", t.text)))
}

fn matcher(kind: &str, from: &Token, to: &Token) -> Result<(Match, String), Error> {
    Ok(match kind {
        "exact" => (Match::Exact(fqdn(&from.text)), fqdn(&to.text)),
        "prefix" => (Match::Prefix(from.text.to_ascii_lowercase()), to.text.to_ascii_lowercase()),
        "suffix" => (Match::Suffix(fqdn(&from.text)), fqdn(&to.text)),
        "substring" => (Match::Substring(from.text.to_ascii_lowercase()), to.text.to_ascii_lowercase()),
        "regex" => (Match::Regex(regex(from)?, to.text.clone()), String::new()),
        other => return Err(err(from, format!("unknown match type {other:?}"))),
    })
}

fn split_kind<'a>(rest: &'a [&'a Token]) -> (&'a str, &'a [&'a Token]) {
    let kinds = ["exact", "prefix", "suffix", "substring", "regex"];
    match rest.first() {
        Some(t) if kinds.contains(&t.text.as_str()) => (t.text.as_str(), &rest[1..]),
        _ => ("exact", rest),
    }
}

fn rcode_value(t: &Token) -> Result<u16, Error> {
    if let Ok(n) = t.text.parse::<u16>() {
        return Ok(n);
    }
    (0..24u16)
        .find(|c| kdns_wire::rcode::name(*c).eq_ignore_ascii_case(&t.text))
        .ok_or_else(|| err(t, format!("invalid rcode {:?}", t.text)))
}

/// `edns0 local|nsid|subnet set|replace|append|unset …`.
fn edns0(field: &Token, rest: &[&Token]) -> Result<Field, Error> {
    let (Some(kind), Some(action)) = (rest.first(), rest.get(1)) else {
        return Err(err(field, "edns0 needs a type (local, nsid, subnet) and an action"));
    };
    let action_value = match action.text.to_ascii_lowercase().as_str() {
        "set" => EdnsAction::Set,
        "replace" => EdnsAction::Replace,
        "append" => EdnsAction::Append,
        "unset" => EdnsAction::Unset,
        other => return Err(err(action, format!("invalid edns0 action {other:?}"))),
    };
    let args = &rest[2..];
    let unset = action_value == EdnsAction::Unset;
    let (code, data) =
        match kind.text.to_ascii_lowercase().as_str() {
            "local" => {
                let code_tok = args.first().ok_or_else(|| err(kind, "edns0 local needs an option code"))?;
                let code = code_tok
                    .text
                    .strip_prefix("0x")
                    .and_then(|h| u16::from_str_radix(h, 16).ok())
                    .or_else(|| code_tok.text.parse().ok())
                    .ok_or_else(|| err(code_tok, format!("invalid EDNS0 local code {:?}", code_tok.text)))?;
                let data = match (args.get(1), unset) {
                    (None, true) => String::new(),
                    (Some(d), false) if args.len() == 2 => {
                        if let Some(hex) = d.text.strip_prefix("0x") {
                            if hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                                return Err(err(d, format!("invalid hex data {:?}", d.text)));
                            }
                        }
                        d.text.clone()
                    }
                    _ => return Err(err(kind, "edns0 local needs CODE and DATA (unset: CODE only)")),
                };
                // As CoreDNS: the code becomes one the server reflects back to clients.
                kdns_server::handler::support_option(code);
                (code, EdnsData::Local(data))
            }
            "nsid" => {
                if !args.is_empty() {
                    return Err(err(args[0], "edns0 nsid takes no data"));
                }
                (3, EdnsData::Nsid)
            }
            "subnet" => {
                let data =
                    match (args, unset) {
                        ([], true) => EdnsData::Subnet { v4: 0, v6: 0 },
                        ([v4, v6], false) => {
                            let v4n: u8 =
                                v4.text.parse().ok().filter(|n| *n <= 32).ok_or_else(|| {
                                    err(v4, format!("invalid IPv4 source prefix length {:?}", v4.text))
                                })?;
                            let v6n: u8 =
                                v6.text.parse().ok().filter(|n| *n <= 128).ok_or_else(|| {
                                    err(v6, format!("invalid IPv6 source prefix length {:?}", v6.text))
                                })?;
                            EdnsData::Subnet { v4: v4n, v6: v6n }
                        }
                        _ => return Err(err(kind, "edns0 subnet needs SOURCE_V4 SOURCE_V6 (unset: nothing)")),
                    };
                (8, data)
            }
            other => return Err(err(kind, format!("invalid edns0 type {other:?}"))),
        };
    Ok(Field::Edns0 { action: action_value, code, data })
}

pub(super) fn rule(d: &Directive) -> Result<Rule, Error> {
    let args: Vec<&Token> = d.args.iter().collect();
    let mut i = 0;
    let mut stop = true;
    if let Some(a) = args.first() {
        match a.text.as_str() {
            "continue" => {
                stop = false;
                i = 1;
            }
            "stop" => i = 1,
            _ => {}
        }
    }
    let field = args.get(i).ok_or_else(|| Error::at(&d.name, "plugin/rewrite: missing FIELD"))?;
    let rest = &args[i + 1..];
    let field = match field.text.as_str() {
        "name" => {
            let kinds = ["exact", "prefix", "suffix", "substring", "regex"];
            let (kind, from_to) = match rest.first() {
                Some(t) if kinds.contains(&t.text.as_str()) => (t.text.as_str(), &rest[1..]),
                _ => ("exact", rest),
            };
            let (Some(from), Some(to)) = (from_to.first(), from_to.get(1)) else {
                return Err(err(field, "name needs FROM and TO"));
            };
            let (m, to_text) = matcher(kind, from, to)?;
            let mut answers = Vec::new();
            let mut opts = from_to[2..].iter();
            while let Some(t) = opts.next() {
                if t.text != "answer" {
                    return Err(err(t, format!("unexpected option {:?}", t.text)));
                }
                let what = opts.next().ok_or_else(|| err(t, "answer needs auto, name or value"))?;
                match what.text.as_str() {
                    "auto" => answers.push(Arc::new(Answer::Auto)),
                    "name" | "value" => {
                        let (Some(f), Some(to)) = (opts.next(), opts.next()) else {
                            return Err(err(what, format!("answer {} needs FROM and TO", what.text)));
                        };
                        let re = regex(f)?;
                        answers.push(Arc::new(if what.text == "name" {
                            Answer::Name(re, to.text.clone())
                        } else {
                            Answer::Value(re, to.text.clone())
                        }));
                    }
                    other => return Err(err(what, format!("unknown answer rewrite {other:?}"))),
                }
            }
            // CoreDNS's exact rules always map answers back (its `auto`), with or without
            // `answer auto` given.
            if kind == "exact" && !answers.iter().any(|a| matches!(**a, Answer::Auto)) {
                answers.insert(0, Arc::new(Answer::Auto));
            }
            Field::Name { matcher: m, to: to_text, answers }
        }
        "type" | "class" => {
            let (Some(from), Some(to), None) = (rest.first(), rest.get(1), rest.get(2)) else {
                return Err(err(field, format!("{} needs exactly FROM and TO", field.text)));
            };
            let parse = |t: &Token| -> Result<u16, Error> {
                if field.text == "type" {
                    kdns_wire::rtype::from_name(&t.text).ok_or_else(|| err(t, format!("invalid type {:?}", t.text)))
                } else {
                    match t.text.to_ascii_uppercase().as_str() {
                        "IN" => Ok(1),
                        "CH" => Ok(3),
                        "HS" => Ok(4),
                        _ => Err(err(t, format!("invalid class {:?}", t.text))),
                    }
                }
            };
            let (from, to) = (parse(from)?, parse(to)?);
            if field.text == "type" {
                Field::Type { from, to }
            } else {
                Field::Class { from, to }
            }
        }
        "ttl" => {
            let kinds = ["exact", "prefix", "suffix", "substring", "regex"];
            let (kind, rest) = match rest.first() {
                Some(t) if kinds.contains(&t.text.as_str()) => (t.text.as_str(), &rest[1..]),
                _ => ("exact", rest),
            };
            let (Some(from), Some(value), None) = (rest.first(), rest.get(1), rest.get(2)) else {
                return Err(err(field, "ttl needs a name and a TTL or range"));
            };
            let (m, _) = matcher(kind, from, from)?;
            let bad = || err(value, format!("invalid TTL {:?}", value.text));
            let (min, max) = match value.text.split_once('-') {
                Some((a, b)) => (
                    if a.is_empty() { 0 } else { a.parse().map_err(|_| bad())? },
                    if b.is_empty() { u32::MAX } else { b.parse().map_err(|_| bad())? },
                ),
                None => {
                    let v: u32 = value.text.parse().map_err(|_| bad())?;
                    (v, v)
                }
            };
            if min > max {
                return Err(bad());
            }
            Field::Ttl { matcher: m, min, max }
        }
        "rcode" => {
            let (kind, rest) = split_kind(rest);
            let (Some(name), Some(from), Some(to), None) = (rest.first(), rest.get(1), rest.get(2), rest.get(3)) else {
                return Err(err(field, "rcode needs a name, FROM and TO"));
            };
            let (m, _) = matcher(kind, name, name)?;
            Field::Rcode { matcher: m, from: rcode_value(from)?, to: rcode_value(to)? }
        }
        "cname" => {
            let (kind, rest) = split_kind(rest);
            let (Some(from), Some(to), None) = (rest.first(), rest.get(1), rest.get(2)) else {
                return Err(err(field, "cname needs FROM and TO"));
            };
            let (m, to) = matcher(kind, from, to)?;
            Field::Cname(Arc::new((m, to)))
        }
        "edns0" => edns0(field, rest)?,
        other => return Err(err(field, format!("invalid field {other:?}"))),
    };
    Ok(Rule { stop, field })
}
