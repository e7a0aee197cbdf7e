//! Response classification and minimal TTL (CoreDNS `response.Typify`, `dnsutil.MinimalTTL`).

use kdns_wire::{opcode, rcode, rtype, Message};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseType {
    NoError,
    NameError,
    NoData,
    Delegation,
    ServerError,
    Meta,
    Update,
    OtherError,
}

pub fn typify(m: &Message) -> ResponseType {
    match m.opcode() {
        opcode::UPDATE => return ResponseType::Update,
        opcode::NOTIFY => return ResponseType::Meta,
        _ => {}
    }
    if let Some(q) = m.questions.first() {
        if q.qtype == rtype::AXFR || q.qtype == rtype::IXFR {
            return ResponseType::Meta;
        }
    }
    if !m.answers.is_empty() && m.rcode == rcode::NOERROR {
        return ResponseType::NoError;
    }
    let soa = m.authority.iter().any(|r| r.rtype == rtype::SOA);
    let ns = m.authority.iter().filter(|r| r.rtype == rtype::NS).count();
    match m.rcode {
        rcode::NOERROR if soa => ResponseType::NoData,
        rcode::NXDOMAIN if soa => ResponseType::NameError,
        rcode::SERVFAIL | rcode::NOTIMP => ResponseType::ServerError,
        rcode::NOERROR if ns > 0 => ResponseType::Delegation,
        rcode::NOERROR => ResponseType::NoError,
        _ => ResponseType::OtherError,
    }
}

/// CoreDNS's fail-safe TTL for answers without records.
pub const MINIMAL_DEFAULT_TTL: Duration = Duration::from_secs(5);
const MAXIMUM_DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// The smallest TTL of all records (OPT excluded), capped at one hour; 5 s when there are no
/// records or the type is not a cacheable answer.
pub fn minimal_ttl(m: &Message, t: ResponseType) -> Duration {
    if !matches!(t, ResponseType::NoError | ResponseType::NameError | ResponseType::NoData) {
        return MINIMAL_DEFAULT_TTL;
    }
    if m.answers.is_empty() && m.authority.is_empty() && m.additional.is_empty() {
        return MINIMAL_DEFAULT_TTL;
    }
    let min = m.answers.iter().chain(&m.authority).chain(&m.additional).map(|r| r.ttl as u64).min().unwrap_or(3600);
    Duration::from_secs(min).min(MAXIMUM_DEFAULT_TTL)
}
