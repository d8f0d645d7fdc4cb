//! SQL as the audit log records it: the statement, not the values.
//!
//! [`normalize_sql`] parses the text with sqlparser's `GenericDialect` (the
//! dialect DataFusion's SQL front end uses by default, and the same sqlparser
//! version) and writes the statement back from the parsed tree:
//!
//! - comments are gone (the parser drops them), whitespace and keyword case
//!   are the parser's own (`SELECT name FROM t WHERE a = :p1`);
//! - every literal — strings in any quoting (`'…'`, `$$…$$`, `$tag$…$tag$`,
//!   `E'…'`, `N'…'`, `U&'…'`, `X'…'`, `B'…'`), numbers, the string of a
//!   typed literal (`DATE :p1`) or an interval (`INTERVAL :p2 DAY`) — becomes a
//!   numbered literal placeholder `:p1`, `:p2`, … in the order of the parsed
//!   tree (left to right for ordinary queries). `NULL`, `TRUE` and `FALSE`
//!   are kept;
//! - placeholders the caller wrote (`?`, `?3`, `$1`, `:name`, `$name`, `@name`)
//!   are kept, unless they are not ordinary (see below) or use the reserved
//!   form `:p<digits>`/`:i<digits>`: those become literal placeholders too,
//!   so every `:p<N>` in a normalized text stands for a value that was
//!   removed;
//! - identifiers are kept when they are *ordinary*: ASCII letters, digits and
//!   `_` only, with no run of [`MIN_SUSPICIOUS_DIGITS`](crate::scan::MIN_SUSPICIOUS_DIGITS) or more digits and
//!   nothing shaped like a credit code or resident ID. Any other identifier
//!   (`"3702…"`, `"姓名"`, `t_13812345678`) becomes a numbered identifier
//!   placeholder `":i1"`, `":i2"`, … (quoted, so it cannot be confused with a
//!   real name; the same identifier gets the same number throughout);
//! - as a last guard, a text that still holds anything identifier-like is not
//!   used.
//!
//! The result also lists, without duplicates, the keyed hash and kind of every
//! unified social credit code, resident ID (15-digit numbers in their
//! 18-character form) and mobile number in the statement: in any literal
//! (after unescaping `E'…'`, decoding `X'…'`, and joining literal `||` /
//! `concat(…)` chains of up to [`MAX_FOLD_DEPTH`] levels), any identifier,
//! any placeholder name, and anywhere in the raw text (comments included),
//! found as described in [`crate::scan`].
//!
//! A statement that does not parse, is larger than [`MAX_NORMALIZE_BYTES`],
//! or nests deeper than [`MAX_NORMALIZE_DEPTH`] is recorded as
//! `<unparsed SQL: <n> bytes, digest hmac:<32 hex>>` (a keyed digest, see
//! [`SubjectHasher::digest`]) with no text at all; its subject hashes still
//! come from scanning the raw text, so the subject's report finds the access.
//! Parsing keeps sqlparser's recursion limit ([`PARSER_RECURSION_LIMIT`],
//! DataFusion's default), so nothing recurses without bound.
//!
//! Not understood: values computed by expressions other than literal
//! concatenation (`reverse('87654321831')`, `13812345677 + 1`). Their
//! literals are still removed from the text; only the subject hash is
//! missing. Hashing the literals of the planned query (see
//! [`subject_keys_in`]) closes that gap.

use std::ops::ControlFlow;
use std::panic::{AssertUnwindSafe, catch_unwind};

use sqlparser::ast::{
    BinaryOperator, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, ObjectNamePart, Statement, Value,
    ValueWithSpan, VisitMut, VisitorMut,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

use crate::scan::{looks_sensitive, subject_keys_in};
use crate::subject::{SubjectHasher, SubjectKeyKind};

/// Prefix of a literal placeholder: `:p1`, `:p2`, …
pub const LITERAL_PLACEHOLDER_PREFIX: &str = ":p";

/// Prefix of an identifier placeholder, written quoted: `":i1"`, `":i2"`, …
pub const IDENTIFIER_PLACEHOLDER_PREFIX: &str = ":i";

/// Larger statements are not parsed (recorded by size and digest only).
/// The gateway's own limit on SQL text is lower.
pub const MAX_NORMALIZE_BYTES: usize = 256 * 1024;

/// Statements whose operators and keywords nest deeper than this (counted on
/// the tokens before parsing, see [`nesting_bound`]) are not parsed: a
/// left-deep chain of thousands of `OR`/`+`/`UNION` would build a tree too
/// deep to print and drop on a small stack.
pub const MAX_NORMALIZE_DEPTH: usize = 1024;

/// sqlparser's recursion limit while parsing; the same as DataFusion's default.
pub const PARSER_RECURSION_LIMIT: usize = 50;

/// How many levels of a literal `||` / `concat(…)` chain are joined before
/// scanning for identifiers.
pub const MAX_FOLD_DEPTH: usize = 64;

/// Longest joined literal that is scanned.
const MAX_FOLD_BYTES: usize = 4096;

/// One subject found in a statement: the keyed hash that goes into
/// [`NewRecord::subject_hashes`](crate::NewRecord::subject_hashes), and its kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubjectHash {
    /// What kind of identifier it was.
    pub kind: SubjectKeyKind,
    /// [`SubjectHasher::hash`] of the identifier.
    pub hash: String,
}

