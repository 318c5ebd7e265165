//! A scalar as the file or the environment gives it ([`Raw`]), and the conversions that turn it
//! into a setting's type, each with an error text that names what was wrong but not the key.

use std::path::PathBuf;
use std::time::Duration;

use super::{Secret, redact_url, redact_url_password};
use crate::model::Method;

/// A scalar as the file or the environment gives it, before conversion. Environment values
/// are always text; the file may give any TOML type.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Raw {
    Text(String),
    Bool(bool),
    Integer(i64),
    /// Anything else, named for the error message ("an array").
    Other(&'static str),
}

pub(super) const DURATION_HINT: &str = "expected e.g. 15s, 5m, 7d";

/// The longest duration a setting or flag takes: 100 years (humantime's `100y`). Durations are
/// added to and taken from timestamps (leases, retries, retention cut-offs); far beyond this
/// they leave the range chrono and the stores can hold, and well before that they are typos.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 31_557_600);

/// A humantime duration (`15s`, `5m`, `7d`) of at most [`MAX_DURATION`], for config values and
/// command-line flags; the error names the text but not the key, which the caller adds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text.trim())
        .map_err(|_| format!("invalid duration `{text}` ({DURATION_HINT})"))?;
    if duration > MAX_DURATION {
        return Err(format!(
            "`{text}` is too long (at most {})",
            humantime::format_duration(MAX_DURATION)
        ));
    }
    Ok(duration)
}

