//! `k8s_external`: a zone that resolves Services' external IPs and load-balancer addresses
//! (and, with `headless`, headless Services' endpoints) from the `kubernetes` plugin's data in
//! the same server block.

mod setup;
#[cfg(test)]
mod tests;

pub use setup::setup;

use crate::pkg::links::KubernetesCell;
use kdns_kubernetes::answer::Outcome;
use kdns_kubernetes::{Engine, Settings};
use kdns_server::plugin::{Plugin, Request, Step};
use kdns_wire::{flag, rcode, Message, Name};
use std::sync::{Arc, OnceLock};

pub struct K8sExternal {
    zones: Vec<Name>,
    apex: String,
    ttl: u32,
    headless: bool,
    fallthrough: crate::pkg::zones::Fallthrough,
    source: Arc<KubernetesCell>,
    /// The kubernetes settings with this plugin's TTL, made once on first use.
    settings: OnceLock<Settings>,
}

impl Plugin for K8sExternal {
    fn name(&self) -> &'static str {
        "k8s_external"
    }

    fn serve(&self, req: &Request<'_>) -> Step {
        let qname = req.qname();
        let Some(zone) = self.zones.iter().filter(|z| qname.is_subdomain_of(z)).max_by_key(|z| z.label_count()) else {
            return Step::Next;
        };
        // Without a kubernetes plugin in the block there is nothing to resolve (as CoreDNS).
        let Some(source) = self.source.get() else {
            return Step::Next;
        };
        let settings = self.settings.get_or_init(|| Settings { ttl: self.ttl, ..source.settings.clone() });
        let index = source.shared.read();
        let engine = Engine { index: &index, settings };
        let answer = engine.external(zone, qname, req.qtype(), &self.apex, self.headless);
        let code = answer.rcode();
        if code == rcode::NXDOMAIN && self.fallthrough.through(qname) {
            return Step::Next;
        }
        let mut m = Message::reply_to(req.msg);
        m.set(flag::AA, answer.authoritative);
        m.rcode = code;
        let chase = match answer.outcome {
            Outcome::Answer { answer, additional, chase } => {
                m.answers = answer;
                m.additional = additional;
                chase
            }
            Outcome::NameError | Outcome::Refused => None,
        };
        if m.answers.is_empty() {
            m.authority.push(engine.external_soa(zone, &self.apex));
        }
        drop(index);
        crate::pkg::upstream::reply_resolving(req, m, chase.map(|c| (c.target, c.qtype)), "k8s_external")
    }
}
