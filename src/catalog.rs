//! The built-in event catalog (`assets/events.toml`, DESIGN §3) and its parser.
//!
//! The catalog is data so that wording can change without touching code. [`parse`] checks what
//! serde cannot (unique snake_case names, non-empty templates, labels declared once), and every
//! error names the event, the field and the TOML line, so a broken catalog is fixed from one
//! message. Each event declares the labels its templates read ([`LabelSpec`]): the contract
//! enqueue checks a producer's labels against (DESIGN §3).

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::OnceLock;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::model::{Action, EventKind, EventSpec, LabelSpec, Role};

/// The catalog shipped in the binary.
const BUILTIN_SOURCE: &str = include_str!("../assets/events.toml");

/// Every built-in event, in catalog order; parsed once.
///
/// # Panics
///
/// If the embedded `assets/events.toml` is invalid, which the tests of this module rule out.
pub fn builtin() -> &'static [EventSpec] {
    static BUILTIN: OnceLock<Vec<EventSpec>> = OnceLock::new();
    BUILTIN.get_or_init(|| {
        parse(BUILTIN_SOURCE).unwrap_or_else(|err| {
            panic!("the built-in event catalog assets/events.toml is invalid: {err}")
        })
    })
}

/// The labels the built-in event `event` declares; none for an event this binary's catalog
/// lacks (one another version upserted). The store keeps no labels: it fills them in from here.
pub fn declared_labels(event: &str) -> Vec<LabelSpec> {
    builtin()
        .iter()
        .find(|spec| spec.name == event)
        .map(|spec| spec.labels.clone())
        .unwrap_or_default()
}

/// Parses and validates a catalog in the `assets/events.toml` format.
pub fn parse(text: &str) -> Result<Vec<EventSpec>, CatalogError> {
    let file: CatalogFile =
        toml::from_str(text).map_err(|err| CatalogError::from_toml(text, &err))?;
    let mut first_line_of: HashMap<String, usize> = HashMap::new();
    let mut events = Vec::with_capacity(file.events.len());
    for raw in file.events {
        let name = raw.name.get_ref().clone();
        let line = line_at(text, raw.name.span().start);
        if !is_snake_case(&name) {
            return Err(CatalogError::InvalidName { name, line });
        }
        if let Some(&first_line) = first_line_of.get(&name) {
            return Err(CatalogError::DuplicateName {
                name,
                line,
                first_line,
            });
        }
        first_line_of.insert(name.clone(), line);
        events.push(raw.into_spec(text)?);
    }
    Ok(events)
}

/// Why a catalog was refused. Every message is one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// The text is not TOML, or does not have the catalog's shape (unknown key, missing key,
    /// wrong type, unknown role or kind).
    #[error("{}{message}", Location { line: *line, event: event.as_ref(), field: field.as_deref() })]
    Invalid {
        line: Option<usize>,
        event: Option<EventRef>,
        field: Option<String>,
        message: String,
    },
    /// An event name that is not a snake_case key.
    #[error(
        "line {line}: event name `{name}` is not snake_case: use lowercase ASCII letters, digits \
         and `_`, starting with a letter"
    )]
    InvalidName { name: String, line: usize },
    /// Two events with one name.
    #[error("line {line}: event `{name}` is declared twice (first at line {first_line})")]
    DuplicateName {
        name: String,
        line: usize,
        first_line: usize,
    },
    /// A template or label that is empty or only whitespace.
    #[error("line {line}: event `{event}`: `{field}` is empty")]
    EmptyField {
        event: String,
        field: String,
        line: usize,
    },
    /// A declared label whose name templates could not read as `labels.NAME`.
    #[error(
        "line {line}: event `{event}`: label name `{name}` is not snake_case: use lowercase \
         ASCII letters, digits and `_`, starting with a letter"
    )]
    InvalidLabelName {
        event: String,
        name: String,
        line: usize,
    },
    /// One label declared twice for one event.
    #[error(
        "line {line}: event `{event}` declares the label `{name}` twice (first at line {first_line})"
    )]
    DuplicateLabel {
        event: String,
        name: String,
        line: usize,
        first_line: usize,
    },
}

/// Which event an error is about: its name, or its position when it has no usable name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventRef {
    Named(String),
    /// 1-based position among the `[[events]]`.
    Position(usize),
}

