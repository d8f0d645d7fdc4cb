//! Names of catalog objects: the one rule for a table, column, schema or
//! source name that configuration, policy, consent artefacts and connectors
//! accept, and for a dataset name `<source>.<table>`.
//!
//! [`SourceName`] and [`DatasetName`] hold names that passed the rule, so
//! code that takes one never checks it again: a name from outside (a config
//! file, a policy, a caller's request, a consent artefact) is parsed once at
//! that edge. Both serialize as the plain string and validate when
//! deserialized, so files and records read and write the same bytes as a
//! `String` would.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

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

/// Longest part of a refused name repeated in an error message, in characters.
const MAX_SHOWN_LEN: usize = 80;

/// Which kind of name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameKind {
    /// A source (connector) name: [`SourceName`].
    Source,
    /// A dataset name: [`DatasetName`].
    Dataset,
}

/// Why a name was refused: it breaks the rule of its kind. The message
/// names the value (cut to 80 characters) and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Not a [`SourceName`].
    #[error(
        "`{0}` is not a source name: expected a lowercase identifier such as `court` \
         ([a-z_][a-z0-9_]*, at most 63 bytes)"
    )]
    Source(String),
    /// Not a [`DatasetName`].
    #[error(
        "`{0}` is not a dataset name: expected `source.table`, two lowercase identifiers \
         ([a-z_][a-z0-9_]*, at most 63 bytes each) joined by a dot"
    )]
    Dataset(String),
}

impl NameError {
    fn new(kind: NameKind, value: &str) -> Self {
        let shown = match value.char_indices().nth(MAX_SHOWN_LEN) {
            Some((end, _)) => format!("{}…", &value[..end]),
            None => value.to_owned(),
        };
        match kind {
            NameKind::Source => NameError::Source(shown),
            NameKind::Dataset => NameError::Dataset(shown),
        }
    }

    /// Which kind of name was refused.
    pub fn kind(&self) -> NameKind {
        match self {
            NameError::Source(_) => NameKind::Source,
            NameError::Dataset(_) => NameKind::Dataset,
        }
    }

    /// The refused value (its first 80 characters and `…` when longer).
    pub fn value(&self) -> &str {
        match self {
            NameError::Source(value) | NameError::Dataset(value) => value,
        }
    }
}

/// The name of a source: the connector that serves a department's data
/// (`market`, `court`). Always [`is_identifier`].
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceName(String);

