//! Go `flag`-compatible command line parsing: `-flag value`, `-flag=value`, `--flag`, booleans as
//! `-flag` or `-flag=false`, parsing stops at the first non-flag or `--`.

use std::collections::BTreeMap;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Bool,
    Value,
}

pub struct FlagSpec {
    pub name: &'static str,
    pub kind: Kind,
    pub default: &'static str,
    pub help: &'static str,
}

#[derive(Debug, Default)]
pub struct Parsed {
    pub values: BTreeMap<&'static str, String>,
    pub rest: Vec<String>,
    pub help: bool,
}

impl Parsed {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
    pub fn bool(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| v == "true")
    }
}

pub fn parse(specs: &[FlagSpec], args: &[String]) -> Result<Parsed, String> {
    let mut out = Parsed::default();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            out.rest.extend(args[i + 1..].iter().cloned());
            break;
        }
        if !a.starts_with('-') || a == "-" {
            out.rest.extend(args[i..].iter().cloned());
            break;
        }
        let body = a.strip_prefix("--").unwrap_or(&a[1..]);
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        if name == "h" || name == "help" {
            out.help = true;
            i += 1;
            continue;
        }
        let spec =
            specs.iter().find(|s| s.name == name).ok_or_else(|| format!("flag provided but not defined: -{name}"))?;
        let value = match (spec.kind, inline) {
            (Kind::Bool, None) => "true".to_string(),
            (Kind::Bool, Some(v)) => match v.as_str() {
                "1" | "t" | "T" | "true" | "TRUE" | "True" => "true".into(),
                "0" | "f" | "F" | "false" | "FALSE" | "False" => "false".into(),
                _ => return Err(format!("invalid boolean value {v:?} for -{name}")),
            },
            (Kind::Value, Some(v)) => v,
            (Kind::Value, None) => {
                i += 1;
                args.get(i).cloned().ok_or_else(|| format!("flag needs an argument: -{name}"))?
            }
        };
        out.values.insert(spec.name, value);
        i += 1;
    }
    Ok(out)
}

/// Usage text in the shape of Go's `flag.PrintDefaults`.
pub fn usage(program: &str, specs: &[FlagSpec]) -> String {
    let mut s = format!("Usage of {program}:\n");
    for f in specs {
        let arg = if f.kind == Kind::Value { " string" } else { "" };
        s.push_str(&format!("  -{}{}\n    \t{}", f.name, arg, f.help));
        if !f.default.is_empty() && f.kind == Kind::Value {
            s.push_str(&format!(" (default {:?})", f.default));
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[FlagSpec] = &[
        FlagSpec { name: "conf", kind: Kind::Value, default: "", help: "" },
        FlagSpec { name: "quiet", kind: Kind::Bool, default: "", help: "" },
        FlagSpec { name: "dns.port", kind: Kind::Value, default: "53", help: "" },
    ];

    fn p(a: &[&str]) -> Result<Parsed, String> {
        parse(SPECS, &a.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn go_forms() {
        let r = p(&["-conf", "a", "--quiet", "-dns.port=1053"]).unwrap();
        assert_eq!(r.get("conf"), Some("a"));
        assert!(r.bool("quiet"));
        assert_eq!(r.get("dns.port"), Some("1053"));
        let r = p(&["--conf=b", "-quiet=false", "extra"]).unwrap();
        assert_eq!(r.get("conf"), Some("b"));
        assert!(!r.bool("quiet"));
        assert_eq!(r.rest, vec!["extra"]);
        assert!(p(&["-nope"]).is_err());
        assert!(p(&["-conf"]).is_err());
        assert!(p(&["-h"]).unwrap().help);
    }
}
