//! `rewrite`: rewrites the question (name, type, class) before the plugins after it see it, runs
//! them with the rewritten query, then restores the question in the reply and, as configured,
//! rewrites answer names, answer values and TTLs back. Rules apply in order; `stop` (the
//! default) ends at the first rule that rewrote, `continue` goes on.

mod setup;
#[cfg(test)]
mod tests;

pub use setup::setup;

use kdns_server::plugin::{Plugin, Reply, Request, Step};
use kdns_wire::{Message, Name, RData};
use regex::Regex;
use std::sync::Arc;

#[derive(Clone, Debug)]
pub enum Match {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Substring(String),
    /// The pattern and the replacement with `{N}` group references.
    Regex(Regex, String),
}

impl Match {
    /// Whether `name` (lower-case FQDN) matches, without building a rewritten name.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Match::Exact(from) => name == from,
            Match::Prefix(from) => name.starts_with(from.as_str()),
            Match::Suffix(from) => name.ends_with(from.as_str()),
            Match::Substring(from) => name.contains(from.as_str()),
            Match::Regex(re, _) => re.is_match(name),
        }
    }

    /// The rewritten text when `name` (lower-case FQDN) matches.
    pub fn apply(&self, name: &str, to: &str) -> Option<String> {
        match self {
            Match::Exact(from) => (name == from).then(|| to.to_string()),
            Match::Prefix(from) => name.strip_prefix(from.as_str()).map(|rest| format!("{to}{rest}")),
            Match::Suffix(from) => name.strip_suffix(from.as_str()).map(|rest| format!("{rest}{to}")),
            Match::Substring(from) => name.contains(from.as_str()).then(|| name.replacen(from.as_str(), to, 1)),
            Match::Regex(re, template) => substitute(re, template, name),
        }
    }
}

/// `template` with `{N}` replaced by the groups of `re` in `name`, when it matches.
fn substitute(re: &Regex, template: &str, name: &str) -> Option<String> {
    let caps = re.captures(name)?;
    let mut out = template.to_string();
    for i in (0..caps.len()).rev() {
        out = out.replace(&format!("{{{i}}}"), caps.get(i).map_or("", |m| m.as_str()));
    }
    Some(out)
}

/// How answers are rewritten back after a name rewrite.
#[derive(Clone, Debug)]
pub enum Answer {
    /// Owner names and name values equal to the rewritten name, or below it, go back to the
    /// asked name (CoreDNS's remap; `exact` rules always have it).
    Auto,
    /// Owner names matching the regex are rewritten with the template.
    Name(Regex, String),
    /// Name values (CNAME, SRV, MX, NS, PTR targets) matching the regex are rewritten.
    Value(Regex, String),
}

