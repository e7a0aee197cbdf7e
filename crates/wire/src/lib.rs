//! `kdns-wire` owns the DNS wire format: names, messages, the query validation table that
//! decides what a server answers to malformed input, and encoding with truncation.
//!
//! It is sans-IO (bytes in, bytes out) and written here rather than taken from hickory-proto
//! because the server's hot path needs bounded, allocation-aware parsing and in-place patching
//! (ID, flags, TTLs) that a general-purpose owned model does not give; hickory-proto stays a
//! dev-dependency used as an independent oracle in tests.

pub mod check;
pub mod message;
pub mod name;
pub mod query;
pub mod text;
pub mod zonefile;

pub use check::{check_message, Checked};
pub use message::{flag, Edns, Encoded, Header, Message, Question, RData, Record};
pub use name::Name;
pub use query::{check_query, check_query_into, error_reply, Rejection};

pub const HEADER_LEN: usize = 12;

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("message too short")]
    Short,
    #[error("compression pointer does not point backwards")]
    BadPointer,
    #[error("reserved label type")]
    BadLabelType,
    #[error("label longer than 63 octets")]
    LabelTooLong,
    #[error("empty label")]
    EmptyLabel,
    #[error("name longer than 255 octets")]
    NameTooLong,
    #[error("bad escape in name")]
    BadEscape,
    #[error("malformed RDATA")]
    BadRdata,
    #[error("malformed or misplaced OPT record")]
    BadOpt,
}

pub mod rtype {
    pub const A: u16 = 1;
    pub const NS: u16 = 2;
    pub const CNAME: u16 = 5;
    pub const SOA: u16 = 6;
    pub const MB: u16 = 7;
    pub const PTR: u16 = 12;
    pub const HINFO: u16 = 13;
    pub const MX: u16 = 15;
    pub const TXT: u16 = 16;
    pub const AAAA: u16 = 28;
    pub const SRV: u16 = 33;
    pub const NAPTR: u16 = 35;
    pub const DNAME: u16 = 39;
    pub const OPT: u16 = 41;
    pub const DS: u16 = 43;
    pub const SSHFP: u16 = 44;
    pub const RRSIG: u16 = 46;
    pub const NSEC: u16 = 47;
    pub const DNSKEY: u16 = 48;
    pub const NSEC3: u16 = 50;
    pub const TLSA: u16 = 52;
    pub const SVCB: u16 = 64;
    pub const HTTPS: u16 = 65;
    pub const SPF: u16 = 99;
    pub const TKEY: u16 = 249;
    pub const TSIG: u16 = 250;
    pub const IXFR: u16 = 251;
    pub const AXFR: u16 = 252;
    pub const MAILB: u16 = 253;
    pub const MAILA: u16 = 254;
    pub const ANY: u16 = 255;
    pub const CAA: u16 = 257;

    /// Mnemonic as miekg/dns prints it (`TYPE65280` for unknown types).
    pub fn name(t: u16) -> std::borrow::Cow<'static, str> {
        let s = match t {
            A => "A",
            NS => "NS",
            CNAME => "CNAME",
            SOA => "SOA",
            MB => "MB",
            PTR => "PTR",
            HINFO => "HINFO",
            MX => "MX",
            TXT => "TXT",
            AAAA => "AAAA",
            SRV => "SRV",
            DNAME => "DNAME",
            OPT => "OPT",
            DS => "DS",
            RRSIG => "RRSIG",
            NSEC => "NSEC",
            DNSKEY => "DNSKEY",
            NSEC3 => "NSEC3",
            SVCB => "SVCB",
            HTTPS => "HTTPS",
            TKEY => "TKEY",
            TSIG => "TSIG",
            IXFR => "IXFR",
            AXFR => "AXFR",
            MAILB => "MAILB",
            MAILA => "MAILA",
            ANY => "ANY",
            8 => "MG",
            9 => "MR",
            10 => "NULL",
            11 => "WKS",
            14 => "MINFO",
            17 => "RP",
            18 => "AFSDB",
            29 => "LOC",
            NAPTR => "NAPTR",
            SSHFP => "SSHFP",
            TLSA => "TLSA",
            SPF => "SPF",
            CAA => "CAA",
            _ => return std::borrow::Cow::Owned(format!("TYPE{t}")),
        };
        std::borrow::Cow::Borrowed(s)
    }

    /// The type for a mnemonic (case-insensitive) or `TYPEnnn`, as miekg/dns's `StringToType`.
    pub fn from_name(text: &str) -> Option<u16> {
        let upper = text.to_ascii_uppercase();
        if let Some(n) = upper.strip_prefix("TYPE") {
            return n.parse().ok();
        }
        (0..=u16::MAX).take(300).find(|t| name(*t) == upper.as_str())
    }
}

pub mod class {
    pub const IN: u16 = 1;
    pub const CH: u16 = 3;
    pub const HS: u16 = 4;
    pub const NONE: u16 = 254;
    pub const ANY: u16 = 255;

    pub fn name(c: u16) -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed(match c {
            IN => "IN",
            CH => "CH",
            HS => "HS",
            NONE => "NONE",
            ANY => "ANY",
            _ => return std::borrow::Cow::Owned(format!("CLASS{c}")),
        })
    }
}

pub mod rcode {
    pub const NOERROR: u16 = 0;
    pub const FORMERR: u16 = 1;
    pub const SERVFAIL: u16 = 2;
    pub const NXDOMAIN: u16 = 3;
    pub const NOTIMP: u16 = 4;
    pub const REFUSED: u16 = 5;
    pub const BADVERS: u16 = 16;

    /// Names as miekg/dns `RcodeToString` has them.
    pub fn name(r: u16) -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed(match r {
            0 => "NOERROR",
            1 => "FORMERR",
            2 => "SERVFAIL",
            3 => "NXDOMAIN",
            4 => "NOTIMP",
            5 => "REFUSED",
            6 => "YXDOMAIN",
            7 => "YXRRSET",
            8 => "NXRRSET",
            9 => "NOTAUTH",
            10 => "NOTZONE",
            16 => "BADSIG",
            17 => "BADKEY",
            18 => "BADTIME",
            19 => "BADMODE",
            20 => "BADNAME",
            21 => "BADALG",
            22 => "BADTRUNC",
            23 => "BADCOOKIE",
            _ => return std::borrow::Cow::Owned(r.to_string()),
        })
    }
}

pub mod opcode {
    pub const QUERY: u8 = 0;
    pub const NOTIFY: u8 = 4;
    pub const UPDATE: u8 = 5;

    pub fn name(o: u8) -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed(match o {
            0 => "QUERY",
            1 => "IQUERY",
            2 => "STATUS",
            4 => "NOTIFY",
            5 => "UPDATE",
            _ => return std::borrow::Cow::Owned(o.to_string()),
        })
    }
}
