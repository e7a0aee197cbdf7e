//! Streaming projections: serde types that read only the fields DNS needs straight from the API
//! server's JSON (or a manifest's YAML), so a full API object is never built. Strings are
//! borrowed from the input where it has no escapes; every other field (managedFields, pod specs,
//! container statuses …) is skipped by the parser without allocating.
//!
//! One [`RawObject`] shape reads every kind (unknown fields are ignored, and a `Status` object's
//! string `status` is told apart from a Service's or Pod's object `status`), which is what lets a
//! watch line be read in one pass whatever its `type` turns out to be.

use crate::object::{
    Endpoint, ExternalHost, Kind, Namespace, Object, Pod, Port, Service, ServiceKind, Slice, SERVICE_NAME_LABEL,
    TRIGGER_TIME_ANNOTATION,
};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

/// The bookmark annotation that ends the initial events of a streaming list.
pub const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

type Str<'a> = Option<Cow<'a, str>>;

/// The labels and annotations DNS reads; every other key is skipped.
#[derive(Default, Debug)]
pub struct Picked<'a> {
    pub service_name: Str<'a>,
    pub trigger_time: Str<'a>,
    pub initial_events_end: bool,
}

impl<'de: 'a, 'a> Deserialize<'de> for Picked<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Picked<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of strings")
            }
            fn visit_unit<E>(self) -> Result<Picked<'a>, E> {
                Ok(Picked::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Picked<'a>, A::Error> {
                let mut out = Picked::default();
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    match &*key {
                        SERVICE_NAME_LABEL => out.service_name = Some(map.next_value::<Cow<'de, str>>()?),
                        TRIGGER_TIME_ANNOTATION => out.trigger_time = Some(map.next_value::<Cow<'de, str>>()?),
                        INITIAL_EVENTS_END => out.initial_events_end = map.next_value::<Cow<'de, str>>()? == "true",
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// A map read only for whether it has entries (a Service's `selector`).
#[derive(Default, Debug)]
pub struct NonEmpty(pub bool);

impl<'de> Deserialize<'de> for NonEmpty {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NonEmpty;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_unit<E>(self) -> Result<NonEmpty, E> {
                Ok(NonEmpty(false))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NonEmpty, A::Error> {
                let mut any = false;
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {
                    any = true;
                }
                Ok(NonEmpty(any))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
pub struct RawMeta<'a> {
    #[serde(borrow)]
    pub name: Str<'a>,
    #[serde(borrow)]
    pub namespace: Str<'a>,
    #[serde(borrow)]
    pub resource_version: Str<'a>,
    #[serde(borrow)]
    pub labels: Option<Picked<'a>>,
    #[serde(borrow)]
    pub annotations: Option<Picked<'a>>,
    pub deletion_timestamp: Option<IgnoredAny>,
    #[serde(rename = "continue", borrow)]
    pub continue_token: Str<'a>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
pub struct RawPort<'a> {
    #[serde(borrow)]
    pub name: Str<'a>,
    #[serde(borrow)]
    pub protocol: Str<'a>,
    pub port: Option<i32>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
pub struct RawSpec<'a> {
    #[serde(rename = "type", borrow)]
    pub type_: Str<'a>,
    #[serde(rename = "clusterIP", borrow)]
    pub cluster_ip: Str<'a>,
    #[serde(rename = "clusterIPs", borrow)]
    pub cluster_ips: Option<Vec<Cow<'a, str>>>,
    #[serde(rename = "externalIPs", borrow)]
    pub external_ips: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow)]
    pub external_name: Str<'a>,
    #[serde(borrow)]
    pub ports: Option<Vec<RawPort<'a>>>,
    pub selector: Option<NonEmpty>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
pub struct RawIngress<'a> {
    #[serde(borrow)]
    pub ip: Str<'a>,
    #[serde(borrow)]
    pub hostname: Str<'a>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default)]
pub struct RawLoadBalancer<'a> {
    #[serde(borrow)]
    pub ingress: Option<Vec<RawIngress<'a>>>,
}

/// A Service's or Pod's `status` object; a `Status` object's `"status": "Failure"` string reads
/// as the default.
#[derive(Default, Debug)]
pub struct RawStatus<'a> {
    pub load_balancer: Option<RawLoadBalancer<'a>>,
    pub phase: Str<'a>,
    pub pod_ip: Str<'a>,
}

impl<'de: 'a, 'a> Deserialize<'de> for RawStatus<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = RawStatus<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a status object or string")
            }
            fn visit_str<E>(self, _: &str) -> Result<RawStatus<'a>, E> {
                Ok(RawStatus::default())
            }
            fn visit_unit<E>(self) -> Result<RawStatus<'a>, E> {
                Ok(RawStatus::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawStatus<'a>, A::Error> {
                let mut out = RawStatus::default();
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    match &*key {
                        "loadBalancer" => out.load_balancer = map.next_value()?,
                        "phase" => out.phase = map.next_value()?,
                        "podIP" => out.pod_ip = map.next_value()?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

#[derive(Deserialize, Default, Debug)]
#[serde(default)]
pub struct RawConditions {
    pub ready: Option<bool>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default)]
pub struct RawRef<'a> {
    #[serde(borrow)]
    pub kind: Str<'a>,
    #[serde(borrow)]
    pub name: Str<'a>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
pub struct RawEndpoint<'a> {
    #[serde(borrow)]
    pub addresses: Vec<Cow<'a, str>>,
    #[serde(borrow)]
    pub hostname: Str<'a>,
    pub conditions: Option<RawConditions>,
    #[serde(borrow)]
    pub target_ref: Option<RawRef<'a>>,
}

/// Any object the API server sends: Service, EndpointSlice, Namespace, Pod, a bookmark's
/// metadata-only object, or an error `Status`.
#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
pub struct RawObject<'a> {
    #[serde(borrow)]
    pub kind: Str<'a>,
    #[serde(borrow)]
    pub metadata: RawMeta<'a>,
    #[serde(borrow)]
    pub spec: Option<RawSpec<'a>>,
    #[serde(borrow)]
    pub status: Option<RawStatus<'a>>,
    #[serde(borrow)]
    pub address_type: Str<'a>,
    #[serde(borrow)]
    pub ports: Option<Vec<RawPort<'a>>>,
    #[serde(borrow)]
    pub endpoints: Option<Vec<RawEndpoint<'a>>>,
    /// `Status` objects (watch ERROR events, error bodies).
    pub code: Option<u16>,
    #[serde(borrow)]
    pub reason: Str<'a>,
    #[serde(borrow)]
    pub message: Str<'a>,
}

