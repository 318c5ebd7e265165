//! `slack_api`: a Block Kit message posted to `chat.postMessage` with a bearer token, in a
//! channel or to a member.

use super::*;

/// Delivers `slack_api` messages: `chat.postMessage` with the target's bearer token, to its
/// channel (or member id, for a direct message).
pub struct SlackApiChannel {
    client: http::Client,
    /// How long one doctor check waits ([`CHECK_TIMEOUT_MAX`] at most).
    check_timeout: Duration,
    /// `slack_api` targets by qualified name (`name`, or `username/name`).
    targets: BTreeMap<String, ApiTarget>,
}

/// What a `slack_api` target needs to post.
pub(super) struct ApiTarget {
    token: Option<Secret>,
    channel: Option<String>,
    /// `{api_base_url}/chat.postMessage`.
    pub(super) endpoint: String,
}

impl SlackApiChannel {
    /// Builds the channel (and its connection pool) from the `slack_api` targets.
    pub fn new(settings: &SlackApiSettings) -> Result<Self, ChannelError> {
        Ok(SlackApiChannel {
            client: http::Client::new(Method::SlackApi)?,
            check_timeout: check_timeout(settings.dispatch_timeout),
            targets: settings
                .targets
                .iter()
                .map(|(name, target)| {
                    let base = target.api_base_url.trim_end_matches('/');
                    let api = ApiTarget {
                        token: target.token.clone(),
                        channel: target.channel.clone(),
                        endpoint: format!("{base}/chat.postMessage"),
                    };
                    (name.clone(), api)
                })
                .collect(),
        })
    }

    /// The target `delivery` goes to, its token and its channel, or why it cannot go anywhere.
    pub(super) fn target_for<'s>(
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
        if HeaderValue::from_str(&format!("Bearer {token}")).is_err() {
            return DeliveryOutcome::Permanent {
                reason: "slack_api token is not a valid HTTP header value: check the target's \
                         token for spaces or line breaks"
                    .to_string(),
            };
        }
        let mut message = slack_message(delivery.event, delivery.rendered, delivery.payload);
        if let Value::Object(fields) = &mut message {
            fields.insert("channel".to_string(), Value::String(channel.to_string()));
        }
        let request = self
            .client
            .post(&target.endpoint)
            .bearer_auth(token)
            .header(CONTENT_TYPE, "application/json; charset=utf-8")
            .body(message.to_string());
        exchange(
            request,
            "slack chat.postMessage",
            &target.endpoint,
            &[token],
            API_ANSWER_LIMIT,
            |status, retry_after, body, now| classify_api(status, retry_after, body, channel, now),
        )
        .await
    }
}

#[async_trait]
impl Channel for SlackApiChannel {
    fn method(&self) -> Method {
        Method::SlackApi
    }

    /// `auth.test` with each target's token: proves the token works without posting.
    async fn check(&self) -> Vec<CheckResult> {
        let request = |target: &ApiTarget, token: &str| {
            let endpoint = target.endpoint.trim_end_matches("chat.postMessage");
            let url = format!("{endpoint}auth.test");
            let request = self.client.post(&url).bearer_auth(token);
            (url, request)
        };
        AUTH_TEST
            .run(
                &self.targets,
                self.check_timeout,
                |t| t.token.as_ref(),
                request,
            )
            .await
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

/// The `slack_api` check: `auth.test` with the target's token.
const AUTH_TEST: TargetCheck = TargetCheck {
    target_type: TargetType::SlackApi,
    missing: "token",
    failed: "auth.test failed",
    judge: auth_test_result,
};

/// A check's verdict on `auth.test`'s answer: `ok` names the bot user and workspace.
fn auth_test_result(check: String, status: u16, body: &[u8], secrets: &[&str]) -> CheckResult {
    let body: Value = serde_json::from_slice(body).unwrap_or_default();
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
            scrub(&format!("auth.test HTTP {status}: {error}"), secrets),
        )
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
