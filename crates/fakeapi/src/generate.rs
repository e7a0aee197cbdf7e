//! A generated cluster for benchmarks: `namespaces` namespaces; `services` Services spread over
//! them (every 10th headless); `endpoints` ready endpoints spread over the services in slices of
//! at most 100, each with its pod as `targetRef`; and `pods` running pods, the endpoints' pods
//! first. Objects are produced one at a time (the index tool never holds the whole cluster).

use crate::objects;
use serde_json::Value;

#[derive(Clone, Copy, Debug)]
pub struct Cluster {
    pub services: usize,
    pub endpoints: usize,
    pub pods: usize,
    pub namespaces: usize,
}

/// The address of endpoint (and pod) number `n`: 10.128.0.0/10.
pub fn pod_ip(n: usize) -> String {
    format!("10.{}.{}.{}", 128 + n / 65536 % 64, n / 256 % 256, n % 256)
}

impl Cluster {
    fn ns(&self, i: usize) -> String {
        format!("ns-{}", i % self.namespaces.max(1))
    }

    fn per_service(&self) -> usize {
        self.endpoints.div_ceil(self.services.max(1))
    }

    /// The service that owns endpoint `n`.
    fn owner(&self, n: usize) -> usize {
        n / self.per_service().max(1)
    }

    pub fn namespaces(&self) -> impl Iterator<Item = Value> + '_ {
        (0..self.namespaces).map(|n| objects::namespace(&format!("ns-{n}")))
    }

    pub fn services(&self) -> impl Iterator<Item = Value> + '_ {
        (0..self.services).map(|i| {
            let ip = format!("10.96.{}.{}", i / 250 % 256, i % 250 + 1);
            let ips: Vec<&str> = if i % 10 == 0 { vec![] } else { vec![ip.as_str()] };
            objects::service(&self.ns(i), &format!("svc-{i}"), &ips, &[("http", 80, "TCP")])
        })
    }

    pub fn slices(&self) -> impl Iterator<Item = Value> + '_ {
        let per = self.per_service();
        (0..self.services).flat_map(move |i| {
            let first = i * per;
            let count = per.min(self.endpoints.saturating_sub(first));
            (0..count.div_ceil(100)).map(move |c| {
                let (ns, name) = (self.ns(i), format!("svc-{i}"));
                let range = first + c * 100..first + (c * 100 + 100).min(count);
                let addrs: Vec<String> = range.clone().map(pod_ip).collect();
                let pods: Vec<String> = range.map(|n| format!("{name}-{n}")).collect();
                let refs: Vec<[&str; 1]> = addrs.iter().map(|a| [a.as_str()]).collect();
                let eps: Vec<objects::Ep> =
                    refs.iter().zip(&pods).map(|(r, p)| objects::Ep { pod: Some(p), ..objects::ep(r) }).collect();
                objects::slice(&ns, &format!("{name}-{c}"), &name, "IPv4", &[("http", 8080, "TCP")], &eps)
            })
        })
    }

    pub fn pods(&self) -> impl Iterator<Item = Value> + '_ {
        (0..self.pods).map(|n| {
            let (ns, name) = if n < self.endpoints {
                let i = self.owner(n);
                (self.ns(i), format!("svc-{i}-{n}"))
            } else {
                (self.ns(n), format!("job-{n}"))
            };
            objects::pod(&ns, &name, &pod_ip(n), "Running")
        })
    }

    /// Every object, kind by kind, loaded into `api` without an event history.
    pub fn load(&self, api: &crate::FakeApi) {
        use crate::Kind;
        api.load(Kind::Namespace, self.namespaces());
        api.load(Kind::Service, self.services());
        api.load(Kind::EndpointSlice, self.slices());
        api.load(Kind::Pod, self.pods());
    }
}
