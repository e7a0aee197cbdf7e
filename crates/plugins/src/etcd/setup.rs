use super::client::{Client, Endpoint};
use super::Etcd;
use kdns_corefile::{Directive, Dispenser, Error};
use kdns_server::plugin::{Plugin, SetupCtx};
use std::sync::Arc;

pub fn setup(ctx: &mut SetupCtx<'_>, ds: &[&Directive]) -> Result<Option<Arc<dyn Plugin>>, Error> {
    // Given twice, CoreDNS reads the first occurrence only.
    let d = Dispenser::new(ds[0]);
    let zones = crate::pkg::zones::plugin_zones("etcd", &d.args(), ctx.zones, d.name())?;
    let mut path = "/skydns".to_string();
    let mut endpoints = Vec::new();
    let mut credentials = None;
    let mut tls = None;
    let mut fallthrough = crate::pkg::zones::Fallthrough::default();
    for (prop, vals) in d.block() {
        match prop.text.as_str() {
            "stubzones" => {
                return Err(Error::at(prop, "plugin/etcd: stubzones was removed from CoreDNS's etcd plugin (1.4)"))
            }
            "fallthrough" => fallthrough = crate::pkg::zones::Fallthrough::parse("etcd", &vals)?,
            "debug" => {}
            "path" => {
                let [v] = vals.as_slice() else {
                    return Err(d.arg_err(prop));
                };
                path = format!("/{}", v.text.trim_matches('/'));
            }
            "endpoint" => {
                if vals.is_empty() {
                    return Err(d.arg_err(prop));
                }
                for v in &vals {
                    endpoints.push(Endpoint::parse(&v.text).map_err(|e| Error::at(v, format!("plugin/etcd: {e}")))?);
                }
            }
            "upstream" => kdns_server::warning!(
                plugin = "etcd",
                "upstream is deprecated and ignored: CNAMEs leaving the zones are always resolved"
            ),
            "tls" => {
                tls = Some(crate::pkg::tls::client_config("etcd", Some((prop, vals.as_slice())), ctx.config_dir, prop)?)
            }
            "credentials" => {
                let [user, password] = vals.as_slice() else {
                    return Err(Error::at(prop, "plugin/etcd: credentials requires a username and a password"));
                };
                credentials = Some((user.text.clone(), password.text.clone()));
            }
            other => return Err(Error::at(prop, format!("plugin/etcd: unknown property '{other}'"))),
        }
    }
    if endpoints.is_empty() {
        endpoints.push(Endpoint::parse("http://localhost:2379").expect("static endpoint"));
    }
    if endpoints.iter().any(|e| e.tls) && tls.is_none() {
        tls = Some(crate::pkg::tls::client_config("etcd", None, ctx.config_dir, d.name())?);
    }
    let client = Arc::new(Client::new(endpoints, tls, credentials));
    Ok(Some(Arc::new(super::Handler(Arc::new(Etcd { zones, path, fallthrough, client })))))
}
