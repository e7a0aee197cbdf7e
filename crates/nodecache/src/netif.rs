//! The `nodelocaldns` interface over rtnetlink: created as a dummy link when missing (or, on a
//! kernel without the dummy driver, as a bridge without ports), set up, and given every local IP
//! as a /32 or /128; an interface that already exists is used as it is.

use futures::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags};
use rtnetlink::{Handle, LinkBridge, LinkDummy, LinkUnspec};
use std::net::IpAddr;

/// What one sync did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Ensured {
    /// The link had to be created.
    pub created: bool,
    /// Created as this kind instead of `dummy` (the kernel lacks the dummy driver).
    pub fallback_kind: Option<&'static str>,
    pub addresses_added: Vec<IpAddr>,
}

#[derive(Debug)]
pub enum NetifError {
    /// Creating the link failed.
    Add(String),
    /// Reading or fixing an existing link failed.
    Check(String),
}

impl std::fmt::Display for NetifError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NetifError::Add(m) | NetifError::Check(m) => f.write_str(m),
        }
    }
}

pub struct Netif {
    handle: Handle,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Netif {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const EOPNOTSUPP: i32 = 95;
const EEXIST: i32 = 17;

fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(-m.raw_code()),
        _ => None,
    }
}

impl Netif {
    /// Opens a netlink socket in the current network namespace. Needs a tokio runtime.
    pub fn open() -> std::io::Result<Netif> {
        let (conn, handle, _) = rtnetlink::new_connection()?;
        let task = tokio::spawn(conn);
        Ok(Netif { handle, task })
    }

    async fn index(&self, name: &str) -> Result<Option<(u32, bool)>, rtnetlink::Error> {
        let mut links = self.handle.link().get().match_name(name.to_string()).execute();
        match links.try_next().await {
            Ok(Some(msg)) => Ok(Some((msg.header.index, msg.header.flags.contains(LinkFlags::Up)))),
            Ok(None) => Ok(None),
            Err(e) if errno(&e) == Some(19) => Ok(None), // ENODEV
            Err(e) => Err(e),
        }
    }

    /// Whether the link exists and holds every IP.
    pub async fn check(&self, name: &str, ips: &[IpAddr]) -> Result<(bool, usize), String> {
        let Some((index, _)) = self.index(name).await.map_err(|e| e.to_string())? else { return Ok((false, 0)) };
        let have = self.addresses(index).await.map_err(|e| e.to_string())?;
        Ok((true, ips.iter().filter(|ip| have.contains(ip)).count()))
    }

    async fn addresses(&self, index: u32) -> Result<Vec<IpAddr>, rtnetlink::Error> {
        let mut out = Vec::new();
        let mut stream = self.handle.address().get().set_link_index_filter(index).execute();
        while let Some(msg) = stream.try_next().await? {
            for attr in msg.attributes {
                if let AddressAttribute::Address(ip) = attr {
                    out.push(ip);
                }
            }
        }
        Ok(out)
    }

    /// Creates the link if it is missing, brings it up and adds the missing addresses.
    pub async fn ensure(&self, name: &str, ips: &[IpAddr]) -> Result<Ensured, NetifError> {
        let mut out = Ensured::default();
        let index = match self.index(name).await.map_err(|e| NetifError::Check(format!("{name}: {e}")))? {
            Some((index, up)) => {
                if !up {
                    self.set_up(index).await.map_err(|e| NetifError::Check(format!("{name}: set up: {e}")))?;
                }
                index
            }
            None => {
                let dummy = self.handle.link().add(LinkDummy::new(name).up().build()).execute().await;
                match dummy {
                    Ok(()) => {}
                    Err(e) if errno(&e) == Some(EOPNOTSUPP) => {
                        self.handle.link().add(LinkBridge::new(name).up().build()).execute().await.map_err(|e| {
                            NetifError::Add(format!("{name}: no dummy driver, and a bridge failed too: {e}"))
                        })?;
                        out.fallback_kind = Some("bridge");
                    }
                    Err(e) if errno(&e) == Some(EEXIST) => {}
                    Err(e) => return Err(NetifError::Add(format!("{name}: {e}"))),
                }
                out.created = true;
                match self.index(name).await.map_err(|e| NetifError::Check(format!("{name}: {e}")))? {
                    Some((index, _)) => index,
                    None => return Err(NetifError::Add(format!("{name}: created but not found"))),
                }
            }
        };
        let have = self.addresses(index).await.map_err(|e| NetifError::Check(format!("{name}: {e}")))?;
        for ip in ips {
            if have.contains(ip) {
                continue;
            }
            let prefix = if ip.is_ipv4() { 32 } else { 128 };
            let mut req = self.handle.address().add(index, *ip, prefix);
            if ip.is_ipv6() {
                // Usable at once: no duplicate address detection on a link nothing else shares.
                req.message_mut().attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
            }
            match req.execute().await {
                Ok(()) => out.addresses_added.push(*ip),
                Err(e) if errno(&e) == Some(EEXIST) => {}
                Err(e) => return Err(NetifError::Check(format!("{name}: add {ip}/{prefix}: {e}"))),
            }
        }
        Ok(out)
    }

    async fn set_up(&self, index: u32) -> Result<(), rtnetlink::Error> {
        self.handle.link().set(LinkUnspec::new_with_index(index).up().build()).execute().await
    }

    /// Deletes the link (and with it its addresses). Returns whether it existed.
    pub async fn remove(&self, name: &str) -> Result<bool, String> {
        match self.index(name).await.map_err(|e| e.to_string())? {
            None => Ok(false),
            Some((index, _)) => {
                self.handle.link().del(index).execute().await.map_err(|e| format!("{name}: delete: {e}"))?;
                Ok(true)
            }
        }
    }

    /// The link's kind as the kernel reports it (`dummy`, `bridge`, …), for logs and tests.
    pub async fn kind(&self, name: &str) -> Option<String> {
        let mut links = self.handle.link().get().match_name(name.to_string()).execute();
        let msg = links.try_next().await.ok()??;
        msg.attributes.into_iter().find_map(|a| match a {
            LinkAttribute::LinkInfo(infos) => infos.into_iter().find_map(|i| match i {
                rtnetlink::packet_route::link::LinkInfo::Kind(k) => Some(k.to_string()),
                _ => None,
            }),
            _ => None,
        })
    }
}
