//! The typed sections of [`Config`](super::Config): `[notifications]`, `[email]`, `[http]`,
//! targets, users and event overrides, with their documented defaults. `[email]` and a target's `smtp`
//! and `slack_api` keys are the channel settings types (re-exported here, under the
//! configuration's names where it has its own), so that they are declared once.

use std::time::Duration;

use super::Secret;
pub use crate::channels::settings::{
    EmailSettings as EmailConfig, SlackApiTarget, SmtpAuthSettings as EmailAuthConfig, SmtpTarget,
    SmtpTlsSettings as EmailTlsConfig,
};
use crate::model::{Method, Role, TargetType};

/// `[events.NAME]`: templates that replace the catalog's for every delivery of one event
/// (SQLMesh's "overriding notification targets"); a target's own templates beat these.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventOverrideConfig {
    /// Replaces the event's title template.
    pub title_template: Option<String>,
    /// Replaces the event's body template (Markdown).
    pub body_template: Option<String>,
}

/// `[notifications]` (DESIGN §5, §6).
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationsConfig {
    /// Deployment default method for user notifications: `smtp` or `webhook`.
    pub method: Method,
    /// Whether user notifications are also copied to the in-app inbox.
    pub inbox_enabled: bool,
    /// How long one delivery may take; must be shorter than `lease_period`.
    pub dispatch_timeout: Duration,
    /// Deliveries tried before a message becomes `permanent_failure` (at least 1).
    pub max_send_attempts: u32,
    /// Wait after a retryable failure before the next attempt.
    pub retry_interval: Duration,
    /// The longest wait between attempts, whatever a peer's `Retry-After` asks for.
    pub max_retry_delay: Duration,
    /// Poll interval when nothing wakes the dispatcher earlier.
    pub fetch_interval: Duration,
    /// Messages leased per batch (at least 1).
    pub lease_count: u32,
    /// How long a lease lasts before another replica may take the message.
    pub lease_period: Duration,
    /// How often the ack buffer is flushed to the store.
    pub store_sync_interval: Duration,
    /// Outcomes buffered before a flush is forced (at least 1).
    pub store_sync_buffer: usize,
    /// Messages unchanged for longer than this are deleted.
    pub retention: Duration,
    /// `[notifications.webhook]`: the `webhook` method's endpoint.
    pub webhook: WebhookConfig,
}

/// `[notifications.webhook]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WebhookConfig {
    /// Where the `webhook` method POSTs; unset means the method is not configured. Show it with
    /// [`redact_url`](super::redact_url).
    pub endpoint: Option<String>,
    /// Key of the `X-Herald-Signature` HMAC; unset means requests are not signed.
    pub signing_secret: Option<Secret>,
}

/// `[http]`: the producers' HTTP API (DESIGN §12).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpConfig {
    /// Where `herald serve` serves the API, `/healthz`, `/readyz` and `/metrics`; unset means
    /// no API (`serve --http ADDR` beats it).
    pub listen: Option<std::net::SocketAddr>,
}

/// `[ssh]`: the console over SSH (DESIGN §13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshConfig {
    /// Where `herald serve` runs the SSH server; unset means none (`serve --ssh ADDR` beats it).
    pub listen: Option<std::net::SocketAddr>,
    /// The server's Ed25519 host key, created (mode 0600) on first start when missing.
    pub host_key_file: std::path::PathBuf,
    /// Consoles open at once; one more is refused with a line saying so.
    pub max_sessions: usize,
    /// A console with no keystroke for this long is closed.
    pub idle_timeout: Duration,
    /// Refused authentication attempts one source address may make in a minute; past it,
    /// every attempt from there is refused until the minute is over.
    pub auth_attempts_per_minute: u32,
}

impl Default for SshConfig {
    fn default() -> Self {
        SshConfig {
            listen: None,
            host_key_file: "./herald_ssh_host_ed25519_key".into(),
            max_sessions: 32,
            idle_timeout: Duration::from_secs(30 * 60),
            auth_attempts_per_minute: 20,
        }
    }
}

/// One SQLMesh-style notification target (`[[targets]]` or `[[users.targets]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct TargetConfig {
    /// Unique among the global targets, or among one user's targets.
    pub name: String,
    /// TOML key `type`.
    pub target_type: TargetType,
    /// Event names this target hears about (checked against the catalog elsewhere).
    pub notify_on: Vec<String>,
    /// `slack_webhook` / `webhook`: the URL to POST to (its path is the secret).
    pub url: Option<Secret>,
    /// `slack_api`: the bearer token, the channel (or member id) and the Web API base URL
    /// (tests point it at a fake).
    pub slack_api: SlackApiTarget,
    /// `smtp`: the recipients, and the target's own server and sender where it sets them.
    pub smtp: SmtpTarget,
    /// Overrides the event's title template for this target.
    pub title_template: Option<String>,
    /// Overrides the event's body template for this target.
    pub body_template: Option<String>,
}

/// A user declared in config (`[[users]]`), upserted at start.
#[derive(Debug, Clone, PartialEq)]
pub struct UserConfig {
    /// Unique user name.
    pub username: String,
    /// Email address.
    pub email: String,
    /// Display name.
    pub name: Option<String>,
    /// Roles held.
    pub roles: Vec<Role>,
    /// The user's own targets, notified when this user is the actor.
    pub targets: Vec<TargetConfig>,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        NotificationsConfig {
            method: Method::Smtp,
            inbox_enabled: true,
            dispatch_timeout: Duration::from_secs(60),
            max_send_attempts: 5,
            retry_interval: Duration::from_secs(5 * 60),
            max_retry_delay: Duration::from_secs(60 * 60),
            fetch_interval: Duration::from_secs(15),
            lease_count: 100,
            lease_period: Duration::from_secs(2 * 60),
            store_sync_interval: Duration::from_millis(250),
            store_sync_buffer: 500,
            retention: Duration::from_secs(7 * 24 * 60 * 60),
            webhook: WebhookConfig::default(),
        }
    }
}
