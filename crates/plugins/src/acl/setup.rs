use super::{Acl, Action, Net, Policy, Rule};
use kdns_corefile::{Directive, Dispenser, Error, Token};
use kdns_server::plugin::{Plugin, SetupCtx};
use std::net::IpAddr;
use std::sync::Arc;

/// `acl [ZONES...] { ACTION [type QTYPE...] [net SOURCE...] }`, any number of times per block.
pub fn setup(ctx: &mut SetupCtx<'_>, ds: &[&Directive]) -> Result<Option<Arc<dyn Plugin>>, Error> {
    Ok(Some(Arc::new(Acl::new(policies(ctx.zones, ds)?))))
}

pub(super) fn policies(block_zones: &[String], ds: &[&Directive]) -> Result<Vec<Policy>, Error> {
    let mut policies = Vec::new();
    for d in ds {
        let disp = Dispenser::new(d);
        let args: Vec<&Token> = disp.args();
        let zones = crate::pkg::zones::plugin_zones("acl", &args, block_zones, &d.name)?;
        let mut rules = Vec::new();
        for (action_tok, values) in disp.block() {
            rules.push(rule(action_tok, values)?);
        }
        policies.push(Policy { zones, rules });
    }
    Ok(policies)
}

fn rule(action_tok: &Token, values: Vec<&Token>) -> Result<Rule, Error> {
    let action = match action_tok.text.as_str() {
        "allow" => Action::Allow,
        "block" => Action::Block,
        "filter" => Action::Filter,
        "drop" => Action::Drop,
        other => return Err(Error::at(action_tok, format!("plugin/acl: unexpected token {other:?}"))),
    };
    let mut rule = Rule { action, types: Vec::new(), nets: Vec::new() };
    let mut section: Option<&str> = None;
    for v in values {
        match v.text.as_str() {
            "type" | "net" => {
                section = Some(if v.text == "type" { "type" } else { "net" });
                continue;
            }
            _ => {}
        }
        match section {
            None => {
                return Err(Error::at(
                    v,
                    format!("plugin/acl: unexpected token {:?}, expected 'type' or 'net'", v.text),
                ))
            }
            Some(_) if v.text == "*" => {}
            Some("type") => {
                let t = kdns_wire::rtype::from_name(&v.text).ok_or_else(|| {
                    Error::at(v, format!("plugin/acl: unexpected token {:?}; expect legal QTYPE", v.text))
                })?;
                rule.types.push(t);
            }
            Some(_) => rule.nets.push(net(v)?),
        }
    }
    Ok(rule)
}

fn net(t: &Token) -> Result<Net, Error> {
    let bad = || Error::at(t, format!("plugin/acl: illegal CIDR notation {:?}", t.text));
    let (addr, prefix) = match t.text.split_once('/') {
        Some((a, p)) => (a.parse::<IpAddr>().map_err(|_| bad())?, Some(p.parse::<u8>().map_err(|_| bad())?)),
        None => (t.text.parse::<IpAddr>().map_err(|_| bad())?, None),
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = prefix.unwrap_or(max);
    if prefix > max {
        return Err(bad());
    }
    Ok(Net { addr, prefix })
}
