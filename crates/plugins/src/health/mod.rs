//! `health`: `/health` answers 200 OK while the process runs; `lameduck` delays shutdown.

#[cfg(test)]
mod tests;

use kdns_corefile::{Directive, Dispenser, Error};
use kdns_server::plugin::{once, parse_duration, Plugin, SetupCtx};
use kdns_server::{admin, metrics};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const DEFAULT_ADDRESS: &str = ":8080";

pub fn setup(ctx: &mut SetupCtx<'_>, ds: &[&Directive]) -> Result<Option<Arc<dyn Plugin>>, Error> {
    once("health", ds)?;
    let d = Dispenser::new(ds[0]);
    let addr = crate::listen_address("health", &d, DEFAULT_ADDRESS)?;
    let resolved = admin::resolve(&addr).map_err(|e| Error::at(d.name(), e.to_string()))?;
    for (prop, vals) in d.block() {
        match prop.text.as_str() {
            "lameduck" => {
                let [v] = vals.as_slice() else {
                    return Err(d.arg_err(prop));
                };
                let dur = parse_duration(&v.text).ok_or_else(|| {
                    Error::at(v, format!("plugin/health: unable to parse lameduck duration {:?}", v.text))
                })?;
                ctx.contrib.lameduck = Some(ctx.contrib.lameduck.map_or(dur, |l| l.max(dur)));
            }
            other => return Err(Error::at(prop, format!("plugin/health: unknown property {other:?}"))),
        }
    }
    ctx.contrib.routes.push((addr, "/health".into(), Arc::new(|| (200, "OK".into()))));
    ctx.contrib.tasks.push(Box::pin(self_check(resolved)));
    Ok(None)
}

/// Every second, GET our own /health and record how long it took (an overload signal).
async fn self_check(addr: std::net::SocketAddr) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let start = Instant::now();
        let ok = matches!(
            tokio::time::timeout(Duration::from_secs(3), admin::get_status(addr, "/health")).await,
            Ok(Ok(200))
        );
        let took = start.elapsed();
        metrics::health_request_duration_seconds().with(&[]).observe(took.as_secs_f64());
        if !ok {
            metrics::health_request_failures_total().with(&[]).inc();
            kdns_server::warning!(plugin = "health", "Local health request to \"http://{addr}/health\" failed");
        } else if took > Duration::from_secs(1) {
            kdns_server::warning!(
                plugin = "health",
                "Local health request to \"http://{addr}/health\" took more than 1s: {took:?}"
            );
        }
    }
}
