//! The cache in a real chain (server core, `Request::rest()`, the way back) with a scripted next
//! plugin and the chain's manual clock: TTL ageing, expiry, negative and SERVFAIL caching,
//! prefetch and serve_stale, without sockets or sleeps.

use kdns_server::testing::{query, Act, Chain, Next};
use kdns_wire::{rcode, rtype, Message, Name, RData, Record};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const SEC: Duration = Duration::from_secs(1);

/// An answer of `ttl` seconds to `q`: one A record.
fn answer(q: &Message, ttl: u32) -> Message {
    let mut m = Message::reply_to(q);
    m.answers.push(Record::new(q.questions[0].name.clone(), ttl, RData::A([192, 0, 2, 1].into())));
    m
}

/// The next plugin as an upstream: `answer(q, ttl)` until [`Upstream::go_down`], then what
/// `when_down` says; `first` may script calls by their number (0 is the first query).
struct Upstream {
    next: Arc<Next>,
    up: Arc<AtomicBool>,
}

impl Upstream {
    fn new(ttl: u32, when_down: fn(&Message) -> Act) -> Upstream {
        Upstream::with_first(ttl, when_down, |_, _| None)
    }

    fn with_first(
        ttl: u32,
        when_down: fn(&Message) -> Act,
        first: impl Fn(usize, &Message) -> Option<Act> + Send + Sync + 'static,
    ) -> Upstream {
        let up = Arc::new(AtomicBool::new(true));
        let (is_up, calls) = (up.clone(), AtomicUsize::new(0));
        let next = Next::new(move |q| {
            let call = calls.fetch_add(1, Ordering::SeqCst);
            first(call, q).unwrap_or_else(|| match is_up.load(Ordering::SeqCst) {
                true => Act::Reply(answer(q, ttl)),
                false => when_down(q),
            })
        });
        Upstream { next, up }
    }

    fn go_down(&self) {
        self.up.store(false, Ordering::SeqCst);
    }
}

/// SERVFAIL for `q`.
fn servfail(q: &Message) -> Message {
    let mut m = Message::reply_to(q);
    m.rcode = rcode::SERVFAIL;
    m
}

/// NXDOMAIN for `q` with the zone's SOA (TTL and minimum `ttl`).
fn nxdomain(q: &Message, ttl: u32) -> Message {
    let mut m = Message::reply_to(q);
    m.rcode = rcode::NXDOMAIN;
    let zone = Name::from_ascii("example.org.").unwrap();
    let soa = RData::Soa {
        mname: Name::from_ascii("ns.example.org.").unwrap(),
        rname: Name::from_ascii("hostmaster.example.org.").unwrap(),
        serial: 1,
        refresh: 7200,
        retry: 3600,
        expire: 1209600,
        minimum: ttl,
    };
    m.authority.push(Record::new(zone, ttl, soa));
    m
}

fn chain(cache: &str, next: &Arc<Next>) -> Chain {
    chain_on(53, cache, next)
}

/// The chain on its own port: its `server` label keeps its counters apart from other tests'.
fn chain_on(port: u16, cache: &str, next: &Arc<Next>) -> Chain {
    let corefile = format!(".:{port} {{\n    {cache}\n}}\n");
    Chain::new(&corefile, &crate::all(), Some(next.clone())).expect("the chain builds")
}

/// The value of the cache counter `family` for the chain on `port`.
fn counter(family: &str, port: u16) -> f64 {
    let text = kdns_server::metrics::registry().render();
    let prefix = format!("{family}{{server=\"dns://:{port}\"");
    text.lines().find(|l| l.starts_with(&prefix)).and_then(|l| l.rsplit(' ').next()?.parse().ok()).unwrap_or(0.0)
}

fn ttl(m: &Message) -> u32 {
    m.answers.first().or(m.authority.first()).expect("a record").ttl
}

