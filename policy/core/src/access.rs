//! Who may do what, and on which legal basis: the policy side of a permit.
//!
//! The gateway reads a request's intent (operation, purpose exactly as
//! received, subject) and asks [`Policy::decide`] for the legal basis. The
//! order of the checks is fixed — purpose format, purpose allowed, licence,
//! role for the operation, legal basis — so the same request is treated the
//! same way on every front end. Rate limits and quotas come after, in the
//! gateway; a request refused here spends none.

use chrono::NaiveDate;
use creditgate_ident::SubjectKind;

use crate::error::PolicyError;
use crate::model::{Principal, Role};
use crate::policy::Policy;

/// Longest purpose code.
pub const MAX_PURPOSE_LEN: usize = 64;

/// A purpose code in its one accepted form: 1–64 characters of `a-z`,
/// `0-9` and `_`, starting with a letter. Nothing is trimmed or folded:
/// `" audit"`, `"Audit"` and `"audit\n"` are refused alike.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Purpose(String);

impl Purpose {
    /// Parses `raw` exactly as received.
    pub fn parse(raw: &str) -> Result<Purpose, PolicyError> {
        let mut chars = raw.chars();
        let well_formed = raw.len() <= MAX_PURPOSE_LEN
            && matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if well_formed {
            Ok(Purpose(raw.to_string()))
        } else {
            Err(PolicyError::PurposeMalformed { received: echo(raw) })
        }
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Purpose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A received purpose as it may be shown back: control characters escaped,
/// at most [`MAX_PURPOSE_LEN`] characters.
fn echo(raw: &str) -> String {
    let mut out: String = raw.chars().take(MAX_PURPOSE_LEN).flat_map(char::escape_debug).collect();
    if raw.chars().count() > MAX_PURPOSE_LEN {
        out.push('…');
    }
    out
}

/// What a request wants to do, as far as the policy is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// SQL over the caller's secure views (run, or planned to be run).
    Query,
    /// A subject lookup across sources.
    Lookup {
        /// The kind of subject looked up.
        subject: SubjectKind,
        /// Whether the request carries a consent artefact.
        consent: bool,
    },
    /// A credit grade of one subject (a lookup evaluated by the grading
    /// template's rules): the same legal basis as a lookup of that subject.
    Grade {
        /// Whether the subject is a natural person (an individual business):
        /// its basis is then a duty or a consent, as for a resident ID.
        person: bool,
        /// Whether the request carries a consent artefact.
        consent: bool,
    },
    /// A request for human review of a grade (PIPL §24): recorded for the
    /// privacy officer; releases nothing.
    GradeReview,
    /// The caller's own catalog: what it may see and how it is masked
    /// (`GET /v1/catalog`, Flight SQL metadata calls).
    Catalog,
    /// Reading a consent's use count and revocation state.
    ConsentStatus,
    /// Revoking a consent.
    ConsentRevoke,
    /// The privacy officer's audit API and console.
    AuditRead,
    /// The public disclosure window.
    Disclosure,
    /// A request that reaches no operation: an unknown path, a method its
    /// path does not take, or a body that cannot be read. It is only ever
    /// refused (with the reason it could not be routed), never allowed.
    Unroutable,
}

impl Operation {
    /// A short label for logs, metrics and audit records.
    pub fn label(&self) -> &'static str {
        match self {
            Operation::Query => "query",
            Operation::Lookup { .. } => "lookup",
            Operation::Grade { .. } => "grade",
            Operation::GradeReview => "grade_review",
            Operation::Catalog => "catalog",
            Operation::ConsentStatus => "consent_status",
            Operation::ConsentRevoke => "consent_revoke",
            Operation::AuditRead => "audit_read",
            Operation::Disclosure => "disclosure",
            Operation::Unroutable => "unroutable",
        }
    }

    /// What the operation does, in a refusal's words.
    fn description(&self) -> &'static str {
        match self {
            Operation::Query => "run SQL over credit data",
            Operation::Lookup { .. } => "look up subjects",
            Operation::Grade { .. } => "grade subjects",
            Operation::GradeReview => "request a review of a grade",
            Operation::Catalog => "read a catalog of credit data",
            Operation::ConsentStatus => "read consent records",
            Operation::ConsentRevoke => "revoke consents",
            Operation::AuditRead => "read the audit log (the audit API and console are for privacy officers)",
            Operation::Disclosure => "use the public disclosure window (it is for the public listener)",
            Operation::Unroutable => "send a request that names no operation",
        }
    }

    /// Whether the operation releases credit data: it then counts against
    /// the daily quota.
    pub fn releases_data(&self) -> bool {
        matches!(self, Operation::Query | Operation::Lookup { .. } | Operation::Grade { .. } | Operation::Disclosure)
    }

    /// Whether the caller must state a purpose: for queries and lookups.
    /// Other operations accept one (it must then be well-formed and allowed)
    /// but do not need one: a browser opening the console cannot send one,
    /// and the public window's purpose is the listener's own.
    pub fn needs_purpose(&self) -> bool {
        matches!(self, Operation::Query | Operation::Lookup { .. } | Operation::Grade { .. })
    }

    /// Whether `role` may perform this operation at all.
    fn allowed_for(&self, role: Role) -> bool {
        match self {
            Operation::Query | Operation::Catalog => role != Role::Public,
            Operation::Lookup { .. } | Operation::Grade { .. } | Operation::GradeReview => {
                matches!(role, Role::Agency | Role::CreditAgency | Role::Platform)
            }
            Operation::ConsentStatus | Operation::ConsentRevoke => role != Role::Public,
            Operation::AuditRead => role == Role::PrivacyOfficer,
            Operation::Disclosure => role == Role::Public,
            Operation::Unroutable => false,
        }
    }
}

