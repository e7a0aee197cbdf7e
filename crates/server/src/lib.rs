//! `kdns-server` owns the DNS server core: the plugin contract and chain, zone routing,
//! UDP/TCP listeners, the reply writer (EDNS, truncation), CoreDNS-compatible metrics, the admin
//! HTTP listeners, and the process lifecycle (reload, lameduck, signals). Plugins live in
//! `kdns-plugins`; the request path is described in ARCHITECTURE.md.

pub mod admin;
pub mod background;
pub mod batch;
pub mod clients;
pub mod clock;
pub mod config;
pub mod handler;
pub mod lifecycle;
pub mod listener;
pub mod log;
pub mod memory;
pub mod metrics;
pub mod plugin;
#[cfg(feature = "testing")]
pub mod testing;
pub mod waiting;

pub use plugin::{Plugin, PluginDef, Proto, Reply, Request, SetupCtx, Step};
