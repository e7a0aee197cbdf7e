//! Warm restarts: the cache survives a restart (a snapshot file, written on exit and every 30 s)
//! and an upgrade (a new instance fetches the snapshot from the running one over an abstract unix
//! socket, no shared volume needed). Entries come back with TTLs aged by the time that passed;
//! what expired beyond the stale window is skipped.

use kdns_cache::snapshot::Snapshot;
use kdns_server::{info, warning};
use std::io::{Read, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::path::Path;
use std::time::Duration;

/// How often a running server refreshes its snapshot file.
pub const SNAPSHOT_EVERY: Duration = Duration::from_secs(30);
/// What a peer may send at most.
const MAX_SNAPSHOT: u64 = 512 << 20;

fn prefix(interface: &str) -> String {
    format!("kdns-nodecache-cache/{interface}")
}

/// Writes every cache to `path` (atomically). Returns the entry count.
pub fn save(path: &Path) -> Result<usize, String> {
    let snap = kdns_plugins::cache::snapshot(crate::peers::now_ms());
    let count = snap.sections.iter().map(|s| s.1.len()).sum();
    let bytes = snap.encode();
    let tmp = path.with_extension("kdns-tmp");
    std::fs::write(&tmp, &bytes)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(count)
}

/// Serves snapshots to successors: each connection gets the current caches, then EOF.
pub fn serve(interface: &str) -> std::io::Result<()> {
    let name = format!("{}/{}/{}", prefix(interface), crate::peers::now_ms(), std::process::id());
    let listener = UnixListener::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes())?)?;
    std::thread::Builder::new().name("kdns-warm".into()).spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.set_write_timeout(Some(Duration::from_secs(10)));
            let bytes = kdns_plugins::cache::snapshot(crate::peers::now_ms()).encode();
            let _ = conn.write_all(&bytes);
        }
    })?;
    Ok(())
}

/// The newest other instance's caches, if one is running.
fn from_peer(interface: &str) -> Option<(Snapshot, u32)> {
    let me = std::process::id();
    let peer = crate::peers::list(&prefix(interface)).into_iter().rev().find(|p| p.pid != me)?;
    let addr = SocketAddr::from_abstract_name(peer.name.as_bytes()).ok()?;
    let conn = UnixStream::connect_addr(&addr).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut bytes = Vec::new();
    conn.take(MAX_SNAPSHOT).read_to_end(&mut bytes).ok()?;
    Snapshot::decode(&bytes).ok().map(|s| (s, peer.pid))
}

/// Fills the (new, empty) caches from a running predecessor or else from the snapshot file.
pub fn warm_up(interface: &str, file: Option<&Path>) {
    let now = crate::peers::now_ms();
    if let Some((snap, pid)) = from_peer(interface) {
        let n = kdns_plugins::cache::restore(&snap, now);
        info!("Loaded {n} cache entries from the running instance (pid {pid})");
        return;
    }
    let Some(path) = file else { return };
    let Ok(bytes) = std::fs::read(path) else { return };
    match Snapshot::decode(&bytes) {
        Ok(snap) => {
            let n = kdns_plugins::cache::restore(&snap, now);
            let age = Duration::from_millis(now.saturating_sub(snap.taken_ms));
            info!("Loaded {n} cache entries from {} (taken {}s ago)", path.display(), age.as_secs());
        }
        Err(e) => warning!("Ignoring cache snapshot {}: {e}", path.display()),
    }
}