#[derive(Clone, Debug)]
pub enum Field {
    Name {
        matcher: Match,
        to: String,
        /// Shared with the plans of the queries they apply to.
        answers: Vec<Arc<Answer>>,
    },
    Type {
        from: u16,
        to: u16,
    },
    Class {
        from: u16,
        to: u16,
    },
    /// Answer TTLs of names that match are set into [min, max].
    Ttl {
        matcher: Match,
        min: u32,
        max: u32,
    },
    /// The reply's rcode `from` becomes `to` for names that match.
    Rcode {
        matcher: Match,
        from: u16,
        to: u16,
    },
    /// CNAME targets in the reply that match are rewritten and the new target resolved.
    Cname(Arc<(Match, String)>),
    /// An EDNS0 option of the query is set, replaced, appended or removed.
    Edns0 {
        action: EdnsAction,
        code: u16,
        data: EdnsData,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EdnsAction {
    /// Replace the option when present, add it otherwise.
    Set,
    /// Replace the option only when present.
    Replace,
    /// Add the option even when present.
    Append,
    Unset,
}

#[derive(Clone, Debug)]
pub enum EdnsData {
    /// Literal bytes (hex `0x…` or a string) with `{qname}`-style variables expanded.
    Local(String),
    Nsid,
    /// EDNS Client Subnet from the client's address with these source prefix lengths.
    Subnet {
        v4: u8,
        v6: u8,
    },
}

#[derive(Clone, Debug)]
pub struct Rule {
    pub stop: bool,
    pub field: Field,
}

pub struct Rewrite {
    pub rules: Vec<Rule>,
}

/// One per-record rule of the way back.
enum Response {
    /// An answer rewrite of a name rule: (how, the name before the rule, the name after it).
    Answer(Arc<Answer>, String, String),
    /// A `ttl` rule's range.
    Ttl(u32, u32),
}

/// What a query became and what to do on the way back.
struct Plan {
    msg: Message,
    /// Per-record rules for the way back, in the order the rules applied (run in reverse).
    responses: Vec<Response>,
    rcodes: Vec<(u16, u16)>,
    cnames: Vec<Arc<(Match, String)>>,
}

impl Rewrite {
    /// What the query becomes; `None` (and no copy of the query) when no rule applies.
    fn plan(&self, req: &Request<'_>) -> Option<Plan> {
        let query = req.msg;
        let asked = &query.questions[0];
        let mut rcodes = Vec::new();
        let mut cnames = Vec::new();
        let mut edns: Vec<(EdnsAction, u16, Vec<u8>)> = Vec::new();
        let (mut name, mut qtype, mut qclass) = (None::<Name>, asked.qtype, asked.qclass);
        // The current name as lower-case text, made once and only for rules that need it.
        let mut text: Option<String> = None;
        let mut responses = Vec::new();
        let mut changed = false;
        for rule in &self.rules {
            let applied = match &rule.field {
                Field::Name { matcher, to, answers: a } => {
                    let cur = current(&mut text, &asked.name);
                    match matcher.apply(cur, to).and_then(|n| Name::from_ascii(&n).ok().map(|parsed| (n, parsed))) {
                        Some((new_text, parsed)) => {
                            let before = std::mem::replace(cur, new_text.to_ascii_lowercase());
                            responses
                                .extend(a.iter().map(|x| Response::Answer(x.clone(), before.clone(), cur.clone())));
                            name = Some(parsed);
                            true
                        }
                        None => false,
                    }
                }
                Field::Type { from, to } if qtype == *from => {
                    qtype = *to;
                    true
                }
                Field::Class { from, to } if qclass == *from => {
                    qclass = *to;
                    true
                }
                Field::Ttl { matcher, min, max } => matcher
                    .matches(current(&mut text, &asked.name))
                    .then(|| responses.push(Response::Ttl(*min, *max)))
                    .is_some(),
                Field::Rcode { matcher, from, to } => {
                    matcher.matches(current(&mut text, &asked.name)).then(|| rcodes.push((*from, *to))).is_some()
                }
                Field::Cname(rule) => {
                    cnames.push(rule.clone());
                    true
                }
                Field::Edns0 { action, code, data } => match edns_bytes(data, req) {
                    Some(bytes) => {
                        edns.push((*action, *code, bytes));
                        true
                    }
                    None => false,
                },
                _ => false,
            };
            changed |= applied;
            if applied && rule.stop {
                break;
            }
        }
        if !changed {
            return None;
        }
        let mut msg = query.clone();
        let q = &mut msg.questions[0];
        if let Some(n) = name {
            q.name = n;
        }
        (q.qtype, q.qclass) = (qtype, qclass);
        if !edns.is_empty() {
            // As CoreDNS: a query without OPT gets one (4096 octets) to carry the option.
            let opt = msg.edns.get_or_insert_with(|| kdns_wire::Edns { udp_size: 4096, ..Default::default() });
            for (action, code, bytes) in edns {
                let at = opt.options.iter().position(|(c, _)| *c == code);
                match (action, at) {
                    (EdnsAction::Set | EdnsAction::Replace, Some(i)) => opt.options[i].1 = bytes,
                    (EdnsAction::Set | EdnsAction::Append, None) | (EdnsAction::Append, Some(_)) => {
                        opt.options.push((code, bytes))
                    }
                    (EdnsAction::Replace, None) => {}
                    (EdnsAction::Unset, _) => opt.options.retain(|(c, _)| *c != code),
                }
            }
        }
        Some(Plan { msg, responses, rcodes, cnames })
    }
}

/// The option payload for this request; `None` when it does not apply (subnet for a client
/// whose family has prefix length 0 is still sent, as CoreDNS does).
fn edns_bytes(data: &EdnsData, req: &Request<'_>) -> Option<Vec<u8>> {
    match data {
        EdnsData::Nsid => Some(Vec::new()),
        EdnsData::Local(text) => {
            let expanded = expand(text, req);
            match expanded.strip_prefix("0x") {
                Some(hex) => (0..hex.len())
                    .step_by(2)
                    .map(|i| hex.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
                    .collect(),
                None => Some(expanded.into_bytes()),
            }
        }
        EdnsData::Subnet { v4, v6 } => {
            let (family, prefix, octets): (u16, u8, Vec<u8>) = match req.remote.ip() {
                std::net::IpAddr::V4(a) => (1, *v4, a.octets().to_vec()),
                std::net::IpAddr::V6(a) => match a.to_ipv4_mapped() {
                    Some(v4addr) => (1, *v4, v4addr.octets().to_vec()),
                    None => (2, *v6, a.octets().to_vec()),
                },
            };
            let keep = (prefix as usize).div_ceil(8);
            let mut addr: Vec<u8> = octets.into_iter().take(keep).collect();
            if prefix % 8 != 0 {
                if let Some(last) = addr.last_mut() {
                    *last &= 0xffu8 << (8 - prefix % 8);
                }
            }
            let mut out = family.to_be_bytes().to_vec();
            out.extend([prefix, 0]);
            out.extend(addr);
            Some(out)
        }
    }
}

/// CoreDNS's rewrite variables.
fn expand(text: &str, req: &Request<'_>) -> String {
    if !text.contains('{') {
        return text.to_string();
    }
    text.replace("{qname}", &req.qname().to_string())
        .replace("{qtype}", &kdns_wire::rtype::name(req.qtype()))
        .replace("{client_ip}", &req.remote.ip().to_string())
        .replace("{client_port}", &req.remote.port().to_string())
        .replace("{protocol}", req.proto.as_str())
        .replace("{server_ip}", &req.local.ip().to_string())
        .replace("{server_port}", &req.local.port().to_string())
}

/// The current (possibly already rewritten) query name as lower-case text, rendered once.
fn current<'t>(text: &'t mut Option<String>, asked: &Name) -> &'t mut String {
    text.get_or_insert_with(|| asked.to_string().to_ascii_lowercase())
}

fn regex_rewrite(re: &Regex, template: &str, name: &Name) -> Option<Name> {
    // Matched against the name as it stands, as CoreDNS's answer rules do.
    let text = name.to_string();
    substitute(re, template, &text).and_then(|n| Name::from_ascii(&n).ok())
}

fn value_name(data: &mut RData) -> Option<&mut Name> {
    match data {
        RData::Cname(n) | RData::Ns(n) | RData::Ptr(n) => Some(n),
        RData::Mx { exchange, .. } => Some(exchange),
        RData::Srv { target, .. } => Some(target),
        RData::Soa { mname, .. } => Some(mname),
        _ => None,
    }
}

fn restore(reply: &mut Reply, original: &Message, plan: &Plan) {
    let m = reply.msg();
    m.id = original.id;
    m.questions = original.questions.clone();
    for (from, to) in &plan.rcodes {
        if m.rcode == *from {
            m.rcode = *to;
        }
    }
    // CoreDNS's ResponseReverter: every record of every section, the rules in reverse order.
    for rr in m.authority.iter_mut().chain(m.answers.iter_mut()).chain(m.additional.iter_mut()) {
        for response in plan.responses.iter().rev() {
            match response {
                Response::Ttl(min, max) => {
                    if rr.ttl < *min {
                        rr.ttl = *min;
                    } else if rr.ttl > *max {
                        rr.ttl = *max;
                    }
                }
                Response::Answer(how, before, rewritten) => match &**how {
                    Answer::Auto => {
                        if let Some(n) = remap(&rr.name, rewritten, before) {
                            rr.name = n;
                        }
                        if let Some(v) = value_name(&mut rr.data) {
                            if let Some(n) = remap(v, rewritten, before) {
                                *v = n;
                            }
                        }
                    }
                    Answer::Name(re, t) => {
                        if let Some(n) = regex_rewrite(re, t, &rr.name) {
                            rr.name = n;
                        }
                    }
                    Answer::Value(re, t) => {
                        if let Some(v) = value_name(&mut rr.data) {
                            if let Some(n) = regex_rewrite(re, t, v) {
                                *v = n;
                            }
                        }
                    }
                },
            }
        }
    }
}

/// CoreDNS's remap of a name: `from` itself, or a name ending in `.from`, gets `to` in place of
/// that suffix. The comparison is on the text as it stands (case-sensitive), as in CoreDNS.
fn remap(name: &Name, from: &str, to: &str) -> Option<Name> {
    let text = name.to_string();
    if text == from {
        return Name::from_ascii(to).ok();
    }
    let head = text.strip_suffix(from).filter(|h| h.ends_with('.'))?;
    Name::from_ascii(&format!("{head}{to}")).ok()
}

impl Plugin for Rewrite {
    fn name(&self) -> &'static str {
        "rewrite"
    }

