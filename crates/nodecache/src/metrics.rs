//! node-cache's metric (`coredns_nodecache_setup_errors_total`, as node-cache exports it) and
//! the gauges and counters kdns adds (rules, interface, sync time, interception, fail-open,
//! restarts, probes, ownership).

use kdns_server::metrics::Kind;

kdns_server::metric_family!(pub setup_errors, "coredns_nodecache_setup_errors_total", "The number of errors during periodic network setup for node-cache", Kind::Counter, ["errortype"]);
kdns_server::metric_family!(pub rules_present, "coredns_nodecache_rules_present", "Firewall rules of node-cache present after the last sync (kdns).", Kind::Gauge, []);
kdns_server::metric_family!(pub rules_expected, "coredns_nodecache_rules_expected", "Firewall rules node-cache keeps in place (kdns).", Kind::Gauge, []);
kdns_server::metric_family!(pub interface_present, "coredns_nodecache_interface_present", "1 when the node-cache interface exists with every local IP (kdns).", Kind::Gauge, []);
kdns_server::metric_family!(pub last_sync, "coredns_nodecache_last_successful_sync_timestamp_seconds", "Unix time of the last sync that left interface and rules complete (kdns).", Kind::Gauge, []);
kdns_server::metric_family!(pub config_generation, "coredns_nodecache_config_generation", "How many Corefiles node-cache has written since start (kdns).", Kind::Gauge, []);

kdns_server::metric_family!(pub intercepting, "coredns_nodecache_intercepting", "1 while DNS to the local IPs is served by this node's cache, 0 while it falls back to the cluster DNS (kdns).", Kind::Gauge, []);
kdns_server::metric_family!(pub failopen_total, "coredns_nodecache_failopen_total", "Times DNS was handed back to the cluster DNS because the local server exited or hung (kdns).", Kind::Counter, ["reason"]);
kdns_server::metric_family!(pub child_restarts, "coredns_nodecache_server_restarts_total", "Times the supervisor started the DNS server again (kdns).", Kind::Counter, []);
kdns_server::metric_family!(pub probe_failures, "coredns_nodecache_probe_failures_total", "Supervisor probe rounds that got no answer in time (kdns).", Kind::Counter, []);
kdns_server::metric_family!(pub owner, "coredns_nodecache_owner", "1 when this instance manages the interface and rules (the newest instance on the node does) (kdns).", Kind::Gauge, []);

/// node-cache's `errortype` labels, all exported from the start.
pub(crate) const ERROR_TYPES: [&str; 5] =
    ["iptables", "iptables_lock", "interface_add", "interface_check", "configmap"];
