//! The Slack channels (DESIGN §7, SQLMesh's targets): `slack_webhook` posts a Block Kit message
//! to an incoming webhook's URL; `slack_api` posts it to `chat.postMessage` with a bearer token,
//! in a channel or to a member (a direct message).
//!
//! Slack reaches people only through targets: a delivery's `target` (its qualified name) picks
//! the URL, or the token and channel. Webhook URLs (their path is the credential) and tokens
//! are secrets: reasons show URLs only through [`redact_url`] and never show a token.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use serde_json::{Value, json};

use super::webhook::{body_excerpt, error_chain, parse_retry_after};
use super::{Channel, ChannelError, CheckResult, Delivery};
use crate::config::{Config, Secret, TargetConfig, redact_url};
use crate::model::{Action, DeliveryOutcome, Method, TargetType};
use crate::render::Rendered;

/// How long establishing a connection may take; the whole delivery is bounded by the
/// dispatcher's `dispatch_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest a `herald doctor` check waits for Slack's answer; shorter when
/// `dispatch_timeout` is. A URL that accepts the connection and never answers must not hang
/// doctor (nothing else bounds a check).
const CHECK_TIMEOUT_MAX: Duration = Duration::from_secs(10);

/// Idle keep-alive connections kept per host: enough for the dispatcher's concurrency.
const MAX_IDLE_PER_HOST: usize = 256;

/// Bytes of an incoming webhook's answer read (it is `ok` or an error code).
const WEBHOOK_ANSWER_LIMIT: usize = 64 * 1024;

/// Bytes of a `chat.postMessage` answer read: it echoes the whole message back.
const API_ANSWER_LIMIT: usize = 1024 * 1024;

/// Slack's limits (Block Kit reference, `chat.postMessage`).
const HEADER_TEXT_MAX: usize = 150;
const SECTION_TEXT_MAX: usize = 3000;
const BLOCKS_MAX: usize = 50;
const BUTTONS_MAX: usize = 25;
const BUTTON_TEXT_MAX: usize = 75;
const BUTTON_URL_MAX: usize = 3000;
const TEXT_MAX: usize = 40_000;

/// `ok:false` errors of `chat.postMessage` that another try may cure.
const RETRYABLE_API_ERRORS: &[&str] = &[
    "ratelimited",
    "rate_limited",
    "message_limit_exceeded",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
    "team_added_to_org",
];

// ---------------------------------------------------------------------------------------------
// slack_webhook
// ---------------------------------------------------------------------------------------------

/// Delivers `slack_webhook` messages: a Block Kit `POST` to the target's incoming-webhook URL.
pub struct SlackWebhookChannel {
    client: reqwest::Client,
    /// How long one doctor check waits ([`CHECK_TIMEOUT_MAX`] at most).
    check_timeout: Duration,
    /// `slack_webhook` targets' URLs by qualified name (`name`, or `username/name`).
    targets: HashMap<String, Option<Secret>>,
}

impl SlackWebhookChannel {
    /// Builds the channel (and its connection pool) from the `slack_webhook` targets of
    /// `[[targets]]` and `[[users]]`.
    pub fn from_config(config: &Config) -> Result<Self, ChannelError> {
        Ok(SlackWebhookChannel {
            client: http_client(Method::SlackWebhook)?,
            check_timeout: check_timeout(config),
            targets: targets_of(config, TargetType::SlackWebhook)
                .map(|(name, target)| (name, target.url.clone()))
                .collect(),
        })
    }

    /// The URL `delivery` goes to, or why it cannot go anywhere (a permanent failure).
    fn url_for(&self, delivery: &Delivery<'_>) -> Result<&str, String> {
        let (name, url) = find_target(&self.targets, delivery, TargetType::SlackWebhook)?;
        url.as_ref().map(Secret::expose).ok_or_else(|| {
            format!("slack_webhook target `{name}` has no url: set `url` in its [[targets]] entry")
        })
    }

    async fn post(&self, url: &str, message: &Value) -> DeliveryOutcome {
        let request = self
            .client
            .post(url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .json(message);
        let secrets = url_secrets(url);
        match exchange(
            request,
            "slack webhook",
            url,
            &secrets,
            WEBHOOK_ANSWER_LIMIT,
        )
        .await
        {
            Ok(answer) => classify_webhook(
                answer.status,
                answer.retry_after.as_deref(),
                &answer.body,
                Utc::now(),
            ),
            Err(outcome) => outcome,
        }
    }
}

#[async_trait]
impl Channel for SlackWebhookChannel {
    fn method(&self) -> Method {
        Method::SlackWebhook
    }

