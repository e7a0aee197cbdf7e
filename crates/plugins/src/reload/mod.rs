//! `reload`: re-reads the Corefile periodically and applies it when its parsed form changed.
//! The polling, hashing and atomic swap live in `kdns_server::lifecycle`; this is the setup.

#[cfg(test)]
mod tests;

use kdns_corefile::{Directive, Dispenser, Error};
use kdns_server::plugin::{parse_duration, Plugin, ReloadSettings, SetupCtx};
use std::sync::Arc;
use std::time::Duration;

const MIN_INTERVAL: Duration = Duration::from_secs(2);
const MIN_JITTER: Duration = Duration::from_secs(1);

pub fn setup(ctx: &mut SetupCtx<'_>, ds: &[&Directive]) -> Result<Option<Arc<dyn Plugin>>, Error> {
    // Given twice, CoreDNS reads the first occurrence only.
    let d = Dispenser::new(ds[0]);
    let args = d.args();
    if args.len() > 2 {
        return Err(d.arg_err(args[2]));
    }
    let mut interval = Duration::from_secs(30);
    let mut jitter = Duration::from_secs(15);
    if let Some(t) = args.first() {
        interval = parse_duration(&t.text)
            .ok_or_else(|| Error::at(t, format!("plugin/reload: invalid interval {:?}", t.text)))?;
        if interval < MIN_INTERVAL {
            return Err(Error::at(t, "plugin/reload: interval value must be greater or equal to 2s"));
        }
    }
    if let Some(t) = args.get(1) {
        jitter = parse_duration(&t.text)
            .ok_or_else(|| Error::at(t, format!("plugin/reload: invalid jitter {:?}", t.text)))?;
        if jitter != Duration::ZERO && jitter < MIN_JITTER {
            return Err(Error::at(t, "plugin/reload: jitter value must be greater or equal to 1s"));
        }
    }
    if jitter > interval / 2 {
        jitter = interval / 2;
    }
    if d.has_block() {
        return Err(Error::at(d.name(), "plugin/reload: this plugin takes no block"));
    }
    let settings = ReloadSettings { interval, jitter };
    // Reload is process-wide: the shortest interval of all blocks wins.
    match &ctx.contrib.reload {
        Some(existing) if existing.interval <= interval => {}
        _ => ctx.contrib.reload = Some(settings),
    }
    Ok(None)
}
