//! What the HTTP channels (webhook, Slack) share: one kind of client, and how an answer is
//! quoted in a reason — a bounded excerpt of the body, the error chain, `Retry-After`.

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};

use super::ChannelError;
use crate::model::Method;

/// How long establishing a connection may take; the whole delivery is bounded by the
/// dispatcher's `dispatch_timeout`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Idle keep-alive connections kept per host: enough for the dispatcher's concurrency.
const MAX_IDLE_PER_HOST: usize = 256;

/// Characters of a rejecting response's body quoted in the reason.
const REASON_BODY_CHARS: usize = 200;

/// One keep-alive client per channel. Redirects are reported, not followed: a redirected POST
/// turns into a GET on most codes.
pub fn client(method: Method) -> Result<reqwest::Client, ChannelError> {
    reqwest::Client::builder()
        .user_agent(concat!("herald/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(CONNECT_TIMEOUT)
        .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| ChannelError::Setup {
            method,
            reason: format!("building the HTTP client: {}", error_chain(&e)),
        })
}

/// The first [`REASON_BODY_CHARS`] characters of a response body, on one line.
pub fn body_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out = String::new();
    for (i, word) in text.split_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(word);
        if out.chars().count() >= REASON_BODY_CHARS {
            break;
        }
    }
    match out.char_indices().nth(REASON_BODY_CHARS) {
        Some((cut, _)) => out[..cut].to_string(),
        None => out,
    }
}

/// A `Retry-After` value: delay seconds, or an HTTP date (IMF-fixdate, RFC 850 or asctime)
/// counted from `now` (a date in the past means "now"). Anything else is ignored.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse().ok().map(Duration::from_secs);
    }
    let date = DateTime::parse_from_rfc2822(value)
        .map(|d| d.with_timezone(&Utc))
        .or_else(|_| {
            NaiveDateTime::parse_from_str(value, "%A, %d-%b-%y %H:%M:%S GMT").map(|d| d.and_utc())
        })
        .or_else(|_| {
            NaiveDateTime::parse_from_str(value, "%a %b %e %H:%M:%S %Y").map(|d| d.and_utc())
        })
        .ok()?;
    Some((date - now).to_std().unwrap_or(Duration::ZERO))
}

/// An error with its causes, `outer: inner: …`, skipping a cause its parent already quotes.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
