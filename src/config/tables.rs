//! The file's tables that are not scalar settings: `[[targets]]`, `[[users]]` (with their own
//! targets) and `[events.NAME]`, each checked alone; names are unique within their array.

use std::collections::{BTreeMap, HashMap};

use super::builder::HostlessSmtpTarget;
use super::file::{Entries, Located, Node, Source};
use super::raw::Raw;
use super::settings::{
    COMMON_TARGET_KEYS, EVENT_OVERRIDE_KEYS, TARGET_KEYS, USER_KEYS, target_type_keys,
};
use super::{
    ConfigError, DEFAULT_SLACK_API_BASE_URL, EventOverrideConfig, Origin, SlackApiTarget,
    SmtpTarget, TargetConfig, UserConfig,
};
use crate::model::{Role, TargetType};

/// Targets parsed from one array, with the smtp ones whose host check waits for env.
pub(super) struct ParsedTargets {
    pub(super) targets: Vec<TargetConfig>,
    pub(super) hostless: Vec<HostlessSmtpTarget>,
}

/// Users parsed from `[[users]]`, with their smtp targets whose host check waits for env.
pub(super) struct ParsedUsers {
    pub(super) users: Vec<UserConfig>,
    pub(super) hostless: Vec<HostlessSmtpTarget>,
}

impl Source<'_> {
    /// `[[targets]]` or a user's `targets`: each valid alone, names unique within the array.
    pub(super) fn targets(
        &self,
        key: &str,
        node: Located<Node>,
    ) -> Result<ParsedTargets, ConfigError> {
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
            if target.target_type == TargetType::Smtp && target.smtp.host.is_none() {
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

    pub(super) fn target(
        &self,
        path: &str,
        table: Located<Entries>,
    ) -> Result<TargetConfig, ConfigError> {
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
            slack_api: SlackApiTarget {
                api_base_url: DEFAULT_SLACK_API_BASE_URL.to_string(),
                ..SlackApiTarget::default()
            },
            smtp: SmtpTarget::default(),
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
                    origin: self.at(key.span.clone()),
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
                "token" => {
                    target.slack_api.token = self.convert(&full, value, Raw::optional_secret)?
                }
                "channel" => {
                    target.slack_api.channel = self.convert(&full, value, Raw::optional_text)?
                }
                "api_base_url" => {
                    target.slack_api.api_base_url = self.convert(&full, value, Raw::http_url)?
                }
                "recipients" => target.smtp.recipients = self.email_list(&full, value)?,
                "host" => target.smtp.host = self.convert(&full, value, Raw::optional_text)?,
                "port" => target.smtp.port = Some(self.convert(&full, value, Raw::port)?),
                "user" => target.smtp.user = self.convert(&full, value, Raw::optional_text)?,
                "password" => {
                    target.smtp.password = self.convert(&full, value, Raw::optional_secret)?
                }
                "sender" => target.smtp.sender = self.convert(&full, value, Raw::optional_text)?,
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
            TargetType::SlackApi if target.slack_api.token.is_none() => {
                return Err(missing("token", "a Slack API token"));
            }
            TargetType::SlackApi if target.slack_api.channel.is_none() => {
                return Err(missing("channel", "a channel or member id"));
            }
            TargetType::Smtp if target.smtp.recipients.is_empty() => {
                return Err(missing("recipients", "at least one recipient address"));
            }
            _ => {}
        }
        Ok(target)
    }

    pub(super) fn email_list(
        &self,
        key: &str,
        node: Located<Node>,
    ) -> Result<Vec<String>, ConfigError> {
        let span = node.span.clone();
        let addresses = self.string_list(key, node)?;
        match addresses.iter().find(|a| !a.contains('@')) {
            Some(bad) => Err(self.invalid(span, key, format!("`{bad}` is not an email address"))),
            None => Ok(addresses),
        }
    }

    /// `[events]`: one table per event name, each with only template keys.
    pub(super) fn event_overrides(
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
            let span = name.span.clone();
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
                            origin: self.at(key.span.clone()),
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

    pub(super) fn users(&self, node: Located<Node>) -> Result<ParsedUsers, ConfigError> {
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

    pub(super) fn user(
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
                        origin: self.at(key.span.clone()),
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
