//! [`Builder`]: the layers (file, environment, flags) applied in precedence order over the
//! defaults, then the checks that span several keys.

use std::collections::HashMap;

use super::file::{Entries, Node, Source};
use super::raw::Raw;
use super::settings::{SETTINGS, is_section, join, section_keys};
use super::{Config, ConfigError, Origin, lookup};

/// An smtp target without its own host, checked once `email.smarthost` is final.
pub(super) struct HostlessSmtpTarget {
    pub(super) path: String,
    pub(super) name: String,
    pub(super) origin: Origin,
}

/// Applies layers in precedence order over [`Config::default`], remembering where each
/// setting came from so that cross-key errors can say which value to change.
#[derive(Default)]
pub(super) struct Builder {
    config: Config,
    origins: HashMap<&'static str, Origin>,
    hostless_smtp_targets: Vec<HostlessSmtpTarget>,
}

impl Builder {
    pub(super) fn apply_setting(
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

    pub(super) fn apply_env(
        &mut self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        for setting in SETTINGS {
            if let Some(value) = lookup(env, setting.env) {
                self.apply_setting(setting.key, Raw::Text(value), || Origin::Env(setting.env))?;
            }
        }
        Ok(())
    }

    pub(super) fn apply_file(
        &mut self,
        text: &str,
        file: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        let source = Source { text, file, env };
        let entries = source.document()?;
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
                    origin: source.at(key.span.clone()),
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
    pub(super) fn finish(self) -> Result<Config, ConfigError> {
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