    /// Posts an empty object: Slack refuses it (`invalid_payload` / `no_text`) without posting
    /// anything when the URL is live, and answers 403/404/410 when it is wrong or revoked.
    async fn check(&self) -> Vec<CheckResult> {
        let mut names: Vec<&String> = self.targets.keys().collect();
        names.sort();
        let mut results = Vec::new();
        for name in names {
            let check = format!("slack_webhook target `{name}`");
            let Some(Some(url)) = self.targets.get(name) else {
                results.push(CheckResult::fail(check, "no url configured"));
                continue;
            };
            let url = url.expose();
            let secrets = [url];
            let answer = within(self.check_timeout, async {
                let response = self
                    .client
                    .post(url)
                    .json(&serde_json::json!({}))
                    .send()
                    .await?;
                let status = response.status().as_u16();
                let body = response.bytes().await.unwrap_or_default();
                Ok((status, body))
            })
            .await;
            results.push(match answer {
                None => CheckResult::fail(check, no_answer(self.check_timeout, url)),
                Some(Ok((status, body))) => {
                    let body = body_excerpt(&body);
                    match status {
                        400 | 200 => CheckResult::pass(
                            check,
                            format!("reachable; the webhook answered {status} {body} to an empty test (nothing posted)"),
                        ),
                        _ => CheckResult::fail(
                            check,
                            scrub(&format!("the webhook answered {status} {body}: check or recreate its URL"), &secrets),
                        ),
                    }
                }
                Some(Err(e)) => CheckResult::fail(
                    check,
                    scrub(&format!("request failed: {}", error_chain(&e.without_url())), &secrets),
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
        let message = slack_message(delivery.event, delivery.rendered, delivery.payload);
        let outcome = self.post(url, &message).await;
        scrub_outcome(outcome, &url_secrets(url))
    }
}

impl fmt::Debug for SlackWebhookChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut targets: Vec<String> = self
            .targets
            .iter()
            .map(|(name, url)| {
                let url = url
                    .as_ref()
                    .map_or("no url".to_string(), |u| redact_url(u.expose()));
                format!("{name} → {url}")
            })
            .collect();
        targets.sort_unstable();
        f.debug_struct("SlackWebhookChannel")
            .field("targets", &targets)
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// slack_api
// ---------------------------------------------------------------------------------------------

/// Delivers `slack_api` messages: `chat.postMessage` with the target's bearer token, to its
/// channel (or member id, for a direct message).
pub struct SlackApiChannel {
    client: reqwest::Client,
    /// How long one doctor check waits ([`CHECK_TIMEOUT_MAX`] at most).
    check_timeout: Duration,
    /// `slack_api` targets by qualified name (`name`, or `username/name`).
    targets: HashMap<String, ApiTarget>,
}

/// What a `slack_api` target needs to post.
struct ApiTarget {
    token: Option<Secret>,
    channel: Option<String>,
    /// `{api_base_url}/chat.postMessage`.
    endpoint: String,
}

impl SlackApiChannel {
    /// Builds the channel (and its connection pool) from the `slack_api` targets of
    /// `[[targets]]` and `[[users]]`.
    pub fn from_config(config: &Config) -> Result<Self, ChannelError> {
        Ok(SlackApiChannel {
            client: http_client(Method::SlackApi)?,
            check_timeout: check_timeout(config),
            targets: targets_of(config, TargetType::SlackApi)
                .map(|(name, target)| {
                    let base = target.api_base_url.trim_end_matches('/');
                    let api = ApiTarget {
                        token: target.token.clone(),
                        channel: target.channel.clone(),
                        endpoint: format!("{base}/chat.postMessage"),
                    };
                    (name, api)
                })
                .collect(),
        })
    }

    /// The target `delivery` goes to, its token and its channel, or why it cannot go anywhere.
    fn target_for<'s>(
        &'s self,
        delivery: &Delivery<'_>,
    ) -> Result<(&'s ApiTarget, &'s str, &'s str), String> {
        let (name, target) = find_target(&self.targets, delivery, TargetType::SlackApi)?;
        let missing = |key: &str, what: &str| {
            format!(
                "slack_api target `{name}` has no {key}: set `{key}` ({what}) in its \
                 [[targets]] entry"
            )
        };
        let token = target
            .token
            .as_ref()
            .map(Secret::expose)
            .ok_or_else(|| missing("token", "a Slack API token"))?;
        let channel = target
            .channel
            .as_deref()
            .ok_or_else(|| missing("channel", "a channel or member id"))?;
        Ok((target, token, channel))
    }

    async fn post(
        &self,
        target: &ApiTarget,
        token: &str,
        channel: &str,
        delivery: &Delivery<'_>,
    ) -> DeliveryOutcome {
        let Ok(mut authorization) = HeaderValue::from_str(&format!("Bearer {token}")) else {
            return DeliveryOutcome::Permanent {
                reason: "slack_api token is not a valid HTTP header value: check the target's \
                         token for spaces or line breaks"
                    .to_string(),
            };
        };
        authorization.set_sensitive(true);
        let mut message = slack_message(delivery.event, delivery.rendered, delivery.payload);
        if let Value::Object(fields) = &mut message {
            fields.insert("channel".to_string(), Value::String(channel.to_string()));
        }
        let request = self
            .client
            .post(&target.endpoint)
            .header(AUTHORIZATION, authorization)
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            )
            .body(message.to_string());
        match exchange(
            request,
            "slack chat.postMessage",
            &target.endpoint,
            &[token],
            API_ANSWER_LIMIT,
        )
        .await
        {
            Ok(answer) => classify_api(
                answer.status,
                answer.retry_after.as_deref(),
                &answer.body,
                channel,
                Utc::now(),
            ),
            Err(outcome) => outcome,
        }
    }
}

#[async_trait]
impl Channel for SlackApiChannel {
    fn method(&self) -> Method {
        Method::SlackApi
    }

    /// `auth.test` with each target's token: proves the token works without posting.
    async fn check(&self) -> Vec<CheckResult> {
        let mut names: Vec<&String> = self.targets.keys().collect();
        names.sort();
        let mut results = Vec::new();
        for name in names {
            let Some(target) = self.targets.get(name) else {
                continue;
            };
            let check = format!("slack_api target `{name}`");
            let Some(token) = &target.token else {
                results.push(CheckResult::fail(check, "no token configured"));
                continue;
            };
            let url = target
                .endpoint
                .trim_end_matches("chat.postMessage")
                .to_string()
                + "auth.test";
            let answer = within(self.check_timeout, async {
                let response = self
                    .client
                    .post(&url)
                    .bearer_auth(token.expose())
                    .send()
                    .await?;
                let status = response.status().as_u16();
                let body: serde_json::Value = response.json().await.unwrap_or_default();
                Ok((status, body))
            })
            .await;
            let secrets = [token.expose()];
            results.push(match answer {
                None => CheckResult::fail(check, no_answer(self.check_timeout, &url)),
                Some(Ok((status, body))) => {
                    if body["ok"] == true {
                        CheckResult::pass(
                            check,
                            format!(
                                "auth.test ok as {} in {}",
                                body["user"].as_str().unwrap_or("?"),
                                body["team"].as_str().unwrap_or("?")
                            ),
                        )
                    } else {
                        let error = body["error"].as_str().unwrap_or("unexpected answer");
                        CheckResult::fail(
                            check,
                            scrub(&format!("auth.test HTTP {status}: {error}"), &secrets),
                        )
                    }
                }
                Some(Err(e)) => CheckResult::fail(
                    check,
                    scrub(
                        &format!("auth.test failed: {}", error_chain(&e.without_url())),
                        &secrets,
                    ),
                ),
            });
        }
        results
    }

    async fn deliver(&self, delivery: &Delivery<'_>) -> DeliveryOutcome {
        let (target, token, channel) = match self.target_for(delivery) {
            Ok(found) => found,
            Err(reason) => return DeliveryOutcome::Permanent { reason },
        };
        let outcome = self.post(target, token, channel, delivery).await;
        scrub_outcome(outcome, &[token])
    }
}

impl fmt::Debug for SlackApiChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut targets: Vec<String> = self
            .targets
            .iter()
            .map(|(name, t)| {
                let channel = t.channel.as_deref().unwrap_or("no channel");
                format!("{name} → {channel} via {}", redact_url(&t.endpoint))
            })
            .collect();
        targets.sort_unstable();
        f.debug_struct("SlackApiChannel")
            .field("targets", &targets)
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Shared HTTP plumbing
// ---------------------------------------------------------------------------------------------

/// `dispatch_timeout`, at most [`CHECK_TIMEOUT_MAX`]: a check waits no longer than a delivery.
fn check_timeout(config: &Config) -> Duration {
    config.notifications.dispatch_timeout.min(CHECK_TIMEOUT_MAX)
}

/// `exchange`'s result, or `None` when it took longer than `timeout`.
async fn within<T>(
    timeout: Duration,
    exchange: impl std::future::Future<Output = Result<T, reqwest::Error>>,
) -> Option<Result<T, reqwest::Error>> {
    tokio::time::timeout(timeout, exchange).await.ok()
}

/// Why a check failed when Slack never answered; `url` is shown redacted.
fn no_answer(timeout: Duration, url: &str) -> String {
    format!(
        "no answer within {} from {}: the server took the connection but did not reply; check \
         the URL (api_base_url for slack_api) and that it is Slack or a proxy that answers",
        humantime::format_duration(timeout),
        redact_url(url)
    )
}

/// One keep-alive client per channel; redirects are reported, not followed (a redirected POST
/// turns into a GET on most codes).
fn http_client(method: Method) -> Result<reqwest::Client, ChannelError> {
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

/// The targets of `target_type`, global ones by `name` and users' own by `username/name`
/// ([`crate::model::TargetRef::qualified_name`]).
fn targets_of(
    config: &Config,
    target_type: TargetType,
) -> impl Iterator<Item = (String, &TargetConfig)> {
    let global = config.targets.iter().map(|t| (t.name.clone(), t));
    let owned = config.users.iter().flat_map(|u| {
        u.targets
            .iter()
            .map(move |t| (format!("{}/{}", u.username, t.name), t))
    });
    global
        .chain(owned)
        .filter(move |(_, t)| t.target_type == target_type)
}

/// The target named by `delivery.target`, or a reason naming what is missing.
fn find_target<'t, T>(
    targets: &'t HashMap<String, T>,
    delivery: &Delivery<'_>,
    target_type: TargetType,
) -> Result<(&'t str, &'t T), String> {
    let Some(name) = delivery.target else {
        return Err(format!(
            "a {target_type} message needs a target: Slack reaches people only through \
             [[targets]] of type \"{target_type}\""
        ));
    };
    targets
        .get_key_value(name)
        .map(|(name, target)| (name.as_str(), target))
        .ok_or_else(|| {
            format!(
                "no {target_type} target `{name}` in the configuration: declare it in \
                 [[targets]] (or [[users]].targets for `user/name`) with type = \
                 \"{target_type}\""
            )
        })
}

/// The parts of an HTTP answer that classification needs.
struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: Vec<u8>,
}

/// Sends `request` and reads up to `limit` bytes of the answer, with `secrets` redacted from it
/// before anything quotes it (a quote cut short would hide half a secret from a later scrub);
/// a failure to get an answer is already an outcome. `what` names the peer in reasons; `url`
/// is shown only redacted.
async fn exchange(
    request: reqwest::RequestBuilder,
    what: &str,
    url: &str,
    secrets: &[&str],
    limit: usize,
) -> Result<Answer, DeliveryOutcome> {
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
            // What was read is all there is to classify; a cut answer only costs the
            // connection.
            Ok(None) | Err(_) => break,
        }
    }
    let body = match String::from_utf8(body) {
        Ok(text) => scrub(&text, secrets).into_bytes(),
        Err(not_text) => scrub(&String::from_utf8_lossy(not_text.as_bytes()), secrets).into_bytes(),
    };
    Ok(Answer {
        status,
        retry_after,
        body,
    })
}