/// One line of a watch stream.
#[derive(Deserialize, Debug)]
pub struct RawEvent<'a> {
    #[serde(rename = "type", borrow)]
    pub type_: Cow<'a, str>,
    #[serde(borrow)]
    pub object: RawObject<'a>,
}

/// What a list page says about itself; its items go to a callback as they are read.
#[derive(Debug, Default)]
pub struct PageMeta {
    pub resource_version: Option<String>,
    pub continue_token: Option<String>,
}

/// Reads a list page (`{"metadata": …, "items": [...]}`), handing each item to `each` as soon
/// as it is parsed, so only one item's projection is alive at a time.
pub fn read_page<'de, D, F>(d: D, each: F) -> Result<PageMeta, D::Error>
where
    D: Deserializer<'de>,
    F: FnMut(RawObject<'de>),
{
    struct PageVisitor<F>(F);
    struct Items<'f, F>(&'f mut F);

    impl<'de, F: FnMut(RawObject<'de>)> de::DeserializeSeed<'de> for Items<'_, F> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de, F: FnMut(RawObject<'de>)> Visitor<'de> for Items<'_, F> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of objects")
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(item) = seq.next_element::<RawObject<'de>>()? {
                (self.0)(item);
            }
            Ok(())
        }
    }
    impl<'de, F: FnMut(RawObject<'de>)> Visitor<'de> for PageVisitor<F> {
        type Value = PageMeta;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list object")
        }
        fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<PageMeta, A::Error> {
            let mut meta = PageMeta::default();
            while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                match &*key {
                    "metadata" => {
                        let m: RawMeta<'de> = map.next_value()?;
                        meta.resource_version = m.resource_version.map(Cow::into_owned);
                        meta.continue_token = m.continue_token.map(Cow::into_owned).filter(|t| !t.is_empty());
                    }
                    "items" => map.next_value_seed(Items(&mut self.0))?,
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(meta)
        }
    }
    d.deserialize_map(PageVisitor(each))
}

