//! Overrides (SQLMesh's "overriding notification targets"): the configuration may replace an
//! event's title or body template for every delivery (`[events.NAME]`) or for one target
//! (`title_template` / `body_template` in `[[targets]]` or `[[users.targets]]`).
//!
//! Built once from the [`Config`]: every override template is compiled up front, so a broken
//! one refuses start-up naming its key. An override sees the catalog's context plus `title`
//! and `body`, what the message would say without it (`{{ body }}` appends to the catalog's
//! body), and may call `file_tail` on the paths it names literally (see `file_tail.rs`).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use minijinja::Environment;

use super::file_tail;
use crate::config::{Config, TargetConfig};

/// The override templates of one configuration, and its `base_url`, the one setting every
/// template sees; cheap to clone and share between tasks. The default has neither.
#[derive(Clone, Default)]
pub struct Overrides {
    set: Option<Arc<OverrideSet>>,
    base_url: Option<Arc<str>>,
}

/// An override template that cannot be compiled; refuses start-up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: invalid template: {detail}")]
pub struct OverrideError {
    /// The config key the template came from, e.g. `events.run_failure.body_template` or
    /// `users[0].targets[1].title_template`.
    pub key: String,
    /// What is wrong, with the line in the template.
    pub detail: String,
}

struct OverrideSet {
    /// Every override template, named by its config key.
    env: Environment<'static>,
    /// `[events.NAME]`, by event name.
    events: BTreeMap<String, OverridePair>,
    /// Targets with a template, by qualified name (`name`, or `username/name`).
    targets: BTreeMap<String, TargetOverride>,
}

/// The title and body templates one override layer replaces.
#[derive(Default)]
pub(super) struct OverridePair {
    pub(super) title: Option<OverrideTemplate>,
    pub(super) body: Option<OverrideTemplate>,
}

struct TargetOverride {
    /// The events the target hears about, to validate its templates against.
    notify_on: Vec<String>,
    templates: OverridePair,
}

/// One override template: its name in the environment and which of the layer beneath's
/// `title` and `body` it reads.
pub(super) struct OverrideTemplate {
    /// The config key, also the template's name.
    pub(super) key: String,
    source: String,
    pub(super) uses_title: bool,
    pub(super) uses_body: bool,
}

/// Which template of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Part {
    Title,
    Body,
}

impl OverridePair {
    pub(super) fn get(&self, part: Part) -> Option<&OverrideTemplate> {
        match part {
            Part::Title => self.title.as_ref(),
            Part::Body => self.body.as_ref(),
        }
    }

    fn templates(&self) -> impl Iterator<Item = &OverrideTemplate> {
        self.title.iter().chain(self.body.iter())
    }
}

