//! [`SETTINGS`], the table of every scalar setting (dotted key, environment variable,
//! conversion), and the key lists of the tables that are not in it; both drive the file's known
//! keys, the environment layer and the "expected one of" lists.

use super::Config;
use super::raw::Raw;
use crate::model::TargetType;

/// One scalar setting: its dotted key in the file, its environment variable, and how a raw
/// value is converted into the [`Config`] field (the error text names no key: the caller adds
/// it).
pub(super) struct Setting {
    pub(super) key: &'static str,
    pub(super) env: &'static str,
    pub(super) apply: fn(&mut Config, Raw) -> Result<(), String>,
}

macro_rules! setting {
    ($key:literal, $env:literal, $($field:ident).+ => $convert:ident) => {
        Setting {
            key: $key,
            env: $env,
            apply: |config, raw| {
                config.$($field).+ = raw.$convert()?;
                Ok(())
            },
        }
    };
}

/// Every scalar setting, in the order the "expected one of" lists show them.
pub(super) const SETTINGS: &[Setting] = &[
    setting!("database_url", "HERALD_DATABASE_URL", database_url => database_url),
    setting!("base_url", "HERALD_BASE_URL", base_url => base_url),
    setting!("username", "HERALD_USERNAME", username => optional_text),
    setting!("notifications.method", "HERALD_NOTIFICATIONS_METHOD",
        notifications.method => default_method),
    setting!("notifications.inbox_enabled", "HERALD_NOTIFICATIONS_INBOX_ENABLED",
        notifications.inbox_enabled => boolean),
    setting!("notifications.dispatch_timeout", "HERALD_NOTIFICATIONS_DISPATCH_TIMEOUT",
        notifications.dispatch_timeout => positive_duration),
    setting!("notifications.max_send_attempts", "HERALD_NOTIFICATIONS_MAX_SEND_ATTEMPTS",
        notifications.max_send_attempts => positive_u32),
    setting!("notifications.retry_interval", "HERALD_NOTIFICATIONS_RETRY_INTERVAL",
        notifications.retry_interval => duration),
    setting!("notifications.max_retry_delay", "HERALD_NOTIFICATIONS_MAX_RETRY_DELAY",
        notifications.max_retry_delay => positive_duration),
    setting!("notifications.fetch_interval", "HERALD_NOTIFICATIONS_FETCH_INTERVAL",
        notifications.fetch_interval => positive_duration),
    setting!("notifications.lease_count", "HERALD_NOTIFICATIONS_LEASE_COUNT",
        notifications.lease_count => positive_u32),
    setting!("notifications.lease_period", "HERALD_NOTIFICATIONS_LEASE_PERIOD",
        notifications.lease_period => positive_duration),
    setting!("notifications.store_sync_interval", "HERALD_NOTIFICATIONS_STORE_SYNC_INTERVAL",
        notifications.store_sync_interval => positive_duration),
    setting!("notifications.store_sync_buffer", "HERALD_NOTIFICATIONS_STORE_SYNC_BUFFER",
        notifications.store_sync_buffer => positive_usize),
    setting!("notifications.retention", "HERALD_NOTIFICATIONS_RETENTION",
        notifications.retention => positive_duration),
    setting!("notifications.webhook.endpoint", "HERALD_NOTIFICATIONS_WEBHOOK_ENDPOINT",
        notifications.webhook.endpoint => optional_http_url),
    setting!("notifications.webhook.signing_secret", "HERALD_NOTIFICATIONS_WEBHOOK_SIGNING_SECRET",
        notifications.webhook.signing_secret => optional_secret),
    setting!("email.from", "HERALD_EMAIL_FROM", email.from => optional_text),
    setting!("email.smarthost", "HERALD_EMAIL_SMARTHOST", email.smarthost => optional_smarthost),
    setting!("email.hello", "HERALD_EMAIL_HELLO", email.hello => required_text),
    setting!("email.auth.username", "HERALD_EMAIL_AUTH_USERNAME",
        email.auth.username => optional_text),
    setting!("email.auth.password", "HERALD_EMAIL_AUTH_PASSWORD",
        email.auth.password => optional_secret),
    setting!("email.auth.password_file", "HERALD_EMAIL_AUTH_PASSWORD_FILE",
        email.auth.password_file => optional_path),
    setting!("email.auth.identity", "HERALD_EMAIL_AUTH_IDENTITY",
        email.auth.identity => optional_text),
    setting!("email.tls.force_tls", "HERALD_EMAIL_FORCE_TLS", email.tls.force_tls => boolean),
    setting!("email.tls.starttls", "HERALD_EMAIL_TLS_STARTTLS", email.tls.starttls => boolean),
    setting!("email.tls.skip_verify", "HERALD_EMAIL_TLS_SKIP_VERIFY",
        email.tls.skip_verify => boolean),
    setting!("email.tls.server_name", "HERALD_EMAIL_TLS_SERVER_NAME",
        email.tls.server_name => optional_text),
    setting!("email.tls.cert_file", "HERALD_EMAIL_TLS_CERT_FILE",
        email.tls.cert_file => optional_path),
    setting!("email.tls.cert_key_file", "HERALD_EMAIL_TLS_CERT_KEY_FILE",
        email.tls.cert_key_file => optional_path),
    setting!("email.tls.ca_file", "HERALD_EMAIL_TLS_CA_FILE", email.tls.ca_file => optional_path),
    setting!("http.listen", "HERALD_HTTP_LISTEN", http.listen => optional_listen_address),
    setting!("ssh.listen", "HERALD_SSH_LISTEN", ssh.listen => optional_listen_address),
    setting!("ssh.host_key_file", "HERALD_SSH_HOST_KEY_FILE", ssh.host_key_file => path),
    setting!("ssh.max_sessions", "HERALD_SSH_MAX_SESSIONS", ssh.max_sessions => positive_usize),
    setting!("ssh.idle_timeout", "HERALD_SSH_IDLE_TIMEOUT", ssh.idle_timeout => positive_duration),
    setting!("ssh.auth_attempts_per_minute", "HERALD_SSH_AUTH_ATTEMPTS_PER_MINUTE",
        ssh.auth_attempts_per_minute => positive_u32),
];

