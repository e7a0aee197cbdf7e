//! `kdns`: the multi-call binary. Invoked as `coredns` (or `kdns`) it is the cluster DNS
//! server with CoreDNS's flags; invoked as `node-cache` (or `kdns node-cache …`) it is the
//! NodeLocal DNSCache agent.

mod flags;

use flags::{FlagSpec, Kind};
use kdns_server::lifecycle::{run, Options, Source};
use kdns_server::log::stderr as err;
use std::io::Read;
use std::path::{Path, PathBuf};

/// mimalloc instead of glibc malloc: the miss path allocates on a UDP worker and frees on a
/// runtime thread, which glibc's per-thread arenas handle with consolidation and lock traffic
/// (a quarter of the CPU of a forwarded query in profiles) and which leaves RSS fragmented.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `arena_eager_commit` option (the enum value in mimalloc.h): committing whole
/// arenas up front costs ~9 MiB of RSS and buys nothing measurable here.
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

#[allow(unsafe_code)]
extern "C" fn tune_allocator() {
    // SAFETY: sets a plain integer option; mimalloc reads it when it reserves its first arena.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0) };
}

/// Runs [`tune_allocator`] as an ELF constructor of the highest user priority: before the Rust
/// runtime (or anything else) allocates, which is when mimalloc sets up its first arena.
#[allow(unsafe_code)]
#[used]
#[unsafe(link_section = ".init_array.00101")]
static TUNE_ALLOCATOR: extern "C" fn() = tune_allocator;

/// Frees and decommits every empty mimalloc page now (after a Kubernetes list, whose transient
/// buffers would otherwise stay resident until mimalloc's own purge gets to them).
#[allow(unsafe_code)]
fn release_memory() {
    // SAFETY: a plain call into the allocator; `true` forces collection of abandoned pages too.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

/// Writes to standard output the way a Go program does: when the reader is gone (`kdns
/// -version | head -0`) the process dies of SIGPIPE, quietly, instead of Rust's panic on a
/// failed `println!`.
fn out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            die_of_sigpipe();
        }
        std::process::exit(1);
    }
}

#[allow(unsafe_code)]
fn die_of_sigpipe() -> ! {
    // SAFETY: restores the default disposition of one signal and raises it on this thread; the
    // default action ends the process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    std::process::exit(128 + libc::SIGPIPE)
}

/// CoreDNS version whose behaviour this build follows.
const COREDNS_COMPAT: &str = "1.14.7";

const SPECS: &[FlagSpec] = &[
    FlagSpec { name: "conf", kind: Kind::Value, default: "", help: "Corefile to load (default \"Corefile\")" },
    FlagSpec { name: "dns.port", kind: Kind::Value, default: "53", help: "Default port" },
    FlagSpec { name: "p", kind: Kind::Value, default: "53", help: "Default port" },
    FlagSpec { name: "pidfile", kind: Kind::Value, default: "", help: "Path to write pid file" },
    FlagSpec { name: "plugins", kind: Kind::Bool, default: "", help: "List installed plugins" },
    FlagSpec { name: "quiet", kind: Kind::Bool, default: "", help: "Quiet mode (no initialization output)" },
    FlagSpec { name: "version", kind: Kind::Bool, default: "", help: "Show version" },
];

fn main() {
    kdns_server::memory::set_release(release_memory);
    let argv: Vec<String> = std::env::args().collect();
    let invoked = argv
        .first()
        .map(|a| Path::new(a).file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default())
        .unwrap_or_default();
    let mut args: Vec<String> = argv.iter().skip(1).cloned().collect();
    // One image serves both DaemonSets: node-cache's manifest passes only `args` (its image's
    // entrypoint is /node-cache), so `-localip`, a flag CoreDNS does not have, selects the mode.
    let node_cache = invoked == "node-cache"
        || (args.first().is_some_and(|a| a == "node-cache") && {
            args.remove(0);
            true
        })
        || args.iter().any(|a| {
            let name = a.trim_start_matches('-');
            a.starts_with('-') && (name == "localip" || name.starts_with("localip="))
        });
    if node_cache {
        std::process::exit(node_cache_mode(&args));
    }
    match args.first().map(String::as_str) {
        Some("check") => std::process::exit(check_command(&args[1..])),
        Some("version") => {
            out(&(version_lines().join("\n") + "\n"));
            std::process::exit(0);
        }
        _ => {}
    }
    std::process::exit(cluster_dns(&invoked, &args));
}

