//! The compact DNS index: projected objects in maps shaped for the lookups DNS makes
//! (namespace → service → slices, IP → owners, pod IP → pods), kept current by watch events.
//!
//! Relists follow the watcher's Init / InitApply / InitDone protocol without a second copy:
//! objects are upserted as they arrive and, at InitDone, every object of that kind not seen since
//! Init is removed (the deletions that happened while we were not watching). "Seen" is a list
//! generation stamped on each entry, so a relist allocates nothing per object.
//!
//! Namespace names are stored once: every object's namespace is the `Arc` that keys its entry.

use crate::object::{Kind, Namespace, Object, Pod, Service, Slice};
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// (namespace, name) of an object; namespaces themselves have an empty namespace.
pub type Key = (Arc<str>, Arc<str>);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerKind {
    /// A cluster IP of a service.
    Service,
    /// An endpoint of a slice.
    Endpoint,
}

/// Who owns an IP address (service or slice, by namespace and name), for PTR answers; one
/// allocation per service or slice, shared by all its addresses.
#[derive(Debug, PartialEq, Eq)]
pub struct Owner {
    pub kind: OwnerKind,
    pub ns: Arc<str>,
    pub name: Arc<str>,
}

pub type IpOwner = Arc<Owner>;

/// Picks the owner entries of one service or slice (no allocation to compare).
fn owned_by<'a>(kind: OwnerKind, ns: &'a str, name: &'a str) -> impl Fn(&IpOwner) -> bool + 'a {
    move |o| o.kind == kind && &*o.ns == ns && &*o.name == name
}

/// One value, or several (distinct): most IPs have one owner, and a one-element `Vec` would
/// reserve four.
#[derive(Debug)]
#[allow(clippy::box_collection)] // the box keeps the enum two words: a `Vec` would make it four
enum Few<T> {
    One(T),
    Many(Box<Vec<T>>),
}

impl<T: PartialEq + Clone> Few<T> {
    fn as_slice(&self) -> &[T] {
        match self {
            Few::One(t) => std::slice::from_ref(t),
            Few::Many(v) => v,
        }
    }
    fn push_unique(&mut self, t: T) {
        match self {
            _ if self.as_slice().contains(&t) => {}
            Few::Many(v) => v.push(t),
            Few::One(first) => *self = Few::Many(Box::new(vec![first.clone(), t])),
        }
    }
    /// Removes the values `is` picks; true when nothing is left.
    fn remove(&mut self, is: impl Fn(&T) -> bool) -> bool {
        match self {
            Few::One(one) => is(one),
            Few::Many(v) => {
                v.retain(|o| !is(o));
                if let [last] = v.as_slice() {
                    *self = Few::One(last.clone());
                    return false;
                }
                v.is_empty()
            }
        }
    }
    fn heap(&self) -> usize {
        match self {
            Few::One(_) => 0,
            Few::Many(v) => 24 + v.capacity() * std::mem::size_of::<T>(),
        }
    }
}

fn add_to<K: Hash + Eq, V: PartialEq + Clone>(map: &mut HashMap<K, Few<V>>, k: K, v: V) {
    match map.get_mut(&k) {
        Some(few) => few.push_unique(v),
        None => {
            map.insert(k, Few::One(v));
        }
    }
}

fn remove_from<K: Hash + Eq, V: PartialEq + Clone>(map: &mut HashMap<K, Few<V>>, k: K, is: impl Fn(&V) -> bool) {
    if map.get_mut(&k).is_some_and(|few| few.remove(is)) {
        map.remove(&k);
    }
}

/// IP → values, IPv4 keyed by a 4-byte integer (most clusters have no IPv6 at all).
#[derive(Debug)]
struct IpMap<V> {
    v4: HashMap<u32, Few<V>>,
    v6: HashMap<u128, Few<V>>,
}

impl<V> Default for IpMap<V> {
    fn default() -> Self {
        IpMap { v4: HashMap::new(), v6: HashMap::new() }
    }
}

