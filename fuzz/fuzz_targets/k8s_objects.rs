//! Kubernetes objects → records: arbitrary JSON as Services, EndpointSlices, Pods and Namespaces
//! (as the API server would send them, however odd), applied to the index in any order with
//! deletes, then every name the objects imply (and some the input makes up) asked in every type.
//! Nothing panics, and every answer encodes into a message that decodes.
#![no_main]
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use kdns_kubernetes::object::{self, Object};
use kdns_kubernetes::{Engine, Index, Outcome, PodMode, Settings};
use kdns_wire::{rtype, Message, Name, Question};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(items) = serde_json::from_slice::<Vec<serde_json::Value>>(data) else { return };
    let mut index = Index::new(true, true);
    let mut names: Vec<String> = Vec::new();
    for (i, item) in items.iter().take(64).enumerate() {
        let obj = match item.get("kind").and_then(|k| k.as_str()) {
            Some("Service") => serde_json::from_value::<core::Service>(item.clone()).ok().and_then(|s| object::service(&s)).map(Object::Service),
            Some("EndpointSlice") => serde_json::from_value::<discovery::EndpointSlice>(item.clone()).ok().and_then(|s| object::slice(&s)).map(Object::Slice),
            Some("Pod") => serde_json::from_value::<core::Pod>(item.clone()).ok().and_then(|p| object::pod(&p)).map(Object::Pod),
            Some("Namespace") => serde_json::from_value::<core::Namespace>(item.clone()).ok().and_then(|n| object::namespace(&n)).map(Object::Namespace),
            _ => None,
        };
        let Some(obj) = obj else { continue };
        let (ns, name) = obj.key();
        names.push(format!("{name}.{ns}.svc.cluster.local."));
        names.push(format!("_http._tcp.{name}.{ns}.svc.cluster.local."));
        if i % 5 == 4 {
            index.delete(&obj);
        } else {
            index.upsert(obj);
        }
    }
    for item in &items {
        if let Some(s) = item.get("qname").and_then(|q| q.as_str()) {
            names.push(s.to_string());
        }
    }
    names.push("10.0.0.10.in-addr.arpa.".into());
    let settings = Settings {
        primary: "cluster.local.".into(),
        ttl: 5,
        pods: PodMode::Verified,
        endpoint_pod_names: true,
        namespaces: Vec::new(),
        ignore_empty_service: false,
        local_ips: vec!["10.96.0.10".parse().unwrap()],
    };
    let engine = Engine { index: &index, settings: &settings };
    let zones = [Name::from_ascii("cluster.local.").unwrap(), Name::from_ascii("in-addr.arpa.").unwrap()];
    for n in names.iter().take(256) {
        let Ok(qname) = Name::from_ascii(n) else { continue };
        for zone in zones.iter().filter(|z| qname.is_subdomain_of(z)) {
            for qtype in [rtype::A, rtype::AAAA, rtype::SRV, rtype::PTR, rtype::TXT, rtype::NS, rtype::SOA, rtype::ANY] {
                if let Outcome::Answer { answer, additional, .. } = engine.lookup(zone, &qname, qtype) {
                    let mut m = Message { id: 1, ..Message::default() };
                    m.questions.push(Question { name: qname.clone(), qtype, qclass: 1 });
                    m.answers = answer;
                    m.additional = additional;
                    Message::decode(&m.to_vec()).expect("answers encode into a decodable message");
                }
            }
        }
    }
});