/// Which optional fields the index keeps (fewer bytes per endpoint when they are not needed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Keep {
    /// Endpoint pod names (only `endpoint_pod_names` answers with them).
    pub pod_names: bool,
}

/// The result of projecting one object.
#[derive(Debug)]
pub enum Projected {
    /// Serve this object.
    Live(Object),
    /// The object exists but must not be served (a finished pod): remove what we have of it.
    Gone(Object),
    /// The object projects to nothing (a slice without a service label): remove it by key.
    Nothing(Kind, (Arc<str>, Arc<str>)),
}

fn ip(s: &str) -> Option<IpAddr> {
    s.parse().ok()
}

fn ports(list: Option<Vec<RawPort<'_>>>) -> Box<[Port]> {
    let mut out: Vec<Port> = list
        .into_iter()
        .flatten()
        .map(|p| Port {
            name: p.name.as_deref().unwrap_or("").into(),
            protocol: p.protocol.as_deref().unwrap_or("TCP").into(),
            port: p.port.unwrap_or(-1),
        })
        .collect();
    if out.is_empty() {
        out.push(Port { name: "".into(), protocol: "".into(), port: -1 });
    }
    out.into_boxed_slice()
}

impl RawObject<'_> {
    /// Projects this object as `kind`; `None` when it has no name (nothing to key it by).
    /// The namespace `Arc` is this object's own; the index swaps in the one it keys the
    /// namespace by, so every stored object of a namespace shares one.
    pub fn project(self, kind: Kind, keep: Keep) -> Option<Projected> {
        let name: Arc<str> = Arc::from(self.metadata.name.as_deref()?);
        let namespace: Arc<str> = Arc::from(self.metadata.namespace.as_deref().unwrap_or(""));
        Some(match kind {
            Kind::Namespace => Projected::Live(Object::Namespace(Namespace { name })),
            Kind::Service => match self.service(namespace.clone(), name.clone()) {
                Some(s) => Projected::Live(Object::Service(s)),
                None => Projected::Nothing(kind, (namespace, name)),
            },
            Kind::Slice => match self.slice(namespace.clone(), name.clone(), keep) {
                Some(s) => Projected::Live(Object::Slice(s)),
                None => Projected::Nothing(kind, (namespace, name)),
            },
            Kind::Pod => {
                let phase = self.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("");
                // Pods that are finished or being deleted no longer own their IP (CoreDNS #2842).
                let live =
                    self.metadata.deletion_timestamp.is_none() && !matches!(phase, "Succeeded" | "Failed" | "Unknown");
                let ip = self.status.as_ref().and_then(|s| s.pod_ip.as_deref()).and_then(ip);
                let pod = Object::Pod(Pod { namespace, name, ip });
                if live {
                    Projected::Live(pod)
                } else {
                    Projected::Gone(pod)
                }
            }
        })
    }

    fn service(self, namespace: Arc<str>, name: Arc<str>) -> Option<Service> {
        let spec = self.spec?;
        let kind = if spec.type_.as_deref() == Some("ExternalName") {
            ServiceKind::ExternalName(spec.external_name.as_deref().unwrap_or("").into())
        } else if spec.cluster_ip.as_deref() == Some("None") {
            ServiceKind::Headless
        } else {
            ServiceKind::ClusterIp
        };
        let mut ips = Vec::new();
        if kind == ServiceKind::ClusterIp {
            match &spec.cluster_ips {
                Some(list) if !list.is_empty() => ips.extend(list.iter().filter_map(|s| ip(s))),
                _ => ips.extend(spec.cluster_ip.as_deref().and_then(ip)),
            }
        }
        let mut external: Vec<ExternalHost> =
            spec.external_ips.iter().flatten().filter_map(|s| ip(s)).map(ExternalHost::Ip).collect();
        let ingress = self.status.and_then(|s| s.load_balancer).and_then(|lb| lb.ingress);
        for i in ingress.into_iter().flatten() {
            match (i.ip.as_deref().and_then(ip), i.hostname.as_deref().filter(|h| !h.is_empty())) {
                (Some(addr), _) => external.push(ExternalHost::Ip(addr)),
                (None, Some(host)) => external.push(ExternalHost::Name(host.into())),
                (None, None) => {}
            }
        }
        Some(Service {
            namespace,
            name,
            kind,
            ips: ips.into_boxed_slice(),
            ports: ports(spec.ports),
            has_selector: spec.selector.is_some_and(|s| s.0),
            external: external.into_boxed_slice(),
        })
    }

    fn slice(self, namespace: Arc<str>, name: Arc<str>, keep: Keep) -> Option<Slice> {
        // FQDN slices are deprecated and carry no addresses DNS can serve.
        if !matches!(self.address_type.as_deref(), Some("IPv4" | "IPv6")) {
            return None;
        }
        let service: Arc<str> = Arc::from(self.metadata.labels.as_ref()?.service_name.as_deref()?);
        let endpoints: Vec<Endpoint> = self
            .endpoints
            .into_iter()
            .flatten()
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
            .map(|e| {
                Endpoint::new(
                    e.addresses.iter().filter_map(|a| ip(a)).collect(),
                    e.hostname.as_deref().filter(|h| !h.is_empty()).map(Into::into),
                    e.target_ref
                        .as_ref()
                        .filter(|_| keep.pod_names)
                        .filter(|r| r.kind.as_deref().is_none_or(|k| k == "Pod"))
                        .and_then(|r| r.name.as_deref())
                        .filter(|n| !n.is_empty() && n.len() < 64)
                        .map(Into::into),
                )
            })
            .filter(|e| !e.addresses.is_empty())
            .collect();
        let trigger_time = self
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.trigger_time.as_deref())
            .and_then(crate::object::parse_rfc3339);
        Some(Slice {
            namespace,
            name,
            service,
            ports: ports(self.ports),
            endpoints: endpoints.into_boxed_slice(),
            trigger_time,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(kind: Kind, json: &str) -> Projected {
        let raw: RawObject = serde_json::from_str(json).unwrap();
        raw.project(kind, Keep { pod_names: true }).unwrap()
    }

    #[test]
    fn service_reads_only_what_dns_needs() {
        let p = project(
            Kind::Service,
            r#"{"metadata":{"name":"web","namespace":"prod","managedFields":[{"manager":"x","fieldsV1":{"f:spec":{}}}],
                "labels":{"app":"web"}},
               "spec":{"type":"LoadBalancer","clusterIP":"10.96.0.5","clusterIPs":["10.96.0.5","fd00::5"],
                "ports":[{"name":"http","port":80,"protocol":"TCP","targetPort":8080}],"selector":{"app":"web"},
                "externalIPs":["192.0.2.1"]},
               "status":{"loadBalancer":{"ingress":[{"ip":"198.51.100.1"},{"hostname":"lb.example"}]}}}"#,
        );
        let Projected::Live(Object::Service(s)) = p else { panic!("{p:?}") };
        assert_eq!((&*s.namespace, &*s.name), ("prod", "web"));
        assert_eq!(s.kind, ServiceKind::ClusterIp);
        assert_eq!(s.ips.len(), 2);
        assert!(s.has_selector);
        assert_eq!(s.ports[0].port, 80);
        assert_eq!(s.external.len(), 3);
        assert_eq!(s.external[2], ExternalHost::Name("lb.example".into()));
    }

    #[test]
    fn headless_external_name_and_portless() {
        let p = project(
            Kind::Service,
            r#"{"metadata":{"name":"h","namespace":"a"},"spec":{"clusterIP":"None","selector":{}}}"#,
        );
        let Projected::Live(Object::Service(s)) = p else { panic!() };
        assert_eq!(s.kind, ServiceKind::Headless);
        assert!(!s.has_selector);
        assert_eq!(s.ports[0].port, -1);
        let p = project(
            Kind::Service,
            r#"{"metadata":{"name":"x","namespace":"a"},"spec":{"type":"ExternalName","externalName":"db.example"}}"#,
        );
        let Projected::Live(Object::Service(s)) = p else { panic!() };
        assert_eq!(s.kind, ServiceKind::ExternalName("db.example".into()));
    }

    #[test]
    fn slice_keeps_ready_endpoints_and_names() {
        let json = r#"{"metadata":{"name":"web-abc","namespace":"prod",
              "labels":{"kubernetes.io/service-name":"web","x":"y"},
              "annotations":{"endpoints.kubernetes.io/last-change-trigger-time":"2026-11-21T10:00:00Z"}},
             "addressType":"IPv4","ports":[{"name":"http","port":8080,"protocol":"TCP"}],
             "endpoints":[{"addresses":["10.1.0.1"],"conditions":{"ready":true},"targetRef":{"kind":"Pod","name":"web-1"}},
                          {"addresses":["10.1.0.2"],"conditions":{"ready":false}},
                          {"addresses":["10.1.0.3"],"hostname":"h3"}]}"#;
        let Projected::Live(Object::Slice(s)) = project(Kind::Slice, json) else { panic!() };
        assert_eq!(&*s.service, "web");
        assert_eq!(s.endpoints.len(), 2);
        assert_eq!(s.endpoints[0].pod_name(), Some("web-1"));
        assert_eq!(s.endpoints[1].hostname(), Some("h3"));
        assert!(s.trigger_time.is_some());
        let raw: RawObject = serde_json::from_str(json).unwrap();
        let Some(Projected::Live(Object::Slice(s))) = raw.project(Kind::Slice, Keep::default()) else { panic!() };
        assert_eq!(s.endpoints[0].pod_name(), None, "pod names are dropped unless endpoint_pod_names needs them");
        let unlabelled = r#"{"metadata":{"name":"s","namespace":"a"},"addressType":"IPv4"}"#;
        assert!(matches!(project(Kind::Slice, unlabelled), Projected::Nothing(Kind::Slice, _)));
        let fqdn = r#"{"metadata":{"name":"s","namespace":"a","labels":{"kubernetes.io/service-name":"x"}},"addressType":"FQDN"}"#;
        assert!(matches!(project(Kind::Slice, fqdn), Projected::Nothing(Kind::Slice, _)));
    }

    #[test]
    fn pods_finished_or_deleting_are_gone() {
        let live = r#"{"metadata":{"name":"p","namespace":"a"},"spec":{"containers":[{"name":"c"}]},
                       "status":{"phase":"Running","podIP":"10.2.0.1","containerStatuses":[{"ready":true}]}}"#;
        assert!(matches!(project(Kind::Pod, live), Projected::Live(Object::Pod(Pod { ip: Some(_), .. }))));
        let done = r#"{"metadata":{"name":"p","namespace":"a"},"status":{"phase":"Succeeded","podIP":"10.2.0.1"}}"#;
        assert!(matches!(project(Kind::Pod, done), Projected::Gone(_)));
        let deleting = r#"{"metadata":{"name":"p","namespace":"a","deletionTimestamp":"2026-01-01T00:00:00Z"},
                           "status":{"phase":"Running","podIP":"10.2.0.1"}}"#;
        assert!(matches!(project(Kind::Pod, deleting), Projected::Gone(_)));
    }

    #[test]
    fn events_status_and_bookmarks() {
        let e: RawEvent = serde_json::from_str(
            r#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                "message":"too old resource version: 5 (9)","reason":"Expired","code":410}}"#,
        )
        .unwrap();
        assert_eq!(e.type_, "ERROR");
        assert_eq!(e.object.code, Some(410));
        let b: RawEvent = serde_json::from_str(
            r#"{"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"42",
                "annotations":{"k8s.io/initial-events-end":"true"}}}}"#,
        )
        .unwrap();
        assert_eq!(b.object.metadata.resource_version.as_deref(), Some("42"));
        assert!(b.object.metadata.annotations.unwrap().initial_events_end);
    }

    #[test]
    fn pages_stream_their_items() {
        let page = r#"{"kind":"ServiceList","apiVersion":"v1","metadata":{"resourceVersion":"77","continue":"tok"},
            "items":[{"metadata":{"name":"a","namespace":"n"},"spec":{"clusterIP":"10.0.0.1"}},
                     {"metadata":{"name":"b","namespace":"n"},"spec":{"clusterIP":"10.0.0.2"}}]}"#;
        let mut names = Vec::new();
        let mut de = serde_json::Deserializer::from_str(page);
        let meta = read_page(&mut de, |o| names.push(o.metadata.name.unwrap().into_owned())).unwrap();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(meta.resource_version.as_deref(), Some("77"));
        assert_eq!(meta.continue_token.as_deref(), Some("tok"));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in ["", "{", "[1,2]", r#"{"metadata":7}"#, r#"{"spec":{"ports":"x"}}"#, "\u{0}"] {
            let _ = serde_json::from_str::<RawObject>(bad);
            let _ = serde_json::from_str::<RawEvent>(bad);
        }
    }
}
