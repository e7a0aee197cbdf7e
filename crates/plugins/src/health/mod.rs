//! `health`: `/health` answers 200 OK while the process runs; `lameduck` delays shutdown.

#[cfg(test)]
mod tests;

use kdns_corefile::{Directive, Dispenser, Error};
use kdns_server::admin;
use kdns_server::metrics::{Kind, SLIM_TIME_BUCKETS};
use kdns_server::plugin::{parse_duration, Plugin, SetupCtx};
use std::sync::Arc;
use std::time::{Duration, Instant};

kdns_server::metric_family!(
    request_duration_seconds,
    "coredns_health_request_duration_seconds",
    "Histogram of the time (in seconds) each request took.",
    Kind::Histogram(&SLIM_TIME_BUCKETS),
    []
);
kdns_server::metric_family!(
    request_failures_total,
    "coredns_health_request_failures_total",
    "The number of times the health check failed.",
    Kind::Counter,
    []
);

pub const DEFAULT_ADDRESS: &str = ":8080";

/// `health` may be given more than once in a block, as in CoreDNS: every occurrence is parsed,
/// the last address given wins and so does the last `lameduck`.
pub fn setup(ctx: &mut SetupCtx<'_>, ds: &[&Directive]) -> Result<Option<Arc<dyn Plugin>>, Error> {
    let mut addr: Option<String> = None;
    let mut lameduck = None;
    let mut at = ds[0];
    for directive in ds {
        let d = Dispenser::new(directive);
        if !d.args().is_empty() {
            addr = Some(crate::pkg::listen::listen_address("health", &d, DEFAULT_ADDRESS)?);
            at = directive;
        }
        for (prop, vals) in d.block() {
            match prop.text.as_str() {
                "lameduck" => {
                    let [v] = vals.as_slice() else {
                        return Err(d.arg_err(prop));
                    };
                    lameduck = Some(parse_duration(&v.text).ok_or_else(|| {
                        Error::at(v, format!("plugin/health: unable to parse lameduck duration {:?}", v.text))
                    })?);
                }
                other => return Err(Error::at(prop, format!("plugin/health: unknown property {other:?}"))),
            }
        }
    }
    let addr = addr.unwrap_or_else(|| DEFAULT_ADDRESS.to_string());
    let resolved = admin::resolve(&addr).map_err(|e| Error::at(&at.name, e.to_string()))?;
    if let Some(dur) = lameduck {
        ctx.contrib.lameduck = Some(ctx.contrib.lameduck.map_or(dur, |l| l.max(dur)));
    }
    ctx.contrib.routes.push((addr, "/health".into(), Arc::new(|| (200, "OK".into()))));
    ctx.contrib.tasks.push(Box::pin(self_check(resolved)));
    Ok(None)
}

/// Every second, GET our own /health and record how long it took (an overload signal).
async fn self_check(addr: std::net::SocketAddr) {
    // The first check one second after start, as CoreDNS's ticker: an immediate one could run
    // before the admin listener accepts and warn about a failure that is not one.
    let mut tick =
        tokio::time::interval_at(tokio::time::Instant::now() + Duration::from_secs(1), Duration::from_secs(1));
    loop {
        tick.tick().await;
        let start = Instant::now();
        let ok = matches!(
            tokio::time::timeout(Duration::from_secs(3), admin::get_status(addr, "/health")).await,
            Ok(Ok(200))
        );
        let took = start.elapsed();
        request_duration_seconds().with(&[]).observe(took.as_secs_f64());
        if !ok {
            request_failures_total().with(&[]).inc();
            kdns_server::warning!(plugin = "health", "Local health request to \"http://{addr}/health\" failed");
        } else if took > Duration::from_secs(1) {
            kdns_server::warning!(
                plugin = "health",
                "Local health request to \"http://{addr}/health\" took more than 1s: {took:?}"
            );
        }
    }
}
