use super::{Class, Format, Log, Rule, COMMON_FORMAT};
use kdns_corefile::{address::normalize_zone, Directive, Dispenser, Error};
use kdns_server::plugin::{Plugin, SetupCtx};
use kdns_wire::Name;
use std::sync::Arc;

pub fn setup(_ctx: &mut SetupCtx<'_>, ds: &[&Directive]) -> Result<Option<Arc<dyn Plugin>>, Error> {
    let mut rules = Vec::new();
    for d in ds {
        let disp = Dispenser::new(d);
        let args: Vec<&str> = disp.args().iter().map(|t| t.text.as_str()).collect();
        let (names, format) = match args.split_last() {
            Some((last, names)) if last.contains('{') => (names.to_vec(), *last),
            _ => (args.clone(), COMMON_FORMAT),
        };
        let names = if names.is_empty() { vec!["."] } else { names };
        let names = names
            .iter()
            .map(|n| {
                Name::from_ascii(&normalize_zone(n))
                    .map_err(|e| Error::at(disp.name(), format!("plugin/log: bad name {n:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut classes = Vec::new();
        for (prop, vals) in disp.block() {
            if prop.text != "class" {
                return Err(Error::at(prop, format!("plugin/log: unknown property {:?}", prop.text)));
            }
            if vals.is_empty() {
                return Err(disp.arg_err(prop));
            }
            for v in vals {
                classes.push(match v.text.as_str() {
                    "all" => Class::All,
                    "success" => Class::Success,
                    "denial" => Class::Denial,
                    "error" => Class::Error,
                    other => return Err(Error::at(v, format!("plugin/log: unknown class {other:?}"))),
                });
            }
        }
        if classes.is_empty() {
            classes.push(Class::All);
        }
        rules.push(Rule { names, format: Format::compile(format), classes });
    }
    Ok(Some(Arc::new(Log { rules })))
}
