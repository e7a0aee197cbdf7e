//! The compact DNS index: projected objects in maps shaped for the lookups DNS makes
//! (namespace → service → slices, IP → owners, pod IP → pods), kept current by watch events.
//!
//! Relists follow the watcher's Init / InitApply / InitDone protocol without a second copy:
//! objects are upserted as they arrive and, at InitDone, every object of that kind not seen since
//! Init is removed (the deletions that happened while we were not watching).

use crate::object::{Kind, Namespace, Object, Pod, Service, Slice};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Who owns an IP address, for PTR answers.
/// (namespace, name) of an object; namespaces themselves have an empty namespace.
pub type Key = (Arc<str>, Arc<str>);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IpOwner {
    /// A cluster IP of service (namespace, name).
    Service(Arc<str>, Arc<str>),
    /// An endpoint of the slice (namespace, slice name).
    Endpoint(Arc<str>, Arc<str>),
}

#[derive(Default, Debug)]
pub struct ServiceEntry {
    pub service: Option<Service>,
    /// Slice name → slice.
    pub slices: HashMap<Arc<str>, Slice>,
}

#[derive(Default, Debug)]
pub struct NamespaceEntry {
    /// A Namespace object (matching `namespace_labels`) exists.
    pub exists: bool,
    pub services: HashMap<Arc<str>, ServiceEntry>,
    /// Slice name → service name, to find a slice again on update and delete.
    slice_owner: HashMap<Arc<str>, Arc<str>>,
    /// Pod name → IP (only with `pods verified`).
    pods: HashMap<Arc<str>, Option<IpAddr>>,
}

/// What applying one event changed, for the SOA serial and the programming-latency metric.
#[derive(Debug, Default, PartialEq)]
pub struct Applied {
    pub changed: bool,
    /// A slice change for a service with exactly one match: (service_kind label, trigger time).
    pub programming: Option<(&'static str, SystemTime)>,
}

#[derive(Debug)]
pub struct Index {
    namespaces: HashMap<Arc<str>, NamespaceEntry>,
    by_ip: HashMap<IpAddr, Vec<IpOwner>>,
    pods_by_ip: HashMap<IpAddr, Vec<Key>>,
    /// Kinds being relisted: the keys seen since their Init.
    relisting: [Option<HashSet<Key>>; 4],
    synced: [bool; 4],
    /// Kinds that must be synced before the index counts as synced.
    required: [bool; 4],
    serial: u32,
}

fn unix_now() -> u32 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as u32)
}

impl Index {
    /// An empty index; `slices` and `pods` say whether those kinds are watched at all.
    pub fn new(slices: bool, pods: bool) -> Index {
        Index {
            namespaces: HashMap::new(),
            by_ip: HashMap::new(),
            pods_by_ip: HashMap::new(),
            relisting: Default::default(),
            synced: [false; 4],
            required: [true, slices, true, pods],
            serial: unix_now(),
        }
    }

    /// Every required kind has completed its initial list (CoreDNS's `HasSynced`).
    pub fn synced(&self) -> bool {
        Kind::ALL.iter().all(|k| !self.required[*k as usize] || self.synced[*k as usize])
    }

    /// The SOA serial: Unix time of the last DNS-visible change.
    pub fn serial(&self) -> u32 {
        self.serial
    }

    pub fn namespace_exists(&self, ns: &str) -> bool {
        self.namespaces.get(ns).is_some_and(|n| n.exists)
    }

    pub fn service_entry(&self, ns: &str, name: &str) -> Option<&ServiceEntry> {
        self.namespaces.get(ns)?.services.get(name)
    }

    pub fn ip_owners(&self, ip: &IpAddr) -> &[IpOwner] {
        self.by_ip.get(ip).map_or(&[], Vec::as_slice)
    }

    /// The slice (namespace, name) → (service name, slice).
    pub fn slice(&self, ns: &str, name: &str) -> Option<&Slice> {
        let entry = self.namespaces.get(ns)?;
        let svc = entry.slice_owner.get(name)?;
        entry.services.get(svc)?.slices.get(name)
    }

    /// Live pods holding `ip`: (namespace, name), in arrival order.
    pub fn pods_with_ip(&self, ip: &IpAddr) -> &[Key] {
        self.pods_by_ip.get(ip).map_or(&[], Vec::as_slice)
    }

    /// A (re)list of `kind` starts.
    pub fn init(&mut self, kind: Kind) {
        self.relisting[kind as usize] = Some(HashSet::new());
    }

