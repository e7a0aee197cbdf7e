//! Resolving a CNAME target that leaves a plugin's zones through the rest of the chain
//! (CoreDNS's `plugin/pkg/upstream`).

use kdns_wire::Name;

/// A CNAME target outside the answering plugin's zones: asked of the plugins after it (CoreDNS
/// asks its whole server again; with the usual Corefiles both reach `forward`) and the answers
/// appended after the CNAME. Nothing is added when that lookup wrote no reply.
pub async fn append_resolved(m: &mut kdns_wire::Message, target: Name, qtype: u16, rest: kdns_server::plugin::Rest) {
    let query = kdns_wire::Message {
        id: m.id,
        flags: kdns_wire::flag::RD,
        questions: vec![kdns_wire::Question { name: target, qtype, qclass: kdns_wire::class::IN }],
        ..kdns_wire::Message::default()
    };
    let reply = rest.run(query).await;
    if reply.written {
        m.answers.extend(reply.as_message().answers.iter().cloned());
    }
}

/// Replies with `m` from `plugin`; when the answer ends in a CNAME leaving the plugin's zones
/// (`chase`: target and type), the target is first resolved by the rest of the chain.
pub fn reply_resolving(
    req: &kdns_server::Request<'_>,
    mut m: kdns_wire::Message,
    chase: Option<(Name, u16)>,
    plugin: &'static str,
) -> kdns_server::plugin::Step {
    use kdns_server::plugin::{Reply, Step};
    match (chase, req.rest()) {
        (Some((target, qtype)), Some(rest)) => Step::Pending(Box::pin(async move {
            append_resolved(&mut m, target, qtype, rest).await;
            Reply::message(m, plugin)
        })),
        _ => Step::Reply(Reply::message(m, plugin)),
    }
}
