//! [`Secret`], the one way a password or token is held, and the redaction of URLs that carry
//! secrets, for everything that shows a configured URL.

use std::fmt;

/// A password, token, signing secret or secret URL: `Debug` and `Display` print `<redacted>`;
/// only [`Secret::expose`] gives the value, so leaking it takes a deliberate call.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_string())
    }
}

/// Shows a URL whose path is a secret (Slack incoming webhooks, webhook endpoints): keeps
/// `scheme://host[:port]`, drops any `user:password@`, and replaces whatever follows the host
/// with `/<redacted>`. A string that is not `scheme://…` is redacted whole.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<redacted>".to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let tail = &rest[authority_end..];
    if tail.is_empty() || tail == "/" {
        format!("{scheme}://{host}{tail}")
    } else {
        format!("{scheme}://{host}/<redacted>")
    }
}

/// Shows a URL with only its passwords redacted: the password of its `user:password@` part
/// and the values of the `password` and `sslpassword` query parameters (which PostgreSQL
/// URLs accept too), e.g. a `postgres://herald:<redacted>@db:5432/herald` database URL in the
/// console header.
pub fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:<redacted>@{host}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    let (before_fragment, fragment) = tail.split_at(tail.find('#').unwrap_or(tail.len()));
    let Some((path, query)) = before_fragment.split_once('?') else {
        return format!("{scheme}://{authority}{tail}");
    };
    // A password with a raw `&` or `#` in it spills into what follows: a piece without `=`
    // after a password, and the fragment, are hidden with it.
    let mut redacting = false;
    let mut hid_one = false;
    let mut shown: Vec<String> = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some((name, value)) if is_password_parameter(name) => {
                redacting = !value.is_empty();
                hid_one |= redacting;
                shown.push(if redacting {
                    format!("{name}=<redacted>")
                } else {
                    pair.to_string()
                });
            }
            None if redacting => {}
            _ => {
                redacting = false;
                shown.push(pair.to_string());
            }
        }
    }
    let fragment = if hid_one && !fragment.is_empty() {
        "#<redacted>"
    } else {
        fragment
    };
    format!("{scheme}://{authority}{path}?{}{fragment}", shown.join("&"))
}

/// Whether a query parameter's name, percent-decoded as drivers decode it, names a password.
fn is_password_parameter(name: &str) -> bool {
    let bytes = name.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                i += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    let decoded = String::from_utf8_lossy(&decoded);
    ["password", "sslpassword"]
        .iter()
        .any(|secret| decoded.trim().eq_ignore_ascii_case(secret))
}