    /// The (re)list of `kind` is complete: objects not seen since `init` are gone.
    pub fn init_done(&mut self, kind: Kind) -> Applied {
        let seen = self.relisting[kind as usize].take().unwrap_or_default();
        let mut stale = Vec::new();
        for (ns, entry) in &self.namespaces {
            let mut check = |name: &Arc<str>| {
                if !seen.contains(&(ns.clone(), name.clone())) {
                    stale.push((ns.clone(), name.clone()));
                }
            };
            match kind {
                Kind::Service => entry.services.iter().filter(|(_, e)| e.service.is_some()).for_each(|(n, _)| check(n)),
                Kind::Slice => entry.slice_owner.keys().for_each(&mut check),
                Kind::Pod => entry.pods.keys().for_each(&mut check),
                Kind::Namespace => {}
            }
        }
        if kind == Kind::Namespace {
            for (name, entry) in &self.namespaces {
                if entry.exists && !seen.contains(&(Arc::from(""), name.clone())) {
                    stale.push((Arc::from(""), name.clone()));
                }
            }
        }
        let mut applied = Applied::default();
        for (ns, name) in stale {
            applied.changed |= self.remove(kind, &ns, &name).changed;
        }
        self.synced[kind as usize] = true;
        if applied.changed {
            self.serial = unix_now();
        }
        applied
    }

    /// An object was added or changed (also used for objects of an initial list).
    pub fn upsert(&mut self, obj: Object) -> Applied {
        let kind = obj.kind();
        if let Some(seen) = &mut self.relisting[kind as usize] {
            seen.insert(obj.key());
        }
        let applied = match obj {
            Object::Service(s) => self.upsert_service(s),
            Object::Slice(s) => self.upsert_slice(s),
            Object::Namespace(n) => self.upsert_namespace(n),
            Object::Pod(p) => self.upsert_pod(p),
        };
        if applied.changed {
            self.serial = unix_now();
        }
        applied
    }

    /// An object was deleted (the watcher hands over its last state).
    pub fn delete(&mut self, obj: &Object) -> Applied {
        let (ns, name) = obj.key();
        let mut applied = self.remove(obj.kind(), &ns, &name);
        if let (Object::Slice(s), true) = (obj, applied.changed) {
            applied.programming = self.programming(s);
        }
        if applied.changed {
            self.serial = unix_now();
        }
        applied
    }

    /// Removes an object known only by its key.
    pub fn remove_key(&mut self, kind: Kind, ns: &str, name: &str) -> Applied {
        if let Some(seen) = &mut self.relisting[kind as usize] {
            seen.insert((Arc::from(ns), Arc::from(name)));
        }
        let applied = self.remove(kind, ns, name);
        if applied.changed {
            self.serial = unix_now();
        }
        applied
    }

    fn remove(&mut self, kind: Kind, ns: &str, name: &str) -> Applied {
        let changed = match kind {
            Kind::Service => self.remove_service(ns, name),
            Kind::Slice => self.remove_slice(ns, name).is_some(),
            Kind::Namespace => self.namespaces.get_mut(name).is_some_and(|e| std::mem::replace(&mut e.exists, false)),
            Kind::Pod => self.remove_pod(ns, name),
        };
        self.prune(if kind == Kind::Namespace { name } else { ns });
        Applied { changed, programming: None }
    }

    /// Drops a namespace entry that holds nothing.
    fn prune(&mut self, ns: &str) {
        if let Some(e) = self.namespaces.get(ns) {
            if !e.exists && e.services.is_empty() && e.pods.is_empty() && e.slice_owner.is_empty() {
                self.namespaces.remove(ns);
            }
        }
    }

    fn ns_entry(&mut self, ns: &Arc<str>) -> &mut NamespaceEntry {
        self.namespaces.entry(ns.clone()).or_default()
    }

    fn upsert_namespace(&mut self, n: Namespace) -> Applied {
        let entry = self.ns_entry(&n.name);
        Applied { changed: !std::mem::replace(&mut entry.exists, true), programming: None }
    }

