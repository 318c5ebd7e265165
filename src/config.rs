//! Configuration from the TOML file, `HERALD_…` environment variables and command-line flags,
//! validated with one-line errors that name the key and, for the file, the line (DESIGN §9).
//!
//! Precedence is flag > env > file > default. Every scalar setting is declared once in
//! [`SETTINGS`] (dotted key, environment name, conversion); that table drives the file's known
//! keys, the environment layer and the "expected one of" lists. `[[targets]]`, `[[users]]` and
//! the `[events.NAME]` template overrides come from the file only. Secrets are held in
//! [`Secret`], which never prints its value.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::model::{Method, Role, TargetRef, TargetType};

/// The file read when neither `--config` nor `HERALD_CONFIG` names one (if it exists).
pub const DEFAULT_CONFIG_FILE: &str = "herald.toml";
/// The environment variable naming the config file.
pub const CONFIG_FILE_ENV: &str = "HERALD_CONFIG";
/// The Slack Web API base URL used when a `slack_api` target does not set `api_base_url`.
pub const DEFAULT_SLACK_API_BASE_URL: &str = "https://slack.com/api";

// ---------------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------------

/// A password, token, signing secret or secret URL: `Debug` and `Display` print `<redacted>`;
/// only [`Secret::expose`] gives the value, so leaking it takes a deliberate call.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_string())
    }
}

/// Shows a URL whose path is a secret (Slack incoming webhooks, webhook endpoints): keeps
/// `scheme://host[:port]`, drops any `user:password@`, and replaces whatever follows the host
/// with `/<redacted>`. A string that is not `scheme://…` is redacted whole.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<redacted>".to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let tail = &rest[authority_end..];
    if tail.is_empty() || tail == "/" {
        format!("{scheme}://{host}{tail}")
    } else {
        format!("{scheme}://{host}/<redacted>")
    }
}

/// Shows a URL with only its passwords redacted: the password of its `user:password@` part
/// and the values of the `password` and `sslpassword` query parameters (which PostgreSQL
/// URLs accept too), e.g. a `postgres://herald:<redacted>@db:5432/herald` database URL in the
/// console header.
pub fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:<redacted>@{host}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    let (before_fragment, fragment) = tail.split_at(tail.find('#').unwrap_or(tail.len()));
    let Some((path, query)) = before_fragment.split_once('?') else {
        return format!("{scheme}://{authority}{tail}");
    };
    // A password with a raw `&` or `#` in it spills into what follows: a piece without `=`
    // after a password, and the fragment, are hidden with it.
    let mut redacting = false;
    let mut hid_one = false;
    let mut shown: Vec<String> = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some((name, value)) if is_password_parameter(name) => {
                redacting = !value.is_empty();
                hid_one |= redacting;
                shown.push(if redacting {
                    format!("{name}=<redacted>")
                } else {
                    pair.to_string()
                });
            }
            None if redacting => {}
            _ => {
                redacting = false;
                shown.push(pair.to_string());
            }
        }
    }
    let fragment = if hid_one && !fragment.is_empty() {
        "#<redacted>"
    } else {
        fragment
    };
    format!("{scheme}://{authority}{path}?{}{fragment}", shown.join("&"))
}

/// Whether a query parameter's name, percent-decoded as drivers decode it, names a password.
fn is_password_parameter(name: &str) -> bool {
    let bytes = name.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                i += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    let decoded = String::from_utf8_lossy(&decoded);
    ["password", "sslpassword"]
        .iter()
        .any(|secret| decoded.trim().eq_ignore_ascii_case(secret))
}

// ---------------------------------------------------------------------------------------------
// The configuration
// ---------------------------------------------------------------------------------------------

/// What the command line says about configuration (`--config`, `--database-url`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigSources {
    /// `--config FILE`: must exist.
    pub file: Option<PathBuf>,
    /// `--database-url URL`: beats `HERALD_DATABASE_URL` and the file.
    pub database_url: Option<String>,
}

/// The whole, validated configuration of a Herald process.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `sqlite:…` (embedded default) or `postgres://…` / `postgresql://…`.
    pub database_url: String,
    /// The deployment's URL (Coder's access URL), an absolute http(s) URL without a trailing
    /// slash: templates see it as `{{ base_url }}`, and relative action URLs are made absolute
    /// with it, so Slack buttons and email links work.
    pub base_url: Option<String>,
    /// SQLMesh's rule: when set, every enqueue made with this config acts as `--actor` this user.
    pub username: Option<String>,
    /// `[notifications]`: queue and dispatcher tuning, deployment default method, webhook.
    pub notifications: NotificationsConfig,
    /// `[email]`: the SMTP smarthost used by the `smtp` method and by smtp targets without a host.
    pub email: EmailConfig,
    /// `[[targets]]`: global SQLMesh-style targets.
    pub targets: Vec<TargetConfig>,
    /// `[[users]]`: users declared in config, with their own targets.
    pub users: Vec<UserConfig>,
    /// `[events.NAME]`: an event's templates overridden for every delivery, by event name
    /// (checked against the catalog by [`crate::render::validate_catalog`]).
    pub events: BTreeMap<String, EventOverrideConfig>,
}

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
    /// [`redact_url`].
    pub endpoint: Option<String>,
    /// Key of the `X-Herald-Signature` HMAC; unset means requests are not signed.
    pub signing_secret: Option<Secret>,
}

/// `[email]` (DESIGN §7, Coder's `CODER_EMAIL_*`).
#[derive(Debug, Clone, PartialEq)]
pub struct EmailConfig {
    /// The sender, e.g. `Herald <herald@example.com>`.
    pub from: Option<String>,
    /// The SMTP relay as `host:port`; unset means the `smtp` method is not configured.
    pub smarthost: Option<String>,
    /// The name sent in `HELO`/`EHLO`.
    pub hello: String,
    /// `[email.auth]`.
    pub auth: EmailAuthConfig,
    /// `[email.tls]`.
    pub tls: EmailTlsConfig,
}

/// `[email.auth]`: PLAIN/LOGIN authentication.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EmailAuthConfig {
    /// User name for PLAIN/LOGIN.
    pub username: Option<String>,
    /// Password; exclusive with `password_file`.
    pub password: Option<Secret>,
    /// File holding the password; exclusive with `password`.
    pub password_file: Option<PathBuf>,
    /// Identity for PLAIN.
    pub identity: Option<String>,
}

/// `[email.tls]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmailTlsConfig {
    /// Implicit TLS from the first byte (also implied by port 465).
    pub force_tls: bool,
    /// Upgrade a plain connection with STARTTLS.
    pub starttls: bool,
    /// Do not verify the server's certificate nor the name in it (insecure).
    pub skip_verify: bool,
    /// Name to verify the certificate against, when it differs from the smarthost's host.
    pub server_name: Option<String>,
    /// Client certificate (PEM); goes with `cert_key_file`.
    pub cert_file: Option<PathBuf>,
    /// Client certificate key (PEM); goes with `cert_file`.
    pub cert_key_file: Option<PathBuf>,
    /// CA bundle (PEM) to trust instead of the system roots.
    pub ca_file: Option<PathBuf>,
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
    /// `slack_api`: the bearer token.
    pub token: Option<Secret>,
    /// `slack_api`: channel name or id, or a member id for a direct message.
    pub channel: Option<String>,
    /// `slack_api`: Web API base URL (tests point it at a fake).
    pub api_base_url: String,
    /// `smtp`: addresses the message goes to.
    pub recipients: Vec<String>,
    /// `smtp`: the target's own server; else `[email].smarthost`.
    pub host: Option<String>,
    /// `smtp`: port of the target's own server.
    pub port: Option<u16>,
    /// `smtp`: user for the target's own server.
    pub user: Option<String>,
    /// `smtp`: password for the target's own server.
    pub password: Option<Secret>,
    /// `smtp`: the sender; else `[email].from`.
    pub sender: Option<String>,
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

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: "sqlite://herald.db".to_string(),
            base_url: None,
            username: None,
            notifications: NotificationsConfig::default(),
            email: EmailConfig::default(),
            targets: Vec::new(),
            users: Vec::new(),
            events: BTreeMap::new(),
        }
    }
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

impl Default for EmailConfig {
    fn default() -> Self {
        EmailConfig {
            from: None,
            smarthost: None,
            hello: "localhost".to_string(),
            auth: EmailAuthConfig::default(),
            tls: EmailTlsConfig::default(),
        }
    }
}

impl Config {
    /// Loads the configuration: the file (`--config`, else `HERALD_CONFIG`, else
    /// `./herald.toml` if present), then `HERALD_…` variables, then flags, then validation.
    /// `env` looks up an environment variable; an empty value counts as unset.
    pub fn load(
        sources: &ConfigSources,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        Self::load_with_default_file(sources, env, Path::new(DEFAULT_CONFIG_FILE))
    }

    /// [`Config::load`] with the fallback file's path given, so it can be tested.
    fn load_with_default_file(
        sources: &ConfigSources,
        env: &dyn Fn(&str) -> Option<String>,
        default_file: &Path,
    ) -> Result<Config, ConfigError> {
        let mut builder = Builder::default();
        if let Some(path) = locate_file(sources, env, default_file)? {
            let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            builder.apply_file(&text, &path.display().to_string(), env)?;
        }
        builder.apply_env(env)?;
        if let Some(url) = &sources.database_url {
            builder.apply_setting("database_url", Raw::Text(url.clone()), || {
                Origin::Flag("--database-url")
            })?;
        }
        builder.finish()
    }

    /// Parses and validates a config file's text over the defaults (no `HERALD_…` overrides;
    /// `env` only serves `${VAR}`). `origin` names the file in error messages.
    pub fn from_toml_str(
        text: &str,
        origin: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut builder = Builder::default();
        builder.apply_file(text, origin, env)?;
        builder.finish()
    }

    /// The delivery methods whose channel is configured for user notifications: `smtp` iff
    /// `email.smarthost` is set, `webhook` iff `notifications.webhook.endpoint` is set, and
    /// `inbox` always (whether copies go there is `inbox_enabled`, a routing decision). Slack
    /// methods are never listed: targets carry their own settings.
    pub fn configured_methods(&self) -> Vec<Method> {
        let mut methods = Vec::new();
        if self.email.smarthost.is_some() {
            methods.push(Method::Smtp);
        }
        if self.notifications.webhook.endpoint.is_some() {
            methods.push(Method::Webhook);
        }
        methods.push(Method::Inbox);
        methods
    }

    /// What a replica built from this configuration delivers (DESIGN §6): user messages of
    /// [`Config::configured_methods`], and every declared target.
    pub fn capabilities(&self) -> crate::model::Capabilities {
        let mut targets: Vec<String> = self
            .target_refs()
            .iter()
            .map(|t| t.qualified_name())
            .collect();
        targets.sort();
        targets.dedup();
        crate::model::Capabilities {
            methods: self.configured_methods(),
            targets,
        }
    }

    /// Every target as routing sees it: the global ones (`owner: None`), then each user's.
    pub fn target_refs(&self) -> Vec<TargetRef> {
        let global = self.targets.iter().map(|t| (None, t));
        let owned = self
            .users
            .iter()
            .flat_map(|u| u.targets.iter().map(move |t| (Some(u.username.clone()), t)));
        global
            .chain(owned)
            .map(|(owner, target)| TargetRef {
                name: target.name.clone(),
                target_type: target.target_type,
                notify_on: target.notify_on.clone(),
                owner,
            })
            .collect()
    }
}

