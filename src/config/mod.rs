//! Configuration from the TOML file, `HERALD_…` environment variables and command-line flags,
//! validated with one-line errors that name the key and, for the file, the line (DESIGN §9).
//!
//! Precedence is flag > env > file > default. Every scalar setting is declared once in
//! `SETTINGS` (dotted key, environment name, conversion); that table drives the file's known
//! keys, the environment layer and the "expected one of" lists. `[[targets]]`, `[[users]]` and
//! the `[events.NAME]` template overrides come from the file only. Secrets are held in
//! [`Secret`], which never prints its value.
//!
//! Where each part lives: `sections` (the typed sections), `settings` (the key table), `raw`
//! (a value before conversion, and the conversions), `file` (the file as a spanned tree and
//! its readers), `tables` (targets, users and event overrides), `interpolate` (`${VAR}`),
//! `builder` (the layers and the cross-key checks) and `error`. [`Secret`] and URL redaction
//! live in the leaf module `crate::secret`, re-exported here.

mod builder;
mod channels;
mod error;
mod file;
mod interpolate;
mod raw;
mod sections;
mod settings;
mod tables;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use crate::secret::{Secret, redact_url, redact_url_password};
use builder::Builder;
pub use error::{ConfigError, Origin};
use raw::Raw;
pub use raw::{MAX_DURATION, parse_duration};
pub use sections::{
    EmailAuthConfig, EmailConfig, EmailTlsConfig, EventOverrideConfig, HttpConfig,
    NotificationsConfig, SlackApiTarget, SmtpTarget, SshConfig, TargetConfig, UserConfig,
    WebhookConfig,
};
use settings::SETTINGS;

use crate::model::{Method, TargetRef};

/// The file read when neither `--config` nor `HERALD_CONFIG` names one (if it exists).
pub const DEFAULT_CONFIG_FILE: &str = "herald.toml";
/// The environment variable naming the config file.
pub const CONFIG_FILE_ENV: &str = "HERALD_CONFIG";
/// The Slack Web API base URL used when a `slack_api` target does not set `api_base_url`.
pub const DEFAULT_SLACK_API_BASE_URL: &str = "https://slack.com/api";

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
    /// `[http]`: where the producers' HTTP API listens.
    pub http: HttpConfig,
    /// `[ssh]`: the console over SSH.
    pub ssh: SshConfig,
    /// `[[targets]]`: global SQLMesh-style targets.
    pub targets: Vec<TargetConfig>,
    /// `[[users]]`: users declared in config, with their own targets.
    pub users: Vec<UserConfig>,
    /// `[events.NAME]`: an event's templates overridden for every delivery, by event name
    /// (checked against the catalog by [`crate::render::validate_catalog`]).
    pub events: BTreeMap<String, EventOverrideConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: "sqlite://herald.db".to_string(),
            base_url: None,
            username: None,
            notifications: NotificationsConfig::default(),
            email: EmailConfig::default(),
            http: HttpConfig::default(),
            ssh: SshConfig::default(),
            targets: Vec::new(),
            users: Vec::new(),
            events: BTreeMap::new(),
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