/// The result of [`normalize_sql`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedSql {
    /// What to record ([`RecordedQuery::Sql`](crate::RecordedQuery::Sql)):
    /// the normalized statement, or `<unparsed SQL: …>`.
    pub text: String,
    /// Whether the text was parsed (false: `text` holds only size and digest).
    pub parsed: bool,
    /// Every subject identifier found, in order of first appearance, without duplicates.
    pub subjects: Vec<SubjectHash>,
}

impl NormalizedSql {
    /// The hashes alone, for [`NewRecord::subject_hashes`](crate::NewRecord::subject_hashes).
    pub fn subject_hashes(&self) -> Vec<String> {
        self.subjects.iter().map(|s| s.hash.clone()).collect()
    }

    /// `(text, subject hashes)`, the shape the gateway's recorder returns.
    pub fn into_parts(self) -> (String, Vec<String>) {
        let hashes = self.subject_hashes();
        (self.text, hashes)
    }
}

/// Normalizes `sql` for the audit log and collects the keyed hashes of the
/// subject identifiers in it. See the [module docs](self) for the rules.
/// Never fails and never panics on any input.
pub fn normalize_sql(sql: &str, hasher: &SubjectHasher) -> NormalizedSql {
    let mut state = State { hasher, subjects: Vec::new(), literals: 0, identifiers: Vec::new() };
    state.scan(sql);
    let raw_subjects = state.subjects.clone();
    let text = catch_unwind(AssertUnwindSafe(|| normalized_text(sql, &mut state))).ok().flatten();
    match text {
        Some(text) => NormalizedSql { text, parsed: true, subjects: state.subjects },
        None => NormalizedSql { text: unparsed_text(sql, hasher), parsed: false, subjects: raw_subjects },
    }
}

/// `<unparsed SQL: <n> bytes, digest hmac:<hex>>`.
fn unparsed_text(sql: &str, hasher: &SubjectHasher) -> String {
    format!("<unparsed SQL: {} bytes, digest hmac:{}>", sql.len(), hasher.digest(sql.as_bytes()))
}

struct State<'h> {
    hasher: &'h SubjectHasher,
    subjects: Vec<SubjectHash>,
    literals: usize,
    identifiers: Vec<String>,
}

impl State<'_> {
    /// Adds the subjects found in `text`.
    fn scan(&mut self, text: &str) {
        for key in subject_keys_in(text) {
            let hash = self.hasher.hash(&key);
            if !self.subjects.iter().any(|s| s.hash == hash) {
                self.subjects.push(SubjectHash { kind: key.kind(), hash });
            }
        }
    }

    /// The next literal placeholder.
    fn literal(&mut self) -> String {
        self.literals += 1;
        format!("{LITERAL_PLACEHOLDER_PREFIX}{}", self.literals)
    }

    /// The placeholder of a non-ordinary identifier (the same for the same identifier).
    fn identifier(&mut self, value: &str) -> String {
        let n = match self.identifiers.iter().position(|v| v == value) {
            Some(i) => i + 1,
            None => {
                self.identifiers.push(value.to_owned());
                self.identifiers.len()
            }
        };
        format!("\"{IDENTIFIER_PLACEHOLDER_PREFIX}{n}\"")
    }
}

/// The normalized text, or `None` when the statement must be recorded unparsed.
fn normalized_text(sql: &str, state: &mut State<'_>) -> Option<String> {
    if sql.len() > MAX_NORMALIZE_BYTES {
        return None;
    }
    let dialect = GenericDialect {};
    let tokens = Tokenizer::new(&dialect, sql).tokenize_with_location().ok()?;
    if nesting_bound(tokens.iter().map(|t| &t.token)) > MAX_NORMALIZE_DEPTH {
        return None;
    }
    let statements = Parser::new(&dialect)
        .with_recursion_limit(PARSER_RECURSION_LIMIT)
        .with_tokens_with_locations(tokens)
        .parse_statements()
        .ok()?;
    statements_text(statements, state)
}