/// `(environment variable, dotted key)` for every setting that the environment can override.
pub fn env_table() -> impl Iterator<Item = (&'static str, &'static str)> {
    SETTINGS.iter().map(|s| (s.env, s.key))
}

/// Finds the config file: `--config`, else `HERALD_CONFIG` (both must exist), else
/// `default_file` if it exists, else none.
fn locate_file(
    sources: &ConfigSources,
    env: &dyn Fn(&str) -> Option<String>,
    default_file: &Path,
) -> Result<Option<PathBuf>, ConfigError> {
    let named = match &sources.file {
        Some(path) => Some((path.clone(), "--config")),
        None => lookup(env, CONFIG_FILE_ENV).map(|p| (PathBuf::from(p), CONFIG_FILE_ENV)),
    };
    match named {
        Some((path, _)) if path.exists() => Ok(Some(path)),
        Some((path, via)) => Err(ConfigError::FileNotFound { path, via }),
        None => Ok(default_file.is_file().then(|| default_file.to_path_buf())),
    }
}

/// An environment lookup where an empty value counts as unset.
fn lookup(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    env(name).filter(|v| !v.is_empty())
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The built-in default.
    Default,
    /// The config file, with the line when known.
    File {
        /// The file as named in messages.
        file: String,
        /// 1-based line.
        line: Option<usize>,
    },
    /// A `HERALD_…` environment variable.
    Env(&'static str),
    /// A command-line flag such as `--database-url`.
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File {
                file,
                line: Some(line),
            } => write!(f, "{file} line {line}"),
            Origin::File { file, line: None } => f.write_str(file),
            Origin::Env(name) | Origin::Flag(name) => f.write_str(name),
        }
    }
}

/// Why the configuration was refused; `Display` is one line an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file named by `--config` or `HERALD_CONFIG` does not exist.
    #[error("config file {} (from {via}) does not exist", path.display())]
    FileNotFound {
        /// The missing file.
        path: PathBuf,
        /// `--config` or `HERALD_CONFIG`.
        via: &'static str,
    },
    /// The config file exists but cannot be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{origin}: invalid TOML: {message}")]
    Syntax {
        /// File and line.
        origin: Origin,
        /// What the parser said.
        message: String,
    },
    /// A key Herald does not know.
    #[error("{origin}: unknown key `{key}`; expected one of: {}", expected.join(", "))]
    UnknownKey {
        /// File and line.
        origin: Origin,
        /// Dotted path of the unknown key.
        key: String,
        /// The keys allowed where it was found.
        expected: Vec<&'static str>,
    },
    /// `${VAR}` names a variable that is not set.
    #[error("{origin}: `{key}` uses ${{{variable}}}, which is not set in the environment")]
    UnsetVariable {
        /// File and line.
        origin: Origin,
        /// Dotted path of the key whose value uses it.
        key: String,
        /// The variable.
        variable: String,
    },
    /// A value of the wrong type or out of range.
    #[error("{}", invalid_value_line(origin, key, problem))]
    InvalidValue {
        /// Where the value came from.
        origin: Origin,
        /// Dotted path of the key.
        key: String,
        /// What is wrong and what is expected.
        problem: String,
    },
    /// Settings that are fine alone but not together.
    #[error("{0}")]
    Inconsistent(String),
}

