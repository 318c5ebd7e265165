//! The `webhook` channel: a JSON `POST` in Coder's webhook schema (DESIGN §7).
//!
//! User messages go to `notifications.webhook.endpoint`; a message for a `webhook` target goes
//! to that target's `url`. With `notifications.webhook.signing_secret` set, each request
//! carries `X-Herald-Signature: sha256=<hex HMAC-SHA256 of the body>` so receivers can check
//! it came from Herald. URLs are secrets (their path is often the credential): reasons show
//! them only through [`redact_url`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use hyper::header::{CONTENT_TYPE, HeaderName};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::Sha256;

use super::http::{self, CONNECT_TIMEOUT, body_excerpt, error_chain, parse_retry_after};
use super::settings::WebhookSettings;
use super::{Channel, ChannelError, CheckResult, Delivery};
use crate::model::{Action, DeliveryOutcome, Method};
use crate::routing::PAYLOAD_VERSION;
use crate::secret::{Secret, redact_url};

/// The `_version` of the request body (Coder's webhook message schema).
pub const BODY_VERSION: &str = "1.1";

/// The header carrying the message id.
pub const MESSAGE_ID_HEADER: &str = "X-Message-Id";

/// The header carrying `sha256=<hex HMAC-SHA256 of the body>` when a signing secret is set.
pub const SIGNATURE_HEADER: &str = "X-Herald-Signature";

/// The same names as HTTP/1.1 sends them (header names are case-insensitive; hyper writes
/// them in lower case).
const MESSAGE_ID_HEADER_LOWER: &str = "x-message-id";
const SIGNATURE_HEADER_LOWER: &str = "x-herald-signature";

/// Response bytes read to let a connection return to the pool; a longer body closes it.
const DRAIN_LIMIT: usize = 64 * 1024;

/// Delivers messages by HTTP `POST` to the webhook endpoint or a webhook target's URL.
pub struct WebhookChannel {
    client: http::Client,
    endpoint: Option<String>,
    /// `webhook` targets by qualified name (`name`, or `username/name` for a user's own).
    targets: BTreeMap<String, Option<Secret>>,
    signer: Option<Signer>,
}

impl WebhookChannel {
    /// Builds the channel (and its connection pool): user messages to the endpoint, target
    /// messages to their target's URL.
    pub fn new(settings: &WebhookSettings) -> Result<Self, ChannelError> {
        let client = http::Client::new(Method::Webhook)?;
        let signer = settings
            .signing_secret
            .as_ref()
            .map(|secret| Signer::new(secret.expose().as_bytes()))
            .transpose()
            .map_err(|_| ChannelError::Setup {
                method: Method::Webhook,
                reason: "the signing secret cannot key an HMAC".to_string(),
            })?;
        Ok(WebhookChannel {
            client,
            endpoint: settings.endpoint.clone(),
            targets: settings.targets.iter().cloned().collect(),
            signer,
        })
    }

    /// Where `delivery` goes, or why it cannot go anywhere (a permanent failure).
    fn url_for(&self, delivery: &Delivery<'_>) -> Result<&str, String> {
        match delivery.target {
            Some(target) => match self.targets.get(target) {
                Some(Some(url)) => Ok(url.expose()),
                Some(None) => Err(format!(
                    "webhook target `{target}` has no url: set `url` in its [[targets]] entry"
                )),
                None => Err(format!(
                    "no webhook target `{target}` in the configuration: declare it in \
                     [[targets]] (or [[users]].targets for `user/name`) with type = \"webhook\" \
                     and a url"
                )),
            },
            None => self.endpoint.as_deref().ok_or_else(|| {
                "no webhook endpoint configured: set notifications.webhook.endpoint \
                 (HERALD_NOTIFICATIONS_WEBHOOK_ENDPOINT)"
                    .to_string()
            }),
        }
    }

