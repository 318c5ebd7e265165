//! How SQLite holds what PostgreSQL has types for: ids and times as text (times fixed-width,
//! so text order is time order), lists as JSON arrays.

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

/// Binds `params` (ids and times as text, lists as JSON) and, where the statement has
/// `{now}`, `now` after them.
pub(super) fn bind<'q>(
    statement: &'q Statement,
    params: &'q [Param<'q>],
    now: Now<'q>,
) -> sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>> {
    let query = bind_with(statement, params, |query, param| match *param {
        Param::Id(id) => query.bind(id.to_string()),
        Param::Time(at) => query.bind(ts(at)),
        Param::Later(span) => query.bind(ts(now.at + chrono_duration(span))),
        list => query.bind(list.json_list()),
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