/// What an incoming webhook's answer means: 2xx sent; 408, 429 and 5xx retryable (after the
/// peer's `Retry-After`); anything else (404 `no_service`, 403, 410 …) permanent, quoting the
/// answer and, for the codes Slack documents, what to do.
fn classify_webhook(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> DeliveryOutcome {
    let quoted = body_excerpt(body);
    let mut reason = format!("slack webhook {status}");
    if !quoted.is_empty() {
        reason.push_str(": ");
        reason.push_str(&quoted);
    }
    match status {
        200..=299 => DeliveryOutcome::Sent,
        408 | 429 | 500..=599 => DeliveryOutcome::Retryable {
            reason,
            retry_after: retry_after.and_then(|v| parse_retry_after(v, now)),
        },
        _ => {
            if let Some(hint) = webhook_error_hint(&quoted) {
                reason.push_str(&format!(" ({hint})"));
            }
            DeliveryOutcome::Permanent { reason }
        }
    }
}

/// What to do about an incoming webhook's error code.
fn webhook_error_hint(code: &str) -> Option<&'static str> {
    Some(match code {
        "no_service" | "invalid_token" | "no_team" | "team_disabled" => {
            "the webhook was disabled or removed: create a new incoming webhook and update the \
             target's url"
        }
        "channel_not_found" => {
            "the webhook's channel was deleted: create an incoming webhook for another channel"
        }
        "channel_is_archived" => {
            "the webhook's channel is archived: unarchive it or create a webhook for another \
             channel"
        }
        "action_prohibited" | "posting_to_general_channel_denied" => {
            "the workspace restricts who may post in the webhook's channel"
        }
        _ => return None,
    })
}

/// What a `chat.postMessage` answer means: `{"ok":true}` sent; `ok:false` with a transient
/// error (`ratelimited`, `internal_error` …), HTTP 429 or 5xx retryable (after the peer's
/// `Retry-After`); any other `ok:false` error permanent, saying what to do for the common ones;
/// an answer that is not Slack's JSON retryable, quoting it.
fn classify_api(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    channel: &str,
    now: DateTime<Utc>,
) -> DeliveryOutcome {
    const WHAT: &str = "slack chat.postMessage";
    let retry_after = retry_after.and_then(|v| parse_retry_after(v, now));
    let answer: Option<Value> = serde_json::from_slice(body).ok();
    // Slack puts `ok` first; an echo longer than the read limit is still a success.
    let ok = match &answer {
        Some(answer) => answer.get("ok").and_then(Value::as_bool),
        None => body.starts_with(b"{\"ok\":true,").then_some(true),
    };
    let error = answer
        .as_ref()
        .and_then(|a| a.get("error"))
        .and_then(Value::as_str);
    match (ok, error) {
        (Some(true), _) if (200..300).contains(&status) => DeliveryOutcome::Sent,
        (Some(false), Some(error)) => {
            let error = body_excerpt(error.as_bytes());
            if RETRYABLE_API_ERRORS.contains(&error.as_str()) || status == 429 || status >= 500 {
                return DeliveryOutcome::Retryable {
                    reason: format!("{WHAT}: {error}"),
                    retry_after,
                };
            }
            let mut reason = format!("{WHAT}: {error}");
            let detail = answer
                .as_ref()
                .and_then(|a| a.pointer("/response_metadata/messages"))
                .and_then(Value::as_array)
                .map(|messages| {
                    let joined: Vec<&str> = messages.iter().filter_map(Value::as_str).collect();
                    body_excerpt(joined.join("; ").as_bytes())
                })
                .filter(|detail| !detail.is_empty());
            match (api_error_hint(&error, channel), detail) {
                (Some(hint), Some(detail)) => reason.push_str(&format!(" ({hint}: {detail})")),
                (Some(hint), None) => reason.push_str(&format!(" ({hint})")),
                (None, Some(detail)) => reason.push_str(&format!(" ({detail})")),
                (None, None) => {}
            }
            DeliveryOutcome::Permanent { reason }
        }
        _ if status == 429 => DeliveryOutcome::Retryable {
            reason: format!("{WHAT}: ratelimited (HTTP 429)"),
            retry_after,
        },
        _ => {
            let quoted = body_excerpt(body);
            let mut reason = if (500..600).contains(&status) {
                format!("{WHAT}: HTTP {status}")
            } else {
                format!("{WHAT}: unexpected answer (HTTP {status})")
            };
            if !quoted.is_empty() {
                reason.push_str(": ");
                reason.push_str(&quoted);
            }
            DeliveryOutcome::Retryable {
                reason,
                retry_after,
            }
        }
    }
}

/// What to do about a permanent `chat.postMessage` error.
fn api_error_hint(error: &str, channel: &str) -> Option<String> {
    Some(match error {
        "channel_not_found" => format!(
            "no channel `{channel}` the app can see: check the target's channel (a channel id \
             like C0123456789, or a member id like U0123456789) and invite the app to private \
             channels"
        ),
        "not_in_channel" => format!(
            "invite the app to `{channel}` (/invite @your-app) or give it the chat:write.public \
             scope"
        ),
        "is_archived" => {
            format!("`{channel}` is archived: unarchive it or point the target at another channel")
        }
        "invalid_auth" | "not_authed" => {
            "the token is not valid: check the target's token".to_string()
        }
        "account_inactive" => {
            "the token belongs to a deactivated user or workspace: issue a new token".to_string()
        }
        "token_revoked" | "token_expired" => {
            "the token is no longer valid: issue a new one and update the target's token"
                .to_string()
        }
        "missing_scope" => {
            "the token lacks the chat:write scope: add it to the app and reinstall it".to_string()
        }
        "not_allowed_token_type" => "use a bot token (xoxb-…) for the target".to_string(),
        "restricted_action" | "ekm_access_denied" => {
            format!("the workspace does not let the app post in `{channel}`")
        }
        "cannot_dm_bot" => format!("`{channel}` is a bot, which cannot get direct messages"),
        "msg_too_long" => "the message is longer than Slack accepts".to_string(),
        "no_text" => "the message had no text".to_string(),
        "invalid_blocks" | "invalid_blocks_format" => {
            "Slack rejected the message's blocks".to_string()
        }
        _ => return None,
    })
}

