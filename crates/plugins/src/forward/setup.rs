use super::{Forward, Forwarder, HealthCheck, Options, Policy, TlsTarget, Transport, Upstream};
use kdns_corefile::address::{normalize_zone, parse_key};
use kdns_corefile::{Directive, Dispenser, Error, Token};
use kdns_server::plugin::{parse_duration, Plugin, SetupCtx};
use kdns_wire::Name;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// kdns bounds in-flight queries per `forward` line by default (CoreDNS: unlimited, which is how
/// a slow upstream turns into an OOM kill); `max_concurrent` overrides it.
pub const DEFAULT_MAX_CONCURRENT: u32 = 10_000;

/// CoreDNS's limit on upstreams per `forward` line.
pub const MAX_UPSTREAMS: usize = 15;

pub fn setup(ctx: &mut SetupCtx<'_>, ds: &[&Directive]) -> Result<Option<Arc<dyn Plugin>>, Error> {
    // UDP workers send the upstream queries of each turn together (see `udp_mux::send`).
    kdns_server::waiting::set_turn_end(super::udp_mux::send_queued);
    let mut forwarders = Vec::new();
    for d in ds {
        forwarders.push(Arc::new(parse_one(ctx, d)?));
    }
    Ok(Some(Arc::new(Forward { forwarders })))
}

fn name(t: &Token, text: &str) -> Result<Name, Error> {
    Name::from_ascii(&normalize_zone(text)).map_err(|e| Error::at(t, format!("plugin/forward: bad name {text:?}: {e}")))
}

fn parse_one(ctx: &SetupCtx<'_>, d: &Directive) -> Result<Forwarder, Error> {
    let disp = Dispenser::new(d);
    let args = disp.args();
    if args.len() < 2 {
        return Err(disp.arg_err(disp.name()));
    }
    // FROM: a zone; a CIDR expands to reverse zones of which the first is used (as CoreDNS).
    let from_key = parse_key(&args[0].text).map_err(|m| Error::at(args[0], format!("plugin/forward: {m}")))?;
    let from = name(args[0], &from_key.zones[0])?;
    let mut targets: Vec<(SocketAddr, bool)> = Vec::new();
    for t in &args[1..] {
        targets.extend(to_addresses(t, ctx.config_dir)?);
    }
    if targets.is_empty() {
        return Err(Error::at(args[1], "plugin/forward: no nameservers found"));
    }
    if targets.len() > MAX_UPSTREAMS {
        return Err(Error::at(
            args[1],
            format!("plugin/forward: more than {MAX_UPSTREAMS} TOs configured: {}", targets.len()),
        ));
    }
    let mut tls_files: Option<(&Token, Vec<&Token>)> = None;
    let mut tls_servername: Option<String> = None;
    let mut opts = Options {
        force_tcp: false,
        prefer_udp: false,
        expire: Duration::from_secs(10),
        max_fails: 2,
        health: HealthCheck {
            interval: Duration::from_millis(500),
            recursion_desired: true,
            domain: Name::root(),
            transport: Transport::Udp,
        },
        policy: Policy::Random,
        max_concurrent: Some(DEFAULT_MAX_CONCURRENT),
        failover: Vec::new(),
        max_attempts: 0,
        read_timeout: Duration::from_secs(2),
        next: Vec::new(),
    };
    let mut max_attempts: Option<usize> = None;
    let mut except = Vec::new();
    for (prop, vals) in disp.block() {
        let one = || -> Result<&Token, Error> {
            match vals.as_slice() {
                [v] => Ok(*v),
                _ => Err(disp.arg_err(prop)),
            }
        };
        let duration = |t: &Token| {
            parse_duration(&t.text)
                .ok_or_else(|| Error::at(t, format!("plugin/forward: invalid duration {:?}", t.text)))
        };
        let number = |t: &Token| {
            t.text.parse::<u32>().map_err(|_| Error::at(t, format!("plugin/forward: not a number: {:?}", t.text)))
        };
        match prop.text.as_str() {
            "except" => {
                if vals.is_empty() {
                    return Err(disp.arg_err(prop));
                }
                for v in &vals {
                    except.push(name(v, &v.text)?);
                }
            }
            "force_tcp" => opts.force_tcp = true,
            "prefer_udp" => opts.prefer_udp = true,
            "expire" => opts.expire = duration(one()?)?,
            "max_fails" => opts.max_fails = number(one()?)?,
            "health_check" => {
                let Some(first) = vals.first() else { return Err(disp.arg_err(prop)) };
                opts.health.interval = duration(first)?;
                let mut rest = vals[1..].iter();
                while let Some(v) = rest.next() {
                    match v.text.as_str() {
                        "no_rec" => opts.health.recursion_desired = false,
                        "domain" => {
                            let dom = rest.next().ok_or_else(|| disp.arg_err(v))?;
                            opts.health.domain = name(dom, &dom.text)?;
                        }
                        other => {
                            return Err(Error::at(v, format!("plugin/forward: health_check: unknown option {other:?}")))
                        }
                    }
                }
            }
            "policy" => {
                let v = one()?;
                opts.policy = match v.text.as_str() {
                    "random" => Policy::Random,
                    "round_robin" => Policy::RoundRobin,
                    "sequential" => Policy::Sequential,
                    other => return Err(Error::at(v, format!("plugin/forward: unknown policy '{other}'"))),
                };
            }
            "max_concurrent" => {
                let v = one()?;
                let n = number(v)?;
                if n == 0 {
                    return Err(Error::at(v, "plugin/forward: max_concurrent can't be 0"));
                }
                opts.max_concurrent = Some(n);
            }
            "max_connect_attempts" => max_attempts = Some(number(one()?)? as usize),
            "read_timeout" => opts.read_timeout = duration(one()?)?,
            "failover" | "next" => {
                if vals.is_empty() {
                    return Err(disp.arg_err(prop));
                }
                let is_next = prop.text == "next";
                for v in &vals {
                    let code = (0u16..=23)
                        .find(|c| kdns_wire::rcode::name(*c).eq_ignore_ascii_case(&v.text))
                        .ok_or_else(|| Error::at(v, format!("plugin/forward: unknown rcode {:?}", v.text)))?;
                    if code == kdns_wire::rcode::NOERROR {
                        return Err(Error::at(v, format!("plugin/forward: NoError cannot be a {} rcode", prop.text)));
                    }
                    if is_next {
                        opts.next.push(code);
                    } else {
                        opts.failover.push(code);
                    }
                }
            }
            "tls" => {
                if vals.len() > 3 {
                    return Err(disp.arg_err(vals[3]));
                }
                tls_files = Some((prop, vals.clone()));
            }
            "tls_servername" => tls_servername = Some(one()?.text.clone()),
            "next_on_nodata"
            | "max_idle_conns"
            | "max_age"
            | "doh_method"
            | "resolver"
            | "source_address"
            | "failfast_all_unhealthy_upstreams" => {
                return Err(Error::at(
                    prop,
                    format!("plugin/forward: option '{}' is not supported by this kdns build yet", prop.text),
                ));
            }
            other => return Err(Error::at(prop, format!("plugin/forward: unknown property '{other}'"))),
        }
    }
    if opts.force_tcp && opts.prefer_udp {
        // CoreDNS: force_tcp wins.
        opts.prefer_udp = false;
    }
    if opts.force_tcp {
        opts.health.transport = Transport::Tcp;
    }
    let any_tls = targets.iter().any(|(_, tls)| *tls);
    let client_config = if any_tls || tls_files.is_some() {
        Some(crate::pkg::tls::client_config(
            "forward",
            tls_files.as_ref().map(|(p, v)| (*p, v.as_slice())),
            ctx.config_dir,
            d_name(&disp),
        )?)
    } else {
        None
    };
    let mut upstreams = Vec::new();
    for (addr, tls) in targets {
        let target = match (&client_config, tls) {
            (Some(cfg), true) => {
                let name = match &tls_servername {
                    Some(n) => rustls::pki_types::ServerName::try_from(n.clone()).map_err(|e| {
                        Error::at(disp.name(), format!("plugin/forward: bad tls_servername {n:?}: {e}"))
                    })?,
                    None => rustls::pki_types::ServerName::IpAddress(addr.ip().into()),
                };
                Some(TlsTarget { config: cfg.clone(), server_name: name })
            }
            _ => None,
        };
        upstreams.push(Arc::new(Upstream::with_tls(addr, target)));
    }
    opts.max_attempts = max_attempts.unwrap_or(2 * upstreams.len());
    Ok(Forwarder::new(from, except, upstreams, opts))
}

