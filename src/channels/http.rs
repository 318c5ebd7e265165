//! What the HTTP channels (webhook, Slack) share: one kind of client, one way to send a
//! request and read its answer, and how an answer is quoted in a reason — a bounded excerpt of
//! the body, the error chain, `Retry-After`, secrets scrubbed.

use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime, Utc};
use reqwest::header::RETRY_AFTER;

use super::ChannelError;
use crate::model::{DeliveryOutcome, Method};
use crate::secret::redact_url;

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

/// The parts of an HTTP answer that classification needs.
pub struct Answer {
    pub status: u16,
    /// From sending the request to the answer's headers.
    pub elapsed: Duration,
    pub retry_after: Option<String>,
    /// At most the `limit` given to [`send`], and not yet scrubbed of secrets.
    pub body: Vec<u8>,
}

/// Sends `request` and reads up to `limit` bytes of the answer (a longer one only costs the
/// connection); a failure to get an answer is already an outcome. `what` names the peer in
/// reasons; `url` is shown only redacted.
pub async fn send(
    request: reqwest::RequestBuilder,
    what: &str,
    url: &str,
    limit: usize,
) -> Result<Answer, DeliveryOutcome> {
    let started = Instant::now();
    let mut response = match request.send().await {
        Ok(response) => response,
        Err(e) if e.is_builder() => {
            return Err(DeliveryOutcome::Permanent {
                reason: format!(
                    "{what} URL {} is invalid: {}",
                    redact_url(url),
                    error_chain(&e.without_url())
                ),
            });
        }
        Err(e) => {
            return Err(DeliveryOutcome::Retryable {
                reason: format!("{what} request failed: {}", error_chain(&e.without_url())),
                retry_after: None,
            });
        }
    };
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut body = Vec::new();
    while body.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            // The status is the answer; an unreadable body only costs the connection.
            Ok(None) | Err(_) => break,
        }
    }
    Ok(Answer {
        status,
        elapsed,
        retry_after,
        body,
    })
}

/// The secret parts of a URL: its path and query (often the credential) and any
/// `user:password@`; the whole URL when it has no scheme.
pub fn url_secrets(url: &str) -> Vec<&str> {
    let Some((_, rest)) = url.split_once("://") else {
        return vec![url];
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let userinfo = authority.rsplit_once('@').map(|(userinfo, _)| userinfo);
    [Some(tail), userinfo].into_iter().flatten().collect()
}

/// `text` with every occurrence of `secrets` replaced by `<redacted>`.
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut text = text.to_string();
    for secret in secrets.iter().filter(|s| s.len() > 1) {
        if text.contains(secret) {
            text = text.replace(secret, "<redacted>");
        }
    }
    text
}

/// `outcome` with its reason passed through `scrub`: a peer or an error may echo a secret.
pub fn scrub_reason(
    outcome: DeliveryOutcome,
    scrub: impl FnOnce(&str) -> String,
) -> DeliveryOutcome {
    match outcome {
        DeliveryOutcome::Sent => DeliveryOutcome::Sent,
        DeliveryOutcome::Retryable {
            reason,
            retry_after,
        } => DeliveryOutcome::Retryable {
            reason: scrub(&reason),
            retry_after,
        },
        DeliveryOutcome::Permanent { reason } => DeliveryOutcome::Permanent {
            reason: scrub(&reason),
        },
    }
}

/// The first `REASON_BODY_CHARS` (200) characters of a response body, on one line.
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