/// The secret parts of a webhook URL: its path and query (the credential) and any
/// `user:password@`.
fn url_secrets(url: &str) -> Vec<&str> {
    let Some((_, rest)) = url.split_once("://") else {
        return vec![url];
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let userinfo = authority.rsplit_once('@').map(|(userinfo, _)| userinfo);
    [Some(tail), userinfo].into_iter().flatten().collect()
}

/// `text` with every occurrence of `secrets` replaced by `<redacted>`.
fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut text = text.to_string();
    for secret in secrets.iter().filter(|s| s.len() > 1) {
        if text.contains(secret) {
            text = text.replace(secret, "<redacted>");
        }
    }
    text
}

/// `outcome` with [`scrub`]bed reason: a peer or an error may echo the URL or the token.
fn scrub_outcome(outcome: DeliveryOutcome, secrets: &[&str]) -> DeliveryOutcome {
    match outcome {
        DeliveryOutcome::Sent => DeliveryOutcome::Sent,
        DeliveryOutcome::Retryable {
            reason,
            retry_after,
        } => DeliveryOutcome::Retryable {
            reason: scrub(&reason, secrets),
            retry_after,
        },
        DeliveryOutcome::Permanent { reason } => DeliveryOutcome::Permanent {
            reason: scrub(&reason, secrets),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// The Block Kit message
// ---------------------------------------------------------------------------------------------

/// How an event reads at a glance, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Failed,
    Alert,
    Started,
    Succeeded,
    Notice,
}

impl Status {
    /// `*_failure` / `*_failed*` failed, `*out_of_*` an alert, `*_start` started, `*_end` and
    /// `*success*` succeeded, anything else a notice.
    fn of(event: &str) -> Status {
        if event.contains("_failure") || event.contains("_failed") {
            Status::Failed
        } else if event.contains("out_of_") {
            Status::Alert
        } else if event.ends_with("_start") || event.ends_with("_started") {
            Status::Started
        } else if event.ends_with("_end") || event.contains("success") {
            Status::Succeeded
        } else {
            Status::Notice
        }
    }

    fn emoji(self) -> &'static str {
        match self {
            Status::Failed => ":x:",
            Status::Alert => ":red_circle:",
            Status::Started => ":arrow_forward:",
            Status::Succeeded => ":white_check_mark:",
            Status::Notice => ":bell:",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Status::Failed => "Failed",
            Status::Alert => "Alert",
            Status::Started => "Started",
            Status::Succeeded => "Succeeded",
            Status::Notice => "Notice",
        }
    }
}

/// A run of the message: prose (Slack mrkdwn, already escaped) or preformatted code (raw).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Text(String),
    Code(String),
}

/// The Block Kit message for one notification, as both Slack channels send it (`slack_api`
/// adds `channel`): `{"text", "blocks"}` with a `header` (status emoji and title), a section
/// with the status and the message (the Markdown body as Slack mrkdwn, each fenced code block
/// its own preformatted section), the payload's `data.sql` and `data.error` preformatted when
/// the body does not already show them, and the actions with absolute URLs as buttons. `text`
/// is the fallback notifications show. Every text is cut to Slack's limits with `…`.
pub fn slack_message(event: &str, rendered: &Rendered, payload: &Value) -> Value {
    let status = Status::of(event);
    let title = match rendered.title.trim() {
        "" => event,
        title => title,
    };
    let header = json!({
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": cut(&format!("{} {title}", status.emoji()), HEADER_TEXT_MAX),
            "emoji": true,
        },
    });

    let mut segments = Vec::new();
    push_segment(
        &mut segments,
        Segment::Text(format!(
            "*Status:* {} · *Event:* `{}`",
            status.label(),
            escape(event)
        )),
    );
    for segment in markdown_segments(&rendered.body_markdown) {
        push_segment(&mut segments, segment);
    }
    push_failure_detail(&mut segments, payload);

    let buttons = buttons(&rendered.actions);
    let room = BLOCKS_MAX - 1 - usize::from(!buttons.is_empty());
    if segments.len() > room {
        segments.truncate(room - 1);
        segments.push(Segment::Text("…".to_string()));
    }
    let mut blocks = Vec::with_capacity(segments.len() + 2);
    blocks.push(header);
    blocks.extend(segments.iter().map(section_block));
    if !buttons.is_empty() {
        blocks.push(json!({"type": "actions", "elements": buttons}));
    }

    let mut text = format!("{} {}", status.emoji(), escape(title));
    let body = rendered.body_text.trim();
    if !body.is_empty() {
        text.push('\n');
        text.push_str(&escape(body));
    }
    json!({"text": cut_mrkdwn(&text, TEXT_MAX), "blocks": blocks})
}

/// Appends `segment`, joining prose to prose so one section holds it; empty runs are dropped.
fn push_segment(segments: &mut Vec<Segment>, segment: Segment) {
    match (segments.last_mut(), segment) {
        (_, Segment::Text(text)) if text.trim().is_empty() => {}
        (_, Segment::Code(code)) if code.trim().is_empty() => {}
        (Some(Segment::Text(last)), Segment::Text(text)) => {
            last.push_str("\n\n");
            last.push_str(&text);
        }
        (_, segment) => segments.push(segment),
    }
}

/// `data.sql` and `data.error` as preformatted sections, unless the body already shows them
/// in a code block (the catalog's failure templates do).
fn push_failure_detail(segments: &mut Vec<Segment>, payload: &Value) {
    for (key, label) in [("sql", "Query"), ("error", "Error")] {
        let detail = match payload.pointer(&format!("/data/{key}")) {
            None | Some(Value::Null) => continue,
            Some(Value::String(text)) => text.trim().to_string(),
            Some(other) => serde_json::to_string_pretty(other).unwrap_or_default(),
        };
        if detail.is_empty() {
            continue;
        }
        let shown = segments
            .iter()
            .any(|s| matches!(s, Segment::Code(code) if code.contains(&detail)));
        if !shown {
            push_segment(segments, Segment::Text(format!("*{label}:*")));
            push_segment(segments, Segment::Code(detail));
        }
    }
}

/// A `section` block for a segment, cut to Slack's section limit (code stays fenced).
fn section_block(segment: &Segment) -> Value {
    let text = match segment {
        Segment::Text(text) => cut_mrkdwn(text, SECTION_TEXT_MAX),
        Segment::Code(code) => {
            let fences = "```\n\n```".chars().count();
            format!(
                "```\n{}\n```",
                cut_mrkdwn(&escape(code), SECTION_TEXT_MAX - fences)
            )
        }
    };
    json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})
}

/// Url buttons for the actions Slack can open: absolute http(s) URLs only (a relative link
/// would make Slack refuse the whole message).
fn buttons(actions: &[Action]) -> Vec<Value> {
    actions
        .iter()
        .filter(|a| is_absolute_url(&a.url) && a.url.chars().count() <= BUTTON_URL_MAX)
        .take(BUTTONS_MAX)
        .map(|action| {
            let label = match action.label.trim() {
                "" => "Open",
                label => label,
            };
            json!({
                "type": "button",
                "text": {"type": "plain_text", "text": cut(label, BUTTON_TEXT_MAX), "emoji": true},
                "url": action.url,
            })
        })
        .collect()
}