/// Why a request may proceed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegalBasis {
    /// A state organ's statutory duty (PIPL §34): the duty code.
    Duty(String),
    /// A licensed credit agency's licence, for enterprise data.
    Licence(String),
    /// The subject's consent; the artefact is verified before any read.
    Consent,
    /// Public data (enterprise registrations, published lists).
    PublicData,
    /// The privacy officer's oversight of processing.
    Oversight,
    /// The public disclosure window.
    Disclosure,
    /// No data is released (the caller's own catalog, a consent's state).
    NoDisclosure,
}

impl LegalBasis {
    /// The label recorded in the audit log.
    pub fn label(&self) -> String {
        match self {
            LegalBasis::Duty(code) => format!("duty:{code}"),
            LegalBasis::Licence(number) => format!("licence:{number}"),
            LegalBasis::Consent => "consent".to_string(),
            LegalBasis::PublicData => "public-data".to_string(),
            LegalBasis::Oversight => "oversight".to_string(),
            LegalBasis::Disclosure => "public-disclosure".to_string(),
            LegalBasis::NoDisclosure => "no-disclosure".to_string(),
        }
    }
}

impl Policy {
    /// Decides whether `principal` may perform `operation` for `purpose`
    /// (exactly as received) on `today`, and on which legal basis. The checks
    /// run in one fixed order: purpose format, purpose allowed, licence, role
    /// for the operation, legal basis.
    pub fn decide(
        &self,
        principal: &Principal,
        operation: Operation,
        purpose: Option<&str>,
        today: NaiveDate,
    ) -> Result<(Option<Purpose>, LegalBasis), PolicyError> {
        // 1. Purpose: strict format, then allowed for this principal.
        let purpose = match purpose {
            None if !operation.needs_purpose() => None,
            raw => Some(self.check_purpose(principal, raw)?),
        };
        // 2. Licence.
        self.check_licence(principal, today)?;
        // 3. Role for the operation.
        if !operation.allowed_for(principal.role) {
            return Err(PolicyError::OperationNotAllowed {
                principal: principal.name.clone(),
                role: principal.role.as_str(),
                operation: operation.description(),
            });
        }
        // 4. Legal basis. A grade has the basis of a lookup of its subject.
        let operation = match operation {
            Operation::Grade { person, consent } => Operation::Lookup {
                subject: if person { SubjectKind::ResidentId } else { SubjectKind::CreditCode },
                consent,
            },
            other => other,
        };
        let basis = match (operation, principal.role) {
            (
                Operation::Catalog
                | Operation::ConsentStatus
                | Operation::ConsentRevoke
                | Operation::GradeReview
                | Operation::Unroutable,
                _,
            ) => LegalBasis::NoDisclosure,
            // Decided as the lookup it is (above); kept for exhaustiveness.
            (Operation::Grade { .. }, _) => {
                return Err(PolicyError::OperationNotAllowed {
                    principal: principal.name.clone(),
                    role: principal.role.as_str(),
                    operation: operation.description(),
                });
            }
            (Operation::AuditRead, _) => LegalBasis::Oversight,
            (Operation::Disclosure, _) => LegalBasis::Disclosure,
            (Operation::Query | Operation::Lookup { .. }, Role::Agency) => {
                let code = purpose.as_ref().map(Purpose::as_str).unwrap_or_default();
                if !principal.duty_codes.iter().any(|d| d == code) {
                    return Err(PolicyError::NotADuty {
                        principal: principal.name.clone(),
                        purpose: code.to_string(),
                        duties: principal.duty_codes.clone(),
                    });
                }
                LegalBasis::Duty(code.to_string())
            }
            (Operation::Lookup { consent: true, .. }, Role::CreditAgency | Role::Platform) => LegalBasis::Consent,
            (Operation::Lookup { subject: SubjectKind::ResidentId, .. }, Role::CreditAgency | Role::Platform) => {
                return Err(PolicyError::ConsentRequired);
            }
            (Operation::Query | Operation::Lookup { .. }, Role::CreditAgency) => match &principal.licence {
                Some(licence) => LegalBasis::Licence(licence.number.clone()),
                None => return Err(PolicyError::LicenceMissing { principal: principal.name.clone() }),
            },
            (Operation::Query | Operation::Lookup { .. }, Role::Platform) => LegalBasis::PublicData,
            (Operation::Query | Operation::Lookup { .. }, Role::PrivacyOfficer) => LegalBasis::Oversight,
            (Operation::Query | Operation::Lookup { .. }, Role::Public) => LegalBasis::Disclosure,
        };
        Ok((purpose, basis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purposes_are_taken_exactly_as_received() {
        assert_eq!(Purpose::parse("supervision").map(|p| p.to_string()).ok().as_deref(), Some("supervision"));
        assert!(Purpose::parse("credit_report_2").is_ok());
        for bad in [" supervision", "supervision ", "Supervision", "super\nvision", "", "1abc", "su-pervision"] {
            let error = Purpose::parse(bad).expect_err(bad);
            assert!(error.to_string().contains("purpose"), "{error}");
        }
        let long = "a".repeat(MAX_PURPOSE_LEN + 1);
        assert!(Purpose::parse(&long).is_err());
        assert!(Purpose::parse(&long[..MAX_PURPOSE_LEN]).is_ok());
    }

    #[test]
    fn an_echoed_purpose_shows_control_characters_escaped() {
        let error = Purpose::parse("audit\r\nX-Injected: 1").expect_err("control characters");
        assert!(error.to_string().contains("audit\\r\\nX-Injected"), "{error}");
    }
}
