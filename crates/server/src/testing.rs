//! Test utilities (feature `testing`): a chain built from Corefile text and driven through the
//! server's own request path ([`handle`]) with no sockets, a scripted last plugin that records
//! what reached it and answers as told (CoreDNS's `test.NextHandler` is the model), and the
//! chain's manual [`Clock`]. Plugin tests reach `Request::rest()` (prefetch, serve_stale,
//! refreshes) through it, and age entries by moving the clock instead of sleeping; waits inside
//! the chain (timers, a slow upstream) run on tokio's paused clock in `start_paused` tests.

use crate::clock::Clock;
use crate::config::{build_with, BuildOptions, ZoneTable};
use crate::handler::{handle, Outcome};
use crate::plugin::{Plugin, PluginDef, Reply, Request, Step};
use crate::Proto;
use kdns_wire::{class, flag, Message, Name, Question};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A built chain (the first listener of the Corefile) with a manual clock.
pub struct Chain {
    table: Arc<ZoneTable>,
    clock: Clock,
    scratch: Message,
    out: Vec<u8>,
    /// Where queries come from.
    pub client: SocketAddr,
    /// Where they arrive.
    pub local: SocketAddr,
}

impl Chain {
    /// The chain of `corefile` built from `plugins`, with `next` (when given) after the last
    /// plugin of every block.
    pub fn new(corefile: &str, plugins: &[PluginDef], next: Option<Arc<Next>>) -> Result<Chain, String> {
        Chain::with_clock(corefile, plugins, next, Clock::manual())
    }

    /// [`Chain::new`] reading `clock` (the system's for benchmarks that measure the real path).
    pub fn with_clock(
        corefile: &str,
        plugins: &[PluginDef],
        next: Option<Arc<Next>>,
        clock: Clock,
    ) -> Result<Chain, String> {
        let parsed =
            kdns_corefile::parse_str(corefile, "Corefile", Path::new("."), &|_| None).map_err(|e| e.to_string())?;
        let opts = BuildOptions { clock: clock.clone(), tail: next.map(|n| n as Arc<dyn Plugin>) };
        let instance = build_with(&parsed, plugins, 53, Path::new("."), &opts).map_err(|e| e.to_string())?;
        let (key, table) = instance.listeners.into_iter().next().ok_or("the Corefile has no server block")?;
        let local = SocketAddr::new(key.ip.unwrap_or([127, 0, 0, 1].into()), key.port);
        Ok(Chain {
            table,
            clock,
            scratch: Message::default(),
            out: Vec::new(),
            client: ([127, 0, 0, 1], 40000).into(),
            local,
        })
    }

    /// The chain's clock: `advance` it to age what the plugins stored.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Answers `packet` if the chain answers it at once (a cache hit, a refusal): the reply's
    /// bytes, written into a buffer this chain reuses. `None` when it dropped the query or has
    /// to wait (see [`Chain::ask`]).
    pub fn answer_now(&mut self, packet: &[u8], proto: Proto) -> Option<&[u8]> {
        match handle(packet, self.client, self.local, proto, &self.table, &mut self.scratch, &mut self.out) {
            Outcome::Reply => Some(&self.out),
            Outcome::Drop | Outcome::Pending(_) => None,
        }
    }

    /// Sends `query` over UDP through the chain and waits for its reply, as a UDP worker does;
    /// `None` when the chain dropped it.
    pub async fn ask(&mut self, query: &Message) -> Option<Message> {
        self.send(query).await
    }

    /// Sends `query` and returns its reply to come, which borrows nothing: queries sent one
    /// after another are in flight together until their replies are awaited.
    pub fn send(&mut self, query: &Message) -> impl std::future::Future<Output = Option<Message>> + 'static {
        let packet = query.to_vec();
        let outcome =
            handle(&packet, self.client, self.local, Proto::Udp, &self.table, &mut self.scratch, &mut self.out);
        let answered = match outcome {
            Outcome::Reply => Ok(Some(self.out.clone())),
            Outcome::Drop => Ok(None),
            Outcome::Pending(pending) => Err(pending),
        };
        async move {
            let bytes = match answered {
                Ok(bytes) => bytes?,
                Err(pending) => pending.finish().await,
            };
            Some(Message::decode(&bytes).expect("the chain writes well-formed replies"))
        }
    }
}

