//! Where the index gets its objects: the Kubernetes API (`api`) or a directory of manifests
//! (`dir`). Both apply changes through [`Shared`], which also reports what the outside world
//! wants to know (programming latency, API requests, log lines) through an [`Observer`].

pub mod api;
pub mod dir;
pub mod node_pods;
pub mod reflector;

use crate::index::{Applied, Index};
use crate::object::{Kind, Object};
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::SystemTime;

/// What a source reports; the plugin turns it into metrics and log lines.
pub trait Observer: Send + Sync + 'static {
    /// An EndpointSlice change is now served, `seconds` after its trigger time.
    fn programming(&self, _service_kind: &'static str, _seconds: f64) {}
    /// One API request finished (CoreDNS's REST client metrics).
    fn request(&self, _verb: &str, _host: &str, _code: &str, _seconds: f64) {}
    /// A request waited `seconds` for the client-side rate limiter.
    fn throttled(&self, _verb: &str, _host: &str, _seconds: f64) {}
    /// `resource` switched from streaming lists to paginated lists.
    fn fallback(&self, _resource: &'static str) {}
    /// `resource` lost its resourceVersion and lists again.
    fn relist(&self, _resource: &'static str) {}
    /// A list of `kind` completed (initial sync or relist): a good moment to return memory.
    fn synced(&self, _kind: Kind) {}
    fn info(&self, _msg: &str) {}
    fn warning(&self, _msg: &str) {}
}

/// An observer that drops everything (tests, benchmarks).
pub struct Quiet;
impl Observer for Quiet {}

/// The index and its observer, shared by the sources (writers) and the plugin (reader).
pub struct Shared {
    index: RwLock<Index>,
    pub observer: Arc<dyn Observer>,
}

/// One change from a source.
#[derive(Debug)]
pub enum Change {
    Init(Kind),
    Upsert(Object),
    Delete(Object),
    /// An object whose current state projects to nothing (a slice that lost its service label).
    Remove(Kind, (Arc<str>, Arc<str>)),
    InitDone(Kind),
}

impl Shared {
    pub fn new(index: Index, observer: Arc<dyn Observer>) -> Arc<Shared> {
        Arc::new(Shared { index: RwLock::new(index), observer })
    }

    /// The index for reading; never held across an await.
    pub fn read(&self) -> RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn synced(&self) -> bool {
        self.read().synced()
    }

    pub fn apply(&self, change: Change) -> Applied {
        let completes = if let Change::InitDone(k) = &change { Some(*k) } else { None };
        let applied = {
            let mut ix = self.index.write().unwrap_or_else(|e| e.into_inner());
            match change {
                Change::Init(k) => {
                    ix.init(k);
                    Applied::default()
                }
                Change::Upsert(o) => ix.upsert(o),
                Change::Delete(o) => ix.delete(&o),
                Change::Remove(k, (ns, name)) => ix.remove_key(k, &ns, &name),
                Change::InitDone(k) => ix.init_done(k),
            }
        };
        if let Some(kind) = completes {
            self.observer.synced(kind);
        }
        if let Some((kind, trigger)) = applied.programming {
            let secs = SystemTime::now().duration_since(trigger).map_or(0.0, |d| d.as_secs_f64());
            self.observer.programming(kind, secs);
        }
        applied
    }

    /// Replaces everything of `kinds` with `objects` as one relist per kind.
    pub fn replace_all(&self, kinds: &[Kind], objects: Vec<Object>) {
        for k in kinds {
            self.apply(Change::Init(*k));
        }
        for o in objects {
            self.apply(Change::Upsert(o));
        }
        for k in kinds {
            self.apply(Change::InitDone(*k));
        }
    }
}
