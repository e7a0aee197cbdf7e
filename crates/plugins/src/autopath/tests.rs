use super::*;
use crate::testutil::run_setup;

#[test]
fn setup_reads_a_resolv_conf_or_names_a_plugin() {
    let dir = std::env::temp_dir().join(format!("kdns-autopath-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let resolv = dir.join("resolv.conf");
    std::fs::write(&resolv, "nameserver 10.0.0.1\nsearch a.example b.example\n").unwrap();
    let text = format!(".:53 {{\n    autopath {}\n}}\n", resolv.display());
    assert!(run_setup(setup, "autopath", &text).0.is_ok());
    assert_eq!(
        static_path(&resolv).unwrap(),
        [Name::from_ascii("a.example.").unwrap(), Name::from_ascii("b.example.").unwrap(), Name::root()]
    );
    assert!(run_setup(setup, "autopath", ".:53 {\n    autopath @kubernetes\n}\n").0.is_ok());
    let e =
        run_setup(setup, "autopath", ".:53 {\n    autopath /nonexistent/resolv.conf\n}\n").0.err().unwrap().to_string();
    assert!(e.contains("Corefile:2") && e.contains("plugin/autopath: failed to parse"), "{e}");
    assert!(run_setup(setup, "autopath", ".:53 {\n    autopath\n}\n").0.is_err());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn cnamer_points_the_asked_name_at_the_answer() {
    let asked = Name::from_ascii("web.ns.svc.cluster.local.").unwrap();
    let found = Name::from_ascii("web.svc.cluster.local.").unwrap();
    let mut m = Message::default();
    m.questions.push(kdns_wire::Question { name: found.clone(), qtype: 1, qclass: 1 });
    m.answers.push(Record::new(found.clone(), 17, RData::A("10.0.0.1".parse().unwrap())));
    cnamer(&mut m, &asked);
    assert_eq!(m.answers[0], Record::new(asked.clone(), 17, RData::Cname(found)));
    assert_eq!(m.questions[0].name, asked);
}

mod podsource {
    use super::*;
    use kdns_server::clients::{self, Pod, Resolver};
    use kdns_server::testing::{query, Act, Chain, Next};
    use kdns_wire::rtype;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    /// What exists behind the node cache: a service of the pod's namespace, an external name,
    /// and a name with no A record (NODATA); everything else is NXDOMAIN.
    fn cluster() -> Arc<Next> {
        Next::new(|q| {
            let asked = q.questions[0].name.to_string().to_ascii_lowercase();
            let mut m = Message::reply_to(q);
            match asked.as_str() {
                "svc1.shop.svc.cluster.local." | "google.com." => {
                    m.answers.push(Record::new(q.questions[0].name.clone(), 30, RData::A([192, 0, 2, 7].into())))
                }
                "nodata.example." => {}
                _ => m.rcode = rcode::NXDOMAIN,
            }
            Act::Reply(m)
        })
    }

    fn publish(ip: [u8; 4], ndots: u8, node_is_its_resolver: bool) {
        let search = ["shop.svc.cluster.local.", "svc.cluster.local.", "cluster.local."].map(name).to_vec();
        clients::publish([(
            std::net::IpAddr::from(ip),
            Pod {
                namespace: "shop".into(),
                name: "web".into(),
                resolver: Some(Resolver { search, ndots, node_is_its_resolver }),
            },
        )]);
    }

    fn asked(next: &Next) -> Vec<String> {
        next.seen().iter().map(|m| m.questions[0].name.to_string()).collect()
    }

    /// One test (the directory is process-wide): each case on a fresh chain.
    #[tokio::test]
    async fn the_pods_own_search_walk_is_done_here_only_when_its_end_is_certain() {
        publish([127, 0, 0, 1], 5, true);
        let corefile = ".:53 {\n    autopath @podsource\n}\n";
        let fresh = || {
            let next = cluster();
            (Chain::new(corefile, &crate::all(), Some(next.clone())).unwrap(), next)
        };

        // An external name from a ClusterFirst pod: the whole walk here, one answer back.
        let (mut c, next) = fresh();
        let r = c.ask(&query("google.com.shop.svc.cluster.local.", rtype::A)).await.unwrap();
        assert_eq!(r.rcode, rcode::NOERROR);
        assert_eq!(
            r.answers[0],
            Record::new(name("google.com.shop.svc.cluster.local."), 30, RData::Cname(name("google.com.")))
        );
        assert_eq!(r.answers[1].data, RData::A([192, 0, 2, 7].into()));
        assert_eq!(
            asked(&next),
            [
                "google.com.shop.svc.cluster.local.",
                "google.com.svc.cluster.local.",
                "google.com.cluster.local.",
                "google.com."
            ]
        );

        // The asked name exists: answered as asked, nothing more tried.
        let (mut c, next) = fresh();
        let r = c.ask(&query("svc1.shop.svc.cluster.local.", rtype::A)).await.unwrap();
        assert_eq!((r.rcode, r.answers.len()), (rcode::NOERROR, 1));
        assert_eq!(next.count(), 1);

        // A NODATA on the way: glibc walks on, musl stops. Not ours to decide: the asked name's
        // NXDOMAIN goes back and the pod walks on by itself.
        let (mut c, next) = fresh();
        let r = c.ask(&query("nodata.example.shop.svc.cluster.local.", rtype::A)).await.unwrap();
        assert_eq!((r.rcode, r.answers.len()), (rcode::NXDOMAIN, 0));
        assert_eq!(next.count(), 4);

        // Nothing exists: NXDOMAIN for the asked name.
        let (mut c, _) = fresh();
        let r = c.ask(&query("nope.shop.svc.cluster.local.", rtype::A)).await.unwrap();
        assert_eq!(r.rcode, rcode::NXDOMAIN);
        assert_eq!(r.questions[0].name, name("nope.shop.svc.cluster.local."));

        // As many dots as ndots: the resolver asked the name as given first, so no walk here.
        publish([127, 0, 0, 1], 1, true);
        let (mut c, next) = fresh();
        let r = c.ask(&query("google.com.shop.svc.cluster.local.", rtype::A)).await.unwrap();
        assert_eq!(r.rcode, rcode::NXDOMAIN);
        assert_eq!(next.count(), 1);

        // A pod with another nameserver beside us, and a client that is no known pod: untouched.
        publish([127, 0, 0, 1], 5, false);
        let (mut c, next) = fresh();
        c.ask(&query("google.com.shop.svc.cluster.local.", rtype::A)).await.unwrap();
        assert_eq!(next.count(), 1);
        publish([10, 9, 9, 9], 5, true);
        let (mut c, next) = fresh();
        c.ask(&query("google.com.shop.svc.cluster.local.", rtype::A)).await.unwrap();
        assert_eq!(next.count(), 1);
    }
}
