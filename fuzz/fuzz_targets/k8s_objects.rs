//! Kubernetes objects → records: arbitrary JSON as Services, EndpointSlices, Pods and Namespaces
//! (as the API server would send them, however odd), applied to the index in any order with
//! deletes, then every name the objects imply (and some the input makes up) asked in every type.
//! Nothing panics, and every answer encodes into a message that decodes.
#![no_main]
use kdns_kubernetes::decode::{Keep, Projected, RawObject};
use kdns_kubernetes::object::Kind;
use kdns_kubernetes::{Engine, Index, Outcome, PodMode, Settings};
use kdns_wire::{rtype, Message, Name, Question};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The streaming decoder reads the fuzz bytes directly, as it reads the API server's.
    let Ok(raw) = serde_json::from_slice::<Vec<RawObject>>(data) else { return };
    let items = serde_json::from_slice::<Vec<serde_json::Value>>(data).unwrap_or_default();
    let mut index = Index::new(true, true);
    let mut names: Vec<String> = Vec::new();
    for (i, item) in raw.into_iter().take(64).enumerate() {
        let kind = match item.kind.as_deref() {
            Some("Service") => Kind::Service,
            Some("EndpointSlice") => Kind::Slice,
            Some("Pod") => Kind::Pod,
            Some("Namespace") => Kind::Namespace,
            _ => continue,
        };
        let Some(Projected::Live(obj) | Projected::Gone(obj)) = item.project(kind, Keep { pod_names: true }) else {
            continue;
        };
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
