//! Reading resolv.conf (`autopath`'s static search path, `kubernetes`'s host search domains).

use kdns_wire::Name;

/// The `search` domains of a resolv.conf file.
pub fn resolv_search(path: &std::path::Path) -> std::io::Result<Vec<Name>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("search"))
        .flat_map(|r| r.split_whitespace())
        .filter_map(|d| Name::from_ascii(d).ok())
        .collect())
}
