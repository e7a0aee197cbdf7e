//! The listen address of the plugins that open an HTTP port (`health`, `ready`, `prometheus`).

use kdns_corefile::{Dispenser, Error};

/// The optional single `[ADDRESS]` argument of `health`, `ready` and `prometheus`: checked to
/// resolve at setup, so a typo fails the load instead of the listener.
pub fn listen_address(plugin: &str, d: &Dispenser<'_>, default: &str) -> Result<String, Error> {
    let args = d.args();
    if args.len() > 1 {
        return Err(d.arg_err(args[1]));
    }
    let addr = args.first().map_or(default.to_string(), |t| t.text.clone());
    kdns_server::admin::resolve(&addr)
        .map_err(|e| Error::at(args.first().copied().unwrap_or(d.name()), format!("plugin/{plugin}: {e}")))?;
    Ok(addr)
}
