//! The config file as a tree of keys and values that each keep their place in the file, read
//! with toml's public spanned API ([`toml::de::DeTable`]), and the readers that turn its values
//! into settings with errors that give the line.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::interpolate::{InterpolationError, interpolate};
use super::raw::Raw;
use super::{ConfigError, Origin};

/// A table's entries in file order.
pub(super) type Entries = Vec<(Located<String>, Located<Node>)>;

/// A TOML value that keeps the location of every nested key and value, so that any error can
/// give its line; the file is walked by hand against the settings table.
#[derive(Debug)]
pub(super) enum Node {
    String(String),
    Integer(i64),
    Float,
    Boolean(bool),
    Datetime,
    Array(Vec<Located<Node>>),
    Table(Entries),
}

impl Node {
    /// What the value is, for "expected …, found …".
    pub(super) fn kind(&self) -> &'static str {
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

/// A key or value with its byte span in the file. A table that exists only through a dotted
/// key or header (`[email]` implied by `[email.tls]`) is spanned by that key.
#[derive(Debug)]
pub(super) struct Located<T> {
    pub(super) span: Range<usize>,
    pub(super) value: T,
}

/// The file being read: its text (for lines), its name and the environment for `${VAR}`.
pub(super) struct Source<'a> {
    pub(super) text: &'a str,
    pub(super) file: &'a str,
    pub(super) env: &'a dyn Fn(&str) -> Option<String>,
}

impl Source<'_> {
    /// The file's top-level entries, or the syntax error that stops the parser.
    pub(super) fn document(&self) -> Result<Entries, ConfigError> {
        let root = DeTable::parse(self.text)
            .map_err(|error| self.syntax_error(error.span(), error.message()))?;
        self.entries(root.into_inner())
    }

    fn entries(&self, table: DeTable<'_>) -> Result<Entries, ConfigError> {
        table
            .into_iter()
            .map(|(key, value)| {
                let key = Located {
                    span: key.span(),
                    value: key.into_inner().into_owned(),
                };
                Ok((key, self.node(value)?))
            })
            .collect()
    }

    fn node(&self, value: Spanned<DeValue<'_>>) -> Result<Located<Node>, ConfigError> {
        let span = value.span();
        let node = match value.into_inner() {
            DeValue::String(text) => Node::String(text.into_owned()),
            // TOML integers are 64-bit; the parser keeps the digits, so the range is ours to check.
            DeValue::Integer(integer) => i64::from_str_radix(integer.as_str(), integer.radix())
                .map(Node::Integer)
                .map_err(|error| self.syntax_error(Some(span.clone()), &error.to_string()))?,
            DeValue::Float(_) => Node::Float,
            DeValue::Boolean(value) => Node::Boolean(value),
            DeValue::Datetime(_) => Node::Datetime,
            DeValue::Array(items) => Node::Array(
                items
                    .into_iter()
                    .map(|item| self.node(item))
                    .collect::<Result<_, _>>()?,
            ),
            DeValue::Table(table) => Node::Table(self.entries(table)?),
        };
        Ok(Located { span, value: node })
    }

    fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    /// The file and the line a span starts on.
    pub(super) fn at(&self, span: Range<usize>) -> Origin {
        Origin::File {
            file: self.file.to_string(),
            line: Some(self.line(span.start)),
        }
    }

    fn syntax_error(&self, span: Option<Range<usize>>, message: &str) -> ConfigError {
        // One line, whatever the parser wrote.
        let message = message
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        ConfigError::Syntax {
            origin: Origin::File {
                file: self.file.to_string(),
                line: span.map(|span| self.line(span.start)),
            },
            message,
        }
    }

    pub(super) fn invalid(
        &self,
        span: Range<usize>,
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
    pub(super) fn string(
        &self,
        key: &str,
        value: &str,
        span: Range<usize>,
    ) -> Result<String, ConfigError> {
        interpolate(value, self.env).map_err(|error| match error {
            InterpolationError::Unset(variable) => {
                let reference = format!("${{{variable}}}");
                let offset = self
                    .text
                    .get(span.clone())
                    .and_then(|raw| raw.find(&reference))
                    .map_or(span.start, |at| span.start + at);
                ConfigError::UnsetVariable {
                    origin: self.at(offset..offset),
                    key: key.to_string(),
                    variable,
                }
            }
            InterpolationError::Malformed(problem) => self.invalid(span, key, problem),
        })
    }

    pub(super) fn scalar(&self, key: &str, node: Located<Node>) -> Result<Raw, ConfigError> {
        let span = node.span.clone();
        Ok(match node.value {
            Node::String(value) => Raw::Text(self.string(key, &value, span)?),
            Node::Boolean(value) => Raw::Bool(value),
            Node::Integer(value) => Raw::Integer(value),
            other => Raw::Other(other.kind()),
        })
    }

    pub(super) fn convert<T>(
        &self,
        key: &str,
        node: Located<Node>,
        convert: fn(Raw) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        let span = node.span.clone();
        let raw = self.scalar(key, node)?;
        convert(raw).map_err(|problem| self.invalid(span, key, problem))
    }

    pub(super) fn string_list(
        &self,
        key: &str,
        node: Located<Node>,
    ) -> Result<Vec<String>, ConfigError> {
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

    pub(super) fn tables(
        &self,
        key: &str,
        node: Located<Node>,
    ) -> Result<Vec<Located<Entries>>, ConfigError> {
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
}