impl<V: PartialEq + Clone> IpMap<V> {
    fn get(&self, ip: &IpAddr) -> &[V] {
        let few = match ip {
            IpAddr::V4(a) => self.v4.get(&u32::from(*a)),
            IpAddr::V6(a) => self.v6.get(&u128::from(*a)),
        };
        few.map_or(&[], Few::as_slice)
    }
    fn add(&mut self, ip: IpAddr, v: V) {
        match ip {
            IpAddr::V4(a) => add_to(&mut self.v4, u32::from(a), v),
            IpAddr::V6(a) => add_to(&mut self.v6, u128::from(a), v),
        }
    }
    fn remove(&mut self, ip: IpAddr, is: impl Fn(&V) -> bool) {
        match ip {
            IpAddr::V4(a) => remove_from(&mut self.v4, u32::from(a), is),
            IpAddr::V6(a) => remove_from(&mut self.v6, u128::from(a), is),
        }
    }
    fn heap(&self) -> usize {
        table(&self.v4) + table(&self.v6) + self.v4.values().chain(self.v6.values()).map(Few::heap).sum::<usize>()
    }
}

/// Approximate heap bytes of a hash table (hashbrown: one control byte per bucket, buckets =
/// capacity × 8 / 7).
fn table<K, V>(m: &HashMap<K, V>) -> usize {
    m.capacity() * 8 / 7 * (std::mem::size_of::<(K, V)>() + 1)
}

#[derive(Default, Debug)]
pub struct ServiceEntry {
    /// Boxed: the entries of a namespace's map stay small, most of the table is empty slots.
    pub service: Option<Box<Service>>,
    /// The list generation that last saw the Service.
    seen: u32,
    /// The service's slices (a handful at most: a list, not a table).
    pub slices: Vec<Slice>,
}