/// Replaces the literals of parsed statements, renders them, and rewrites
/// the rendered tokens; `None` if the result is not clean.
fn statements_text(mut statements: Vec<Statement>, state: &mut State<'_>) -> Option<String> {
    let mut visitor = Literals { state };
    for statement in &mut statements {
        let _ = statement.visit(&mut visitor);
    }
    let rendered = statements.iter().map(Statement::to_string).collect::<Vec<_>>().join("; ");
    drop(statements);
    let text = rewrite_tokens(&rendered, state)?;
    if looks_sensitive(&text) {
        return None;
    }
    Some(text)
}

/// [`normalize_sql`] for a statement the caller has already parsed, which
/// saves parsing it again (about half the cost).
///
/// `statement` must be what sqlparser 0.62 with `GenericDialect` parsed from
/// `sql` — for example the `ast::Statement` inside DataFusion's
/// `datafusion::sql::parser::Statement::Statement` from `DFParser::parse_sql`
/// (the same sqlparser type: there is one sqlparser in the tree). The raw
/// text is still scanned for identifiers (comments are not in the tree). The
/// caller must have bounded the statement's nesting before parsing it (the
/// gateway's SQL gate does, at a lower depth than [`MAX_NORMALIZE_DEPTH`]);
/// this function does not re-check it.
pub fn normalize_parsed_sql(sql: &str, statement: &Statement, hasher: &SubjectHasher) -> NormalizedSql {
    let mut state = State { hasher, subjects: Vec::new(), literals: 0, identifiers: Vec::new() };
    state.scan(sql);
    let raw_subjects = state.subjects.clone();
    let text = catch_unwind(AssertUnwindSafe(|| statements_text(vec![statement.clone()], &mut state))).ok().flatten();
    match text {
        Some(text) => NormalizedSql { text, parsed: true, subjects: state.subjects },
        None => NormalizedSql { text: unparsed_text(sql, hasher), parsed: false, subjects: raw_subjects },
    }
}

/// An upper bound on how deeply the parsed tree can nest, from the tokens:
/// over every path of brackets, the sum of the operator and keyword tokens
/// written directly inside each enclosing pair (literals, plain names, commas
/// and periods are not counted: lists are flat in the tree).
pub fn nesting_bound<'a>(tokens: impl IntoIterator<Item = &'a Token>) -> usize {
    // One frame per open bracket: (tokens counted directly inside, deepest child path).
    let mut frames: Vec<(usize, usize)> = vec![(0, 0)];
    for token in tokens {
        match token {
            Token::LParen | Token::LBracket | Token::LBrace => frames.push((0, 0)),
            Token::RParen | Token::RBracket | Token::RBrace => {
                if frames.len() > 1
                    && let Some((ops, child)) = frames.pop()
                    && let Some(parent) = frames.last_mut()
                {
                    parent.1 = parent.1.max(ops + child + 1);
                }
            }
            Token::Whitespace(_)
            | Token::Comma
            | Token::Period
            | Token::SemiColon
            | Token::EOF
            | Token::Number(..)
            | Token::Placeholder(_) => {}
            Token::Word(w) if w.keyword == Keyword::NoKeyword || w.quote_style.is_some() => {}
            t if literal_texts_of_token(t).is_some() => {}
            _ => {
                if let Some(top) = frames.last_mut() {
                    top.0 += 1;
                }
            }
        }
    }
    let mut depth = 0;
    while let Some((ops, child)) = frames.pop() {
        depth = ops + child.max(depth);
    }
    depth
}

/// Replaces literals (and non-ordinary placeholders) in the tree, scanning each.
struct Literals<'s, 'h> {
    state: &'s mut State<'h>,
}

