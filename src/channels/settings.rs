//! What the channels are built from: plain settings, one struct per channel, with every target
//! already named by its qualified name (`name`, or `username/name` for a user's own). The
//! configuration fills them in one place (`Config::channel_settings`); a channel never reads
//! the configuration itself. `[email]` ([`EmailSettings`], with [`SmtpAuthSettings`] and
//! [`SmtpTlsSettings`]) and a target's `smtp` and `slack_api` keys ([`SmtpTarget`],
//! [`SlackApiTarget`]) are kept once, here: the configuration parses into these very types.
//! Secrets stay wrapped in [`Secret`].

use std::path::PathBuf;
use std::time::Duration;

use crate::secret::Secret;

/// The settings of every channel a process may build.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChannelSettings {
    /// The `webhook` channel.
    pub webhook: WebhookSettings,
    /// The `smtp` channel.
    pub smtp: SmtpSettings,
    /// The `slack_webhook` channel.
    pub slack_webhook: SlackWebhookSettings,
    /// The `slack_api` channel.
    pub slack_api: SlackApiSettings,
}

/// A target's settings under its qualified name, in the configuration's order.
pub type Named<T> = Vec<(String, T)>;

/// `[notifications.webhook]` and the `webhook` targets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WebhookSettings {
    /// Where user messages go; unset means they cannot be sent.
    pub endpoint: Option<String>,
    /// Key of the `X-Herald-Signature` HMAC; unset means requests are not signed.
    pub signing_secret: Option<Secret>,
    /// Each `webhook` target's URL (its path is often the credential).
    pub targets: Named<Option<Secret>>,
}

/// The `slack_webhook` targets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlackWebhookSettings {
    /// `notifications.dispatch_timeout`: a check waits no longer than a delivery.
    pub dispatch_timeout: Duration,
    /// Each target's incoming-webhook URL (the URL is the credential).
    pub targets: Named<Option<Secret>>,
}

/// The `slack_api` targets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlackApiSettings {
    /// `notifications.dispatch_timeout`: a check waits no longer than a delivery.
    pub dispatch_timeout: Duration,
    /// Each target's token, channel and Web API base URL.
    pub targets: Named<SlackApiTarget>,
}

/// What one `slack_api` target posts with.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlackApiTarget {
    /// The bearer token.
    pub token: Option<Secret>,
    /// A channel name or id, or a member id for a direct message.
    pub channel: Option<String>,
    /// The Web API base URL, e.g. `https://slack.com/api`.
    pub api_base_url: String,
}

/// `[email]` and the `smtp` targets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SmtpSettings {
    /// `notifications.dispatch_timeout`: the dispatcher's bound on one delivery.
    pub dispatch_timeout: Duration,
    /// `[email]`: the sender and the smarthost of user messages.
    pub email: EmailSettings,
    /// The `smtp` targets.
    pub targets: Named<SmtpTarget>,
}

/// `[email]` (DESIGN §7, Coder's `CODER_EMAIL_*`; the configuration's `EmailConfig`).
#[derive(Debug, Clone, PartialEq)]
pub struct EmailSettings {
    /// The sender, e.g. `Herald <herald@example.com>`.
    pub from: Option<String>,
    /// The SMTP relay as `host:port`; unset means user messages cannot be sent.
    pub smarthost: Option<String>,
    /// The name sent in `HELO`/`EHLO`.
    pub hello: String,
    /// `[email.auth]`.
    pub auth: SmtpAuthSettings,
    /// `[email.tls]`.
    pub tls: SmtpTlsSettings,
}

impl Default for EmailSettings {
    fn default() -> Self {
        EmailSettings {
            from: None,
            smarthost: None,
            hello: "localhost".to_string(),
            auth: SmtpAuthSettings::default(),
            tls: SmtpTlsSettings::default(),
        }
    }
}

/// `[email.auth]`: PLAIN/LOGIN credentials for the smarthost (the configuration's
/// `EmailAuthConfig`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SmtpAuthSettings {
    /// User name for PLAIN/LOGIN.
    pub username: Option<String>,
    /// Password; exclusive with `password_file`.
    pub password: Option<Secret>,
    /// File holding the password, read when the channel is built; exclusive with `password`.
    pub password_file: Option<PathBuf>,
    /// PLAIN's authorization identity.
    pub identity: Option<String>,
}

/// `[email.tls]`: how connections are secured (the configuration's `EmailTlsConfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SmtpTlsSettings {
    /// Implicit TLS from the first byte (also implied by port 465).
    pub force_tls: bool,
    /// Upgrade a plain connection with STARTTLS.
    pub starttls: bool,
    /// Verify neither the certificate nor the name in it (insecure).
    pub skip_verify: bool,
    /// The name the smarthost's certificate is verified against, when not its host.
    pub server_name: Option<String>,
    /// Client certificate (PEM); goes with `cert_key_file`.
    pub cert_file: Option<PathBuf>,
    /// Client certificate key (PEM); goes with `cert_file`.
    pub cert_key_file: Option<PathBuf>,
    /// A CA bundle (PEM) trusted instead of the system roots.
    pub ca_file: Option<PathBuf>,
}

impl SmtpTlsSettings {
    /// The client certificate and its key, presented when the server asks; `None` unless
    /// both are set (the configuration refuses one without the other).
    pub fn client_cert(&self) -> Option<(PathBuf, PathBuf)> {
        self.cert_file.clone().zip(self.cert_key_file.clone())
    }
}

/// One `smtp` target: its recipients, and its own server and sender where it sets them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SmtpTarget {
    pub recipients: Vec<String>,
    /// Else `email.smarthost`.
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub password: Option<Secret>,
    /// Else `email.from`.
    pub sender: Option<String>,
}
