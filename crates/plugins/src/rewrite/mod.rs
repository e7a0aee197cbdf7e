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
    /// The rewritten text when `name` (lower-case FQDN) matches.
    pub fn apply(&self, name: &str, to: &str) -> Option<String> {
        match self {
            Match::Exact(from) => (name == from).then(|| to.to_string()),
            Match::Prefix(from) => name.strip_prefix(from.as_str()).map(|rest| format!("{to}{rest}")),
            Match::Suffix(from) => name.strip_suffix(from.as_str()).map(|rest| format!("{rest}{to}")),
            Match::Substring(from) => name.contains(from.as_str()).then(|| name.replacen(from.as_str(), to, 1)),
            Match::Regex(re, template) => {
                let caps = re.captures(name)?;
                let mut out = template.clone();
                for i in (0..caps.len()).rev() {
                    out = out.replace(&format!("{{{i}}}"), caps.get(i).map_or("", |m| m.as_str()));
                }
                Some(out)
            }
        }
    }
}

/// How answers are rewritten back after a name rewrite.
#[derive(Clone, Debug)]
pub enum Answer {
    /// Owner names equal to the rewritten name go back to the asked name.
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
        answers: Vec<Answer>,
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
}

#[derive(Clone, Debug)]
pub struct Rule {
    pub stop: bool,
    pub field: Field,
}

pub struct Rewrite {
    pub rules: Vec<Rule>,
}

/// What a query became and what to do on the way back.
struct Plan {
    msg: Message,
    answers: Vec<(Answer, String, String)>,
    ttls: Vec<(u32, u32)>,
}

impl Rewrite {
    /// What the query becomes; `None` (and no copy of the query) when no rule applies.
    fn plan(&self, query: &Message) -> Option<Plan> {
        let asked = &query.questions[0];
        let (mut name, mut qtype, mut qclass) = (None::<Name>, asked.qtype, asked.qclass);
        // The current name as lower-case text, made once and only for rules that need it.
        let mut text: Option<String> = None;
        let mut answers = Vec::new();
        let mut ttls = Vec::new();
        let mut changed = false;
        for rule in &self.rules {
            let applied = match &rule.field {
                Field::Name { matcher, to, answers: a } => {
                    let cur = text.get_or_insert_with(|| asked.name.to_string().to_ascii_lowercase());
                    match matcher.apply(cur, to).and_then(|n| Name::from_ascii(&n).ok().map(|parsed| (n, parsed))) {
                        Some((new_text, parsed)) => {
                            let before = std::mem::replace(cur, new_text.to_ascii_lowercase());
                            answers.extend(a.iter().map(|x| (x.clone(), before.clone(), cur.clone())));
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
                Field::Ttl { matcher, min, max } => {
                    let cur = text.get_or_insert_with(|| asked.name.to_string().to_ascii_lowercase());
                    let hit = matcher.apply(cur, "").is_some();
                    if hit {
                        ttls.push((*min, *max));
                    }
                    hit
                }
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
        Some(Plan { msg, answers, ttls })
    }
}

fn regex_rewrite(re: &Regex, template: &str, name: &Name) -> Option<Name> {
    let text = name.to_string().to_ascii_lowercase();
    Match::Regex(re.clone(), template.to_string()).apply(&text, "").and_then(|n| Name::from_ascii(&n).ok())
}

fn value_name(data: &mut RData) -> Option<&mut Name> {
    match data {
        RData::Cname(n) | RData::Ns(n) | RData::Ptr(n) => Some(n),
        RData::Mx { exchange, .. } => Some(exchange),
        RData::Srv { target, .. } => Some(target),
        _ => None,
    }
}

fn restore(reply: &mut Reply, original: &Message, answers: &[(Answer, String, String)], ttls: &[(u32, u32)]) {
    let m = reply.msg();
    m.id = original.id;
    m.questions = original.questions.clone();
    // The question matched a ttl rule: every answer TTL goes into its range.
    for (min, max) in ttls {
        for rr in m.answers.iter_mut() {
            rr.ttl = rr.ttl.clamp(*min, *max);
        }
    }
    for rr in m.answers.iter_mut() {
        for (how, asked, rewritten) in answers {
            match how {
                Answer::Auto => {
                    if rr.name.to_string().eq_ignore_ascii_case(rewritten) {
                        if let Ok(n) = Name::from_ascii(asked) {
                            rr.name = n;
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
            }
        }
    }
}

impl Plugin for Rewrite {
    fn name(&self) -> &'static str {
        "rewrite"
    }

    fn serve(&self, req: &Request<'_>) -> Step {
        let Some(plan) = self.plan(req.msg) else { return Step::Next };
        let Some(rest) = req.rest() else { return Step::Next };
        let original = req.msg.clone();
        Step::Pending(Box::pin(async move {
            let mut reply = rest.run(plan.msg).await;
            restore(&mut reply, &original, &plan.answers, &plan.ttls);
            reply
        }))
    }
}
