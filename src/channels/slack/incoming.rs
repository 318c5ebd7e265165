//! `slack_webhook`: a Block Kit message posted to an incoming webhook's URL (the URL is the
//! credential).

use super::*;

/// Delivers `slack_webhook` messages: a Block Kit `POST` to the target's incoming-webhook URL.
pub struct SlackWebhookChannel {
    client: reqwest::Client,
    /// How long one doctor check waits ([`CHECK_TIMEOUT_MAX`] at most).
    check_timeout: Duration,
    /// `slack_webhook` targets' URLs by qualified name (`name`, or `username/name`).
    targets: BTreeMap<String, Option<Secret>>,
}

impl SlackWebhookChannel {
    /// Builds the channel (and its connection pool) from the `slack_webhook` targets.
    pub fn new(settings: &SlackWebhookSettings) -> Result<Self, ChannelError> {
        Ok(SlackWebhookChannel {
            client: http::client(Method::SlackWebhook)?,
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
        let mut results = Vec::new();
        for (name, url) in &self.targets {
            let check = format!("slack_webhook target `{name}`");
            let Some(url) = url else {
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