    fn serve(&self, req: &Request<'_>) -> Step {
        let Some(plan) = self.plan(req) else { return Step::Next };
        let Some(rest) = req.rest() else { return Step::Next };
        let original = req.msg.clone();
        Step::Pending(Box::pin(async move {
            let mut reply = rest.clone().run(plan.msg.clone()).await;
            restore(&mut reply, &original, &plan);
            if !plan.cnames.is_empty() {
                rewrite_cnames(&mut reply, &plan.cnames, original.questions[0].qtype, rest).await;
            }
            reply
        }))
    }
}

/// CNAME targets matching a `cname` rule are rewritten; the records that followed the old target
/// are replaced by the new target's answers from the rest of the chain.
async fn rewrite_cnames(
    reply: &mut Reply,
    rules: &[Arc<(Match, String)>],
    qtype: u16,
    rest: kdns_server::plugin::Rest,
) {
    let m = reply.msg();
    let Some(i) = m.answers.iter().position(|r| matches!(r.data, RData::Cname(_))) else { return };
    let RData::Cname(target) = &m.answers[i].data else { return };
    let text = target.to_string().to_ascii_lowercase();
    let Some(new) = rules.iter().find_map(|rule| rule.0.apply(&text, &rule.1)) else { return };
    let Ok(new_name) = Name::from_ascii(&new) else { return };
    m.answers[i].data = RData::Cname(new_name.clone());
    m.answers.truncate(i + 1);
    if qtype != kdns_wire::rtype::CNAME {
        crate::pkg::upstream::append_resolved(m, new_name, qtype, rest).await;
    }
}
