//! The caller's identity, read from a verified leaf certificate.
//!
//! Callers are keyed on the SPIFFE URI SAN
//! (`spiffe://<trust domain>/org/<org id>`), on the certificate's SHA-256
//! fingerprint, or on subject O *and* CN together; never on CN alone (anyone
//! the CA issues to can be given any CN).

use serde::Serialize;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::X509Name;

use crate::CertError;

/// URI scheme of SPIFFE IDs.
pub const SPIFFE_SCHEME: &str = "spiffe://";
/// Prefix of a configured fingerprint identity (`sha256:<hex>`).
pub const FINGERPRINT_PREFIX: &str = "sha256:";

/// The verified caller, extracted from the leaf certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// The SPIFFE URI SAN (`spiffe://credit.example/org/<org id>`), if any.
    pub uri: Option<String>,
    /// The organisation id: the last path segment of a
    /// `spiffe://<trust domain>/org/<org id>` URI.
    pub org_id: Option<String>,
    /// Subject organisation (O).
    pub organization: Option<String>,
    /// Subject common name (CN).
    pub common_name: Option<String>,
    /// SHA-256 of the certificate's DER encoding, lowercase hex (64 chars).
    pub fingerprint: String,
    /// Certificate serial number, lowercase hex without leading zero bytes.
    pub serial: String,
}

impl Identity {
    /// Parses the identity from a DER certificate.
    ///
    /// This does **not** verify the certificate: call it on a leaf that the
    /// TLS stack has already verified. Refused: trailing data after the
    /// certificate, a malformed SAN extension, more than one SPIFFE URI SAN,
    /// and subject O/CN values that are not strings.
    pub fn from_der(der: &[u8]) -> Result<Identity, CertError> {
        let invalid =
            |reason: String| CertError::InvalidCertificate { source_name: "peer certificate".to_owned(), reason };
        let (rest, cert) =
            X509Certificate::from_der(der).map_err(|e| invalid(format!("not a DER X.509 certificate: {e}")))?;
        if !rest.is_empty() {
            return Err(invalid("trailing data after the certificate".to_owned()));
        }

        let sans =
            cert.subject_alternative_name().map_err(|e| invalid(format!("bad subjectAltName extension: {e}")))?;
        let mut spiffe = sans.iter().flat_map(|ext| ext.value.general_names.iter()).filter_map(|name| match name {
            GeneralName::URI(uri) if uri.starts_with(SPIFFE_SCHEME) => Some(*uri),
            _ => None,
        });
        let uri = spiffe.next().map(str::to_owned);
        if spiffe.next().is_some() {
            return Err(invalid("more than one SPIFFE URI SAN".to_owned()));
        }
        let org_id = uri.as_deref().and_then(org_id_from_uri);

        let subject = cert.subject();
        let organization = first_attr(subject.iter_organization(), "O").map_err(invalid)?;
        let common_name = first_attr(subject.iter_common_name(), "CN").map_err(invalid)?;

        Ok(Identity {
            uri,
            org_id,
            organization,
            common_name,
            fingerprint: fingerprint_hex(der),
            serial: serial_hex(cert.raw_serial()),
        })
    }

    /// Stable name used in configs: the SPIFFE URI when present, else
    /// `o=<O>/cn=<CN>` (with `\` and `/` inside the values escaped by a
    /// backslash), else — a certificate with neither — `sha256:<fingerprint>`.
    pub fn name(&self) -> String {
        if let Some(uri) = &self.uri {
            return uri.clone();
        }
        match self.subject_name() {
            Some(name) => name,
            None => format!("{FINGERPRINT_PREFIX}{}", self.fingerprint),
        }
    }

    /// Does this identity match a configured identity string?
    ///
    /// Accepted forms:
    /// - a SPIFFE URI (`spiffe://…`), compared exactly with the URI SAN;
    /// - `sha256:<hex>` (case-insensitive hex, `:` separators allowed),
    ///   compared with the fingerprint;
    /// - `o=<O>/cn=<CN>` (values escaped as in [`Identity::name`]), which
    ///   needs both O and CN in the certificate.
    ///
    /// Anything else — a bare CN in particular — never matches.
    pub fn matches(&self, configured: &str) -> bool {
        if configured.starts_with(SPIFFE_SCHEME) {
            return self.uri.as_deref() == Some(configured);
        }
        if let Some(hex) = strip_prefix_ignore_case(configured, FINGERPRINT_PREFIX) {
            return normalize_fingerprint(hex).is_some_and(|fp| fp == self.fingerprint);
        }
        if configured.starts_with("o=") {
            return self.subject_name().is_some_and(|name| name == configured);
        }
        false
    }

    /// `o=<O>/cn=<CN>` when both are present.
    fn subject_name(&self) -> Option<String> {
        match (&self.organization, &self.common_name) {
            (Some(o), Some(cn)) => Some(format!("o={}/cn={}", escape(o), escape(cn))),
            _ => None,
        }
    }
}

/// SHA-256 of `der` as lowercase hex.
pub fn fingerprint_hex(der: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, der))
}

/// A DER INTEGER's content bytes as lowercase hex, leading zero bytes dropped
/// (so `00 8f …` and `8f …` give the same string); `"00"` for zero.
pub fn serial_hex(raw: &[u8]) -> String {
    let start = raw.iter().position(|b| *b != 0).unwrap_or(raw.len());
    if start == raw.len() {
        return "00".to_owned();
    }
    hex::encode(&raw[start..])
}

