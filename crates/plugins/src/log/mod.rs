//! `log`: one line per query in CoreDNS's Common Log Format (or a custom format).

mod format;
mod setup;
#[cfg(test)]
mod tests;

pub use format::{Format, COMBINED_FORMAT, COMMON_FORMAT};
pub use setup::setup;

use kdns_server::plugin::{Done, Plugin, Request};
use kdns_wire::{rcode, rtype, Name};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    All,
    Success,
    Denial,
    Error,
}

pub struct Rule {
    pub names: Vec<Name>,
    pub format: Format,
    pub classes: Vec<Class>,
}

pub struct Log {
    pub rules: Vec<Rule>,
}

/// CoreDNS's response classification (`response.Typify` then `Classify`).
pub fn classify(done: &Done<'_>) -> Class {
    match done.reply.rcode_value() {
        rcode::NOERROR => {
            let m = done.reply.as_message();
            let nodata = m.answers.is_empty() && m.authority.iter().any(|r| r.rtype == rtype::SOA);
            if nodata {
                Class::Denial
            } else {
                Class::Success
            }
        }
        rcode::NXDOMAIN => Class::Denial,
        _ => Class::Error,
    }
}

impl Plugin for Log {
    fn name(&self) -> &'static str {
        "log"
    }

    fn serves(&self) -> bool {
        false
    }

    fn observe(&self, req: &Request<'_>, done: &Done<'_>) {
        let qname = req.qname();
        let Some(rule) = self.rules.iter().find(|r| r.names.iter().any(|n| qname.is_subdomain_of(n))) else {
            return;
        };
        if !rule.classes.contains(&Class::All) && !rule.classes.contains(&classify(done)) {
            return;
        }
        kdns_server::log::line(format!("[INFO] {}", rule.format.render(req, done)));
    }
}
