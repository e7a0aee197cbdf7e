use super::{Cache, Settings};
use kdns_corefile::address::normalize_zone;
use kdns_corefile::{Directive, Dispenser, Error, Token};
use kdns_server::plugin::{once, parse_duration, Plugin, SetupCtx};
use kdns_wire::Name;
use std::sync::Arc;
use std::time::Duration;

const MAX_SERVFAIL: Duration = Duration::from_secs(300);

fn zone(t: &Token) -> Result<Name, Error> {
    Name::from_ascii(&normalize_zone(&t.text))
        .map_err(|e| Error::at(t, format!("plugin/cache: bad zone {:?}: {e}", t.text)))
}

fn seconds(t: &Token) -> Result<Duration, Error> {
    t.text
        .parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| Error::at(t, format!("plugin/cache: not a number of seconds: {:?}", t.text)))
}

fn capacity(t: &Token) -> Result<usize, Error> {
    t.text
        .parse::<usize>()
        .ok()
        .filter(|c| *c > 0)
        .ok_or_else(|| Error::at(t, format!("plugin/cache: invalid capacity {:?}", t.text)))
}

pub fn setup(ctx: &mut SetupCtx<'_>, ds: &[&Directive]) -> Result<Option<Arc<dyn Plugin>>, Error> {
    once("cache", ds)?;
    let d = Dispenser::new(ds[0]);
    let mut s = Settings::default();
    let mut args = d.args().into_iter().peekable();
    if let Some(first) = args.peek() {
        // Any integer is a TTL (Go's Atoi: a sign is allowed), so `-5` is an error, not a zone.
        if let Ok(ttl) = first.text.parse::<i64>() {
            if ttl <= 0 {
                return Err(Error::at(first, format!("plugin/cache: cache TTL can not be zero or negative: {ttl}")));
            }
            s.success_max = Duration::from_secs(ttl as u64);
            s.denial_max = Duration::from_secs(ttl as u64);
            args.next();
        }
    }
    let mut zones: Vec<Name> = args.map(zone).collect::<Result<_, _>>()?;
    if zones.is_empty() {
        zones = ctx.zones.iter().filter_map(|z| Name::from_ascii(z).ok()).collect();
    }
    for (prop, vals) in d.block() {
        match prop.text.as_str() {
            "success" | "denial" => {
                let Some(cap) = vals.first() else { return Err(d.arg_err(prop)) };
                if vals.len() > 3 {
                    return Err(d.arg_err(vals[3]));
                }
                let cap = capacity(cap)?;
                let max = vals.get(1).map(|t| seconds(t)).transpose()?;
                let min = vals.get(2).map(|t| seconds(t)).transpose()?;
                let (c, mx, mn) = if prop.text == "success" {
                    (&mut s.success_cap, &mut s.success_max, &mut s.success_min)
                } else {
                    (&mut s.denial_cap, &mut s.denial_max, &mut s.denial_min)
                };
                *c = cap;
                if let Some(m) = max {
                    *mx = m;
                }
                if let Some(m) = min {
                    *mn = m;
                }
            }
            "servfail" => {
                let [v] = vals.as_slice() else { return Err(d.arg_err(prop)) };
                let dur = parse_duration(&v.text)
                    .ok_or_else(|| Error::at(v, format!("plugin/cache: invalid duration {:?}", v.text)))?;
                if dur > MAX_SERVFAIL {
                    return Err(Error::at(
                        v,
                        "plugin/cache: caching SERVFAIL responses over 5 minutes is not permitted",
                    ));
                }
                s.servfail = dur;
            }
            "disable" => {
                let Some(which) = vals.first() else { return Err(d.arg_err(prop)) };
                let names: Vec<Name> = if vals.len() > 1 {
                    vals[1..].iter().map(|t| zone(t)).collect::<Result<_, _>>()?
                } else {
                    vec![Name::root()]
                };
                match which.text.as_str() {
                    "success" => s.disable_success.extend(names),
                    "denial" => s.disable_denial.extend(names),
                    other => {
                        return Err(Error::at(
                            which,
                            format!(
                                "plugin/cache: cache type for disable must be \"success\" or \"denial\", not {other:?}"
                            ),
                        ))
                    }
                }
            }
            "keepttl" => {
                if let Some(v) = vals.first() {
                    return Err(d.arg_err(v));
                }
                s.keepttl = true;
            }
            "prefetch" => {
                let Some(amount) = vals.first() else { return Err(d.arg_err(prop)) };
                let amount = amount.text.parse::<u32>().ok().filter(|a| *a > 0).ok_or_else(|| {
                    Error::at(amount, format!("plugin/cache: prefetch amount must be positive: {:?}", amount.text))
                })?;
                let mut p = super::Prefetch { amount, window: Duration::from_secs(60), percentage: 10 };
                if let Some(w) = vals.get(1) {
                    p.window = parse_duration(&w.text).filter(|d| !d.is_zero()).ok_or_else(|| {
                        Error::at(w, format!("plugin/cache: prefetch duration must be positive: {:?}", w.text))
                    })?;
                }
                if let Some(pct) = vals.get(2) {
                    p.percentage = pct
                        .text
                        .strip_suffix('%')
                        .and_then(|n| n.parse::<u32>().ok())
                        .filter(|n| (10..=90).contains(n))
                        .ok_or_else(|| {
                            Error::at(
                                pct,
                                format!(
                                    "plugin/cache: prefetch percentage should fall in range [10, 90]: {:?}",
                                    pct.text
                                ),
                            )
                        })?;
                }
                if let Some(extra) = vals.get(3) {
                    return Err(d.arg_err(extra));
                }
                s.prefetch = Some(p);
            }
            "serve_stale" => {
                let mut st = super::ServeStale::coredns(Duration::from_secs(3600), false);
                if let Some(v) = vals.first() {
                    st.max_stale = parse_duration(&v.text).ok_or_else(|| {
                        Error::at(v, format!("plugin/cache: invalid serve_stale duration {:?}", v.text))
                    })?;
                }
                if let Some(mode) = vals.get(1) {
                    st.verify = match mode.text.as_str() {
                        "immediate" => false,
                        "verify" => true,
                        other => {
                            return Err(Error::at(
                                mode,
                                format!("plugin/cache: invalid value for serve_stale refresh mode: {other}"),
                            ))
                        }
                    };
                }
                if let Some(extra) = vals.get(2) {
                    return Err(Error::at(extra, "plugin/cache: serve_stale options beyond DURATION and the refresh mode are not supported by this kdns build yet"));
                }
                s.serve_stale = Some(st);
            }
            "serve_stale_policy" => {
                return Err(Error::at(
                    prop,
                    format!("plugin/cache: option '{}' is not supported by this kdns build yet", prop.text),
                ));
            }
            other => return Err(Error::at(prop, format!("plugin/cache: unknown property '{other}'"))),
        }
    }
    if s.serve_stale.is_none() {
        s.serve_stale = super::default_serve_stale();
    }
    Ok(Some(Arc::new(Cache::new(zones, s, ctx.clock.clone()))))
}
