//! A cursor over one plugin's directive lines, for setup code: arguments, nested block
//! properties, and errors that point at the offending token.

use crate::{Directive, Error, Token};

pub struct Dispenser<'a> {
    directive: &'a Directive,
    pos: usize,
}

impl<'a> Dispenser<'a> {
    pub fn new(directive: &'a Directive) -> Dispenser<'a> {
        Dispenser { directive, pos: 0 }
    }

    pub fn name(&self) -> &'a Token {
        &self.directive.name
    }

    /// Arguments on the directive line, before any `{`.
    pub fn args(&self) -> Vec<&'a Token> {
        self.directive.args.iter().take_while(|t| !t.is("{")).collect()
    }

    pub fn has_block(&self) -> bool {
        self.directive.args.iter().any(|t| t.is("{"))
    }

    /// Lines of the nested block: each is (property token, its arguments). Nested blocks inside
    /// properties are returned flattened in the arguments.
    pub fn block(&self) -> Vec<(&'a Token, Vec<&'a Token>)> {
        let Some(open) = self.directive.args.iter().position(|t| t.is("{")) else {
            return Vec::new();
        };
        let inner = &self.directive.args[open + 1..self.directive.args.len().saturating_sub(1)];
        let mut out: Vec<(&Token, Vec<&Token>)> = Vec::new();
        let mut depth = 0usize;
        for t in inner {
            let starts_line = depth == 0
                && out.last().is_none_or(|(p, a)| {
                    let last = a.last().copied().unwrap_or(p);
                    last.line != t.line || last.file != t.file
                });
            if starts_line {
                out.push((t, Vec::new()));
            } else if let Some((_, args)) = out.last_mut() {
                args.push(t);
            }
            if t.is("{") {
                depth += 1;
            } else if t.is("}") {
                depth = depth.saturating_sub(1);
            }
        }
        out
    }

    /// Moves through arguments one by one (used by parsers that want a stream).
    pub fn next_arg(&mut self) -> Option<&'a Token> {
        let t = self.directive.args.get(self.pos).filter(|t| !t.is("{"))?;
        self.pos += 1;
        Some(t)
    }

    pub fn err(&self, token: &Token, message: impl Into<String>) -> Error {
        Error::at(token, message)
    }

    pub fn arg_err(&self, token: &Token) -> Error {
        Error::at(token, format!("Wrong argument count or unexpected line ending after '{}'", token.text))
    }
}