impl fmt::Display for EventRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventRef::Named(name) => write!(f, "`{name}`"),
            EventRef::Position(position) => write!(f, "#{position}"),
        }
    }
}

/// The `line 3, event `x`, field `y`: ` prefix of [`CatalogError::Invalid`].
struct Location<'a> {
    line: Option<usize>,
    event: Option<&'a EventRef>,
    field: Option<&'a str>,
}

impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(line) = self.line {
            parts.push(format!("line {line}"));
        }
        if let Some(event) = self.event {
            parts.push(format!("event {event}"));
        }
        if let Some(field) = self.field {
            parts.push(format!("field `{field}`"));
        }
        if parts.is_empty() {
            Ok(())
        } else {
            write!(f, "{}: ", parts.join(", "))
        }
    }
}

impl CatalogError {
    fn from_toml(text: &str, err: &toml::de::Error) -> Self {
        let span = err.span();
        let (event, field) = span
            .as_ref()
            .map(|span| locate(text, span.start))
            .unwrap_or_default();
        CatalogError::Invalid {
            line: span.map(|span| line_at(text, span.start)),
            event,
            field,
            // toml's messages may span lines ("…\nexpected …"); ours must not.
            message: err
                .message()
                .lines()
                .map(str::trim)
                .filter(|part| !part.is_empty())
                .collect::<Vec<_>>()
                .join("; "),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    events: Vec<RawEvent>,
}

/// One `[[events]]` table as written; spans give validation errors their line.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    name: Spanned<String>,
    group: Spanned<String>,
    title: Spanned<String>,
    body: Spanned<String>,
    /// Required, unlike the flags: who hears of an event is too important to default.
    audience: Vec<Role>,
    #[serde(default = "yes")]
    enabled_by_default: bool,
    #[serde(default = "system_kind")]
    kind: EventKind,
    #[serde(default = "yes")]
    inbox: bool,
    #[serde(default)]
    reaches_suspended: bool,
    #[serde(default)]
    labels: Vec<RawLabel>,
    #[serde(default)]
    actions: Vec<RawAction>,
}

/// One entry of an event's `labels = [...]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLabel {
    name: Spanned<String>,
    /// Stated for every label, never defaulted: it decides whether enqueue refuses a message.
    required: bool,
    description: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAction {
    label: Spanned<String>,
    url: Spanned<String>,
}

fn yes() -> bool {
    true
}

fn system_kind() -> EventKind {
    EventKind::System
}

impl RawEvent {
    fn into_spec(self, text: &str) -> Result<EventSpec, CatalogError> {
        let name = self.name.into_inner();
        let mut templates = vec![
            ("group".to_string(), &self.group),
            ("title".to_string(), &self.title),
            ("body".to_string(), &self.body),
        ];
        for (index, action) in self.actions.iter().enumerate() {
            templates.push((format!("actions[{index}].label"), &action.label));
            templates.push((format!("actions[{index}].url"), &action.url));
        }
        for (index, label) in self.labels.iter().enumerate() {
            templates.push((format!("labels[{index}].description"), &label.description));
        }
        if let Some((field, value)) = templates
            .into_iter()
            .find(|(_, value)| value.get_ref().trim().is_empty())
        {
            return Err(CatalogError::EmptyField {
                event: name,
                field,
                line: line_at(text, value.span().start),
            });
        }
        let labels = labels_of(&name, self.labels, text)?;
        Ok(EventSpec {
            name,
            group: self.group.into_inner(),
            title_template: self.title.into_inner(),
            body_template: self.body.into_inner(),
            actions: self
                .actions
                .into_iter()
                .map(|action| Action {
                    label: action.label.into_inner(),
                    url: action.url.into_inner(),
                })
                .collect(),
            audience_roles: self.audience,
            enabled_by_default: self.enabled_by_default,
            kind: self.kind,
            inbox: self.inbox,
            reaches_suspended: self.reaches_suspended,
            labels,
        })
    }
}

/// An event's declared labels, each a snake_case name declared once.
fn labels_of(event: &str, raw: Vec<RawLabel>, text: &str) -> Result<Vec<LabelSpec>, CatalogError> {
    let mut first_line_of: HashMap<String, usize> = HashMap::new();
    let mut labels = Vec::with_capacity(raw.len());
    for label in raw {
        let line = line_at(text, label.name.span().start);
        let name = label.name.into_inner();
        if !is_snake_case(&name) {
            return Err(CatalogError::InvalidLabelName {
                event: event.to_string(),
                name,
                line,
            });
        }
        if let Some(&first_line) = first_line_of.get(&name) {
            return Err(CatalogError::DuplicateLabel {
                event: event.to_string(),
                name,
                line,
                first_line,
            });
        }
        first_line_of.insert(name.clone(), line);
        labels.push(LabelSpec {
            name,
            required: label.required,
            description: label.description.into_inner(),
        });
    }
    Ok(labels)
}

/// `^[a-z][a-z0-9_]*$`, by hand to spare a regex dependency.
fn is_snake_case(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|first| first.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// 1-based line of a byte offset.
fn line_at(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The event and field around a byte offset, when the text is well-formed enough to tell.
fn locate(text: &str, offset: usize) -> (Option<EventRef>, Option<String>) {
    let Ok(document) = DeTable::parse(text) else {
        return (None, None);
    };
    let Some(events) = document
        .get_ref()
        .get("events")
        .and_then(|events| events.get_ref().as_array())
    else {
        return (None, None);
    };
    for (index, event) in events.iter().enumerate() {
        let Some(table) = event.get_ref().as_table() else {
            continue;
        };
        if !contains(&extent(event), offset) {
            continue;
        }
        let event_ref = match table.get("name").and_then(|name| name.get_ref().as_str()) {
            Some(name) => EventRef::Named(name.to_string()),
            None => EventRef::Position(index + 1),
        };
        let field = table
            .iter()
            .find(|(_, value)| contains(&extent(value), offset))
            .map(|(key, _)| key.get_ref().to_string());
        return (Some(event_ref), field);
    }
    (None, None)
}

/// The bytes a value covers with everything inside it: toml spans a `[[header]]` table by its
/// header alone, so its keys and sub-tables widen it.
fn extent(value: &Spanned<DeValue<'_>>) -> Range<usize> {
    let widen =
        |acc: Range<usize>, span: Range<usize>| acc.start.min(span.start)..acc.end.max(span.end);
    match value.get_ref() {
        DeValue::Table(table) => table.iter().fold(value.span(), |acc, (key, value)| {
            widen(widen(acc, key.span()), extent(value))
        }),
        DeValue::Array(items) => items
            .iter()
            .fold(value.span(), |acc, item| widen(acc, extent(item))),
        _ => value.span(),
    }
}

fn contains(span: &Range<usize>, offset: usize) -> bool {
    span.start <= offset && offset < span.end
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Every event DESIGN §3 requires, by the name producers use.
    const REQUIRED: &[&str] = &[
        // Coder workspace events
        "workspace_created",
        "workspace_deleted",
        "workspace_autobuild_failed",
        "workspace_manual_build_failed",
        "workspace_manually_updated",
        "workspace_autoupdated",
        "workspace_marked_dormant",
        "workspace_marked_for_deletion",
        "workspace_out_of_memory",
        "workspace_out_of_disk",
        // Coder task events
        "task_idle",
        "task_working",
        // Coder template events
        "template_deleted",
        "template_deprecated",
        "template_workspace_builds_failed_report",
        // Coder user events, to admins
        "user_account_created",
        "user_account_deleted",
        "user_account_suspended",
        "user_account_activated",
        // Coder user events, to the user
        "your_account_suspended",
        "your_account_activated",
        "user_password_reset",
        // Coder notification events
        "test_notification",
        "custom_notification",
        // SQLMesh events
        "apply_start",
        "apply_end",
        "apply_failure",
        "run_start",
        "run_end",
        "run_failure",
        "audit_failure",
        "migration_start",
        "migration_end",
        "migration_failure",
    ];

    const SQLMESH: &[&str] = &[
        "apply_start",
        "apply_end",
        "apply_failure",
        "run_start",
        "run_end",
        "run_failure",
        "audit_failure",
        "migration_start",
        "migration_end",
        "migration_failure",
    ];

    fn event(name: &str) -> &'static EventSpec {
        builtin()
            .iter()
            .find(|event| event.name == name)
            .unwrap_or_else(|| panic!("no built-in event `{name}`"))
    }

    /// A minimal valid event, with `extra` lines appended to its table.
    fn one_event(name: &str, extra: &str) -> String {
        format!(
            "[[events]]\nname = \"{name}\"\ngroup = \"G\"\ntitle = \"T\"\nbody = \"B\"\naudience = []\n{extra}"
        )
    }

    #[test]
    fn catalog_holds_every_event_of_both_seeds() {
        let mut missing = Vec::new();
        for name in REQUIRED {
            if !builtin().iter().any(|event| event.name == *name) {
                missing.push(*name);
            }
        }
        assert!(missing.is_empty(), "missing events: {missing:?}");
        let extra: Vec<&str> = builtin()
            .iter()
            .map(|event| event.name.as_str())
            .filter(|name| !REQUIRED.contains(name))
            .collect();
        assert!(extra.is_empty(), "events no seed asks for: {extra:?}");
    }

    #[test]
    fn names_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for event in builtin() {
            assert!(
                is_snake_case(&event.name),
                "`{}` is not snake_case",
                event.name
            );
            assert!(seen.insert(&event.name), "`{}` appears twice", event.name);
        }
    }

    #[test]
    fn builtin_is_parsed_once() {
        assert!(std::ptr::eq(builtin(), builtin()));
    }

    #[test]
    fn one_time_passcode_never_goes_to_the_inbox() {
        assert!(!event("user_password_reset").inbox);
        for event in builtin().iter().filter(|e| e.name != "user_password_reset") {
            assert!(event.inbox, "`{}` should reach the inbox", event.name);
        }
    }

    #[test]
    fn user_events_reach_owners_and_user_admins() {
        for name in [
            "user_account_created",
            "user_account_deleted",
            "user_account_suspended",
            "user_account_activated",
        ] {
            assert_eq!(
                event(name).audience_roles,
                [Role::Owner, Role::UserAdmin],
                "{name}"
            );
        }
    }

    #[test]
    fn template_events_reach_template_admins() {
        for name in [
            "template_deleted",
            "template_deprecated",
            "template_workspace_builds_failed_report",
        ] {
            assert_eq!(event(name).audience_roles, [Role::TemplateAdmin], "{name}");
        }
    }

    #[test]
    fn every_other_event_reaches_only_the_users_named() {
        for event in builtin() {
            if event.name.starts_with("user_account_") || event.name.starts_with("template_") {
                continue;
            }
            assert!(
                event.audience_roles.is_empty(),
                "`{}` has audience {:?}",
                event.name,
                event.audience_roles
            );
        }
    }

    #[test]
    fn only_news_of_the_users_own_account_reaches_them_while_suspended() {
        for event in builtin() {
            let expected = matches!(
                event.name.as_str(),
                "your_account_suspended" | "your_account_activated"
            );
            assert_eq!(event.reaches_suspended, expected, "{}", event.name);
        }
    }

    #[test]
    fn only_task_working_is_disabled_by_default() {
        for event in builtin() {
            assert_eq!(
                event.enabled_by_default,
                event.name != "task_working",
                "{}",
                event.name
            );
        }
    }

    #[test]
    fn custom_notification_shows_the_callers_title_and_message() {
        let custom = event("custom_notification");
        assert_eq!(custom.kind, EventKind::Custom);
        assert_eq!(custom.title_template, "{{ labels.custom_title }}");
        assert_eq!(custom.body_template, "{{ labels.custom_message }}");
        for event in builtin().iter().filter(|e| e.name != "custom_notification") {
            assert_eq!(event.kind, EventKind::System, "{}", event.name);
        }
    }

    #[test]
    fn test_notification_is_a_notification_event() {
        assert_eq!(event("test_notification").group, "Notification Events");
    }

    #[test]
    fn sqlmesh_events_form_their_own_group() {
        for event in builtin() {
            let is_sqlmesh = SQLMESH.contains(&event.name.as_str());
            assert_eq!(
                event.group == "SQLMesh Events",
                is_sqlmesh,
                "{}",
                event.name
            );
        }
    }

    #[test]
    fn failures_show_the_error_in_a_code_block() {
        for name in [
            "apply_failure",
            "run_failure",
            "migration_failure",
            "audit_failure",
        ] {
            let body = &event(name).body_template;
            assert!(body.contains("{% if data.error %}"), "{name}");
            assert!(body.contains("```text\n{{ data.error }}\n```"), "{name}");
        }
    }

    #[test]
    fn audit_failure_shows_audit_model_environment_owner_and_query() {
        let audit = event("audit_failure");
        let text = format!("{}\n{}", audit.title_template, audit.body_template);
        for needle in [
            "labels.audit",
            "labels.model",
            "labels.environment",
            "labels.owner",
            "```sql\n{{ data.sql }}\n```",
        ] {
            assert!(text.contains(needle), "audit_failure lacks {needle}");
        }
    }

    #[test]
    fn builds_failed_report_lists_the_failed_builds_from_data() {
        let body = &event("template_workspace_builds_failed_report").body_template;
        assert!(body.contains("{% for template in data.templates %}"));
        assert!(body.contains("{% for build in version.failed_builds %}"));
    }

    #[test]
    fn template_delimiters_are_balanced() {
        for event in builtin() {
            let mut texts = vec![&event.title_template, &event.body_template];
            for action in &event.actions {
                texts.extend([&action.label, &action.url]);
            }
            for text in texts {
                for (open, close) in [("{{", "}}"), ("{%", "%}"), ("{#", "#}")] {
                    assert_eq!(
                        text.matches(open).count(),
                        text.matches(close).count(),
                        "`{}`: unbalanced {open} {close} in {text:?}",
                        event.name
                    );
                }
                let ifs = text.matches("{% if ").count();
                let endifs = text.matches("{% endif %}").count();
                assert_eq!(ifs, endifs, "`{}`: {{% if %}} without end", event.name);
                let fors = text.matches("{% for ").count();
                let endfors = text.matches("{% endfor %}").count();
                assert_eq!(fors, endfors, "`{}`: {{% for %}} without end", event.name);
            }
        }
    }

    /// `event` as stored, for rendering.
    fn stored(spec: &EventSpec) -> crate::model::EventTemplate {
        crate::model::EventTemplate {
            id: uuid::Uuid::nil(),
            spec: spec.clone(),
            method: None,
        }
    }

    /// `sample-NAME` for each of `names`.
    fn sample<'a>(names: impl Iterator<Item = &'a str>) -> BTreeMap<String, String> {
        names
            .map(|n| (n.to_string(), format!("sample-{n}")))
            .collect()
    }

