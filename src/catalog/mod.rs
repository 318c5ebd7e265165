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
const BUILTIN_SOURCE: &str = include_str!("../../assets/events.toml");

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
                .map(|action| Action::new(action.label.into_inner(), action.url.into_inner()))
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
mod tests;
