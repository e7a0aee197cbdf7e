//! Log format templates: CoreDNS replacer placeholders compiled once at setup.

use kdns_server::plugin::{Done, Request};
use kdns_wire::{class, flag, opcode, rcode, rtype};
use std::fmt::Write;
use std::net::IpAddr;

pub const COMMON_FORMAT: &str =
    "{remote}:{port} - {>id} \"{type} {class} {name} {proto} {size} {>do} {>bufsize}\" {rcode} {>rflags} {rsize} {duration}";
pub const COMBINED_FORMAT: &str =
    "{remote}:{port} - {>id} \"{type} {class} {name} {proto} {size} {>do} {>bufsize}\" {rcode} {>rflags} {rsize} {duration} \"{>opcode}\"";

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Type,
    Name,
    Class,
    Proto,
    Size,
    Remote,
    Port,
    Local,
    LocalPort,
    Rcode,
    Rsize,
    Duration,
    Id,
    Opcode,
    Do,
    Bufsize,
    Rflags,
    /// Any header flag by name (`{>qr}`, `{>rd}`…): the query's flag, true/false.
    Flag(u16),
    /// The asking pod's namespace / name from the node cache's pod source (`-` when unknown).
    ClientNamespace,
    ClientPod,
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Format {
    parts: Vec<Part>,
}

impl Format {
    pub fn compile(template: &str) -> Format {
        let template = match template {
            "{common}" => COMMON_FORMAT,
            "{combined}" => COMBINED_FORMAT,
            t => t,
        };
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}') else {
                break;
            };
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let key = &rest[open + 1..open + close];
            parts.push(match key {
                "type" => Part::Type,
                "name" => Part::Name,
                "class" => Part::Class,
                "proto" => Part::Proto,
                "size" => Part::Size,
                "remote" => Part::Remote,
                "port" => Part::Port,
                "local" => Part::Local,
                "lport" => Part::LocalPort,
                "rcode" => Part::Rcode,
                "rsize" => Part::Rsize,
                "duration" => Part::Duration,
                ">id" => Part::Id,
                ">opcode" => Part::Opcode,
                ">do" => Part::Do,
                ">bufsize" => Part::Bufsize,
                ">rflags" => Part::Rflags,
                ">qr" => Part::Flag(flag::QR),
                ">aa" => Part::Flag(flag::AA),
                ">tc" => Part::Flag(flag::TC),
                ">rd" => Part::Flag(flag::RD),
                ">ra" => Part::Flag(flag::RA),
                ">z" => Part::Flag(flag::Z),
                ">ad" => Part::Flag(flag::AD),
                ">cd" => Part::Flag(flag::CD),
                // CoreDNS's kubernetes metadata names (set there with `pods verified`), and
                // kdns's short forms.
                "/kubernetes/client-namespace" | "namespace" => Part::ClientNamespace,
                "/kubernetes/client-pod-name" | "pod" => Part::ClientPod,
                _ => Part::Unknown,
            });
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Format { parts }
    }

    pub fn render(&self, req: &Request<'_>, done: &Done<'_>) -> String {
        let mut s = String::with_capacity(128);
        for p in &self.parts {
            let _ = match p {
                Part::Text(t) => {
                    s.push_str(t);
                    Ok(())
                }
                Part::Type => write!(s, "{}", rtype::name(req.qtype())),
                Part::Name => write!(s, "{}", req.qname().to_lowercase()),
                Part::Class => write!(s, "{}", class::name(req.qclass())),
                Part::Proto => write!(s, "{}", req.proto.as_str()),
                Part::Size => write!(s, "{}", req.wire_len),
                Part::Remote => write_ip(&mut s, req.remote.ip()),
                Part::Port => write!(s, "{}", req.remote.port()),
                Part::Local => write_ip(&mut s, req.local.ip()),
                Part::LocalPort => write!(s, "{}", req.local.port()),
                Part::Rcode => write!(s, "{}", rcode::name(done.reply.rcode_value())),
                Part::Rsize => write!(s, "{}", done.size),
                Part::Duration => write!(s, "{}s", done.duration.as_secs_f64()),
                Part::Id => write!(s, "{}", req.msg.id),
                Part::Opcode => write!(s, "{}", opcode::name(req.msg.opcode())),
                Part::Do => write!(s, "{}", req.do_bit()),
                Part::Bufsize => write!(s, "{}", req.bufsize()),
                Part::Rflags => {
                    write_flags(&mut s, done.reply.flags());
                    Ok(())
                }
                Part::Flag(f) => write!(s, "{}", req.msg.has(*f)),
                Part::ClientNamespace => write!(s, "{}", kdns_server::clients::describe(req.remote.ip()).0),
                Part::ClientPod => write!(s, "{}", kdns_server::clients::describe(req.remote.ip()).1),
                Part::Unknown => {
                    s.push('-');
                    Ok(())
                }
            };
        }
        s
    }
}

fn write_ip(s: &mut String, ip: IpAddr) -> std::fmt::Result {
    match ip {
        IpAddr::V4(v4) => write!(s, "{v4}"),
        IpAddr::V6(v6) => write!(s, "[{v6}]"),
    }
}

/// Response flags as CoreDNS prints them: `qr,aa,rd`.
fn write_flags(s: &mut String, flags: u16) {
    let mut first = true;
    for (bit, name) in [
        (flag::QR, "qr"),
        (flag::AA, "aa"),
        (flag::TC, "tc"),
        (flag::RD, "rd"),
        (flag::RA, "ra"),
        (flag::Z, "z"),
        (flag::AD, "ad"),
        (flag::CD, "cd"),
    ] {
        if flags & bit != 0 {
            if !first {
                s.push(',');
            }
            s.push_str(name);
            first = false;
        }
    }
}