fn d_name<'a>(d: &Dispenser<'a>) -> &'a Token {
    d.name()
}

/// One TO: `IP[:port]`, `dns://IP[:port]`, `tls://IP[:port]` (port 853), `[v6]:port`, or a
/// resolv.conf-style file. The flag says whether it is DNS over TLS.
fn to_addresses(t: &Token, dir: &std::path::Path) -> Result<Vec<(SocketAddr, bool)>, Error> {
    let text = t.text.as_str();
    if let Some(rest) = text.strip_prefix("tls://") {
        let addr = parse_addr(rest, 853)
            .ok_or_else(|| Error::at(t, format!("plugin/forward: not an IP address: {text:?}")))?;
        return Ok(vec![(addr, true)]);
    }
    if let Some((scheme, _)) = text.split_once("://") {
        if scheme != "dns" {
            return Err(Error::at(
                t,
                format!("plugin/forward: scheme \"{scheme}://\" is not supported by this kdns build yet"),
            ));
        }
    }
    let plain = |v: Vec<SocketAddr>| v.into_iter().map(|a| (a, false)).collect();
    Ok(plain(plain_addresses(t, text, dir)?))
}

fn parse_addr(s: &str, default_port: u16) -> Option<SocketAddr> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Some(a);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, default_port));
    }
    let (host, port) = s.rsplit_once(':')?;
    Some(SocketAddr::new(host.parse().ok()?, port.parse().ok()?))
}

fn plain_addresses(t: &Token, text: &str, dir: &std::path::Path) -> Result<Vec<SocketAddr>, Error> {
    let bare = text.strip_prefix("dns://").unwrap_or(text);
    if let Ok(a) = bare.parse::<SocketAddr>() {
        return Ok(vec![a]);
    }
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, 53)]);
    }
    if let Some((host, port)) = bare.rsplit_once(':') {
        if let (Ok(ip), Ok(port)) = (host.parse::<IpAddr>(), port.parse::<u16>()) {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
    }
    let path = if std::path::Path::new(bare).is_absolute() { std::path::PathBuf::from(bare) } else { dir.join(bare) };
    match std::fs::read_to_string(&path) {
        Ok(content) => Ok(content
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                (f.next() == Some("nameserver")).then(|| f.next()).flatten()
            })
            .filter_map(|ip| ip.split('%').next()?.parse::<IpAddr>().ok())
            .map(|ip| SocketAddr::new(ip, 53))
            .collect()),
        Err(_) => Err(Error::at(t, format!("plugin/forward: not an IP address or file: {text:?}"))),
    }
}