impl ConfigError {
    /// The dotted key the error is about, when it is about one key.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::UnknownKey { key, .. }
            | ConfigError::UnsetVariable { key, .. }
            | ConfigError::InvalidValue { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// An environment variable or flag names the key by itself; elsewhere the key is spelled out.
fn invalid_value_line(origin: &Origin, key: &str, problem: &str) -> String {
    match origin {
        Origin::Env(_) | Origin::Flag(_) => format!("{origin}: {problem}"),
        Origin::Default => format!("{key}: {problem}"),
        Origin::File { .. } => format!("{origin}: {key}: {problem}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Raw values and their conversions
// ---------------------------------------------------------------------------------------------

/// A scalar as the file or the environment gives it, before conversion. Environment values
/// are always text; the file may give any TOML type.
#[derive(Debug, Clone, PartialEq)]
enum Raw {
    Text(String),
    Bool(bool),
    Integer(i64),
    /// Anything else, named for the error message ("an array").
    Other(&'static str),
}

const DURATION_HINT: &str = "expected e.g. 15s, 5m, 7d";

/// The longest duration a setting or flag takes: 100 years (humantime's `100y`). Durations are
/// added to and taken from timestamps (leases, retries, retention cut-offs); far beyond this
/// they leave the range chrono and the stores can hold, and well before that they are typos.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 31_557_600);

/// A humantime duration (`15s`, `5m`, `7d`) of at most [`MAX_DURATION`], for config values and
/// command-line flags; the error names the text but not the key, which the caller adds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text.trim())
        .map_err(|_| format!("invalid duration `{text}` ({DURATION_HINT})"))?;
    if duration > MAX_DURATION {
        return Err(format!(
            "`{text}` is too long (at most {})",
            humantime::format_duration(MAX_DURATION)
        ));
    }
    Ok(duration)
}

impl Raw {
    fn found(&self) -> &'static str {
        match self {
            Raw::Text(_) => "a string",
            Raw::Bool(_) => "a boolean",
            Raw::Integer(_) => "an integer",
            Raw::Other(what) => what,
        }
    }

    fn text(self) -> Result<String, String> {
        match self {
            Raw::Text(text) => Ok(text),
            other => Err(format!("expected a string, found {}", other.found())),
        }
    }

    fn optional_text(self) -> Result<Option<String>, String> {
        let text = self.text()?;
        Ok((!text.trim().is_empty()).then_some(text))
    }

    fn required_text(self) -> Result<String, String> {
        self.optional_text()?
            .ok_or_else(|| "must not be empty".to_string())
    }

    fn optional_secret(self) -> Result<Option<Secret>, String> {
        Ok(self.optional_text()?.map(Secret))
    }

    fn optional_path(self) -> Result<Option<PathBuf>, String> {
        Ok(self.optional_text()?.map(PathBuf::from))
    }

    fn boolean(self) -> Result<bool, String> {
        match self {
            Raw::Bool(value) => Ok(value),
            Raw::Text(text) => match text.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Ok(true),
                "false" | "0" | "no" => Ok(false),
                _ => Err(format!(
                    "invalid boolean `{text}` (expected true/false, yes/no or 1/0)"
                )),
            },
            other => Err(format!("expected a boolean, found {}", other.found())),
        }
    }

    fn integer(self) -> Result<i64, String> {
        match self {
            Raw::Integer(value) => Ok(value),
            Raw::Text(text) => text
                .trim()
                .parse()
                .map_err(|_| format!("invalid number `{text}` (expected a whole number)")),
            other => Err(format!("expected an integer, found {}", other.found())),
        }
    }

    fn positive_u32(self) -> Result<u32, String> {
        let value = self.integer()?;
        if value < 1 {
            return Err(format!("must be at least 1, got {value}"));
        }
        u32::try_from(value).map_err(|_| format!("{value} is too large (at most {})", u32::MAX))
    }

    fn positive_usize(self) -> Result<usize, String> {
        let value = self.integer()?;
        if value < 1 {
            return Err(format!("must be at least 1, got {value}"));
        }
        usize::try_from(value).map_err(|_| format!("{value} is too large"))
    }

    fn port(self) -> Result<u16, String> {
        let value = self.integer()?;
        u16::try_from(value)
            .ok()
            .filter(|port| *port > 0)
            .ok_or_else(|| format!("invalid port {value} (expected 1 to 65535)"))
    }

    /// A humantime duration; zero allowed.
    fn duration(self) -> Result<Duration, String> {
        let text = match self {
            Raw::Text(text) => text,
            Raw::Integer(value) => {
                return Err(format!(
                    "invalid duration `{value}` (a number needs a unit: {DURATION_HINT})"
                ));
            }
            other => return Err(format!("expected a duration, found {}", other.found())),
        };
        parse_duration(&text)
    }

    fn positive_duration(self) -> Result<Duration, String> {
        let duration = self.duration()?;
        if duration.is_zero() {
            return Err(format!("must be longer than 0s ({DURATION_HINT})"));
        }
        Ok(duration)
    }

    /// The deployment default method: only the two that reach a user without a target.
    fn default_method(self) -> Result<Method, String> {
        let text = self.text()?;
        match text.trim().parse::<Method>() {
            Ok(method @ (Method::Smtp | Method::Webhook)) => Ok(method),
            Ok(method) => Err(format!(
                "`{method}` cannot be the deployment default (expected smtp or webhook; \
                 {method} is for targets)"
            )),
            Err(_) => Err(format!(
                "unknown method `{text}` (expected smtp or webhook)"
            )),
        }
    }

    fn database_url(self) -> Result<String, String> {
        let url = self.required_text()?;
        let supported = ["sqlite:", "postgres://", "postgresql://"];
        if supported.iter().any(|prefix| url.starts_with(prefix)) {
            Ok(url)
        } else {
            // Only the scheme is echoed: the rest may hold a password.
            let scheme = url.split(':').next().unwrap_or_default();
            Err(format!(
                "unsupported database URL scheme `{scheme}` (expected sqlite://PATH, \
                 postgres://… or postgresql://…)"
            ))
        }
    }

    fn optional_smarthost(self) -> Result<Option<String>, String> {
        let Some(text) = self.optional_text()? else {
            return Ok(None);
        };
        let trimmed = text.trim();
        match trimmed.rsplit_once(':') {
            Some((host, port)) if valid_host(host) && port.parse::<u16>().is_ok_and(|p| p > 0) => {
                Ok(Some(trimmed.to_string()))
            }
            _ => Err(format!(
                "invalid smarthost `{text}` (expected host:port, e.g. smtp.example.com:587)"
            )),
        }
    }

    /// `base_url`: an absolute http(s) URL with a host, no query, fragment or credentials,
    /// kept without trailing slashes (templates append `/path`).
    fn base_url(self) -> Result<Option<String>, String> {
        let Some(text) = self.optional_text()? else {
            return Ok(None);
        };
        let url = text.trim();
        let invalid = || {
            let shown = if url.contains('@') { "<redacted>" } else { url };
            format!(
                "invalid URL `{shown}` (expected an absolute http:// or https:// URL, e.g. \
                 https://herald.example.com)"
            )
        };
        let (scheme, rest) = url
            .split_once("://")
            .filter(|(scheme, _)| {
                scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("http")
            })
            .ok_or_else(invalid)?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.contains('@') {
            return Err(format!(
                "`{}` holds credentials, which would be in every link sent",
                redact_url_password(url)
            ));
        }
        if !valid_host(authority) || url.contains(char::is_whitespace) {
            return Err(invalid());
        }
        if url.contains(['?', '#']) {
            return Err(format!(
                "`{url}` has a query or fragment; give the URL templates append paths to, e.g. \
                 {scheme}://{authority}"
            ));
        }
        Ok(Some(url.trim_end_matches('/').to_string()))
    }

    fn optional_http_url(self) -> Result<Option<String>, String> {
        let Some(url) = self.optional_text()? else {
            return Ok(None);
        };
        check_http_url(&url)?;
        Ok(Some(url))
    }

    fn optional_secret_http_url(self) -> Result<Option<Secret>, String> {
        Ok(self.optional_http_url()?.map(Secret))
    }

    fn http_url(self) -> Result<String, String> {
        let url = self.required_text()?;
        check_http_url(&url)?;
        Ok(url)
    }
}

fn valid_host(host: &str) -> bool {
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    !host.is_empty() && !host.contains(['/', ' ', '@'])
}

/// Checks `http(s)://host…`, echoing only the redacted form (the path may be the secret).
fn check_http_url(url: &str) -> Result<(), String> {
    let host_ok = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .and_then(|rest| rest.split(['/', '?', '#']).next())
        .is_some_and(|authority| !authority.is_empty());
    if host_ok {
        Ok(())
    } else {
        Err(format!(
            "invalid URL `{}` (expected http://… or https://…)",
            redact_url(url)
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// The settings table
// ---------------------------------------------------------------------------------------------

/// One scalar setting: its dotted key in the file, its environment variable, and how a raw
/// value is converted into the [`Config`] field (the error text names no key: the caller adds
/// it).
struct Setting {
    key: &'static str,
    env: &'static str,
    apply: fn(&mut Config, Raw) -> Result<(), String>,
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
const SETTINGS: &[Setting] = &[
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
];

/// Top-level arrays of tables and the `[events]` table, which are not in [`SETTINGS`].
const ROOT_TABLES: [&str; 3] = ["targets", "users", "events"];

/// Keys of an `[events.NAME]` table.
const EVENT_OVERRIDE_KEYS: &[&str] = &["title_template", "body_template"];

/// Keys of a `[[targets]]` table.
const TARGET_KEYS: &[&str] = &[
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
const COMMON_TARGET_KEYS: &[&str] = &[
    "name",
    "type",
    "notify_on",
    "title_template",
    "body_template",
];

/// Keys of a `[[users]]` table.
const USER_KEYS: &[&str] = &["username", "email", "name", "roles", "targets"];

/// The keys a target of this type takes besides [`COMMON_TARGET_KEYS`].
fn target_type_keys(target_type: TargetType) -> &'static [&'static str] {
    match target_type {
        TargetType::SlackWebhook | TargetType::Webhook => &["url"],
        TargetType::SlackApi => &["token", "channel", "api_base_url"],
        TargetType::Smtp => &["recipients", "host", "port", "user", "password", "sender"],
    }
}

/// The keys directly inside a section (`""` is the root), in table order.
fn section_keys(section: &str) -> Vec<&'static str> {
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

fn is_section(path: &str) -> bool {
    SETTINGS.iter().any(|s| {
        s.key
            .strip_prefix(path)
            .is_some_and(|rest| rest.starts_with('.'))
    })
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

// ---------------------------------------------------------------------------------------------
// Building: layers over the defaults, then validation
// ---------------------------------------------------------------------------------------------

/// An smtp target without its own host, checked once `email.smarthost` is final.
struct HostlessSmtpTarget {
    path: String,
    name: String,
    origin: Origin,
}

/// Applies layers in precedence order over [`Config::default`], remembering where each
/// setting came from so that cross-key errors can say which value to change.
#[derive(Default)]
struct Builder {
    config: Config,
    origins: HashMap<&'static str, Origin>,
    hostless_smtp_targets: Vec<HostlessSmtpTarget>,
}

impl Builder {
    fn apply_setting(
        &mut self,
        key: &str,
        raw: Raw,
        origin: impl FnOnce() -> Origin,
    ) -> Result<(), ConfigError> {
        let setting = SETTINGS
            .iter()
            .find(|s| s.key == key)
            .ok_or_else(|| ConfigError::Inconsistent(format!("internal: no setting `{key}`")))?;
        let origin = origin();
        (setting.apply)(&mut self.config, raw).map_err(|problem| ConfigError::InvalidValue {
            origin: origin.clone(),
            key: setting.key.to_string(),
            problem,
        })?;
        self.origins.insert(setting.key, origin);
        Ok(())
    }

    fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        for setting in SETTINGS {
            if let Some(value) = lookup(env, setting.env) {
                self.apply_setting(setting.key, Raw::Text(value), || Origin::Env(setting.env))?;
            }
        }
        Ok(())
    }

    fn apply_file(
        &mut self,
        text: &str,
        file: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        let source = Source { text, file, env };
        let root = toml::from_str::<Node>(text).map_err(|e| source.syntax_error(&e))?;
        let Node::Table(entries) = root else {
            return Err(ConfigError::Syntax {
                origin: source.at(None),
                message: "expected a table at the top level".to_string(),
            });
        };
        self.apply_section(&source, "", entries)
    }

    fn apply_section(
        &mut self,
        source: &Source<'_>,
        section: &str,
        entries: Entries,
    ) -> Result<(), ConfigError> {
        for (key, value) in entries {
            let path = join(section, &key.value);
            if section.is_empty() && key.value == "targets" {
                let targets = source.targets("targets", value)?;
                self.hostless_smtp_targets.extend(targets.hostless);
                self.config.targets = targets.targets;
            } else if section.is_empty() && key.value == "users" {
                let users = source.users(value)?;
                self.hostless_smtp_targets.extend(users.hostless);
                self.config.users = users.users;
            } else if section.is_empty() && key.value == "events" {
                self.config.events = source.event_overrides(value)?;
            } else if SETTINGS.iter().any(|s| s.key == path) {
                let origin = source.at(value.span.clone());
                let raw = source.scalar(&path, value)?;
                self.apply_setting(&path, raw, || origin)?;
            } else if is_section(&path) {
                let origin = source.at(value.span.clone());
                match value.value {
                    Node::Table(entries) => self.apply_section(source, &path, entries)?,
                    other => {
                        return Err(ConfigError::InvalidValue {
                            origin,
                            key: path.clone(),
                            problem: format!("expected a table ([{path}]), found {}", other.kind()),
                        });
                    }
                }
            } else {
                return Err(ConfigError::UnknownKey {
                    origin: source.at(key.span.clone().or(value.span.clone())),
                    key: path,
                    expected: section_keys(section),
                });
            }
        }
        Ok(())
    }

    fn origin_of(&self, key: &str) -> Origin {
        self.origins.get(key).cloned().unwrap_or(Origin::Default)
    }

    /// "2m from herald.toml line 5" / "2m by default".
    fn describe(&self, key: &str, value: &str) -> String {
        match self.origin_of(key) {
            Origin::Default => format!("{value} by default"),
            origin => format!("{value} from {origin}"),
        }
    }

    /// Cross-key checks, once every layer is in.
    fn finish(self) -> Result<Config, ConfigError> {
        let config = &self.config;
        let notifications = &config.notifications;
        if notifications.dispatch_timeout >= notifications.lease_period {
            return Err(ConfigError::Inconsistent(format!(
                "notifications.dispatch_timeout ({}) must be shorter than \
                 notifications.lease_period ({}), or a slow delivery outlives its lease and is \
                 sent twice; lower dispatch_timeout or raise lease_period",
                self.describe(
                    "notifications.dispatch_timeout",
                    &humantime::format_duration(notifications.dispatch_timeout).to_string()
                ),
                self.describe(
                    "notifications.lease_period",
                    &humantime::format_duration(notifications.lease_period).to_string()
                ),
            )));
        }
        let auth = &config.email.auth;
        if auth.password.is_some() && auth.password_file.is_some() {
            return Err(ConfigError::Inconsistent(format!(
                "email.auth.password ({}) and email.auth.password_file ({}) are both set; \
                 keep one",
                self.origin_of("email.auth.password"),
                self.origin_of("email.auth.password_file"),
            )));
        }
        let tls = &config.email.tls;
        if tls.cert_file.is_some() != tls.cert_key_file.is_some() {
            let (set, missing) = if tls.cert_file.is_some() {
                ("email.tls.cert_file", "email.tls.cert_key_file")
            } else {
                ("email.tls.cert_key_file", "email.tls.cert_file")
            };
            return Err(ConfigError::Inconsistent(format!(
                "{set} ({}) is set but {missing} is not; a client certificate needs both",
                self.origin_of(set),
            )));
        }
        let hostless = self.hostless_smtp_targets.first();
        if let (None, Some(target)) = (&config.email.smarthost, hostless) {
            return Err(ConfigError::InvalidValue {
                origin: target.origin.clone(),
                key: format!("{}.host", target.path),
                problem: format!(
                    "smtp target `{}` has no host and email.smarthost is not set; give the \
                     target a host or set email.smarthost",
                    target.name
                ),
            });
        }
        Ok(self.config)
    }
}

// ---------------------------------------------------------------------------------------------
// The file: a TOML tree with spans, then typed
// ---------------------------------------------------------------------------------------------

type Entries = Vec<(Located<String>, Located<Node>)>;

/// A TOML value that keeps the location of every nested key and value, so that any error can
/// give its line; the file is walked by hand against the settings table.
#[derive(Debug)]
enum Node {
    String(String),
    Integer(i64),
    Float,
    Boolean(bool),
    Datetime,
    Array(Vec<Located<Node>>),
    Table(Entries),
}

impl Node {
    fn kind(&self) -> &'static str {
        match self {
            Node::String(_) => "a string",
            Node::Integer(_) => "an integer",
            Node::Float => "a float",
            Node::Boolean(_) => "a boolean",
            Node::Datetime => "a date-time",
            Node::Array(_) => "an array",
            Node::Table(_) => "a table",
        }
    }
}

/// A key or value with its byte span in the file, when the parser knows it: tables that exist
/// only through a dotted header (`[email]` implied by `[email.tls]`) have none.
///
/// `toml::Spanned` cannot express "no span" (it refuses such tables), so this speaks the same
/// private protocol with a fallback; the tests on line numbers guard it.
#[derive(Debug)]
struct Located<T> {
    span: Option<Range<usize>>,
    value: T,
}

const SPANNED_NAME: &str = "$__serde_spanned_private_Spanned";
const SPANNED_START: &str = "$__serde_spanned_private_start";
const SPANNED_END: &str = "$__serde_spanned_private_end";
const SPANNED_VALUE: &str = "$__serde_spanned_private_value";
const SPANNED_FIELDS: &[&str] = &[SPANNED_START, SPANNED_END, SPANNED_VALUE];
/// The key under which the toml crate hands over a date-time.
const DATETIME_FIELD: &str = "$__toml_private_datetime";

/// Reads the rest of a spanned value once its first key (`SPANNED_START`) has been consumed.
fn read_spanned<'de, A: MapAccess<'de>, T: Deserialize<'de>>(
    map: &mut A,
) -> Result<(Range<usize>, T), A::Error> {
    let start: usize = map.next_value()?;
    let _end_key: Option<String> = map.next_key()?;
    let end: usize = map.next_value()?;
    let _value_key: Option<String> = map.next_key()?;
    let value: T = map.next_value()?;
    Ok((start..end, value))
}

impl<'de> Deserialize<'de> for Located<Node> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_struct(SPANNED_NAME, SPANNED_FIELDS, NodeVisitor)
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(deserializer.deserialize_any(NodeVisitor)?.value)
    }
}

impl<'de> Deserialize<'de> for Located<String> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_struct(SPANNED_NAME, SPANNED_FIELDS, KeyVisitor)
    }
}

fn unlocated<T>(value: T) -> Located<T> {
    Located { span: None, value }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Located<Node>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a TOML value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Self::Value, E> {
        Ok(unlocated(Node::Boolean(value)))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Self::Value, E> {
        Ok(unlocated(Node::Integer(value)))
    }

    fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Self::Value, E> {
        i64::try_from(value)
            .map(|value| unlocated(Node::Integer(value)))
            .map_err(|_| E::custom(format!("integer {value} is too large")))
    }

    fn visit_f64<E>(self, _value: f64) -> Result<Self::Value, E> {
        Ok(unlocated(Node::Float))
    }

    fn visit_str<E>(self, value: &str) -> Result<Self::Value, E> {
        Ok(unlocated(Node::String(value.to_string())))
    }

    fn visit_string<E>(self, value: String) -> Result<Self::Value, E> {
        Ok(unlocated(Node::String(value)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(unlocated(Node::Array(items)))
    }

    /// A spanned value, a date-time, or a table (whose first key tells which).
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let Some(first) = map.next_key::<Located<String>>()? else {
            return Ok(unlocated(Node::Table(Vec::new())));
        };
        if first.value == SPANNED_START {
            let (span, value) = read_spanned::<A, Node>(&mut map)?;
            return Ok(Located {
                span: Some(span),
                value,
            });
        }
        if first.value == DATETIME_FIELD {
            let _text: String = map.next_value()?;
            return Ok(unlocated(Node::Datetime));
        }
        let mut entries = vec![(first, map.next_value()?)];
        while let Some(key) = map.next_key()? {
            entries.push((key, map.next_value()?));
        }
        Ok(unlocated(Node::Table(entries)))
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Located<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E>(self, value: &str) -> Result<Self::Value, E> {
        Ok(unlocated(value.to_string()))
    }

    fn visit_string<E>(self, value: String) -> Result<Self::Value, E> {
        Ok(unlocated(value))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        match map.next_key::<String>()? {
            Some(first) if first == SPANNED_START => {
                let (span, value) = read_spanned::<A, String>(&mut map)?;
                Ok(Located {
                    span: Some(span),
                    value,
                })
            }
            _ => Err(serde::de::Error::custom("expected a key")),
        }
    }
}

/// Targets parsed from one array, with the smtp ones whose host check waits for env.
struct ParsedTargets {
    targets: Vec<TargetConfig>,
    hostless: Vec<HostlessSmtpTarget>,
}

struct ParsedUsers {
    users: Vec<UserConfig>,
    hostless: Vec<HostlessSmtpTarget>,
}

/// The file being read: its text (for lines), its name and the environment for `${VAR}`.
struct Source<'a> {
    text: &'a str,
    file: &'a str,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Source<'_> {
    fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    fn at(&self, span: Option<Range<usize>>) -> Origin {
        Origin::File {
            file: self.file.to_string(),
            line: span.map(|span| self.line(span.start)),
        }
    }

    fn syntax_error(&self, error: &toml::de::Error) -> ConfigError {
        let message = if error.message().contains("$__toml_private_datetime") {
            "a TOML date-time is not a valid value here; quote it if it is meant as text"
                .to_string()
        } else {
            // One line, whatever the parser wrote.
            let lines: Vec<&str> = error.message().lines().map(str::trim).collect();
            lines
                .into_iter()
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("; ")
        };
        ConfigError::Syntax {
            origin: self.at(error.span()),
            message,
        }
    }

    fn invalid(
        &self,
        span: Option<Range<usize>>,
        key: &str,
        problem: impl Into<String>,
    ) -> ConfigError {
        ConfigError::InvalidValue {
            origin: self.at(span),
            key: key.to_string(),
            problem: problem.into(),
        }
    }

    /// A string with `${VAR}` expanded; the error points at the line of the reference.
    fn string(
        &self,
        key: &str,
        value: &str,
        span: Option<Range<usize>>,
    ) -> Result<String, ConfigError> {
        interpolate(value, self.env).map_err(|error| match error {
            InterpolationError::Unset(variable) => {
                let reference = format!("${{{variable}}}");
                let offset = span.as_ref().map(|span| {
                    self.text
                        .get(span.clone())
                        .and_then(|raw| raw.find(&reference))
                        .map_or(span.start, |at| span.start + at)
                });
                ConfigError::UnsetVariable {
                    origin: self.at(offset.map(|offset| offset..offset)),
                    key: key.to_string(),
                    variable,
                }
            }
            InterpolationError::Malformed(problem) => self.invalid(span, key, problem),
        })
    }

    fn scalar(&self, key: &str, node: Located<Node>) -> Result<Raw, ConfigError> {
        let span = node.span.clone();
        Ok(match node.value {
            Node::String(value) => Raw::Text(self.string(key, &value, span)?),
            Node::Boolean(value) => Raw::Bool(value),
            Node::Integer(value) => Raw::Integer(value),
            other => Raw::Other(other.kind()),
        })
    }

    fn convert<T>(
        &self,
        key: &str,
        node: Located<Node>,
        convert: fn(Raw) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        let span = node.span.clone();
        let raw = self.scalar(key, node)?;
        convert(raw).map_err(|problem| self.invalid(span, key, problem))
    }

    fn string_list(&self, key: &str, node: Located<Node>) -> Result<Vec<String>, ConfigError> {
        let span = node.span.clone();
        let Node::Array(items) = node.value else {
            return Err(self.invalid(span, key, "expected an array of strings"));
        };
        items
            .into_iter()
            .enumerate()
            .map(|(index, item)| self.convert(&format!("{key}[{index}]"), item, Raw::required_text))
            .collect()
    }

    fn tables(&self, key: &str, node: Located<Node>) -> Result<Vec<Located<Entries>>, ConfigError> {
        let span = node.span.clone();
        let Node::Array(items) = node.value else {
            return Err(self.invalid(
                span,
                key,
                format!("expected an array of tables ([[{key}]])"),
            ));
        };
        items
            .into_iter()
            .enumerate()
            .map(|(index, item)| {
                let span = item.span.clone();
                match item.value {
                    Node::Table(entries) => Ok(Located {
                        span,
                        value: entries,
                    }),
                    other => Err(self.invalid(
                        span,
                        &format!("{key}[{index}]"),
                        format!("expected a table, found {}", other.kind()),
                    )),
                }
            })
            .collect()
    }

    /// `[[targets]]` or a user's `targets`: each valid alone, names unique within the array.
    fn targets(&self, key: &str, node: Located<Node>) -> Result<ParsedTargets, ConfigError> {
        let mut parsed = ParsedTargets {
            targets: Vec::new(),
            hostless: Vec::new(),
        };
        let mut seen: HashMap<String, (usize, Origin)> = HashMap::new();
        for (index, table) in self.tables(key, node)?.into_iter().enumerate() {
            let path = format!("{key}[{index}]");
            let origin = self.at(table.span.clone());
            let target = self.target(&path, table)?;
            if let Some((first, first_origin)) = seen.get(&target.name) {
                return Err(ConfigError::InvalidValue {
                    origin,
                    key: format!("{path}.name"),
                    problem: format!(
                        "target name `{}` is already used by {key}[{first}] ({first_origin}); \
                         target names must be unique",
                        target.name
                    ),
                });
            }
            seen.insert(target.name.clone(), (index, origin.clone()));
            if target.target_type == TargetType::Smtp && target.host.is_none() {
                parsed.hostless.push(HostlessSmtpTarget {
                    path,
                    name: target.name.clone(),
                    origin,
                });
            }
            parsed.targets.push(target);
        }
        Ok(parsed)
    }

    fn target(&self, path: &str, table: Located<Entries>) -> Result<TargetConfig, ConfigError> {
        let table_span = table.span.clone();
        let entries = table.value;
        let key_of = |key: &str| format!("{path}.{key}");

        let type_entry = entries.iter().find(|(key, _)| key.value == "type");
        let target_type = match type_entry {
            None => {
                return Err(self.invalid(
                    table_span,
                    &key_of("type"),
                    "missing; expected one of: slack_webhook, slack_api, smtp, webhook",
                ));
            }
            Some((_, value)) => {
                let span = value.span.clone();
                let text = match &value.value {
                    Node::String(text) => self.string(&key_of("type"), text, span.clone())?,
                    other => {
                        return Err(self.invalid(
                            span,
                            &key_of("type"),
                            format!("expected a string, found {}", other.kind()),
                        ));
                    }
                };
                text.trim()
                    .parse::<TargetType>()
                    .map_err(|e| self.invalid(span, &key_of("type"), e.to_string()))?
            }
        };
        let type_keys = target_type_keys(target_type);

        let mut target = TargetConfig {
            name: String::new(),
            target_type,
            notify_on: Vec::new(),
            url: None,
            token: None,
            channel: None,
            api_base_url: DEFAULT_SLACK_API_BASE_URL.to_string(),
            recipients: Vec::new(),
            host: None,
            port: None,
            user: None,
            password: None,
            sender: None,
            title_template: None,
            body_template: None,
        };
        let mut has_name = false;
        let mut notify_on_span = None;
        for (key, value) in entries {
            let name = key.value.as_str();
            let full = key_of(name);
            if !TARGET_KEYS.contains(&name) {
                return Err(ConfigError::UnknownKey {
                    origin: self.at(key.span.clone().or(value.span.clone())),
                    key: full,
                    expected: TARGET_KEYS.to_vec(),
                });
            }
            if !COMMON_TARGET_KEYS.contains(&name) && !type_keys.contains(&name) {
                return Err(self.invalid(
                    key.span.clone(),
                    &full,
                    format!(
                        "a {target_type} target does not take `{name}` (its own keys: {})",
                        type_keys.join(", ")
                    ),
                ));
            }
            match name {
                "name" => {
                    has_name = true;
                    target.name = self.convert(&full, value, Raw::required_text)?;
                }
                "notify_on" => {
                    notify_on_span = Some(value.span.clone());
                    target.notify_on = self.string_list(&full, value)?;
                }
                "url" => target.url = self.convert(&full, value, Raw::optional_secret_http_url)?,
                "token" => target.token = self.convert(&full, value, Raw::optional_secret)?,
                "channel" => target.channel = self.convert(&full, value, Raw::optional_text)?,
                "api_base_url" => {
                    target.api_base_url = self.convert(&full, value, Raw::http_url)?
                }
                "recipients" => target.recipients = self.email_list(&full, value)?,
                "host" => target.host = self.convert(&full, value, Raw::optional_text)?,
                "port" => target.port = Some(self.convert(&full, value, Raw::port)?),
                "user" => target.user = self.convert(&full, value, Raw::optional_text)?,
                "password" => target.password = self.convert(&full, value, Raw::optional_secret)?,
                "sender" => target.sender = self.convert(&full, value, Raw::optional_text)?,
                "title_template" => {
                    target.title_template = self.convert(&full, value, Raw::optional_text)?;
                }
                "body_template" => {
                    target.body_template = self.convert(&full, value, Raw::optional_text)?;
                }
                _ => {} // `type`, read above
            }
        }

        let missing = |key: &str, what: &str| {
            self.invalid(
                table_span.clone(),
                &key_of(key),
                format!("missing; a {target_type} target needs {what}"),
            )
        };
        if !has_name {
            return Err(missing("name", "a unique name"));
        }
        match notify_on_span {
            None => return Err(missing("notify_on", "the event names it hears about")),
            Some(span) if target.notify_on.is_empty() => {
                return Err(self.invalid(
                    span,
                    &key_of("notify_on"),
                    format!(
                        "target `{}` listens to no event; list at least one event name",
                        target.name
                    ),
                ));
            }
            Some(_) => {}
        }
        match target_type {
            TargetType::SlackWebhook | TargetType::Webhook if target.url.is_none() => {
                return Err(missing("url", "the URL to post to"));
            }
            TargetType::SlackApi if target.token.is_none() => {
                return Err(missing("token", "a Slack API token"));
            }
            TargetType::SlackApi if target.channel.is_none() => {
                return Err(missing("channel", "a channel or member id"));
            }
            TargetType::Smtp if target.recipients.is_empty() => {
                return Err(missing("recipients", "at least one recipient address"));
            }
            _ => {}
        }
        Ok(target)
    }

    fn email_list(&self, key: &str, node: Located<Node>) -> Result<Vec<String>, ConfigError> {
        let span = node.span.clone();
        let addresses = self.string_list(key, node)?;
        match addresses.iter().find(|a| !a.contains('@')) {
            Some(bad) => Err(self.invalid(span, key, format!("`{bad}` is not an email address"))),
            None => Ok(addresses),
        }
    }

    /// `[events]`: one table per event name, each with only template keys.
    fn event_overrides(
        &self,
        node: Located<Node>,
    ) -> Result<BTreeMap<String, EventOverrideConfig>, ConfigError> {
        let entries = match node.value {
            Node::Table(entries) => entries,
            other => {
                return Err(self.invalid(
                    node.span,
                    "events",
                    format!(
                        "expected a table of event names ([events.run_failure]), found {}",
                        other.kind()
                    ),
                ));
            }
        };
        let mut events = BTreeMap::new();
        for (name, value) in entries {
            let path = format!("events.{}", name.value);
            let span = name.span.clone().or(value.span.clone());
            let keys = match value.value {
                Node::Table(keys) => keys,
                other => {
                    return Err(self.invalid(
                        span,
                        &path,
                        format!(
                            "expected a table ([{path}]) with title_template and/or \
                             body_template, found {}",
                            other.kind()
                        ),
                    ));
                }
            };
            let mut event = EventOverrideConfig::default();
            for (key, value) in keys {
                let full = format!("{path}.{}", key.value);
                match key.value.as_str() {
                    "title_template" => {
                        event.title_template = self.convert(&full, value, Raw::optional_text)?;
                    }
                    "body_template" => {
                        event.body_template = self.convert(&full, value, Raw::optional_text)?;
                    }
                    _ => {
                        return Err(ConfigError::UnknownKey {
                            origin: self.at(key.span.clone().or(value.span.clone())),
                            key: full,
                            expected: EVENT_OVERRIDE_KEYS.to_vec(),
                        });
                    }
                }
            }
            if event.title_template.is_none() && event.body_template.is_none() {
                return Err(self.invalid(
                    span,
                    &path,
                    "overrides nothing: set title_template and/or body_template, or remove \
                     the table",
                ));
            }
            events.insert(name.value, event);
        }
        Ok(events)
    }

    fn users(&self, node: Located<Node>) -> Result<ParsedUsers, ConfigError> {
        let mut parsed = ParsedUsers {
            users: Vec::new(),
            hostless: Vec::new(),
        };
        let mut seen: HashMap<String, (usize, Origin)> = HashMap::new();
        for (index, table) in self.tables("users", node)?.into_iter().enumerate() {
            let path = format!("users[{index}]");
            let origin = self.at(table.span.clone());
            let (user, hostless) = self.user(&path, table)?;
            if let Some((first, first_origin)) = seen.get(&user.username) {
                return Err(ConfigError::InvalidValue {
                    origin,
                    key: format!("{path}.username"),
                    problem: format!(
                        "user `{}` is already declared by users[{first}] ({first_origin})",
                        user.username
                    ),
                });
            }
            seen.insert(user.username.clone(), (index, origin));
            parsed.hostless.extend(hostless);
            parsed.users.push(user);
        }
        Ok(parsed)
    }

    fn user(
        &self,
        path: &str,
        table: Located<Entries>,
    ) -> Result<(UserConfig, Vec<HostlessSmtpTarget>), ConfigError> {
        let table_span = table.span.clone();
        let mut username = None;
        let mut email = None;
        let mut user = UserConfig {
            username: String::new(),
            email: String::new(),
            name: None,
            roles: Vec::new(),
            targets: Vec::new(),
        };
        let mut hostless = Vec::new();
        for (key, value) in table.value {
            let full = format!("{path}.{}", key.value);
            match key.value.as_str() {
                "username" => username = Some(self.convert(&full, value, Raw::required_text)?),
                "email" => {
                    let span = value.span.clone();
                    let address = self.convert(&full, value, Raw::required_text)?;
                    if !address.contains('@') {
                        return Err(self.invalid(
                            span,
                            &full,
                            format!("`{address}` is not an email address"),
                        ));
                    }
                    email = Some(address);
                }
                "name" => user.name = self.convert(&full, value, Raw::optional_text)?,
                "roles" => {
                    let span = value.span.clone();
                    let mut roles: Vec<Role> = Vec::new();
                    for role in self.string_list(&full, value)? {
                        let role =
                            role.trim()
                                .parse()
                                .map_err(|e: crate::model::UnknownValue| {
                                    self.invalid(span.clone(), &full, e.to_string())
                                })?;
                        if !roles.contains(&role) {
                            roles.push(role);
                        }
                    }
                    user.roles = roles;
                }
                "targets" => {
                    let targets = self.targets(&full, value)?;
                    user.targets = targets.targets;
                    hostless = targets.hostless;
                }
                _ => {
                    return Err(ConfigError::UnknownKey {
                        origin: self.at(key.span.clone().or(value.span.clone())),
                        key: full,
                        expected: USER_KEYS.to_vec(),
                    });
                }
            }
        }
        user.username = username.ok_or_else(|| {
            self.invalid(table_span.clone(), &format!("{path}.username"), "missing")
        })?;
        user.email = email.ok_or_else(|| {
            self.invalid(
                table_span,
                &format!("{path}.email"),
                format!("missing; user `{}` needs an email address", user.username),
            )
        })?;
        Ok((user, hostless))
    }
}

// ---------------------------------------------------------------------------------------------
// ${VAR} interpolation
// ---------------------------------------------------------------------------------------------

#[derive(Debug, PartialEq, Eq)]
enum InterpolationError {
    Unset(String),
    Malformed(String),
}

/// Replaces each `${NAME}` with the variable's value (set but empty is fine); `$${` stands for
/// a literal `${`, and any other `$` is kept as is.
fn interpolate(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, InterpolationError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let Some(end) = tail.find('}') else {
                return Err(InterpolationError::Malformed(
                    "`${` without a closing `}` (write `$${` for a literal `${`)".to_string(),
                ));
            };
            let name = &tail[..end];
            let valid = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(InterpolationError::Malformed(format!(
                    "`${{{name}}}` is not a variable reference (expected ${{NAME}} with letters, \
                     digits and _; write `$${{` for a literal `${{`)"
                )));
            }
            let value = env(name).ok_or_else(|| InterpolationError::Unset(name.to_string()))?;
            out.push_str(&value);
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml_str(text, "herald.toml", &no_env)
    }

    fn parse_err(text: &str) -> String {
        match parse(text) {
            Ok(config) => panic!("expected an error, got {config:?}"),
            Err(error) => error.to_string(),
        }
    }

    fn write_file(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn empty_file_gives_the_documented_defaults() {
        let config = parse("").unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.database_url, "sqlite://herald.db");
        assert_eq!(config.notifications.method, Method::Smtp);
        assert_eq!(
            config.notifications.retention,
            Duration::from_secs(7 * 86_400)
        );
        assert_eq!(
            config.notifications.store_sync_interval,
            Duration::from_millis(250)
        );
        assert_eq!(config.email.hello, "localhost");
    }

    #[test]
    fn precedence_is_flag_then_env_then_file_then_default() {
        let dir = tempfile::tempdir().unwrap();
        let file = write_file(
            &dir,
            "custom.toml",
            r#"
database_url = "sqlite://file.db"
[notifications]
fetch_interval = "20s"
retry_interval = "10m"
"#,
        );
        let env = env_of(&[
            ("HERALD_DATABASE_URL", "sqlite://env.db"),
            ("HERALD_NOTIFICATIONS_FETCH_INTERVAL", "30s"),
        ]);
        let sources = ConfigSources {
            file: Some(file),
            database_url: Some("postgres://flag/herald".to_string()),
        };
        let config = Config::load(&sources, &env).unwrap();
        assert_eq!(
            config.database_url, "postgres://flag/herald",
            "flag beats env"
        );
        assert_eq!(
            config.notifications.fetch_interval,
            Duration::from_secs(30),
            "env beats file"
        );
        assert_eq!(
            config.notifications.retry_interval,
            Duration::from_secs(600),
            "file beats default"
        );
        assert_eq!(
            config.notifications.lease_period,
            Duration::from_secs(120),
            "default"
        );

        let without_flag = ConfigSources {
            database_url: None,
            ..sources
        };
        let config = Config::load(&without_flag, &env).unwrap();
        assert_eq!(config.database_url, "sqlite://env.db");
    }

    #[test]
    fn config_file_comes_from_flag_then_herald_config_then_default_file() {
        let dir = tempfile::tempdir().unwrap();
        let flag_file = write_file(&dir, "flag.toml", "username = \"from-flag\"");
        let env_file = write_file(&dir, "env.toml", "username = \"from-env-file\"");
        let default_file = write_file(&dir, "herald.toml", "username = \"from-default\"");
        let env = env_of(&[("HERALD_CONFIG", env_file.to_str().unwrap())]);
        let with_flag = ConfigSources {
            file: Some(flag_file),
            database_url: None,
        };
        let username = |sources: &ConfigSources, env: &dyn Fn(&str) -> Option<String>| {
            Config::load_with_default_file(sources, env, &default_file)
                .unwrap()
                .username
        };
        assert_eq!(username(&with_flag, &env).as_deref(), Some("from-flag"));
        assert_eq!(
            username(&ConfigSources::default(), &env).as_deref(),
            Some("from-env-file")
        );
        assert_eq!(
            username(&ConfigSources::default(), &no_env).as_deref(),
            Some("from-default")
        );

        let absent = dir.path().join("absent.toml");
        let config =
            Config::load_with_default_file(&ConfigSources::default(), &no_env, &absent).unwrap();
        assert_eq!(config, Config::default(), "no file at all is fine");
    }

    #[test]
    fn named_config_file_that_does_not_exist_is_an_error() {
        let env = env_of(&[("HERALD_CONFIG", "/nonexistent/herald.toml")]);
        let error = Config::load(&ConfigSources::default(), &env).unwrap_err();
        assert_eq!(
            error.to_string(),
            "config file /nonexistent/herald.toml (from HERALD_CONFIG) does not exist"
        );
        let sources = ConfigSources {
            file: Some(PathBuf::from("/nonexistent/x.toml")),
            database_url: None,
        };
        let error = Config::load(&sources, &no_env).unwrap_err();
        assert!(error.to_string().contains("(from --config)"), "{error}");
    }

    #[test]
    fn file_errors_from_load_name_the_file_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = write_file(&dir, "bad.toml", "\n[notifications]\nlease_count = 0\n");
        let sources = ConfigSources {
            file: Some(file.clone()),
            database_url: None,
        };
        let error = Config::load(&sources, &no_env).unwrap_err().to_string();
        assert_eq!(
            error,
            format!(
                "{} line 3: notifications.lease_count: must be at least 1, got 0",
                file.display()
            )
        );
    }

    #[test]
    fn variables_in_string_values_are_read_from_the_environment() {
        let env = env_of(&[("SMTP_PASSWORD", "hunter2"), ("HOST", "mail.example.com")]);
        let text = r#"
[email]
smarthost = "${HOST}:587"
[email.auth]
password = "${SMTP_PASSWORD}"
"#;
        let config = Config::from_toml_str(text, "herald.toml", &env).unwrap();
        assert_eq!(
            config.email.smarthost.as_deref(),
            Some("mail.example.com:587")
        );
        assert_eq!(config.email.auth.password.unwrap().expose(), "hunter2");
    }

    #[test]
    fn double_dollar_is_a_literal_and_lone_dollar_is_kept() {
        let env = env_of(&[("X", "x")]);
        assert_eq!(interpolate("a$${X}b", &env).unwrap(), "a${X}b");
        assert_eq!(interpolate("cost $5 ${X}", &env).unwrap(), "cost $5 x");
        assert!(matches!(
            interpolate("${X", &env),
            Err(InterpolationError::Malformed(_))
        ));
    }

    #[test]
    fn unset_variable_error_names_key_line_and_variable() {
        let text = "\n[email.auth]\nusername = \"herald\"\npassword = \"${SMTP_PASSWORD}\"\n";
        assert_eq!(
            parse_err(text),
            "herald.toml line 4: `email.auth.password` uses ${SMTP_PASSWORD}, which is not set \
             in the environment"
        );
    }

    #[test]
    fn unset_variable_in_a_target_names_the_target_key() {
        let text = r#"
[[targets]]
type = "slack_webhook"
name = "ops"
notify_on = ["run_failure"]
url = "${SLACK_WEBHOOK_URL}"
"#;
        assert_eq!(
            parse_err(text),
            "herald.toml line 6: `targets[0].url` uses ${SLACK_WEBHOOK_URL}, which is not set \
             in the environment"
        );
    }

    #[test]
    fn unknown_key_error_names_the_dotted_key_and_line() {
        let text = "[notifications]\nmethod = \"smtp\"\n\nfetch_intervall = \"15s\"\n";
        assert_eq!(
            parse_err(text),
            "herald.toml line 4: unknown key `notifications.fetch_intervall`; expected one of: \
             method, inbox_enabled, dispatch_timeout, max_send_attempts, retry_interval, \
             max_retry_delay, fetch_interval, lease_count, lease_period, store_sync_interval, store_sync_buffer, \
             retention, webhook"
        );
    }

    #[test]
    fn unknown_key_in_a_nested_table_names_the_dotted_key_and_line() {
        let text = "[email]\nhello = \"h\"\n\n[email.tls]\nstarttls = true\nskip_verfy = true\n";
        let error = parse_err(text);
        assert!(
            error.starts_with("herald.toml line 6: unknown key `email.tls.skip_verfy`; expected one of: force_tls, starttls, skip_verify,"),
            "{error}"
        );

        let error = parse_err("[email]\n[email.tsl]\nstarttls = true\n");
        assert_eq!(
            error,
            "herald.toml line 2: unknown key `email.tsl`; expected one of: from, smarthost, \
             hello, auth, tls"
        );

        let error = parse_err("datbase_url = \"sqlite://x\"");
        assert!(
            error.starts_with("herald.toml line 1: unknown key `datbase_url`; expected one of: database_url, base_url, username, notifications, email, targets, users"),
            "{error}"
        );
    }

    #[test]
    fn unknown_key_in_a_user_target_names_its_path() {
        let text = r#"
[[users]]
username = "alice"
email = "alice@example.com"

[[users.targets]]
type = "slack_api"
name = "dm"
notify_on = ["apply_failure"]
token = "xoxb"
chanel = "U123"
"#;
        let error = parse_err(text);
        assert!(
            error.starts_with("herald.toml line 11: unknown key `users[0].targets[0].chanel`"),
            "{error}"
        );
    }

    #[test]
    fn dotted_keys_implicit_tables_and_inline_tables_are_read_with_lines() {
        let text =
            "email.tls.starttls = true\n\n[notifications.webhook]\nendpoint = \"https://h/x\"\n";
        let config = parse(text).unwrap();
        assert!(config.email.tls.starttls);
        assert_eq!(
            config.notifications.webhook.endpoint.as_deref(),
            Some("https://h/x")
        );

        let error =
            parse_err("[notifications.webhook]\nendpoint = \"https://h/x\"\nsecret = \"s\"\n");
        assert!(
            error.starts_with("herald.toml line 3: unknown key `notifications.webhook.secret`; expected one of: endpoint, signing_secret"),
            "{error}"
        );
        let error = parse_err("\nemail = { tls = { starttls = \"perhaps\" } }\n");
        assert!(
            error.starts_with("herald.toml line 2: email.tls.starttls: invalid boolean `perhaps`"),
            "{error}"
        );
    }

    #[test]
    fn bad_duration_in_the_file_names_key_and_line() {
        let text = "[notifications]\nretry_interval = \"5 minutez\"\n";
        assert_eq!(
            parse_err(text),
            "herald.toml line 2: notifications.retry_interval: invalid duration `5 minutez` \
             (expected e.g. 15s, 5m, 7d)"
        );
        let error = parse_err("[notifications]\nfetch_interval = 15\n");
        assert!(error.contains("a number needs a unit"), "{error}");
    }

    #[test]
    fn a_duration_past_any_timestamp_is_refused_naming_the_key() {
        // 1,000,000 years past now is no date chrono (or a store) can hold.
        assert_eq!(
            parse_err("[notifications]\nlease_period = \"1000000y\"\n"),
            "herald.toml line 2: notifications.lease_period: `1000000y` is too long (at most \
             100years)"
        );
        for key in [
            "dispatch_timeout",
            "retry_interval",
            "fetch_interval",
            "store_sync_interval",
            "retention",
        ] {
            let error = parse_err(&format!("[notifications]\n{key} = \"300000y\"\n"));
            assert!(
                error.starts_with(&format!(
                    "herald.toml line 2: notifications.{key}: `300000y` is too long"
                )),
                "{error}"
            );
        }
        let env = env_of(&[("HERALD_NOTIFICATIONS_RETENTION", "1000000 years")]);
        let error = Config::load(&ConfigSources::default(), &env).unwrap_err();
        assert_eq!(
            error.to_string(),
            "HERALD_NOTIFICATIONS_RETENTION: `1000000 years` is too long (at most 100years)"
        );
        let config = parse("[notifications]\nretention = \"100y\"\n").unwrap();
        assert_eq!(config.notifications.retention, MAX_DURATION);
    }

    #[test]
    fn base_url_is_an_absolute_http_url_kept_without_trailing_slashes() {
        assert_eq!(parse("").unwrap().base_url, None);
        let cases = [
            ("https://coder.example.com", "https://coder.example.com"),
            ("https://coder.example.com/", "https://coder.example.com"),
            (
                "http://127.0.0.1:3000/herald//",
                "http://127.0.0.1:3000/herald",
            ),
        ];
        for (given, kept) in cases {
            let config = parse(&format!("base_url = \"{given}\"\n")).unwrap();
            assert_eq!(config.base_url.as_deref(), Some(kept), "{given}");
        }
        let env = env_of(&[("HERALD_BASE_URL", "https://env.example.com/")]);
        let config = Config::load(&ConfigSources::default(), &env).unwrap();
        assert_eq!(config.base_url.as_deref(), Some("https://env.example.com"));

        let refused = [
            (
                "coder.example.com",
                "invalid URL `coder.example.com` (expected an absolute http:// or https:// URL, \
                 e.g. https://herald.example.com)",
            ),
            (
                "/relative",
                "invalid URL `/relative` (expected an absolute http:// or https:// URL, e.g. \
                 https://herald.example.com)",
            ),
            (
                "ftp://coder.example.com",
                "invalid URL `ftp://coder.example.com` (expected an absolute http:// or \
                 https:// URL, e.g. https://herald.example.com)",
            ),
            (
                "https://coder.example.com/?x=1",
                "`https://coder.example.com/?x=1` has a query or fragment; give the URL \
                 templates append paths to, e.g. https://coder.example.com",
            ),
            (
                "https://user:pw@coder.example.com",
                "`https://user:<redacted>@coder.example.com` holds credentials, which would \
                 be in every link sent",
            ),
        ];
        for (given, why) in refused {
            assert_eq!(
                parse_err(&format!("base_url = \"{given}\"\n")),
                format!("herald.toml line 1: base_url: {why}"),
                "{given}"
            );
        }
    }

    #[test]
    fn bad_env_value_names_the_environment_variable() {
        let cases = [
            (
                "HERALD_NOTIFICATIONS_RETRY_INTERVAL",
                "5 minutez",
                "HERALD_NOTIFICATIONS_RETRY_INTERVAL: invalid duration `5 minutez` (expected e.g. 15s, 5m, 7d)",
            ),
            (
                "HERALD_NOTIFICATIONS_INBOX_ENABLED",
                "maybe",
                "HERALD_NOTIFICATIONS_INBOX_ENABLED: invalid boolean `maybe` (expected true/false, yes/no or 1/0)",
            ),
            (
                "HERALD_NOTIFICATIONS_MAX_SEND_ATTEMPTS",
                "0",
                "HERALD_NOTIFICATIONS_MAX_SEND_ATTEMPTS: must be at least 1, got 0",
            ),
            (
                "HERALD_NOTIFICATIONS_METHOD",
                "slack_api",
                "HERALD_NOTIFICATIONS_METHOD: `slack_api` cannot be the deployment default (expected smtp or webhook; slack_api is for targets)",
            ),
            (
                "HERALD_EMAIL_SMARTHOST",
                "smtp.example.com",
                "HERALD_EMAIL_SMARTHOST: invalid smarthost `smtp.example.com` (expected host:port, e.g. smtp.example.com:587)",
            ),
            (
                "HERALD_DATABASE_URL",
                "mysql://root:pw@db/x",
                "HERALD_DATABASE_URL: unsupported database URL scheme `mysql` (expected sqlite://PATH, postgres://… or postgresql://…)",
            ),
        ];
        for (name, value, expected) in cases {
            let env = env_of(&[(name, value)]);
            let error = Config::load(&ConfigSources::default(), &env).unwrap_err();
            assert_eq!(error.to_string(), expected);
        }
    }

    #[test]
    fn env_booleans_accept_true_false_yes_no_one_zero() {
        for (value, expected) in [
            ("true", true),
            ("YES", true),
            ("1", true),
            ("False", false),
            ("no", false),
            ("0", false),
        ] {
            let env = env_of(&[("HERALD_EMAIL_TLS_STARTTLS", value)]);
            let config = Config::load(&ConfigSources::default(), &env).unwrap();
            assert_eq!(config.email.tls.starttls, expected, "{value}");
        }
    }

    #[test]
    fn every_env_variable_overrides_its_setting() {
        let values = [
            ("HERALD_DATABASE_URL", "postgresql://db/herald"),
            ("HERALD_BASE_URL", "https://herald.example.com/"),
            ("HERALD_USERNAME", "alice"),
            ("HERALD_NOTIFICATIONS_METHOD", "webhook"),
            ("HERALD_NOTIFICATIONS_INBOX_ENABLED", "false"),
            ("HERALD_NOTIFICATIONS_DISPATCH_TIMEOUT", "10s"),
            ("HERALD_NOTIFICATIONS_MAX_SEND_ATTEMPTS", "9"),
            ("HERALD_NOTIFICATIONS_RETRY_INTERVAL", "1s"),
            ("HERALD_NOTIFICATIONS_MAX_RETRY_DELAY", "10m"),
            ("HERALD_NOTIFICATIONS_FETCH_INTERVAL", "2s"),
            ("HERALD_NOTIFICATIONS_LEASE_COUNT", "7"),
            ("HERALD_NOTIFICATIONS_LEASE_PERIOD", "20s"),
            ("HERALD_NOTIFICATIONS_STORE_SYNC_INTERVAL", "3s"),
            ("HERALD_NOTIFICATIONS_STORE_SYNC_BUFFER", "8"),
            ("HERALD_NOTIFICATIONS_RETENTION", "1d"),
            (
                "HERALD_NOTIFICATIONS_WEBHOOK_ENDPOINT",
                "https://hooks.example.com/x",
            ),
            ("HERALD_NOTIFICATIONS_WEBHOOK_SIGNING_SECRET", "sign"),
            ("HERALD_EMAIL_FROM", "Herald <h@example.com>"),
            ("HERALD_EMAIL_SMARTHOST", "[::1]:2525"),
            ("HERALD_EMAIL_HELLO", "herald.local"),
            ("HERALD_EMAIL_AUTH_USERNAME", "u"),
            ("HERALD_EMAIL_AUTH_PASSWORD_FILE", "/run/secrets/smtp"),
            ("HERALD_EMAIL_AUTH_IDENTITY", "id"),
            ("HERALD_EMAIL_FORCE_TLS", "yes"),
            ("HERALD_EMAIL_TLS_STARTTLS", "1"),
            ("HERALD_EMAIL_TLS_SKIP_VERIFY", "true"),
            ("HERALD_EMAIL_TLS_SERVER_NAME", "mail"),
            ("HERALD_EMAIL_TLS_CERT_FILE", "/c.pem"),
            ("HERALD_EMAIL_TLS_CERT_KEY_FILE", "/k.pem"),
            ("HERALD_EMAIL_TLS_CA_FILE", "/ca.pem"),
        ];
        let env = env_of(&values);
        let c = Config::load(&ConfigSources::default(), &env).unwrap();
        let n = &c.notifications;
        assert_eq!(c.database_url, "postgresql://db/herald");
        assert_eq!(c.base_url.as_deref(), Some("https://herald.example.com"));
        assert_eq!(c.username.as_deref(), Some("alice"));
        assert_eq!(n.method, Method::Webhook);
        assert!(!n.inbox_enabled);
        assert_eq!(n.dispatch_timeout, Duration::from_secs(10));
        assert_eq!(n.max_send_attempts, 9);
        assert_eq!(n.max_retry_delay, Duration::from_secs(600));
        assert_eq!(n.retry_interval, Duration::from_secs(1));
        assert_eq!(n.fetch_interval, Duration::from_secs(2));
        assert_eq!(n.lease_count, 7);
        assert_eq!(n.lease_period, Duration::from_secs(20));
        assert_eq!(n.store_sync_interval, Duration::from_secs(3));
        assert_eq!(n.store_sync_buffer, 8);
        assert_eq!(n.retention, Duration::from_secs(86_400));
        assert_eq!(
            n.webhook.endpoint.as_deref(),
            Some("https://hooks.example.com/x")
        );
        assert_eq!(n.webhook.signing_secret.as_ref().unwrap().expose(), "sign");
        let e = &c.email;
        assert_eq!(e.from.as_deref(), Some("Herald <h@example.com>"));
        assert_eq!(e.smarthost.as_deref(), Some("[::1]:2525"));
        assert_eq!(e.hello, "herald.local");
        assert_eq!(e.auth.username.as_deref(), Some("u"));
        assert_eq!(
            e.auth.password_file.as_deref(),
            Some(Path::new("/run/secrets/smtp"))
        );
        assert_eq!(e.auth.identity.as_deref(), Some("id"));
        assert!(e.tls.force_tls && e.tls.starttls && e.tls.skip_verify);
        assert_eq!(e.tls.server_name.as_deref(), Some("mail"));
        assert_eq!(e.tls.cert_file.as_deref(), Some(Path::new("/c.pem")));
        assert_eq!(e.tls.cert_key_file.as_deref(), Some(Path::new("/k.pem")));
        assert_eq!(e.tls.ca_file.as_deref(), Some(Path::new("/ca.pem")));
        assert_eq!(
            env_table().count(),
            values.len() + 1,
            "plus HERALD_EMAIL_AUTH_PASSWORD"
        );
    }

    #[test]
    fn empty_env_variable_counts_as_unset() {
        let dir = tempfile::tempdir().unwrap();
        let file = write_file(&dir, "h.toml", "[email]\nsmarthost = \"mail:25\"\n");
        let env = env_of(&[("HERALD_EMAIL_SMARTHOST", ""), ("HERALD_CONFIG", "")]);
        let sources = ConfigSources {
            file: Some(file),
            database_url: None,
        };
        let config = Config::load(&sources, &env).unwrap();
        assert_eq!(config.email.smarthost.as_deref(), Some("mail:25"));
    }

    #[test]
    fn dispatch_timeout_not_shorter_than_lease_period_is_refused() {
        let text = "[notifications]\ndispatch_timeout = \"2m\"\n";
        assert_eq!(
            parse_err(text),
            "notifications.dispatch_timeout (2m from herald.toml line 2) must be shorter than \
             notifications.lease_period (2m by default), or a slow delivery outlives its lease \
             and is sent twice; lower dispatch_timeout or raise lease_period"
        );
        let env = env_of(&[("HERALD_NOTIFICATIONS_LEASE_PERIOD", "30s")]);
        let error = Config::load(&ConfigSources::default(), &env)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("(1m by default)")
                && error.contains("(30s from HERALD_NOTIFICATIONS_LEASE_PERIOD)"),
            "{error}"
        );
    }

    #[test]
    fn method_other_than_smtp_or_webhook_is_refused() {
        let error = parse_err("[notifications]\nmethod = \"inbox\"\n");
        assert!(
            error.starts_with("herald.toml line 2: notifications.method: `inbox` cannot be"),
            "{error}"
        );
        let error = parse_err("[notifications]\nmethod = \"mail\"\n");
        assert!(
            error.contains("unknown method `mail` (expected smtp or webhook)"),
            "{error}"
        );
    }

    #[test]
    fn wrong_toml_type_names_the_key_and_what_was_found() {
        assert_eq!(
            parse_err("[notifications]\ninbox_enabled = [true]\n"),
            "herald.toml line 2: notifications.inbox_enabled: expected a boolean, found an array"
        );
        assert_eq!(
            parse_err("email = \"x\"\n"),
            "herald.toml line 1: email: expected a table ([email]), found a string"
        );
    }

    #[test]
    fn invalid_toml_names_the_line() {
        let error = parse_err("[notifications]\nmethod = smtp\n");
        assert!(
            error.starts_with("herald.toml line 2: invalid TOML: "),
            "{error}"
        );
        let error = parse_err("username = 1979-05-27\n");
        assert!(
            error.contains("line 1") && error.contains("date-time"),
            "{error}"
        );
    }

    #[test]
    fn target_without_url_is_refused() {
        let text = r#"
[[targets]]
type = "slack_webhook"
name = "ops"
notify_on = ["run_failure"]
"#;
        assert_eq!(
            parse_err(text),
            "herald.toml line 2: targets[0].url: missing; a slack_webhook target needs the URL \
             to post to"
        );
    }

    #[test]
    fn slack_api_target_needs_token_and_channel() {
        let base = "[[targets]]\ntype = \"slack_api\"\nname = \"dm\"\nnotify_on = [\"x\"]\n";
        let error = parse_err(&format!("{base}channel = \"U1\"\n"));
        assert!(error.contains("targets[0].token: missing"), "{error}");
        let error = parse_err(&format!("{base}token = \"xoxb\"\n"));
        assert!(error.contains("targets[0].channel: missing"), "{error}");
        let config = parse(&format!("{base}token = \"xoxb\"\nchannel = \"U1\"\n")).unwrap();
        assert_eq!(config.targets[0].api_base_url, "https://slack.com/api");
    }

    #[test]
    fn target_key_of_another_type_is_refused() {
        let text = r#"
[[targets]]
type = "slack_webhook"
name = "ops"
notify_on = ["run_failure"]
url = "https://hooks.slack.com/services/T/B/X"
token = "xoxb"
"#;
        assert_eq!(
            parse_err(text),
            "herald.toml line 7: targets[0].token: a slack_webhook target does not take \
             `token` (its own keys: url)"
        );
    }

    #[test]
    fn target_needs_a_type_a_name_and_events() {
        let error = parse_err("[[targets]]\nname = \"a\"\nnotify_on = [\"x\"]\n");
        assert!(
            error.contains("targets[0].type: missing; expected one of"),
            "{error}"
        );
        let error = parse_err("[[targets]]\ntype = \"pager\"\n");
        assert!(error.contains("unknown target type `pager`"), "{error}");
        let error = parse_err(
            "[[targets]]\ntype = \"webhook\"\nname = \"a\"\nurl = \"http://x\"\nnotify_on = []\n",
        );
        assert!(
            error.starts_with(
                "herald.toml line 5: targets[0].notify_on: target `a` listens to no event"
            ),
            "{error}"
        );
    }

    #[test]
    fn smtp_target_needs_recipients_and_a_host_or_the_smarthost() {
        let no_recipients =
            "[[targets]]\ntype = \"smtp\"\nname = \"m\"\nnotify_on = [\"x\"]\nhost = \"mail\"\n";
        assert!(parse_err(no_recipients).contains("targets[0].recipients: missing"));

        let hostless = "[[targets]]\ntype = \"smtp\"\nname = \"m\"\nnotify_on = [\"x\"]\nrecipients = [\"a@example.com\"]\n";
        assert_eq!(
            parse_err(hostless),
            "herald.toml line 1: targets[0].host: smtp target `m` has no host and \
             email.smarthost is not set; give the target a host or set email.smarthost"
        );
        let dir = tempfile::tempdir().unwrap();
        let sources = ConfigSources {
            file: Some(write_file(&dir, "h.toml", hostless)),
            database_url: None,
        };
        let env = env_of(&[("HERALD_EMAIL_SMARTHOST", "mail:25")]);
        let config = Config::load(&sources, &env).unwrap();
        assert_eq!(config.targets[0].recipients, ["a@example.com"]);
    }

    #[test]
    fn target_names_are_unique_globally_and_per_user() {
        let target =
            "type = \"webhook\"\nname = \"ops\"\nnotify_on = [\"x\"]\nurl = \"http://h/p\"\n";
        let error = parse_err(&format!("[[targets]]\n{target}\n[[targets]]\n{target}"));
        assert!(
            error.starts_with("herald.toml line 7: targets[1].name: target name `ops` is already used by targets[0] (herald.toml line 1)"),
            "{error}"
        );

        let user = "[[users]]\nusername = \"a\"\nemail = \"a@x\"\n";
        let shared_name = format!("[[targets]]\n{target}\n{user}[[users.targets]]\n{target}");
        let config = parse(&shared_name).unwrap();
        assert_eq!(
            config.target_refs().len(),
            2,
            "a user's target may share a global name"
        );

        let twice = format!("{user}[[users.targets]]\n{target}[[users.targets]]\n{target}");
        assert!(
            parse_err(&twice)
                .contains("users[0].targets[1].name: target name `ops` is already used")
        );
    }

    #[test]
    fn usernames_are_unique() {
        let user = "[[users]]\nusername = \"alice\"\nemail = \"a@example.com\"\n";
        let error = parse_err(&format!("{user}{user}"));
        assert!(
            error.starts_with("herald.toml line 4: users[1].username: user `alice` is already declared by users[0]"),
            "{error}"
        );
    }

    #[test]
    fn users_are_read_with_roles_and_own_targets() {
        let text = r#"
[[users]]
username = "admin"
email = "admin@example.com"
name = "The Admin"
roles = ["owner", "oncall"]

  [[users.targets]]
  type = "slack_api"
  name = "admin-dm"
  notify_on = ["apply_failure", "audit_failure"]
  token = "xoxb-1"
  channel = "U123"
"#;
        let config = parse(text).unwrap();
        let user = &config.users[0];
        assert_eq!(user.roles, [Role::Owner, Role::Oncall]);
        assert_eq!(user.targets[0].target_type, TargetType::SlackApi);
        let refs = config.target_refs();
        assert_eq!(refs[0].owner.as_deref(), Some("admin"));

        let error =
            parse_err("[[users]]\nusername = \"a\"\nemail = \"a@x\"\nroles = [\"admin\"]\n");
        assert!(
            error.contains("users[0].roles: unknown role `admin`; expected one of: owner"),
            "{error}"
        );
    }

    #[test]
    fn event_overrides_are_read_by_event_name() {
        let text = r#"
[events.run_failure]
body_template = """{{ body }}

{{ file_tail("/var/log/pipeline.log", 50) }}"""

[events.apply_start]
title_template = "Deploying {{ labels.environment }}"
"#;
        let config = parse(text).unwrap();
        assert_eq!(
            config.events.keys().collect::<Vec<_>>(),
            ["apply_start", "run_failure"]
        );
        let run_failure = &config.events["run_failure"];
        assert_eq!(run_failure.title_template, None);
        assert_eq!(
            run_failure.body_template.as_deref(),
            Some("{{ body }}\n\n{{ file_tail(\"/var/log/pipeline.log\", 50) }}")
        );
        assert_eq!(
            config.events["apply_start"].title_template.as_deref(),
            Some("Deploying {{ labels.environment }}")
        );
        assert!(parse("").unwrap().events.is_empty());
    }

    #[test]
    fn unknown_key_in_an_event_override_names_the_key_and_line() {
        let text = "[events.run_failure]\ntitle_template = \"t\"\n\nbody = \"b\"\n";
        assert_eq!(
            parse_err(text),
            "herald.toml line 4: unknown key `events.run_failure.body`; expected one of: \
             title_template, body_template"
        );
        let error = parse_err("evnts.run_failure.body_template = \"b\"\n");
        assert!(
            error.starts_with(
                "herald.toml line 1: unknown key `evnts`; expected one of: database_url, \
                 base_url, username, notifications, email, targets, users, events"
            ),
            "{error}"
        );
    }

    #[test]
    fn event_override_must_be_a_table_that_overrides_something() {
        assert_eq!(
            parse_err("events = [\"run_failure\"]\n"),
            "herald.toml line 1: events: expected a table of event names \
             ([events.run_failure]), found an array"
        );
        assert_eq!(
            parse_err("[events]\nrun_failure = \"{{ body }}\"\n"),
            "herald.toml line 2: events.run_failure: expected a table ([events.run_failure]) \
             with title_template and/or body_template, found a string"
        );
        assert_eq!(
            parse_err("\n[events.run_failure]\n"),
            "herald.toml line 2: events.run_failure: overrides nothing: set title_template \
             and/or body_template, or remove the table"
        );
        assert_eq!(
            parse_err("[events.run_failure]\nbody_template = 5\n"),
            "herald.toml line 2: events.run_failure.body_template: expected a string, found \
             an integer"
        );
    }

    #[test]
    fn event_override_templates_read_the_environment_like_every_string() {
        let env = env_of(&[("TEAM", "data-eng")]);
        let text = "[events.run_failure]\ntitle_template = \"[${TEAM}] {{ title }}\"\n";
        let config = Config::from_toml_str(text, "herald.toml", &env).unwrap();
        assert_eq!(
            config.events["run_failure"].title_template.as_deref(),
            Some("[data-eng] {{ title }}")
        );
    }

    #[test]
    fn database_url_must_be_sqlite_or_postgres() {
        for url in [
            "sqlite://herald.db",
            "sqlite::memory:",
            "postgres://h/db",
            "postgresql://h/db",
        ] {
            assert!(parse(&format!("database_url = \"{url}\"")).is_ok(), "{url}");
        }
        let error = parse_err("database_url = \"mysql://u:secret@h/db\"");
        assert!(
            error.contains("unsupported database URL scheme `mysql`"),
            "{error}"
        );
        assert!(
            !error.contains("secret"),
            "the URL's password is not echoed: {error}"
        );
    }

    #[test]
    fn smarthost_must_be_host_and_port() {
        for bad in ["mail", "mail:", ":25", "mail:smtp", "mail:70000"] {
            let error = parse_err(&format!("[email]\nsmarthost = \"{bad}\""));
            assert!(
                error.contains("email.smarthost: invalid smarthost"),
                "{bad}: {error}"
            );
        }
        assert!(parse("[email]\nsmarthost = \"mail.example.com:465\"").is_ok());
    }

    #[test]
    fn password_and_password_file_together_are_refused() {
        let text = "[email.auth]\npassword = \"p\"\npassword_file = \"/run/p\"\n";
        assert_eq!(
            parse_err(text),
            "email.auth.password (herald.toml line 2) and email.auth.password_file \
             (herald.toml line 3) are both set; keep one"
        );
    }

    #[test]
    fn client_certificate_needs_its_key() {
        let error = parse_err("[email.tls]\ncert_file = \"/c.pem\"\n");
        assert!(
            error.starts_with(
                "email.tls.cert_file (herald.toml line 2) is set but email.tls.cert_key_file is not"
            ),
            "{error}"
        );
    }

    #[test]
    fn secret_debug_and_display_are_redacted() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "<redacted>");
        assert_eq!(secret.to_string(), "<redacted>");
        assert_eq!(secret.expose(), "hunter2");

