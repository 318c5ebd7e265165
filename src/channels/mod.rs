//! Delivery channels: the I/O adapters that carry one rendered message to its sink (DESIGN §7).
//!
//! A channel turns every error into a [`DeliveryOutcome`] and never panics; the dispatcher
//! runs each [`Channel::deliver`] under `dispatch_timeout` itself, so a channel sets no overall
//! timeout of its own — except that the smtp channel ends a delivery that queued for a
//! connection just before that timeout, to say how long it queued.

pub mod email_layout;
pub mod http;
pub mod inbox;
pub mod settings;
pub mod slack;
pub mod smtp;
#[cfg(test)]
mod test_support;
pub mod webhook;

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use crate::model::{DeliveryOutcome, Method};
use crate::render::Rendered;

pub use settings::ChannelSettings;
pub use smtp::SmtpChannel;
pub use webhook::WebhookChannel;

/// One message to deliver, already rendered.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// `notification_messages.id`; sinks may use it to drop duplicates (delivery is at least
    /// once).
    pub message_id: Uuid,
    /// The event's name, e.g. `workspace_deleted`.
    pub event: &'a str,
    /// The method the message was queued for.
    pub method: Method,
    /// The recipient user, if any (a user's own target also has one).
    pub user_id: Option<Uuid>,
    /// The qualified target name ([`crate::model::TargetRef::qualified_name`]) for a target
    /// message: `name` for a global target, `username/name` for a user's own.
    pub target: Option<&'a str>,
    /// The payload stored with the message ([`crate::routing::build_payload`]).
    pub payload: &'a serde_json::Value,
    /// The message's title, bodies and actions.
    pub rendered: &'a Rendered,
}

/// Carries messages of one [`Method`] to their sink.
#[async_trait]
pub trait Channel: Send + Sync {
    /// The method this channel delivers.
    fn method(&self) -> Method;

    /// Tries one delivery. Every failure is an outcome, never a panic: `Retryable` when trying
    /// again may help, `Permanent` when it cannot; reasons never contain secrets.
    async fn deliver(&self, delivery: &Delivery<'_>) -> DeliveryOutcome;

    /// Reaches every peer this channel would deliver to, without sending a notification
    /// (`herald doctor`): one result per peer.
    async fn check(&self) -> Vec<CheckResult> {
        Vec::new()
    }
}

/// One line of `herald doctor`: what was checked, the verdict, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CheckResult {
    /// What was checked, e.g. `webhook endpoint http://hooks.example.com/<redacted>`.
    pub check: String,
    pub ok: bool,
    /// The evidence, or what to do; never a secret.
    pub detail: String,
}

impl CheckResult {
    pub fn pass(check: impl Into<String>, detail: impl Into<String>) -> CheckResult {
        CheckResult::new(check.into(), true, detail.into())
    }

    pub fn fail(check: impl Into<String>, detail: impl Into<String>) -> CheckResult {
        CheckResult::new(check.into(), false, detail.into())
    }

    /// The detail often quotes a peer (an SMTP greeting, a Slack error): it is cleaned of
    /// control characters and bounded like a `status_reason`.
    fn new(check: String, ok: bool, detail: String) -> CheckResult {
        let clean = |text: &str| crate::queue::clean_text(text, 2 * crate::queue::MAX_REASON_CHARS);
        CheckResult {
            check: clean(&check),
            ok,
            detail: clean(&detail),
        }
    }
}

/// The channels of one process, by method.
#[derive(Default, Clone)]
pub struct Channels {
    by_method: HashMap<Method, Arc<dyn Channel>>,
}

impl Channels {
    /// No channels.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `channel` under its own method, replacing any channel already there.
    pub fn insert(&mut self, channel: Arc<dyn Channel>) {
        self.by_method.insert(channel.method(), channel);
    }

    /// The channel for `method`, if one is configured.
    pub fn get(&self, method: Method) -> Option<&Arc<dyn Channel>> {
        self.by_method.get(&method)
    }

    /// Every channel a replica delivers with: the configured ones plus the inbox, which writes
    /// into `store`.
    pub fn for_replica(
        settings: &ChannelSettings,
        store: Arc<dyn crate::store::Store>,
    ) -> Result<Channels, ChannelError> {
        let mut channels = Channels::from_settings(settings)?;
        channels.insert(Arc::new(inbox::InboxChannel::new(store)));
        Ok(channels)
    }

    /// Every channel's [`Channel::check`], in method order.
    pub async fn check_all(&self) -> Vec<CheckResult> {
        let mut results = Vec::new();
        for method in self.methods() {
            if let Some(channel) = self.get(method) {
                results.extend(channel.check().await);
            }
        }
        results
    }

    /// The methods that have a channel, in [`Method::ALL`] order.
    pub fn methods(&self) -> Vec<Method> {
        Method::ALL
            .iter()
            .copied()
            .filter(|m| self.by_method.contains_key(m))
            .collect()
    }

