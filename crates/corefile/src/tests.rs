use super::*;
use std::path::Path;

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse(s: &str) -> Result<Corefile, Error> {
    parse_str(s, "Corefile", Path::new("."), &no_env)
}

fn names(b: &ServerBlock) -> Vec<String> {
    b.directives.iter().map(|d| d.name.text.clone()).collect()
}

#[test]
fn kubeadm_corefile() {
    let c = parse(
        ".:53 {\n    errors\n    health {\n       lameduck 5s\n    }\n    ready\n    kubernetes cluster.local in-addr.arpa ip6.arpa {\n       pods insecure\n       fallthrough in-addr.arpa ip6.arpa\n       ttl 30\n    }\n    prometheus :9153\n    forward . /etc/resolv.conf {\n       max_concurrent 1000\n    }\n    cache 30\n    loop\n    reload\n    loadbalance\n}\n",
    )
    .unwrap();
    assert_eq!(c.blocks.len(), 1);
    assert_eq!(
        names(&c.blocks[0]),
        ["errors", "health", "ready", "kubernetes", "prometheus", "forward", "cache", "loop", "reload", "loadbalance"]
    );
    let health = &c.blocks[0].directives[1];
    assert_eq!(health.args.iter().map(|t| t.text.as_str()).collect::<Vec<_>>(), ["{", "lameduck", "5s", "}"]);
    let d = Dispenser::new(&c.blocks[0].directives[3]);
    assert_eq!(d.args().len(), 3);
    let block = d.block();
    assert_eq!(block.len(), 3);
    assert_eq!(block[1].0.text, "fallthrough");
    assert_eq!(block[1].1.len(), 2);
}

#[test]
fn several_blocks_and_keys() {
    let c = parse("example.org example.net:1053 {\n whoami\n}\n\n. {\n log\n}\n").unwrap();
    assert_eq!(c.blocks.len(), 2);
    assert_eq!(c.blocks[0].keys.len(), 2);
    let c = parse("a.org,\n  b.org {\n whoami\n}").unwrap();
    assert_eq!(c.blocks[0].keys.iter().map(|k| k.text.as_str()).collect::<Vec<_>>(), ["a.org", "b.org"]);
}

#[test]
fn braceless_single_block() {
    let c = parse(".:1053\nwhoami\nlog\n").unwrap();
    assert_eq!(names(&c.blocks[0]), ["whoami", "log"]);
}

#[test]
fn errors_name_file_and_line() {
    let e = parse(".:53 {\n whoami\n").unwrap_err();
    assert_eq!(e.line, 1);
    assert!(e.to_string().starts_with("Corefile:1 - Error during parsing:"), "{e}");
    // A stray `}` is a server block key in CoreDNS's parser (the zone `}.`), not an error.
    let c = parse(".:53 {\n whoami\n}\n}\n").unwrap();
    assert_eq!(c.blocks.len(), 2);
    assert_eq!(c.blocks[1].keys[0].text, "}");
    assert!(c.blocks[1].directives.is_empty());
    let e = parse(".:53 {\n log {\n}\n").unwrap_err();
    assert!(e.message.contains("EOF"), "{e}");
}

#[test]
fn snippets_and_cycles() {
    let c = parse("(common) {\n errors\n log\n}\n.:53 {\n import common\n whoami\n}\n").unwrap();
    assert_eq!(names(&c.blocks[0]), ["errors", "log", "whoami"]);
    let e = parse("(a) {\n import a\n}\n.:53 {\n import a\n}\n").unwrap_err();
    assert!(e.message.contains("cycle"), "{e}");
    let e = parse(".:53 {\n import nothing\n}\n").unwrap_err();
    assert!(e.message.contains("nothing"), "{e}");
}

#[test]
fn file_and_glob_imports() {
    let dir = std::env::temp_dir().join(format!("kdns-corefile-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("custom")).unwrap();
    std::fs::write(dir.join("custom/a.override"), "log\n").unwrap();
    std::fs::write(dir.join("custom/b.override"), "errors\n").unwrap();
    std::fs::write(dir.join("custom/x.server"), "example.org {\n whoami\n}\n").unwrap();
    std::fs::write(dir.join("self"), "import self\n").unwrap();
    let text = ".:53 {\n import custom/*.override\n whoami\n}\nimport custom/*.server\nimport none/*.server\n";
    let c = parse_str(text, "Corefile", &dir, &no_env).unwrap();
    assert_eq!(names(&c.blocks[0]), ["log", "errors", "whoami"]);
    assert_eq!(c.blocks.len(), 2);
    assert_eq!(c.warnings.len(), 1);
    assert!(c.blocks[0].directives[0].name.file.ends_with("a.override"));
    let e = parse_str(".:53 {\n import self\n}\n", "Corefile", &dir, &no_env).unwrap_err();
    assert!(e.message.contains("cycle"), "{e}");
    // One wildcard at most, as CoreDNS's parser: `import /**` once walked the whole file system
    // (found by the corefile_parse fuzzer).
    for pattern in ["/**", "custom/*/*.override", "custom/?.ove?ride", "custom/[ab].override"] {
        let e = parse_str(&format!(".:53 {{\n import {pattern}\n}}\n"), "Corefile", &dir, &no_env).unwrap_err();
        assert!(e.message.starts_with("Glob pattern may only contain one wildcard (*), but has others: "), "{e}");
        assert_eq!(e.line, 2, "{e}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn import_bomb_is_capped() {
    let mut s = String::from("(s0) {\n whoami\n}\n");
    for i in 1..8 {
        s.push_str(&format!("(s{i}) {{\n"));
        for _ in 0..10 {
            s.push_str(&format!(" import s{}\n", i - 1));
        }
        s.push_str("}\n");
    }
    s.push_str(".:53 {\n import s7\n}\n");
    let e = parse(&s).unwrap_err();
    assert!(e.message.contains("too many imports"), "{e}");
}

#[test]
fn env_substitution() {
    let env = |k: &str| match k {
        "PORT" => Some("1053".to_string()),
        "UP" => Some("8.8.8.8".to_string()),
        _ => None,
    };
    let c = parse_str(".:{$PORT} {\n forward . {%UP%}\n}\n", "Corefile", Path::new("."), &env).unwrap();
    assert_eq!(c.blocks[0].keys[0].text, ".:1053");
    assert_eq!(c.blocks[0].directives[0].args[1].text, "8.8.8.8");
}

#[test]
fn canonical_ignores_comments_and_layout() {
    let a = parse(".:53 {\n whoami\n log\n}\n").unwrap();
    let b = parse("# hello\n.:53   {\n\n whoami # me\n    log\n}\n").unwrap();
    let c = parse(".:53 {\n whoami\n}\n").unwrap();
    assert_eq!(a.canonical(), b.canonical());
    assert_ne!(a.canonical(), c.canonical());
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parser_never_panics(s in "[a-z{}\\.:# \"\n\\\\$%()*/0-9]{0,200}") {
            let _ = parse(&s);
        }
    }
}
