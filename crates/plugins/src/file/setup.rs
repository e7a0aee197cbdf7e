use super::{zone::Zone, File, Slot};
use kdns_corefile::{Directive, Dispenser, Error};
use kdns_server::plugin::{parse_duration, Plugin, SetupCtx};
use kdns_wire::{zonefile::parse_zone, Name};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// CoreDNS's default: check the file once a minute.
const DEFAULT_RELOAD: Duration = Duration::from_secs(60);

pub fn setup(ctx: &mut SetupCtx<'_>, ds: &[&Directive]) -> Result<Option<Arc<dyn Plugin>>, Error> {
    let mut slots = Vec::new();
    let mut fallthrough = crate::pkg::zones::Fallthrough::default();
    // Several `file` lines in one block are allowed (one file per zone), as in CoreDNS.
    for dir in ds {
        let d = Dispenser::new(dir);
        let args = d.args();
        let Some(db) = args.first() else {
            return Err(d.arg_err(d.name()));
        };
        let path: PathBuf = ctx.config_dir.join(&db.text);
        let origins = crate::pkg::zones::plugin_zones("file", &args[1..], ctx.zones, d.name())?;
        let mut reload = DEFAULT_RELOAD;
        for (prop, vals) in d.block() {
            match prop.text.as_str() {
                "reload" => {
                    let [v] = vals.as_slice() else {
                        return Err(d.arg_err(prop));
                    };
                    reload = parse_duration(&v.text).ok_or_else(|| {
                        Error::at(v, format!("plugin/file: invalid duration for reload {:?}", v.text))
                    })?;
                }
                "fallthrough" => fallthrough = crate::pkg::zones::Fallthrough::parse("file", &vals)?,
                "upstream" => kdns_server::warning!(
                    plugin = "file",
                    "upstream is deprecated and ignored: CNAMEs leaving the zone are returned for the client to follow"
                ),
                "transfer" | "no_reload" => {
                    return Err(Error::at(
                        prop,
                        format!("plugin/file: {:?} was removed from CoreDNS's file plugin (zone transfers: the transfer plugin, not supported by kdns)", prop.text),
                    ))
                }
                other => return Err(Error::at(prop, format!("plugin/file: unknown property {other:?}"))),
            }
        }
        for origin in origins {
            let slot = Arc::new(Slot { origin, zone: RwLock::new(None) });
            match load(&path, &slot.origin) {
                Ok(zone) => *slot.zone.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(zone)),
                Err(Load::Parse(msg)) => return Err(Error::at(db, format!("plugin/file: {}: {msg}", path.display()))),
                Err(Load::Open(e)) if reload.is_zero() => {
                    return Err(Error::at(db, format!("plugin/file: {}: {e}", path.display())))
                }
                Err(Load::Open(e)) => kdns_server::warning!(
                    plugin = "file",
                    "Failed to open {:?}: {e}: trying again in {}",
                    path.display().to_string(),
                    kdns_server::plugin::format_duration(reload)
                ),
            }
            if !reload.is_zero() {
                ctx.contrib.tasks.push(Box::pin(watch(path.clone(), slot.clone(), reload)));
            }
            slots.push(slot);
        }
    }
    Ok(Some(Arc::new(File { slots, fallthrough })))
}

enum Load {
    Open(std::io::Error),
    Parse(String),
}

fn load(path: &std::path::Path, origin: &Name) -> Result<Zone, Load> {
    let bytes = std::fs::read(path).map_err(Load::Open)?;
    let text = String::from_utf8(bytes).map_err(|e| Load::Parse(format!("not UTF-8 text: {e}")))?;
    let records = parse_zone(&text, origin).map_err(|e| Load::Parse(e.to_string()))?;
    Zone::new(origin, records).map_err(Load::Parse)
}

/// Re-reads the file every `every`; a zone whose SOA serial changed replaces the served one.
/// A file that fails to parse is logged and the old zone keeps serving.
async fn watch(path: PathBuf, slot: Arc<Slot>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let current = slot.zone.read().unwrap_or_else(|e| e.into_inner()).as_ref().map(|z| z.serial());
        let file = path.display().to_string();
        match load(&path, &slot.origin) {
            Ok(zone) if Some(zone.serial()) == current => {}
            Ok(zone) => {
                let serial = zone.serial();
                *slot.zone.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(zone));
                kdns_server::info!(
                    plugin = "file",
                    "Successfully reloaded zone {:?} in {file:?} with {serial} SOA serial",
                    slot.origin.to_string()
                );
            }
            Err(Load::Parse(msg)) => {
                kdns_server::error!(
                    plugin = "file",
                    "Failed to reload zone {:?} from {file:?}: {msg}",
                    slot.origin.to_string()
                )
            }
            Err(Load::Open(e)) => kdns_server::error!(
                plugin = "file",
                "Failed to open zone {:?} in {file:?}: {e}",
                slot.origin.to_string()
            ),
        }
    }
}