impl VisitorMut for Literals<'_, '_> {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<Self::Break> {
        if is_concatenation(expr)
            && let Some(text) = folded_text(expr, 0)
        {
            self.state.scan(&text);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_value(&mut self, value: &mut ValueWithSpan) -> ControlFlow<Self::Break> {
        let replace = match &value.value {
            Value::Null | Value::Boolean(_) => false,
            Value::Placeholder(p) => !ordinary_placeholder(p),
            _ => true,
        };
        if replace {
            for text in literal_texts(&value.value) {
                self.state.scan(&text);
            }
            value.value = Value::Placeholder(self.state.literal());
        }
        ControlFlow::Continue(())
    }
}

/// The texts of a literal value worth scanning: its contents (and, for
/// `X'…'`, the decoded bytes; for `$tag$…$tag$`, the tag).
fn literal_texts(value: &Value) -> Vec<String> {
    match value {
        Value::Number(n, _) => vec![n.to_string()],
        Value::HexStringLiteral(h) => {
            let mut v = vec![h.clone()];
            v.extend(decode_hex(h));
            v
        }
        Value::DollarQuotedString(d) => {
            let mut v = vec![d.value.clone()];
            v.extend(d.tag.clone());
            v
        }
        Value::Null | Value::Boolean(_) => Vec::new(),
        Value::Placeholder(p) => vec![p.clone()],
        other => other.clone().into_string().into_iter().collect(),
    }
}

/// `X'…'` contents as text (lossy), when it is an even number of hex digits.
fn decode_hex(h: &str) -> Option<String> {
    let bytes = hex::decode(h.trim()).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// Whether `expr` joins strings (`a || b`, `concat(…)`).
fn is_concatenation(expr: &Expr) -> bool {
    match expr {
        Expr::BinaryOp { op: BinaryOperator::StringConcat, .. } => true,
        Expr::Function(f) => is_concat_function(f),
        _ => false,
    }
}

fn is_concat_function(f: &sqlparser::ast::Function) -> bool {
    matches!(f.name.0.last(), Some(ObjectNamePart::Identifier(id)) if id.value.eq_ignore_ascii_case("concat"))
}

/// The constant text of a literal, a literal concatenation, or a cast or
/// parenthesised form of one; `None` for anything else or when too deep or long.
fn folded_text(expr: &Expr, depth: usize) -> Option<String> {
    if depth > MAX_FOLD_DEPTH {
        return None;
    }
    let text = match expr {
        Expr::Value(v) => match &v.value {
            Value::Null | Value::Boolean(_) | Value::Placeholder(_) => return None,
            Value::HexStringLiteral(h) => decode_hex(h)?,
            other => literal_texts(other).into_iter().next()?,
        },
        Expr::Nested(e) => folded_text(e, depth + 1)?,
        Expr::Cast { expr, .. } => folded_text(expr, depth + 1)?,
        Expr::BinaryOp { left, op: BinaryOperator::StringConcat, right } => {
            let mut l = folded_text(left, depth + 1)?;
            l.push_str(&folded_text(right, depth + 1)?);
            l
        }
        Expr::Function(f) if is_concat_function(f) => {
            let FunctionArguments::List(list) = &f.args else { return None };
            let mut out = String::new();
            for arg in &list.args {
                let FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) = arg else { return None };
                out.push_str(&folded_text(e, depth + 1)?);
                if out.len() > MAX_FOLD_BYTES {
                    return None;
                }
            }
            out
        }
        _ => return None,
    };
    (text.len() <= MAX_FOLD_BYTES).then_some(text)
}

/// Whether an identifier is kept as written: ASCII letters, digits and `_`,
/// and nothing identifier-like in it.
fn ordinary_identifier(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') && !looks_sensitive(value)
}

/// Whether a placeholder the caller wrote is kept: `?`, `?N`/`$N` (up to 6
/// digits), or `:name`/`$name`/`@name` with an ordinary name that is not the
/// reserved `p<digits>`/`i<digits>`.
fn ordinary_placeholder(p: &str) -> bool {
    if p == "?" {
        return true;
    }
    let Some(first) = p.chars().next() else { return false };
    let rest = &p[first.len_utf8()..];
    let digits = !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit());
    match first {
        '?' | '$' if digits => rest.len() <= 6,
        ':' | '$' | '@' => ordinary_identifier(rest) && !reserved_name(rest),
        _ => false,
    }
}

/// `p<digits>` or `i<digits>`: the names of this module's placeholders.
fn reserved_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('p' | 'i')) && {
        let digits = chars.as_str();
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    }
}

/// The contents of a string-literal token, or `None` for other tokens.
fn literal_texts_of_token(token: &Token) -> Option<Vec<String>> {
    let texts = match token {
        Token::SingleQuotedString(s)
        | Token::DoubleQuotedString(s)
        | Token::TripleSingleQuotedString(s)
        | Token::TripleDoubleQuotedString(s)
        | Token::SingleQuotedByteStringLiteral(s)
        | Token::DoubleQuotedByteStringLiteral(s)
        | Token::TripleSingleQuotedByteStringLiteral(s)
        | Token::TripleDoubleQuotedByteStringLiteral(s)
        | Token::SingleQuotedRawStringLiteral(s)
        | Token::DoubleQuotedRawStringLiteral(s)
        | Token::TripleSingleQuotedRawStringLiteral(s)
        | Token::TripleDoubleQuotedRawStringLiteral(s)
        | Token::NationalStringLiteral(s)
        | Token::EscapedStringLiteral(s)
        | Token::UnicodeStringLiteral(s) => vec![s.clone()],
        Token::HexStringLiteral(h) => {
            let mut v = vec![h.clone()];
            v.extend(decode_hex(h));
            v
        }
        Token::DollarQuotedString(d) => {
            let mut v = vec![d.value.clone()];
            v.extend(d.tag.clone());
            v
        }
        Token::QuoteDelimitedStringLiteral(q) | Token::NationalQuoteDelimitedStringLiteral(q) => {
            vec![q.value.clone()]
        }
        _ => return None,
    };
    Some(texts)
}

