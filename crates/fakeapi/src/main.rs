//! `kdns-fakeapi`: the fake API server as a process, with a generated cluster (benchmarks).
//!
//! `kdns-fakeapi --listen 127.0.0.1:6443 --services 10000 --endpoints 100000 [--pods N]
//! [--churn-every-ms N] [--no-watch-list]`; `--help` lists the flags.

use kdns_fakeapi::generate::Cluster;
use kdns_fakeapi::{objects, FakeApi, Kind};
use std::time::Duration;

const HELP: &str = "\
kdns-fakeapi: a fake Kubernetes API server with a generated cluster (tests and benchmarks).

Usage: kdns-fakeapi [FLAGS]

  --listen ADDR:PORT     where to serve plain HTTP (default 127.0.0.1:6443)
  --services N           Services, every 10th headless (default 100)
  --endpoints N          ready endpoints spread over the services, slices of <= 100 (default 1000)
  --pods N               running pods, the endpoints' pods first (default 0)
  --namespaces N         namespaces the objects are spread over (default 100)
  --churn-every-ms N     replace one EndpointSlice every N ms (default 0: no churn)
  --no-watch-list        refuse streaming lists (HTTP 422), as servers before 1.27 do
  --help                 this text

Serves discovery (/api, /apis, resource lists), lists with limit/continue, watches with
bookmarks and sendInitialEvents, for services, endpointslices, namespaces and pods. Prints one
line when the cluster is loaded, with the time it took.
";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h" || a == "-help") {
        print!("{HELP}");
        return;
    }
    let known = ["--listen", "--services", "--endpoints", "--pods", "--namespaces", "--churn-every-ms"];
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            a if known.contains(&a) => i += 2,
            "--no-watch-list" => i += 1,
            other => {
                eprintln!("kdns-fakeapi: unknown flag {other:?} (see --help)");
                std::process::exit(2);
            }
        }
    }
    let get = |flag: &str, default: &str| -> String {
        args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned().unwrap_or(default.to_string())
    };
    let number = |flag: &str, default: &str| -> usize {
        get(flag, default).parse().unwrap_or_else(|_| {
            eprintln!("kdns-fakeapi: {flag} needs a number");
            std::process::exit(2);
        })
    };
    let listen = get("--listen", "127.0.0.1:6443");
    let cluster = Cluster {
        services: number("--services", "100"),
        endpoints: number("--endpoints", "1000"),
        pods: number("--pods", "0"),
        namespaces: number("--namespaces", "100").max(1),
    };
    let churn_ms = number("--churn-every-ms", "0") as u64;
    let Ok(addr) = listen.parse() else {
        eprintln!("kdns-fakeapi: --listen needs ADDR:PORT");
        std::process::exit(2);
    };
    let api = FakeApi::start_on(addr);
    if args.iter().any(|a| a == "--no-watch-list") {
        api.set_watch_list(false);
    }
    let started = std::time::Instant::now();
    cluster.load(&api);
    let Cluster { services, endpoints, pods, namespaces } = cluster;
    println!(
        "fake API server on {} with {services} services, {endpoints} endpoints, {pods} pods (rv {}), loaded in {:.2} s",
        api.url(),
        api.resource_version(),
        started.elapsed().as_secs_f64()
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
        let ns = format!("ns-{}", i % namespaces);
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