impl Raw {
    pub(super) fn found(&self) -> &'static str {
        match self {
            Raw::Text(_) => "a string",
            Raw::Bool(_) => "a boolean",
            Raw::Integer(_) => "an integer",
            Raw::Other(what) => what,
        }
    }

    pub(super) fn text(self) -> Result<String, String> {
        match self {
            Raw::Text(text) => Ok(text),
            other => Err(format!("expected a string, found {}", other.found())),
        }
    }

    pub(super) fn optional_text(self) -> Result<Option<String>, String> {
        let text = self.text()?;
        Ok((!text.trim().is_empty()).then_some(text))
    }

    pub(super) fn required_text(self) -> Result<String, String> {
        self.optional_text()?
            .ok_or_else(|| "must not be empty".to_string())
    }

    pub(super) fn optional_secret(self) -> Result<Option<Secret>, String> {
        Ok(self.optional_text()?.map(Secret::new))
    }

    pub(super) fn path(self) -> Result<PathBuf, String> {
        Ok(PathBuf::from(self.required_text()?))
    }

    pub(super) fn optional_path(self) -> Result<Option<PathBuf>, String> {
        Ok(self.optional_text()?.map(PathBuf::from))
    }

    pub(super) fn boolean(self) -> Result<bool, String> {
        match self {
            Raw::Bool(value) => Ok(value),
            Raw::Text(text) => match text.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Ok(true),
                "false" | "0" | "no" => Ok(false),
                _ => Err(format!(
                    "invalid boolean `{text}` (expected true/false, yes/no or 1/0)"
                )),
            },
            other => Err(format!("expected a boolean, found {}", other.found())),
        }
    }

    pub(super) fn integer(self) -> Result<i64, String> {
        match self {
            Raw::Integer(value) => Ok(value),
            Raw::Text(text) => text
                .trim()
                .parse()
                .map_err(|_| format!("invalid number `{text}` (expected a whole number)")),
            other => Err(format!("expected an integer, found {}", other.found())),
        }
    }

    pub(super) fn positive_u32(self) -> Result<u32, String> {
        let value = self.integer()?;
        if value < 1 {
            return Err(format!("must be at least 1, got {value}"));
        }
        u32::try_from(value).map_err(|_| format!("{value} is too large (at most {})", u32::MAX))
    }

    pub(super) fn positive_usize(self) -> Result<usize, String> {
        let value = self.integer()?;
        if value < 1 {
            return Err(format!("must be at least 1, got {value}"));
        }
        usize::try_from(value).map_err(|_| format!("{value} is too large"))
    }

    pub(super) fn port(self) -> Result<u16, String> {
        let value = self.integer()?;
        u16::try_from(value)
            .ok()
            .filter(|port| *port > 0)
            .ok_or_else(|| format!("invalid port {value} (expected 1 to 65535)"))
    }

    /// A humantime duration; zero allowed.
    pub(super) fn duration(self) -> Result<Duration, String> {
        let text = match self {
            Raw::Text(text) => text,
            Raw::Integer(value) => {
                return Err(format!(
                    "invalid duration `{value}` (a number needs a unit: {DURATION_HINT})"
                ));
            }
            other => return Err(format!("expected a duration, found {}", other.found())),
        };
        parse_duration(&text)
    }

    pub(super) fn positive_duration(self) -> Result<Duration, String> {
        let duration = self.duration()?;
        if duration.is_zero() {
            return Err(format!("must be longer than 0s ({DURATION_HINT})"));
        }
        Ok(duration)
    }

    /// The deployment default method: only the two that reach a user without a target.
    pub(super) fn default_method(self) -> Result<Method, String> {
        let text = self.text()?;
        match text.trim().parse::<Method>() {
            Ok(method @ (Method::Smtp | Method::Webhook)) => Ok(method),
            Ok(method) => Err(format!(
                "`{method}` cannot be the deployment default (expected smtp or webhook; \
                 {method} is for targets)"
            )),
            Err(_) => Err(format!(
                "unknown method `{text}` (expected smtp or webhook)"
            )),
        }
    }

    pub(super) fn database_url(self) -> Result<String, String> {
        let url = self.required_text()?;
        let supported = ["sqlite:", "postgres://", "postgresql://"];
        if supported.iter().any(|prefix| url.starts_with(prefix)) {
            Ok(url)
        } else {
            // Only the scheme is echoed: the rest may hold a password.
            let scheme = url.split(':').next().unwrap_or_default();
            Err(format!(
                "unsupported database URL scheme `{scheme}` (expected sqlite://PATH, \
                 postgres://… or postgresql://…)"
            ))
        }
    }

    /// An address to listen on: an IP and a port (`127.0.0.1:8080`, `[::]:8080`).
    pub(super) fn optional_listen_address(self) -> Result<Option<std::net::SocketAddr>, String> {
        let Some(text) = self.optional_text()? else {
            return Ok(None);
        };
        text.trim().parse().map(Some).map_err(|_| {
            format!("invalid address `{text}` (expected IP:PORT, e.g. 127.0.0.1:8080 or [::]:8080)")
        })
    }

    pub(super) fn optional_smarthost(self) -> Result<Option<String>, String> {
        let Some(text) = self.optional_text()? else {
            return Ok(None);
        };
        let trimmed = text.trim();
        match trimmed.rsplit_once(':') {
            Some((host, port)) if valid_host(host) && port.parse::<u16>().is_ok_and(|p| p > 0) => {
                Ok(Some(trimmed.to_string()))
            }
            _ => Err(format!(
                "invalid smarthost `{text}` (expected host:port, e.g. smtp.example.com:587)"
            )),
        }
    }

    /// `base_url`: an absolute http(s) URL with a host, no query, fragment or credentials,
    /// kept without trailing slashes (templates append `/path`).
    pub(super) fn base_url(self) -> Result<Option<String>, String> {
        let Some(text) = self.optional_text()? else {
            return Ok(None);
        };
        let url = text.trim();
        let invalid = || {
            let shown = if url.contains('@') { "<redacted>" } else { url };
            format!(
                "invalid URL `{shown}` (expected an absolute http:// or https:// URL, e.g. \
                 https://herald.example.com)"
            )
        };
        let (scheme, rest) = url
            .split_once("://")
            .filter(|(scheme, _)| {
                scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("http")
            })
            .ok_or_else(invalid)?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.contains('@') {
            return Err(format!(
                "`{}` holds credentials, which would be in every link sent",
                redact_url_password(url)
            ));
        }
        if !valid_host(authority) || url.contains(char::is_whitespace) {
            return Err(invalid());
        }
        if url.contains(['?', '#']) {
            return Err(format!(
                "`{url}` has a query or fragment; give the URL templates append paths to, e.g. \
                 {scheme}://{authority}"
            ));
        }
        Ok(Some(url.trim_end_matches('/').to_string()))
    }

    pub(super) fn optional_http_url(self) -> Result<Option<String>, String> {
        let Some(url) = self.optional_text()? else {
            return Ok(None);
        };
        check_http_url(&url)?;
        Ok(Some(url))
    }

    pub(super) fn optional_secret_http_url(self) -> Result<Option<Secret>, String> {
        Ok(self.optional_http_url()?.map(Secret::new))
    }

    pub(super) fn http_url(self) -> Result<String, String> {
        let url = self.required_text()?;
        check_http_url(&url)?;
        Ok(url)
    }
}

pub(super) fn valid_host(host: &str) -> bool {
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    !host.is_empty() && !host.contains(['/', ' ', '@'])
}

/// Checks `http(s)://host…`, echoing only the redacted form (the path may be the secret).
pub(super) fn check_http_url(url: &str) -> Result<(), String> {
    let host_ok = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .and_then(|rest| rest.split(['/', '?', '#']).next())
        .is_some_and(|authority| !authority.is_empty());
    if host_ok {
        Ok(())
    } else {
        Err(format!(
            "invalid URL `{}` (expected http://… or https://…)",
            redact_url(url)
        ))
    }
}