    /// Renders `event` with `labels` and no data, to a user and to a target.
    fn render_with(
        event: &crate::model::EventTemplate,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), crate::render::RenderError> {
        let user = crate::model::User {
            id: uuid::Uuid::nil(),
            username: "bob".into(),
            email: "bob@example.com".into(),
            name: String::new(),
            roles: vec![Role::Member],
            status: crate::model::UserStatus::Active,
            created_at: chrono::DateTime::UNIX_EPOCH,
            updated_at: chrono::DateTime::UNIX_EPOCH,
        };
        let data = serde_json::json!({});
        for recipient in [Some(&user), None] {
            let payload = crate::routing::build_payload(event, recipient, labels, &data, &[]);
            crate::render::render(event, &payload)?;
        }
        Ok(())
    }

    #[test]
    fn every_label_a_template_reads_is_declared_and_every_declared_one_is_read() {
        for event in builtin() {
            let read = crate::render::labels_read(event, &crate::render::Overrides::default());
            let declared: std::collections::BTreeSet<String> =
                event.labels.iter().map(|l| l.name.clone()).collect();
            let undeclared: Vec<&String> = read.difference(&declared).collect();
            assert!(
                undeclared.is_empty(),
                "`{}` reads undeclared labels {undeclared:?}: add them to its `labels`",
                event.name
            );
            let unread: Vec<&String> = declared.difference(&read).collect();
            assert!(
                unread.is_empty(),
                "`{}` declares labels no template reads: {unread:?}",
                event.name
            );
        }
    }

