//! `kdns-corefile` owns the Corefile language as CoreDNS (coredns/caddy) defines it: tokens,
//! server blocks and their keys, directives with nested blocks, `import` of files, globs and
//! snippets, environment substitution, and errors that name the file and line. It does no I/O
//! beyond reading imported files, and knows nothing about plugins: the server decides which
//! directive names exist.

pub mod address;
pub mod dispenser;
pub mod lexer;

pub use address::{parse_key, Address, Scheme};
pub use dispenser::Dispenser;
pub use lexer::Token;

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// CoreDNS's cap on import expansions.
pub const MAX_IMPORTS: usize = 10_000;

/// A Corefile error, displayed the way CoreDNS prints them: `Corefile:3 - Error during parsing: …`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line} - Error during parsing: {message}")]
pub struct Error {
    pub file: String,
    pub line: u32,
    pub message: String,
}

impl Error {
    pub fn at(token: &Token, message: impl Into<String>) -> Error {
        Error { file: token.file.to_string(), line: token.line, message: message.into() }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directive {
    pub name: Token,
    /// Arguments and any nested block, braces included, in file order.
    pub args: Vec<Token>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerBlock {
    pub keys: Vec<Token>,
    pub directives: Vec<Directive>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Corefile {
    pub blocks: Vec<ServerBlock>,
    /// Non-fatal findings (an import glob that matched nothing).
    pub warnings: Vec<String>,
}

impl Corefile {
    /// A canonical text of the parsed file: keys and tokens only, so comment, whitespace and
    /// import-layout edits do not change it. The reload plugin hashes this.
    pub fn canonical(&self) -> String {
        let mut s = String::new();
        for b in &self.blocks {
            for k in &b.keys {
                s.push_str(&quote(&k.text));
                s.push(' ');
            }
            s.push_str("{\n");
            for d in &b.directives {
                s.push_str(&quote(&d.name.text));
                for a in &d.args {
                    s.push(' ');
                    s.push_str(&quote(&a.text));
                }
                s.push('\n');
            }
            s.push_str("}\n");
        }
        s
    }
}

fn quote(s: &str) -> String {
    format!("{s:?}")
}

/// Where environment variables come from (a closure so tests need not touch the process env).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Reads and parses a Corefile from disk.
pub fn load_file(path: &Path, env: Env<'_>) -> Result<Corefile, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error {
        file: path.display().to_string(),
        line: 0,
        message: format!("cannot read Corefile: {e}"),
    })?;
    parse_str(&text, &path.display().to_string(), path.parent().unwrap_or(Path::new(".")), env)
}

/// Parses Corefile text; `name` is used in errors, `dir` resolves relative imports.
pub fn parse_str(text: &str, name: &str, dir: &Path, env: Env<'_>) -> Result<Corefile, Error> {
    let file: Arc<str> = Arc::from(name);
    let tokens = lexer::tokenize(text, &file, env);
    let mut ctx = Expander { env, snippets: Vec::new(), imports: 0, warnings: Vec::new() };
    let mut chain = vec![PathBuf::from(name)];
    let tokens = ctx.expand(tokens, dir, &mut chain, true)?;
    let blocks = parse_blocks(&tokens, &file)?;
    Ok(Corefile { blocks, warnings: ctx.warnings })
}

struct Expander<'a> {
    env: Env<'a>,
    snippets: Vec<(String, Vec<Token>)>,
    imports: usize,
    warnings: Vec<String>,
}

impl Expander<'_> {
    /// Splices `import` targets and collects snippet definitions (top level only).
    fn expand(
        &mut self,
        tokens: Vec<Token>,
        dir: &Path,
        chain: &mut Vec<PathBuf>,
        top: bool,
    ) -> Result<Vec<Token>, Error> {
        let mut out = Vec::with_capacity(tokens.len());
        let mut depth = 0usize;
        let mut i = 0;
        while i < tokens.len() {
            let t = &tokens[i];
            let line_start = i == 0 || tokens[i - 1].line != t.line || tokens[i - 1].file != t.file;
            if top
                && depth == 0
                && line_start
                && !t.quoted
                && is_snippet_name(&t.text)
                && tokens.get(i + 1).is_some_and(|n| n.is("{"))
            {
                let name = t.text[1..t.text.len() - 1].to_string();
                let end = matching_brace(&tokens, i + 1)?;
                if self.snippets.iter().any(|(n, _)| *n == name) {
                    return Err(Error::at(t, format!("redeclaration of previously declared snippet {name}")));
                }
                self.snippets.push((name, tokens[i + 2..end].to_vec()));
                i = end + 1;
                continue;
            }
            if line_start && t.is("import") {
                let arg = tokens.get(i + 1).filter(|a| a.line == t.line && a.file == t.file);
                let Some(arg) = arg else {
                    return Err(Error::at(t, "Wrong argument count or unexpected line ending after 'import'"));
                };
                if tokens.get(i + 2).is_some_and(|x| x.line == t.line && x.file == t.file) {
                    return Err(Error::at(&tokens[i + 2], "Import takes only one argument (glob pattern or file)"));
                }
                self.imports += 1;
                if self.imports > MAX_IMPORTS {
                    return Err(Error::at(t, format!("too many imports (more than {MAX_IMPORTS})")));
                }
                let spliced = self.import(arg, dir, chain)?;
                out.extend(spliced);
                i += 2;
                continue;
            }
            if t.is("{") {
                depth += 1;
            } else if t.is("}") {
                depth = depth.saturating_sub(1);
            }
            out.push(t.clone());
            i += 1;
        }
        Ok(out)
    }

