//! Domain names in wire form: parsing with bounded decompression, text conversion, comparison.

use crate::WireError;
use std::fmt;

/// Longest encoded name (RFC 1035 §2.3.4), including the root label.
pub const MAX_NAME_LEN: usize = 255;
const MAX_LABEL_LEN: usize = 63;

/// An uncompressed domain name in wire form, case preserved, always ending in the root label.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name {
    wire: Vec<u8>,
}

impl Name {
    pub fn root() -> Name {
        Name { wire: vec![0] }
    }

    /// Parses presentation form (`example.org.`, trailing dot optional, `\.` and `\DDD` escapes).
    pub fn from_ascii(text: &str) -> Result<Name, WireError> {
        if text == "." || text.is_empty() {
            return Ok(Name::root());
        }
        let bytes = text.as_bytes();
        let mut wire = Vec::with_capacity(bytes.len() + 2);
        let mut label: Vec<u8> = Vec::with_capacity(MAX_LABEL_LEN);
        let mut i = 0;
        let mut ended_with_dot = false;
        while i < bytes.len() {
            ended_with_dot = false;
            match bytes[i] {
                b'.' => {
                    if label.is_empty() {
                        return Err(WireError::EmptyLabel);
                    }
                    push_label(&mut wire, &label)?;
                    label.clear();
                    ended_with_dot = true;
                    i += 1;
                }
                b'\\' => {
                    let (value, used) = unescape(&bytes[i + 1..]).ok_or(WireError::BadEscape)?;
                    label.push(value);
                    i += 1 + used;
                }
                c => {
                    label.push(c);
                    i += 1;
                }
            }
            if label.len() > MAX_LABEL_LEN {
                return Err(WireError::LabelTooLong);
            }
        }
        if !ended_with_dot && !label.is_empty() {
            push_label(&mut wire, &label)?;
        }
        wire.push(0);
        if wire.len() > MAX_NAME_LEN {
            return Err(WireError::NameTooLong);
        }
        Ok(Name { wire })
    }

    /// Takes an uncompressed wire name; validates label lengths and total length.
    pub fn from_wire(wire: &[u8]) -> Result<Name, WireError> {
        let len = validate_uncompressed(wire)?;
        Ok(Name { wire: wire[..len].to_vec() })
    }

    /// Reads a possibly compressed name at `offset` of `msg`. Returns the name and the offset just
    /// past it in the original position. Pointers must point strictly backwards, which bounds the
    /// work to the message length.
    pub fn read(msg: &[u8], offset: usize) -> Result<(Name, usize), WireError> {
        let mut name = Name { wire: Vec::with_capacity(32) };
        let end = name.read_in_place(msg, offset)?;
        Ok((name, end))
    }

    /// [`Name::read`] into this name's own buffer (reused: no allocation once it has grown to
    /// the names it is given). Returns the offset after the name; on error the name is root.
    pub fn read_in_place(&mut self, msg: &[u8], offset: usize) -> Result<usize, WireError> {
        let r = read_wire(msg, offset, &mut self.wire);
        if r.is_err() {
            self.wire.clear();
            self.wire.push(0);
        }
        r
    }

    pub fn as_wire(&self) -> &[u8] {
        &self.wire
    }

    pub fn is_root(&self) -> bool {
        self.wire.len() == 1
    }

    pub fn labels(&self) -> Labels<'_> {
        Labels { wire: &self.wire }
    }

    pub fn label_count(&self) -> usize {
        self.labels().count()
    }

    pub fn to_lowercase(&self) -> Name {
        Name { wire: self.wire.iter().map(u8::to_ascii_lowercase).collect() }
    }

    pub fn eq_ignore_case(&self, other: &Name) -> bool {
        self.wire.eq_ignore_ascii_case(&other.wire)
    }

    /// True when `self` equals `zone` or lies below it (case-insensitive).
    pub fn is_subdomain_of(&self, zone: &Name) -> bool {
        is_subdomain_wire(&self.wire, &zone.wire)
    }

    /// The last `count` labels of the name, case kept (the whole name when it has fewer).
    pub fn suffix(&self, count: usize) -> Name {
        let skip = self.label_count().saturating_sub(count);
        let mut at = 0;
        for _ in 0..skip {
            at += 1 + self.wire[at] as usize;
        }
        Name { wire: self.wire[at..].to_vec() }
    }

    /// The name without its first label (`None` for the root).
    pub fn parent(&self) -> Option<Name> {
        let len = *self.wire.first()? as usize;
        (len > 0).then(|| Name { wire: self.wire[1 + len..].to_vec() })
    }

    /// Prepends one label (for `_udp.<name>` style owners).
    pub fn prepend_label(&self, label: &[u8]) -> Result<Name, WireError> {
        if label.is_empty() || label.len() > MAX_LABEL_LEN {
            return Err(WireError::LabelTooLong);
        }
        let mut wire = Vec::with_capacity(self.wire.len() + label.len() + 1);
        wire.push(label.len() as u8);
        wire.extend_from_slice(label);
        wire.extend_from_slice(&self.wire);
        if wire.len() > MAX_NAME_LEN {
            return Err(WireError::NameTooLong);
        }
        Ok(Name { wire })
    }
}

