//! The host name (`nsid`'s default data, `chaos`'s `hostname.bind`).

/// The host name, as Go's `os.Hostname` would give it.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