    fn import(&mut self, arg: &Token, dir: &Path, chain: &mut Vec<PathBuf>) -> Result<Vec<Token>, Error> {
        if let Some(body) = self.snippets.iter().find(|(n, _)| *n == arg.text).map(|(_, b)| b.clone()) {
            let key = PathBuf::from(format!("(snippet {})", arg.text));
            if chain.contains(&key) {
                return Err(Error::at(arg, format!("import cycle: snippet {} imports itself", arg.text)));
            }
            chain.push(key);
            let r = self.expand(body, dir, chain, false);
            chain.pop();
            return r;
        }
        let pattern = if Path::new(&arg.text).is_absolute() { PathBuf::from(&arg.text) } else { dir.join(&arg.text) };
        let pattern_text = pattern.display().to_string();
        // CoreDNS's parser allows one wildcard: `**` would walk the whole tree below it (a
        // Corefile with `import /**` would read the file system), many wildcards take too long.
        let count = |c: char| pattern_text.matches(c).count();
        if count('*') > 1 || count('?') > 1 || (pattern_text.contains('[') && pattern_text.contains(']')) {
            return Err(Error::at(
                arg,
                format!("Glob pattern may only contain one wildcard (*), but has others: {pattern_text}"),
            ));
        }
        let is_glob = arg.text.contains(['*', '?', '[']);
        let files: Vec<PathBuf> = if is_glob {
            let paths = glob::glob(&pattern_text)
                .map_err(|e| Error::at(arg, format!("Failed to use import pattern {}: {e}", arg.text)))?;
            let mut v: Vec<PathBuf> = paths.filter_map(Result::ok).filter(|p| p.is_file()).collect();
            v.sort();
            if v.is_empty() {
                self.warnings.push(format!("No files matching import glob pattern: {}", arg.text));
            }
            v
        } else {
            if !pattern.exists() {
                return Err(Error::at(arg, format!("Could not import {}: no such file or snippet", arg.text)));
            }
            vec![pattern]
        };
        let mut out = Vec::new();
        for path in files {
            let canonical = path.canonicalize().unwrap_or_else(|_| path.clone());
            if chain.contains(&canonical) {
                return Err(Error::at(arg, format!("import cycle: {} imports itself", path.display())));
            }
            let text = std::fs::read_to_string(&path)
                .map_err(|e| Error::at(arg, format!("Could not import {}: {e}", path.display())))?;
            let file: Arc<str> = Arc::from(path.display().to_string().as_str());
            let tokens = lexer::tokenize(&text, &file, self.env);
            chain.push(canonical);
            let sub_dir = path.parent().map(Path::to_path_buf).unwrap_or_else(|| dir.to_path_buf());
            let expanded = self.expand(tokens, &sub_dir, chain, false);
            chain.pop();
            out.extend(expanded?);
        }
        Ok(out)
    }
}

