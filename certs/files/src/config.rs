//! Config files: TOML read into a typed, `deny_unknown_fields` config with
//! every problem of the file reported together, not only the first.
//!
//! serde stops at the first unknown key, wrong type or missing key. To go
//! on, [`from_toml`] deserializes again and again: after each error it
//! records the problem with its key path (`tables[1].format`), then takes the
//! key out of the way — an unknown key is removed, a bad or missing value is
//! replaced by a stand-in of a type that fits — and tries once more, until
//! the file deserializes or nothing more can be learnt. The stand-ins never
//! reach a caller: with any problem the result is an error. A validation that
//! runs on the typed value afterwards adds its own problems with
//! [`Rejected::add_validation`], which leaves out those about stand-ins.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;

/// Upper bound on deserialization rounds (each learns one problem or fills one value).
const MAX_ROUNDS: usize = 128;

/// A config file that was not accepted.
#[derive(Debug)]
pub struct Rejected<T> {
    /// Every problem found, each `key: reason`, in file order as far as known.
    pub problems: Vec<String>,
    /// The value with stand-ins where the file was wrong, when one could be
    /// built: for running the file's semantic checks, never for use.
    pub partial: Option<T>,
    /// Key paths that hold stand-ins in `partial`.
    standins: Vec<String>,
}

impl<T> Rejected<T> {
    /// Adds the problems of a semantic validation of `partial`, except those
    /// about keys that hold stand-ins (already reported).
    pub fn add_validation(&mut self, problems: impl IntoIterator<Item = String>) {
        for problem in problems {
            let key = problem.split(": ").next().unwrap_or("");
            let about_standin = self.standins.iter().any(|s| key == s || key.starts_with(&format!("{s}.")));
            if !about_standin && !self.problems.contains(&problem) {
                self.problems.push(problem);
            }
        }
    }
}

/// Every problem of `file`, one per line: `FILE: N problem(s)` then `  key: reason`.
pub fn report(file: &std::path::Path, problems: &[String]) -> String {
    let n = problems.len();
    let mut out = format!("{}: {n} problem{}", file.display(), if n == 1 { "" } else { "s" });
    for problem in problems {
        out.push_str("\n  ");
        out.push_str(problem);
    }
    out
}

/// Reads a config file: the typed value, or every problem found in it —
/// serde's (unknown keys, types, missing keys) and those of `validate`
/// (semantic checks on the typed value, each `key: reason`) together,
/// formatted by [`report`]. `prepare` runs on the value before validation
/// (resolving relative paths, say).
pub fn load<T: DeserializeOwned>(
    file: &std::path::Path,
    prepare: impl Fn(&mut T),
    validate: impl Fn(&T) -> Vec<String>,
) -> Result<T, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: cannot read: {e}", file.display()))?;
    parse(&text, file, prepare, validate)
}

/// [`load`] for text already read: `origin` names it in the report.
pub fn parse<T: DeserializeOwned>(
    text: &str,
    origin: &std::path::Path,
    prepare: impl Fn(&mut T),
    validate: impl Fn(&T) -> Vec<String>,
) -> Result<T, String> {
    let problems = match from_toml::<T>(text) {
        Ok(mut value) => {
            prepare(&mut value);
            let problems = validate(&value);
            if problems.is_empty() {
                return Ok(value);
            }
            problems
        }
        Err(mut rejected) => {
            if let Some(partial) = rejected.partial.as_mut() {
                prepare(partial);
                let problems = validate(partial);
                rejected.add_validation(problems);
            }
            rejected.problems
        }
    };
    Err(report(origin, &problems))
}

