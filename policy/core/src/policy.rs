//! Loading and validating a policy file, and answering questions about it.

use creditgate_ident::{DatasetName, is_identifier};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::NaiveDate;
use creditgate_certs::identity::{FINGERPRINT_PREFIX, Identity, SPIFFE_SCHEME};
use creditgate_ident::SubjectKind;
use serde::Deserialize;

use crate::access::Purpose;
use crate::error::{Issue, Issues, PolicyError};
use crate::grant::{DatasetGrant, GrantedColumn};
use crate::masks::{KeyedHashScope, Mask};
use crate::model::{
    ColumnClass, DEFAULT_RETENTION_YEARS, Dataset, Licence, NegativeRecords, PUBLIC_IDENTITY, Principal, RateLimit,
    Role, RowFilter, Rule, RuleSubject, SubjectKeys, default_mask,
};
use crate::names::{DisplayName, read_registry};
use crate::predicate;

/// Maximum size of a policy file, in bytes.
pub const MAX_POLICY_BYTES: u64 = 4 * 1024 * 1024;

/// Maximum retention period accepted, in years.
const MAX_RETENTION_YEARS: i64 = 100;

// ---------------------------------------------------------------------------
// TOML shapes (private; validated into the model types).

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PrincipalToml {
    name: String,
    identity: String,
    organization: String,
    role: String,
    purposes: Vec<String>,
    duty_codes: Option<Vec<String>>,
    licence: Option<LicenceToml>,
    rate_limit: Option<RateLimitToml>,
    daily_quota: Option<i64>,
    consent_oversight: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LicenceToml {
    number: String,
    /// A TOML date; a `"YYYY-MM-DD"` string is accepted too.
    expiry: toml::Value,
    scope: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitToml {
    per_second: i64,
    burst: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DatasetToml {
    columns: BTreeMap<String, String>,
    subject_keys: Option<SubjectKeysToml>,
    negative: Option<NegativeToml>,
    dispute_column: Option<String>,
    date_column: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubjectKeysToml {
    credit_code: Option<String>,
    resident_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NegativeToml {
    end_date: String,
    retention_years: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleToml {
    role: Option<String>,
    principal: Option<String>,
    dataset: Option<String>,
    datasets: Option<Vec<String>>,
    allow: Option<bool>,
    #[serde(default)]
    masks: BTreeMap<String, String>,
    columns: Option<Vec<String>>,
    #[serde(default)]
    row_filters: Vec<String>,
}

// ---------------------------------------------------------------------------

/// A validated policy: principals, datasets with classified columns, and
/// rules. Deny by default: a principal sees a dataset only if a rule allows it.
#[derive(Clone, Debug)]
pub struct Policy {
    origin: String,
    principals: Vec<Principal>,
    /// Agency principal name → the kinds of subject whose consents it
    /// oversees (`consent_oversight`); agencies without it are absent.
    consent_oversight: BTreeMap<String, Vec<SubjectKind>>,
    datasets: BTreeMap<DatasetName, Dataset>,
    rules: Vec<Rule>,
    /// Display names of purpose codes (`[purposes.<code>]`).
    purpose_names: BTreeMap<String, DisplayName>,
    /// Display names of organisations (`[organizations."<organization>"]`).
    organization_names: BTreeMap<String, DisplayName>,
    masking: Masking,
}

/// `[masking] min_k` when the policy does not say: a masked value a caller
/// may not link must be shared by at least this many people.
pub const DEFAULT_MIN_K: u32 = 5;

/// Largest `[masking] min_k` accepted.
pub const MAX_MIN_K: u32 = 1000;

/// The policy's `[masking]` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Masking {
    /// Allow masked personal/sensitive values to relate records (joins,
    /// `GROUP BY`, …; see [`crate::relate`]). Off by default: a partial mask
    /// works as a pseudonym. Switch it on only where every such mask is
    /// known not to re-identify.
    #[serde(default)]
    pub relate_masked_values: bool,
    /// Smallest group size (k) a masked column a principal may not link
    /// must have: every masked value shared by at least this many distinct
    /// people (`creditgate policy linkage` fails below it). 1 to
    /// [`MAX_MIN_K`]; default [`DEFAULT_MIN_K`].
    #[serde(default = "default_min_k")]
    pub min_k: u32,
    /// Whose key the keyed-hash mask uses: `organization` (default) or
    /// `principal`. One caller's pseudonyms never match another's.
    #[serde(default)]
    pub keyed_hash_scope: KeyedHashScope,
}

fn default_min_k() -> u32 {
    DEFAULT_MIN_K
}

impl Default for Masking {
    fn default() -> Self {
        Masking { relate_masked_values: false, min_k: DEFAULT_MIN_K, keyed_hash_scope: KeyedHashScope::default() }
    }
}

impl Masking {
    /// May a principal use a column masked with `mask` to relate records?
    /// Only keyed hashes (the designated way), or any mask when
    /// `relate_masked_values` is on.
    pub fn may_link(&self, mask: &Mask) -> bool {
        self.relate_masked_values || *mask == Mask::KeyedHash
    }
}

/// Collects issues with the policy's origin.
struct Collector {
    origin: String,
    list: Vec<Issue>,
}

impl Collector {
    fn push(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.list.push(Issue { origin: self.origin.clone(), key: key.into(), reason: reason.into() });
    }
}

/// A TOML key, quoted when it is not a bare key.
pub(crate) fn key(k: &str) -> String {
    if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        k.to_owned()
    } else {
        format!("{k:?}")
    }
}

/// A deserialization error on one line.
fn serde_message(e: &toml::de::Error) -> String {
    e.to_string().trim_end().replace('\n', " ")
}

fn is_code(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn list(items: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    items.into_iter().map(|s| s.as_ref().to_owned()).collect::<Vec<_>>().join(", ")
}

/// Normalises a configured identity for duplicate detection, or explains
/// why it is not one of the accepted forms.
fn normalize_identity(identity: &str) -> Result<String, String> {
    const FORMS: &str = "expected spiffe://<trust domain>/…, sha256:<64 hex digits>, \
                         o=<O>/cn=<CN>, or \"public\" for the public principal";
    if identity == PUBLIC_IDENTITY {
        return Ok(identity.to_owned());
    }
    if let Some(rest) = identity.strip_prefix(SPIFFE_SCHEME) {
        if rest.is_empty() || rest.chars().any(char::is_whitespace) {
            return Err(format!("bad SPIFFE identity \"{identity}\""));
        }
        return Ok(identity.to_owned());
    }
    if identity.get(..FINGERPRINT_PREFIX.len()).is_some_and(|p| p.eq_ignore_ascii_case(FINGERPRINT_PREFIX)) {
        let hex: String = identity[FINGERPRINT_PREFIX.len()..]
            .chars()
            .filter(|c| *c != ':')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok(format!("{FINGERPRINT_PREFIX}{hex}"));
        }
        return Err(format!("bad fingerprint identity \"{identity}\": {FORMS}"));
    }
    if identity.starts_with("o=") && identity.contains("/cn=") {
        return Ok(identity.to_owned());
    }
    Err(format!("unknown identity form \"{identity}\": {FORMS}"))
}

impl Policy {
    /// Reads and validates a policy file. Every mistake is reported at once,
    /// each with the file name, key path and reason.
    pub fn load(path: impl AsRef<Path>) -> Result<Policy, PolicyError> {
        let path = path.as_ref();
        let read_err = |source| PolicyError::Read { path: path.display().to_string(), source };
        let meta = std::fs::metadata(path).map_err(read_err)?;
        if meta.len() > MAX_POLICY_BYTES {
            return Err(read_err(std::io::Error::other(format!("file larger than {MAX_POLICY_BYTES} bytes"))));
        }
        let text = std::fs::read_to_string(path).map_err(read_err)?;
        let origin = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
        Policy::parse(&text, &origin)
    }

    /// Parses and validates policy text; `origin` names it in error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Policy, PolicyError> {
        let mut issues = Collector { origin: origin.to_owned(), list: Vec::new() };
        let table: toml::Table = match text.parse() {
            Ok(t) => t,
            Err(e) => {
                let e: toml::de::Error = e;
                issues.push("", format!("not valid TOML: {}", e.to_string().trim_end()));
                return Err(PolicyError::Invalid(Issues(issues.list)));
            }
        };
        let mut principals_raw = Vec::new();
        let mut datasets_raw = Vec::new();
        let mut rules_raw = Vec::new();
        let mut masking = Masking::default();
        let mut purpose_names = BTreeMap::new();
        let mut organization_names = BTreeMap::new();
        for (k, v) in table {
            match (k.as_str(), v) {
                ("principals", toml::Value::Array(items)) => principals_raw = items,
                ("datasets", toml::Value::Table(t)) => datasets_raw = t.into_iter().collect(),
                ("rules", toml::Value::Array(items)) => rules_raw = items,
                ("principals" | "rules", _) => {
                    issues.push(k.clone(), format!("`{k}` must be an array of tables ([[{k}]])"))
                }
                ("datasets", _) => issues.push(k, "`datasets` must be a table"),
                ("masking", value) => match value.try_into::<Masking>() {
                    Ok(parsed) if !(1..=MAX_MIN_K).contains(&parsed.min_k) => issues.push(
                        "masking.min_k",
                        format!("min_k must be 1 to {MAX_MIN_K} (people sharing a masked value), got {}", parsed.min_k),
                    ),
                    Ok(parsed) => masking = parsed,
                    Err(e) => issues.push("masking", e.to_string().trim_end().to_string()),
                },
                ("purposes", v) => {
                    let (names, problems) = read_registry("purposes", v, |code| {
                        if is_code(code) {
                            Ok(())
                        } else {
                            Err("purpose codes are lowercase letters, digits and _".into())
                        }
                    });
                    problems.into_iter().for_each(|(k, reason)| issues.push(k, reason));
                    purpose_names = names;
                }
                ("organizations", v) => {
                    let (names, problems) = read_registry("organizations", v, |name| {
                        if name.trim().is_empty() { Err("organisation names must not be empty".into()) } else { Ok(()) }
                    });
                    problems.into_iter().for_each(|(k, reason)| issues.push(k, reason));
                    organization_names = names;
                }
                (other, _) => issues.push(
                    key(other),
                    "unknown top-level key (expected principals, datasets, rules, purposes, organizations, masking)",
                ),
            }
        }

        let principals_listed = listed_names(&principals_raw);
        let datasets = validate_datasets(datasets_raw, &mut issues);
        let (principals, consent_oversight) = validate_principals(principals_raw, &datasets, &mut issues);
        let rules = validate_rules(rules_raw, &principals, &datasets, &mut issues);
        check_names_cover(&principals_listed, &purpose_names, &organization_names, &mut issues);

        if issues.list.is_empty() {
            Ok(Policy {
                origin: origin.to_owned(),
                principals,
                consent_oversight,
                datasets,
                rules,
                purpose_names,
                organization_names,
                masking,
            })
        } else {
            Err(PolicyError::Invalid(Issues(issues.list)))
        }
    }

    /// The `[masking]` settings.
    pub fn masking(&self) -> Masking {
        self.masking
    }

    /// The name the policy was loaded from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// All principals, in file order.
    pub fn principals(&self) -> &[Principal] {
        &self.principals
    }

    /// Display names of purpose codes (`[purposes.<code>]`; empty when the
    /// policy has no registry).
    pub fn purpose_names(&self) -> &BTreeMap<String, DisplayName> {
        &self.purpose_names
    }

    /// Display names of organisations, keyed by the `organization` of the
    /// principals (`[organizations."<organization>"]`; empty when the policy
    /// has no registry).
    pub fn organization_names(&self) -> &BTreeMap<String, DisplayName> {
        &self.organization_names
    }

    /// The principal with this name.
    pub fn principal(&self, name: &str) -> Option<&Principal> {
        self.principals.iter().find(|p| p.name == name)
    }

    /// The kinds of subject whose consents `principal` oversees: an agency
    /// whose statutory duty includes supervising consent-based access to
    /// those subjects' data (`consent_oversight` in the policy file). Such an
    /// agency may revoke a consent about a subject of these kinds on the
    /// subject's behalf. Empty for every other principal.
    pub fn consent_oversight(&self, principal: &Principal) -> &[SubjectKind] {
        match principal.role {
            Role::Agency => self.consent_oversight.get(&principal.name).map_or(&[], Vec::as_slice),
            _ => &[],
        }
    }

    /// The agency principals that oversee consents about subjects of `kind`,
    /// in file order.
    pub fn consent_overseers(&self, kind: SubjectKind) -> impl Iterator<Item = &Principal> {
        self.principals.iter().filter(move |p| self.consent_oversight(p).contains(&kind))
    }

    /// All datasets, by name.
    pub fn datasets(&self) -> &BTreeMap<DatasetName, Dataset> {
        &self.datasets
    }

    /// The dataset with this name.
    pub fn dataset(&self, name: &str) -> Option<&Dataset> {
        self.datasets.get(name)
    }

    /// All rules (one per dataset), in file order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The principal whose configured identity matches the verified
    /// certificate identity (see [`Identity::matches`]). `None` when no
    /// principal matches, and also when several do (an ambiguous policy must
    /// not silently pick one; a warning is logged). The public principal is
    /// never returned here: see [`Policy::public_principal`].
    pub fn principal_for(&self, identity: &Identity) -> Option<&Principal> {
        let mut found =
            self.principals.iter().filter(|p| p.identity != PUBLIC_IDENTITY && identity.matches(&p.identity));
        let first = found.next()?;
        if let Some(second) = found.next() {
            tracing::warn!(
                client.identity = %identity.name(),
                principal.first = %first.name,
                principal.second = %second.name,
                "certificate matches several principals; refusing"
            );
            return None;
        }
        Some(first)
    }

    /// The principal of the public disclosure listener (identity `public`).
    pub fn public_principal(&self) -> Option<&Principal> {
        self.principals.iter().find(|p| p.identity == PUBLIC_IDENTITY && p.role == Role::Public)
    }

    /// The rule that decides `principal`'s access to `dataset`: its principal
    /// rule if any, else its role rule.
    fn deciding_rule(&self, principal: &Principal, dataset: &str) -> Option<&Rule> {
        let for_subject = |want: &RuleSubject| self.rules.iter().find(|r| r.dataset == dataset && &r.subject == want);
        for_subject(&RuleSubject::Principal(principal.name.clone()))
            .or_else(|| for_subject(&RuleSubject::Role(principal.role)))
    }

    /// `principal`'s grant on one dataset, if it has one.
    ///
    /// Deny by default: no rule, a deny rule, or (for credit agencies) a
    /// dataset outside the licence scope give `None`. The dataset's dispute
    /// column is always granted, unmasked.
    pub fn grant_for(&self, principal: &Principal, dataset: &str) -> Option<DatasetGrant> {
        let ds = self.datasets.get(dataset)?;
        let rule = self.deciding_rule(principal, dataset)?;
        if !rule.allow || principal.role == Role::PrivacyOfficer {
            return None;
        }
        if principal.role == Role::CreditAgency {
            let in_scope = principal.licence.as_ref().is_some_and(|l| l.scope.iter().any(|s| s == dataset));
            if !in_scope {
                return None;
            }
        }
        let mut names: BTreeSet<&str> = match &rule.columns {
            Some(cols) => cols.iter().map(String::as_str).collect(),
            None => ds.columns.keys().map(String::as_str).collect(),
        };
        if let Some(d) = &ds.dispute_column {
            names.insert(d);
        }
        let columns = names
            .into_iter()
            .filter_map(|name| {
                let class = *ds.columns.get(name)?;
                let mask = if ds.dispute_column.as_deref() == Some(name) {
                    Mask::None
                } else {
                    rule.masks.get(name).copied().unwrap_or_else(|| default_mask(class, ds.subject_keys.contains(name)))
                };
                Some(GrantedColumn { name: name.to_owned(), class, mask })
            })
            .collect();
        Some(DatasetGrant {
            dataset: ds.name.clone(),
            columns,
            row_filters: rule.row_filters.clone(),
            negative: ds.negative.clone(),
            dispute_column: ds.dispute_column.clone(),
            subject_keys: ds.subject_keys.clone(),
            date_column: ds.date_column.clone(),
        })
    }

    /// Every dataset `principal` may use, with its grant, sorted by dataset.
    pub fn grants_for(&self, principal: &Principal) -> Vec<DatasetGrant> {
        self.datasets.keys().filter_map(|d| self.grant_for(principal, d.as_str())).collect()
    }

    /// Checks that `purpose` (exactly as received: nothing is trimmed) is a
    /// well-formed purpose code allowed for `principal`.
    pub fn check_purpose(&self, principal: &Principal, purpose: Option<&str>) -> Result<Purpose, PolicyError> {
        let Some(raw) = purpose else {
            return Err(PolicyError::PurposeMissing {
                principal: principal.name.clone(),
                allowed: principal.purposes.clone(),
            });
        };
        let purpose = Purpose::parse(raw)?;
        if principal.purposes.iter().any(|p| p == purpose.as_str()) {
            return Ok(purpose);
        }
        Err(PolicyError::PurposeNotAllowed {
            principal: principal.name.clone(),
            purpose: purpose.as_str().to_string(),
            allowed: principal.purposes.clone(),
        })
    }

    /// Checks that a credit agency's licence is valid on `today` (its last
    /// day included). Other principals have no licence and always pass.
    pub fn check_licence(&self, principal: &Principal, today: NaiveDate) -> Result<(), PolicyError> {
        match &principal.licence {
            Some(l) if l.expiry < today => Err(PolicyError::LicenceExpired {
                principal: principal.name.clone(),
                number: l.number.clone(),
                expiry: l.expiry,
            }),
            _ => Ok(()),
        }
    }
}

// ---------------------------------------------------------------------------
// Validation.

/// What each `[[principals]]` entry lists (by index): its purposes and its
/// organisation, read leniently (malformed entries are reported elsewhere).
fn listed_names(raw: &[toml::Value]) -> Vec<(Vec<String>, Option<String>)> {
    raw.iter()
        .map(|p| {
            let purposes = p
                .get("purposes")
                .and_then(toml::Value::as_array)
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            (purposes, p.get("organization").and_then(toml::Value::as_str).map(str::to_owned))
        })
        .collect()
}

/// With a `[purposes]` (or `[organizations]`) registry, every principal's
/// purposes (organisation) must be in it: a code missing there is usually a
/// typo, an organisation missing there one spelt two ways.
fn check_names_cover(
    listed: &[(Vec<String>, Option<String>)],
    purposes: &BTreeMap<String, DisplayName>,
    organizations: &BTreeMap<String, DisplayName>,
    issues: &mut Collector,
) {
    for (i, (codes, organization)) in listed.iter().enumerate() {
        if !purposes.is_empty() {
            for (j, code) in codes.iter().enumerate() {
                if is_code(code) && !purposes.contains_key(code) {
                    let hint = purposes
                        .keys()
                        .find(|known| crate::lint::is_near(code, known))
                        .map(|known| format!("did you mean `{known}`? "))
                        .unwrap_or_default();
                    issues.push(
                        format!("principals[{i}].purposes[{j}]"),
                        format!(
                            "purpose \"{code}\" has no [purposes.{code}] entry ({hint}known: {})",
                            list(purposes.keys())
                        ),
                    );
                }
            }
        }
        if let Some(org) = organization
            && !organizations.is_empty()
            && !org.trim().is_empty()
            && !organizations.contains_key(org)
        {
            issues.push(
                format!("principals[{i}].organization"),
                format!("organisation \"{org}\" has no [organizations.{}] entry", key(org)),
            );
        }
    }
}

fn validate_datasets(raw: Vec<(String, toml::Value)>, issues: &mut Collector) -> BTreeMap<DatasetName, Dataset> {
    let mut out = BTreeMap::new();
    for (name, value) in raw {
        let path = format!("datasets.{}", key(&name));
        let valid_name = DatasetName::parse(&name).ok();
        if valid_name.is_none() {
            issues.push(path.clone(), "dataset names are \"<source>.<table>\" (lowercase letters, digits, _)");
        }
        let raw: DatasetToml = match value.try_into() {
            Ok(d) => d,
            Err(e) => {
                issues.push(path, serde_message(&e));
                continue;
            }
        };
        let mut columns = BTreeMap::new();
        if raw.columns.is_empty() {
            issues.push(format!("{path}.columns"), "a dataset needs at least one column");
        }
        for (col, class) in &raw.columns {
            let cpath = format!("{path}.columns.{}", key(col));
            if !is_identifier(col) {
                issues.push(cpath.clone(), "column names are lowercase letters, digits and _");
            }
            match class.parse::<ColumnClass>() {
                Ok(c) => {
                    columns.insert(col.clone(), c);
                }
                Err(e) => issues.push(cpath, e),
            }
        }
        let mut check_col = |k: String, col: &str| {
            if !raw.columns.contains_key(col) {
                issues.push(k, format!("unknown column \"{col}\" in dataset \"{name}\""));
            }
        };
        let subject_keys = match raw.subject_keys {
            Some(sk) => {
                if let Some(c) = &sk.credit_code {
                    check_col(format!("{path}.subject_keys.credit_code"), c);
                }
                if let Some(c) = &sk.resident_id {
                    check_col(format!("{path}.subject_keys.resident_id"), c);
                }
                SubjectKeys { credit_code: sk.credit_code, resident_id: sk.resident_id }
            }
            None => SubjectKeys::default(),
        };
        if let Some(d) = &raw.dispute_column {
            check_col(format!("{path}.dispute_column"), d);
        }
        let negative = match raw.negative {
            Some(n) => {
                check_col(format!("{path}.negative.end_date"), &n.end_date);
                let years = n.retention_years.unwrap_or(i64::from(DEFAULT_RETENTION_YEARS));
                let years = match u32::try_from(years) {
                    Ok(y) if (1..=MAX_RETENTION_YEARS).contains(&i64::from(y)) => y,
                    _ => {
                        issues.push(
                            format!("{path}.negative.retention_years"),
                            format!("retention must be 1 to {MAX_RETENTION_YEARS} years, got {years}"),
                        );
                        DEFAULT_RETENTION_YEARS
                    }
                };
                Some(NegativeRecords { end_date: n.end_date, retention_years: years })
            }
            None => None,
        };
        if let Some(d) = &raw.date_column {
            let dpath = format!("{path}.date_column");
            if subject_keys.contains(d) {
                issues.push(dpath, format!("\"{d}\" is a subject key of \"{name}\", not the date of its records"));
            } else if raw.dispute_column.as_deref() == Some(d.as_str()) {
                issues.push(dpath, format!("\"{d}\" is the dispute flag of \"{name}\", not the date of its records"));
            } else if !raw.columns.contains_key(d) {
                issues.push(dpath, format!("unknown column \"{d}\" in dataset \"{name}\""));
            }
        }
        // A dataset with a bad name was reported above; its body is checked all the same.
        let Some(name) = valid_name else { continue };
        out.insert(
            name.clone(),
            Dataset {
                name,
                columns,
                subject_keys,
                negative,
                dispute_column: raw.dispute_column,
                date_column: raw.date_column,
            },
        );
    }
    out
}

fn validate_principals(
    raw: Vec<toml::Value>,
    datasets: &BTreeMap<DatasetName, Dataset>,
    issues: &mut Collector,
) -> (Vec<Principal>, BTreeMap<String, Vec<SubjectKind>>) {
    let mut out: Vec<Principal> = Vec::new();
    let mut oversight_of: BTreeMap<String, Vec<SubjectKind>> = BTreeMap::new();
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    let mut identities: BTreeMap<String, usize> = BTreeMap::new();
    for (i, value) in raw.into_iter().enumerate() {
        let path = format!("principals[{i}]");
        let raw: PrincipalToml = match value.try_into() {
            Ok(p) => p,
            Err(e) => {
                issues.push(path, serde_message(&e));
                continue;
            }
        };
        let mut ok = true;
        let mut bad = |k: &str, reason: String| {
            issues.push(format!("{path}.{k}"), reason);
            ok = false;
        };

        if raw.name.trim().is_empty() || raw.name.chars().any(char::is_whitespace) {
            bad("name", "principal names are non-empty and contain no spaces".to_owned());
        } else if let Some(first) = names.get(&raw.name) {
            bad("name", format!("duplicate principal name \"{}\" (also principals[{first}])", raw.name));
        } else {
            names.insert(raw.name.clone(), i);
        }

        match normalize_identity(&raw.identity) {
            Ok(norm) => {
                if let Some(first) = identities.get(&norm) {
                    bad(
                        "identity",
                        format!("duplicate principal identity \"{}\" (also principals[{first}])", raw.identity),
                    );
                } else {
                    identities.insert(norm, i);
                }
            }
            Err(e) => bad("identity", e),
        }

        if raw.organization.trim().is_empty() {
            bad("organization", "organization must not be empty".to_owned());
        }

        let role = match raw.role.parse::<Role>() {
            Ok(r) => Some(r),
            Err(e) => {
                bad("role", e);
                None
            }
        };

        if raw.purposes.is_empty() {
            bad("purposes", "purposes must not be empty: a principal without purposes could never query".to_owned());
        }
        for (j, p) in raw.purposes.iter().enumerate() {
            if !is_code(p) {
                bad(&format!("purposes[{j}]"), format!("bad purpose code \"{p}\" (lowercase letters, digits, _)"));
            }
        }

        let duty_codes = raw.duty_codes.unwrap_or_default();
        for (j, d) in duty_codes.iter().enumerate() {
            if !is_code(d) {
                bad(&format!("duty_codes[{j}]"), format!("bad duty code \"{d}\" (lowercase letters, digits, _)"));
            }
        }
        match role {
            Some(Role::Agency) if duty_codes.is_empty() => {
                bad("duty_codes", "an agency needs its statutory duty codes (its legal basis)".to_owned())
            }
            Some(r) if r != Role::Agency && !duty_codes.is_empty() => {
                bad("duty_codes", format!("duty codes are for agencies, not role {r}"))
            }
            _ => {}
        }
        if raw.identity == PUBLIC_IDENTITY && role.is_some_and(|r| r != Role::Public) {
            bad("identity", "identity \"public\" is reserved for a principal of role public".to_owned());
        }
        if role == Some(Role::Public) && raw.identity != PUBLIC_IDENTITY {
            bad("identity", "a principal of role public has identity \"public\"".to_owned());
        }

        let licence = match (role, raw.licence) {
            (Some(Role::CreditAgency), None) => {
                bad("licence", "a credit agency needs a licence = { number, expiry, scope }".to_owned());
                None
            }
            (Some(r), Some(_)) if r != Role::CreditAgency => {
                bad("licence", format!("only credit agencies have a licence, not role {r}"));
                None
            }
            (_, Some(l)) => {
                if l.number.trim().is_empty() {
                    bad("licence.number", "licence number must not be empty".to_owned());
                }
                let expiry = match &l.expiry {
                    toml::Value::Datetime(dt) => match (dt.date, dt.time, dt.offset) {
                        (Some(d), None, None) => {
                            NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day))
                        }
                        _ => None,
                    },
                    toml::Value::String(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d").ok(),
                    _ => None,
                };
                if expiry.is_none() {
                    bad("licence.expiry", format!("expected a date (YYYY-MM-DD), got {}", l.expiry));
                }
                if l.scope.is_empty() {
                    bad("licence.scope", "licence scope must name at least one dataset".to_owned());
                }
                for (j, s) in l.scope.iter().enumerate() {
                    if !datasets.contains_key(s.as_str()) {
                        bad(&format!("licence.scope[{j}]"), format!("unknown dataset \"{s}\""));
                    }
                }
                let scope = l.scope.iter().filter_map(|s| datasets.get(s.as_str()).map(|d| d.name.clone())).collect();
                expiry.map(|expiry| Licence { number: l.number, expiry, scope })
            }
            (_, None) => None,
        };

        let rate_limit = raw.rate_limit.and_then(|r| match (u32::try_from(r.per_second), u32::try_from(r.burst)) {
            (Ok(per_second), Ok(burst)) if per_second > 0 && burst > 0 => Some(RateLimit { per_second, burst }),
            _ => {
                bad("rate_limit", "per_second and burst must be positive integers".to_owned());
                None
            }
        });
        let daily_quota = raw.daily_quota.and_then(|q| match u64::try_from(q) {
            Ok(q) if q > 0 => Some(q),
            _ => {
                bad("daily_quota", format!("daily_quota must be a positive integer, got {q}"));
                None
            }
        });

        let mut oversight: Vec<SubjectKind> = Vec::new();
        match (role, raw.consent_oversight) {
            (_, None) => {}
            (Some(r), Some(_)) if r != Role::Agency => {
                bad("consent_oversight", format!("consent oversight is a statutory duty of agencies, not of role {r}"))
            }
            (_, Some(kinds)) => {
                if kinds.is_empty() {
                    bad(
                        "consent_oversight",
                        "name the subject kinds whose consents the agency oversees (credit_code, resident_id), or \
                         leave the key out"
                            .to_owned(),
                    );
                }
                for (j, k) in kinds.iter().enumerate() {
                    let kind = match k.as_str() {
                        "credit_code" => SubjectKind::CreditCode,
                        "resident_id" => SubjectKind::ResidentId,
                        other => {
                            bad(
                                &format!("consent_oversight[{j}]"),
                                format!("unknown subject kind \"{other}\" (expected credit_code or resident_id)"),
                            );
                            continue;
                        }
                    };
                    if oversight.contains(&kind) {
                        bad(&format!("consent_oversight[{j}]"), format!("\"{k}\" is listed twice"));
                    } else {
                        oversight.push(kind);
                    }
                }
            }
        }

        if let (true, Some(role)) = (ok, role) {
            if !oversight.is_empty() {
                oversight_of.insert(raw.name.clone(), oversight);
            }
            out.push(Principal {
                name: raw.name,
                identity: raw.identity,
                organization: raw.organization,
                role,
                purposes: raw.purposes,
                duty_codes,
                licence,
                rate_limit,
                daily_quota,
            });
        }
    }
    (out, oversight_of)
}

fn validate_rules(
    raw: Vec<toml::Value>,
    principals: &[Principal],
    datasets: &BTreeMap<DatasetName, Dataset>,
    issues: &mut Collector,
) -> Vec<Rule> {
    let mut out: Vec<Rule> = Vec::new();
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (i, value) in raw.into_iter().enumerate() {
        let path = format!("rules[{i}]");
        let raw: RuleToml = match value.try_into() {
            Ok(r) => r,
            Err(e) => {
                issues.push(path, serde_message(&e));
                continue;
            }
        };
        let mut ok = true;

        // Whom the rule is for, and the role that decides what it may grant.
        let (subject, role) = match (&raw.role, &raw.principal) {
            (None, None) => {
                issues.push(path.clone(), "a rule needs `role` or `principal`");
                (None, None)
            }
            (Some(_), Some(_)) => {
                issues.push(path.clone(), "a rule has either `role` or `principal`, not both");
                (None, None)
            }
            (Some(r), None) => match r.parse::<Role>() {
                Ok(role) => (Some(RuleSubject::Role(role)), Some(role)),
                Err(e) => {
                    issues.push(format!("{path}.role"), e);
                    (None, None)
                }
            },
            (None, Some(p)) => match principals.iter().find(|x| &x.name == p) {
                Some(found) => (Some(RuleSubject::Principal(p.clone())), Some(found.role)),
                None => {
                    issues.push(format!("{path}.principal"), format!("unknown principal \"{p}\""));
                    (None, None)
                }
            },
        };
        ok &= subject.is_some();

        let targets: Vec<(String, String)> = match (raw.dataset, raw.datasets) {
            (Some(d), None) => vec![(format!("{path}.dataset"), d)],
            (None, Some(ds)) => {
                if ds.is_empty() {
                    issues.push(format!("{path}.datasets"), "`datasets` must not be empty");
                }
                ds.into_iter().enumerate().map(|(j, d)| (format!("{path}.datasets[{j}]"), d)).collect()
            }
            (None, None) => {
                issues.push(path.clone(), "a rule needs `dataset` (or `datasets = [...]`)");
                Vec::new()
            }
            (Some(_), Some(_)) => {
                issues.push(path.clone(), "a rule has either `dataset` or `datasets`, not both");
                Vec::new()
            }
        };

        let allow = raw.allow.unwrap_or(true);
        if !allow && (!raw.masks.is_empty() || raw.columns.is_some() || !raw.row_filters.is_empty()) {
            issues.push(path.clone(), "a deny rule (allow = false) takes no columns, masks or row_filters");
            ok = false;
        }
        if allow && role == Some(Role::PrivacyOfficer) {
            issues.push(
                path.clone(),
                "privacy officers see the audit log, not credit data: a rule cannot allow them a dataset",
            );
            ok = false;
        }

        // Masks parse once, independently of the dataset.
        let mut masks = BTreeMap::new();
        for (col, spec) in &raw.masks {
            match spec.parse::<Mask>() {
                Ok(m) => {
                    masks.insert(col.clone(), m);
                }
                Err(e) => {
                    issues.push(format!("{path}.masks.{}", key(col)), e.to_string());
                    ok = false;
                }
            }
        }

        for (dpath, dataset) in targets {
            let Some(ds) = datasets.get(dataset.as_str()) else {
                issues.push(dpath, format!("unknown dataset \"{dataset}\" (known: {})", list(datasets.keys())));
                ok = false;
                continue;
            };
            let in_ds = |n: &str| ds.columns.contains_key(n);
            let unknown_col = |c: &str| format!("unknown column \"{c}\" in dataset \"{dataset}\"");
            let mut rule_ok = ok;

            if let Some(cols) = &raw.columns {
                let mut dup = BTreeSet::new();
                for (j, c) in cols.iter().enumerate() {
                    if !in_ds(c) {
                        issues.push(format!("{path}.columns[{j}]"), unknown_col(c));
                        rule_ok = false;
                    } else if !dup.insert(c.as_str()) {
                        issues.push(format!("{path}.columns[{j}]"), format!("column \"{c}\" listed twice"));
                    }
                }
            }
            for (col, mask) in &masks {
                let mpath = format!("{path}.masks.{}", key(col));
                if !in_ds(col) {
                    issues.push(mpath, unknown_col(col));
                    rule_ok = false;
                    continue;
                }
                let granted = raw.columns.as_ref().is_none_or(|cs| cs.iter().any(|c| c == col));
                if !granted && ds.dispute_column.as_deref() != Some(col.as_str()) {
                    issues.push(mpath.clone(), format!("column \"{col}\" has a mask but is not in `columns`"));
                    rule_ok = false;
                }
                if ds.dispute_column.as_deref() == Some(col.as_str()) && *mask != Mask::None {
                    issues.push(
                        mpath,
                        format!("\"{col}\" is the dispute flag of \"{dataset}\": it is always shown unmasked"),
                    );
                    rule_ok = false;
                }
            }
            if allow && role == Some(Role::Public) {
                let granted: Vec<&String> = match &raw.columns {
                    Some(cs) => cs.iter().collect(),
                    None => ds.columns.keys().collect(),
                };
                for c in granted {
                    if let Some(class) = ds.columns.get(c)
                        && *class != ColumnClass::Public
                    {
                        issues.push(
                            format!("{path}.columns"),
                            format!("the public role sees public columns only; \"{c}\" of \"{dataset}\" is {class}"),
                        );
                        rule_ok = false;
                    }
                }
            }

            let mut row_filters = Vec::new();
            for (j, sql) in raw.row_filters.iter().enumerate() {
                match predicate::compile(sql, &ds.columns) {
                    Ok(expr) => row_filters.push(RowFilter { sql: sql.clone(), expr }),
                    Err(e) => {
                        issues.push(format!("{path}.row_filters[{j}]"), e);
                        rule_ok = false;
                    }
                }
            }

            let Some(subject) = subject.clone() else { continue };
            let subject_key = match &subject {
                RuleSubject::Role(r) => format!("role {r}"),
                RuleSubject::Principal(p) => format!("principal {p}"),
            };
            if let Some(first) = seen.get(&(subject_key.clone(), dataset.clone())) {
                issues.push(
                    dpath,
                    format!("second rule for {subject_key} on \"{dataset}\" (first: rules[{first}]); one rule per subject and dataset"),
                );
                continue;
            }
            seen.insert((subject_key, dataset.clone()), i);
            if rule_ok {
                out.push(Rule {
                    index: i,
                    subject,
                    dataset: ds.name.clone(),
                    allow,
                    columns: raw.columns.clone(),
                    masks: masks.clone(),
                    row_filters,
                });
            }
        }
    }
    out
}
