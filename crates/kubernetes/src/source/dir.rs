//! The offline source: Services, EndpointSlices, Namespaces and Pods read from a directory of
//! Kubernetes manifests (YAML, multi-document, or JSON; single objects or `List`s, as
//! `kubectl get -o yaml` prints them), re-read whenever the directory changes.
//!
//! A namespace counts as existing when a Namespace object is present or any object lives in it,
//! so a directory of Services alone resolves.

use super::Shared;
use crate::decode::{Keep, Projected, RawObject};
use crate::object::{Kind, Namespace, Object};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Reads every manifest in `dir` into projected objects, or names the first bad file.
pub fn load(dir: &Path, pods: bool) -> Result<Vec<Object>, String> {
    let mut files = Vec::new();
    collect(dir, &mut files).map_err(|e| format!("{}: {e}", dir.display()))?;
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        let docs: Vec<serde_json::Value> = if f.extension().is_some_and(|e| e == "json") {
            vec![serde_json::from_str(&text).map_err(|e| format!("{}: {e}", f.display()))?]
        } else {
            serde_saphyr::from_multiple(&text).map_err(|e| format!("{}: {e}", f.display()))?
        };
        for doc in docs {
            objects(doc, None, pods, &mut out).map_err(|e| format!("{}: {e}", f.display()))?;
        }
    }
    let mut namespaces = BTreeSet::new();
    for o in &out {
        let (ns, _) = o.key();
        if !ns.is_empty() {
            namespaces.insert(ns);
        }
    }
    for name in namespaces {
        out.push(Object::Namespace(Namespace { name }));
    }
    Ok(out)
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let hidden = path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            collect(&path, files)?;
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml" || e == "json") {
            files.push(path);
        }
    }
    Ok(())
}

fn objects(doc: serde_json::Value, list_kind: Option<&str>, pods: bool, out: &mut Vec<Object>) -> Result<(), String> {
    if doc.is_null() {
        return Ok(());
    }
    let kind = doc.get("kind").and_then(|k| k.as_str()).or(list_kind).unwrap_or("").to_string();
    if let Some(item_kind) = kind.strip_suffix("List") {
        let items = doc.get("items").and_then(|i| i.as_array()).cloned().unwrap_or_default();
        let item_kind = if item_kind.is_empty() { None } else { Some(item_kind) };
        for item in items {
            objects(item, item_kind, pods, out)?;
        }
        return Ok(());
    }
    let kind_name = kind;
    let kind = match kind_name.as_str() {
        "Service" => Kind::Service,
        "EndpointSlice" => Kind::Slice,
        "Namespace" => Kind::Namespace,
        "Pod" if pods => Kind::Pod,
        _ => return Ok(()),
    };
    let raw = RawObject::deserialize(&doc).map_err(|e| format!("{kind_name}: {e}"))?;
    if let Some(Projected::Live(o)) = raw.project(kind, Keep { pod_names: true }) {
        out.push(o);
    }
    Ok(())
}

/// A cheap change detector: names, sizes and modification times of the manifests.
fn fingerprint(dir: &Path) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut files = Vec::new();
    let _ = collect(dir, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let meta = std::fs::metadata(&f).ok();
            let len = meta.as_ref().map_or(0, |m| m.len());
            let modified = meta.and_then(|m| m.modified().ok());
            (f, len, modified)
        })
        .collect()
}

/// Loads `dir` now, then again whenever it changes; a bad manifest keeps the last good data.
pub async fn run(dir: PathBuf, shared: Arc<Shared>, pods: bool, interval: Duration) {
    let kinds: &[Kind] = if pods { &Kind::ALL } else { &[Kind::Service, Kind::Slice, Kind::Namespace] };
    let mut last = None;
    loop {
        let fp = fingerprint(&dir);
        if last.as_ref() != Some(&fp) {
            match load(&dir, pods) {
                Ok(objs) => {
                    let n = objs.len();
                    shared.replace_all(kinds, objs);
                    shared.observer.info(&format!("loaded {n} objects from {}", dir.display()));
                }
                // Before a first good load the index stays unsynced: SERVFAIL, not NXDOMAIN.
                Err(e) => shared.observer.warning(&format!("manifests not loaded, keeping the previous data: {e}")),
            }
            last = Some(fp);
        }
        tokio::time::sleep(interval).await;
    }
}