/// Second pass, over the tokens of the rendered statement: identifiers that
/// are not ordinary, and any literal the tree walk did not reach (a string in
/// a statement option, a number in a type), are replaced; comments dropped.
fn rewrite_tokens(rendered: &str, state: &mut State<'_>) -> Option<String> {
    let tokens = Tokenizer::new(&GenericDialect {}, rendered).with_unescape(false).tokenize().ok()?;
    let mut out = String::with_capacity(rendered.len());
    for token in &tokens {
        match token {
            Token::EOF => {}
            Token::Word(w) => {
                if w.quote_style.is_none() && w.keyword != Keyword::NoKeyword {
                    out.push_str(&w.value);
                } else if ordinary_identifier(&w.value) {
                    match w.quote_style {
                        None => out.push_str(&w.value),
                        Some('"') => {
                            out.push('"');
                            out.push_str(&w.value);
                            out.push('"');
                        }
                        Some('`') => {
                            out.push('`');
                            out.push_str(&w.value);
                            out.push('`');
                        }
                        Some('[') => {
                            out.push('[');
                            out.push_str(&w.value);
                            out.push(']');
                        }
                        Some(_) => {
                            let p = state.identifier(&w.value);
                            out.push_str(&p);
                        }
                    }
                } else {
                    state.scan(&w.value);
                    let p = state.identifier(&w.value);
                    out.push_str(&p);
                }
            }
            Token::Number(n, _) => {
                if looks_sensitive(n) {
                    state.scan(n);
                    let p = state.literal();
                    out.push_str(&p);
                } else {
                    out.push_str(&token.to_string());
                }
            }
            Token::Placeholder(p) => {
                if ordinary_placeholder(p) {
                    out.push_str(p);
                } else {
                    state.scan(p);
                    let p = state.literal();
                    out.push_str(&p);
                }
            }
            Token::Whitespace(Whitespace::SingleLineComment { .. } | Whitespace::MultiLineComment(_)) => {
                out.push(' ');
            }
            Token::Char(c) if !c.is_ascii() => {
                // Not a token of SQL; never copied.
                let p = state.literal();
                out.push_str(&p);
            }
            other => match literal_texts_of_token(other) {
                Some(texts) => {
                    for t in &texts {
                        state.scan(t);
                    }
                    let p = state.literal();
                    out.push_str(&p);
                }
                None => out.push_str(&other.to_string()),
            },
        }
    }
    Some(out)
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn placeholder_rules() {
        for p in ["?", "?1", "$1", "$123456", ":name", "$name", "@name", ":p", ":pa1", ":ident"] {
            assert!(ordinary_placeholder(p), "{p}");
        }
        for p in ["$1234567", ":p1", ":i12", "$p1", ":13812345678", "$13812345678", ":姓名", "", "x", ":"] {
            assert!(!ordinary_placeholder(p), "{p}");
        }
    }

    #[test]
    fn identifier_rules() {
        for id in ["name", "credit_code", "t1", "col_20240101", "_x", "ABC"] {
            assert!(ordinary_identifier(id), "{id}");
        }
        for id in ["", "姓名", "a b", "a-b", "t_13812345678", "370202199001011234", "13812345678", "a\"b"] {
            assert!(!ordinary_identifier(id), "{id}");
        }
    }

    #[test]
    fn nesting_bound_counts_chains_not_lists() {
        let bound = |sql: &str| {
            let tokens = Tokenizer::new(&GenericDialect {}, sql).tokenize().expect("tokens");
            nesting_bound(&tokens)
        };
        let list = format!("SELECT a FROM t WHERE a IN ({})", vec!["1"; 5000].join(", "));
        assert!(bound(&list) < 10, "{}", bound(&list));
        let chain = format!("SELECT {}", vec!["1"; 5000].join(" + "));
        assert!(bound(&chain) > MAX_NORMALIZE_DEPTH);
        let parens = format!("SELECT {}1{}", "(".repeat(100), ")".repeat(100));
        assert!(bound(&parens) >= 100);
    }
}
