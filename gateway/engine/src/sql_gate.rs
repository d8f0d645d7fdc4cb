//! The first thing a caller's SQL meets: size limits and "one read-only query".
//!
//! Only a single `SELECT`-style query (or `DESCRIBE <table>`) passes. `EXPLAIN` (which prints plans,
//! predicates and literals), DDL, DML, `COPY`, `SET`/`RESET`, `CREATE VIEW` and
//! everything else are refused here with a message naming what was sent,
//! before any planning happens.

use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::ast;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::GatewayError;

/// Largest SQL text accepted, in bytes.
pub const MAX_SQL_BYTES: usize = 64 * 1024;

/// Longest chain of operators a query may nest (see [`operator_depth`]).
/// DataFusion plans, optimises and evaluates expressions recursively, so a
/// left-deep `a OR b OR …`, `1 + 1 + …` or `UNION ALL` chain of thousands of
/// terms would exhaust a thread's stack; such a query is refused by name.
pub const MAX_OPERATOR_DEPTH: usize = 512;

/// Above this operator depth a query is planned on a thread with a large
/// stack rather than on the async worker that received it.
pub const SHALLOW_OPERATOR_DEPTH: usize = 64;

/// A query that passed the gate.
#[derive(Debug)]
pub struct Parsed {
    /// The single read-only statement.
    pub statement: Statement,
    /// Its operator depth (see [`operator_depth`]).
    pub depth: usize,
}

impl Parsed {
    /// Whether planning it needs more stack than an async worker has.
    pub fn needs_deep_stack(&self) -> bool {
        self.depth > SHALLOW_OPERATOR_DEPTH
    }
}

/// An upper bound on how deeply `sql`'s expressions and set operations nest:
/// over every path of parentheses, the sum of the chaining operators (`AND`,
/// `OR`, `+`, `-`, `*`, `/`, `%`, `||`, `CASE`, `UNION`, `INTERSECT`,
/// `EXCEPT`) written directly inside each enclosing pair. Comma-separated
/// lists (`IN (…)`, select lists) are flat and do not count. Computed from the
/// tokens, without building the tree whose depth it bounds.
pub fn operator_depth(sql: &str) -> Result<usize, GatewayError> {
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize()
        .map_err(|e| GatewayError::InvalidQuery(format!("cannot read the SQL text: {e}")))?;
    // One frame per open parenthesis: (operators directly inside, deepest child path).
    let mut frames: Vec<(usize, usize)> = vec![(0, 0)];
    for token in &tokens {
        match token {
            Token::LParen => frames.push((0, 0)),
            Token::RParen if frames.len() > 1 => {
                let (ops, child) = frames.pop().unwrap_or_default();
                if let Some(parent) = frames.last_mut() {
                    parent.1 = parent.1.max(ops + child);
                }
            }
            Token::Plus | Token::Minus | Token::Mul | Token::Div | Token::Mod | Token::StringConcat => {
                if let Some(top) = frames.last_mut() {
                    top.0 += 1;
                }
            }
            Token::Word(word)
                if matches!(
                    word.keyword,
                    Keyword::AND | Keyword::OR | Keyword::CASE | Keyword::UNION | Keyword::INTERSECT | Keyword::EXCEPT
                ) =>
            {
                if let Some(top) = frames.last_mut() {
                    top.0 += 1;
                }
            }
            _ => {}
        }
    }
    // Unclosed parentheses (the parser refuses them later) fold into their parents.
    let mut depth = 0;
    while let Some((ops, child)) = frames.pop() {
        depth = ops + child.max(depth);
    }
    Ok(depth)
}

/// Most parameters (`$1` … `$n`) one statement may take.
pub const MAX_PARAMETERS: usize = 256;