fn is_snippet_name(s: &str) -> bool {
    s.len() > 2 && s.starts_with('(') && s.ends_with(')')
}

/// Index of the `}` matching the `{` at `open`.
fn matching_brace(tokens: &[Token], open: usize) -> Result<usize, Error> {
    let mut depth = 0usize;
    for (i, t) in tokens.iter().enumerate().skip(open) {
        if t.is("{") {
            depth += 1;
        } else if t.is("}") {
            depth -= 1;
            if depth == 0 {
                return Ok(i);
            }
        }
    }
    Err(Error::at(&tokens[open], "Unexpected EOF: unclosed '{'"))
}

fn parse_blocks(tokens: &[Token], file: &Arc<str>) -> Result<Vec<ServerBlock>, Error> {
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        // Keys: tokens on the first key's line; a trailing comma continues the list.
        let mut keys = Vec::new();
        let mut line = tokens[i].line;
        let mut key_file = tokens[i].file.clone();
        let mut continued = false;
        while i < tokens.len() && !tokens[i].is("{") {
            // A `}` where a key is expected is a key, as in CoreDNS's parser (a stray brace
            // becomes the zone `}.`, which the startup banner warns about).
            let t = &tokens[i];
            if t.line != line || t.file != key_file {
                if !continued {
                    break;
                }
                line = t.line;
                key_file = t.file.clone();
            }
            continued = t.text.ends_with(',');
            let mut k = t.clone();
            while k.text.ends_with(',') {
                k.text.pop();
            }
            for part in k.text.split(',').filter(|p| !p.is_empty()) {
                keys.push(Token { text: part.to_string(), ..k.clone() });
            }
            i += 1;
        }
        if keys.is_empty() {
            let t = tokens.get(i).unwrap_or(&tokens[tokens.len() - 1]);
            return Err(Error::at(t, "expected server block address before '{'"));
        }
        let body: &[Token];
        if i < tokens.len() && tokens[i].is("{") {
            let end = matching_brace(tokens, i)?;
            body = &tokens[i + 1..end];
            i = end + 1;
        } else {
            // Without an opening brace the block's directives run to the next `}` of their own
            // depth (which closes it) or to the end of the file, as in CoreDNS's parser.
            let mut depth = 0usize;
            let mut end = i;
            while end < tokens.len() {
                if tokens[end].is("{") {
                    depth += 1;
                } else if tokens[end].is("}") {
                    if depth == 0 {
                        break;
                    }
                    depth -= 1;
                }
                end += 1;
            }
            body = &tokens[i..end];
            i = if end < tokens.len() { end + 1 } else { end };
        }
        let directives = parse_directives(body)?;
        blocks.push(ServerBlock { keys, directives });
    }
    let _ = file;
    Ok(blocks)
}

fn parse_directives(body: &[Token]) -> Result<Vec<Directive>, Error> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < body.len() {
        let name = &body[i];
        if name.is("{") || name.is("}") {
            return Err(Error::at(name, format!("Unexpected '{}'", name.text)));
        }
        let mut args = Vec::new();
        i += 1;
        while i < body.len() && body[i].line == name.line && body[i].file == name.file {
            if body[i].is("{") {
                let end = matching_brace(body, i)?;
                args.extend_from_slice(&body[i..=end]);
                i = end + 1;
                break;
            }
            if body[i].is("}") {
                return Err(Error::at(&body[i], "Unexpected '}' because no matching opening brace"));
            }
            args.push(body[i].clone());
            i += 1;
        }
        out.push(Directive { name: name.clone(), args });
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