/// A query for `name` and `qtype`, class IN, RD set, ID 4242.
pub fn query(name: &str, qtype: u16) -> Message {
    Message {
        id: 4242,
        flags: flag::RD,
        questions: vec![Question { name: Name::from_ascii(name).expect("a valid name"), qtype, qclass: class::IN }],
        ..Default::default()
    }
}

/// What the scripted plugin does with one query.
pub enum Act {
    /// Answers at once.
    Reply(Message),
    /// Answers after this long (on tokio's clock: instant in a `start_paused` test).
    After(Duration, Message),
    /// Never answers (an upstream that is gone).
    Never,
    /// Passes the query on (no next plugin: the chain answers SERVFAIL).
    Next,
}

type Script = dyn Fn(&Message) -> Act + Send + Sync;

/// The scripted last plugin: records every query that reaches it (queries the server sent
/// through the chain and detached runs of `Request::rest()` alike) and does what its script
/// says.
pub struct Next {
    script: Box<Script>,
    seen: Mutex<Vec<Message>>,
}

impl Next {
    pub fn new(script: impl Fn(&Message) -> Act + Send + Sync + 'static) -> Arc<Next> {
        Arc::new(Next { script: Box::new(script), seen: Mutex::new(Vec::new()) })
    }

    /// Every query that reached it, in order.
    pub fn seen(&self) -> Vec<Message> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many queries reached it.
    pub fn count(&self) -> usize {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Plugin for Next {
    fn name(&self) -> &'static str {
        "next"
    }

    fn serve(&self, req: &Request<'_>) -> Step {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).push(req.msg.clone());
        match (self.script)(req.msg) {
            Act::Reply(m) => Step::Reply(Reply::message(m, "next")),
            Act::After(wait, m) => Step::Pending(Box::pin(async move {
                tokio::time::sleep(wait).await;
                Reply::message(m, "next")
            })),
            Act::Never => Step::Pending(Box::pin(std::future::pending())),
            Act::Next => Step::Next,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kdns_wire::{rcode, rtype, RData, Record};

    fn answer(q: &Message) -> Message {
        let mut m = Message::reply_to(q);
        m.answers.push(Record::new(q.questions[0].name.clone(), 60, RData::A([192, 0, 2, 1].into())));
        m
    }

    #[tokio::test]
    async fn the_next_plugin_sees_each_query_and_answers_as_scripted() {
        let next = Next::new(|q| {
            if q.questions[0].name.to_string().starts_with("gone") {
                Act::Next
            } else {
                Act::Reply(answer(q))
            }
        });
        let mut chain = Chain::new(".:53 {\n}\n", &[], Some(next.clone())).unwrap();
        let r = chain.ask(&query("a.example.", rtype::A)).await.unwrap();
        assert_eq!((r.rcode, r.answers.len(), r.id), (rcode::NOERROR, 1, 4242));
        let r = chain.ask(&query("gone.example.", rtype::A)).await.unwrap();
        assert_eq!(r.rcode, rcode::SERVFAIL, "nothing after the scripted plugin");
        assert_eq!(next.count(), 2);
        assert_eq!(next.seen()[1].questions[0].name.to_string(), "gone.example.");
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_answer_takes_no_real_time() {
        let next = Next::new(|q| Act::After(Duration::from_secs(30), answer(q)));
        let mut chain = Chain::new(".:53 {\n}\n", &[], Some(next)).unwrap();
        let started = std::time::Instant::now();
        let r = chain.ask(&query("a.example.", rtype::A)).await.unwrap();
        assert_eq!(r.answers.len(), 1);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