/// Parses `text` as TOML into `T`, reporting every problem together.
pub fn from_toml<T: DeserializeOwned>(text: &str) -> Result<T, Rejected<T>> {
    let mut root: toml::Table = match text.parse::<toml::Table>() {
        Ok(table) => table,
        Err(e) => {
            let problem = format!("not valid TOML: {}", e.to_string().trim_end());
            return Err(Rejected { problems: vec![problem], partial: None, standins: Vec::new() });
        }
    };
    let mut problems: Vec<String> = Vec::new();
    // Key path → index of the next stand-in to try there.
    let mut standins: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..MAX_ROUNDS {
        let error = match serde_path_to_error::deserialize::<_, T>(toml::Value::Table(root.clone())) {
            Ok(value) if problems.is_empty() => return Ok(value),
            Ok(value) => {
                return Err(Rejected { problems, partial: Some(value), standins: standins.into_keys().collect() });
            }
            Err(error) => error,
        };
        let mut path = segments(error.path());
        let message = error.inner().message().trim().to_string();
        if let Some(field) = quoted_after(&message, "unknown field ") {
            if path.last().map(String::as_str) == Some(field.as_str()) {
                path.pop();
            }
            let key = join(&path, &field);
            let hint =
                suggestion(&field, &expected(&message)).map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default();
            problems.push(format!("{key}: unknown key{hint}; expected one of {}", expected_list(&message)));
            if !remove(&mut root, &path, &field) {
                break;
            }
            continue;
        }
        let covered = |key: &str, standins: &BTreeMap<String, usize>| {
            standins.keys().any(|s| key == s || key.starts_with(&format!("{s}.")) || key.starts_with(&format!("{s}[")))
        };
        let target = match quoted_after(&message, "missing field ") {
            Some(field) => {
                let key = join(&path, &field);
                if !covered(&key, &standins) {
                    problems.push(format!("{key}: missing (this key is required)"));
                }
                path.push(field);
                key
            }
            None => {
                let key = path.join(".").replace(".[", "[");
                if !covered(&key, &standins) {
                    let shown = if key.is_empty() { "(top level)" } else { key.as_str() };
                    problems.push(format!("{shown}: {message}"));
                }
                key
            }
        };
        let tried = standins.entry(target).or_insert(0);
        let Some(candidate) = standin_candidates(&message).into_iter().nth(*tried) else { break };
        *tried += 1;
        if !set(&mut root, &path, candidate) {
            break;
        }
    }
    Err(Rejected { problems, partial: None, standins: standins.into_keys().collect() })
}

/// Renders a serde path as key segments (`tables`, `[1]`, `format`).
fn segments(path: &serde_path_to_error::Path) -> Vec<String> {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|segment| match segment {
            Segment::Seq { index } => Some(format!("[{index}]")),
            Segment::Map { key } => Some(key.clone()),
            Segment::Enum { variant } => Some(variant.clone()),
            Segment::Unknown => None,
        })
        .collect()
}

/// `a.b[1]` + `c` → `a.b[1].c`.
fn join(path: &[String], field: &str) -> String {
    let mut all = path.to_vec();
    all.push(field.to_string());
    all.join(".").replace(".[", "[")
}

/// The first back-quoted word after `prefix` in `message`.
fn quoted_after(message: &str, prefix: &str) -> Option<String> {
    let rest = message.split_once(prefix)?.1.strip_prefix('`')?;
    Some(rest.split_once('`')?.0.to_string())
}

/// The back-quoted names after "expected" in a serde message.
fn expected(message: &str) -> Vec<String> {
    let Some((_, tail)) = message.split_once("expected") else { return Vec::new() };
    tail.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

fn expected_list(message: &str) -> String {
    let names = expected(message);
    if names.is_empty() { "(none)".to_string() } else { names.join(", ") }
}

/// The expected name closest to `got`, when it is a plausible typo.
fn suggestion(got: &str, expected: &[String]) -> Option<String> {
    expected
        .iter()
        .map(|e| (strsim::damerau_levenshtein(got, e), e))
        .filter(|(d, e)| *d <= 2.max(e.len() / 4) && *d < e.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, e)| e.clone())
}

/// Values to try in place of a wrong or missing one: first what the error
/// says it expected (an enum's first variant), then one of every TOML type.
fn standin_candidates(message: &str) -> Vec<toml::Value> {
    let mut out: Vec<toml::Value> = expected(message).into_iter().take(1).map(toml::Value::String).collect();
    out.extend([
        toml::Value::String(String::new()),
        toml::Value::Integer(1),
        toml::Value::Boolean(false),
        toml::Value::Float(1.0),
        toml::Value::Array(Vec::new()),
        toml::Value::Table(toml::Table::new()),
        toml::Value::String("127.0.0.1:0".to_string()),
    ]);
    out
}

/// The value at `path` (segments as from [`segments`]), mutably.
fn walk<'a>(root: &'a mut toml::Table, path: &[String]) -> Option<&'a mut toml::Value> {
    let (first, rest) = path.split_first()?;
    let mut at = root.get_mut(first)?;
    for segment in rest {
        at = match (segment.strip_prefix('[').and_then(|s| s.strip_suffix(']')), at) {
            (Some(index), toml::Value::Array(items)) => items.get_mut(index.parse::<usize>().ok()?)?,
            (None, toml::Value::Table(table)) => table.get_mut(segment)?,
            _ => return None,
        };
    }
    Some(at)
}

/// Removes key `field` of the table at `path`; false when there is none.
fn remove(root: &mut toml::Table, path: &[String], field: &str) -> bool {
    let table = if path.is_empty() {
        Some(root)
    } else {
        match walk(root, path) {
            Some(toml::Value::Table(table)) => Some(table),
            _ => None,
        }
    };
    table.is_some_and(|t| t.remove(field).is_some())
}