/// A presentation-format escape after its backslash: `\DDD` (decimal, at most 255) or `\X`;
/// the byte and how many bytes of `rest` it used.
pub(crate) fn unescape(rest: &[u8]) -> Option<(u8, usize)> {
    if rest.len() >= 3 && rest[..3].iter().all(u8::is_ascii_digit) {
        let value = (rest[0] - b'0') as u32 * 100 + (rest[1] - b'0') as u32 * 10 + (rest[2] - b'0') as u32;
        return u8::try_from(value).ok().map(|v| (v, 3));
    }
    rest.first().map(|&c| (c, 1))
}

fn push_label(wire: &mut Vec<u8>, label: &[u8]) -> Result<(), WireError> {
    if label.len() > MAX_LABEL_LEN {
        return Err(WireError::LabelTooLong);
    }
    wire.push(label.len() as u8);
    wire.extend_from_slice(label);
    if wire.len() + 1 > MAX_NAME_LEN {
        return Err(WireError::NameTooLong);
    }
    Ok(())
}

/// Length of a valid uncompressed wire name at the start of `wire`.
pub fn validate_uncompressed(wire: &[u8]) -> Result<usize, WireError> {
    let mut pos = 0;
    loop {
        let len = *wire.get(pos).ok_or(WireError::Short)? as usize;
        if len == 0 {
            return Ok(pos + 1);
        }
        if len > MAX_LABEL_LEN {
            return Err(if len & 0xC0 == 0xC0 { WireError::BadPointer } else { WireError::BadLabelType });
        }
        pos += 1 + len;
        if pos + 1 > MAX_NAME_LEN {
            return Err(WireError::NameTooLong);
        }
    }
}

/// Case-insensitive "is `name` at or below `zone`" over uncompressed wire names.
pub fn is_subdomain_wire(name: &[u8], zone: &[u8]) -> bool {
    if zone.len() > name.len() {
        return false;
    }
    // Walk label boundaries of `name` until the remaining suffix has the zone's length.
    let mut pos = 0;
    while name.len() - pos > zone.len() {
        pos += name[pos] as usize + 1;
    }
    name.len() - pos == zone.len() && name[pos..].eq_ignore_ascii_case(zone)
}

/// Writes the presentation form of an uncompressed wire name (with trailing dot) into `out`.
pub fn write_text(wire: &[u8], out: &mut String) {
    let _ = write_text_to(wire, out);
}

/// [`write_text`] into any writer (a formatter writes straight through, no buffer).
fn write_text_to(wire: &[u8], out: &mut impl fmt::Write) -> fmt::Result {
    if wire.len() <= 1 {
        return out.write_char('.');
    }
    let mut pos = 0;
    while pos < wire.len() && wire[pos] != 0 {
        let len = wire[pos] as usize;
        for &b in &wire[pos + 1..(pos + 1 + len).min(wire.len())] {
            match b {
                b'.' | b'\\' | b'(' | b')' | b';' | b' ' | b'@' | b'"' => {
                    out.write_char('\\')?;
                    out.write_char(b as char)?;
                }
                0x21..=0x7E => out.write_char(b as char)?,
                _ => write!(out, "\\{b:03}")?,
            }
        }
        out.write_char('.')?;
        pos += len + 1;
    }
    Ok(())
}

/// Decompresses the name at `offset` into `wire` (cleared first), with the bounds `Name::read`
/// documents. Returns the offset after the name in the message.
fn read_wire(msg: &[u8], offset: usize, wire: &mut Vec<u8>) -> Result<usize, WireError> {
    wire.clear();
    walk_name(msg, offset, |step| match step {
        NameStep::Label(label) => {
            wire.push(label.len() as u8);
            wire.extend_from_slice(label);
        }
        NameStep::Root { .. } => wire.push(0),
        NameStep::Pointer { .. } => {}
    })
}

/// One step of [`walk_name`].
pub(crate) enum NameStep<'a> {
    /// A label's bytes (without its length octet).
    Label(&'a [u8]),
    /// The compression pointer at `at`, followed to `target`.
    Pointer { at: usize, target: usize },
    /// The root label that ends the name, at `at`.
    Root { at: usize },
}