/// Lets the tasks a refresh started run (they are spawned on this test's runtime).
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn hits_age_with_the_clock_until_the_entry_expires() {
    let next = Next::new(|q| Act::Reply(answer(q, 300)));
    let mut c = chain("cache 30", &next);
    let q = query("www.example.org.", rtype::A);
    let first = c.ask(&q).await.unwrap();
    assert_eq!((ttl(&first), first.has(kdns_wire::flag::AA)), (30, false), "capped at 30, from upstream");
    c.clock().advance(10 * SEC);
    let hit = c.ask(&q).await.unwrap();
    assert_eq!((ttl(&hit), hit.has(kdns_wire::flag::AA)), (20, true), "aged 10 s, authoritative");
    c.clock().advance(Duration::from_millis(19_500));
    assert_eq!(ttl(&c.ask(&q).await.unwrap()), 1, "half a second left: TTL 1, never 0");
    assert_eq!(next.count(), 1);
    c.clock().advance(SEC);
    assert_eq!(ttl(&c.ask(&q).await.unwrap()), 30, "expired: asked again, a new life");
    assert_eq!(next.count(), 2);
}

#[tokio::test]
async fn negative_answers_age_like_their_soa_and_servfail_is_kept_five_seconds() {
    let next = Next::new(|q| match q.questions[0].name.to_string().as_str() {
        "broken.example.org." => Act::Reply(servfail(q)),
        _ => Act::Reply(nxdomain(q, 60)),
    });
    let mut c = chain("cache", &next);
    let q = query("nx.example.org.", rtype::A);
    assert_eq!(ttl(&c.ask(&q).await.unwrap()), 60);
    c.clock().advance(45 * SEC);
    let hit = c.ask(&q).await.unwrap();
    assert_eq!((hit.rcode, ttl(&hit)), (rcode::NXDOMAIN, 15));
    assert_eq!(next.count(), 1);

    let broken = query("broken.example.org.", rtype::A);
    for _ in 0..3 {
        assert_eq!(c.ask(&broken).await.unwrap().rcode, rcode::SERVFAIL);
    }
    assert_eq!(next.count(), 2, "SERVFAIL cached");
    c.clock().advance(5 * SEC);
    c.ask(&broken).await.unwrap();
    assert_eq!(next.count(), 3, "for 5 s only");
}

#[tokio::test]
async fn keepttl_and_the_minimum_ttl() {
    let next = Next::new(|q| Act::Reply(answer(q, 3)));
    let mut c = chain("cache {\n        success 1000 20 10\n        keepttl\n    }", &next);
    let q = query("t.example.org.", rtype::A);
    assert_eq!(ttl(&c.ask(&q).await.unwrap()), 10, "raised to the minimum");
    c.clock().advance(7 * SEC);
    assert_eq!(ttl(&c.ask(&q).await.unwrap()), 10, "keepttl: the original TTL on hits");
    assert_eq!(next.count(), 1);
}

#[tokio::test]
async fn prefetch_refreshes_a_popular_entry_before_it_expires() {
    let next = Next::new(|q| Act::Reply(answer(q, 10)));
    let mut c = chain_on(5391, "cache {\n        success 1000 10 10\n        prefetch 2 1m 50%\n    }", &next);
    let q = query("p.example.org.", rtype::A);
    c.ask(&q).await.unwrap();
    c.clock().advance(SEC);
    c.ask(&q).await.unwrap();
    settle().await;
    assert_eq!(next.count(), 1, "9 s left is more than 50 %: no refresh");
    c.clock().advance(5 * SEC);
    let hit = c.ask(&q).await.unwrap();
    assert_eq!(ttl(&hit), 4, "the client is answered from the entry");
    settle().await;
    assert_eq!(next.count(), 2, "the second hit within the minute, under 50 % left: refreshed");
    assert_eq!(counter("coredns_cache_prefetch_total", 5391), 1.0);
    assert_eq!(ttl(&c.ask(&q).await.unwrap()), 10, "the refreshed entry starts a new life");
    settle().await;
    assert_eq!(next.count(), 2, "one refresh");
}

