//! Tokenizer with Caddyfile semantics: whitespace-separated tokens, `"…"` grouping with `\"` as the
//! only escape, `#` comments outside quotes, `\r` ignored, and `{$VAR}` / `{%VAR%}` substituted.

use std::sync::Arc;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub text: String,
    pub file: Arc<str>,
    pub line: u32,
    /// Written in quotes: never a brace, never `import`.
    pub quoted: bool,
}

impl Token {
    /// A bare (unquoted) token equal to `s`.
    pub fn is(&self, s: &str) -> bool {
        !self.quoted && self.text == s
    }
}

/// Splits `input` into tokens. `env` resolves environment variables (unset → empty string).
pub fn tokenize(input: &str, file: &Arc<str>, env: &dyn Fn(&str) -> Option<String>) -> Vec<Token> {
    let mut out = Vec::new();
    let mut line = 1u32;
    let mut chars = input.chars().peekable();
    let mut current = String::new();
    let mut token_line = 1u32;
    let mut in_token = false;
    let mut quoted = false;
    let mut in_quotes = false;
    let push = |text: &mut String, line: u32, quoted: bool, out: &mut Vec<Token>| {
        let text = std::mem::take(text);
        out.push(Token { text: replace_env(&text, env), file: file.clone(), line, quoted });
    };
    while let Some(c) = chars.next() {
        if c == '\r' {
            continue;
        }
        if in_quotes {
            match c {
                '\\' if chars.peek() == Some(&'"') => {
                    current.push('"');
                    chars.next();
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    current.push(c);
                }
                _ => current.push(c),
            }
            continue;
        }
        match c {
            '"' if !in_token || current.is_empty() => {
                if !in_token {
                    token_line = line;
                }
                in_token = true;
                in_quotes = true;
                quoted = true;
            }
            '#' if !in_token => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                        break;
                    }
                }
            }
            c if c.is_whitespace() => {
                if in_token {
                    push(&mut current, token_line, quoted, &mut out);
                    in_token = false;
                    quoted = false;
                }
                if c == '\n' {
                    line += 1;
                }
            }
            c => {
                if !in_token {
                    token_line = line;
                    in_token = true;
                }
                current.push(c);
            }
        }
    }
    if in_token {
        push(&mut current, token_line, quoted, &mut out);
    }
    out
}

/// Replaces every `{$NAME}` and `{%NAME%}` in `s`.
pub fn replace_env(s: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    if !s.contains('{') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let (open, close) = if after.starts_with("{$") {
            ("{$", "}")
        } else if after.starts_with("{%") {
            ("{%", "%}")
        } else {
            out.push('{');
            rest = &after[1..];
            continue;
        };
        match after[open.len()..].find(close) {
            Some(end) => {
                let name = &after[open.len()..open.len() + end];
                out.push_str(&env(name).unwrap_or_default());
                rest = &after[open.len() + end + close.len()..];
            }
            None => {
                out.push_str(after);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex(s: &str) -> Vec<(String, u32)> {
        let f: Arc<str> = Arc::from("Corefile");
        let env = |k: &str| (k == "ZONE").then(|| "example.org".to_string());
        tokenize(s, &f, &env).into_iter().map(|t| (t.text, t.line)).collect()
    }

    #[test]
    fn basics() {
        let t = lex(".:53 {\n  # comment\n  log \"a b\" x#y\n}\n");
        assert_eq!(
            t,
            vec![
                (".:53".into(), 1),
                ("{".into(), 1),
                ("log".into(), 3),
                ("a b".into(), 3),
                ("x#y".into(), 3),
                ("}".into(), 4)
            ]
        );
    }

    #[test]
    fn quotes_and_env() {
        let t = lex("\"say \\\"hi\\\"\" {$ZONE}:53 {%ZONE%} {$UNSET}x");
        assert_eq!(t[0].0, "say \"hi\"");
        assert_eq!(t[1].0, "example.org:53");
        assert_eq!(t[2].0, "example.org");
        assert_eq!(t[3].0, "x");
    }
}
