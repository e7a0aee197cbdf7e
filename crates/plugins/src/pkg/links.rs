//! The handles two plugins of one block share through `SetupCtx::links` (the plugin set up first
//! leaves a cell, the other fills it), so neither imports the other.

use kdns_kubernetes::source::Shared;
use kdns_kubernetes::Settings;
use kdns_server::plugin::Request;
use std::sync::{Arc, OnceLock};

/// A plugin that knows the search path of a client (`kubernetes` with `pods verified`).
pub trait AutoPather: Send + Sync + 'static {
    /// The search list for this request's client, last element `""` (the name as given);
    /// `None` when the client is unknown.
    fn search_path(&self, req: &Request<'_>) -> Option<Vec<kdns_wire::Name>>;
}

/// The key of [`AutopathLink`] in the block's links.
pub const AUTOPATH: &str = "autopath";

/// What `autopath @PLUGIN` (set up first, in plugin.cfg order) leaves in the block's links:
/// the plugin it names fills `source` at its own setup.
pub struct AutopathLink {
    pub plugin: String,
    pub source: OnceLock<Arc<dyn AutoPather>>,
}

/// The key of [`KubernetesCell`] in the block's links: `k8s_external` (set up before
/// `kubernetes`) leaves the cell, `kubernetes` fills it.
pub const K8S_EXTERNAL: &str = "k8s_external";

/// What `kubernetes` hands over: its index and the settings answers depend on.
pub struct KubernetesSource {
    pub settings: Settings,
    pub shared: Arc<Shared>,
}

pub type KubernetesCell = OnceLock<KubernetesSource>;
