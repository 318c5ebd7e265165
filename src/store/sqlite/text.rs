//! How SQLite holds what PostgreSQL has types for: ids and times as text (times fixed-width,
//! so text order is time order), lists as JSON arrays.

use std::borrow::Cow;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Row, Sqlite};
use uuid::Uuid;

use crate::store::backend::{StoredRow, bind_with, plain_getters};
use crate::store::sql::{Param, Statement};
use crate::store::{StoreError, StoreResult};

/// Fixed-width UTC text, so that comparing strings compares instants.
pub(super) fn ts(dt: DateTime<Utc>) -> String {
    dt.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

pub(super) fn parse_ts(table: &'static str, text: &str) -> StoreResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt {
            table,
            detail: format!("bad timestamp `{text}`: {e}"),
        })
}

pub(super) fn parse_id(table: &'static str, text: &str) -> StoreResult<Uuid> {
    Uuid::parse_str(text).map_err(|e| StoreError::Corrupt {
        table,
        detail: format!("bad id `{text}`: {e}"),
    })
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// The instant `{now}` stands for, and its text when made beforehand (a transaction's).
#[derive(Clone, Copy)]
pub(super) struct Now<'a> {
    pub at: DateTime<Utc>,
    pub text: Option<&'a str>,
}

/// A [`Param`] as SQLite holds it.
pub(super) enum Stored<'a> {
    Text(Cow<'a, str>),
    Int(i64),
    Null,
}

/// How `param` is stored, `{later $N}` counted from `now`.
pub(super) fn stored<'a>(param: &'a Param<'a>, now: DateTime<Utc>) -> Stored<'a> {
    match *param {
        Param::Text(text) => Stored::Text(Cow::Borrowed(text)),
        Param::OptText(text) => text.map_or(Stored::Null, |t| Stored::Text(Cow::Borrowed(t))),
        Param::Bool(flag) => Stored::Int(i64::from(flag)),
        Param::I32(n) => Stored::Int(i64::from(n)),
        Param::I64(n) => Stored::Int(n),
        Param::Id(id) => Stored::Text(Cow::Owned(id.to_string())),
        Param::Time(at) => Stored::Text(Cow::Owned(ts(at))),
        Param::Later(span) => Stored::Text(Cow::Owned(ts(now + chrono_duration(span)))),
        list => list.json_list().map_or(Stored::Null, Stored::Text),
    }
}

/// Binds `params` (ids and times as text, lists as JSON) and, where the statement has
/// `{now}`, `now` after them.
pub(super) fn bind<'q>(
    statement: &'q Statement,
    params: &'q [Param<'q>],
    now: Now<'q>,
) -> sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>> {
    let query = bind_with(statement, params, |query, param| {
        match stored(param, now.at) {
            Stored::Text(text) => query.bind(text),
            Stored::Int(n) => query.bind(n),
            Stored::Null => query.bind(None::<&str>),
        }
    });
    match (statement.binds_now, now.text) {
        (false, _) => query,
        (true, Some(text)) => query.bind(text),
        (true, None) => query.bind(ts(now.at)),
    }
}

impl StoredRow for SqliteRow {
    plain_getters!();

    fn id(&self, table: &'static str, column: &str) -> StoreResult<Uuid> {
        parse_id(table, self.try_get(column)?)
    }

    fn opt_id(&self, table: &'static str, column: &str) -> StoreResult<Option<Uuid>> {
        let text: Option<&str> = self.try_get(column)?;
        text.map(|t| parse_id(table, t)).transpose()
    }

    fn time(&self, table: &'static str, column: &str) -> StoreResult<DateTime<Utc>> {
        parse_ts(table, self.try_get(column)?)
    }

    fn opt_time(&self, table: &'static str, column: &str) -> StoreResult<Option<DateTime<Utc>>> {
        let text: Option<&str> = self.try_get(column)?;
        text.map(|t| parse_ts(table, t)).transpose()
    }

    fn raw_id(&self) -> Option<Param<'_>> {
        self.try_get("id").ok().map(Param::Text)
    }
}