    fn upsert_service(&mut self, s: Service) -> Applied {
        let entry = self.ns_entry(&s.namespace).services.entry(s.name.clone()).or_default();
        if entry.service.as_ref() == Some(&s) {
            return Applied::default();
        }
        let old_ips = entry.service.as_ref().map(|o| o.ips.clone()).unwrap_or_default();
        let owner = IpOwner::Service(s.namespace.clone(), s.name.clone());
        let new_ips = s.ips.clone();
        entry.service = Some(s);
        for ip in old_ips {
            unlink(&mut self.by_ip, ip, &owner);
        }
        for ip in new_ips {
            self.by_ip.entry(ip).or_default().push(owner.clone());
        }
        Applied { changed: true, programming: None }
    }

    fn remove_service(&mut self, ns: &str, name: &str) -> bool {
        let Some(nse) = self.namespaces.get_mut(ns) else { return false };
        let Some(entry) = nse.services.get_mut(name) else { return false };
        let Some(old) = entry.service.take() else { return false };
        if entry.slices.is_empty() {
            nse.services.remove(name);
        }
        let owner = IpOwner::Service(old.namespace.clone(), old.name.clone());
        for ip in old.ips {
            unlink(&mut self.by_ip, ip, &owner);
        }
        true
    }

    fn upsert_slice(&mut self, s: Slice) -> Applied {
        let nse = self.ns_entry(&s.namespace);
        let current = nse.slice_owner.get(&s.name).and_then(|svc| nse.services.get(svc)?.slices.get(&s.name));
        if current == Some(&s) {
            return Applied::default();
        }
        self.remove_slice(&s.namespace, &s.name);
        let owner = IpOwner::Endpoint(s.namespace.clone(), s.name.clone());
        for ip in s.endpoints.iter().flat_map(|e| e.addresses.iter()) {
            let owners = self.by_ip.entry(*ip).or_default();
            if !owners.contains(&owner) {
                owners.push(owner.clone());
            }
        }
        let programming = self.programming(&s);
        let nse = self.ns_entry(&s.namespace);
        nse.slice_owner.insert(s.name.clone(), s.service.clone());
        nse.services.entry(s.service.clone()).or_default().slices.insert(s.name.clone(), s);
        Applied { changed: true, programming }
    }

    fn remove_slice(&mut self, ns: &str, name: &str) -> Option<Slice> {
        let nse = self.namespaces.get_mut(ns)?;
        let svc = nse.slice_owner.remove(name)?;
        let entry = nse.services.get_mut(&svc)?;
        let old = entry.slices.remove(name)?;
        if entry.slices.is_empty() && entry.service.is_none() {
            nse.services.remove(&svc);
        }
        let owner = IpOwner::Endpoint(old.namespace.clone(), old.name.clone());
        for e in &old.endpoints {
            for ip in &e.addresses {
                unlink(&mut self.by_ip, *ip, &owner);
            }
        }
        Some(old)
    }

    /// CoreDNS records programming latency only for a slice whose service is known, and never
    /// for headless services without a selector.
    fn programming(&self, s: &Slice) -> Option<(&'static str, SystemTime)> {
        let t = s.trigger_time?;
        let svc = self.service_entry(&s.namespace, &s.service)?.service.as_ref()?;
        let label = match svc.kind {
            crate::object::ServiceKind::ClusterIp => "cluster_ip",
            crate::object::ServiceKind::Headless if svc.has_selector => "headless_with_selector",
            _ => return None,
        };
        Some((label, t))
    }

    fn upsert_pod(&mut self, p: Pod) -> Applied {
        let nse = self.ns_entry(&p.namespace);
        let old = nse.pods.insert(p.name.clone(), p.ip);
        if old == Some(p.ip) {
            return Applied::default();
        }
        let key = (p.namespace.clone(), p.name.clone());
        if let Some(Some(ip)) = old {
            unlink(&mut self.pods_by_ip, ip, &key);
        }
        if let Some(ip) = p.ip {
            self.pods_by_ip.entry(ip).or_default().push(key);
        }
        Applied { changed: true, programming: None }
    }

    fn remove_pod(&mut self, ns: &str, name: &str) -> bool {
        let Some(nse) = self.namespaces.get_mut(ns) else { return false };
        let Some((pname, ip)) = nse.pods.remove_entry(name) else { return false };
        if let Some(ip) = ip {
            unlink(&mut self.pods_by_ip, ip, &(Arc::from(ns), pname));
        }
        true
    }
}

fn unlink<T: PartialEq>(map: &mut HashMap<IpAddr, Vec<T>>, ip: IpAddr, what: &T) {
    if let Some(v) = map.get_mut(&ip) {
        v.retain(|o| o != what);
        if v.is_empty() {
            map.remove(&ip);
        }
    }
}
