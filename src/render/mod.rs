//! Rendering: an event's templates and a message's payload become the title, the Markdown
//! body, its plain-text and HTML twins and the actions a channel sends (DESIGN §2, §3).
//!
//! Templates are minijinja with [`UndefinedBehavior::SemiStrict`]: printing a missing value is
//! an error (a typo in a template must not ship a blank), while `{% if labels.x %}` may test an
//! optional one. The context is the one `assets/events.toml` documents:
//! `user {id, email, name, username}`, `labels`, `data`, `actions` and `base_url`; an override
//! template also sees `title` and `body` (see [`Overrides`]). With `base_url` set, an action URL
//! that renders relative (`/workspaces`) is made absolute with it, so Slack can show it as a
//! button and an email client can open it.
//!
//! Templates are compiled once, not per message: catalog templates are kept in one environment
//! keyed by their source text (at most [`MAX_CACHED_TEMPLATES`]), override templates in the
//! environment [`Overrides::from_config`] builds at start-up. Rendering is pure but for
//! `file_tail`, which only config override templates may call (see `render/file_tail.rs`).

mod file_tail;
mod markdown;
mod overrides;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{OnceLock, PoisonError, RwLock};

use chrono::DateTime;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

pub use file_tail::{MAX_TAIL_BYTES, MAX_TAIL_LINES};
pub use markdown::{is_allowed_url, markdown_to_html, markdown_to_text};
pub use overrides::{OverrideError, Overrides};

use crate::model::{Action, EventSpec, EventTemplate, Role, User, UserStatus};
use overrides::{OverridePair, Part};

/// The most catalog templates kept compiled: the built-in catalog has under 100 (titles,
/// bodies, action labels and URLs); past this the cache starts over, so templates that keep
/// changing cannot grow it without bound.
pub const MAX_CACHED_TEMPLATES: usize = 1024;

/// What a channel sends for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The title on one line, trimmed.
    pub title: String,
    /// The body as Markdown, trimmed.
    pub body_markdown: String,
    /// The body as plain text (see [`markdown_to_text`]).
    pub body_text: String,
    /// The event's actions with their label and URL rendered.
    pub actions: Vec<Action>,
}

impl Rendered {
    /// A message from its title, Markdown body and actions; the text body is made from the
    /// Markdown.
    pub fn new(title: String, body_markdown: String, actions: Vec<Action>) -> Rendered {
        Rendered {
            body_text: markdown_to_text(&body_markdown),
            title,
            body_markdown,
            actions,
        }
    }

    /// The body as an HTML fragment, raw HTML escaped (see [`markdown_to_html`]). Made when
    /// asked: only email sends HTML, and every other message would pay for it.
    pub fn body_html(&self) -> String {
        markdown_to_html(&self.body_markdown)
    }
}

/// A template that failed to render; becomes a message's `permanent_failure` reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot render the {template} template of event `{event}`: {detail}")]
pub struct RenderError {
    /// The event whose template failed.
    pub event: String,
    /// Which template: `title`, `body`, `action 1 label`, `action 2 url`, … (1-based), or the
    /// config key of an override (`events.run_failure.body_template`, `targets[0].title_template`).
    pub template: String,
    /// minijinja's message, with the template and line.
    pub detail: String,
}

/// The template context, borrowed from the payload.
#[derive(Serialize)]
struct Context<'a> {
    user: UserContext<'a>,
    labels: &'a Value,
    data: &'a Value,
    actions: &'a Value,
    base_url: &'a str,
}

#[derive(Serialize)]
struct UserContext<'a> {
    id: &'a str,
    email: &'a str,
    name: &'a str,
    username: &'a str,
}

/// Renders `event`'s catalog templates against a stored payload; [`render_for`] without
/// overrides.
pub fn render(event: &EventTemplate, payload: &Value) -> Result<Rendered, RenderError> {
    render_for(event, &Overrides::default(), None, payload)
}

