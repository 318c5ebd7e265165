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
    /// The body as an HTML fragment, raw HTML escaped (see [`markdown_to_html`]).
    pub body_html: String,
    /// The event's actions with their label and URL rendered.
    pub actions: Vec<Action>,
}

impl Rendered {
    /// A message from its title, Markdown body and actions; the text and HTML bodies are made
    /// from the Markdown.
    pub fn new(title: String, body_markdown: String, actions: Vec<Action>) -> Rendered {
        Rendered {
            body_text: markdown_to_text(&body_markdown),
            body_html: markdown_to_html(&body_markdown),
            title,
            body_markdown,
            actions,
        }
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
            Ok(Action {
                label: message.action_label(i)?,
                url: message.action_url(i)?,
            })
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
mod tests {
    use std::collections::BTreeMap;

    use chrono::Utc;
    use serde_json::json;
    use uuid::Uuid;

    use super::*;
    use crate::model::{EventKind, EventSpec, Role, User, UserStatus};
    use crate::routing::build_payload;

    fn event(spec: EventSpec) -> EventTemplate {
        EventTemplate {
            id: Uuid::now_v7(),
            spec,
            method: None,
        }
    }

    fn spec(title: &str, body: &str, actions: &[(&str, &str)]) -> EventSpec {
        EventSpec {
            name: "sample_event".to_string(),
            group: "Tests".to_string(),
            title_template: title.to_string(),
            body_template: body.to_string(),
            actions: actions
                .iter()
                .map(|(label, url)| Action {
                    label: label.to_string(),
                    url: url.to_string(),
                })
                .collect(),
            audience_roles: Vec::new(),
            enabled_by_default: true,
            kind: EventKind::Custom,
            inbox: true,
            reaches_suspended: false,
            labels: Vec::new(),
        }
    }

    fn alice() -> User {
        User {
            id: Uuid::now_v7(),
            username: "alice".to_string(),
            email: "alice@example.com".to_string(),
            name: "Alice Liddell".to_string(),
            roles: vec![Role::Owner],
            status: UserStatus::Active,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    /// Every label a built-in template prints, with plausible values.
    fn realistic_labels() -> BTreeMap<String, String> {
        [
            ("name", "my-workspace"),
            ("workspace", "my-workspace"),
            ("workspace_owner_username", "alice"),
            ("template_name", "docker"),
            ("template_version_name", "v1.2.3"),
            ("template_version_message", "bump base image"),
            ("initiator", "bob"),
            ("reason", "initiated by user"),
            ("workspace_build_number", "42"),
            ("time_til_deletion", "7 days"),
            ("threshold", "90%"),
            ("volume", "/home/coder"),
            ("task", "fix-the-build"),
            ("account_name", "carol"),
            ("account_display_name", "Carol"),
            ("one_time_passcode", "123456"),
            ("expires_in", "15 minutes"),
            ("custom_title", "Hello"),
            ("custom_message", "A **custom** message"),
            ("message", "deprecated in favour of docker-v2"),
            ("environment", "prod"),
            ("plan_id", "plan_7"),
            ("audit", "not_null_customer_id"),
            ("model", "sales.orders"),
            ("owner", "bob"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn realistic_data() -> Value {
        json!({
            "error": "Error: terraform apply failed\n  exit status 1",
            "sql": "SELECT * FROM sales.orders WHERE customer_id IS NULL",
            "count": 3,
            "volumes": [{"path": "/home/coder", "threshold": "90%"}],
            "report_frequency": "week",
            "templates": [{
                "name": "docker",
                "display_name": "Docker",
                "failed_builds": 2,
                "total_builds": 10,
                "versions": [{
                    "template_version_name": "v1.2.3",
                    "failed_count": 2,
                    "failed_builds": [
                        {"workspace_owner_username": "alice", "workspace_name": "ws", "build_number": 7}
                    ]
                }]
            }]
        })
    }

    #[test]
    fn every_builtin_event_renders_for_a_user_and_for_a_target() {
        let user = alice();
        let labels = realistic_labels();
        let data = realistic_data();
        for spec in crate::catalog::builtin() {
            let event = event(spec.clone());
            for (who, payload) in [
                (
                    "a user",
                    build_payload(&event, Some(&user), &labels, &data, &[]),
                ),
                (
                    "a target",
                    build_payload(&event, None, &labels, &data, &["alerts".to_string()]),
                ),
            ] {
                let rendered = render(&event, &payload)
                    .unwrap_or_else(|e| panic!("{} for {who}: {e}", spec.name));
                assert!(!rendered.title.is_empty(), "{}: empty title", spec.name);
                assert!(!rendered.title.contains('\n'), "{}: title", spec.name);
                assert!(
                    !rendered.body_markdown.is_empty(),
                    "{}: empty body",
                    spec.name
                );
                assert_eq!(rendered.actions.len(), spec.actions.len(), "{}", spec.name);
                assert!(
                    !rendered.body_text.contains("**"),
                    "{}: {}",
                    spec.name,
                    rendered.body_text
                );
            }
        }
    }

    #[test]
    fn every_builtin_event_renders_with_no_optional_labels_or_data() {
        // Only the labels a template prints unguarded; everything optional is left out.
        let required = [
            "name",
            "task",
            "account_name",
            "audit",
            "one_time_passcode",
            "custom_title",
            "custom_message",
        ];
        let labels: BTreeMap<String, String> = realistic_labels()
            .into_iter()
            .filter(|(k, _)| required.contains(&k.as_str()))
            .collect();
        for spec in crate::catalog::builtin() {
            let event = event(spec.clone());
            let payload = build_payload(&event, Some(&alice()), &labels, &Value::Null, &[]);
            if let Err(e) = render(&event, &payload) {
                panic!("{}: {e}", spec.name);
            }
        }
    }

    #[test]
    fn workspace_deleted_reads_like_coders_example() {
        let event = crate::catalog::builtin()
            .iter()
            .find(|e| e.name == "workspace_deleted")
            .map(|spec| event(spec.clone()))
            .expect("workspace_deleted is built in");
        let labels = realistic_labels();
        let payload = build_payload(&event, Some(&alice()), &labels, &json!({}), &[]);
        let rendered = render(&event, &payload).unwrap();
        assert_eq!(rendered.title, "Workspace \"my-workspace\" deleted");
        assert!(rendered.body_markdown.starts_with("Hi Alice Liddell,\n\n"));
        assert!(
            rendered
                .body_text
                .contains("Your workspace my-workspace was deleted."),
            "{}",
            rendered.body_text
        );
        assert_eq!(
            rendered.actions,
            vec![
                Action {
                    label: "View workspaces".to_string(),
                    url: "/workspaces".to_string()
                },
                Action {
                    label: "View templates".to_string(),
                    url: "/templates".to_string()
                },
            ]
        );
    }

    #[test]
    fn context_exposes_user_labels_data_and_an_empty_base_url() {
        let user = alice();
        let e = event(spec(
            "{{ user.username }} / {{ labels.env }}",
            "{{ user.id }} {{ user.email }} {{ user.name }} {{ data.n + 1 }} [{{ base_url }}] {{ actions | length }}",
            &[("Open {{ labels.env }}", "{{ base_url }}/e/{{ labels.env }}")],
        ));
        let labels = BTreeMap::from([("env".to_string(), "prod".to_string())]);
        let payload = build_payload(&e, Some(&user), &labels, &json!({"n": 41}), &[]);
        let rendered = render(&e, &payload).unwrap();
        assert_eq!(rendered.title, "alice / prod");
        assert_eq!(
            rendered.body_markdown,
            format!("{} alice@example.com Alice Liddell 42 [] 1", user.id)
        );
        assert_eq!(
            rendered.actions,
            vec![Action {
                label: "Open prod".to_string(),
                url: "/e/prod".to_string()
            }]
        );
    }

    #[test]
    fn base_url_reaches_templates_and_makes_relative_action_urls_absolute() {
        let e = event(spec(
            "t",
            "[see]({{ base_url }}/runs)",
            &[
                ("Templated", "{{ base_url }}/e/{{ labels.env }}"),
                ("Relative", "/w/{{ labels.env }}"),
                ("Absolute", "https://other.example.com/x"),
                ("Protocol-relative", "//cdn.example.com/x"),
            ],
        ));
        let labels = BTreeMap::from([("env".to_string(), "prod".to_string())]);
        let payload = build_payload(&e, Some(&alice()), &labels, &json!({}), &[]);
        let overrides = overrides("base_url = \"https://herald.example.com/coder/\"\n");
        let rendered = render_for(&e, &overrides, None, &payload).unwrap();
        assert_eq!(
            rendered.body_markdown,
            "[see](https://herald.example.com/coder/runs)"
        );
        let urls: Vec<&str> = rendered.actions.iter().map(|a| a.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "https://herald.example.com/coder/e/prod",
                "https://herald.example.com/coder/w/prod",
                "https://other.example.com/x",
                "//cdn.example.com/x",
            ]
        );
        // Without it, URLs stay as the templates make them.
        let rendered = render_for(&e, &Overrides::default(), None, &payload).unwrap();
        assert_eq!(rendered.actions[0].url, "/e/prod");
        assert_eq!(rendered.actions[1].url, "/w/prod");
    }

    #[test]
    fn a_payload_without_user_fields_renders_them_empty() {
        let e = event(spec("[{{ user.username }}]", "[{{ user.email }}]", &[]));
        let rendered = render(&e, &json!({})).unwrap();
        assert_eq!(rendered.title, "[]");
        assert_eq!(rendered.body_markdown, "[]");
    }

    #[test]
    fn markdown_is_not_html_escaped() {
        let e = event(spec("{{ labels.t }}", "{{ labels.t }}", &[]));
        let payload = json!({"labels": {"t": "<b> & \"q\""}});
        let rendered = render(&e, &payload).unwrap();
        assert_eq!(rendered.title, "<b> & \"q\"");
        assert_eq!(rendered.body_markdown, "<b> & \"q\"");
    }

    #[test]
    fn the_title_is_trimmed_to_one_line() {
        let e = event(spec("\n  Build\n failed  {{ labels.x }}\n", "b", &[]));
        let rendered = render(&e, &json!({"labels": {"x": "again"}})).unwrap();
        assert_eq!(rendered.title, "Build failed again");
    }

    #[test]
    fn errors_name_the_template_that_failed() {
        let cases = [
            (spec("{{ labels.missing }}", "ok", &[]), "title"),
            (spec("ok", "line\n{{ labels.missing }}", &[]), "body"),
            (spec("ok", "{% if %}", &[]), "body"),
            (
                spec("ok", "ok", &[("ok", "ok"), ("{{ nope.x }}", "ok")]),
                "action 2 label",
            ),
            (spec("ok", "ok", &[("ok", "{{ 1 + }}")]), "action 1 url"),
        ];
        for (spec, template) in cases {
            let err = render(&event(spec), &json!({})).unwrap_err();
            assert_eq!(err.template, template);
            assert_eq!(err.event, "sample_event");
            let text = err.to_string();
            assert!(
                text.starts_with(&format!(
                    "cannot render the {template} template of event `sample_event`: "
                )),
                "{text}"
            );
            assert!(text.contains(&format!("(in {template}:")), "{text}");
            assert!(!text.contains('\n'), "{text}");
        }
    }

    #[test]
    fn printing_an_undefined_value_is_an_error_but_testing_one_is_not() {
        let e = event(spec(
            "{% if labels.x %}x{% endif %}t",
            "{{ labels.x }}",
            &[],
        ));
        let err = render(&e, &json!({"labels": {}})).unwrap_err();
        assert_eq!(err.template, "body");
        assert!(err.detail.contains("undefined"), "{}", err.detail);
    }

    // -----------------------------------------------------------------------------------------
    // Compiled-template cache
    // -----------------------------------------------------------------------------------------

    #[test]
    fn a_template_is_compiled_once_and_the_cache_is_bounded() {
        let cache = TemplateCache::new(2);
        let context = minijinja::Value::from_serialize(json!({"x": 1}));
        let render = |source: &str| cache.render(source, &context).unwrap();
        assert_eq!(render("a {{ x }}"), "a 1");
        assert_eq!(cache.len(), 1);
        assert_eq!(render("a {{ x }}"), "a 1");
        assert_eq!(cache.len(), 1, "the same source is not compiled again");
        assert_eq!(render("b {{ x + 1 }}"), "b 2");
        assert_eq!(cache.len(), 2);
        assert_eq!(render("c {{ x + 2 }}"), "c 3");
        assert_eq!(cache.len(), 1, "a full cache starts over");
        assert_eq!(render("a {{ x }}"), "a 1");
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn a_syntax_error_is_not_cached_and_names_no_source_text() {
        let cache = TemplateCache::new(4);
        let context = minijinja::Value::from_serialize(json!({}));
        let error = cache.render("ok {% if %}", &context).unwrap_err();
        assert_eq!(cache.len(), 0);
        let detail = describe(&error, Some("body"));
        assert!(detail.starts_with("syntax error: "), "{detail}");
        assert!(detail.ends_with(" (in body:1)"), "{detail}");
    }

    #[test]
    fn the_catalog_renders_alike_from_many_threads() {
        let labels = realistic_labels();
        let data = realistic_data();
        let user = alice();
        let cases: Vec<(EventTemplate, Value)> = crate::catalog::builtin()
            .iter()
            .map(|spec| {
                let e = event(spec.clone());
                let payload = build_payload(&e, Some(&user), &labels, &data, &[]);
                (e, payload)
            })
            .collect();
        let expected: Vec<Rendered> = cases.iter().map(|(e, p)| render(e, p).unwrap()).collect();
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..5 {
                        for ((e, p), want) in cases.iter().zip(&expected) {
                            assert_eq!(&render(e, p).unwrap(), want);
                        }
                    }
                });
            }
        });
    }

    // -----------------------------------------------------------------------------------------
    // HTML body
    // -----------------------------------------------------------------------------------------

    #[test]
    fn the_html_body_is_markdown_with_raw_html_escaped() {
        let e = event(spec("t", "Deleted by **{{ labels.who }}**.", &[]));
        let payload = json!({"labels": {"who": "<script>alert(1)</script>"}});
        let rendered = render(&e, &payload).unwrap();
        assert_eq!(
            rendered.body_html,
            "<p>Deleted by <strong>&lt;script&gt;alert(1)&lt;/script&gt;</strong>.</p>\n"
        );
        assert_eq!(rendered.body_text, "Deleted by <script>alert(1)</script>.");
    }

    // -----------------------------------------------------------------------------------------
    // Overrides
    // -----------------------------------------------------------------------------------------

    fn config(toml: &str) -> crate::config::Config {
        crate::config::Config::from_toml_str(toml, "herald.toml", &|_| None)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn overrides(toml: &str) -> Overrides {
        Overrides::from_config(&config(toml)).unwrap_or_else(|e| panic!("{e}"))
    }

    const PRECEDENCE: &str = r#"
[events.sample_event]
title_template = "Event: {{ title }}"

[events.other_event]
body_template = "never used for sample_event"

[[targets]]
type = "webhook"
name = "ops"
notify_on = ["sample_event"]
url = "http://hooks.example.com/ops"
body_template = "Ops body for {{ labels.env }}\n\n{{ body }}"

[[targets]]
type = "webhook"
name = "plain"
notify_on = ["sample_event"]
url = "http://hooks.example.com/plain"

[[users]]
username = "alice"
email = "alice@example.com"

[[users.targets]]
type = "webhook"
name = "ops"
notify_on = ["sample_event"]
url = "http://hooks.example.com/alice"
title_template = "Mine: {{ title }}"
body_template = "Mine only"
"#;

    #[test]
    fn a_target_override_beats_the_event_override_which_beats_the_catalog() {
        let overrides = overrides(PRECEDENCE);
        let e = event(spec(
            "Catalog title {{ labels.env }}",
            "Catalog **body**",
            &[("Open", "/e/{{ labels.env }}")],
        ));
        let payload = json!({"labels": {"env": "prod"}});
        let render = |target: Option<&str>| render_for(&e, &overrides, target, &payload).unwrap();

        let catalog = super::render(&e, &payload).unwrap();
        assert_eq!(catalog.title, "Catalog title prod");
        assert_eq!(catalog.body_markdown, "Catalog **body**");

        let everyone = render(None);
        assert_eq!(everyone.title, "Event: Catalog title prod");
        assert_eq!(
            everyone.body_markdown, "Catalog **body**",
            "no event body override"
        );
        assert_eq!(
            everyone.actions, catalog.actions,
            "actions are never overridden"
        );

        let ops = render(Some("ops"));
        assert_eq!(
            ops.title, "Event: Catalog title prod",
            "the target has no title"
        );
        assert_eq!(ops.body_markdown, "Ops body for prod\n\nCatalog **body**");
        assert_eq!(ops.body_text, "Ops body for prod\n\nCatalog body");
        assert_eq!(
            ops.body_html,
            "<p>Ops body for prod</p>\n<p>Catalog <strong>body</strong></p>\n"
        );

        let mine = render(Some("alice/ops"));
        assert_eq!(mine.title, "Mine: Event: Catalog title prod");
        assert_eq!(mine.body_markdown, "Mine only");

        assert_eq!(
            render(Some("plain")),
            everyone,
            "a target without templates"
        );
        assert_eq!(render(Some("nobody")), everyone, "an unknown target");
        assert!(!overrides.is_empty());
        assert!(Overrides::default().is_empty());
    }

    #[test]
    fn an_override_that_does_not_read_the_catalog_does_not_render_it() {
        let overrides = overrides(
            "[events.sample_event]\ntitle_template = \"Fixed\"\nbody_template = \"Fixed body\"\n",
        );
        let e = event(spec("{{ labels.missing }}", "{{ labels.missing }}", &[]));
        let rendered = render_for(&e, &overrides, None, &json!({})).unwrap();
        assert_eq!(rendered.title, "Fixed");
        assert_eq!(rendered.body_markdown, "Fixed body");
        assert!(render(&e, &json!({})).is_err());
    }

    #[test]
    fn an_override_error_at_delivery_names_its_config_key() {
        let overrides =
            overrides("[events.sample_event]\nbody_template = \"line one\\n{{ labels.nope }}\"\n");
        let e = event(spec("t", "b", &[]));
        let error = render_for(&e, &overrides, None, &json!({})).unwrap_err();
        assert_eq!(error.template, "events.sample_event.body_template");
        assert_eq!(error.event, "sample_event");
        assert!(
            error
                .detail
                .ends_with("(in events.sample_event.body_template:2)"),
            "{error}"
        );
        assert!(error.detail.contains("undefined"), "{error}");
    }

    #[test]
    fn a_broken_override_refuses_start_up_naming_its_key() {
        let cases = [
            (
                "[events.run_failure]\nbody_template = \"ok\\n{% if %}\"\n",
                "events.run_failure.body_template: invalid template: syntax error: ",
                " (line 2)",
            ),
            (
                "[[targets]]\ntype = \"webhook\"\nname = \"a\"\nnotify_on = [\"x\"]\n\
                 url = \"http://h/p\"\ntitle_template = \"{{ title \"\n",
                "targets[0].title_template: invalid template: syntax error: ",
                " (line 1)",
            ),
            (
                "[[users]]\nusername = \"u\"\nemail = \"u@x\"\n[[users.targets]]\n\
                 type = \"webhook\"\nname = \"a\"\nnotify_on = [\"x\"]\nurl = \"http://h/p\"\n\
                 body_template = \"{{ file_tail(labels.log, 5) }}\"\n",
                "users[0].targets[0].body_template: invalid template: file_tail(labels.log, 5)",
                "it never comes from event data",
            ),
        ];
        for (toml, starts, ends) in cases {
            let error = Overrides::from_config(&config(toml))
                .unwrap_err()
                .to_string();
            assert!(error.starts_with(starts), "{error}");
            assert!(error.ends_with(ends), "{error}");
        }
    }

    // -----------------------------------------------------------------------------------------
    // file_tail
    // -----------------------------------------------------------------------------------------

    fn log_with_lines(dir: &tempfile::TempDir, count: usize) -> String {
        let path = dir.path().join("pipeline.log");
        let text: String = (1..=count).map(|n| format!("log line {n}\n")).collect();
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    #[test]
    fn an_override_appends_the_tail_of_a_file_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_with_lines(&dir, 20);
        let overrides = overrides(&format!(
            "[events.sample_event]\nbody_template = '''{{{{ body }}}}\n\n```text\n\
             {{{{ file_tail(\"{log}\", 3) }}}}\n```'''\n"
        ));
        let e = event(spec("t", "Run failed.", &[]));
        let rendered = render_for(&e, &overrides, None, &json!({})).unwrap();
        assert_eq!(
            rendered.body_markdown,
            "Run failed.\n\n```text\nlog line 18\nlog line 19\nlog line 20\n```"
        );
        assert!(
            rendered
                .body_html
                .contains("<pre><code class=\"language-text\">log line 18\nlog line 19\n"),
            "{}",
            rendered.body_html
        );
    }

    #[test]
    fn file_tail_returns_at_most_a_thousand_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_with_lines(&dir, 1500);
        let overrides = overrides(&format!(
            "[events.sample_event]\nbody_template = '{{{{ file_tail(\"{log}\", 5000) }}}}'\n"
        ));
        let e = event(spec("t", "b", &[]));
        let body = render_for(&e, &overrides, None, &json!({}))
            .unwrap()
            .body_markdown;
        assert_eq!(body.lines().count(), MAX_TAIL_LINES);
        assert!(body.starts_with("log line 501\n"), "{}", &body[..20]);
    }

    #[test]
    fn a_missing_file_renders_a_note_instead_of_failing() {
        let overrides = overrides(
            "[events.sample_event]\nbody_template = '{{ body }} {{ file_tail(\"/nonexistent/pipeline.log\", 50) }}'\n",
        );
        let e = event(spec("t", "Run failed.", &[]));
        let rendered = render_for(&e, &overrides, None, &json!({})).unwrap();
        assert_eq!(
            rendered.body_markdown,
            "Run failed. (log /nonexistent/pipeline.log unavailable: No such file or directory \
             (os error 2))"
        );
    }

    #[test]
    fn a_catalog_template_cannot_read_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_with_lines(&dir, 3);
        // Even a path some override may read: the catalog's context carries event data.
        let overrides = overrides(&format!(
            "[events.sample_event]\ntitle_template = '{{{{ file_tail(\"{log}\", 1) }}}}'\n"
        ));
        for (body, path) in [
            ("{{ file_tail(\"/etc/passwd\", 5) }}", "/etc/passwd"),
            ("{{ file_tail(labels.log, 5) }}", log.as_str()),
        ] {
            let e = event(spec("t", body, &[]));
            let payload = json!({"labels": {"log": log}});
            let error = render_for(&e, &overrides, None, &payload).unwrap_err();
            assert_eq!(error.template, "body");
            assert!(
                error
                    .detail
                    .contains(&format!("file_tail(\"{path}\") is refused")),
                "{error}"
            );
        }
    }

    #[test]
    fn an_override_reads_only_the_paths_it_names_itself() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_with_lines(&dir, 3);
        // The title names the log; the body reaches for it through an alias and event data.
        let overrides = overrides(&format!(
            "[events.sample_event]\ntitle_template = '{{{{ file_tail(\"{log}\", 1) }}}}'\n\
             body_template = '{{% set tail = file_tail %}}{{{{ tail(labels.log, 5) }}}}'\n"
        ));
        let e = event(spec("t", "b", &[]));
        let payload = json!({"labels": {"log": log}});
        let error = render_for(&e, &overrides, None, &payload).unwrap_err();
        assert_eq!(error.template, "events.sample_event.body_template");
        assert!(
            error
                .detail
                .contains(&format!("file_tail(\"{log}\") is refused")),
            "{error}"
        );

        let overrides = overrides_without_body(&log);
        let rendered = render_for(&e, &overrides, None, &payload).unwrap();
        assert_eq!(rendered.title, "log line 3");
    }

