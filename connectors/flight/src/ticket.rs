//! Signed tickets and prepared-statement handles.
//!
//! A ticket carries the SQL it will run and an HMAC-SHA-256 over the caller's
//! binding (certificate fingerprint plus anything else the backend binds, such
//! as the purpose) and the SQL, keyed with a per-process secret (or a key the
//! replicas of one deployment share, [`TicketSigner::with_key`]). `do_get`
//! re-checks it against the caller presenting it, so a ticket is useless to
//! another certificate and cannot be edited.

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

const TAG_LEN: usize = 32;

/// Signs and verifies ticket contents.
#[derive(Clone)]
pub struct TicketSigner {
    key: hmac::Key,
}

impl std::fmt::Debug for TicketSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TicketSigner(..)")
    }
}

/// Why a ticket was not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TicketError {
    /// Too short or not UTF-8.
    #[error("the ticket is malformed")]
    Malformed,
    /// The MAC does not match this caller.
    #[error("the ticket was not issued to this caller, or was altered")]
    WrongCaller,
}

impl TicketSigner {
    /// A signer with a fresh random key (tickets do not survive a restart).
    pub fn random() -> Self {
        let mut bytes = [0u8; 32];
        // SystemRandom only fails if the OS has no entropy source at all.
        if SystemRandom::new().fill(&mut bytes).is_err() {
            panic!("operating system random number generator unavailable");
        }
        Self { key: hmac::Key::new(hmac::HMAC_SHA256, &bytes) }
    }

    /// A signer with `key` (shared by servers that accept each other's tickets).
    pub fn with_key(key: &[u8]) -> Self {
        Self { key: hmac::Key::new(hmac::HMAC_SHA256, key) }
    }

    fn tag(&self, binding: &[u8], sql: &str) -> hmac::Tag {
        hmac::sign(&self.key, &signed_message(binding, sql))
    }

    /// Encodes `sql` for the caller identified by `binding`.
    pub fn seal(&self, binding: &[u8], sql: &str) -> Vec<u8> {
        let tag = self.tag(binding, sql);
        let mut out = Vec::with_capacity(TAG_LEN + sql.len());
        out.extend_from_slice(tag.as_ref());
        out.extend_from_slice(sql.as_bytes());
        out
    }

    /// Returns the SQL of a ticket sealed for `binding`.
    pub fn open(&self, binding: &[u8], ticket: &[u8]) -> Result<String, TicketError> {
        if ticket.len() < TAG_LEN {
            return Err(TicketError::Malformed);
        }
        let (tag, sql) = ticket.split_at(TAG_LEN);
        let sql = std::str::from_utf8(sql).map_err(|_| TicketError::Malformed)?;
        hmac::verify(&self.key, &signed_message(binding, sql), tag).map_err(|_| TicketError::WrongCaller)?;
        Ok(sql.to_string())
    }
}

fn signed_message(binding: &[u8], sql: &str) -> Vec<u8> {
    let mut message = Vec::with_capacity(8 + binding.len() + sql.len());
    message.extend_from_slice(&(binding.len() as u64).to_be_bytes());
    message.extend_from_slice(binding);
    message.extend_from_slice(sql.as_bytes());
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding() {
        let signer = TicketSigner::random();
        let ticket = signer.seal(b"alice", "SELECT 1");
        assert_eq!(signer.open(b"alice", &ticket).as_deref(), Ok("SELECT 1"));
        assert_eq!(signer.open(b"bob", &ticket), Err(TicketError::WrongCaller));
        let mut edited = ticket.clone();
        let last = edited.len() - 1;
        edited[last] = b'2';
        assert_eq!(signer.open(b"alice", &edited), Err(TicketError::WrongCaller));
        assert_eq!(signer.open(b"alice", b"short"), Err(TicketError::Malformed));
        let other = TicketSigner::random();
        assert_eq!(other.open(b"alice", &ticket), Err(TicketError::WrongCaller));
    }
}