    #[test]
    fn every_event_renders_with_only_its_required_labels() {
        for event in builtin() {
            let labels = sample(event.required_labels().map(|l| l.name.as_str()));
            if let Err(e) = render_with(&stored(event), &labels) {
                panic!(
                    "`{}` with only its required labels {:?}: {e}; mark the label it needs \
                     `required = true` or guard it with {{% if %}}",
                    event.name,
                    labels.keys().collect::<Vec<_>>()
                );
            }
        }
    }

    #[test]
    fn every_required_label_is_really_needed() {
        for event in builtin() {
            let all = sample(event.labels.iter().map(|l| l.name.as_str()));
            assert_eq!(render_with(&stored(event), &all), Ok(()), "{}", event.name);
            for required in event.required_labels() {
                let mut without = all.clone();
                without.remove(&required.name);
                assert!(
                    render_with(&stored(event), &without).is_err(),
                    "`{}` renders without `{}`: mark it `required = false`",
                    event.name,
                    required.name
                );
            }
        }
    }

    #[test]
    fn every_label_says_what_it_is() {
        for event in builtin() {
            for label in &event.labels {
                assert!(
                    !label.description.ends_with('.') && label.description.len() >= 8,
                    "`{}` label `{}`: describe it in a short phrase without a full stop",
                    event.name,
                    label.name
                );
            }
        }
    }