#[tokio::test]
async fn serve_stale_answers_expired_entries_at_once_and_refreshes_behind_them() {
    let upstream = Upstream::new(1, |_| Act::Never);
    let next = &upstream.next;
    let mut c = chain_on(5392, "cache {\n        success 1000 1 1\n        serve_stale 1h\n    }", next);
    let q = query("s.example.org.", rtype::A);
    assert_eq!(ttl(&c.ask(&q).await.unwrap()), 1);
    upstream.go_down();
    c.clock().advance(2 * SEC);
    let stale = c.ask(&q).await.unwrap();
    assert_eq!((stale.rcode, ttl(&stale)), (rcode::NOERROR, 0), "stale answers carry TTL 0 (CoreDNS)");
    assert_eq!(stale.answers[0].data, RData::A([192, 0, 2, 1].into()));
    assert_eq!(counter("coredns_cache_served_stale_total", 5392), 1.0);
    settle().await;
    assert_eq!(next.count(), 2, "a refresh went to the next plugin");
    c.ask(&q).await.unwrap();
    settle().await;
    assert_eq!(next.count(), 2, "one refresh at a time per entry");
    // Past the stale window the entry is a miss.
    c.clock().advance(Duration::from_secs(3600));
    let fresh_next = Next::new(|q| Act::Reply(answer(q, 1)));
    let mut c2 = chain("cache {\n        success 1000 1 1\n        serve_stale 1h\n    }", &fresh_next);
    c2.ask(&q).await.unwrap();
    c2.clock().advance(Duration::from_secs(3602));
    assert_eq!(ttl(&c2.ask(&q).await.unwrap()), 1, "too old to serve: asked again");
    assert_eq!(fresh_next.count(), 2);
}

#[tokio::test]
async fn serve_stale_verify_prefers_a_fresh_answer_and_falls_back_when_the_refresh_fails() {
    let upstream = Upstream::new(1, |_| Act::Next);
    let next = &upstream.next;
    let mut c = chain("cache {\n        success 1000 1 1\n        serve_stale 1h verify\n    }", next);
    let q = query("v.example.org.", rtype::A);
    c.ask(&q).await.unwrap();
    c.clock().advance(2 * SEC);
    assert_eq!(ttl(&c.ask(&q).await.unwrap()), 1, "fresh answer, not the stale one");
    assert_eq!(next.count(), 2);
    upstream.go_down();
    c.clock().advance(2 * SEC);
    let r = c.ask(&q).await.unwrap();
    assert_eq!((r.rcode, ttl(&r)), (rcode::NOERROR, 0), "the refresh failed (SERVFAIL): the stale entry");
    assert_eq!(next.count(), 3);
}

#[tokio::test(start_paused = true)]
async fn plain_verify_waits_for_its_refresh_however_long_it_takes() {
    // CoreDNS's verify has no client timer of its own (the upstream's timeouts end the wait);
    // tokio's paused clock lets the test wait a minute in no time.
    let upstream = Upstream::new(1, |_| Act::Never);
    let mut c = chain("cache {\n        success 1000 1 1\n        serve_stale 1h verify\n    }", &upstream.next);
    let q = query("h.example.org.", rtype::A);
    c.ask(&q).await.unwrap();
    upstream.go_down();
    c.clock().advance(2 * SEC);
    let waited = tokio::time::timeout(Duration::from_secs(60), c.ask(&q)).await;
    assert!(waited.is_err(), "answered before the refresh ended: {waited:?}");
}

