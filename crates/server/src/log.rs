//! Process log in CoreDNS's shape: `[INFO] plugin/reload: …` lines on stdout, no timestamps.
//!
//! Lines go through a bounded channel to one writer thread so a slow stdout never blocks a
//! DNS worker; when the channel is full the line is dropped and counted. This is a few lines
//! of code where `tracing` would need a custom formatter to produce the same bytes.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::OnceLock;

static DEBUG: AtomicBool = AtomicBool::new(false);
static WRITER: OnceLock<SyncSender<Line>> = OnceLock::new();

enum Line {
    Text(String),
    Flush(SyncSender<()>),
}

fn writer() -> &'static SyncSender<Line> {
    WRITER.get_or_init(|| {
        let (tx, rx) = sync_channel::<Line>(16 * 1024);
        std::thread::Builder::new().name("kdns-log".into()).spawn(move || write_loop(rx)).expect("spawn log thread");
        tx
    })
}

fn write_loop(rx: Receiver<Line>) {
    // Not `stdout.lock()` for the thread's lifetime: others (the test harness, -version) print too.
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout());
    while let Ok(line) = rx.recv() {
        let mut next = Some(line);
        while let Some(line) = next.take() {
            match line {
                Line::Text(t) => {
                    let _ = out.write_all(t.as_bytes());
                }
                Line::Flush(ack) => {
                    let _ = out.flush();
                    let _ = ack.send(());
                }
            }
            next = rx.try_recv().ok();
        }
        let _ = out.flush();
    }
}

/// Queues one complete line (a newline is added).
pub fn line(mut text: String) {
    text.push('\n');
    match writer().try_send(Line::Text(text)) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => dropped_lines().with(&[]).inc(),
        Err(TrySendError::Disconnected(_)) => {}
    }
}

/// Text on standard error, written at once (startup errors, usage); a closed stderr is ignored
/// where `eprint!` would panic.
pub fn stderr(text: &str) {
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// [`stderr`] with a newline.
pub fn stderr_line(text: &str) {
    stderr(&format!("{text}\n"));
}

/// Waits until every queued line is written (before exit).
pub fn flush() {
    let (tx, rx) = sync_channel(1);
    if writer().send(Line::Flush(tx)).is_ok() {
        let _ = rx.recv_timeout(std::time::Duration::from_secs(2));
    }
}

crate::metric_family!(
    dropped_lines,
    "kdns_log_dropped_lines_total",
    "Log lines dropped because the writer could not keep up (kdns addition).",
    crate::metrics::Kind::Counter,
    []
);

pub fn set_debug(on: bool) {
    DEBUG.store(on, Ordering::Relaxed);
}

pub fn debug_enabled() -> bool {
    DEBUG.load(Ordering::Relaxed)
}

fn emit(level: &str, plugin: Option<&str>, msg: std::fmt::Arguments<'_>) {
    let text = match plugin {
        Some(p) => format!("[{level}] plugin/{p}: {msg}"),
        None => format!("[{level}] {msg}"),
    };
    line(text);
}

pub fn info(plugin: Option<&str>, msg: std::fmt::Arguments<'_>) {
    emit("INFO", plugin, msg)
}
pub fn warning(plugin: Option<&str>, msg: std::fmt::Arguments<'_>) {
    emit("WARNING", plugin, msg)
}
pub fn error(plugin: Option<&str>, msg: std::fmt::Arguments<'_>) {
    emit("ERROR", plugin, msg)
}
pub fn debug(plugin: Option<&str>, msg: std::fmt::Arguments<'_>) {
    if debug_enabled() {
        emit("DEBUG", plugin, msg)
    }
}

#[macro_export]
macro_rules! info {
    (plugin = $p:expr, $($t:tt)*) => { $crate::log::info(Some($p), format_args!($($t)*)) };
    ($($t:tt)*) => { $crate::log::info(None, format_args!($($t)*)) };
}
#[macro_export]
macro_rules! warning {
    (plugin = $p:expr, $($t:tt)*) => { $crate::log::warning(Some($p), format_args!($($t)*)) };
    ($($t:tt)*) => { $crate::log::warning(None, format_args!($($t)*)) };
}
#[macro_export]
macro_rules! error {
    (plugin = $p:expr, $($t:tt)*) => { $crate::log::error(Some($p), format_args!($($t)*)) };
    ($($t:tt)*) => { $crate::log::error(None, format_args!($($t)*)) };
}
#[macro_export]
macro_rules! debug {
    (plugin = $p:expr, $($t:tt)*) => { if $crate::log::debug_enabled() { $crate::log::debug(Some($p), format_args!($($t)*)) } };
    ($($t:tt)*) => { if $crate::log::debug_enabled() { $crate::log::debug(None, format_args!($($t)*)) } };
}
