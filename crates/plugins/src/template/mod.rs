//! `template`: answers from templates — a regex on the query name picks a template, whose
//! records (Go-template syntax, the subset real Corefiles use) are filled in and parsed as zone
//! file lines.

mod setup;
#[cfg(test)]
mod tests;

pub use setup::setup;

use crate::pkg::zones::Fallthrough;
use kdns_server::metrics::Kind;
use kdns_server::plugin::{Plugin, Reply, Request, Step};
use kdns_wire::{class, rcode, rtype, Message, Name};
use regex::Regex;

kdns_server::metric_family!(pub matches, "coredns_template_matches_total", "Counter of template regex matches.", Kind::Counter, ["server", "zone", "view", "class", "type"]);
kdns_server::metric_family!(pub template_failures, "coredns_template_template_failures_total", "Counter of go template failures.", Kind::Counter, ["server", "zone", "view", "class", "type", "section", "template"]);
kdns_server::metric_family!(pub rr_failures, "coredns_template_rr_failures_total", "Counter of mis-templated RRs.", Kind::Counter, ["server", "zone", "view", "class", "type", "section", "template"]);

/// One piece of a record template: text, or a value from the query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    Text(String),
    Name,
    Zone,
    Class,
    Type,
    Remote,
    /// `index .Match N`: the regex group by number (0 = the whole match).
    Match(usize),
    /// `.Group.NAME` / `index .Group "NAME"`: a named (or numbered) group.
    Group(String),
}

#[derive(Clone, Debug)]
pub struct RrTemplate {
    pub source: String,
    pub parts: Vec<Part>,
}

#[derive(Clone, Debug)]
pub struct Template {
    pub zones: Vec<Name>,
    pub qclass: u16,
    pub qtype: u16,
    pub regexes: Vec<Regex>,
    pub answer: Vec<RrTemplate>,
    pub additional: Vec<RrTemplate>,
    pub authority: Vec<RrTemplate>,
    pub rcode: u16,
    pub fallthrough: Fallthrough,
}

pub struct Templates {
    pub zones: Vec<Name>,
    pub templates: Vec<Template>,
}

/// What a matched query fills templates with.
struct Data<'a> {
    name: String,
    zone: String,
    class: String,
    qtype: String,
    remote: String,
    caps: regex::Captures<'a>,
    regex: &'a Regex,
}

impl RrTemplate {
    fn render(&self, d: &Data<'_>) -> Result<String, String> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Name => out.push_str(&d.name),
                Part::Zone => out.push_str(&d.zone),
                Part::Class => out.push_str(&d.class),
                Part::Type => out.push_str(&d.qtype),
                Part::Remote => out.push_str(&d.remote),
                Part::Match(i) => out.push_str(d.caps.get(*i).ok_or_else(|| format!("no group {i}"))?.as_str()),
                Part::Group(g) => {
                    let m = match g.parse::<usize>() {
                        Ok(i) => d.caps.get(i),
                        Err(_) => {
                            if !d.regex.capture_names().any(|n| n == Some(g.as_str())) {
                                return Err(format!("no group {g:?}"));
                            }
                            d.caps.name(g)
                        }
                    };
                    out.push_str(m.map_or("", |m| m.as_str()));
                }
            }
        }
        Ok(out)
    }
}

enum Outcome {
    /// Class, type or zone do not apply: the next template (or plugin) gets the query.
    Skip,
    /// No regex matched and no fallthrough, `rcode SERVFAIL`, or a template that did not
    /// render: SERVFAIL written by the server (CoreDNS returns the rcode without a reply).
    Fail,
    Reply(Message),
}

impl Templates {
    fn answer(&self, t: &Template, req: &Request<'_>) -> Outcome {
        let q = &req.msg.questions[0];
        let Some(zone) = t.zones.iter().find(|z| q.name.is_subdomain_of(z)) else { return Outcome::Skip };
        if t.qclass != class::ANY && q.qclass != class::ANY && q.qclass != t.qclass {
            return Outcome::Skip;
        }
        if t.qtype != rtype::ANY && q.qtype != rtype::ANY && q.qtype != t.qtype {
            return Outcome::Skip;
        }
        // Regexes see the lower-cased name, as `.Name` does (CoreDNS's `state.Name()`).
        let name = q.name.to_string().to_ascii_lowercase();
        for re in &t.regexes {
            let Some(caps) = re.captures(&name) else { continue };
            // Label and template values, made only for a query a template answers. A query of
            // class or type ANY takes the template's own.
            let zone_text = zone.to_string();
            let class_text = class::name(if q.qclass == class::ANY { t.qclass } else { q.qclass }).into_owned();
            let type_text = rtype::name(if q.qtype == rtype::ANY { t.qtype } else { q.qtype }).into_owned();
            let labels = |section: &str, tpl: &str| {
                [
                    req.server.to_string(),
                    zone_text.clone(),
                    String::new(),
                    class_text.clone(),
                    type_text.clone(),
                    section.to_string(),
                    tpl.to_string(),
                ]
            };
            matches().with(&[req.server, &zone_text, "", &class_text, &type_text]).inc();
            if t.rcode == rcode::SERVFAIL {
                return Outcome::Fail;
            }
            let d = Data {
                name: name.clone(),
                zone: zone_text.clone(),
                class: class_text.clone(),
                qtype: type_text.clone(),
                remote: req.remote.ip().to_string(),
                caps,
                regex: re,
            };
            let mut m = Message::reply_to(req.msg);
            m.set(kdns_wire::flag::AA, true);
            m.rcode = t.rcode;
            for (section, list) in [("answer", &t.answer), ("additional", &t.additional), ("authority", &t.authority)] {
                for tpl in list {
                    let fail = |family: fn() -> &'static kdns_server::metrics::Family| {
                        let l = labels(section, &tpl.source);
                        let l: Vec<&str> = l.iter().map(String::as_str).collect();
                        family().with(&l).inc();
                        Outcome::Fail
                    };
                    let Ok(text) = tpl.render(&d) else { return fail(template_failures) };
                    let Ok(rr) = kdns_wire::text::parse_rr(&text) else { return fail(rr_failures) };
                    match section {
                        "answer" => m.answers.push(rr),
                        "additional" => m.additional.push(rr),
                        _ => m.authority.push(rr),
                    }
                }
            }
            return Outcome::Reply(m);
        }
        if t.fallthrough.through(&q.name) {
            Outcome::Skip
        } else {
            Outcome::Fail
        }
    }
}

impl Plugin for Templates {
    fn name(&self) -> &'static str {
        "template"
    }

    fn serve(&self, req: &Request<'_>) -> Step {
        if !self.zones.iter().any(|z| req.qname().is_subdomain_of(z)) {
            return Step::Next;
        }
        for t in &self.templates {
            match self.answer(t, req) {
                Outcome::Skip => continue,
                Outcome::Fail => return Step::Reply(Reply::rcode(req.msg, rcode::SERVFAIL, None)),
                Outcome::Reply(m) => return Step::Reply(Reply::message(m, "template")),
            }
        }
        Step::Next
    }
}