    async fn post(&self, url: &str, delivery: &Delivery<'_>) -> DeliveryOutcome {
        let body = match serde_json::to_vec(&WebhookBody::new(delivery)) {
            Ok(body) => body,
            Err(e) => {
                return DeliveryOutcome::Permanent {
                    reason: format!("webhook body could not be encoded: {e}"),
                };
            }
        };
        let mut request = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .header(
                HeaderName::from_static(MESSAGE_ID_HEADER_LOWER),
                &delivery.message_id.to_string(),
            );
        if let Some(signer) = &self.signer {
            request = request.header(
                HeaderName::from_static(SIGNATURE_HEADER_LOWER),
                &signer.sign(&body),
            );
        }
        let answer = match http::send(request.body(body), "webhook", url, DRAIN_LIMIT).await {
            Ok(answer) => answer,
            Err(outcome) => return outcome,
        };
        if (200..300).contains(&answer.status) {
            return DeliveryOutcome::Sent; // the body of an accepted delivery is not read
        }
        // Scrub the whole answer before it is cut to an excerpt: a secret echoed across the
        // cut would otherwise survive half-visible.
        let body = scrub(&String::from_utf8_lossy(&answer.body), url);
        classify(
            answer.status,
            answer.elapsed,
            answer.retry_after.as_deref(),
            body.as_bytes(),
            Utc::now(),
        )
    }
}

#[async_trait]
impl Channel for WebhookChannel {
    fn method(&self) -> Method {
        Method::Webhook
    }

    async fn check(&self) -> Vec<CheckResult> {
        let mut peers: Vec<(String, &str)> = Vec::new();
        if let Some(endpoint) = &self.endpoint {
            peers.push(("webhook endpoint".to_string(), endpoint.as_str()));
        }
        for (name, url) in &self.targets {
            if let Some(url) = url {
                peers.push((format!("webhook target `{name}`"), url.expose()));
            }
        }
        let mut results = Vec::new();
        for (what, url) in peers {
            let check = format!("{what} {}", redact_url(url));
            // HEAD sends no notification; any HTTP answer proves the endpoint is reachable.
            let answer =
                tokio::time::timeout(CONNECT_TIMEOUT, self.client.head(url).fetch(0)).await;
            results.push(match answer {
                Ok(Ok(answer)) => CheckResult::pass(
                    check,
                    format!("reachable (answered HTTP {} to HEAD)", answer.status),
                ),
                Ok(Err(e)) => CheckResult::fail(check, scrub(&error_chain(&e), url)),
                Err(_) => CheckResult::fail(
                    check,
                    format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()),
                ),
            });
        }
        results
    }

    async fn deliver(&self, delivery: &Delivery<'_>) -> DeliveryOutcome {
        let url = match self.url_for(delivery) {
            Ok(url) => url,
            Err(reason) => return DeliveryOutcome::Permanent { reason },
        };
        let outcome = self.post(url, delivery).await;
        http::scrub_reason(outcome, |reason| scrub(reason, url))
    }
}

impl fmt::Debug for WebhookChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let targets: Vec<&str> = self.targets.keys().map(String::as_str).collect();
        f.debug_struct("WebhookChannel")
            .field("endpoint", &self.endpoint.as_deref().map(redact_url))
            .field("targets", &targets)
            .field("signed", &self.signer.is_some())
            .finish()
    }
}

/// Computes `X-Herald-Signature` values; keyed once, cloned per request.
#[derive(Clone)]
struct Signer {
    mac: Hmac<Sha256>,
}

impl Signer {
    fn new(secret: &[u8]) -> Result<Self, hmac::digest::InvalidLength> {
        Ok(Signer {
            mac: Hmac::new_from_slice(secret)?,
        })
    }

    /// `sha256=<lowercase hex HMAC-SHA256 of body>`.
    fn sign(&self, body: &[u8]) -> String {
        let digest = self.mac.clone().chain_update(body).finalize().into_bytes();
        format!("sha256={}", hex::encode(digest))
    }
}

/// The request body: Coder's webhook message, `_version` 1.1, around its 1.2 payload.
#[derive(Debug, Serialize)]
struct WebhookBody<'a> {
    #[serde(rename = "_version")]
    version: &'static str,
    msg_id: String,
    payload: WebhookPayload<'a>,
    title: &'a str,
    title_markdown: &'a str,
    body: &'a str,
    body_markdown: &'a str,
}