/// Renders `event` against a stored payload (the shape of [`crate::routing::build_payload`])
/// for one message: its title and body come from the target's override (`target` is the
/// qualified target name of a target message), else the event's (`[events.NAME]`), else the
/// catalog; actions always from the catalog. Missing user fields are empty strings, missing
/// labels and data empty objects, so a target message renders like a user's without the
/// greeting.
pub fn render_for(
    event: &EventTemplate,
    overrides: &Overrides,
    target: Option<&str>,
    payload: &Value,
) -> Result<Rendered, RenderError> {
    let message = Message::new(event, overrides, target, payload);
    let title = message.title()?;
    let body_markdown = message.body()?;
    let actions = (0..event.spec.actions.len())
        .map(|i| {
            Ok(Action::new(
                message.action_label(i)?,
                message.action_url(i)?,
            ))
        })
        .collect::<Result<Vec<_>, RenderError>>()?;
    Ok(Rendered::new(title, body_markdown, actions))
}

/// Every template error of one message, not only the first: for [`validate_catalog`].
fn render_errors(
    event: &EventTemplate,
    overrides: &Overrides,
    target: Option<&str>,
    payload: &Value,
) -> Vec<RenderError> {
    let message = Message::new(event, overrides, target, payload);
    let actions = (0..event.spec.actions.len())
        .flat_map(|i| [message.action_label(i), message.action_url(i)]);
    [message.title(), message.body()]
        .into_iter()
        .chain(actions)
        .filter_map(Result::err)
        .collect()
}

/// One message being rendered.
struct Message<'a> {
    spec: &'a EventSpec,
    context: minijinja::Value,
    overrides: &'a Overrides,
    /// The override layers, lowest first: the event's, then the target's.
    layers: [Option<&'a OverridePair>; 2],
}

impl<'a> Message<'a> {
    fn new(
        event: &'a EventTemplate,
        overrides: &'a Overrides,
        target: Option<&str>,
        payload: &Value,
    ) -> Message<'a> {
        Message {
            spec: &event.spec,
            context: template_context(payload, overrides.base_url()),
            overrides,
            layers: overrides.layers(&event.spec.name, target),
        }
    }

    fn title(&self) -> Result<String, RenderError> {
        self.part(Part::Title, self.layers.len())
    }

    fn body(&self) -> Result<String, RenderError> {
        self.part(Part::Body, self.layers.len())
    }

    /// The label of the action at `index` (0-based; errors count from 1).
    fn action_label(&self, index: usize) -> Result<String, RenderError> {
        let source = self
            .spec
            .actions
            .get(index)
            .map_or("", |a| a.label.as_str());
        let label = self.catalog(&format!("action {} label", index + 1), source)?;
        Ok(single_line(&label))
    }

    fn action_url(&self, index: usize) -> Result<String, RenderError> {
        let source = self.spec.actions.get(index).map_or("", |a| a.url.as_str());
        let url = self.catalog(&format!("action {} url", index + 1), source)?;
        Ok(absolute_url(url.trim(), self.overrides.base_url()))
    }

    /// `part` as the catalog and the lowest `level` override layers make it: the highest of
    /// them that has a template for it wins; its `title` and `body` are the layers beneath's.
    fn part(&self, part: Part, level: usize) -> Result<String, RenderError> {
        let Some(below) = level.checked_sub(1) else {
            return match part {
                Part::Title => Ok(single_line(
                    &self.catalog("title", &self.spec.title_template)?,
                )),
                Part::Body => Ok(self
                    .catalog("body", &self.spec.body_template)?
                    .trim()
                    .to_string()),
            };
        };
        let Some(template) = self.layers[below].and_then(|pair| pair.get(part)) else {
            return self.part(part, below);
        };
        let mut beneath = BTreeMap::new();
        if template.uses_title {
            beneath.insert("title", self.part(Part::Title, below)?);
        }
        if template.uses_body {
            beneath.insert("body", self.part(Part::Body, below)?);
        }
        let context = if beneath.is_empty() {
            self.context.clone()
        } else {
            minijinja::value::merge_maps([
                self.context.clone(),
                minijinja::Value::from_serialize(&beneath),
            ])
        };
        let text = self
            .overrides
            .render(&template.key, &context)
            .map_err(|error| RenderError {
                event: self.spec.name.clone(),
                template: template.key.clone(),
                detail: describe(&error, Some(&template.key)),
            })?;
        Ok(match part {
            Part::Title => single_line(&text),
            Part::Body => text.trim().to_string(),
        })
    }

    /// A catalog template, compiled once ([`TemplateCache`]); plain text skips the engine.
    fn catalog(&self, label: &str, source: &str) -> Result<String, RenderError> {
        if !has_template_syntax(source) {
            return Ok(source.to_string());
        }
        catalog_templates()
            .render(source, &self.context)
            .map_err(|error| RenderError {
                event: self.spec.name.clone(),
                template: label.to_string(),
                detail: describe(&error, Some(label)),
            })
    }
}

