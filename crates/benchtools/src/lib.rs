//! What `bench/` needs besides dnsperf, as a library so the allocation test and the `kdns-bench`
//! binary (reflector, load generator, callgrind hit loop) share one fixture: the node cache's
//! chain in front of an answering plugin, driven through the server's request path without
//! sockets by `kdns_server::testing::Chain` (on the system clock, as in production).

use kdns_server::clock::Clock;
use kdns_server::testing::Chain;
use kdns_server::Proto;
use kdns_wire::{class, flag, rtype, Edns, Message, Name, Question};

/// prometheus, errors and cache (the node-local-dns chain) in front of hosts, which answers
/// `web.example.org` with two addresses (TTL 3600; the cache caps it at 30).
const HIT_COREFILE: &str = ".:5300 {\n    prometheus 127.0.0.1:0\n    errors\n    cache 30\n    hosts {\n        10.0.0.1 web.example.org\n        10.0.0.2 web.example.org\n    }\n}\n";

/// A query in wire form: ID 0x4242, RD, one question of class IN.
pub fn query(name: &str, qtype: u16, edns: Option<Edns>) -> Option<Vec<u8>> {
    let name = Name::from_ascii(name).ok()?;
    let q = Message {
        id: 0x4242,
        flags: flag::RD,
        questions: vec![Question { name, qtype, qclass: class::IN }],
        edns,
        ..Default::default()
    };
    Some(q.to_vec())
}

/// The cache-hit fixture: a built chain and four shapes of the same question (plain, RD clear,
/// EDNS, EDNS with a cookie). All in the case the entry was stored with: a hit asked in another
/// case is rebuilt (owners keep the stored case, as CoreDNS's), which allocates.
pub struct Hits {
    chain: Chain,
    pub queries: [Vec<u8>; 4],
}

impl Hits {
    /// Builds the chain and answers every query three times: the first pass fills the cache,
    /// the others grow the reused buffers to size.
    pub fn warmed() -> Result<Hits, String> {
        let chain = Chain::with_clock(HIT_COREFILE, &kdns_plugins::all(), None, Clock::system())?;
        let cookie = Edns { options: vec![(10, vec![1, 2, 3, 4, 5, 6, 7, 8])], ..Edns::new(1232) };
        let q = |name, edns| query(name, rtype::A, edns).expect("valid name");
        let queries = [
            q("web.example.org.", None),
            {
                let mut no_rd = q("web.example.org.", None);
                no_rd[2] &= !0x01;
                no_rd
            },
            q("web.example.org.", Some(Edns::new(1232))),
            q("web.example.org.", Some(cookie)),
        ];
        let mut hits = Hits { chain, queries };
        for i in 0..3 * hits.queries.len() {
            hits.answer(i)?;
        }
        Ok(hits)
    }

    /// Answers query shape `i % 4`; an error unless it was answered synchronously.
    pub fn answer(&mut self, i: usize) -> Result<&[u8], String> {
        let q = &self.queries[i % self.queries.len()];
        self.chain.answer_now(q, Proto::Udp).ok_or_else(|| "a cache hit did not answer synchronously".into())
    }
}
