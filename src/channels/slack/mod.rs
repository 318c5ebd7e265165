//! The Slack channels (DESIGN §7, SQLMesh's targets): `slack_webhook` posts a Block Kit message
//! to an incoming webhook's URL; `slack_api` posts it to `chat.postMessage` with a bearer token,
//! in a channel or to a member (a direct message).
//!
//! Slack reaches people only through targets: a delivery's `target` (its qualified name) picks
//! the URL, or the token and channel. Webhook URLs (their path is the credential) and tokens
//! are secrets: reasons show URLs only through [`redact_url`] and never show a token.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};
use serde_json::{Value, json};

use super::http::{self, body_excerpt, error_chain, parse_retry_after, scrub, url_secrets};
use super::settings::{SlackApiSettings, SlackWebhookSettings};
use super::{Channel, ChannelError, CheckResult, Delivery};
use crate::model::{Action, DeliveryOutcome, Method, TargetType};
use crate::render::Rendered;
use crate::secret::{Secret, redact_url};

/// The longest a `herald doctor` check waits for Slack's answer; shorter when
/// `dispatch_timeout` is. A URL that accepts the connection and never answers must not hang
/// doctor (nothing else bounds a check).
const CHECK_TIMEOUT_MAX: Duration = Duration::from_secs(10);

/// Bytes of a check's answer read: enough for Slack's JSON verdict.
const CHECK_ANSWER_LIMIT: usize = 64 * 1024;

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

mod api;
mod blocks;
mod classify;
mod incoming;
mod mrkdwn;
#[cfg(test)]
mod tests;

pub use api::SlackApiChannel;
pub use blocks::slack_message;
pub use incoming::SlackWebhookChannel;

use blocks::*;
use classify::*;
use mrkdwn::*;

// ---------------------------------------------------------------------------------------------
// Shared HTTP plumbing
// ---------------------------------------------------------------------------------------------

/// `dispatch_timeout`, at most [`CHECK_TIMEOUT_MAX`]: a check waits no longer than a delivery.
fn check_timeout(dispatch_timeout: Duration) -> Duration {
    dispatch_timeout.min(CHECK_TIMEOUT_MAX)
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

/// The target named by `delivery.target`, or a reason naming what is missing.
fn find_target<'t, T>(
    targets: &'t BTreeMap<String, T>,
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

/// [`http::send`], with `secrets` redacted from the answer before anything quotes it (a quote
/// cut short would hide half a secret from a later scrub), and the answer's status,
/// `Retry-After` and body judged by `classify` as of now; a request that got no answer is its
/// own outcome.
async fn exchange(
    request: http::Outgoing<'_>,
    what: &str,
    url: &str,
    secrets: &[&str],
    limit: usize,
    classify: impl FnOnce(u16, Option<&str>, &[u8], DateTime<Utc>) -> DeliveryOutcome,
) -> DeliveryOutcome {
    match http::send(request, what, url, limit).await {
        Ok(mut answer) => {
            answer.body = scrub(&String::from_utf8_lossy(&answer.body), secrets).into_bytes();
            let retry_after = answer.retry_after.as_deref();
            classify(answer.status, retry_after, &answer.body, Utc::now())
        }
        Err(outcome) => outcome,
    }
}

/// How `herald doctor` checks one kind of Slack target.
struct TargetCheck {
    target_type: TargetType,
    /// The key a target without its credential lacks (`no {missing} configured`).
    missing: &'static str,
    /// What failed when the request got no answer, e.g. `request failed`.
    failed: &'static str,
    /// The verdict on an answer's status and body (with the secrets to scrub from it).
    judge: fn(String, u16, &[u8], &[&str]) -> CheckResult,
}

impl TargetCheck {
    /// The checks of `targets`, each named `{target_type} target `{name}``: one without its
    /// credential (`credential` finds it) fails; for the others `request` makes the URL and
    /// request from the target and its exposed credential, sent and answered within
    /// `timeout`, else the check fails with the credential scrubbed from the reason.
    async fn run<'c, T>(
        &self,
        targets: &BTreeMap<String, T>,
        timeout: Duration,
        credential: impl Fn(&T) -> Option<&Secret>,
        request: impl Fn(&T, &str) -> (String, http::Outgoing<'c>),
    ) -> Vec<CheckResult> {
        let mut results = Vec::new();
        for (name, target) in targets {
            let check = format!("{} target `{name}`", self.target_type);
            let Some(secret) = credential(target) else {
                results.push(CheckResult::fail(
                    check,
                    format!("no {} configured", self.missing),
                ));
                continue;
            };
            let secrets = [secret.expose()];
            let (url, request) = request(target, secret.expose());
            let answer = tokio::time::timeout(timeout, request.fetch(CHECK_ANSWER_LIMIT)).await;
            results.push(match answer {
                Err(_) => CheckResult::fail(check, no_answer(timeout, &url)),
                Ok(Ok(answer)) => (self.judge)(check, answer.status, &answer.body, &secrets),
                Ok(Err(e)) => CheckResult::fail(
                    check,
                    scrub(&format!("{}: {}", self.failed, error_chain(&e)), &secrets),
                ),
            });
        }
        results
    }
}
