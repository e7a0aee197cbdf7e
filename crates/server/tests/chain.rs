//! The chain contract in-process: sync answers, pending (async) answers, the way back, panics.

use kdns_corefile::{parse_str, Directive, Error};
use kdns_server::config::{build, ListenerKey};
use kdns_server::handler::{handle, Outcome};
use kdns_server::metrics;
use kdns_server::plugin::{Done, Plugin, PluginDef, Reply, Request, SetupCtx, Step};
use kdns_server::Proto;
use kdns_wire::{class, flag, rcode, rtype, Message, Name, Question};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

struct Panicker;
impl Plugin for Panicker {
    fn name(&self) -> &'static str {
        "erratic"
    }
    fn serve(&self, req: &Request<'_>) -> Step {
        if req.qname().to_string().starts_with("boom") {
            panic!("boom from a plugin");
        }
        if req.qname().to_string().starts_with("later") {
            let mut m = Message::reply_to(req.msg);
            m.set(flag::AA, true);
            return Step::Pending(Box::pin(async move {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                Reply::message(m, "erratic")
            }));
        }
        if req.qname().to_string().starts_with("latepanic") {
            return Step::Pending(Box::pin(async move { panic!("late boom") }));
        }
        Step::Next
    }
}

static OBSERVED: AtomicUsize = AtomicUsize::new(0);
struct Observer;
impl Plugin for Observer {
    fn name(&self) -> &'static str {
        "log"
    }
    fn serves(&self) -> bool {
        false
    }
    fn serve(&self, _req: &Request<'_>) -> Step {
        Step::Next
    }
    fn respond(&self, _req: &Request<'_>, reply: &mut Reply) {
        reply.msg().set(flag::RA, true);
    }
    fn observe(&self, _req: &Request<'_>, _done: &Done<'_>) {
        OBSERVED.fetch_add(1, Ordering::SeqCst);
    }
}

fn erratic(_: &mut SetupCtx<'_>, _: &[&Directive]) -> Result<Option<Arc<dyn Plugin>>, Error> {
    Ok(Some(Arc::new(Panicker)))
}
fn observer(_: &mut SetupCtx<'_>, _: &[&Directive]) -> Result<Option<Arc<dyn Plugin>>, Error> {
    Ok(Some(Arc::new(Observer)))
}

fn table() -> Arc<kdns_server::config::ZoneTable> {
    let c = parse_str(".:5300 {\n erratic\n log\n}\n", "Corefile", Path::new("."), &|_| None).unwrap();
    let defs = [PluginDef { name: "erratic", setup: erratic }, PluginDef { name: "log", setup: observer }];
    let inst = build(&c, &defs, 53, Path::new(".")).unwrap();
    inst.listeners[&ListenerKey { ip: None, port: 5300 }].clone()
}

fn q(name: &str) -> Vec<u8> {
    Message {
        id: 9,
        flags: flag::RD,
        questions: vec![Question { name: Name::from_ascii(name).unwrap(), qtype: rtype::A, qclass: class::IN }],
        ..Default::default()
    }
    .to_vec()
}

fn addr() -> std::net::SocketAddr {
    "127.0.0.1:5000".parse().unwrap()
}

#[test]
fn plugin_order_follows_plugin_cfg_and_way_back_runs() {
    let t = table();
    let mut out = Vec::new();
    let before = OBSERVED.load(Ordering::SeqCst);
    // log sits before erratic in plugin.cfg, so it observes erratic's answers.
    assert!(matches!(
        handle(&q("nothing.example."), addr(), addr(), Proto::Udp, &t, &mut Default::default(), &mut out),
        Outcome::Reply
    ));
    let m = Message::decode(&out).unwrap();
    assert_eq!(m.rcode, rcode::SERVFAIL, "chain end without an answer");
    // CoreDNS writes this error past every plugin's response writer: no respond hook sees it.
    assert!(!m.has(flag::RA), "respond hook skipped for a server-written error");
    assert_eq!(OBSERVED.load(Ordering::SeqCst), before + 1);
}

#[test]
fn panics_become_servfail_and_are_counted() {
    let t = table();
    let mut out = Vec::new();
    let before = metrics::panics_total().with(&[]).get();
    assert!(matches!(
        handle(&q("boom.example."), addr(), addr(), Proto::Udp, &t, &mut Default::default(), &mut out),
        Outcome::Reply
    ));
    let m = Message::decode(&out).unwrap();
    assert_eq!(m.rcode, rcode::SERVFAIL);
    assert_eq!(m.id, 9);
    assert!(metrics::panics_total().with(&[]).get() > before, "panic counted");
}

#[test]
fn pending_answers_complete_and_late_panics_are_caught() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let t = table();
    let mut out = Vec::new();
    let Outcome::Pending(p) =
        handle(&q("later.example."), addr(), addr(), Proto::Udp, &t, &mut Default::default(), &mut out)
    else {
        panic!("expected pending")
    };
    let bytes = rt.block_on(p.finish());
    let m = Message::decode(&bytes).unwrap();
    assert!(m.has(flag::AA) && m.has(flag::RA));
    assert_eq!(m.rcode, rcode::NOERROR);
    let before = metrics::panics_total().with(&[]).get();
    let Outcome::Pending(p) =
        handle(&q("latepanic.example."), addr(), addr(), Proto::Udp, &t, &mut Default::default(), &mut out)
    else {
        panic!("expected pending")
    };
    let m = Message::decode(&rt.block_on(p.finish())).unwrap();
    assert_eq!(m.rcode, rcode::SERVFAIL);
    assert!(metrics::panics_total().with(&[]).get() > before, "panic counted");
}