fn version_lines() -> Vec<String> {
    vec![
        format!("kdns-{} (CoreDNS-{COREDNS_COMPAT} compatible)", env!("CARGO_PKG_VERSION")),
        format!(
            "{}/{}, rustc, {}",
            std::env::consts::OS,
            std::env::consts::ARCH,
            option_env!("KDNS_REVISION").unwrap_or("unknown")
        ),
    ]
}

fn cluster_dns(program: &str, args: &[String]) -> i32 {
    let parsed = match flags::parse(SPECS, args) {
        Ok(p) => p,
        Err(e) => {
            err(&format!("{e}\n"));
            err(&flags::usage(program, SPECS));
            return 2;
        }
    };
    if parsed.help {
        err(&flags::usage(program, SPECS));
        return 0;
    }
    if !parsed.rest.is_empty() {
        err(&format!("extra command line arguments: {:?}\n", parsed.rest));
        return 1;
    }
    if parsed.bool("version") {
        out(&(version_lines().join("\n") + "\n"));
        return 0;
    }
    if parsed.bool("plugins") {
        let mut text =
            String::from("Server types:\n  dns\n\nCaddyfile loaders:\n  flag\n  default\n\nOther plugins:\n");
        for p in kdns_plugins::all() {
            text.push_str(&format!("  dns.{}\n", p.name));
        }
        out(&text);
        return 0;
    }
    let port_text = parsed.get("dns.port").or(parsed.get("p")).unwrap_or("53");
    let Ok(dns_port) = port_text.parse::<u16>() else {
        err(&format!("invalid port {port_text:?}\n"));
        return 1;
    };
    let source = match parsed.get("conf") {
        Some("stdin") => {
            let mut text = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut text) {
                err(&format!("cannot read Corefile from stdin: {e}\n"));
                return 1;
            }
            Source::Text { name: "stdin".into(), text }
        }
        Some(path) => {
            let p = PathBuf::from(path);
            if !p.exists() {
                err(&format!("Corefile {path:?} does not exist\n"));
                return 1;
            }
            Source::File(p)
        }
        None if Path::new("Corefile").exists() => Source::File(PathBuf::from("Corefile")),
        None => Source::Text { name: "Corefile".into(), text: ". {\n    whoami\n    log\n}\n".into() },
    };
    raise_fd_limit();
    let workers = worker_count();
    run(Options {
        source,
        dns_port,
        pidfile: parsed.get("pidfile").filter(|p| !p.is_empty()).map(PathBuf::from),
        quiet: parsed.bool("quiet"),
        plugins: kdns_plugins::all(),
        workers,
        version_lines: version_lines(),
        embedder: None,
    })
}

/// `kdns check [-conf FILE] [-dns.port N]`: validates a Corefile without binding anything and
/// prints the effective server blocks, plugin chains and endpoints. Exit 0 when it would load.
fn check_command(args: &[String]) -> i32 {
    let parsed = match flags::parse(SPECS, args) {
        Ok(p) => p,
        Err(e) => {
            err(&format!("{e}\n"));
            return 2;
        }
    };
    let port_text = parsed.get("dns.port").or(parsed.get("p")).unwrap_or("53");
    let Ok(dns_port) = port_text.parse::<u16>() else {
        err(&format!("invalid port {port_text:?}\n"));
        return 2;
    };
    let path = parsed.get("conf").or(parsed.rest.first().map(String::as_str)).unwrap_or("Corefile");
    let source = if path == "stdin" {
        let mut text = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut text) {
            err(&format!("cannot read Corefile from stdin: {e}\n"));
            return 1;
        }
        Source::Text { name: "stdin".into(), text }
    } else {
        Source::File(PathBuf::from(path))
    };
    match kdns_server::lifecycle::describe(&source, &kdns_plugins::all(), dns_port) {
        Ok(text) => {
            out(&text);
            0
        }
        Err(e) => {
            err(&format!("{e}\n"));
            1
        }
    }
}