    #[test]
    fn producers_must_give_the_identifying_labels() {
        let required = |name: &str| -> Vec<&str> {
            event(name)
                .required_labels()
                .map(|l| l.name.as_str())
                .collect()
        };
        assert_eq!(required("user_account_created"), ["account_name"]);
        assert_eq!(required("workspace_deleted"), ["name"]);
        assert_eq!(required("task_idle"), ["task"]);
        assert_eq!(required("user_password_reset"), ["one_time_passcode"]);
        assert_eq!(required("audit_failure"), ["audit"]);
        assert_eq!(
            required("custom_notification"),
            ["custom_title", "custom_message"]
        );
        for name in ["run_failure", "test_notification", "migration_start"] {
            assert!(required(name).is_empty(), "{name}");
        }
    }

    #[test]
    fn declared_labels_are_looked_up_by_event_name() {
        assert_eq!(
            declared_labels("user_account_created"),
            event("user_account_created").labels
        );
        assert!(declared_labels("no_such_event").is_empty());
    }

    #[test]
    fn labels_are_refused_unless_snake_case_and_declared_once() {
        let with = |labels: &str| parse(&one_event("labelled", &format!("labels = [{labels}]\n")));
        let err =
            with(r#"{ name = "Name", required = true, description = "the name" }"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 7: event `labelled`: label name `Name` is not snake_case: use lowercase ASCII \
             letters, digits and `_`, starting with a letter"
        );
        let twice = r#"{ name = "x", required = true, description = "one x" },
  { name = "x", required = false, description = "another x" }"#;
        assert_eq!(
            with(twice).unwrap_err().to_string(),
            "line 8: event `labelled` declares the label `x` twice (first at line 7)"
        );
        let blank = r#"{ name = "x", required = true, description = " " }"#;
        assert_eq!(
            with(blank).unwrap_err().to_string(),
            "line 7: event `labelled`: `labels[0].description` is empty"
        );
        let unstated = r#"{ name = "x", description = "an x" }"#;
        let message = with(unstated).unwrap_err().to_string();
        assert!(
            message.contains("event `labelled`, field `labels`: missing field `required`"),
            "{message}"
        );
        let unknown = r#"{ name = "x", required = true, description = "an x", default = "y" }"#;
        let message = with(unknown).unwrap_err().to_string();
        assert!(message.contains("unknown field `default`"), "{message}");
    }

