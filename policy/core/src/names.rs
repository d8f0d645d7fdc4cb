//! Display names from the policy: purposes and organisations in Chinese and
//! English, kept in one place so every screen shows the same names.
//!
//! ```toml
//! [purposes.supervision]
//! zh = "监督管理"
//! en = "Supervision"
//!
//! [organizations."Qingdao Administration for Market Regulation"]
//! zh = "青岛市市场监督管理局"
//! en = "Qingdao Administration for Market Regulation"
//! ```
//!
//! Both registries are optional. When one is present, every principal's
//! purposes (or organisation) must be in it, so a misspelt purpose code or an
//! organisation spelt two ways is reported by `policy check`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A name in Simplified Chinese and in English.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisplayName {
    /// Simplified Chinese (简体中文).
    pub zh: String,
    /// English.
    pub en: String,
}

/// Longest accepted display name, in characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 200;

/// Reads a `[purposes]` or `[organizations]` table into names; each problem
/// is returned as `(key path, reason)`. `valid_key` checks a key (a purpose
/// code, an organisation name) and explains what is wrong with it.
pub(crate) fn read_registry(
    section: &str,
    value: toml::Value,
    valid_key: impl Fn(&str) -> Result<(), String>,
) -> (BTreeMap<String, DisplayName>, Vec<(String, String)>) {
    let mut names = BTreeMap::new();
    let mut problems = Vec::new();
    let toml::Value::Table(table) = value else {
        problems.push((section.to_owned(), format!("`{section}` must be a table ([{section}.<key>] zh = …, en = …)")));
        return (names, problems);
    };
    for (k, v) in table {
        let path = format!("{section}.{}", crate::policy::key(&k));
        if let Err(reason) = valid_key(&k) {
            problems.push((path.clone(), reason));
        }
        let name: DisplayName = match v.try_into() {
            Ok(n) => n,
            Err(e) => {
                let e: toml::de::Error = e;
                problems.push((path, format!("expected zh = \"…\", en = \"…\": {}", e.to_string().trim_end())));
                continue;
            }
        };
        for (lang, text) in [("zh", &name.zh), ("en", &name.en)] {
            if text.trim().is_empty() {
                problems.push((format!("{path}.{lang}"), "a display name must not be empty".to_owned()));
            } else if text.chars().count() > MAX_DISPLAY_NAME_CHARS || text.chars().any(char::is_control) {
                problems.push((
                    format!("{path}.{lang}"),
                    format!("a display name is one line of at most {MAX_DISPLAY_NAME_CHARS} characters"),
                ));
            }
        }
        names.insert(k, name);
    }
    (names, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_need_both_languages_and_no_other_key() {
        let value: toml::Value = toml::from_str(
            "[a]\nzh = \"甲\"\nen = \"A\"\n[b]\nzh = \"\"\nen = \"B\"\n[c]\nzh = \"丙\"\n[d]\nzh = \"丁\"\nen = \"D\"\nfr = \"D\"\n",
        )
        .expect("toml");
        let (names, problems) = read_registry("purposes", value, |_| Ok(()));
        assert_eq!(names.get("a"), Some(&DisplayName { zh: "甲".into(), en: "A".into() }));
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["purposes.b.zh", "purposes.c", "purposes.d"], "{problems:?}");
    }
}