/// node-cache mode: node-cache's flags plus CoreDNS's, the agent around the same server.
fn node_cache_mode(args: &[String]) -> i32 {
    let mut specs: Vec<FlagSpec> = kdns_nodecache::settings::FLAGS
        .iter()
        .map(|(name, is_bool, default, help)| FlagSpec {
            name,
            kind: if *is_bool { Kind::Bool } else { Kind::Value },
            default,
            help,
        })
        .collect();
    specs.extend(SPECS.iter().map(|s| FlagSpec { name: s.name, kind: s.kind, default: s.default, help: s.help }));
    let parsed = match flags::parse(&specs, args) {
        Ok(p) => p,
        Err(e) => {
            err(&format!("{e}\n"));
            err(&flags::usage("node-cache", &specs));
            return 2;
        }
    };
    if parsed.help {
        err(&flags::usage("node-cache", &specs));
        return 0;
    }
    if parsed.bool("version") {
        out(&(version_lines().join("\n") + "\n"));
        return 0;
    }
    if !parsed.rest.is_empty() {
        err(&format!("extra command line arguments: {:?}\n", parsed.rest));
        return 1;
    }
    let settings = match kdns_nodecache::settings::Settings::from_flags(&|n| parsed.get(n).map(str::to_string)) {
        Ok(s) => s,
        Err(e) => {
            err(&format!("node-cache: {e}\n"));
            return 2;
        }
    };
    kdns_plugins::cache::set_default_serve_stale(settings.serve_stale.map(kdns_plugins::cache::ServeStale::rfc8767));
    if let Some((rate, burst)) = settings.client_budget {
        kdns_server::clients::set_budget(kdns_server::clients::Budget::new(rate, burst));
    }
    let child = std::env::var_os(kdns_nodecache::supervisor::CHILD_ENV).is_some();
    if settings.supervise && !child {
        raise_fd_limit();
        return kdns_nodecache::supervisor::run(settings, kdns_plugins::all(), args.to_vec());
    }
    if let Some(path) = std::env::var_os(kdns_nodecache::supervisor::METRICS_ENV).filter(|_| child) {
        kdns_server::metrics::set_extra_source(PathBuf::from(path));
    }
    let role = if child { kdns_nodecache::Role::Child } else { kdns_nodecache::Role::InProcess };
    let dns_port = settings.dns_port;
    let pidfile = settings.pidfile.clone();
    let agent = match kdns_nodecache::Agent::with_role(settings, kdns_plugins::all(), role, (0, 0)) {
        Ok(a) => a,
        Err(e) => {
            kdns_server::log::flush();
            err(&format!("node-cache: {e}\n"));
            return 1;
        }
    };
    let source = agent.source();
    raise_fd_limit();
    let workers = worker_count();
    run(Options {
        source,
        dns_port,
        pidfile,
        quiet: parsed.bool("quiet"),
        plugins: kdns_plugins::all(),
        workers,
        version_lines: version_lines(),
        embedder: Some(std::sync::Arc::new(kdns_nodecache::NodeCache(std::sync::Arc::new(agent)))),
    })
}

/// Raises the soft open-files limit to the hard limit: every upstream exchange and TCP client
/// holds a descriptor, and "too many open files" is a known CoreDNS failure under load.
#[allow(unsafe_code)]
fn raise_fd_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// UDP workers (and runtime threads): `GOMAXPROCS` when set to a positive number — the knob
/// operators already use to size CoreDNS — else the CPUs this process may run on (its affinity
/// mask, so `taskset` and cpusets count).
fn worker_count() -> usize {
    std::env::var("GOMAXPROCS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
        .min(256)
}
