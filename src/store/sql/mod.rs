//! Each query's text, written once in a small placeholder dialect and expanded per backend.
//!
//! A template is plain SQL that both backends accept, plus these tokens:
//!
//! | token | PostgreSQL | SQLite |
//! |---|---|---|
//! | `$N` | `$N` | `?N` |
//! | `{now}` | `now()` (the transaction's time) | a parameter after the last `$N`, bound to the time of the transaction or statement |
//! | `{later $N}` | `now() + $N * interval '1 millisecond'` | `?N`, bound to `{now}` plus the duration |
//! | `{any $N}` | `= ANY ($N)` (an array) | `IN (SELECT value FROM json_each(?N))` (a JSON array) |
//!
//! Static templates are expanded once, on first use ([`Sql::get`]); the values bound to them
//! are [`Param`]s, which each backend encodes its own way (ids and times are text in SQLite).

pub(super) mod audit;
pub(super) mod channels;
pub(super) mod lease;
pub(super) mod queries;
pub(super) mod search;

use std::borrow::Cow;
use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::rows::to_json;
use crate::model::Method;

/// Which backend a template is expanded for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    Postgres,
    Sqlite,
}

impl Dialect {
    /// `postgres` or `sqlite`.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Postgres => "postgres",
            Dialect::Sqlite => "sqlite",
        }
    }
}

/// One query's text, expanded for a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Statement {
    pub text: String,
    /// SQLite only: `{now}` stands as the parameter after the last `$N`, which the backend binds.
    pub binds_now: bool,
    /// Whether it changes rows (an INSERT, UPDATE or DELETE anywhere in it): SQLite runs
    /// those on its one writer connection.
    pub writes: bool,
}

/// A query written once (or, where the backends truly differ, once each), expanded on first use.
pub(super) struct Sql {
    postgres: &'static str,
    sqlite: &'static str,
    expanded: OnceLock<[Statement; 2]>,
}

impl Sql {
    /// A template both backends run.
    pub const fn new(template: &'static str) -> Sql {
        Sql::each(template, template)
    }

    /// A query whose text differs per backend (both still in the placeholder dialect).
    pub const fn each(postgres: &'static str, sqlite: &'static str) -> Sql {
        Sql {
            postgres,
            sqlite,
            expanded: OnceLock::new(),
        }
    }

    /// The statement for `dialect`.
    pub fn get(&self, dialect: Dialect) -> &Statement {
        let [postgres, sqlite] = self.expanded.get_or_init(|| {
            [
                Statement::expand(Dialect::Postgres, self.postgres),
                Statement::expand(Dialect::Sqlite, self.sqlite),
            ]
        });
        match dialect {
            Dialect::Postgres => postgres,
            Dialect::Sqlite => sqlite,
        }
    }
}

impl Statement {
    /// Expands a template (see the module doc) for `dialect`.
    pub fn expand(dialect: Dialect, template: &str) -> Statement {
        let now_slot = highest_parameter(template) + 1;
        let mut text = String::with_capacity(template.len() + 32);
        let mut binds_now = false;
        let mut rest = template;
        while let Some(at) = rest.find(['$', '{']) {
            text.push_str(&rest[..at]);
            rest = &rest[at..];
            if let Some((n, after)) = parameter(rest) {
                push_parameter(&mut text, dialect, n);
                rest = after;
            } else if let Some(after) = rest.strip_prefix("{now}") {
                match dialect {
                    Dialect::Postgres => text.push_str("now()"),
                    Dialect::Sqlite => {
                        push_parameter(&mut text, dialect, now_slot);
                        binds_now = true;
                    }
                }
                rest = after;
            } else if let Some((n, after)) = token(rest, "{later ") {
                if dialect == Dialect::Postgres {
                    text.push_str("now() + ");
                    push_parameter(&mut text, dialect, n);
                    text.push_str(" * interval '1 millisecond'");
                } else {
                    push_parameter(&mut text, dialect, n);
                    binds_now = true;
                }
                rest = after;
            } else if let Some((n, after)) = token(rest, "{any ") {
                match dialect {
                    Dialect::Postgres => text.push_str("= ANY ("),
                    Dialect::Sqlite => text.push_str("IN (SELECT value FROM json_each("),
                }
                push_parameter(&mut text, dialect, n);
                text.push_str(if dialect == Dialect::Sqlite {
                    "))"
                } else {
                    ")"
                });
                rest = after;
            } else {
                text.push_str(&rest[..1]);
                rest = &rest[1..];
            }
        }
        text.push_str(rest);
        let writes = writes(&text);
        Statement {
            text,
            binds_now,
            writes,
        }
    }
}

