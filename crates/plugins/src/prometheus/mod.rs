//! `prometheus`: serves `/metrics` and records the per-query DNS metrics for its block.

pub mod status;
#[cfg(test)]
mod tests;

use kdns_corefile::{Directive, Dispenser, Error};
use kdns_server::handler::report;
use kdns_server::metrics;
use kdns_server::plugin::{once, Done, Plugin, Request, SetupCtx};
use std::sync::Arc;

pub const DEFAULT_ADDRESS: &str = "localhost:9153";

pub struct Metrics;

impl Plugin for Metrics {
    fn name(&self) -> &'static str {
        "prometheus"
    }
    fn serves(&self) -> bool {
        false
    }
    fn observe(&self, req: &Request<'_>, done: &Done<'_>) {
        report(req, done.plugin, done.reply.rcode_value(), done.size);
        status::observe(req, done);
    }
}

pub fn setup(ctx: &mut SetupCtx<'_>, ds: &[&Directive]) -> Result<Option<Arc<dyn Plugin>>, Error> {
    once("prometheus", ds)?;
    let d = Dispenser::new(ds[0]);
    let addr = crate::pkg::listen::listen_address("prometheus", &d, DEFAULT_ADDRESS)?;
    if let Some((prop, _)) = d.block().first() {
        return Err(Error::at(prop, format!("plugin/prometheus: unsupported property {:?}", prop.text)));
    }
    metrics::build_info()
        .with(&[env!("CARGO_PKG_VERSION"), option_env!("KDNS_REVISION").unwrap_or("unknown"), "rustc"])
        .set(1.0);
    metrics::panics_total().with(&[]);
    ctx.contrib.routes.push((addr.clone(), "/metrics".into(), Arc::new(|| (200, metrics::registry().render()))));
    ctx.contrib.routes.push((addr.clone(), "/status".into(), Arc::new(|| (200, status::PAGE.to_string()))));
    ctx.contrib.routes.push((addr, "/status.json".into(), Arc::new(|| (200, status::json()))));
    Ok(Some(Arc::new(Metrics)))
}
