use super::setup::valid_selector;
use crate::testutil::run_setup;

fn setup_err(body: &str) -> String {
    let text = format!(".:53 {{\n    kubernetes cluster.local {{\n{body}\n    }}\n}}\n");
    match run_setup(super::setup, "kubernetes", &text).0 {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn options_are_validated_with_file_and_line() {
    assert_eq!(setup_err("        ttl 30"), "");
    assert!(setup_err("        ttl 3601")
        .contains("Corefile:3 - Error during parsing: plugin/kubernetes: ttl must be in range [0, 3600]"));
    assert!(setup_err("        pods sometimes").contains("invalid pods mode: sometimes"));
    assert!(setup_err("        ignore everything").contains("unable to parse ignore value"));
    assert!(setup_err("        tls a b").contains("Wrong argument count"));
    assert!(setup_err("        frobnicate").contains("unknown property 'frobnicate'"));
    assert!(setup_err("        namespaces a\n        namespace_labels x=y").contains("cannot both be set"));
    assert!(setup_err("        labels app in (a, b),!c").is_empty());
    assert!(setup_err("        labels app in (a").contains("unable to parse label selector"));
    assert!(setup_err("        multicluster clusterset.local").contains("not supported"));
    assert!(setup_err("        startup_timeout soon").contains("invalid startup_timeout"));
    let only_reverse = ".:53 {\n    kubernetes in-addr.arpa\n}\n";
    let e = run_setup(super::setup, "kubernetes", only_reverse).0.err().unwrap().to_string();
    assert!(e.contains("non-reverse zone name must be used"), "{e}");
}

#[test]
fn selectors() {
    for ok in ["a=b", "a==b,c!=d", "!x", "k", "env in (staging, qa),application=nginx", "a notin (x)"] {
        assert!(valid_selector(ok), "{ok}");
    }
    for bad in ["a=(", "in (a)", "a in (b", "=b"] {
        assert!(!valid_selector(bad), "{bad}");
    }
}
