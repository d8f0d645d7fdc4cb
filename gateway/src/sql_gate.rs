//! The first thing a caller's SQL meets: size limits and "one read-only query".
//!
//! Only a single `SELECT`-style query (or `DESCRIBE <table>`) passes. `EXPLAIN` (which prints plans,
//! predicates and literals), DDL, DML, `COPY`, `SET`/`RESET`, `CREATE VIEW` and
//! everything else are refused here with a message naming what was sent,
//! before any planning happens.

use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::ast;

use crate::error::GatewayError;

/// Largest SQL text accepted, in bytes.
pub const MAX_SQL_BYTES: usize = 64 * 1024;

/// Parses `sql` and returns its single query statement.
pub fn parse_query(sql: &str) -> Result<Statement, GatewayError> {
    if sql.len() > MAX_SQL_BYTES {
        return Err(GatewayError::InvalidQuery(format!(
            "the SQL text is {} bytes; the limit is {MAX_SQL_BYTES}",
            sql.len()
        )));
    }
    if sql.trim().is_empty() {
        return Err(GatewayError::InvalidQuery("the SQL text is empty".to_string()));
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
        Statement::Statement(inner) if matches!(inner.as_ref(), ast::Statement::Query(_)) => Ok(statement),
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
            Ok(statement)
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
}