impl SourceName {
    /// `name` as a source name, if it is [`is_identifier`].
    pub fn parse(name: &str) -> Result<Self, NameError> {
        if is_identifier(name) { Ok(SourceName(name.to_owned())) } else { Err(NameError::new(NameKind::Source, name)) }
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The name of a dataset, `<source>.<table>` (`market.enterprises`): both
/// parts [`is_identifier`], joined by one dot.
///
/// Equality, order and hash are those of the string, so a
/// `BTreeMap<DatasetName, _>` is looked up with a `&str` and sorts as a map
/// keyed by `String` would.
#[derive(Clone)]
pub struct DatasetName {
    /// The whole name.
    name: String,
    /// Byte index of the dot.
    dot: usize,
}

impl DatasetName {
    /// `name` as a dataset name, if it is [`is_dataset_name`].
    pub fn parse(name: &str) -> Result<Self, NameError> {
        match name.split_once('.') {
            Some((source, table)) if is_identifier(source) && is_identifier(table) => {
                Ok(DatasetName { name: name.to_owned(), dot: source.len() })
            }
            _ => Err(NameError::new(NameKind::Dataset, name)),
        }
    }

    /// The dataset `<source>.<table>` of two names.
    pub fn new(source: &SourceName, table: &str) -> Result<Self, NameError> {
        Self::parse(&format!("{source}.{table}"))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The part before the dot (`market` of `market.enterprises`).
    pub fn source(&self) -> &str {
        &self.name[..self.dot]
    }

    /// The part before the dot as a [`SourceName`].
    pub fn source_name(&self) -> SourceName {
        SourceName(self.source().to_owned())
    }

    /// The part after the dot (`enterprises` of `market.enterprises`).
    pub fn table(&self) -> &str {
        &self.name[self.dot + 1..]
    }
}

impl PartialEq for DatasetName {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for DatasetName {}

impl PartialOrd for DatasetName {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for DatasetName {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.name.cmp(&other.name)
    }
}

impl std::hash::Hash for DatasetName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

/// The string-like impls both name types share: parsing from text,
/// conversion to `String`, display, borrowing and comparison as `str`, and
/// serde as a plain string that validates when read.
macro_rules! name_impls {
    ($name:ident) => {
        impl FromStr for $name {
            type Err = NameError;

            fn from_str(s: &str) -> Result<Self, NameError> {
                Self::parse(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = NameError;

            fn try_from(s: &str) -> Result<Self, NameError> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = NameError;

            fn try_from(s: String) -> Result<Self, NameError> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(name: $name) -> String {
                name.as_str().to_owned()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        /// Debug as the string, so a value prints as a `String` field did.
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self.as_str(), f)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                self.as_str()
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.as_str()
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.as_str()
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                self == other.as_str()
            }
        }

        /// Serialized as the plain string: the same bytes as a `String`.
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        /// Read from a string, refused (with the [`NameError`] message) when
        /// the string breaks the rule.
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_impls!(SourceName);
name_impls!(DatasetName);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

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

    #[test]
    fn source_names_parse_by_the_identifier_rule() {
        for good in ["market", "_a", "court2", &"a".repeat(63)] {
            let name = SourceName::parse(good).unwrap();
            assert_eq!(name.as_str(), good);
            assert_eq!(name, good);
            assert_eq!(good.parse::<SourceName>().unwrap(), name);
            assert_eq!(SourceName::try_from(good).unwrap(), name);
            assert_eq!(name.to_string(), good);
            assert_eq!(format!("{name:?}"), format!("{good:?}"));
        }
        for bad in ["", "Market", "1a", "a-b", "market.enterprises", "名字", &"a".repeat(64)] {
            let error = SourceName::parse(bad).unwrap_err();
            assert_eq!(error.kind(), NameKind::Source);
            assert_eq!(error.value(), bad);
            assert!(error.to_string().starts_with(&format!("`{bad}` is not a source name")), "{error}");
        }
    }

    #[test]
    fn dataset_names_parse_by_the_dataset_rule() {
        let name = DatasetName::parse("market.enterprises").unwrap();
        assert_eq!(name.as_str(), "market.enterprises");
        assert_eq!(name.source(), "market");
        assert_eq!(name.source_name(), SourceName::parse("market").unwrap());
        assert_eq!(name.table(), "enterprises");
        assert_eq!(name, "market.enterprises");
        assert_eq!("market.enterprises", name);
        assert_eq!(name, "market.enterprises".to_string());
        assert_eq!("market.enterprises".parse::<DatasetName>().unwrap(), name);
        assert_eq!(DatasetName::new(&SourceName::parse("market").unwrap(), "enterprises").unwrap(), name);
        assert_eq!(String::from(name.clone()), "market.enterprises");
        assert_eq!(format!("{name:?}"), "\"market.enterprises\"");
        for bad in ["market", "market.", ".t", "a.b.c", "Market.t", "market.Enterprises", "a b.c", ""] {
            let error = DatasetName::parse(bad).unwrap_err();
            assert_eq!(error.kind(), NameKind::Dataset);
            assert_eq!(error.value(), bad);
            assert!(error.to_string().starts_with(&format!("`{bad}` is not a dataset name")), "{error}");
        }
        assert!(DatasetName::new(&SourceName::parse("market").unwrap(), "Bad").is_err());
    }

    #[test]
    fn a_long_bad_name_is_cut_in_the_message() {
        let long = "X".repeat(500);
        let error = DatasetName::parse(&long).unwrap_err();
        assert_eq!(error.value(), format!("{}…", "X".repeat(80)));
        assert!(error.to_string().len() < 300, "{error}");
    }

    #[test]
    fn maps_keyed_by_names_are_looked_up_with_str_and_sort_as_strings() {
        let mut map = std::collections::BTreeMap::new();
        for n in ["market.penalties", "court.dishonest_debtors", "market.enterprises"] {
            map.insert(DatasetName::parse(n).unwrap(), n.len());
        }
        assert_eq!(map.get("market.enterprises"), Some(&18));
        assert_eq!(map.get("market.absent"), None);
        let keys: Vec<&str> = map.keys().map(DatasetName::as_str).collect();
        assert_eq!(keys, ["court.dishonest_debtors", "market.enterprises", "market.penalties"]);
        let mut hashed = std::collections::HashSet::new();
        hashed.insert(SourceName::parse("court").unwrap());
        assert!(hashed.contains("court"));
    }

    #[test]
    fn serde_is_the_plain_string_and_validates() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Row {
            dataset: DatasetName,
            source: SourceName,
        }
        let row = Row {
            dataset: DatasetName::parse("court.dishonest_debtors").unwrap(),
            source: SourceName::parse("court").unwrap(),
        };
        let json = serde_json::to_string(&row).unwrap();
        assert_eq!(json, r#"{"dataset":"court.dishonest_debtors","source":"court"}"#);
        assert_eq!(serde_json::from_str::<Row>(&json).unwrap(), row);
        let toml_text = toml::to_string(&row).unwrap();
        assert_eq!(toml_text, "dataset = \"court.dishonest_debtors\"\nsource = \"court\"\n");
        assert_eq!(toml::from_str::<Row>(&toml_text).unwrap(), row);

        let error = serde_json::from_str::<Row>(r#"{"dataset":"Court.x","source":"court"}"#).unwrap_err().to_string();
        assert!(error.contains("`Court.x` is not a dataset name"), "{error}");
        let error = serde_json::from_str::<Row>(r#"{"dataset":"court.x","source":"co urt"}"#).unwrap_err().to_string();
        assert!(error.contains("`co urt` is not a source name"), "{error}");
        let error = toml::from_str::<Row>("dataset = \"court\"\nsource = \"court\"").unwrap_err().to_string();
        assert!(error.contains("`court` is not a dataset name"), "{error}");
    }
}