        let env = env_of(&[("HERALD_EMAIL_AUTH_PASSWORD", "hunter2")]);
        let config = Config::load(&ConfigSources::default(), &env).unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn invalid_secret_url_is_reported_redacted() {
        let text = "[[targets]]\ntype = \"webhook\"\nname = \"a\"\nnotify_on = [\"x\"]\nurl = \"hooks.example.com/T0/secret\"\n";
        let error = parse_err(text);
        assert!(error.contains("targets[0].url: invalid URL"), "{error}");
        assert!(!error.contains("secret"), "{error}");
    }

    #[test]
    fn redact_url_keeps_scheme_host_and_port_only() {
        assert_eq!(
            redact_url("https://hooks.slack.com/services/T0/B0/XXXX"),
            "https://hooks.slack.com/<redacted>"
        );
        assert_eq!(
            redact_url("http://user:pw@localhost:8080/hook?token=abc"),
            "http://localhost:8080/<redacted>"
        );
        assert_eq!(redact_url("https://example.com"), "https://example.com");
        assert_eq!(redact_url("not a url"), "<redacted>");
        assert_eq!(
            redact_url_password("postgres://herald:pw@db:5432/herald"),
            "postgres://herald:<redacted>@db:5432/herald"
        );
        assert_eq!(
            redact_url_password("sqlite://herald.db"),
            "sqlite://herald.db"
        );
    }