impl Overrides {
    /// Compiles every override of `config`: `[events.NAME]`, then each target's templates.
    /// Event names are not checked here ([`super::validate_catalog`] does, against the
    /// catalog).
    pub fn from_config(config: &Config) -> Result<Overrides, OverrideError> {
        let base_url = config.base_url.as_deref().map(Arc::from);
        let mut events = BTreeMap::new();
        let mut targets = BTreeMap::new();
        let mut sources: Vec<(String, String)> = Vec::new();
        let mut template = |key: String, source: &Option<String>| {
            source.as_ref().map(|source| {
                sources.push((key.clone(), source.clone()));
                key
            })
        };
        for (name, event) in &config.events {
            let title = template(
                format!("events.{name}.title_template"),
                &event.title_template,
            );
            let body = template(format!("events.{name}.body_template"), &event.body_template);
            events.insert(name.clone(), (title, body));
        }
        let global = config
            .targets
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), format!("targets[{i}]"), t));
        let owned = config.users.iter().enumerate().flat_map(|(u, user)| {
            user.targets.iter().enumerate().map(move |(i, t)| {
                (
                    format!("{}/{}", user.username, t.name),
                    format!("users[{u}].targets[{i}]"),
                    t,
                )
            })
        });
        let mut target_keys: Vec<(String, &TargetConfig, Option<String>, Option<String>)> =
            Vec::new();
        for (qualified, path, target) in global.chain(owned) {
            let title = template(format!("{path}.title_template"), &target.title_template);
            let body = template(format!("{path}.body_template"), &target.body_template);
            if title.is_some() || body.is_some() {
                target_keys.push((qualified, target, title, body));
            }
        }
        if sources.is_empty() {
            return Ok(Overrides {
                set: None,
                base_url,
            });
        }

        let mut allowed = HashMap::new();
        for (key, source) in &sources {
            let paths = file_tail::literal_paths(source).map_err(|detail| OverrideError {
                key: key.clone(),
                detail,
            })?;
            allowed.insert(key.clone(), paths);
        }
        let mut env = super::base_environment();
        file_tail::add_allowing(&mut env, allowed);
        for (key, source) in &sources {
            env.add_template_owned(key.clone(), source.clone())
                .map_err(|error| OverrideError {
                    key: key.clone(),
                    detail: super::describe(&error, None),
                })?;
        }
        let compiled = |key: Option<String>| -> Option<OverrideTemplate> {
            let key = key?;
            let template = env.get_template(&key).ok()?;
            let used = template.undeclared_variables(false);
            Some(OverrideTemplate {
                source: template.source().to_string(),
                uses_title: used.contains("title"),
                uses_body: used.contains("body"),
                key,
            })
        };
        let events = events
            .into_iter()
            .map(|(name, (title, body))| {
                let pair = OverridePair {
                    title: compiled(title),
                    body: compiled(body),
                };
                (name, pair)
            })
            .collect();
        for (qualified, target, title, body) in target_keys {
            let templates = OverridePair {
                title: compiled(title),
                body: compiled(body),
            };
            let notify_on = target.notify_on.clone();
            targets.insert(
                qualified,
                TargetOverride {
                    notify_on,
                    templates,
                },
            );
        }
        Ok(Overrides {
            set: Some(Arc::new(OverrideSet {
                env,
                events,
                targets,
            })),
            base_url,
        })
    }

    /// Whether there is no override template at all (a `base_url` is no override).
    pub fn is_empty(&self) -> bool {
        self.set.is_none()
    }

    /// `base_url` (no trailing slash), or empty when it is not set.
    pub fn base_url(&self) -> &str {
        self.base_url.as_deref().unwrap_or("")
    }

    /// The event names `[events.NAME]` overrides.
    pub fn event_names(&self) -> impl Iterator<Item = &str> {
        self.set
            .iter()
            .flat_map(|set| set.events.keys().map(String::as_str))
    }

    /// Renders the override template named `key` (its config key).
    pub(super) fn render(
        &self,
        key: &str,
        context: &minijinja::Value,
    ) -> Result<String, minijinja::Error> {
        match &self.set {
            Some(set) => set.env.get_template(key)?.render(context),
            None => Err(minijinja::Error::new(
                minijinja::ErrorKind::TemplateNotFound,
                key.to_string(),
            )),
        }
    }

    /// The override layers for one message, lowest first: the event's, then the target's.
    pub(super) fn layers(&self, event: &str, target: Option<&str>) -> [Option<&OverridePair>; 2] {
        match &self.set {
            None => [None, None],
            Some(set) => [
                set.events.get(event),
                target
                    .and_then(|t| set.targets.get(t))
                    .map(|t| &t.templates),
            ],
        }
    }

    /// The sources of every override that may apply to `event`, for sample labels.
    pub(super) fn sources_for<'a>(&'a self, event: &'a str) -> impl Iterator<Item = &'a str> {
        self.set.iter().flat_map(move |set| {
            let of_event = set.events.get(event).into_iter();
            let of_targets = set
                .targets
                .values()
                .filter(move |t| t.notify_on.iter().any(|e| e == event))
                .map(|t| &t.templates);
            of_event
                .chain(of_targets)
                .flat_map(OverridePair::templates)
                .map(|t| t.source.as_str())
        })
    }

    /// The qualified names of the targets with a template that hear about `event`.
    pub(super) fn targets_for<'a>(&'a self, event: &'a str) -> impl Iterator<Item = &'a str> {
        self.set.iter().flat_map(move |set| {
            set.targets
                .iter()
                .filter(move |(_, t)| t.notify_on.iter().any(|e| e == event))
                .map(|(name, _)| name.as_str())
        })
    }
}

impl fmt::Debug for Overrides {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<&str> = self
            .set
            .iter()
            .flat_map(|set| {
                set.events
                    .values()
                    .chain(set.targets.values().map(|t| &t.templates))
            })
            .flat_map(OverridePair::templates)
            .map(|t| t.key.as_str())
            .collect();
        f.debug_struct("Overrides")
            .field("templates", &keys)
            .finish()
    }
}
