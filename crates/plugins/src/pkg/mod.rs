//! What several plugins share, one concern per file (CoreDNS's `plugin/pkg/*`): plugins import
//! from here and never from each other.

pub mod hostname;
pub mod links;
pub mod listen;
pub mod resolv;
pub mod tls;
pub mod upstream;
pub mod zones;
