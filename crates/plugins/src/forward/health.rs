//! Health checking: after a failed exchange an upstream is probed (`. IN NS`, or the configured
//! domain) until a reply parses; consecutive failures mark it down for the selection policy.

use super::healthcheck_failures;
use super::upstream::{Transport, Upstream};
use kdns_wire::{class, flag, rtype, Message, Question};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct HealthCheck {
    pub interval: Duration,
    pub recursion_desired: bool,
    pub domain: kdns_wire::Name,
    pub transport: Transport,
}

impl Upstream {
    /// Starts the prober unless one runs: `. IN NS` (or `domain`) every `interval` until a
    /// reply parses, then resets the failure count (CoreDNS semantics: any parsed reply is healthy).
    pub fn start_probe(self: &Arc<Self>, check: HealthCheck) {
        if self.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let up = self.clone();
        kdns_server::background::spawn(async move {
            loop {
                let mut q = Message { flags: if check.recursion_desired { flag::RD } else { 0 }, ..Message::default() };
                q.questions.push(Question { name: check.domain.clone(), qtype: rtype::NS, qclass: class::IN });
                match up.exchange(&q, check.transport, Duration::from_secs(1), Duration::ZERO).await {
                    Ok(_) => {
                        up.fails.store(0, Ordering::Relaxed);
                        break;
                    }
                    Err(_) => {
                        healthcheck_failures().with(&["forward", &up.label]).inc();
                        up.fails.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(check.interval).await;
            }
            up.probing.store(false, Ordering::Release);
        });
    }
}