/// The context every template of one message renders with, converted once.
fn template_context(payload: &Value, base_url: &str) -> minijinja::Value {
    let empty_object = Value::Object(Map::new());
    let empty_array = Value::Array(Vec::new());
    let text = |field: &str| payload.get(field).and_then(Value::as_str).unwrap_or("");
    let object_or_empty = |field: &str| match payload.get(field) {
        Some(value) if !value.is_null() => value,
        _ => &empty_object,
    };
    minijinja::Value::from_serialize(Context {
        user: UserContext {
            id: text("user_id"),
            email: text("user_email"),
            name: text("user_name"),
            username: text("user_username"),
        },
        labels: object_or_empty("labels"),
        data: object_or_empty("data"),
        actions: payload.get("actions").unwrap_or(&empty_array),
        base_url,
    })
}

/// minijinja's message for `error`, naming the template `label` (the engine's own name for a
/// catalog template is its source text) or, without a label, just the line.
fn describe(error: &minijinja::Error, label: Option<&str>) -> String {
    let mut text = match error.detail() {
        Some(detail) => format!("{}: {detail}", error.kind()),
        None => error.kind().to_string(),
    };
    if let Some(line) = error.line().filter(|_| error.name().is_some()) {
        match label {
            Some(label) => text.push_str(&format!(" (in {label}:{line})")),
            None => text.push_str(&format!(" (line {line})")),
        }
    }
    text
}

/// An environment as every template renders in: semi-strict undefined, no HTML escaping (the
/// output is Markdown and plain text; HTML is escaped where HTML is made).
fn base_environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env
}

/// The compiled catalog templates of this process.
fn catalog_templates() -> &'static TemplateCache {
    static CACHE: OnceLock<TemplateCache> = OnceLock::new();
    CACHE.get_or_init(|| TemplateCache::new(MAX_CACHED_TEMPLATES))
}

/// Compiled templates in one environment, each named by its own source text: a template is
/// compiled the first time it is rendered and then shared by every thread. Bounded: when
/// `capacity` templates are held, the next new one empties the cache first.
struct TemplateCache {
    compiled: RwLock<Compiled>,
    capacity: usize,
}

struct Compiled {
    env: Environment<'static>,
    count: usize,
}

impl TemplateCache {
    fn new(capacity: usize) -> TemplateCache {
        let mut env = base_environment();
        file_tail::add_refusing(&mut env);
        TemplateCache {
            compiled: RwLock::new(Compiled { env, count: 0 }),
            capacity,
        }
    }

    fn render(&self, source: &str, context: &minijinja::Value) -> Result<String, minijinja::Error> {
        {
            // A panic while rendering cannot leave the environment half-changed.
            let compiled = self.compiled.read().unwrap_or_else(PoisonError::into_inner);
            if let Ok(template) = compiled.env.get_template(source) {
                return template.render(context);
            }
        }
        let mut compiled = self
            .compiled
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if compiled.env.get_template(source).is_err() {
            if compiled.count >= self.capacity {
                compiled.env.clear_templates();
                compiled.count = 0;
            }
            compiled
                .env
                .add_template_owned(source.to_string(), source.to_string())?;
            compiled.count += 1;
        }
        compiled.env.get_template(source)?.render(context)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.compiled
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .count
    }
}

/// `url` with `base_url` in front when it is a path (`/x`, not `//host/x`) and `base_url` is
/// set; anything else as it is.
fn absolute_url(url: &str, base_url: &str) -> String {
    if !base_url.is_empty() && url.starts_with('/') && !url.starts_with("//") {
        format!("{base_url}{url}")
    } else {
        url.to_string()
    }
}

/// Whether `source` has any minijinja tag; plain text (most action labels) skips the engine.
fn has_template_syntax(source: &str) -> bool {
    ["{{", "{%", "{#"].iter().any(|open| source.contains(open))
}

/// Joins a text's lines and collapses runs of whitespace, for titles and labels.
fn single_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

