//! Instances of node-cache mode on one node find each other through abstract unix sockets: they
//! live in the network namespace (hostNetwork pods share the node's), need no shared volume, and
//! vanish when their process dies, however it dies. A name carries the interface, the start time
//! and the pid: `kdns-nodecache/<interface>/<start ms>/<pid>`.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub start_ms: u64,
    pub pid: u32,
    pub name: String,
}

/// This instance's registration: the socket lives as long as the value.
pub struct Registration {
    _socket: UnixDatagram,
    pub me: Peer,
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Registers under `prefix` (e.g. `kdns-nodecache/nodelocaldns`).
pub fn register(prefix: &str) -> std::io::Result<Registration> {
    let me = Peer { start_ms: now_ms(), pid: std::process::id(), name: String::new() };
    let name = format!("{prefix}/{}/{}", me.start_ms, me.pid);
    let addr = SocketAddr::from_abstract_name(name.as_bytes())?;
    let socket = UnixDatagram::bind_addr(&addr)?;
    Ok(Registration { _socket: socket, me: Peer { name, ..me } })
}

/// Every live registration under `prefix` in this network namespace (from `/proc/net/unix`).
pub fn list(prefix: &str) -> Vec<Peer> {
    let text = std::fs::read_to_string("/proc/self/net/unix").unwrap_or_default();
    parse(&text, prefix)
}

fn parse(text: &str, prefix: &str) -> Vec<Peer> {
    let want = format!("@{prefix}/");
    let mut out: Vec<Peer> = text
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .filter_map(|path| {
            let rest = path.strip_prefix(&want)?;
            let (start, pid) = rest.split_once('/')?;
            Some(Peer { start_ms: start.parse().ok()?, pid: pid.parse().ok()?, name: path[1..].to_string() })
        })
        .collect();
    out.sort_by_key(|p| (p.start_ms, p.pid));
    out.dedup();
    out
}

/// The others under `prefix`, newest last.
pub fn others(prefix: &str, me: &Peer) -> Vec<Peer> {
    list(prefix).into_iter().filter(|p| p.pid != me.pid || p.start_ms != me.start_ms).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_net_unix() {
        let text = "Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00000000 0002 01 41234 @kdns-nodecache/nodelocaldns/1700000000000/42
0000000000000000: 00000002 00000000 00000000 0002 01 41235 @kdns-nodecache/other/1700000000001/43
0000000000000000: 00000002 00000000 00010000 0001 01 41236 /run/systemd/notify
0000000000000000: 00000002 00000000 00000000 0002 01 41237 @kdns-nodecache/nodelocaldns/1699999999999/7
";
        let peers = parse(text, "kdns-nodecache/nodelocaldns");
        assert_eq!(peers.len(), 2);
        assert_eq!(peers[0].pid, 7);
        assert_eq!(peers[1].start_ms, 1_700_000_000_000);
    }

    #[test]
    fn registration_is_visible_and_goes_away() {
        let prefix = format!("kdns-test-{}", std::process::id());
        let r = register(&prefix).unwrap();
        assert_eq!(list(&prefix), vec![r.me.clone()]);
        assert!(others(&prefix, &r.me).is_empty());
        drop(r);
        assert!(list(&prefix).is_empty());
    }
}