/// `sql` with its parameter placeholders in the one form the planner binds:
/// positional `$1`, `$2`, …. Each `?` (ODBC/JDBC/ADBC style) becomes the
/// next number, left to right in the text; `$<n>` stays as written. Named
/// placeholders (`$name`, `:name`, `@name`, `?3`) and a mix of `?` with
/// `$<n>` are refused by name. Returns the text and the highest parameter
/// number written (0: none). Only placeholder tokens are touched: a `?` in
/// a string or a comment is text.
pub fn number_parameters(sql: &str) -> Result<(String, usize), GatewayError> {
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize_with_location()
        .map_err(|e| GatewayError::InvalidQuery(format!("cannot read the SQL text: {e}")))?;
    let mut questions = Vec::new();
    let mut highest = 0usize;
    for token in &tokens {
        let Token::Placeholder(text) = &token.token else { continue };
        if text == "?" {
            questions.push(token.span.start);
            continue;
        }
        match text.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) {
            Some(n) if (1..=MAX_PARAMETERS).contains(&n) => highest = highest.max(n),
            Some(_) => {
                return Err(GatewayError::InvalidQuery(format!(
                    "parameter `{}`: parameters are numbered from $1 to ${MAX_PARAMETERS}",
                    text.chars().take(32).collect::<String>()
                )));
            }
            None => {
                return Err(GatewayError::InvalidQuery(format!(
                    "named parameter `{}`: only positional parameters ($1, $2, … or ?) are supported",
                    text.chars().take(32).collect::<String>()
                )));
            }
        }
    }
    if questions.is_empty() {
        return Ok((sql.to_string(), highest));
    }
    if highest > 0 {
        return Err(GatewayError::InvalidQuery("the statement mixes ? and $n parameters; use one form".to_string()));
    }
    if questions.len() > MAX_PARAMETERS {
        return Err(GatewayError::InvalidQuery(format!(
            "the statement has {} parameters; the limit is {MAX_PARAMETERS}",
            questions.len()
        )));
    }
    // Byte offsets of the `?` tokens (locations are 1-based lines and character columns).
    let mut line_starts = vec![0usize];
    line_starts.extend(sql.match_indices('\n').map(|(i, _)| i + 1));
    let offset = |line: u64, column: u64| -> Option<usize> {
        let start = *line_starts.get(usize::try_from(line).ok()?.checked_sub(1)?)?;
        let skip = usize::try_from(column).ok()?.checked_sub(1)?;
        sql[start..].char_indices().nth(skip).map(|(i, _)| start + i)
    };
    let mut out = String::with_capacity(sql.len() + questions.len() * 3);
    let mut copied = 0usize;
    for (n, at) in questions.iter().enumerate() {
        let Some(at) = offset(at.line, at.column).filter(|&at| sql[at..].starts_with('?')) else {
            return Err(GatewayError::InvalidQuery("cannot number the ? parameters of this statement".to_string()));
        };
        out.push_str(&sql[copied..at]);
        out.push_str(&format!("${}", n + 1));
        copied = at + 1;
    }
    out.push_str(&sql[copied..]);
    Ok((out, questions.len()))
}

/// Parses `sql` and returns its single query statement.
pub fn parse_query(sql: &str) -> Result<Parsed, GatewayError> {
    if sql.len() > MAX_SQL_BYTES {
        return Err(GatewayError::InvalidQuery(format!(
            "the SQL text is {} bytes; the limit is {MAX_SQL_BYTES}",
            sql.len()
        )));
    }
    if sql.trim().is_empty() {
        return Err(GatewayError::InvalidQuery("the SQL text is empty".to_string()));
    }
    let depth = operator_depth(sql)?;
    if depth > MAX_OPERATOR_DEPTH {
        return Err(GatewayError::InvalidQuery(format!(
            "the query chains {depth} operators (AND, OR, +, ||, UNION, …) inside one another; the limit is \
             {MAX_OPERATOR_DEPTH}: use IN (…) for long lists of alternatives, or split the query"
        )));
    }
    let mut statements = DFParser::parse_sql(sql).map_err(|e| GatewayError::InvalidQuery(e.strip_backtrace()))?;
    if statements.len() != 1 {
        return Err(GatewayError::InvalidQuery(format!(
            "send exactly one query per request (got {} statements)",
            statements.len()
        )));
    }
    let Some(statement) = statements.pop_front() else {
        return Err(GatewayError::InvalidQuery("the SQL text is empty".to_string()));
    };
    match &statement {
        Statement::Statement(inner) if matches!(inner.as_ref(), ast::Statement::Query(_)) => {
            Ok(Parsed { statement, depth })
        }
        // `DESCRIBE <table>` shows the caller's view of a table (granted columns only).
        Statement::Statement(inner)
            if matches!(
                inner.as_ref(),
                ast::Statement::ExplainTable {
                    describe_alias: ast::DescribeAlias::Describe | ast::DescribeAlias::Desc,
                    ..
                }
            ) =>
        {
            Ok(Parsed { statement, depth })
        }
        other => Err(GatewayError::InvalidQuery(format!(
            "only read-only queries (SELECT … / WITH …) are allowed; `{}` statements are refused",
            statement_kind(other)
        ))),
    }
}