/// Whether `text` has an INSERT, UPDATE or DELETE keyword outside its string literals and
/// quoted names.
fn writes(text: &str) -> bool {
    let mut words = String::new();
    let mut quote = None;
    for c in text.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                words.push(' ');
            }
            None => words.push(c),
        }
    }
    words
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|word| {
            ["INSERT", "UPDATE", "DELETE"]
                .iter()
                .any(|keyword| word.eq_ignore_ascii_case(keyword))
        })
}

/// `$N` at the start of `text`: N and what follows.
fn parameter(text: &str) -> Option<(usize, &str)> {
    let digits = text.strip_prefix('$')?;
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    let n = digits[..end].parse().ok()?;
    Some((n, &digits[end..]))
}

/// `{name $N}` at the start of `text`: N and what follows.
fn token<'t>(text: &'t str, open: &str) -> Option<(usize, &'t str)> {
    let (n, after) = parameter(text.strip_prefix(open)?)?;
    Some((n, after.strip_prefix('}')?))
}

fn highest_parameter(template: &str) -> usize {
    template
        .match_indices('$')
        .filter_map(|(at, _)| parameter(&template[at..]).map(|(n, _)| n))
        .max()
        .unwrap_or(0)
}

fn push_parameter(text: &mut String, dialect: Dialect, n: usize) {
    use std::fmt::Write;
    let sigil = match dialect {
        Dialect::Postgres => '$',
        Dialect::Sqlite => '?',
    };
    // Writing to a String cannot fail.
    let _ = write!(text, "{sigil}{n}");
}

/// A value bound to a statement's `$N`; each backend encodes it its own way.
#[derive(Debug, Clone, Copy)]
pub(super) enum Param<'a> {
    Text(&'a str),
    OptText(Option<&'a str>),
    Bool(bool),
    I32(i32),
    I64(i64),
    Id(Uuid),
    Time(DateTime<Utc>),
    /// `{later $N}`: this long after `{now}`.
    Later(Duration),
    /// A list for `{any $N}`.
    Ids(&'a [Uuid]),
    Strs(&'a [&'a str]),
    Strings(&'a [String]),
    /// A list encoded beforehand, to bind in several statements.
    List(&'a List<'a>),
}

impl<'a> Param<'a> {
    /// A list as the JSON array SQLite's `json_each` reads; None for a single value.
    pub fn json_list(&self) -> Option<Cow<'a, str>> {
        Some(match *self {
            Param::Ids(ids) => Cow::Owned(to_json(&ids)),
            Param::Strs(list) => Cow::Owned(to_json(&list)),
            Param::Strings(list) | Param::List(&List::Strings(list)) => Cow::Owned(to_json(&list)),
            Param::List(List::Strs(list)) => Cow::Owned(to_json(list)),
            Param::List(List::Json(json)) => Cow::Borrowed(json.as_str()),
            _ => return None,
        })
    }
}

/// A list for `{any $N}` encoded once for `dialect` (a JSON array for SQLite), for statements
/// that run several times in one call (the lease's passes).
#[derive(Debug)]
pub(super) enum List<'a> {
    Json(String),
    Strs(Vec<&'a str>),
    Strings(&'a [String]),
}

impl<'a> List<'a> {
    pub fn methods(dialect: Dialect, methods: &'a [Method]) -> List<'a> {
        match dialect {
            Dialect::Postgres => List::Strs(methods.iter().map(|m| m.as_str()).collect()),
            Dialect::Sqlite => List::Json(to_json(&methods)),
        }
    }

    pub fn strings(dialect: Dialect, strings: &'a [String]) -> List<'a> {
        match dialect {
            Dialect::Postgres => List::Strings(strings),
            Dialect::Sqlite => List::Json(to_json(&strings)),
        }
    }
}

#[cfg(test)]
mod tests;
