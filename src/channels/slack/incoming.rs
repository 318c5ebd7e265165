//! `slack_webhook`: a Block Kit message posted to an incoming webhook's URL (the URL is the
//! credential).

use super::*;

/// Delivers `slack_webhook` messages: a Block Kit `POST` to the target's incoming-webhook URL.
pub struct SlackWebhookChannel {
    client: http::Client,
    /// How long one doctor check waits ([`CHECK_TIMEOUT_MAX`] at most).
    check_timeout: Duration,
    /// `slack_webhook` targets' URLs by qualified name (`name`, or `username/name`).
    targets: BTreeMap<String, Option<Secret>>,
}

impl SlackWebhookChannel {
    /// Builds the channel (and its connection pool) from the `slack_webhook` targets.
    pub fn new(settings: &SlackWebhookSettings) -> Result<Self, ChannelError> {
        Ok(SlackWebhookChannel {
            client: http::Client::new(Method::SlackWebhook)?,
            check_timeout: check_timeout(settings.dispatch_timeout),
            targets: settings.targets.iter().cloned().collect(),
        })
    }

    /// The URL `delivery` goes to, or why it cannot go anywhere (a permanent failure).
    pub(super) fn url_for(&self, delivery: &Delivery<'_>) -> Result<&str, String> {
        let (name, url) = find_target(&self.targets, delivery, TargetType::SlackWebhook)?;
        url.as_ref().map(Secret::expose).ok_or_else(|| {
            format!("slack_webhook target `{name}` has no url: set `url` in its [[targets]] entry")
        })
    }

    async fn post(&self, url: &str, message: &Value) -> DeliveryOutcome {
        let request = self.client.post(url).json(message);
        let secrets = url_secrets(url);
        exchange(
            request,
            "slack webhook",
            url,
            &secrets,
            WEBHOOK_ANSWER_LIMIT,
            classify_webhook,
        )
        .await
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
        let request = |_: &Option<Secret>, url: &str| {
            (url.to_string(), self.client.post(url).json(&json!({})))
        };
        EMPTY_TEST
            .run(&self.targets, self.check_timeout, Option::as_ref, request)
            .await
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

/// The `slack_webhook` check: an empty object posted to the target's URL.
const EMPTY_TEST: TargetCheck = TargetCheck {
    target_type: TargetType::SlackWebhook,
    missing: "url",
    failed: "request failed",
    judge: empty_test_result,
};

/// A check's verdict on the answer to an empty post: Slack refuses it (400, or 200 from some
/// proxies) when the URL is live; anything else means the URL is wrong or revoked.
fn empty_test_result(check: String, status: u16, body: &[u8], secrets: &[&str]) -> CheckResult {
    let body = body_excerpt(body);
    match status {
        400 | 200 => CheckResult::pass(
            check,
            format!(
                "reachable; the webhook answered {status} {body} to an empty test (nothing posted)"
            ),
        ),
        _ => CheckResult::fail(
            check,
            scrub(
                &format!("the webhook answered {status} {body}: check or recreate its URL"),
                secrets,
            ),
        ),
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