    fn overrides_without_body(log: &str) -> Overrides {
        overrides(&format!(
            "[events.sample_event]\ntitle_template = '{{{{ file_tail(\"{log}\", 1) }}}}'\n"
        ))
    }

    // -----------------------------------------------------------------------------------------
    // Validation
    // -----------------------------------------------------------------------------------------

    fn builtin_events() -> Vec<EventTemplate> {
        crate::catalog::builtin()
            .iter()
            .map(|spec| event(spec.clone()))
            .collect()
    }

    #[test]
    fn the_builtin_catalog_validates_with_and_without_overrides() {
        let events = builtin_events();
        assert_eq!(validate_catalog(&events, &Overrides::default()), Ok(()));
        let overrides = overrides(
            r#"
[events.run_failure]
body_template = "{{ body }}\n\nOwner: {{ labels.pipeline_owner }}"

[[targets]]
type = "webhook"
name = "ops"
notify_on = ["audit_failure", "run_failure"]
url = "http://hooks.example.com/ops"
title_template = "[{{ labels.environment }}] {{ title }}"
"#,
        );
        assert_eq!(validate_catalog(&events, &overrides), Ok(()));
    }

    #[test]
    fn validation_reports_every_broken_template_once() {
        let mut events = builtin_events();
        events.push(event(EventSpec {
            name: "broken_event".to_string(),
            ..spec(
                "ok {{ labels.x }}",
                "{% if labels.x %}",
                &[("Open", "{{ data.url.path }}")],
            )
        }));
        let overrides = overrides(
            r#"
[events.run_failure]
title_template = "{{ title | no_such_filter }}"

[events.run_failuer]
body_template = "typo"

# Hides broken_event's broken body from a render with overrides; validation still finds it.
[events.broken_event]
body_template = "masked"

[[targets]]
type = "webhook"
name = "ops"
notify_on = ["run_end"]
url = "http://hooks.example.com/ops"
body_template = "{{ data.missing.deeper }}"
"#,
        );
        let errors = validate_catalog(&events, &overrides).unwrap_err();
        let texts: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let expected = [
            ("broken_event", "body", "syntax error"),
            ("broken_event", "action 1 url", "undefined"),
            ("run_end", "targets[0].body_template", "undefined"),
            (
                "run_failure",
                "events.run_failure.title_template",
                "no_such_filter",
            ),
            (
                "run_failuer",
                "[events.run_failuer]",
                "no event `run_failuer` in the catalog",
            ),
        ];
        assert_eq!(errors.len(), expected.len(), "{texts:#?}");
        for (event, template, detail) in expected {
            assert!(
                errors.iter().any(|e| e.event == event
                    && e.template == template
                    && e.detail.contains(detail)),
                "no {event} / {template} / {detail} in {texts:#?}"
            );
        }
    }

    #[test]
    fn sample_payload_has_every_label_the_templates_mention() {
        let e = event(spec(
            "{{ labels.a }}",
            "{% if labels.b_2 %}{{ labels.b_2 }}{% endif %}",
            &[("{{ labels.c }}", "/x/{{labels.d}}")],
        ));
        let payload = sample_payload(&e);
        assert_eq!(
            payload["labels"],
            json!({"a": "sample-a", "b_2": "sample-b_2", "c": "sample-c", "d": "sample-d"})
        );
        assert_eq!(payload["data"], json!({"error": "sample error"}));
        assert_eq!(payload["user_username"], "");
        assert!(render(&e, &payload).is_ok());
    }
}