fn statement_kind(statement: &Statement) -> String {
    match statement {
        Statement::Explain(_) => "EXPLAIN".to_string(),
        Statement::CopyTo(_) => "COPY".to_string(),
        Statement::CreateExternalTable(_) => "CREATE EXTERNAL TABLE".to_string(),
        Statement::Reset(_) => "RESET".to_string(),
        Statement::Statement(inner) => {
            let text = inner.to_string();
            let words: Vec<&str> = text.split_whitespace().take(2).collect();
            match words.as_slice() {
                [first, second] if matches!(first.to_uppercase().as_str(), "CREATE" | "DROP" | "ALTER") => {
                    format!("{} {}", first.to_uppercase(), second.to_uppercase())
                }
                [first, ..] => first.to_uppercase(),
                [] => "empty".to_string(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn question_marks_are_numbered_left_to_right_and_only_as_tokens() {
        let number = |sql: &str| number_parameters(sql).map_err(|e| e.to_string());
        assert_eq!(number("SELECT 1").as_ref().map(|(s, n)| (s.as_str(), *n)), Ok(("SELECT 1", 0)));
        let (text, n) = number("SELECT a FROM t WHERE b = ? AND c IN (?, ?) -- why?\n AND d = '?'").expect("ok");
        assert_eq!(text, "SELECT a FROM t WHERE b = $1 AND c IN ($2, $3) -- why?\n AND d = '?'");
        assert_eq!(n, 3);
        let (text, n) = number("SELECT '名字' AS \"列\", x\nFROM t\nWHERE y = ?").expect("ok");
        assert_eq!((text.as_str(), n), ("SELECT '名字' AS \"列\", x\nFROM t\nWHERE y = $1", 1));
        assert_eq!(number("SELECT $2, $1").map(|(_, n)| n), Ok(2));
        assert!(number("SELECT ?, $1").expect_err("mixed").contains("mixes"));
        assert!(number("SELECT $name").expect_err("named").contains("named parameter"));
        assert!(number("SELECT $0").expect_err("zero").contains("numbered from $1"));
    }

    #[test]
    fn queries_pass() {
        for sql in ["SELECT 1", "WITH t AS (SELECT 1 AS a) SELECT a FROM t", "select * from market.enterprises limit 3"]
        {
            parse_query(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }

    #[test]
    fn everything_else_is_refused_by_name() {
        for (sql, kind) in [
            ("EXPLAIN SELECT 1", "EXPLAIN"),
            ("EXPLAIN ANALYZE SELECT 1", "EXPLAIN"),
            ("CREATE VIEW v AS SELECT 1", "CREATE VIEW"),
            ("CREATE TABLE t AS SELECT 1", "CREATE TABLE"),
            ("DROP TABLE market.enterprises", "DROP TABLE"),
            ("INSERT INTO t VALUES (1)", "INSERT"),
            ("SET datafusion.execution.batch_size = 1", "SET"),
            ("COPY (SELECT 1) TO '/tmp/x.csv'", "COPY"),
        ] {
            let message = parse_query(sql).expect_err(sql).to_string();
            assert!(message.contains(&format!("`{kind}`")), "{sql}: {message}");
        }
        assert!(parse_query("SELECT 1; SELECT 2").expect_err("two").to_string().contains("exactly one"));
        assert!(parse_query("   ").is_err());
        let huge = format!("SELECT '{}'", "x".repeat(MAX_SQL_BYTES));
        assert!(parse_query(&huge).expect_err("huge").to_string().contains("limit"));
    }

    fn depth(sql: &str) -> usize {
        operator_depth(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    #[test]
    fn operator_depth_follows_chains_and_parentheses() {
        assert_eq!(depth("SELECT 1"), 0);
        assert_eq!(depth("SELECT a FROM t WHERE a = 1 AND b = 2 OR c = 3"), 2);
        // Commas are flat: a long IN list or select list does not nest.
        assert_eq!(depth(&format!("SELECT a FROM t WHERE a IN ({})", vec!["1"; 5000].join(", "))), 0);
        // Parentheses add the chains along a path, not across siblings.
        assert_eq!(depth("SELECT (1 + (2 + 3)) * 4"), 3);
        assert_eq!(depth("SELECT (1 + 2 + 3), (4 + 5 + 6)"), 2);
        // Words and strings that merely contain the operators do not count.
        assert_eq!(depth("SELECT 'a AND b + c' AS \"x OR y\", band FROM t"), 0);
        assert_eq!(depth("SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3"), 2);
    }

    #[test]
    fn long_chains_are_refused_by_name_before_parsing() {
        let ors = (0..600).map(|i| format!("a = {i}")).collect::<Vec<_>>().join(" OR ");
        let message = parse_query(&format!("SELECT a FROM t WHERE {ors}")).expect_err("600 ORs").to_string();
        assert!(message.contains("599 operators") && message.contains("512"), "{message}");
        // 513 terms are 512 operators: at the limit, answered; one more is over.
        let sum = vec!["1"; 513].join(" + ");
        assert_eq!(parse_query(&format!("SELECT {sum}")).map(|p| p.depth).ok(), Some(512));
        let parsed = parse_query(&format!("SELECT ({sum}) - 1")).map(|p| p.depth);
        assert!(parsed.is_err(), "513 terms plus one more operator is over: {parsed:?}");
        let parsed = parse_query(&format!("SELECT 1 - ({sum})")).map(|p| p.depth);
        assert!(parsed.is_err(), "nesting adds up along the path: {parsed:?}");
        let sum = vec!["1"; 500].join(" + ");
        let parsed = parse_query(&format!("SELECT {sum}")).expect("500 terms");
        assert_eq!(parsed.depth, 499);
        assert!(parsed.needs_deep_stack());
        assert!(!parse_query("SELECT 1 + 2").expect("short").needs_deep_stack());
    }
}
