//! Label and field selectors as the API server evaluates them.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Eq(String),
    Ne(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selector {
    labels: Vec<(String, Op)>,
    fields: Vec<(String, bool, String)>,
}

fn split_top(s: &str) -> Vec<String> {
    let (mut depth, mut cur, mut out) = (0, String::new(), Vec::new());
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out.into_iter().map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect()
}

fn set(s: &str) -> Option<Vec<String>> {
    let inner = s.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(inner.split(',').map(|v| v.trim().to_string()).collect())
}

const FIELDS: [&str; 5] = ["metadata.name", "metadata.namespace", "spec.nodeName", "status.phase", "status.podIP"];

impl Selector {
    pub fn parse(labels: &str, fields: &str) -> Result<Selector, String> {
        let mut sel = Selector::default();
        for req in split_top(labels) {
            let words: Vec<&str> = req.split_whitespace().collect();
            let op = if words.len() >= 3 && (words[1] == "in" || words[1] == "notin") {
                let values = set(&words[2..].join(" ")).ok_or(format!("bad set in {req:?}"))?;
                let op = if words[1] == "in" { Op::In(values) } else { Op::NotIn(values) };
                sel.labels.push((words[0].to_string(), op));
                continue;
            } else if let Some(k) = req.strip_prefix('!') {
                sel.labels.push((k.trim().to_string(), Op::NotExists));
                continue;
            } else if let Some((k, v)) = req.split_once("!=") {
                (k, Op::Ne(v.trim().to_string()))
            } else if let Some((k, v)) = req.split_once("==") {
                (k, Op::Eq(v.trim().to_string()))
            } else if let Some((k, v)) = req.split_once('=') {
                (k, Op::Eq(v.trim().to_string()))
            } else {
                (req.as_str(), Op::Exists)
            };
            sel.labels.push((op.0.trim().to_string(), op.1));
        }
        for req in split_top(fields) {
            let (path, eq, value) = if let Some((k, v)) = req.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = req.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = req.split_once('=') {
                (k, true, v)
            } else {
                return Err(format!("invalid field selector: {req}"));
            };
            if !FIELDS.contains(&path.trim()) {
                return Err(format!("field label not supported: {}", path.trim()));
            }
            sel.fields.push((path.trim().to_string(), eq, value.trim().to_string()));
        }
        Ok(sel)
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let labels = &obj["metadata"]["labels"];
        let label_ok = self.labels.iter().all(|(k, op)| {
            let v = labels.get(k).and_then(|v| v.as_str());
            match op {
                Op::Eq(x) => v == Some(x.as_str()),
                Op::Ne(x) => v != Some(x.as_str()),
                Op::In(xs) => v.is_some_and(|v| xs.iter().any(|x| x == v)),
                Op::NotIn(xs) => v.is_none_or(|v| !xs.iter().any(|x| x == v)),
                Op::Exists => v.is_some(),
                Op::NotExists => v.is_none(),
            }
        });
        label_ok
            && self.fields.iter().all(|(path, eq, want)| {
                let mut cur = obj;
                for part in path.split('.') {
                    cur = &cur[part];
                }
                let have = cur.as_str().unwrap_or("");
                (have == want) == *eq
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors() {
        let pod =
            json!({"metadata": {"name": "p", "labels": {"app": "web", "tier": "fe"}}, "status": {"phase": "Running"}});
        let s = |l: &str, f: &str| Selector::parse(l, f).unwrap().matches(&pod);
        assert!(s("app=web", ""));
        assert!(s("app==web,tier", ""));
        assert!(!s("app!=web", ""));
        assert!(s("app in (web, api),!missing", ""));
        assert!(!s("tier notin (fe)", ""));
        assert!(s("", "status.phase!=Succeeded,status.phase!=Failed"));
        assert!(!s("", "status.phase=Succeeded"));
        assert!(Selector::parse("", "spec.bogus=x").is_err());
    }
}
