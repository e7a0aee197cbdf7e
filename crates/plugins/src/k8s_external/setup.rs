use super::K8sExternal;
use crate::pkg::links::{KubernetesCell, K8S_EXTERNAL};
use kdns_corefile::{Directive, Dispenser, Error};
use kdns_server::plugin::{Plugin, SetupCtx};
use std::sync::{Arc, OnceLock};

pub fn setup(ctx: &mut SetupCtx<'_>, ds: &[&Directive]) -> Result<Option<Arc<dyn Plugin>>, Error> {
    let ds = kdns_server::plugin::last_given(ds);
    let d = Dispenser::new(ds[0]);
    let zones = crate::pkg::zones::plugin_zones("k8s_external", &d.args(), ctx.zones, d.name())?;
    let mut apex = "dns".to_string();
    let mut ttl = 5u32;
    let mut headless = false;
    let mut fallthrough = crate::pkg::zones::Fallthrough::default();
    for (prop, vals) in d.block() {
        match prop.text.as_str() {
            "apex" => {
                let [v] = vals.as_slice() else {
                    return Err(d.arg_err(prop));
                };
                let label = v.text.trim_end_matches('.').to_ascii_lowercase();
                if label.is_empty() || label.len() > 63 || label.contains('.') {
                    return Err(Error::at(v, format!("plugin/k8s_external: apex must be one DNS label: {:?}", v.text)));
                }
                apex = label;
            }
            "ttl" => {
                let [v] = vals.as_slice() else {
                    return Err(d.arg_err(prop));
                };
                ttl = v.text.parse::<u32>().ok().filter(|t| *t <= 3600).ok_or_else(|| {
                    Error::at(v, format!("plugin/k8s_external: ttl must be in range [0, 3600]: {}", v.text))
                })?;
            }
            "headless" if vals.is_empty() => headless = true,
            "fallthrough" => fallthrough = crate::pkg::zones::Fallthrough::parse("k8s_external", &vals)?,
            _ => return Err(Error::at(prop, format!("plugin/k8s_external: unknown property {:?}", prop.text))),
        }
    }
    let source: Arc<KubernetesCell> = Arc::new(OnceLock::new());
    ctx.links.insert(K8S_EXTERNAL, source.clone());
    Ok(Some(Arc::new(K8sExternal { zones, apex, ttl, headless, fallthrough, source, settings: OnceLock::new() })))
}
