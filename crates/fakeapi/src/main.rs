//! `kdns-fakeapi`: the fake API server as a process, with a generated cluster (benchmarks).
//!
//! `kdns-fakeapi --listen 127.0.0.1:6443 --services 10000 --endpoints 100000 [--churn-every-ms N]`

use kdns_fakeapi::{objects, FakeApi, Kind};
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |flag: &str, default: &str| -> String {
        args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned().unwrap_or(default.to_string())
    };
    let listen = get("--listen", "127.0.0.1:6443");
    let services: usize = get("--services", "100").parse().expect("--services N");
    let endpoints: usize = get("--endpoints", "1000").parse().expect("--endpoints N");
    let namespaces: usize = get("--namespaces", "100").parse().expect("--namespaces N");
    let churn_ms: u64 = get("--churn-every-ms", "0").parse().expect("--churn-every-ms N");
    let api = FakeApi::start_on(listen.parse().expect("--listen ADDR:PORT"));
    generate(&api, services, endpoints, namespaces);
    println!(
        "fake API server on {} with {services} services, {endpoints} endpoints (rv {})",
        api.url(),
        api.resource_version()
    );
    let mut n = 0u64;
    loop {
        if churn_ms == 0 {
            std::thread::sleep(Duration::from_secs(3600));
            continue;
        }
        std::thread::sleep(Duration::from_millis(churn_ms));
        n += 1;
        let i = (n as usize) % services.max(1);
        let ns = format!("ns-{}", i % namespaces.max(1));
        let ip = format!("10.200.{}.{}", (n / 250) % 250, n % 250 + 1);
        let mut s = objects::slice(
            &ns,
            &format!("svc-{i}-churn"),
            &format!("svc-{i}"),
            "IPv4",
            &[("http", 8080, "TCP")],
            &[objects::ep(&[&ip])],
        );
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        s["metadata"]["annotations"] =
            serde_json::json!({"endpoints.kubernetes.io/last-change-trigger-time": rfc3339(now)});
        api.apply(Kind::EndpointSlice, s);
    }
}

fn rfc3339(t: Duration) -> String {
    let secs = t.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil from days (Howard Hinnant).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:09}Z", rem / 3600, rem % 3600 / 60, rem % 60, t.subsec_nanos())
}

/// Services spread over namespaces: every 10th headless, the rest ClusterIP; endpoints spread
/// over services in slices of at most 100.
pub fn generate(api: &FakeApi, services: usize, endpoints: usize, namespaces: usize) {
    for n in 0..namespaces {
        api.apply(Kind::Namespace, objects::namespace(&format!("ns-{n}")));
    }
    let per_service = endpoints.div_ceil(services.max(1));
    let mut made = 0usize;
    for i in 0..services {
        let ns = format!("ns-{}", i % namespaces.max(1));
        let name = format!("svc-{i}");
        let ip = format!("10.96.{}.{}", i / 250, i % 250 + 1);
        let ips: Vec<&str> = if i % 10 == 0 { vec![] } else { vec![ip.as_str()] };
        api.apply(Kind::Service, objects::service(&ns, &name, &ips, &[("http", 80, "TCP")]));
        let count = per_service.min(endpoints - made.min(endpoints));
        let addrs: Vec<String> = (0..count)
            .map(|k| {
                let n = made + k;
                format!("10.{}.{}.{}", 128 + n / 65536 % 64, n / 256 % 256, n % 256)
            })
            .collect();
        for (c, chunk) in addrs.chunks(100).enumerate() {
            let refs: Vec<Vec<&str>> = chunk.iter().map(|a| vec![a.as_str()]).collect();
            let eps: Vec<objects::Ep> = refs.iter().map(|r| objects::ep(r)).collect();
            api.apply(
                Kind::EndpointSlice,
                objects::slice(&ns, &format!("{name}-{c}"), &name, "IPv4", &[("http", 8080, "TCP")], &eps),
            );
        }
        made += count;
    }
}
