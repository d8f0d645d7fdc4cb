//! Database connection URLs of `postgres`/`mysql` tables.
//!
//! A URL names the server, the user and the database, never the password (it
//! comes from `password_env`/`password_file`). [`DatabaseUrl`]'s `Display`
//! is the form that may be logged.

use std::fmt;
use std::net::IpAddr;

/// Which database server a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatabaseKind {
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    Mysql,
}

impl DatabaseKind {
    fn default_port(self) -> u16 {
        match self {
            DatabaseKind::Postgres => 5432,
            DatabaseKind::Mysql => 3306,
        }
    }

    fn schemes(self) -> &'static [&'static str] {
        match self {
            DatabaseKind::Postgres => &["postgres", "postgresql"],
            DatabaseKind::Mysql => &["mysql", "mariadb"],
        }
    }

    fn ssl_modes(self) -> &'static [&'static str] {
        match self {
            DatabaseKind::Postgres => &["disable", "prefer", "require", "verify-ca", "verify-full"],
            DatabaseKind::Mysql => &["disabled", "preferred", "required"],
        }
    }
}

/// A parsed connection URL (no password).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DatabaseUrl {
    /// Server kind.
    pub kind: DatabaseKind,
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// User name.
    pub user: String,
    /// Database to connect to.
    pub database: String,
    /// TLS mode, in the provider's vocabulary; see [`DatabaseUrl::parse`].
    pub sslmode: String,
}

impl DatabaseUrl {
    /// Parses `scheme://user@host[:port]/database[?sslmode=MODE]`. Refuses a
    /// password in the URL. Without `sslmode`, TLS is required for any host
    /// but a loopback one, where PostgreSQL prefers TLS and MySQL goes without
    /// (its driver cannot fall back, and loopback traffic never leaves the host).
    pub fn parse(kind: DatabaseKind, text: &str) -> Result<DatabaseUrl, String> {
        let url = url::Url::parse(text).map_err(|e| format!("not a URL ({e})"))?;
        if !kind.schemes().contains(&url.scheme()) {
            return Err(format!("scheme must be {}://", kind.schemes().join(":// or ")));
        }
        if url.password().is_some() {
            return Err("must not contain a password (use password_env or password_file)".to_string());
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_string(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err("a host is required".to_string()),
        };
        let user = percent_decode(url.username())?;
        if user.is_empty() {
            return Err("a user is required (scheme://USER@host/database)".to_string());
        }
        let database = percent_decode(url.path().trim_start_matches('/'))?;
        if database.is_empty() || database.contains('/') {
            return Err("a database name is required (scheme://user@host/DATABASE)".to_string());
        }
        let mut sslmode = None;
        for (key, value) in url.query_pairs() {
            match key.as_ref() {
                "sslmode" if kind.ssl_modes().contains(&value.as_ref()) => sslmode = Some(value.to_string()),
                "sslmode" => {
                    return Err(format!("sslmode `{value}` is not one of {}", kind.ssl_modes().join(", ")));
                }
                other => return Err(format!("unknown URL parameter `{other}` (only sslmode is accepted)")),
            }
        }
        let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        let sslmode = sslmode.unwrap_or_else(|| {
            match (kind, loopback) {
                (DatabaseKind::Postgres, true) => "prefer",
                (DatabaseKind::Postgres, false) => "require",
                // The MySQL driver has no fallback: "preferred" would still demand TLS.
                (DatabaseKind::Mysql, true) => "disabled",
                (DatabaseKind::Mysql, false) => "required",
            }
            .to_string()
        });
        Ok(DatabaseUrl { kind, host, port: url.port().unwrap_or(kind.default_port()), user, database, sslmode })
    }
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3).ok_or("bad percent-encoding")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| "bad percent-encoding")?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "percent-encoding is not UTF-8".to_string())
}

impl fmt::Display for DatabaseUrl {
    /// The loggable form: no password (there never is one), no query.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.kind {
            DatabaseKind::Postgres => "postgres",
            DatabaseKind::Mysql => "mysql",
        };
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        write!(f, "{scheme}://{}@{host}:{}/{}", self.user, self.port, self.database)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_defaults() {
        let url = DatabaseUrl::parse(DatabaseKind::Postgres, "postgres://postgres@127.0.0.1/test").expect("parse");
        assert_eq!((url.port, url.user.as_str(), url.database.as_str()), (5432, "postgres", "test"));
        assert_eq!(url.sslmode, "prefer", "loopback prefers TLS");
        let url = DatabaseUrl::parse(DatabaseKind::Postgres, "postgresql://u@db.example:6543/d").expect("parse");
        assert_eq!((url.port, url.sslmode.as_str()), (6543, "require"), "remote requires TLS");
        let url = DatabaseUrl::parse(DatabaseKind::Mysql, "mysql://root@localhost:3306/test?sslmode=disabled")
            .expect("parse");
        assert_eq!(url.sslmode, "disabled");
        let url = DatabaseUrl::parse(DatabaseKind::Mysql, "mysql://root@127.0.0.1/test").expect("parse");
        assert_eq!(url.sslmode, "disabled", "loopback MySQL without TLS unless asked");
        assert_eq!(url.to_string(), "mysql://root@127.0.0.1:3306/test");
    }

    #[test]
    fn refuses_passwords_and_junk() {
        for (kind, text, expected) in [
            (DatabaseKind::Postgres, "postgres://u:secret@h/d", "password"),
            (DatabaseKind::Postgres, "mysql://u@h/d", "scheme"),
            (DatabaseKind::Postgres, "postgres://h/d", "user"),
            (DatabaseKind::Postgres, "postgres://u@h/", "database"),
            (DatabaseKind::Postgres, "postgres://u@h/d?sslmode=disabled", "sslmode"),
            (DatabaseKind::Mysql, "mysql://u@h/d?password=x", "unknown URL parameter"),
        ] {
            let error = DatabaseUrl::parse(kind, text).expect_err(text);
            assert!(error.contains(expected), "{text}: {error}");
            assert!(!error.contains("secret"), "{error}");
        }
    }
}
