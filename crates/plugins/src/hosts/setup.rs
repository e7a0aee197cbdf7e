use super::{parse_hosts, Hosts, Index};
use kdns_corefile::{Directive, Dispenser, Error};
use kdns_server::metrics::Kind;
use kdns_server::plugin::{once, parse_duration, Plugin, SetupCtx};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

kdns_server::metric_family!(
    hosts_entries,
    "coredns_hosts_entries",
    "The combined number of entries in hosts and Corefile.",
    Kind::Gauge,
    ["hostsfile"]
);
kdns_server::metric_family!(
    hosts_reload_timestamp_seconds,
    "coredns_hosts_reload_timestamp_seconds",
    "The timestamp of the last reload of hosts file.",
    Kind::Gauge,
    []
);

pub fn setup(ctx: &mut SetupCtx<'_>, ds: &[&Directive]) -> Result<Option<Arc<dyn Plugin>>, Error> {
    once("hosts", ds)?;
    let d = Dispenser::new(ds[0]);
    let args = d.args();
    let path = PathBuf::from(args.first().map_or("/etc/hosts", |t| t.text.as_str()));
    let origins = crate::pkg::zones::plugin_zones("hosts", args.get(1..).unwrap_or_default(), ctx.zones, d.name())?;
    let mut ttl = 3600u32;
    let mut reverse = true;
    let mut reload = Duration::from_secs(5);
    let mut fallthrough = crate::pkg::zones::Fallthrough::default();
    let mut inline: Vec<(IpAddr, Vec<String>)> = Vec::new();
    for (prop, vals) in d.block() {
        match prop.text.as_str() {
            "ttl" => {
                let [v] = vals.as_slice() else {
                    return Err(d.arg_err(prop));
                };
                ttl = v.text.parse::<u32>().ok().filter(|t| (1..=65535).contains(t)).ok_or_else(|| {
                    Error::at(v, format!("plugin/hosts: ttl must be in range [1, 65535]: {}", v.text))
                })?;
            }
            "no_reverse" => reverse = false,
            "reload" => {
                let [v] = vals.as_slice() else {
                    return Err(d.arg_err(prop));
                };
                reload = parse_duration(&v.text)
                    .ok_or_else(|| Error::at(v, format!("plugin/hosts: invalid duration for reload {:?}", v.text)))?;
            }
            "fallthrough" => fallthrough = crate::pkg::zones::Fallthrough::parse("hosts", &vals)?,
            _ => {
                let line = std::iter::once(prop)
                    .chain(vals.iter().copied())
                    .map(|t| t.text.as_str())
                    .collect::<Vec<_>>()
                    .join(" ");
                let parsed = parse_hosts(&line);
                if parsed.is_empty() {
                    return Err(Error::at(
                        prop,
                        format!("plugin/hosts: unknown property or invalid inline entry {:?}", prop.text),
                    ));
                }
                inline.extend(parsed);
            }
        }
    }
    let source = FileSource { path: path.clone(), inline: Arc::new(inline) };
    // Stamped before the load, here rather than when the watcher first runs: an edit made
    // between the two (a runtime busy at startup) would otherwise never be picked up.
    let loaded_stamp = source.stamp();
    let index = Arc::new(RwLock::new(Arc::new(source.load())));
    if !path.exists() {
        kdns_server::warning!(plugin = "hosts", "File does not exist: {}", path.display());
    }
    if !reload.is_zero() {
        ctx.contrib.tasks.push(Box::pin(watch(source, loaded_stamp, index.clone(), reload)));
    }
    Ok(Some(Arc::new(Hosts { origins, fallthrough, ttl, reverse, index })))
}

struct FileSource {
    path: PathBuf,
    inline: Arc<Vec<(IpAddr, Vec<String>)>>,
}

impl FileSource {
    fn stamp(&self) -> Option<(SystemTime, u64)> {
        let m = std::fs::metadata(&self.path).ok()?;
        Some((m.modified().ok()?, m.len()))
    }

    fn load(&self) -> Index {
        let file = std::fs::read_to_string(&self.path).map(|t| parse_hosts(&t)).unwrap_or_default();
        let index = Index::from_entries([self.inline.as_slice(), file.as_slice()]);
        let label = self.path.display().to_string();
        hosts_entries().with(&[&label]).set(index.len() as f64);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        hosts_reload_timestamp_seconds().with(&[]).set(now);
        index
    }
}

/// Re-reads the file when its modification time or size changed.
async fn watch(
    source: FileSource,
    mut last: Option<(SystemTime, u64)>,
    index: Arc<RwLock<Arc<Index>>>,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let now = source.stamp();
        if now != last {
            last = now;
            let fresh = Arc::new(source.load());
            *index.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        }
    }
}
