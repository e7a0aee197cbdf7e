//! Kubernetes service discovery for kdns: watches Services, EndpointSlices, Namespaces and (with
//! `pods verified`) Pods over kube-rs's client, projects each object while it is decoded to the few fields DNS needs into a
//! compact index, and computes answers from that index synchronously, with CoreDNS's
//! `kubernetes` plugin rules. The same index can be fed from a directory of manifests (the
//! offline source) instead of an API server.
//!
//! Why not kube's reflector `Store`: it keeps whole API objects (kilobytes each, mostly
//! `managedFields`), while DNS needs a few hundred bytes per service and lookups by name and IP.

pub mod answer;
pub mod decode;
pub mod index;
pub mod object;
pub mod source;

pub use answer::{Engine, Outcome, PodMode, Settings};
pub use index::Index;