#[derive(Debug, Serialize)]
struct WebhookPayload<'a> {
    #[serde(rename = "_version")]
    version: &'static str,
    notification_name: &'a str,
    notification_template_id: &'a str,
    user_id: String,
    user_email: &'a str,
    user_name: &'a str,
    user_username: &'a str,
    /// Rendered, unlike the templates stored in the payload.
    actions: &'a [Action],
    labels: JsonOr<'a>,
    data: JsonOr<'a>,
    targets: JsonOr<'a>,
}

/// A payload value, or an empty object / array when the payload lacks it.
#[derive(Debug)]
enum JsonOr<'a> {
    Value(&'a Value),
    EmptyObject,
    EmptyArray,
}

impl Serialize for JsonOr<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            JsonOr::Value(value) => value.serialize(s),
            JsonOr::EmptyObject => Map::new().serialize(s),
            JsonOr::EmptyArray => s.collect_seq(std::iter::empty::<()>()),
        }
    }
}

impl<'a> WebhookBody<'a> {
    fn new(delivery: &'a Delivery<'a>) -> Self {
        let payload = delivery.payload;
        let text = |field: &str| payload.get(field).and_then(Value::as_str).unwrap_or("");
        let present = |field: &str| payload.get(field).filter(|v| !v.is_null());
        let name = match text("notification_name") {
            "" => delivery.event,
            name => name,
        };
        let user_id = match text("user_id") {
            "" => delivery
                .user_id
                .map(|id| id.to_string())
                .unwrap_or_default(),
            id => id.to_string(),
        };
        let rendered = delivery.rendered;
        WebhookBody {
            version: BODY_VERSION,
            msg_id: delivery.message_id.to_string(),
            payload: WebhookPayload {
                version: PAYLOAD_VERSION,
                notification_name: name,
                notification_template_id: text("notification_template_id"),
                user_id,
                user_email: text("user_email"),
                user_name: text("user_name"),
                user_username: text("user_username"),
                actions: &rendered.actions,
                labels: present("labels").map_or(JsonOr::EmptyObject, JsonOr::Value),
                data: present("data").map_or(JsonOr::EmptyObject, JsonOr::Value),
                targets: present("targets").map_or(JsonOr::EmptyArray, JsonOr::Value),
            },
            title: &rendered.title,
            title_markdown: &rendered.title,
            body: &rendered.body_text,
            body_markdown: &rendered.body_markdown,
        }
    }
}

/// What an HTTP answer means for the message: 2xx sent; 408, 429 and 5xx worth retrying
/// (429 and 503 with the peer's `Retry-After`); anything else, notably other 4xx, permanent,
/// quoting the start of the response body.
fn classify(
    status: u16,
    elapsed: Duration,
    retry_after: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> DeliveryOutcome {
    let took = format!("webhook {status} after {:.1}s", elapsed.as_secs_f64());
    match status {
        200..=299 => DeliveryOutcome::Sent,
        408 | 429 | 500..=599 => DeliveryOutcome::Retryable {
            reason: took,
            retry_after: match status {
                429 | 503 => retry_after.and_then(|v| parse_retry_after(v, now)),
                _ => None,
            },
        },
        _ => {
            let quoted = body_excerpt(body);
            DeliveryOutcome::Permanent {
                reason: if quoted.is_empty() {
                    took
                } else {
                    format!("{took}: {quoted}")
                },
            }
        }
    }
}

/// Removes from `reason` any part of `url` that may be a secret: the whole URL becomes its
/// [`redact_url`] form; its path and query, and a `user:password@`, become `<redacted>`.
fn scrub(reason: &str, url: &str) -> String {
    let reason = reason.replace(url, &redact_url(url));
    match url.split_once("://") {
        Some(_) => http::scrub(&reason, &http::url_secrets(url)),
        None => reason,
    }
}

#[cfg(test)]
mod tests;
