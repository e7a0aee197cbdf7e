use super::*;
use crate::testutil;

fn templates(text: &str) -> Result<Vec<Template>, kdns_corefile::Error> {
    let c = testutil::corefile(&format!(".:53 {{\n{text}\n}}\n"));
    c.blocks[0].directives.iter().map(|d| super::setup::template(&[".".to_string()], d)).collect()
}

#[test]
fn template_expressions() {
    let t = templates("template IN A example.org {\n    match ^ip-(?P<a>[0-9]+)-(?P<b>[0-9]+)\\.example\\.org\\.$\n    answer \"{{ .Name }} 60 IN A 10.0.{{ .Group.a }}.{{ index .Group \\\"b\\\" }}\"\n}").unwrap();
    assert_eq!(t[0].answer[0].parts[0], Part::Name);
    assert!(t[0].answer[0].parts.contains(&Part::Group("a".into())));
    assert!(t[0].answer[0].parts.contains(&Part::Group("b".into())));
    for bad in [
        "template IN A {\n    answer \"{{ .Name | upper }} A 1.1.1.1\"\n}",
        "template IN A {\n    answer \"{{ .Name A 1.1.1.1\"\n}",
        "template XX A",
        "template IN NOPE",
        "template IN A {\n    match ([\n}",
        "template IN A {\n    rcode MAYBE\n}",
        "template IN A {\n    ederror 15\n}",
    ] {
        assert!(templates(bad).is_err(), "{bad}");
    }
}