/// Renders every template of `events` and every override that applies to them with a sample
/// payload ([`sample_payload`]'s labels, plus those the overrides mention): each event's
/// catalog templates for a user and for a target, with its `[events.NAME]` override, and with
/// each overriding target that hears about it. Also refuses an `[events.NAME]` whose event is
/// not in `events`. Every failing template is returned (not only the first of a message),
/// each once. Call it at start-up, before delivering, and refuse to start on `Err`.
pub fn validate_catalog(
    events: &[EventTemplate],
    overrides: &Overrides,
) -> Result<(), Vec<RenderError>> {
    let mut errors: Vec<RenderError> = Vec::new();
    let mut check = |found: Vec<RenderError>| {
        for error in found {
            if !errors.contains(&error) {
                errors.push(error);
            }
        }
    };
    let no_overrides = Overrides::default();
    let user = sample_user();
    for event in events {
        let name = event.spec.name.as_str();
        let extra: Vec<&str> = overrides.sources_for(name).collect();
        let labels = sample_labels(&event.spec, &extra);
        let data = sample_data();
        let for_user = crate::routing::build_payload(event, Some(&user), &labels, &data, &[]);
        let for_target = crate::routing::build_payload(event, None, &labels, &data, &[]);
        for payload in [&for_user, &for_target] {
            // The catalog alone too, where an override hides it from the other renders.
            check(render_errors(event, &no_overrides, None, payload));
            check(render_errors(event, overrides, None, payload));
        }
        for target in overrides.targets_for(name) {
            let targets = [target.to_string()];
            let payload = crate::routing::build_payload(event, None, &labels, &data, &targets);
            check(render_errors(event, overrides, Some(target), &payload));
        }
    }
    for name in overrides.event_names() {
        if !events.iter().any(|event| event.spec.name == name) {
            errors.push(RenderError {
                event: name.to_string(),
                template: format!("[events.{name}]"),
                detail: format!(
                    "there is no event `{name}` in the catalog; check the spelling \
                     (`herald events list` shows every event)"
                ),
            });
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// A payload for a target (no user) with every label `event`'s templates mention
/// (`labels.NAME`, valued `sample-NAME`) and `data.error`: what a producer would send.
pub fn sample_payload(event: &EventTemplate) -> Value {
    crate::routing::build_payload(
        event,
        None,
        &sample_labels(&event.spec, &[]),
        &sample_data(),
        &[],
    )
}

fn sample_data() -> Value {
    json!({"error": "sample error"})
}

/// `sample-NAME` for every `labels.NAME` in `spec`'s templates and in `extra`.
fn sample_labels(spec: &EventSpec, extra: &[&str]) -> BTreeMap<String, String> {
    mentioned_labels(catalog_sources(spec).chain(extra.iter().copied()))
        .into_iter()
        .map(|name| {
            let value = format!("sample-{name}");
            (name, value)
        })
        .collect()
}

/// Every label `spec`'s templates mention (`labels.NAME`), its catalog templates' and those of
/// the overrides that may apply to it, by name: what a message of it could read.
pub fn labels_read(spec: &EventSpec, overrides: &Overrides) -> BTreeSet<String> {
    mentioned_labels(catalog_sources(spec).chain(overrides.sources_for(&spec.name)))
}

/// The catalog templates of `spec`: title, body, then each action's label and URL.
fn catalog_sources(spec: &EventSpec) -> impl Iterator<Item = &str> {
    [spec.title_template.as_str(), spec.body_template.as_str()]
        .into_iter()
        .chain(
            spec.actions
                .iter()
                .flat_map(|a| [a.label.as_str(), a.url.as_str()]),
        )
}

/// The names after every `labels.` in `sources`.
fn mentioned_labels<'a>(sources: impl Iterator<Item = &'a str>) -> BTreeSet<String> {
    let mut labels = BTreeSet::new();
    for text in sources {
        for (at, _) in text.match_indices("labels.") {
            let name: String = text[at + "labels.".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                labels.insert(name);
            }
        }
    }
    labels
}

fn sample_user() -> User {
    User {
        id: Uuid::nil(),
        username: "sample-user".to_string(),
        email: "sample-user@example.com".to_string(),
        name: "Sample User".to_string(),
        roles: vec![Role::Member],
        status: UserStatus::Active,
        created_at: DateTime::UNIX_EPOCH,
        updated_at: DateTime::UNIX_EPOCH,
    }
}

#[cfg(test)]
mod tests;