    #[test]
    fn redact_url_password_hides_password_query_parameters_too() {
        let cases = [
            (
                "postgres://db/herald?password=s3cret&sslmode=require",
                "postgres://db/herald?password=<redacted>&sslmode=require",
            ),
            (
                "postgresql://herald@db:5432/herald?sslmode=verify-full&sslpassword=k3y",
                "postgresql://herald@db:5432/herald?sslmode=verify-full&sslpassword=<redacted>",
            ),
            (
                "postgres://herald:pw@db/herald?application_name=herald&PassWord=s3cret",
                "postgres://herald:<redacted>@db/herald?application_name=herald&PassWord=<redacted>",
            ),
            // Raw `&` and `#` in a password: no piece of it shows.
            (
                "postgres://db/herald?password=ab&cd&sslmode=require",
                "postgres://db/herald?password=<redacted>&sslmode=require",
            ),
            (
                "postgres://db/herald?password=ab#cd",
                "postgres://db/herald?password=<redacted>#<redacted>",
            ),
            (
                "postgres://db/herald?sslmode=require#section",
                "postgres://db/herald?sslmode=require#section",
            ),
            // sqlx decodes the names and values of query parameters.
            (
                "postgres://db/herald?pass%77ord=a%26b%3Dc&sslmode=disable",
                "postgres://db/herald?pass%77ord=<redacted>&sslmode=disable",
            ),
            (
                "postgres://db/herald?sslmode=require&passfile=/etc/herald/pgpass",
                "postgres://db/herald?sslmode=require&passfile=/etc/herald/pgpass",
            ),
            (
                "postgres://db/herald?password",
                "postgres://db/herald?password",
            ),
            ("sqlite://herald.db?mode=rwc", "sqlite://herald.db?mode=rwc"),
        ];
        for (url, shown) in cases {
            assert_eq!(redact_url_password(url), shown, "{url}");
        }
    }

    #[test]
    fn configured_methods_follow_smarthost_and_webhook_endpoint() {
        let mut config = Config::default();
        assert_eq!(config.configured_methods(), [Method::Inbox]);
        config.email.smarthost = Some("mail:25".to_string());
        config.notifications.webhook.endpoint = Some("https://h/x".to_string());
        assert_eq!(
            config.configured_methods(),
            [Method::Smtp, Method::Webhook, Method::Inbox]
        );
    }
}