#[derive(Default, Debug)]
pub struct NamespaceEntry {
    /// A Namespace object (matching `namespace_labels`) exists.
    pub exists: bool,
    seen: u32,
    pub services: HashMap<Arc<str>, ServiceEntry>,
    /// Slice name → (service name, list generation that last saw it), to find a slice again on
    /// update and delete.
    slice_owner: HashMap<Arc<str>, (Arc<str>, u32)>,
    /// Pod name → (IP, list generation that last saw it) (only with `pods verified`).
    pods: HashMap<Arc<str>, (Option<IpAddr>, u32)>,
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
    by_ip: IpMap<IpOwner>,
    pods_by_ip: IpMap<Key>,
    /// Per kind, the generation of the current (or last) list: bumped by `init`.
    generation: [u32; 4],
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
            by_ip: IpMap::default(),
            pods_by_ip: IpMap::default(),
            generation: [0; 4],
            synced: [false; 4],
            required: [true, slices, true, pods],
            serial: unix_now(),
        }
    }

    /// Every required kind has completed its initial list (CoreDNS's `HasSynced`).
    pub fn synced(&self) -> bool {
        Kind::ALL.iter().all(|k| !self.required[*k as usize] || self.synced[*k as usize])
    }

    /// `kind` has completed a list at least once.
    pub fn kind_synced(&self, kind: Kind) -> bool {
        self.synced[kind as usize]
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
        self.by_ip.get(ip)
    }

    /// The slice (namespace, name) → (service name, slice).
    pub fn slice(&self, ns: &str, name: &str) -> Option<&Slice> {
        let entry = self.namespaces.get(ns)?;
        let (svc, _) = entry.slice_owner.get(name)?;
        entry.services.get(svc)?.slices.iter().find(|s| &*s.name == name)
    }

    /// Live pods holding `ip`: (namespace, name), in arrival order.
    pub fn pods_with_ip(&self, ip: &IpAddr) -> &[Key] {
        self.pods_by_ip.get(ip)
    }

    /// Approximate heap bytes by part (container capacities × entry sizes plus the boxed lists
    /// they own), for the memory breakdown in docs/performance.md.
    pub fn breakdown(&self) -> Vec<(&'static str, usize)> {
        use std::mem::size_of;
        let str_bytes = |s: &str| s.len().next_multiple_of(8) + 16;
        let (mut ns_tables, mut svc_tables, mut services, mut slice_tables, mut slices, mut endpoints) =
            (table(&self.namespaces), 0, 0, 0, 0, 0);
        let mut pods = 0;
        for e in self.namespaces.values() {
            ns_tables += table(&e.slice_owner);
            svc_tables += table(&e.services);
            pods += table(&e.pods) + e.pods.keys().map(|k| str_bytes(k)).sum::<usize>();
            for (name, se) in &e.services {
                services += str_bytes(name);
                slice_tables += se.slices.capacity() * size_of::<Slice>();
                if let Some(s) = &se.service {
                    services += size_of::<Service>()
                        + s.ips.len() * size_of::<IpAddr>()
                        + s.ports.len() * size_of::<crate::object::Port>();
                    services += s.ports.iter().map(|p| p.name.len() + p.protocol.len()).sum::<usize>();
                }
                for s in &se.slices {
                    slices += str_bytes(&s.name) + str_bytes(&s.service);
                    slices += s.ports.len() * size_of::<crate::object::Port>();
                    endpoints += s.endpoints.len() * size_of::<crate::object::Endpoint>();
                    for ep in s.endpoints.iter() {
                        endpoints += (ep.addresses.len() * size_of::<IpAddr>()).next_multiple_of(8);
                        if ep.names.is_some() {
                            endpoints += size_of::<crate::object::EndpointNames>();
                        }
                        endpoints += ep.hostname().map_or(0, |h| h.len().next_multiple_of(8));
                        endpoints += ep.pod_name().map_or(0, |h| h.len().next_multiple_of(8));
                    }
                }
            }
        }
        let by_ip = self.by_ip.heap();
        let pods_by_ip = self.pods_by_ip.heap();
        vec![
            ("namespace and slice-owner maps", ns_tables),
            ("service maps", svc_tables),
            ("services (names, IPs, ports)", services),
            ("slice lists", slice_tables),
            ("slices (names, ports)", slices),
            ("endpoints (addresses, names)", endpoints),
            ("IP -> owner map", by_ip),
            ("pods (maps, names)", pods),
            ("pod IP -> pod map", pods_by_ip),
        ]
    }

    /// A (re)list of `kind` starts.
    pub fn init(&mut self, kind: Kind) {
        self.generation[kind as usize] = self.generation[kind as usize].wrapping_add(1);
    }

    /// The (re)list of `kind` is complete: objects not seen since `init` are gone.
    pub fn init_done(&mut self, kind: Kind) -> Applied {
        let gen = self.generation[kind as usize];
        let mut stale = Vec::new();
        for (ns, entry) in &self.namespaces {
            let mut check = |name: &Arc<str>, seen: u32| {
                if seen != gen {
                    stale.push((ns.clone(), name.clone()));
                }
            };
            match kind {
                Kind::Service => {
                    entry.services.iter().filter(|(_, e)| e.service.is_some()).for_each(|(n, e)| check(n, e.seen))
                }
                Kind::Slice => entry.slice_owner.iter().for_each(|(n, (_, seen))| check(n, *seen)),
                Kind::Pod => entry.pods.iter().for_each(|(n, (_, seen))| check(n, *seen)),
                Kind::Namespace => {
                    if entry.exists && entry.seen != gen {
                        stale.push((Arc::from(""), ns.clone()));
                    }
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

    /// The namespace's entry, and the namespace name `Arc` every object in it shares.
    fn ns_entry(&mut self, ns: &Arc<str>) -> (&mut NamespaceEntry, Arc<str>) {
        let key = match self.namespaces.get_key_value(ns) {
            Some((key, _)) => key.clone(),
            None => {
                self.namespaces.insert(ns.clone(), NamespaceEntry::default());
                ns.clone()
            }
        };
        (self.namespaces.get_mut(&key).expect("present or inserted above"), key)
    }

    fn upsert_namespace(&mut self, n: Namespace) -> Applied {
        let gen = self.generation[Kind::Namespace as usize];
        let (entry, _) = self.ns_entry(&n.name);
        entry.seen = gen;
        Applied { changed: !std::mem::replace(&mut entry.exists, true), programming: None }
    }

    fn upsert_service(&mut self, mut s: Service) -> Applied {
        let gen = self.generation[Kind::Service as usize];
        let (nse, ns) = self.ns_entry(&s.namespace);
        s.namespace = ns;
        let entry = nse.services.entry(s.name.clone()).or_default();
        entry.seen = gen;
        if entry.service.as_deref() == Some(&s) {
            return Applied::default();
        }
        let owner = Arc::new(Owner { kind: OwnerKind::Service, ns: s.namespace.clone(), name: s.name.clone() });
        let new_ips = s.ips.clone();
        let old = entry.service.replace(Box::new(s));
        for ip in old.iter().flat_map(|o| o.ips.iter()) {
            self.by_ip.remove(*ip, |o| *o == owner);
        }
        for ip in new_ips.iter() {
            self.by_ip.add(*ip, owner.clone());
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
        for ip in old.ips.iter() {
            self.by_ip.remove(*ip, owned_by(OwnerKind::Service, ns, name));
        }
        true
    }

    fn upsert_slice(&mut self, mut s: Slice) -> Applied {
        let gen = self.generation[Kind::Slice as usize];
        let (nse, ns) = self.ns_entry(&s.namespace);
        s.namespace = ns;
        if let Some((svc, seen)) = nse.slice_owner.get_mut(&s.name) {
            *seen = gen;
            if nse.services.get(svc).and_then(|e| e.slices.iter().find(|o| o.name == s.name)) == Some(&s) {
                return Applied::default();
            }
        }
        self.remove_slice(&s.namespace, &s.name);
        let owner = Arc::new(Owner { kind: OwnerKind::Endpoint, ns: s.namespace.clone(), name: s.name.clone() });
        for ip in s.endpoints.iter().flat_map(|e| e.addresses.iter()) {
            self.by_ip.add(*ip, owner.clone());
        }
        let programming = self.programming(&s);
        let (nse, _) = self.ns_entry(&s.namespace);
        nse.slice_owner.insert(s.name.clone(), (s.service.clone(), gen));
        let slices = &mut nse.services.entry(s.service.clone()).or_default().slices;
        slices.push(s);
        slices.shrink_to_fit();
        Applied { changed: true, programming }
    }

    fn remove_slice(&mut self, ns: &str, name: &str) -> Option<Slice> {
        let nse = self.namespaces.get_mut(ns)?;
        let (svc, _) = nse.slice_owner.remove(name)?;
        let entry = nse.services.get_mut(&svc)?;
        let at = entry.slices.iter().position(|s| &*s.name == name)?;
        let old = entry.slices.remove(at);
        entry.slices.shrink_to_fit();
        if entry.slices.is_empty() && entry.service.is_none() {
            nse.services.remove(&svc);
        }
        for ip in old.endpoints.iter().flat_map(|e| e.addresses.iter()) {
            self.by_ip.remove(*ip, owned_by(OwnerKind::Endpoint, ns, name));
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

    fn upsert_pod(&mut self, mut p: Pod) -> Applied {
        let gen = self.generation[Kind::Pod as usize];
        let (nse, ns) = self.ns_entry(&p.namespace);
        p.namespace = ns;
        let old = nse.pods.insert(p.name.clone(), (p.ip, gen)).map(|(ip, _)| ip);
        if old == Some(p.ip) {
            return Applied::default();
        }
        let key = (p.namespace.clone(), p.name.clone());
        if let Some(Some(ip)) = old {
            self.pods_by_ip.remove(ip, |k| *k == key);
        }
        if let Some(ip) = p.ip {
            self.pods_by_ip.add(ip, key);
        }
        Applied { changed: true, programming: None }
    }

    fn remove_pod(&mut self, ns: &str, name: &str) -> bool {
        let Some(nse) = self.namespaces.get_mut(ns) else { return false };
        let Some((pname, (ip, _))) = nse.pods.remove_entry(name) else { return false };
        if let Some(ip) = ip {
            self.pods_by_ip.remove(ip, |(pns, pn)| &**pns == ns && *pn == pname);
        }
        true
    }
}
