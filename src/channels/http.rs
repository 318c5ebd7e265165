//! What the HTTP channels (webhook, Slack) share: one kind of client, one way to send a
//! request and read its answer, and how an answer is quoted in a reason — a bounded excerpt of
//! the body, the error chain, `Retry-After`, secrets scrubbed.

use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, NaiveDateTime, Utc};
use http_body_util::{BodyExt, Full};
use hyper::header::{
    AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER, USER_AGENT,
};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as Pool;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

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

const USER_AGENT_VALUE: &str = concat!("herald/", env!("CARGO_PKG_VERSION"));

/// One keep-alive HTTP/1.1 client per channel, over hyper's pooled client with rustls (Mozilla's
/// roots) for `https`. Redirects are reported, not followed: a redirected POST turns into a GET
/// on most codes.
///
/// Not reqwest: measured on 2 cores with 200 deliveries in flight to a keep-alive sink, reqwest
/// cost 42–60 µs of CPU per request and this pool 23 µs (BENCHMARKS.md, issue 10). Proxies
/// from `HTTP(S)_PROXY` are not used.
#[derive(Clone)]
pub struct Client {
    pool: Pool<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Client {
    /// The client of `method`'s channel (its name is in the error).
    pub fn new(method: Method) -> Result<Client, ChannelError> {
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| ChannelError::Setup {
                method,
                reason: format!("setting up TLS for the HTTP client: {e}"),
            })?
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let pool = Pool::builder(TokioExecutor::new())
            .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
            .build(https);
        Ok(Client { pool })
    }

    /// A `POST` to `url`.
    pub fn post(&self, url: &str) -> Outgoing<'_> {
        Outgoing::new(self, hyper::Method::POST, url)
    }

    /// A `HEAD` of `url`.
    pub fn head(&self, url: &str) -> Outgoing<'_> {
        Outgoing::new(self, hyper::Method::HEAD, url)
    }
}

/// A request being built; a bad URL, header or body is reported when it is sent.
pub struct Outgoing<'c> {
    client: &'c Client,
    request: Result<hyper::Request<Full<Bytes>>, RequestError>,
}

impl<'c> Outgoing<'c> {
    fn new(client: &'c Client, method: hyper::Method, url: &str) -> Outgoing<'c> {
        let request = target(url)
            .map_err(RequestError::BadUrl)
            .map(|(uri, basic)| {
                let mut request = hyper::Request::new(Full::new(Bytes::new()));
                *request.method_mut() = method;
                *request.uri_mut() = uri;
                let headers = request.headers_mut();
                headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
                if let Some(mut basic) = basic {
                    basic.set_sensitive(true);
                    headers.insert(AUTHORIZATION, basic);
                }
                request
            });
        Outgoing { client, request }
    }

    /// Adds a header; a value that is not a valid header makes the request invalid.
    pub fn header(mut self, name: HeaderName, value: &str) -> Outgoing<'c> {
        if let Ok(request) = &mut self.request {
            match HeaderValue::from_str(value) {
                Ok(value) => {
                    request.headers_mut().insert(name, value);
                }
                Err(_) => {
                    self.request = Err(RequestError::Unsendable(format!(
                        "the {name} header's value is not valid in HTTP"
                    )))
                }
            }
        }
        self
    }

    /// `Authorization: Bearer <token>`, marked sensitive (never logged by hyper).
    pub fn bearer_auth(mut self, token: &str) -> Outgoing<'c> {
        if let Ok(request) = &mut self.request {
            match HeaderValue::from_str(&format!("Bearer {token}")) {
                Ok(mut value) => {
                    value.set_sensitive(true);
                    request.headers_mut().insert(AUTHORIZATION, value);
                }
                Err(_) => {
                    self.request = Err(RequestError::Unsendable(
                        "the token cannot travel in an HTTP header (a control character?)"
                            .to_string(),
                    ))
                }
            }
        }
        self
    }

    /// `body` as the request's body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Outgoing<'c> {
        if let Ok(request) = &mut self.request {
            *request.body_mut() = Full::new(body.into());
        }
        self
    }

    /// `value` as a JSON body, with its content type.
    pub fn json(self, value: &impl serde::Serialize) -> Outgoing<'c> {
        match serde_json::to_vec(value) {
            Ok(body) => self.header(CONTENT_TYPE, "application/json").body(body),
            Err(e) => Outgoing {
                client: self.client,
                request: Err(RequestError::Unsendable(format!(
                    "the JSON body could not be encoded: {e}"
                ))),
            },
        }
    }

    /// Sends the request and reads up to `limit` bytes of the answer (a longer one only costs
    /// the connection: it is not returned to the pool).
    pub async fn fetch(self, limit: usize) -> Result<Answer, RequestError> {
        let request = self.request?;
        let started = Instant::now();
        let response = self
            .client
            .pool
            .request(request)
            .await
            .map_err(RequestError::Transport)?;
        let elapsed = started.elapsed();
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = Vec::new();
        let mut incoming = response.into_body();
        while body.len() < limit {
            match incoming.frame().await {
                Some(Ok(frame)) => {
                    if let Some(chunk) = frame.data_ref() {
                        body.extend_from_slice(chunk);
                    }
                }
                // The status is the answer; an unreadable body only costs the connection.
                Some(Err(_)) | None => break,
            }
        }
        Ok(Answer {
            status,
            elapsed,
            retry_after,
            body,
        })
    }
}