/// Normalises a user-supplied serial (`8F:1A…`, `0x8f1a…`, `008f1a…`) to the
/// form of [`Identity::serial`]. Refuses non-hex input and serials over 20
/// bytes (RFC 5280's limit).
pub fn normalize_serial(input: &str) -> Result<String, CertError> {
    let trimmed = input.trim();
    let body = trimmed.strip_prefix("0x").or_else(|| trimmed.strip_prefix("0X")).unwrap_or(trimmed);
    let mut digits: String = body.chars().filter(|c| *c != ':').collect();
    digits.make_ascii_lowercase();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(CertError::input("serial", input, "expected hexadecimal digits"));
    }
    if digits.len() % 2 == 1 {
        digits.insert(0, '0');
    }
    let bytes = hex::decode(&digits).map_err(|e| CertError::input("serial", input, e.to_string()))?;
    let normalized = serial_hex(&bytes);
    if normalized.len() > 40 {
        return Err(CertError::input("serial", input, "longer than 20 bytes"));
    }
    Ok(normalized)
}

fn org_id_from_uri(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix(SPIFFE_SCHEME)?;
    let (_trust_domain, path) = rest.split_once('/')?;
    let org_id = path.strip_prefix("org/")?;
    if org_id.is_empty() || org_id.contains(['/', '?', '#']) {
        return None;
    }
    Some(org_id.to_owned())
}

fn first_attr<'a>(
    mut values: impl Iterator<Item = &'a x509_parser::x509::AttributeTypeAndValue<'a>>,
    label: &str,
) -> Result<Option<String>, String> {
    match values.next() {
        None => Ok(None),
        Some(attr) => {
            attr.as_str().map(|s| Some(s.to_owned())).map_err(|e| format!("subject {label} is not a string: {e}"))
        }
    }
}

fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if c == '\\' || c == '/' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
}

fn normalize_fingerprint(hex_in: &str) -> Option<String> {
    let digits: String = hex_in.chars().filter(|c| *c != ':').map(|c| c.to_ascii_lowercase()).collect();
    (digits.len() == 64 && digits.chars().all(|c| c.is_ascii_hexdigit())).then_some(digits)
}

/// Formats an X.509 name for display (used by `certs show`).
pub(crate) fn display_name(name: &X509Name<'_>) -> String {
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident() -> Identity {
        Identity {
            uri: Some("spiffe://credit.example/org/court-01".to_owned()),
            org_id: Some("court-01".to_owned()),
            organization: Some("City Court".to_owned()),
            common_name: Some("batch-client".to_owned()),
            fingerprint: "ab".repeat(32),
            serial: "01".to_owned(),
        }
    }

    #[test]
    fn matches_accepts_the_three_forms() {
        let id = ident();
        assert!(id.matches("spiffe://credit.example/org/court-01"));
        assert!(id.matches(&format!("sha256:{}", "ab".repeat(32))));
        assert!(id.matches(&format!("SHA256:{}", "AB:".repeat(31) + "AB")));
        assert!(id.matches("o=City Court/cn=batch-client"));
        assert_eq!(id.name(), "spiffe://credit.example/org/court-01");
    }

    #[test]
    fn matches_refuses_everything_else() {
        let id = ident();
        // CN alone, in any spelling, never matches.
        assert!(!id.matches("batch-client"));
        assert!(!id.matches("cn=batch-client"));
        assert!(!id.matches("CN=batch-client"));
        assert!(!id.matches("o=/cn=batch-client"));
        // Near misses.
        assert!(!id.matches("spiffe://credit.example/org/court-0"));
        assert!(!id.matches("spiffe://credit.example/org/court-01/"));
        assert!(!id.matches("spiffe://other.example/org/court-01"));
        assert!(!id.matches(&format!("sha256:{}", "ab".repeat(31))));
        assert!(!id.matches(&format!("sha256:{}", "cd".repeat(32))));
        assert!(!id.matches("o=City Court/cn=other"));
        assert!(!id.matches("o=Other/cn=batch-client"));
        assert!(!id.matches(""));
        assert!(!id.matches("court-01"));
    }

    #[test]
    fn subject_form_needs_both_o_and_cn() {
        let mut id = ident();
        id.uri = None;
        id.organization = None;
        assert!(!id.matches("o=/cn=batch-client"));
        assert_eq!(id.name(), format!("sha256:{}", "ab".repeat(32)));
        id.organization = Some("A/cn=B".to_owned());
        id.common_name = Some("C".to_owned());
        assert_eq!(id.name(), "o=A\\/cn=B/cn=C");
        // The unescaped spelling that would collide with O="A", CN="B/cn=C" does not match.
        assert!(!id.matches("o=A/cn=B/cn=C"));
        assert!(id.matches("o=A\\/cn=B/cn=C"));
    }

    #[test]
    fn org_id_parsing() {
        assert_eq!(org_id_from_uri("spiffe://td/org/x1").as_deref(), Some("x1"));
        assert_eq!(org_id_from_uri("spiffe://td/org/x1/y"), None);
        assert_eq!(org_id_from_uri("spiffe://td/org/"), None);
        assert_eq!(org_id_from_uri("spiffe://td/svc/x1"), None);
    }

    #[test]
    fn serial_normalization() {
        assert_eq!(normalize_serial("0x00:8F:1a").expect("ok"), "8f1a");
        assert_eq!(normalize_serial("f1a").expect("ok"), "0f1a");
        assert!(normalize_serial("xyz").is_err());
        assert!(normalize_serial("").is_err());
        assert!(normalize_serial(&"11".repeat(21)).is_err());
        assert_eq!(serial_hex(&[0, 0]), "00");
    }
}
