//! `loadbalance`: shuffles A, AAAA and MX records in every positive reply (round robin).

#[cfg(test)]
mod tests;

use kdns_corefile::{Directive, Dispenser, Error};
use kdns_server::plugin::{Body, Plugin, Reply, Request, SetupCtx};
use kdns_wire::{rcode, rtype, RData, Record};
use std::net::IpAddr;
use std::sync::Arc;

pub struct LoadBalance {
    /// `prefer` subnets: matching addresses are moved first (in this order), after the shuffle.
    pub prefer: Vec<(IpAddr, u8)>,
}

impl Plugin for LoadBalance {
    fn name(&self) -> &'static str {
        "loadbalance"
    }
    fn serves(&self) -> bool {
        false
    }
    fn respond(&self, req: &Request<'_>, reply: &mut Reply) {
        if reply.rcode_value() != rcode::NOERROR || matches!(req.qtype(), rtype::AXFR | rtype::IXFR) {
            return;
        }
        // A wire body (cache hit) with fewer than two records has nothing to shuffle: skip the decode.
        if let Body::Wire(b) = reply.body() {
            let count = |i: usize| b.get(i..i + 2).map_or(0, |x| u16::from_be_bytes([x[0], x[1]]) as u32);
            if count(6) + count(8) + count(10) < 2 {
                return;
            }
        }
        let msg = reply.msg();
        for section in [&mut msg.answers, &mut msg.authority, &mut msg.additional] {
            round_robin(section);
            if !self.prefer.is_empty() {
                self.apply_prefer(section);
            }
        }
    }
}

impl LoadBalance {
    fn apply_prefer(&self, rrs: &mut [Record]) {
        let rank = |r: &Record| -> usize {
            let ip = match r.data {
                RData::A(v4) => IpAddr::V4(v4),
                RData::Aaaa(v6) => IpAddr::V6(v6),
                _ => return usize::MAX,
            };
            self.prefer.iter().position(|(net, len)| in_subnet(ip, *net, *len)).unwrap_or(self.prefer.len())
        };
        let Some(first) = rrs.iter().position(|r| matches!(r.rtype, rtype::A | rtype::AAAA)) else {
            return;
        };
        let end = rrs[first..]
            .iter()
            .position(|r| !matches!(r.rtype, rtype::A | rtype::AAAA))
            .map_or(rrs.len(), |p| first + p);
        rrs[first..end].sort_by_key(rank);
    }
}

fn in_subnet(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => len == 0 || (u32::from(a) ^ u32::from(n)) >> (32 - len as u32) == 0,
        (IpAddr::V6(a), IpAddr::V6(n)) => len == 0 || (u128::from(a) ^ u128::from(n)) >> (128 - len as u32) == 0,
        _ => false,
    }
}

/// CoreDNS's order: CNAMEs, then other types, then the shuffled addresses, then shuffled MX.
pub fn round_robin(rrs: &mut Vec<Record>) {
    if rrs.len() < 2 {
        return;
    }
    let mut cname = Vec::new();
    let mut address = Vec::new();
    let mut mx = Vec::new();
    let mut rest = Vec::new();
    for r in rrs.drain(..) {
        match r.rtype {
            rtype::CNAME => cname.push(r),
            rtype::A | rtype::AAAA => address.push(r),
            rtype::MX => mx.push(r),
            _ => rest.push(r),
        }
    }
    fastrand::shuffle(&mut address);
    fastrand::shuffle(&mut mx);
    rrs.extend(cname);
    rrs.extend(rest);
    rrs.extend(address);
    rrs.extend(mx);
}

pub fn setup(_ctx: &mut SetupCtx<'_>, ds: &[&Directive]) -> Result<Option<Arc<dyn Plugin>>, Error> {
    let ds = kdns_server::plugin::last_given(ds);
    let d = Dispenser::new(ds[0]);
    match d.args().as_slice() {
        [] => {}
        [p] if p.text == "round_robin" => {}
        [p, ..] if p.text == "weighted" => {
            return Err(Error::at(p, "plugin/loadbalance: the weighted policy is not supported by this kdns build yet"))
        }
        [p, ..] => return Err(Error::at(p, format!("plugin/loadbalance: unknown policy: {}", p.text))),
    }
    let mut prefer = Vec::new();
    for (prop, vals) in d.block() {
        if prop.text != "prefer" || vals.is_empty() {
            return Err(Error::at(
                prop,
                format!("plugin/loadbalance: unknown property {:?} or missing CIDR", prop.text),
            ));
        }
        for v in vals {
            let (ip, len) = v
                .text
                .split_once('/')
                .and_then(|(ip, len)| Some((ip.parse::<IpAddr>().ok()?, len.parse::<u8>().ok()?)))
                .filter(|(ip, len)| *len <= if ip.is_ipv4() { 32 } else { 128 })
                .ok_or_else(|| Error::at(v, format!("plugin/loadbalance: invalid CIDR {:?}", v.text)))?;
            prefer.push((ip, len));
        }
    }
    Ok(Some(Arc::new(LoadBalance { prefer })))
}
