use super::Whoami;
use kdns_corefile::{Directive, Error};
use kdns_server::plugin::{Plugin, SetupCtx};
use std::sync::Arc;

pub fn setup(_ctx: &mut SetupCtx<'_>, ds: &[&Directive]) -> Result<Option<Arc<dyn Plugin>>, Error> {
    // Given twice, CoreDNS reads the first occurrence only.
    if let Some(extra) = ds[0].args.first() {
        return Err(Error::at(extra, "plugin/whoami: this plugin takes no arguments"));
    }
    Ok(Some(Arc::new(Whoami)))
}
