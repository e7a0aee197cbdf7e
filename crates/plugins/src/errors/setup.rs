use super::{summarize, Errors, Level, Pattern};
use kdns_corefile::{Directive, Dispenser, Error};
use kdns_server::plugin::{once, parse_duration, Plugin, SetupCtx};
use regex::Regex;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

pub fn setup(ctx: &mut SetupCtx<'_>, ds: &[&Directive]) -> Result<Option<Arc<dyn Plugin>>, Error> {
    once("errors", ds)?;
    let d = Dispenser::new(ds[0]);
    if let Some(a) = d.args().first() {
        return Err(d.arg_err(a));
    }
    let mut patterns = Vec::new();
    for (prop, args) in d.block() {
        match prop.text.as_str() {
            "stacktrace" => {
                if let Some(a) = args.first() {
                    return Err(d.arg_err(a));
                }
            }
            "consolidate" => {
                if args.len() < 2 || args.len() > 4 {
                    return Err(d.arg_err(prop));
                }
                let period = parse_duration(&args[0].text)
                    .filter(|p| !p.is_zero())
                    .ok_or_else(|| Error::at(args[0], format!("plugin/errors: invalid duration {:?}", args[0].text)))?;
                if args[1].text.len() > 10_000 {
                    return Err(Error::at(args[1], "plugin/errors: regexp too long (more than 10000 characters)"));
                }
                let regex = Regex::new(&args[1].text).map_err(|e| Error::at(args[1], format!("plugin/errors: {e}")))?;
                let mut level = Level::Error;
                let mut show_first = false;
                for a in &args[2..] {
                    match a.text.as_str() {
                        "warning" => level = Level::Warning,
                        "error" => level = Level::Error,
                        "info" => level = Level::Info,
                        "debug" => level = Level::Debug,
                        "show_first" => show_first = true,
                        other => {
                            return Err(Error::at(a, format!("plugin/errors: unknown log level or option {other:?}")))
                        }
                    }
                }
                patterns.push(Arc::new(Pattern { period, regex, level, show_first, count: AtomicU64::new(0) }));
            }
            other => return Err(Error::at(prop, format!("plugin/errors: unknown property {other:?}"))),
        }
    }
    for p in &patterns {
        ctx.contrib.tasks.push(Box::pin(summarize(p.clone())));
    }
    Ok(Some(Arc::new(Errors { patterns })))
}
