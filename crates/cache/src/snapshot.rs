//! Cache snapshots for warm restarts: every entry of every cache as stored bytes plus its age,
//! so a successor can load them with TTLs aged by the time that passed. The format is private
//! to kdns (versioned by its magic); decoding checks every length and never panics.
//!
//! ```text
//! magic "KDNSCACHE1" | u64 wall-clock ms at dump | u32 sections
//! section: u16 name length | name | u32 items
//! item:    u16 key length | key | u32 duration s | u64 age ms | u32 wire length | wire
//! ```

const MAGIC: &[u8] = b"KDNSCACHE1";
/// Bounds for what a decoder accepts, whatever the file says.
const MAX_SECTIONS: u32 = 4096;
const MAX_ITEMS: u32 = 10_000_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub key: Vec<u8>,
    pub duration: u32,
    pub age_ms: u64,
    pub wire: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// Wall-clock milliseconds since the Unix epoch when it was taken.
    pub taken_ms: u64,
    /// Cache name → its entries.
    pub sections: Vec<(String, Vec<Item>)>,
}

impl Snapshot {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.sections.iter().map(|s| s.1.len() * 128).sum::<usize>());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.taken_ms.to_be_bytes());
        out.extend_from_slice(&(self.sections.len() as u32).to_be_bytes());
        for (name, items) in &self.sections {
            let name = &name.as_bytes()[..name.len().min(u16::MAX as usize)];
            out.extend_from_slice(&(name.len() as u16).to_be_bytes());
            out.extend_from_slice(name);
            out.extend_from_slice(&(items.len() as u32).to_be_bytes());
            for it in items {
                out.extend_from_slice(&(it.key.len() as u16).to_be_bytes());
                out.extend_from_slice(&it.key);
                out.extend_from_slice(&it.duration.to_be_bytes());
                out.extend_from_slice(&it.age_ms.to_be_bytes());
                out.extend_from_slice(&(it.wire.len() as u32).to_be_bytes());
                out.extend_from_slice(&it.wire);
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Snapshot, String> {
        let mut r = Reader { b: bytes, at: 0 };
        if r.take(MAGIC.len())? != MAGIC {
            return Err("not a kdns cache snapshot".into());
        }
        let taken_ms = r.u64()?;
        let sections = r.u32()?;
        if sections > MAX_SECTIONS {
            return Err(format!("{sections} sections"));
        }
        let mut out = Snapshot { taken_ms, sections: Vec::new() };
        for _ in 0..sections {
            let n = r.u16()? as usize;
            let name = String::from_utf8(r.take(n)?.to_vec()).map_err(|_| "section name not UTF-8")?;
            let count = r.u32()?;
            if count > MAX_ITEMS {
                return Err(format!("{count} items"));
            }
            let mut items = Vec::new();
            for _ in 0..count {
                let k = r.u16()? as usize;
                let key = r.take(k)?.to_vec();
                let duration = r.u32()?;
                let age_ms = r.u64()?;
                let w = r.u32()? as usize;
                let wire = r.take(w)?.to_vec();
                items.push(Item { key, duration, age_ms, wire });
            }
            out.sections.push((name, items));
        }
        if r.at != bytes.len() {
            return Err("trailing bytes".into());
        }
        Ok(out)
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.b.len()).ok_or("truncated snapshot")?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into().map_err(|_| "truncated")?))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().map_err(|_| "truncated")?))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().map_err(|_| "truncated")?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_truncation_fails_cleanly() {
        let snap = Snapshot {
            taken_ms: 1_700_000_000_000,
            sections: vec![(
                "cluster.local.:53".into(),
                vec![Item {
                    key: vec![0, 0, 1, 0, 1, 3, b'c', b'o', b'm', 0],
                    duration: 30,
                    age_ms: 1500,
                    wire: vec![1; 40],
                }],
            )],
        };
        let bytes = snap.encode();
        assert_eq!(Snapshot::decode(&bytes).unwrap(), snap);
        for cut in 0..bytes.len() {
            assert!(Snapshot::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(Snapshot::decode(&extra).is_err());
        let mut huge = bytes[..MAGIC.len() + 8].to_vec();
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(Snapshot::decode(&huge).is_err());
    }
}
