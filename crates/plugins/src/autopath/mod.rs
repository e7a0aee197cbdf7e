//! `autopath`: server-side search-path completion. For a client whose search path is known
//! (`@kubernetes`: the client pod's namespace; or a resolv.conf's `search` line), a query for
//! `<base>.<first search domain>` is tried as `<base>.<each domain>` through the rest of the
//! chain; the first answer that is not NXDOMAIN goes back, with a CNAME from the name asked.
//! This saves the client the ndots:5 walk (one query instead of up to eight).

#[cfg(test)]
mod tests;

use crate::pkg::links::{AutopathLink, AUTOPATH};
use kdns_corefile::{Directive, Dispenser, Error};
use kdns_server::metrics::Kind;
use kdns_server::plugin::{Plugin, Reply, Request, Rest, SetupCtx, Step};
use kdns_wire::{class, rcode, Message, Name, RData, Record};
use std::sync::Arc;

kdns_server::metric_family!(
    success_total,
    "coredns_autopath_success_total",
    "Counter of requests that did autopath.",
    Kind::Counter,
    ["server"]
);

enum Source {
    /// A plugin of the block (`@kubernetes`), found once the block is built.
    Plugin(Arc<AutopathLink>),
    /// The `search` line of a resolv.conf file, plus the name as given.
    Static(Vec<Name>),
    /// `@podsource` (kdns, node cache with `-searchexpansion`): the asking pod's own search list
    /// and ndots from the client directory, with the careful walk ([`walk_for_pod`]).
    Pods,
}

pub struct AutoPath {
    zones: Vec<Name>,
    source: Source,
}

/// `base.domain` (or `base` itself for the root).
fn join(base: &[&[u8]], domain: &Name) -> Option<Name> {
    let mut wire = Vec::new();
    for l in base {
        wire.push(l.len() as u8);
        wire.extend_from_slice(l);
    }
    wire.extend_from_slice(domain.as_wire());
    Name::from_wire(&wire).ok()
}

/// CoreDNS's `cnamer`: a CNAME from the original name to the first answer owned by another
/// name (with its TTL) goes first; the question is the original again.
fn cnamer(m: &mut Message, original: &Name) {
    if let Some(first) = m.answers.iter().find(|a| !a.name.eq_ignore_case(original)) {
        let cname = Record::new(original.clone(), first.ttl, RData::Cname(first.name.clone()));
        m.answers.insert(0, cname);
    }
    if let Some(q) = m.questions.first_mut() {
        q.name = original.clone();
    }
}

/// `query` asked again as `base.domain` (`None` when that is no valid name): of the rest of
/// this chain, or with `routed` of the block of this listener the name belongs to.
async fn ask_as(query: &Message, base: &[Vec<u8>], domain: &Name, rest: &Rest, routed: bool) -> Option<Reply> {
    let labels: Vec<&[u8]> = base.iter().map(Vec::as_slice).collect();
    let mut try_msg = query.clone();
    try_msg.questions[0].name = join(&labels, domain)?;
    Some(if routed { rest.clone().run_routed(try_msg).await } else { rest.clone().run(try_msg).await })
}

async fn walk(query: Message, base: Vec<Vec<u8>>, search: Vec<Name>, rest: Rest, server: String) -> Reply {
    let original = query.questions[0].name.clone();
    let mut first: Option<Reply> = None;
    for domain in &search {
        let Some(mut reply) = ask_as(&query, &base, domain, &rest, false).await else { continue };
        if reply.error.is_some() && !reply.written {
            return reply;
        }
        let nxdomain = reply.rcode_value() == rcode::NXDOMAIN;
        if reply.written && !nxdomain {
            cnamer(reply.msg(), &original);
            success_total().with(&[&server]).inc();
            return reply;
        }
        if first.is_none() {
            first = Some(reply);
        }
    }
    let mut reply = first.unwrap_or_else(|| Reply::servfail(&query, "plugin/autopath: empty search path".into()));
    if let Some(q) = reply.msg().questions.first_mut() {
        q.name = original;
    }
    reply
}