fn is_absolute_url(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

/// Escapes the three characters Slack's mrkdwn reserves.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// The byte index where `text` must be cut to leave room for `…` within `max` chars, or
/// `None` when it fits.
fn cut_point(text: &str, max: usize) -> Option<usize> {
    text.char_indices().nth(max)?;
    Some(
        text.char_indices()
            .nth(max.saturating_sub(1))
            .map_or(text.len(), |(i, _)| i),
    )
}

/// `text` if it has at most `max` chars, else its first `max - 1` chars and `…`.
fn cut(text: &str, max: usize) -> String {
    match cut_point(text, max) {
        Some(end) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// Like [`cut`] for escaped mrkdwn: never leaves half an entity (`&am`) or half a link
/// (`<https://…|te`).
fn cut_mrkdwn(text: &str, max: usize) -> String {
    let Some(end) = cut_point(text, max) else {
        return text.to_string();
    };
    let mut head = &text[..end];
    if let Some(amp) = head.rfind('&')
        && head.len() - amp < "&amp;".len()
        && !head[amp..].contains(';')
    {
        head = &head[..amp];
    }
    if let Some(open) = head.rfind('<')
        && !head[open..].contains('>')
    {
        head = &head[..open];
    }
    format!("{head}…")
}

/// The Markdown body as Slack mrkdwn, split at fenced code blocks: `**b**` → `*b*`, `_i_`,
/// `~~s~~` → `~s~`, headings bold, `[t](https://u)` → `<https://u|t>` (a relative link keeps
/// only its text), lists with `•`, quotes with `>`; `&`, `<`, `>` escaped.
fn markdown_segments(markdown: &str) -> Vec<Segment> {
    let mut writer = MrkdwnWriter::default();
    for event in Parser::new_ext(markdown, Options::ENABLE_STRIKETHROUGH) {
        writer.event(event);
    }
    writer.finish()
}

#[derive(Default)]
struct MrkdwnWriter {
    segments: Vec<Segment>,
    /// The prose being written.
    text: String,
    /// The code block being read, raw.
    code: Option<String>,
    /// Line breaks owed before the next content.
    pending_breaks: usize,
    /// One entry per open list: the next number of an ordered list.
    lists: Vec<Option<u64>>,
    quote_depth: usize,
    in_heading: bool,
    /// One entry per open link: where its label starts and its escaped URL (`None` when
    /// relative: only the label is shown).
    links: Vec<Option<(usize, String)>>,
}

impl MrkdwnWriter {
    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(text) => match &mut self.code {
                Some(code) => code.push_str(&text),
                None => self.write(&escape(&text)),
            },
            Event::Code(code) => self.write(&format!("`{}`", escape(&code))),
            Event::Html(html) | Event::InlineHtml(html) => self.write(&escape(&html)),
            Event::InlineMath(math) | Event::DisplayMath(math) => {
                self.write(&format!("`{}`", escape(&math)));
            }
            Event::FootnoteReference(label) => self.write(&format!("[{}]", escape(&label))),
            Event::SoftBreak | Event::HardBreak => self.break_lines(1),
            Event::Rule => {
                self.break_lines(2);
                self.write("──────────");
                self.break_lines(2);
            }
            Event::TaskListMarker(done) => self.write(if done { "☑ " } else { "☐ " }),
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Heading { .. } => {
                self.break_lines(2);
                self.write("*");
                self.in_heading = true;
            }
            Tag::BlockQuote(_) => {
                self.break_lines(2);
                self.quote_depth += 1;
            }
            Tag::CodeBlock(_) => {
                self.flush_text();
                self.code = Some(String::new());
            }
            Tag::List(first) => {
                self.break_lines(1);
                self.lists.push(first);
            }
            Tag::Item => {
                self.break_lines(1);
                let indent = "    ".repeat(self.lists.len().saturating_sub(1));
                let bullet = match self.lists.last_mut() {
                    Some(Some(n)) => {
                        *n += 1;
                        format!("{indent}{}. ", *n - 1)
                    }
                    _ => format!("{indent}• "),
                };
                self.write(&bullet);
            }
            Tag::Emphasis => self.write("_"),
            Tag::Strong if !self.in_heading => self.write("*"),
            Tag::Strikethrough => self.write("~"),
            Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. } => {
                if is_absolute_url(&dest_url) {
                    let url = escape(&dest_url).replace('|', "%7C");
                    self.write(&format!("<{url}|"));
                    self.links.push(Some((self.text.len(), url)));
                } else {
                    self.links.push(None);
                }
            }
            _ => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Paragraph | TagEnd::HtmlBlock => self.break_lines(2),
            TagEnd::Heading(_) => {
                self.write("*");
                self.in_heading = false;
                self.break_lines(2);
            }
            TagEnd::BlockQuote(_) => {
                self.quote_depth = self.quote_depth.saturating_sub(1);
                self.break_lines(2);
            }
            TagEnd::CodeBlock => {
                if let Some(code) = self.code.take() {
                    push_segment(
                        &mut self.segments,
                        Segment::Code(code.trim_end_matches('\n').to_string()),
                    );
                }
            }
            TagEnd::List(_) => {
                self.lists.pop();
                // A nested list ends inside its parent's item; the parent list goes on.
                self.break_lines(if self.lists.is_empty() { 2 } else { 1 });
            }
            TagEnd::Item => self.break_lines(1),
            TagEnd::Emphasis => self.write("_"),
            TagEnd::Strong if !self.in_heading => self.write("*"),
            TagEnd::Strikethrough => self.write("~"),
            TagEnd::Link | TagEnd::Image => {
                if let Some(Some((label_start, url))) = self.links.pop() {
                    let label = &self.text[label_start..];
                    if label.is_empty() || label == url {
                        // `<url|>` or `<url|url>`: the bare link reads the same.
                        self.text.truncate(label_start - 1);
                    }
                    self.text.push('>');
                }
            }
            _ => {}
        }
    }

    /// Owes `n` line breaks (at most) before the next content; none at the very start.
    fn break_lines(&mut self, n: usize) {
        let n = if self.quote_depth > 0 { n.min(1) } else { n };
        self.pending_breaks = self.pending_breaks.max(n);
    }

    fn write(&mut self, content: &str) {
        if self.text.is_empty() {
            self.pending_breaks = 0;
        }
        let line_start = self.text.is_empty() || self.pending_breaks > 0;
        for _ in 0..self.pending_breaks {
            self.text.push('\n');
        }
        self.pending_breaks = 0;
        if line_start && self.quote_depth > 0 {
            self.text.push_str("> ");
        }
        self.text.push_str(content);
    }

    /// Ends the prose before a code block.
    fn flush_text(&mut self) {
        let text = std::mem::take(&mut self.text);
        push_segment(
            &mut self.segments,
            Segment::Text(text.trim_end().to_string()),
        );
        self.pending_breaks = 0;
    }

    fn finish(mut self) -> Vec<Segment> {
        self.flush_text();
        self.segments
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use uuid::Uuid;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap()
    }

    fn rendered(title: &str, body_markdown: &str, actions: &[(&str, &str)]) -> Rendered {
        Rendered {
            title: title.to_string(),
            body_markdown: body_markdown.to_string(),
            body_text: crate::render::markdown_to_text(body_markdown),
            body_html: crate::render::markdown_to_html(body_markdown),
            actions: actions
                .iter()
                .map(|(label, url)| Action {
                    label: label.to_string(),
                    url: url.to_string(),
                })
                .collect(),
        }
    }

    fn blocks(message: &Value) -> &Vec<Value> {
        message["blocks"].as_array().expect("blocks")
    }

    fn texts_of(message: &Value, block_type: &str) -> Vec<String> {
        blocks(message)
            .iter()
            .filter(|b| b["type"] == block_type)
            .map(|b| b["text"]["text"].as_str().expect("text").to_string())
            .collect()
    }

    #[test]
    fn the_status_emoji_follows_the_event_name() {
        let cases = [
            ("apply_failure", ":x:", "Failed"),
            ("run_failure", ":x:", "Failed"),
            ("audit_failure", ":x:", "Failed"),
            ("workspace_autobuild_failed", ":x:", "Failed"),
            ("template_workspace_builds_failed_report", ":x:", "Failed"),
            ("workspace_out_of_memory", ":red_circle:", "Alert"),
            ("workspace_out_of_disk", ":red_circle:", "Alert"),
            ("apply_start", ":arrow_forward:", "Started"),
            ("migration_start", ":arrow_forward:", "Started"),
            ("run_end", ":white_check_mark:", "Succeeded"),
            ("deploy_success", ":white_check_mark:", "Succeeded"),
            ("workspace_deleted", ":bell:", "Notice"),
            ("test_notification", ":bell:", "Notice"),
        ];
        for (event, emoji, label) in cases {
            let message = slack_message(event, &rendered("Title", "Body", &[]), &json!({}));
            let header = &blocks(&message)[0];
            assert_eq!(header["type"], "header", "{event}");
            assert_eq!(header["text"]["type"], "plain_text", "{event}");
            assert_eq!(header["text"]["text"], format!("{emoji} Title"), "{event}");
            let section = &texts_of(&message, "section")[0];
            assert!(
                section.starts_with(&format!("*Status:* {label} · *Event:* `{event}`")),
                "{event}: {section}"
            );
        }
    }

    #[test]
    fn the_message_has_a_header_the_status_and_body_buttons_and_a_fallback() {
        let message = slack_message(
            "workspace_deleted",
            &rendered(
                "Workspace \"ws\" deleted",
                "Your workspace **ws** was deleted.",
                &[
                    ("View workspaces", "https://coder.example.com/workspaces"),
                    ("Relative", "/templates"),
                ],
            ),
            &json!({"data": {}}),
        );
        assert_eq!(
            message,
            json!({
                "text": ":bell: Workspace \"ws\" deleted\nYour workspace ws was deleted.",
                "blocks": [
                    {"type": "header", "text": {
                        "type": "plain_text", "text": ":bell: Workspace \"ws\" deleted", "emoji": true}},
                    {"type": "section", "text": {"type": "mrkdwn", "text":
                        "*Status:* Notice · *Event:* `workspace_deleted`\n\nYour workspace *ws* was deleted."}},
                    {"type": "actions", "elements": [
                        {"type": "button",
                         "text": {"type": "plain_text", "text": "View workspaces", "emoji": true},
                         "url": "https://coder.example.com/workspaces"},
                    ]},
                ],
            })
        );
    }

    #[test]
    fn without_absolute_action_urls_there_is_no_actions_block() {
        let message = slack_message(
            "run_start",
            &rendered("t", "b", &[("Open", "/relative"), ("Mail", "mailto:x@y")]),
            &json!({}),
        );
        assert!(blocks(&message).iter().all(|b| b["type"] != "actions"));
    }

    #[test]
    fn markdown_becomes_slack_mrkdwn() {
        let cases = [
            ("**bold** and __strong__", "*bold* and *strong*"),
            ("*em* and _em_ and ~~gone~~", "_em_ and _em_ and ~gone~"),
            ("# Title\n\nText", "*Title*\n\nText"),
            ("## **Bold** title", "*Bold title*"),
            ("`a < b && c`", "`a &lt; b &amp;&amp; c`"),
            ("1 < 2 & 3 > 2", "1 &lt; 2 &amp; 3 &gt; 2"),
            (
                "[the docs](https://x.io/a?b=1&c=2)",
                "<https://x.io/a?b=1&amp;c=2|the docs>",
            ),
            ("[https://x.io](https://x.io)", "<https://x.io>"),
            ("<https://x.io>", "<https://x.io>"),
            ("[relative](/w/1)", "relative"),
            ("[a|b](https://x.io/a|b)", "<https://x.io/a%7Cb|a|b>"),
            ("- one\n- **two**", "• one\n• *two*"),
            ("3. three\n4. four", "3. three\n4. four"),
            ("- a\n  - b\n- c", "• a\n    • b\n• c"),
            ("> quoted\n> more", "> quoted\n> more"),
            ("line one\nline two", "line one\nline two"),
            ("para one\n\npara two", "para one\n\npara two"),
        ];
        for (markdown, mrkdwn) in cases {
            assert_eq!(
                markdown_segments(markdown),
                vec![Segment::Text(mrkdwn.to_string())],
                "from {markdown:?}"
            );
        }
    }

    #[test]
    fn fenced_code_is_its_own_preformatted_section_in_place() {
        let body = "Plan failed.\n\n```text\nError: <boom> & more\n```\n\nAfter.";
        assert_eq!(
            markdown_segments(body),
            vec![
                Segment::Text("Plan failed.".to_string()),
                Segment::Code("Error: <boom> & more".to_string()),
                Segment::Text("After.".to_string()),
            ]
        );
        let message = slack_message("apply_failure", &rendered("t", body, &[]), &json!({}));
        assert_eq!(
            texts_of(&message, "section"),
            vec![
                "*Status:* Failed · *Event:* `apply_failure`\n\nPlan failed.".to_string(),
                "```\nError: &lt;boom&gt; &amp; more\n```".to_string(),
                "After.".to_string(),
            ]
        );
    }

    #[test]
    fn failure_detail_from_the_payload_is_preformatted_once() {
        let payload = json!({"data": {
            "error": "Error: terraform apply failed\n  exit status 1",
            "sql": "SELECT * FROM t WHERE id IS NULL",
        }});
        // A body that does not show them: both are appended, the query first.
        let message = slack_message("audit_failure", &rendered("t", "Failed.", &[]), &payload);
        assert_eq!(
            texts_of(&message, "section"),
            vec![
                "*Status:* Failed · *Event:* `audit_failure`\n\nFailed.\n\n*Query:*".to_string(),
                "```\nSELECT * FROM t WHERE id IS NULL\n```".to_string(),
                "*Error:*".to_string(),
                "```\nError: terraform apply failed\n  exit status 1\n```".to_string(),
            ]
        );
        // The catalog's templates already show them in code blocks: not twice.
        let body = "Failed.\n\n```sql\nSELECT * FROM t WHERE id IS NULL\n```\n\n\
                    ```text\nError: terraform apply failed\n  exit status 1\n```";
        let message = slack_message("audit_failure", &rendered("t", body, &[]), &payload);
        let sections = texts_of(&message, "section");
        assert_eq!(sections.len(), 3, "{sections:#?}");
        // Structured detail is shown as JSON; null or blank detail not at all.
        let message = slack_message(
            "run_failure",
            &rendered("t", "b", &[]),
            &json!({"data": {"error": {"code": 7}, "sql": "  "}}),
        );
        assert_eq!(
            texts_of(&message, "section")[1..],
            ["```\n{\n  \"code\": 7\n}\n```".to_string()]
        );
    }

    #[test]
    fn every_text_is_cut_to_slacks_limits_on_char_boundaries() {
        let title = "é".repeat(200);
        let body = format!("{}\n\n```\n{}\n```", "ü".repeat(5000), "x".repeat(5000));
        let actions: Vec<(String, String)> = (0..30)
            .map(|i| ("🦀".repeat(100), format!("https://x.io/{i}")))
            .collect();
        let actions: Vec<(&str, &str)> = actions
            .iter()
            .map(|(l, u)| (l.as_str(), u.as_str()))
            .collect();
        let mut r = rendered(&title, &body, &actions);
        r.body_text = "ß".repeat(50_000);
        let message = slack_message("run_failure", &r, &json!({}));

        let header = blocks(&message)[0]["text"]["text"].as_str().unwrap();
        assert_eq!(header.chars().count(), 150);
        assert!(
            header.starts_with(":x: éé") && header.ends_with("é…"),
            "{header}"
        );
        for section in texts_of(&message, "section") {
            assert!(section.chars().count() <= 3000, "{}", section.len());
        }
        let sections = texts_of(&message, "section");
        assert_eq!(sections[0].chars().count(), 3000);
        assert!(sections[0].ends_with("ü…"));
        assert_eq!(sections[1].chars().count(), 3000);
        assert!(sections[1].ends_with("x…\n```"), "code stays fenced");
        let actions = blocks(&message).last().unwrap();
        let elements = actions["elements"].as_array().unwrap();
        assert_eq!(elements.len(), 25);
        for button in elements {
            let text = button["text"]["text"].as_str().unwrap();
            assert_eq!(text.chars().count(), 75);
            assert!(text.ends_with("🦀…"));
        }
        let text = message["text"].as_str().unwrap();
        assert_eq!(text.chars().count(), 40_000);
        assert!(text.ends_with("ß…"));
    }

    #[test]
    fn every_catalog_event_makes_a_valid_message_showing_its_error_once() {
        use std::collections::BTreeMap;

        let labels: BTreeMap<String, String> = [
            ("name", "ws"),
            ("task", "fix-build"),
            ("account_name", "carol"),
            ("audit", "not_null_id"),
            ("one_time_passcode", "123456"),
            ("custom_title", "Hello"),
            ("custom_message", "A **custom** message"),
            ("environment", "prod"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let error = "Error: boom <at> line 3 & more";
        let data = json!({"error": error, "sql": "SELECT 1 WHERE a < b"});
        for spec in crate::catalog::builtin() {
            let event = crate::model::EventTemplate {
                id: Uuid::now_v7(),
                spec: spec.clone(),
                method: None,
            };
            let payload =
                crate::routing::build_payload(&event, None, &labels, &data, &["team".to_string()]);
            let rendered = crate::render::render(&event, &payload).unwrap();
            let message = slack_message(&spec.name, &rendered, &payload);
            let blocks = blocks(&message);
            assert_eq!(blocks[0]["type"], "header", "{}", spec.name);
            let sections = texts_of(&message, "section");
            for section in &sections {
                assert!(!section.trim().is_empty(), "{}: empty section", spec.name);
                assert_eq!(section.matches("```").count() % 2, 0, "{}", spec.name);
                assert!(!section.contains(['<', '>']), "{}: {section}", spec.name);
            }
            let errors = sections
                .iter()
                .filter(|s| s.contains("Error: boom &lt;at&gt; line 3 &amp; more"))
                .count();
            assert_eq!(errors, 1, "{}: {sections:#?}", spec.name);
        }
    }

    #[test]
    fn at_most_fifty_blocks() {
        let body: Vec<String> = (0..80).map(|i| format!("p{i}\n\n```\nc{i}\n```")).collect();
        let message = slack_message(
            "run_failure",
            &rendered("t", &body.join("\n\n"), &[("Open", "https://x.io")]),
            &json!({}),
        );
        let blocks = blocks(&message);
        assert_eq!(blocks.len(), 50);
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[48]["text"]["text"], "…");
        assert_eq!(blocks[49]["type"], "actions");
    }

    #[test]
    fn cutting_mrkdwn_never_leaves_half_an_entity_or_link() {
        assert_eq!(cut_mrkdwn("abc", 3), "abc");
        assert_eq!(cut_mrkdwn("abcd", 3), "ab…");
        assert_eq!(cut_mrkdwn("ab&amp;cd", 5), "ab…");
        assert_eq!(cut_mrkdwn("ab&amp;cd", 8), "ab&amp;…");
        assert_eq!(cut_mrkdwn("see <https://x.io|docs> now", 12), "see …");
        assert_eq!(
            cut_mrkdwn("see <https://x.io|docs> now", 25),
            "see <https://x.io|docs> …"
        );
        assert_eq!(cut("ééé", 2), "é…");
        assert_eq!(cut("ééé", 3), "ééé");
    }

    #[test]
    fn webhook_answers_are_classified() {
        let retry = |reason: &str, after: Option<u64>| DeliveryOutcome::Retryable {
            reason: reason.to_string(),
            retry_after: after.map(Duration::from_secs),
        };
        let permanent = |reason: &str| DeliveryOutcome::Permanent {
            reason: reason.to_string(),
        };
        let cases = [
            (200, None, "ok", DeliveryOutcome::Sent),
            (429, Some("30"), "", retry("slack webhook 429", Some(30))),
            (503, Some("5"), "", retry("slack webhook 503", Some(5))),
            (
                500,
                None,
                "rollup_error",
                retry("slack webhook 500: rollup_error", None),
            ),
            (
                404,
                None,
                "no_service",
                permanent(
                    "slack webhook 404: no_service (the webhook was disabled or removed: create \
                     a new incoming webhook and update the target's url)",
                ),
            ),
            (
                410,
                None,
                "channel_is_archived",
                permanent(
                    "slack webhook 410: channel_is_archived (the webhook's channel is archived: \
                     unarchive it or create a webhook for another channel)",
                ),
            ),
            (
                403,
                None,
                "action_prohibited",
                permanent(
                    "slack webhook 403: action_prohibited (the workspace restricts who may post \
                     in the webhook's channel)",
                ),
            ),
            (
                400,
                None,
                "invalid_payload\n",
                permanent("slack webhook 400: invalid_payload"),
            ),
            (302, None, "", permanent("slack webhook 302")),
        ];
        for (status, retry_after, body, expected) in cases {
            assert_eq!(
                classify_webhook(status, retry_after, body.as_bytes(), now()),
                expected,
                "status {status} {body:?}"
            );
        }
    }

    #[test]
    fn api_answers_are_classified() {
        let retry = |reason: &str, after: Option<u64>| DeliveryOutcome::Retryable {
            reason: reason.to_string(),
            retry_after: after.map(Duration::from_secs),
        };
        let permanent = |reason: &str| DeliveryOutcome::Permanent {
            reason: reason.to_string(),
        };
        let cases = [
            (
                200,
                None,
                r#"{"ok":true,"ts":"1.2"}"#,
                DeliveryOutcome::Sent,
            ),
            (
                200,
                None,
                r#"{"ok":false,"error":"channel_not_found"}"#,
                permanent(
                    "slack chat.postMessage: channel_not_found (no channel `C1` the app can see: \
                     check the target's channel (a channel id like C0123456789, or a member id \
                     like U0123456789) and invite the app to private channels)",
                ),
            ),
            (
                200,
                None,
                r#"{"ok":false,"error":"not_in_channel"}"#,
                permanent(
                    "slack chat.postMessage: not_in_channel (invite the app to `C1` \
                     (/invite @your-app) or give it the chat:write.public scope)",
                ),
            ),
            (
                200,
                None,
                r#"{"ok":false,"error":"invalid_auth"}"#,
                permanent(
                    "slack chat.postMessage: invalid_auth (the token is not valid: check the \
                     target's token)",
                ),
            ),
            (
                200,
                None,
                r#"{"ok":false,"error":"invalid_blocks","response_metadata":{"messages":["[ERROR] must be more than 0 characters [json-pointer:/blocks/0/text/text]"]}}"#,
                permanent(
                    "slack chat.postMessage: invalid_blocks (Slack rejected the message's \
                     blocks: [ERROR] must be more than 0 characters \
                     [json-pointer:/blocks/0/text/text])",
                ),
            ),
            (
                200,
                None,
                r#"{"ok":false,"error":"some_new_error"}"#,
                permanent("slack chat.postMessage: some_new_error"),
            ),
            (
                429,
                Some("30"),
                r#"{"ok":false,"error":"ratelimited"}"#,
                retry("slack chat.postMessage: ratelimited", Some(30)),
            ),
            (
                200,
                Some("30"),
                r#"{"ok":false,"error":"ratelimited"}"#,
                retry("slack chat.postMessage: ratelimited", Some(30)),
            ),
            (
                429,
                Some("7"),
                "",
                retry("slack chat.postMessage: ratelimited (HTTP 429)", Some(7)),
            ),
            (
                200,
                None,
                r#"{"ok":false,"error":"internal_error"}"#,
                retry("slack chat.postMessage: internal_error", None),
            ),
            (
                200,
                None,
                r#"{"ok":false,"error":"fatal_error"}"#,
                retry("slack chat.postMessage: fatal_error", None),
            ),
            (
                503,
                Some("9"),
                r#"{"ok":false,"error":"service_unavailable"}"#,
                retry("slack chat.postMessage: service_unavailable", Some(9)),
            ),
            (
                500,
                None,
                "<html>\n<b>oops</b>\n</html>",
                retry(
                    "slack chat.postMessage: HTTP 500: <html> <b>oops</b> </html>",
                    None,
                ),
            ),
            (
                200,
                None,
                "<html>captive portal</html>",
                retry(
                    "slack chat.postMessage: unexpected answer (HTTP 200): <html>captive \
                     portal</html>",
                    None,
                ),
            ),
            (
                200,
                None,
                r#"{"hello":"world"}"#,
                retry(
                    "slack chat.postMessage: unexpected answer (HTTP 200): {\"hello\":\"world\"}",
                    None,
                ),
            ),
            (
                404,
                None,
                "Not Found",
                retry(
                    "slack chat.postMessage: unexpected answer (HTTP 404): Not Found",
                    None,
                ),
            ),
            // An echo cut at the read limit is still Slack saying yes.
            (
                200,
                None,
                r#"{"ok":true,"channel":"C1","message":{"#,
                DeliveryOutcome::Sent,
            ),
        ];
        for (status, retry_after, body, expected) in cases {
            assert_eq!(
                classify_api(status, retry_after, body.as_bytes(), "C1", now()),
                expected,
                "status {status} {body:?}"
            );
        }
    }

    #[test]
    fn scrubbing_hides_the_webhook_path_credentials_and_the_token() {
        let url = "https://bot:hunter2@hooks.slack.com/services/T0/B0/s3cr3t?x=1";
        let outcome = DeliveryOutcome::Permanent {
            reason: format!(
                "slack webhook 404: no service at {url}, path /services/T0/B0/s3cr3t?x=1"
            ),
        };
        let DeliveryOutcome::Permanent { reason } = scrub_outcome(outcome, &url_secrets(url))
        else {
            panic!("stays permanent");
        };
        for secret in ["s3cr3t", "hunter2"] {
            assert!(!reason.contains(secret), "{reason}");
        }
        let outcome = DeliveryOutcome::Retryable {
            reason: "echo: Bearer xoxb-1-2-secret".to_string(),
            retry_after: Some(Duration::from_secs(3)),
        };
        assert_eq!(
            scrub_outcome(outcome, &["xoxb-1-2-secret"]),
            DeliveryOutcome::Retryable {
                reason: "echo: Bearer <redacted>".to_string(),
                retry_after: Some(Duration::from_secs(3)),
            }
        );
    }

    fn config() -> Config {
        Config::from_toml_str(
            r#"
[[targets]]
type = "slack_webhook"
name = "team"
notify_on = ["run_failure"]
url = "https://hooks.slack.com/services/T0/B0/global-secret"

[[targets]]
type = "slack_api"
name = "team-api"
notify_on = ["run_failure"]
token = "xoxb-global-token"
channel = "C0GLOBAL"
api_base_url = "http://127.0.0.1:9/api/"

[[users]]
username = "alice"
email = "alice@example.com"
[[users.targets]]
type = "slack_api"
name = "me"
notify_on = ["run_failure"]
token = "xoxb-alice-token"
channel = "U0ALICE"
"#,
            "test.toml",
            &|_| None,
        )
        .unwrap()
    }

    fn delivery<'a>(
        target: Option<&'a str>,
        method: Method,
        payload: &'a Value,
        rendered: &'a Rendered,
    ) -> Delivery<'a> {
        Delivery {
            message_id: Uuid::now_v7(),
            event: "run_failure",
            method,
            user_id: None,
            target,
            payload,
            rendered,
        }
    }

    #[test]
    fn api_targets_are_found_by_qualified_name() {
        let channel = SlackApiChannel::from_config(&config()).unwrap();
        assert_eq!(channel.method(), Method::SlackApi);
        let (payload, rendered) = (json!({}), rendered("t", "b", &[]));
        let found = |target| {
            channel
                .target_for(&delivery(target, Method::SlackApi, &payload, &rendered))
                .map(|(t, token, channel)| (t.endpoint.clone(), token, channel))
        };
        assert_eq!(
            found(Some("team-api")),
            Ok((
                "http://127.0.0.1:9/api/chat.postMessage".to_string(),
                "xoxb-global-token",
                "C0GLOBAL"
            ))
        );
        assert_eq!(
            found(Some("alice/me")),
            Ok((
                "https://slack.com/api/chat.postMessage".to_string(),
                "xoxb-alice-token",
                "U0ALICE"
            ))
        );
        let unknown = found(Some("bob/me")).unwrap_err();
        assert!(
            unknown.contains("no slack_api target `bob/me`"),
            "{unknown}"
        );
        let none = found(None).unwrap_err();
        assert!(none.contains("needs a target"), "{none}");
        let debug = format!("{channel:?}");
        assert!(!debug.contains("xoxb"), "{debug}");
        assert!(debug.contains("alice/me → U0ALICE"), "{debug}");
    }

    #[test]
    fn webhook_targets_are_found_by_qualified_name() {
        let channel = SlackWebhookChannel::from_config(&config()).unwrap();
        assert_eq!(channel.method(), Method::SlackWebhook);
        let (payload, rendered) = (json!({}), rendered("t", "b", &[]));
        let url_for =
            |target| channel.url_for(&delivery(target, Method::SlackWebhook, &payload, &rendered));
        assert_eq!(
            url_for(Some("team")),
            Ok("https://hooks.slack.com/services/T0/B0/global-secret")
        );
        // A slack_api target is not a webhook.
        for name in ["team-api", "alice/me"] {
            let unknown = url_for(Some(name)).unwrap_err();
            assert!(
                unknown.contains(&format!("no slack_webhook target `{name}`")),
                "{unknown}"
            );
        }
        let debug = format!("{channel:?}");
        assert!(!debug.contains("global-secret"), "{debug}");
        assert!(
            debug.contains("team → https://hooks.slack.com/<redacted>"),
            "{debug}"
        );
    }

    #[test]
    fn a_target_without_its_secret_is_a_permanent_failure_naming_the_key() {
        let mut config = config();
        config.targets[0].url = None;
        config.targets[1].token = None;
        let (payload, rendered) = (json!({}), rendered("t", "b", &[]));
        let webhook = SlackWebhookChannel::from_config(&config).unwrap();
        let reason = webhook
            .url_for(&delivery(
                Some("team"),
                Method::SlackWebhook,
                &payload,
                &rendered,
            ))
            .unwrap_err();
        assert!(reason.contains("has no url"), "{reason}");
        let api = SlackApiChannel::from_config(&config).unwrap();
        let Err(reason) = api.target_for(&delivery(
            Some("team-api"),
            Method::SlackApi,
            &payload,
            &rendered,
        )) else {
            panic!("no token");
        };
        assert!(reason.contains("has no token: set `token`"), "{reason}");
    }
}