/// Walks the possibly compressed name at `offset` by the decoder's rules — known label types,
/// pointers strictly backwards (which bounds the work to the message length), at most 255
/// octets decompressed — telling `visit` each step. Returns the offset after the name in its
/// original position. The decoder and the in-place check (`check_message`) both read names
/// through this, so they cannot disagree on what a name is.
pub(crate) fn walk_name(msg: &[u8], offset: usize, mut visit: impl FnMut(NameStep<'_>)) -> Result<usize, WireError> {
    let mut pos = offset;
    let mut end_after: Option<usize> = None;
    let mut lowest_pointer_origin = offset;
    let mut total = 0usize;
    loop {
        let len = *msg.get(pos).ok_or(WireError::Short)? as usize;
        match len & 0xC0 {
            0x00 => {
                if len == 0 {
                    if total + 1 > MAX_NAME_LEN {
                        return Err(WireError::NameTooLong);
                    }
                    visit(NameStep::Root { at: pos });
                    return Ok(end_after.unwrap_or(pos + 1));
                }
                let label = msg.get(pos + 1..pos + 1 + len).ok_or(WireError::Short)?;
                total += 1 + len;
                if total + 1 > MAX_NAME_LEN {
                    return Err(WireError::NameTooLong);
                }
                visit(NameStep::Label(label));
                pos += 1 + len;
            }
            0xC0 => {
                let low = *msg.get(pos + 1).ok_or(WireError::Short)? as usize;
                let target = ((len & 0x3F) << 8) | low;
                if target >= lowest_pointer_origin.min(pos) {
                    return Err(WireError::BadPointer);
                }
                if end_after.is_none() {
                    end_after = Some(pos + 2);
                }
                visit(NameStep::Pointer { at: pos, target });
                lowest_pointer_origin = target;
                pos = target;
            }
            _ => return Err(WireError::BadLabelType),
        }
    }
}

/// Whether the (possibly compressed) name at `offset` of `msg` equals the uncompressed `wire`
/// name, exactly or ignoring ASCII case. Bounded for any input; false for anything malformed.
pub fn name_at_equals(msg: &[u8], mut offset: usize, wire: &[u8], ignore_case: bool) -> bool {
    let mut pos = 0;
    // A bound, so a pointer loop in unchecked bytes ends: room for the at most 127 labels of a
    // name that could match, each reached through a pointer.
    for _ in 0..2 * MAX_NAME_LEN {
        let Some(&len) = msg.get(offset) else { return false };
        if len & 0xC0 == 0xC0 {
            let Some(&low) = msg.get(offset + 1) else { return false };
            offset = ((len as usize & 0x3F) << 8) | low as usize;
            continue;
        }
        let len = len as usize;
        if wire.get(pos) != Some(&(len as u8)) {
            return false;
        }
        if len == 0 {
            return true;
        }
        let (Some(a), Some(b)) = (msg.get(offset + 1..offset + 1 + len), wire.get(pos + 1..pos + 1 + len)) else {
            return false;
        };
        // Exact bytes first: replies and stored names usually keep the asked case, and a slice
        // compare is far cheaper than a per-byte case fold.
        if a != b && !(ignore_case && a.eq_ignore_ascii_case(b)) {
            return false;
        }
        offset += 1 + len;
        pos += 1 + len;
    }
    false
}

pub struct Labels<'a> {
    wire: &'a [u8],
}

impl<'a> Iterator for Labels<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let len = *self.wire.first()? as usize;
        if len == 0 {
            return None;
        }
        let label = &self.wire[1..1 + len];
        self.wire = &self.wire[1 + len..];
        Some(label)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_text_to(&self.wire, f)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip() {
        for t in ["example.org.", ".", "a.b.c.", "x\\.y.org.", "\\000.org."] {
            assert_eq!(Name::from_ascii(t).unwrap().to_string(), t);
        }
        assert_eq!(Name::from_ascii("example.org").unwrap().to_string(), "example.org.");
    }

    #[test]
    fn rejects_bad_text() {
        assert!(Name::from_ascii("a..b").is_err());
        assert!(Name::from_ascii(&"a".repeat(64)).is_err());
        let long = vec!["abcdefghi"; 30].join(".");
        assert_eq!(Name::from_ascii(&long).unwrap_err(), WireError::NameTooLong);
    }

    #[test]
    fn subdomain() {
        let n = Name::from_ascii("www.Example.ORG.").unwrap();
        assert!(n.is_subdomain_of(&Name::from_ascii("example.org.").unwrap()));
        assert!(n.is_subdomain_of(&Name::root()));
        assert!(!n.is_subdomain_of(&Name::from_ascii("ample.org.").unwrap()));
        assert!(!Name::from_ascii("org.").unwrap().is_subdomain_of(&Name::from_ascii("example.org.").unwrap()));
    }

    #[test]
    fn pointers_must_go_backwards() {
        // name at 0: "a" then pointer to 0 -> loop
        let msg = [1, b'a', 0xC0, 0x00];
        assert_eq!(Name::read(&msg, 0).unwrap_err(), WireError::BadPointer);
        // forward pointer
        let msg = [0xC0, 0x02, 1, b'a', 0];
        assert_eq!(Name::read(&msg, 0).unwrap_err(), WireError::BadPointer);
        // good pointer
        let msg = [1, b'a', 0, 1, b'b', 0xC0, 0x00];
        let (n, end) = Name::read(&msg, 3).unwrap();
        assert_eq!(n.to_string(), "b.a.");
        assert_eq!(end, 7);
    }

    #[test]
    fn reserved_label_types() {
        assert_eq!(Name::read(&[0x40, 0], 0).unwrap_err(), WireError::BadLabelType);
        assert_eq!(Name::read(&[0x80, 0], 0).unwrap_err(), WireError::BadLabelType);
    }
}
