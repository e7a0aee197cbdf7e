//! `bind`: restricts the addresses a server block listens on (IP addresses or interface names).

#[cfg(test)]
mod tests;

use kdns_corefile::{Directive, Dispenser, Error, Token};
use kdns_server::plugin::{Plugin, SetupCtx};
use std::net::IpAddr;
use std::sync::Arc;

pub fn setup(ctx: &mut SetupCtx<'_>, ds: &[&Directive]) -> Result<Option<Arc<dyn Plugin>>, Error> {
    let mut all: Vec<IpAddr> = Vec::new();
    let mut except: Vec<IpAddr> = Vec::new();
    for d in ds {
        let disp = Dispenser::new(d);
        let args = disp.args();
        if args.is_empty() {
            return Err(disp.arg_err(disp.name()));
        }
        for a in args {
            all.extend(resolve(a)?);
        }
        for (prop, vals) in disp.block() {
            if prop.text != "except" {
                return Err(Error::at(prop, format!("plugin/bind: unknown property '{}'", prop.text)));
            }
            if vals.is_empty() {
                return Err(disp.arg_err(prop));
            }
            for v in vals {
                except.extend(resolve(v)?);
            }
        }
    }
    let mut out: Vec<IpAddr> = Vec::new();
    for ip in all {
        if !except.contains(&ip) && !out.contains(&ip) {
            out.push(ip);
        }
    }
    if out.is_empty() {
        return Err(Error::at(&ds[0].name, "plugin/bind: no address left to bind after applying except"));
    }
    ctx.listen.extend(out);
    Ok(None)
}

/// An IP address, or every address of the interface with that name.
fn resolve(token: &Token) -> Result<Vec<IpAddr>, Error> {
    if let Ok(ip) = token.text.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let ifaces =
        if_addrs::get_if_addrs().map_err(|e| Error::at(token, format!("plugin/bind: cannot list interfaces: {e}")))?;
    let ips: Vec<IpAddr> = ifaces
        .into_iter()
        .filter(|i| i.name == token.text)
        .map(|i| i.ip())
        // Link-local IPv6 addresses need a scope id to bind; CoreDNS skips them too.
        .filter(|ip| !matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80))
        .collect();
    if ips.is_empty() {
        return Err(Error::at(
            token,
            format!("plugin/bind: not a valid IP address or interface name: {:?}", token.text),
        ));
    }
    Ok(ips)
}
