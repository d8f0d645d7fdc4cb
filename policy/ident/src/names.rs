//! Names of catalog objects: the one rule for a table, column, schema or
//! source name that configuration, policy, consent artefacts and connectors
//! accept, and for a dataset name `<source>.<table>`.

/// Longest accepted name, in bytes: PostgreSQL's identifier limit, so a name
/// valid here is valid in every database a connector serves.
pub const MAX_IDENTIFIER_LEN: usize = 63;

/// A lowercase SQL identifier, `[a-z_][a-z0-9_]*`, at most
/// [`MAX_IDENTIFIER_LEN`] bytes: never needs quoting, means the same in every
/// dialect creditgate speaks.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= MAX_IDENTIFIER_LEN
        && chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// A dataset name: `<source>.<table>`, both [`is_identifier`].
pub fn is_dataset_name(name: &str) -> bool {
    name.split_once('.').is_some_and(|(source, table)| is_identifier(source) && is_identifier(table))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_dataset_names() {
        for good in ["a", "_a", "credit_code", "t1", &"a".repeat(63)] {
            assert!(is_identifier(good), "{good}");
        }
        for bad in ["", "1a", "A", "a-b", "a b", "名字", "a.b", &"a".repeat(64)] {
            assert!(!is_identifier(bad), "{bad}");
        }
        assert!(is_dataset_name("market.enterprises"));
        for bad in ["market", "market.", ".t", "a.b.c", "Market.t"] {
            assert!(!is_dataset_name(bad), "{bad}");
        }
    }
}
