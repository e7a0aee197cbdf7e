//! Helpers for plugin unit tests: parse a Corefile snippet and run a setup function on it.

use kdns_corefile::{parse_str, Corefile, Directive, Error};
use kdns_server::plugin::{Contributions, Plugin, SetupCtx, SetupFn};
use kdns_wire::{class, Message, Name, Question};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

pub fn corefile(text: &str) -> Corefile {
    parse_str(text, "Corefile", Path::new("."), &|_| None).expect("test Corefile parses")
}

pub type SetupResult = (Result<Option<Arc<dyn Plugin>>, Error>, Contributions, Vec<std::net::IpAddr>);

/// Runs `setup` on the directives named `name` in the first block of `text`.
pub fn run_setup(setup: SetupFn, name: &str, text: &str) -> SetupResult {
    let c = corefile(text);
    let ds: Vec<&Directive> = c.blocks[0].directives.iter().filter(|d| d.name.text == name).collect();
    let zones = vec![".".to_string()];
    let mut contrib = Contributions::default();
    let mut ctx = SetupCtx {
        zones: &zones,
        config_dir: Path::new("."),
        listen: Vec::new(),
        debug: false,
        bufsize: None,
        links: Default::default(),
        port: 53,
        clock: Default::default(),
        contrib: &mut contrib,
    };
    let r = setup(&mut ctx, &ds);
    let listen = ctx.listen.clone();
    (r, contrib, listen)
}

pub fn query(name: &str, qtype: u16) -> Message {
    Message {
        id: 42,
        flags: kdns_wire::flag::RD,
        questions: vec![Question { name: Name::from_ascii(name).unwrap(), qtype, qclass: class::IN }],
        ..Default::default()
    }
}

pub fn request<'a>(msg: &'a Message, remote: SocketAddr) -> kdns_server::Request<'a> {
    static STATS: std::sync::OnceLock<kdns_server::metrics::ZoneStats> = std::sync::OnceLock::new();
    kdns_server::Request {
        stats: STATS.get_or_init(|| kdns_server::metrics::ZoneStats::new("dns://:53", ".")),
        msg,
        wire_len: 29,
        remote,
        local: "127.0.0.1:53".parse().unwrap(),
        proto: kdns_server::Proto::Udp,
        server: "dns://:53",
        zone: ".",
        start: Instant::now(),
        chain: None,
        upstream_ad: Default::default(),
    }
}
