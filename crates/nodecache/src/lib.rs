//! `kdns-nodecache` owns node-cache mode: the NodeLocal DNSCache agent around the DNS server.
//! It validates node-cache's flags, renders the live Corefile from the node-local-dns template
//! and the kube-dns ConfigMap (and keeps a bad one out), keeps the `nodelocaldns` interface
//! (rtnetlink) and the NOTRACK/ACCEPT rules (iptables or nftables) in place, exports
//! node-cache's metric plus the gauges it lacks, and tears the data path down on exit. The DNS
//! server itself is `kdns-server` driven through its [`Embedder`] hooks.

//!
//! The map: `agent` (the agent and its [`Embedder`](kdns_server::lifecycle::Embedder) hooks),
//! `settings` (flags), `template` (Corefile rendering), `netif` (the interface), `rules`
//! (iptables/nftables rule sets), `supervisor` (the fail-open parent: a sans-IO `machine` and
//! its driver), `peers` (other instances on the node), `warm` (cache snapshots and hand-off),
//! `metrics`.

mod agent;
pub mod metrics;
pub mod netif;
pub mod peers;
pub mod pods;
pub mod rules;
pub mod settings;
pub mod supervisor;
pub mod template;
pub mod warm;

pub use agent::{Agent, NodeCache, Role};