/// Sets the value at `path`, creating the last key; false when the parent is not there.
fn set(root: &mut toml::Table, path: &[String], value: toml::Value) -> bool {
    let Some((last, parent)) = path.split_last() else { return false };
    if let Some(index) = last.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        let Ok(index) = index.parse::<usize>() else { return false };
        return match walk(root, parent) {
            Some(toml::Value::Array(items)) if index < items.len() => {
                items[index] = value;
                true
            }
            _ => false,
        };
    }
    let table = if parent.is_empty() {
        Some(root)
    } else {
        match walk(root, parent) {
            Some(toml::Value::Table(table)) => Some(table),
            _ => None,
        }
    };
    match table {
        Some(table) => {
            table.insert(last.clone(), value);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Config {
        name: String,
        listen: SocketAddr,
        #[serde(default)]
        retries: u32,
        tables: Vec<Table>,
        server: Server,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Table {
        name: String,
        format: Format,
        #[serde(default)]
        columns: Vec<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Server {
        cert: String,
        #[serde(default)]
        timeout_ms: u64,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Format {
        Parquet,
        Csv,
    }

    const GOOD: &str = r#"
name = "market"
listen = "127.0.0.1:7101"
[[tables]]
name = "enterprises"
format = "parquet"
[server]
cert = "c.pem"
"#;

    fn problems(text: &str) -> Vec<String> {
        match from_toml::<Config>(text) {
            Ok(_) => Vec::new(),
            Err(rejected) => rejected.problems,
        }
    }

    #[test]
    fn a_good_file_parses() {
        let config = from_toml::<Config>(GOOD).expect("good");
        assert_eq!(config.name, "market");
    }

    #[test]
    fn three_mistakes_are_three_problems() {
        // A typo of a key (so the real key is missing), a wrong type, and an unknown variant.
        let text = GOOD
            .replace("listen = ", "lisen = ")
            .replace("[server]\ncert = \"c.pem\"", "[server]\ncert = \"c.pem\"\ntimeout_ms = \"soon\"")
            .replace("format = \"parquet\"", "format = \"parqet\"");
        let found = problems(&text);
        assert!(found.iter().any(|p| p.starts_with("lisen: unknown key (did you mean `listen`?)")), "{found:#?}");
        assert!(found.iter().any(|p| p == "listen: missing (this key is required)"), "{found:#?}");
        assert!(found.iter().any(|p| p.starts_with("server.timeout_ms: invalid type")), "{found:#?}");
        assert!(found.iter().any(|p| p.starts_with("tables[0].format: unknown variant `parqet`")), "{found:#?}");
        assert_eq!(found.len(), 4, "{found:#?}");
    }

    #[test]
    fn invalid_values_and_nested_unknown_keys_are_all_reported() {
        let text = GOOD.replace("127.0.0.1:7101", "not an address").replace(
            "format = \"parquet\"",
            "format = \"parquet\"\ncolums = [\"a\"]\n[[tables]]\nname = 7\nformat = \"csv\"",
        );
        let found = problems(&text);
        assert!(found.iter().any(|p| p.starts_with("listen: invalid socket address")), "{found:#?}");
        assert!(
            found.iter().any(|p| p.starts_with("tables[0].colums: unknown key (did you mean `columns`?)")),
            "{found:#?}"
        );
        assert!(found.iter().any(|p| p.starts_with("tables[1].name: invalid type")), "{found:#?}");
        assert_eq!(found.len(), 3, "{found:#?}");
    }

    #[test]
    fn a_missing_section_is_named() {
        let text = GOOD.replace("[server]\ncert = \"c.pem\"", "");
        assert_eq!(problems(&text), vec!["server: missing (this key is required)".to_string()]);
    }

    #[test]
    fn syntax_errors_stop_at_once_with_the_position() {
        let found = problems("name = \"unterminated\nlisten = 1");
        assert_eq!(found.len(), 1);
        assert!(found[0].starts_with("not valid TOML"), "{found:?}");
    }

    #[test]
    fn validation_problems_about_standins_are_left_out() {
        let text = GOOD.replace("name = \"market\"", "name = 5");
        let mut rejected = from_toml::<Config>(&text).expect_err("bad name");
        assert!(rejected.partial.is_some(), "a stand-in makes a partial value");
        rejected.add_validation(vec![
            "name: must be a lowercase identifier".to_string(),
            "tables[0].name: `enterprises` is declared twice".to_string(),
        ]);
        assert_eq!(rejected.problems.len(), 2, "{:#?}", rejected.problems);
        assert!(rejected.problems[0].starts_with("name: invalid type"));
        assert!(rejected.problems[1].starts_with("tables[0].name"));
    }
}