    /// Builds every channel the settings ask for: `webhook` when it has an endpoint or any
    /// target (global or a user's), `smtp` when it has a smarthost or any target, each Slack
    /// channel when it has any target.
    pub fn from_settings(settings: &ChannelSettings) -> Result<Channels, ChannelError> {
        let mut channels = Channels::new();
        let webhook = &settings.webhook;
        if webhook.endpoint.is_some() || !webhook.targets.is_empty() {
            channels.insert(Arc::new(WebhookChannel::new(webhook)?));
        }
        let smtp = &settings.smtp;
        if smtp.email.smarthost.is_some() || !smtp.targets.is_empty() {
            channels.insert(Arc::new(SmtpChannel::new(smtp)?));
        }
        if !settings.slack_webhook.targets.is_empty() {
            let channel = slack::SlackWebhookChannel::new(&settings.slack_webhook)?;
            channels.insert(Arc::new(channel));
        }
        if !settings.slack_api.targets.is_empty() {
            channels.insert(Arc::new(slack::SlackApiChannel::new(&settings.slack_api)?));
        }
        Ok(channels)
    }
}

impl fmt::Debug for Channels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channels")
            .field("methods", &self.methods())
            .finish()
    }
}

/// A channel that could not be set up from the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// Building the channel's client failed; `reason` says why, without secrets.
    #[error("cannot set up the {method} channel: {reason}")]
    Setup {
        /// The channel's method.
        method: Method,
        /// What went wrong.
        reason: String,
    },
}

thread_local! {
    static CATCHING_PANIC: Cell<bool> = const { Cell::new(false) };
}

/// Whether the panic now unwinding on this thread will be caught by a channel and become a
/// delivery outcome (`catch_panic`); a panic hook then need not give up the terminal.
pub fn panic_is_caught() -> bool {
    CATCHING_PANIC.with(Cell::get)
}

/// Runs `f`, turning a panic in it into `Err(the panic's message)`; [`panic_is_caught`] holds
/// meanwhile. For third-party code known to panic on what a peer sends (lettre's reply
/// parsing), and for the dispatcher's guard around each delivery: Herald's own code returns
/// errors.
pub(crate) fn catch_panic<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    let was = CATCHING_PANIC.with(|c| c.replace(true));
    let result = std::panic::catch_unwind(AssertUnwindSafe(f));
    CATCHING_PANIC.with(|c| c.set(was));
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|text| (*text).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "it panicked".to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::settings::WebhookSettings;
    use super::test_support::named;
    use super::*;
    use crate::secret::Secret;

    #[test]
    fn a_caught_panic_is_its_message_and_is_known_as_caught_meanwhile() {
        assert!(!panic_is_caught());
        let caught = catch_panic(|| {
            assert!(panic_is_caught());
            let word: Option<&str> = "   ".split_whitespace().next();
            word.map(str::len)
                .unwrap_or_else(|| panic!("no first word in {:?}", "   "))
        });
        assert_eq!(caught, Err("no first word in \"   \"".to_string()));
        assert!(!panic_is_caught());
        assert_eq!(catch_panic(|| 7), Ok(7));
    }

    #[test]
    fn check_results_quote_peers_without_control_characters() {
        let r = CheckResult::fail("smtp 127.0.0.1:25", "greeting 554 \u{1b}[2Jno\0 thanks");
        assert_eq!(r.detail, "greeting 554 no thanks");
    }

    fn webhook(settings: WebhookSettings) -> ChannelSettings {
        ChannelSettings {
            webhook: settings,
            ..ChannelSettings::default()
        }
    }

    #[test]
    fn no_webhook_settings_means_no_webhook_channel() {
        let channels = Channels::from_settings(&ChannelSettings::default()).unwrap();
        assert!(channels.get(Method::Webhook).is_none());
        assert!(channels.methods().is_empty());
    }

    #[test]
    fn an_endpoint_makes_a_webhook_channel() {
        let channels = Channels::from_settings(&webhook(WebhookSettings {
            endpoint: Some("http://127.0.0.1:9/hook".to_string()),
            ..WebhookSettings::default()
        }))
        .unwrap();
        let webhook = channels.get(Method::Webhook).expect("a webhook channel");
        assert_eq!(webhook.method(), Method::Webhook);
        assert_eq!(channels.methods(), vec![Method::Webhook]);
        assert_eq!(format!("{channels:?}"), "Channels { methods: [Webhook] }");
    }

    #[test]
    fn a_webhook_target_alone_makes_a_webhook_channel() {
        for (name, url) in [
            ("ops", "http://127.0.0.1:9/ops"),
            ("alice/mine", "http://127.0.0.1:9/mine"),
        ] {
            let settings = webhook(WebhookSettings {
                targets: vec![named(name, Some(Secret::new(url)))],
                ..WebhookSettings::default()
            });
            assert!(
                Channels::from_settings(&settings)
                    .unwrap()
                    .get(Method::Webhook)
                    .is_some()
            );
        }
    }
}