/// `url` as an absolute `http`/`https` URI, and the `Authorization: Basic` header its
/// `user:password@` asks for (taken out of the URI, as browsers and curl do); or why not, without
/// quoting the URL.
fn target(url: &str) -> Result<(hyper::Uri, Option<HeaderValue>), String> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("it is not a valid URL ({e})"))?;
    match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https") => {}
        Some(scheme) => return Err(format!("the scheme `{scheme}` is not http or https")),
        None => return Err("it is not an absolute URL (http://… or https://…)".to_string()),
    }
    let Some(authority) = uri.authority().map(|a| a.as_str().to_string()) else {
        return Err("it has no host".to_string());
    };
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return Ok((uri, None));
    };
    if host.is_empty() {
        return Err("it has no host".to_string());
    }
    let credentials = match userinfo.split_once(':') {
        Some((user, password)) => format!("{}:{}", percent_decode(user), percent_decode(password)),
        None => format!("{}:", percent_decode(userinfo)),
    };
    let basic = HeaderValue::from_str(&format!("Basic {}", base64(credentials.as_bytes())))
        .map_err(|_| "its user:password cannot travel in an HTTP header".to_string())?;
    let mut parts = uri.into_parts();
    parts.authority = Some(host.parse().map_err(|e| format!("{e}"))?);
    let uri = hyper::Uri::from_parts(parts).map_err(|e| format!("{e}"))?;
    Ok((uri, Some(basic)))
}

/// `%XX` escapes decoded (bytes that are not UTF-8 are replaced, as URL parsers do).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Standard base64 with padding (RFC 4648 §4), for `Authorization: Basic`.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Why a request got no answer.
#[derive(Debug)]
pub enum RequestError {
    /// The URL cannot make a request: retrying cannot help.
    BadUrl(String),
    /// A header or the body cannot make a request: retrying cannot help.
    Unsendable(String),
    /// Connecting, TLS, sending or reading the head failed.
    Transport(hyper_util::client::legacy::Error),
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestError::BadUrl(why) | RequestError::Unsendable(why) => f.write_str(why),
            RequestError::Transport(_) => f.write_str("error sending request"),
        }
    }
}

impl std::error::Error for RequestError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RequestError::BadUrl(_) | RequestError::Unsendable(_) => None,
            RequestError::Transport(e) => Some(e),
        }
    }
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

/// Sends `request` and reads up to `limit` bytes of the answer; a failure to get an answer is
/// already an outcome. `what` names the peer in reasons; `url` is shown only redacted.
pub async fn send(
    request: Outgoing<'_>,
    what: &str,
    url: &str,
    limit: usize,
) -> Result<Answer, DeliveryOutcome> {
    request.fetch(limit).await.map_err(|e| match e {
        RequestError::BadUrl(why) => DeliveryOutcome::Permanent {
            reason: format!("{what} URL {} is invalid: {why}", redact_url(url)),
        },
        RequestError::Unsendable(why) => DeliveryOutcome::Permanent {
            reason: format!("{what} request cannot be sent: {why}"),
        },
        RequestError::Transport(_) => DeliveryOutcome::Retryable {
            reason: format!("{what} request failed: {}", error_chain(&e)),
            retry_after: None,
        },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
    }

    #[test]
    fn credentials_in_a_url_become_a_basic_header_and_leave_the_uri() {
        let (uri, basic) = target("https://al%40ice:p%3Ass@hooks.example.com:8443/h?x=1").unwrap();
        assert_eq!(uri.to_string(), "https://hooks.example.com:8443/h?x=1");
        // base64("al@ice:p:ss")
        assert_eq!(basic.unwrap(), "Basic YWxAaWNlOnA6c3M=");
        let (uri, basic) = target("http://127.0.0.1:9/endpoint").unwrap();
        assert_eq!(uri.to_string(), "http://127.0.0.1:9/endpoint");
        assert!(basic.is_none());
        let (_, basic) = target("http://token@127.0.0.1/").unwrap();
        assert_eq!(basic.unwrap(), "Basic dG9rZW46");
    }

    #[test]
    fn a_url_that_cannot_be_requested_says_why_without_quoting_it() {
        for (url, why) in [
            (
                "ftp://example.com/x",
                "the scheme `ftp` is not http or https",
            ),
            (
                "/relative/path",
                "it is not an absolute URL (http://… or https://…)",
            ),
            (
                "http://user:pw@/x",
                "it is not a valid URL (invalid authority)",
            ),
        ] {
            assert_eq!(target(url).unwrap_err(), why, "{url}");
        }
        let garbled = target("http://exa mple.com/secret-path").unwrap_err();
        assert!(!garbled.contains("secret-path"), "{garbled}");
    }

    #[test]
    fn percent_decoding_keeps_what_is_not_an_escape() {
        assert_eq!(percent_decode("a%20b%zz%4"), "a b%zz%4");
        assert_eq!(percent_decode("%E2%9C%93"), "✓");
    }
}
