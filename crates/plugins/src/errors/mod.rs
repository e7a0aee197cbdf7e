//! `errors`: logs the errors handlers return, optionally consolidating repeats.

mod setup;
#[cfg(test)]
mod tests;

pub use setup::setup;

use kdns_server::plugin::{Done, Plugin, Request};
use regex::Regex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
    Info,
    Debug,
}

pub struct Pattern {
    pub period: Duration,
    pub regex: Regex,
    pub level: Level,
    pub show_first: bool,
    pub count: AtomicU64,
}

pub struct Errors {
    pub patterns: Vec<Arc<Pattern>>,
}

pub(crate) fn emit(level: Level, msg: &str) {
    match level {
        Level::Error => kdns_server::error!(plugin = "errors", "{msg}"),
        Level::Warning => kdns_server::warning!(plugin = "errors", "{msg}"),
        Level::Info => kdns_server::info!(plugin = "errors", "{msg}"),
        Level::Debug => kdns_server::debug!(plugin = "errors", "{msg}"),
    }
}

impl Plugin for Errors {
    fn name(&self) -> &'static str {
        "errors"
    }

    fn serves(&self) -> bool {
        false
    }

    fn observe(&self, req: &Request<'_>, done: &Done<'_>) {
        let Some(err) = done.error else { return };
        let line =
            format!("{} {} {}: {}", done.reply.rcode_value(), req.qname(), kdns_wire::rtype::name(req.qtype()), err);
        for p in &self.patterns {
            if p.regex.is_match(&line) {
                let before = p.count.fetch_add(1, Ordering::Relaxed);
                if p.show_first && before == 0 {
                    emit(p.level, &line);
                }
                return;
            }
        }
        kdns_server::error!(plugin = "errors", "{line}");
    }
}

/// Every period, logs how many errors matched a pattern (CoreDNS's consolidate summary).
pub(crate) async fn summarize(p: Arc<Pattern>) {
    let mut tick = tokio::time::interval(p.period);
    tick.tick().await;
    loop {
        tick.tick().await;
        let n = p.count.swap(0, Ordering::Relaxed);
        if n == 0 || (p.show_first && n == 1) {
            continue;
        }
        let msg = format!(
            "{n} errors like '{}' occurred in last {}",
            p.regex.as_str(),
            kdns_server::plugin::format_duration(p.period)
        );
        emit(p.level, &msg);
    }
}