    #[test]
    fn omitted_flags_take_their_defaults() {
        let events = parse(&one_event("plain", "")).unwrap();
        let plain = &events[0];
        assert!(plain.enabled_by_default);
        assert!(plain.inbox);
        assert!(!plain.reaches_suspended);
        assert_eq!(plain.kind, EventKind::System);
        assert!(plain.actions.is_empty());
        assert!(plain.labels.is_empty());
    }

    #[test]
    fn every_field_is_read() {
        let text = "[[events]]
name = \"full\"
group = \"G\"
title = \"T\"
body = \"B\"
audience = [\"oncall\", \"member\"]
enabled_by_default = false
kind = \"custom\"
inbox = false
reaches_suspended = true
labels = [{ name = \"topic\", required = true, description = \"what it is about\" }]
[[events.actions]]
label = \"Open\"
url = \"{{ base_url }}/x\"
";
        let events = parse(text).unwrap();
        assert_eq!(
            events,
            [EventSpec {
                name: "full".into(),
                group: "G".into(),
                title_template: "T".into(),
                body_template: "B".into(),
                actions: vec![Action {
                    label: "Open".into(),
                    url: "{{ base_url }}/x".into(),
                }],
                audience_roles: vec![Role::Oncall, Role::Member],
                enabled_by_default: false,
                kind: EventKind::Custom,
                inbox: false,
                reaches_suspended: true,
                labels: vec![LabelSpec {
                    name: "topic".into(),
                    required: true,
                    description: "what it is about".into(),
                }],
            }]
        );
    }

    #[test]
    fn duplicate_names_are_refused() {
        let text = format!("{}\n{}", one_event("twice", ""), one_event("twice", ""));
        let err = parse(&text).unwrap_err();
        assert_eq!(
            err,
            CatalogError::DuplicateName {
                name: "twice".into(),
                line: 9,
                first_line: 2,
            }
        );
        assert_eq!(
            err.to_string(),
            "line 9: event `twice` is declared twice (first at line 2)"
        );
    }

    #[test]
    fn names_that_are_not_snake_case_are_refused() {
        for name in [
            "",
            "Workspace",
            "workspace-deleted",
            "1st_event",
            "_private",
            "has space",
            "café",
        ] {
            let err = parse(&one_event(name, "")).unwrap_err();
            assert_eq!(
                err,
                CatalogError::InvalidName {
                    name: name.into(),
                    line: 2,
                },
                "{name:?}"
            );
        }
        assert!(parse(&one_event("a1_b2", "")).is_ok());
    }

    #[test]
    fn unknown_keys_are_refused_naming_the_key() {
        let err = parse(&one_event("colourful", "colour = \"red\"\n")).unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with("line 7, event `colourful`: unknown field `colour`"),
            "{message}"
        );
    }

    #[test]
    fn unknown_keys_in_actions_are_refused_naming_the_key() {
        let text = one_event(
            "linked",
            "[[events.actions]]\nlabel = \"L\"\nlink = \"x\"\n",
        );
        let message = parse(&text).unwrap_err().to_string();
        assert!(
            message.starts_with("line 9, event `linked`, field `actions`: unknown field `link`"),
            "{message}"
        );
    }

    #[test]
    fn unknown_roles_are_refused_naming_the_role() {
        let text = one_event("guarded", "").replace("audience = []", "audience = [\"admin\"]");
        let message = parse(&text).unwrap_err().to_string();
        assert!(
            message.starts_with(
                "line 6, event `guarded`, field `audience`: unknown role `admin`; expected one of: owner"
            ),
            "{message}"
        );
    }

    #[test]
    fn wrong_types_are_refused_naming_the_field() {
        let text = one_event("typed", "inbox = \"no\"\n");
        let message = parse(&text).unwrap_err().to_string();
        assert!(
            message.starts_with("line 7, event `typed`, field `inbox`: invalid type"),
            "{message}"
        );
    }

    #[test]
    fn missing_fields_are_refused_naming_the_event() {
        let text = format!(
            "{}\n{}",
            one_event("fine", ""),
            one_event("silent", "").replace("audience = []\n", "")
        );
        let message = parse(&text).unwrap_err().to_string();
        assert_eq!(message, "line 8, event `silent`: missing field `audience`");
    }

    #[test]
    fn events_without_a_name_are_named_by_position() {
        let text = format!(
            "{}\n{}",
            one_event("first", ""),
            one_event("second", "").replace("name = \"second\"\n", "")
        );
        let err = parse(&text).unwrap_err();
        assert!(
            matches!(
                &err,
                CatalogError::Invalid {
                    event: Some(EventRef::Position(2)),
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "line 8, event #2: missing field `name`");
    }

    #[test]
    fn empty_templates_are_refused_naming_the_field() {
        let text = one_event("blank", "").replace("title = \"T\"", "title = \"  \"");
        assert_eq!(
            parse(&text).unwrap_err().to_string(),
            "line 4: event `blank`: `title` is empty"
        );
        let text = one_event("no_url", "[[events.actions]]\nlabel = \"L\"\nurl = \"\"\n");
        assert_eq!(
            parse(&text).unwrap_err().to_string(),
            "line 9: event `no_url`: `actions[0].url` is empty"
        );
    }

    #[test]
    fn syntax_errors_give_the_line_on_one_line() {
        let text = one_event("broken", "title2 = \"unterminated\n");
        let err = parse(&text).unwrap_err();
        let message = err.to_string();
        assert!(message.starts_with("line 7"), "{message}");
        assert!(!message.contains('\n'), "{message:?}");
    }

    #[test]
    fn a_file_without_events_is_refused() {
        let message = parse("[[event]]\nname = \"x\"\n").unwrap_err().to_string();
        assert!(
            message.starts_with("line 1: unknown field `event`"),
            "{message}"
        );
        assert!(parse("").is_err());
        assert_eq!(parse("events = []\n").unwrap(), []);
    }
}