/// The walk for a pod whose resolver is known: only what that resolver would certainly end
/// with is answered here. A candidate with records ends the walk (a CNAME from the asked name);
/// NXDOMAIN moves on; anything else (NODATA, where glibc and musl differ, SERVFAIL, no reply)
/// hands the asked name's own reply back, and the pod walks on by itself as it would have.
async fn walk_for_pod(query: Message, base: Vec<Vec<u8>>, search: Vec<Name>, rest: Rest, server: String) -> Reply {
    let original = query.questions[0].name.clone();
    let mut first: Option<Reply> = None;
    for domain in &search {
        // Each name where the pod would have sent it: a name outside this block (the name as
        // given, a search domain of the node) is asked of its own block, with its cache.
        let Some(mut reply) = ask_as(&query, &base, domain, &rest, true).await else { continue };
        let code = reply.rcode_value();
        let found = reply.written && code == rcode::NOERROR && !reply.msg().answers.is_empty();
        if first.is_none() {
            if found || code != rcode::NXDOMAIN || !reply.written {
                // The asked name itself settles it: exactly what the pod asked for.
                search_expansions().with(&["asked"]).inc();
                return reply;
            }
            first = Some(reply);
            continue;
        }
        if found {
            cnamer(reply.msg(), &original);
            success_total().with(&[&server]).inc();
            search_expansions().with(&["answered"]).inc();
            return reply;
        }
        if code != rcode::NXDOMAIN || !reply.written {
            search_expansions().with(&["unsure"]).inc();
            break;
        }
    }
    if first.is_some() && search.len() > 1 {
        search_expansions().with(&["nxdomain"]).inc();
    }
    first.unwrap_or_else(|| Reply::servfail(&query, "plugin/autopath: empty search path".into()))
}

kdns_server::metric_family!(
    search_expansions,
    "kdns_search_expansions_total",
    "Search walks tried for known pods (autopath @podsource): answered (a later name existed), asked (the asked name settled it), nxdomain (none existed), unsure (handed back to the pod).",
    Kind::Counter,
    ["result"]
);

/// The asking pod's search list (then the name as given) when its walk can be predicted here:
/// a known pod that asks only the node cache, for a name its resolver would search first
/// (fewer dots than its ndots), asked under its first search domain.
fn pod_search_path(req: &Request<'_>) -> Option<Vec<Name>> {
    let client = kdns_server::clients::lookup(req.remote.ip())?;
    let resolver = client.pod.resolver.as_ref().filter(|r| r.node_is_its_resolver)?;
    // Dots before the first search domain (`serve` checks that the name is under it).
    let dots = req.qname().label_count().checked_sub(resolver.search.first()?.label_count() + 1)?;
    if dots >= resolver.ndots as usize {
        // The resolver asks such a name as given first, not under its search list.
        return None;
    }
    let mut list = resolver.search.clone();
    list.push(Name::root());
    Some(list)
}

impl Plugin for AutoPath {
    fn name(&self) -> &'static str {
        "autopath"
    }

    fn serve(&self, req: &Request<'_>) -> Step {
        if req.qclass() != class::IN || !self.zones.iter().any(|z| req.qname().is_subdomain_of(z)) {
            return Step::Next;
        }
        // The careful walk for a pod whose own resolver is known; CoreDNS's otherwise.
        let careful = matches!(self.source, Source::Pods);
        let search = match &self.source {
            Source::Pods => pod_search_path(req),
            Source::Static(list) => Some(list.clone()),
            Source::Plugin(link) => link.source.get().and_then(|p| p.search_path(req)),
        };
        let Some(search) = search else { return Step::Next };
        let Some(first) = search.first() else { return Step::Next };
        let qname = req.qname();
        if !qname.is_subdomain_of(first) || qname.label_count() == first.label_count() {
            return Step::Next;
        }
        let Some(rest) = req.rest() else { return Step::Next };
        let keep = qname.label_count() - first.label_count();
        let base: Vec<Vec<u8>> = qname.labels().take(keep).map(<[u8]>::to_vec).collect();
        let (query, server) = (req.msg.clone(), req.server.to_string());
        if careful {
            Step::Pending(Box::pin(walk_for_pod(query, base, search, rest, server)))
        } else {
            Step::Pending(Box::pin(walk(query, base, search, rest, server)))
        }
    }
}

/// A resolv.conf's `search` domains, then the name as given.
fn static_path(path: &std::path::Path) -> std::io::Result<Vec<Name>> {
    let mut list = crate::pkg::resolv::resolv_search(path)?;
    list.push(Name::root());
    Ok(list)
}

pub fn setup(ctx: &mut SetupCtx<'_>, ds: &[&Directive]) -> Result<Option<Arc<dyn Plugin>>, Error> {
    let ds = kdns_server::plugin::last_given(ds);
    let d = Dispenser::new(ds[0]);
    let args = d.args();
    let Some((resolv, zone_args)) = args.split_last() else {
        return Err(d.arg_err(d.name()));
    };
    let zones = crate::pkg::zones::plugin_zones("autopath", zone_args, ctx.zones, d.name())?;
    let source = match resolv.text.strip_prefix('@') {
        Some("podsource") => Source::Pods,
        Some(plugin) => {
            let link = Arc::new(AutopathLink { plugin: plugin.to_string(), source: Default::default() });
            ctx.links.insert(AUTOPATH, link.clone());
            Source::Plugin(link)
        }
        None => {
            let path = ctx.config_dir.join(&resolv.text);
            let list = static_path(&path)
                .map_err(|e| Error::at(resolv, format!("plugin/autopath: failed to parse {:?}: {e}", resolv.text)))?;
            Source::Static(list)
        }
    };
    Ok(Some(Arc::new(AutoPath { zones, source })))
}