/// The node cache's warm-up race (the flaky `failopen::cached_cluster_names_survive_a_dead_cluster_dns`):
/// a client's first query and its retry are in flight together and one of them ends in SERVFAIL.
/// The denial store, looked at first, must not keep that SERVFAIL over the good answer, in any
/// order, so that once the upstream is gone the stale answer is served.
#[tokio::test(start_paused = true)]
async fn a_cached_servfail_never_hides_a_good_answer_from_serve_stale() {
    #[derive(Clone, Copy, Debug)]
    /// When the SERVFAIL arrives, against the good answer.
    enum ServfailArrives {
        AfterTheAnswer,
        BeforeTheAnswer,
        WhileTheAnswerIsOnItsWay,
    }
    for race in
        [ServfailArrives::AfterTheAnswer, ServfailArrives::BeforeTheAnswer, ServfailArrives::WhileTheAnswerIsOnItsWay]
    {
        let upstream = Upstream::with_first(
            300,
            |_| Act::Never,
            move |call, q| match (race, call) {
                (ServfailArrives::AfterTheAnswer, 0) => Some(Act::After(SEC, servfail(q))),
                (ServfailArrives::BeforeTheAnswer, 0) => Some(Act::Reply(servfail(q))),
                (ServfailArrives::WhileTheAnswerIsOnItsWay, 0) => Some(Act::After(SEC, answer(q, 300))),
                (ServfailArrives::WhileTheAnswerIsOnItsWay, 1) => Some(Act::Reply(servfail(q))),
                _ => None,
            },
        );
        let mut c = chain(
            "cache {\n        success 9984 2 1\n        denial 9984 5\n        serve_stale 1h\n    }",
            &upstream.next,
        );
        let q = query("cached0.default.svc.cluster.local.", rtype::A);
        match race {
            ServfailArrives::AfterTheAnswer => {
                let slow = c.send(&q);
                let good = c.ask(&q).await.unwrap();
                assert_eq!((good.rcode, ttl(&good)), (rcode::NOERROR, 2));
                assert_eq!(slow.await.unwrap().rcode, rcode::SERVFAIL, "the client that waited gets what came");
            }
            ServfailArrives::BeforeTheAnswer => {
                assert_eq!(c.ask(&q).await.unwrap().rcode, rcode::SERVFAIL);
                // The retry comes while the SERVFAIL is cached: CoreDNS answers it from there too.
                assert_eq!(c.ask(&q).await.unwrap().rcode, rcode::SERVFAIL);
                c.clock().advance(5 * SEC);
                assert_eq!(
                    c.ask(&q).await.unwrap().rcode,
                    rcode::NOERROR,
                    "past its 5 s a SERVFAIL is not served stale"
                );
            }
            ServfailArrives::WhileTheAnswerIsOnItsWay => {
                let slow = c.send(&q);
                assert_eq!(c.ask(&q).await.unwrap().rcode, rcode::SERVFAIL);
                assert_eq!(slow.await.unwrap().rcode, rcode::NOERROR);
                let hit = c.ask(&q).await.unwrap();
                assert_eq!(
                    (hit.rcode, hit.has(kdns_wire::flag::AA)),
                    (rcode::NOERROR, true),
                    "the answer cleared the SERVFAIL"
                );
            }
        }
        // The upstream goes away and the good answer expires.
        upstream.go_down();
        c.clock().advance(Duration::from_millis(2500));
        let r = c.ask(&q).await.unwrap();
        assert_eq!((r.rcode, r.answers.len()), (rcode::NOERROR, 1), "{race:?}: {r:?}");
        // Still so once a SERVFAIL would be past its own 5 s.
        c.clock().advance(5 * SEC);
        let r = c.ask(&q).await.unwrap();
        assert_eq!((r.rcode, r.answers.len()), (rcode::NOERROR, 1), "{race:?}: {r:?}");
    }
}

/// RFC 8767 as the node cache runs it (`ServeStale::rfc8767`, a process-wide default there; each
/// nextest test is a process of its own): the first client waits the 1.8 s client timer, then
/// gets the stale answer with TTL 30; a refresh still running at that point counts as failing,
/// so the next clients get the stale answer at once instead of each waiting the timer out while
/// the upstream's own timeouts run.
#[tokio::test(start_paused = true)]
async fn the_client_timer_answers_stale_and_later_clients_do_not_wait_again() {
    super::set_default_serve_stale(Some(super::ServeStale::rfc8767(Duration::from_secs(3600))));
    let upstream = Upstream::new(1, |_| Act::Never);
    let mut c = chain("cache {\n        success 1000 1 1\n    }", &upstream.next);
    super::set_default_serve_stale(None);
    let q = query("t.example.org.", rtype::A);
    c.ask(&q).await.unwrap();
    upstream.go_down();
    c.clock().advance(2 * SEC);
    let started = tokio::time::Instant::now();
    let first = c.ask(&q).await.unwrap();
    assert_eq!((first.rcode, ttl(&first)), (rcode::NOERROR, 30));
    assert_eq!(started.elapsed(), Duration::from_millis(1800), "the client timer");
    for _ in 0..3 {
        let started = tokio::time::Instant::now();
        let again = c.ask(&q).await.unwrap();
        assert_eq!((again.rcode, ttl(&again)), (rcode::NOERROR, 30));
        assert_eq!(started.elapsed(), Duration::ZERO, "stale at once while the refresh is failing");
    }
}