/// Top-level arrays of tables and the `[events]` table, which are not in [`SETTINGS`].
pub(super) const ROOT_TABLES: [&str; 3] = ["targets", "users", "events"];

/// Keys of an `[events.NAME]` table.
pub(super) const EVENT_OVERRIDE_KEYS: &[&str] = &["title_template", "body_template"];

/// Keys of a `[[targets]]` table.
pub(super) const TARGET_KEYS: &[&str] = &[
    "name",
    "type",
    "notify_on",
    "url",
    "token",
    "channel",
    "api_base_url",
    "recipients",
    "host",
    "port",
    "user",
    "password",
    "sender",
    "title_template",
    "body_template",
];

/// Target keys every type takes.
pub(super) const COMMON_TARGET_KEYS: &[&str] = &[
    "name",
    "type",
    "notify_on",
    "title_template",
    "body_template",
];

/// Keys of a `[[users]]` table.
pub(super) const USER_KEYS: &[&str] = &["username", "email", "name", "roles", "targets"];

/// The keys a target of this type takes besides [`COMMON_TARGET_KEYS`].
pub(super) fn target_type_keys(target_type: TargetType) -> &'static [&'static str] {
    match target_type {
        TargetType::SlackWebhook | TargetType::Webhook => &["url"],
        TargetType::SlackApi => &["token", "channel", "api_base_url"],
        TargetType::Smtp => &["recipients", "host", "port", "user", "password", "sender"],
    }
}

/// The keys directly inside a section (`""` is the root), in table order.
pub(super) fn section_keys(section: &str) -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = Vec::new();
    for setting in SETTINGS {
        let rest = if section.is_empty() {
            Some(setting.key)
        } else {
            setting
                .key
                .strip_prefix(section)
                .and_then(|rest| rest.strip_prefix('.'))
        };
        if let Some(child) = rest.and_then(|rest| rest.split('.').next())
            && !keys.contains(&child)
        {
            keys.push(child);
        }
    }
    if section.is_empty() {
        keys.extend(ROOT_TABLES);
    }
    keys
}

pub(super) fn is_section(path: &str) -> bool {
    SETTINGS.iter().any(|s| {
        s.key
            .strip_prefix(path)
            .is_some_and(|rest| rest.starts_with('.'))
    })
}

pub(super) fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}
