//! The schema's migrations (one SQL template per version, in `migrations/`), expanded for
//! each backend and applied or checked the same way on every backend.
//!
//! A template is SQL both backends accept, plus these tokens for what they spell differently:
//!
//! | token | PostgreSQL | SQLite |
//! |---|---|---|
//! | `{id}` | `UUID` | `TEXT` |
//! | `{time}` | `TIMESTAMPTZ` | `TEXT` (fixed-width UTC) |
//! | `{json}` | `JSONB` | `TEXT` |
//! | `{bool}` | `BOOLEAN` | `INTEGER` |
//! | `{true}`, `{false}` | `TRUE`, `FALSE` | `1`, `0` |
//! | `{real}` | `DOUBLE PRECISION` | `REAL` |
//! | `{bigint}` | `BIGINT` | `INTEGER` |
//! | `{now}` | `now()` | `strftime('%Y-%m-%dT%H:%M:%fZ', 'now')` |
//!
//! and, each on a line of its own, `{postgres}` or `{sqlite}` opening lines that only that
//! backend runs, up to the next `{end}`. Any other text, braces included, is kept as written.

use super::backend::{Backend, On, StoredRow};
use super::sql::{Dialect, Param, queries as q};
use super::{StoreError, StoreResult};

/// One schema migration: its version, name and SQL template.
pub(super) struct Migration {
    pub version: i64,
    pub name: &'static str,
    template: &'static str,
}

impl Migration {
    /// The migration's SQL for `dialect`.
    pub fn script(&self, dialect: Dialect) -> String {
        expand(dialect, self.template)
    }
}

macro_rules! migration {
    ($version:literal, $name:literal) => {
        Migration {
            version: $version,
            name: $name,
            template: include_str!(concat!("migrations/000", $version, "_", $name, ".sql")),
        }
    };
    // Versions from 10 on: `concat!` cannot pad, so the two-digit prefix is written out.
    ($version:literal, $prefix:literal, $name:literal) => {
        Migration {
            version: $version,
            name: $name,
            template: include_str!(concat!("migrations/", $prefix, "_", $name, ".sql")),
        }
    };
}

pub(super) const MIGRATIONS: &[Migration] = &[
    migration!(1, "init"),
    migration!(2, "dispatch"),
    migration!(3, "lease_by_status"),
    migration!(4, "counts"),
    migration!(5, "faults"),
    migration!(6, "write_costs"),
    migration!(7, "api_tokens"),
    migration!(8, "ssh_keys"),
    migration!(9, "channel_pauses"),
    migration!(10, "0010", "audit_log"),
    migration!(11, "0011", "channel_counts"),
    migration!(12, "0012", "attempt_minutes"),
    migration!(13, "0013", "partial_keys"),
];

pub(super) fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Checks an applied schema version against this binary's migrations.
pub(super) fn check_version(url: &str, found: i64) -> StoreResult<()> {
    let latest = latest_version();
    match found.cmp(&latest) {
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Less => Err(StoreError::NotMigrated {
            url: url.to_string(),
            found,
            latest,
        }),
        std::cmp::Ordering::Greater => Err(StoreError::TooNew {
            url: url.to_string(),
            found,
            latest,
        }),
    }
}

/// The schema version applied to the store (0 when it was never migrated).
pub(super) async fn schema_version<B: Backend>(backend: &B) -> StoreResult<i64> {
    let exists = q::MIGRATIONS_TABLE_EXISTS.get(B::DIALECT);
    let rows = backend.fetch_all(On::Pool, exists, &[]).await?;
    if !rows.first().map_or(Ok(false), |r| r.flag("present"))? {
        return Ok(0);
    }
    let rows = backend
        .fetch_all(On::Pool, q::SCHEMA_VERSION.get(B::DIALECT), &[])
        .await?;
    Ok(rows
        .first()
        .map_or(Ok(None), |r| r.opt_big("version"))?
        .unwrap_or(0))
}

/// Applies every pending migration in one transaction. A store migrated by a newer herald is
/// not touched.
pub(super) async fn migrate<B: Backend>(backend: &B) -> StoreResult<()> {
    let mut tx = backend.begin().await?;
    B::lock_migrations(&mut tx).await?;
    let create = q::CREATE_MIGRATIONS_TABLE.get(B::DIALECT);
    B::run_script(&mut tx, &create.text).await?;
    let rows = backend
        .fetch_all(On::Tx(&mut tx), q::SCHEMA_VERSION.get(B::DIALECT), &[])
        .await?;
    let current = rows
        .first()
        .map_or(Ok(None), |r| r.opt_big("version"))?
        .unwrap_or(0);
    if current > latest_version() {
        check_version(&backend.handle().url, current)?;
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        B::run_script(&mut tx, &m.script(B::DIALECT)).await?;
        let params = [Param::I64(m.version), Param::Text(m.name)];
        let record = q::RECORD_MIGRATION.get(B::DIALECT);
        backend.execute(On::Tx(&mut tx), record, &params).await?;
    }
    B::commit(tx).await
}

/// How each inline token is spelled: (token, PostgreSQL, SQLite).
const TOKENS: &[(&str, &str, &str)] = &[
    ("{id}", "UUID", "TEXT"),
    ("{time}", "TIMESTAMPTZ", "TEXT"),
    ("{json}", "JSONB", "TEXT"),
    ("{bool}", "BOOLEAN", "INTEGER"),
    ("{true}", "TRUE", "1"),
    ("{false}", "FALSE", "0"),
    ("{real}", "DOUBLE PRECISION", "REAL"),
    ("{bigint}", "BIGINT", "INTEGER"),
    ("{now}", "now()", "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"),
];

/// Expands a migration template (see the module doc) for `dialect`.
pub(super) fn expand(dialect: Dialect, template: &str) -> String {
    let mut text = String::with_capacity(template.len());
    // The backend whose lines are being read, while inside a `{postgres}` or `{sqlite}` section.
    let mut section: Option<Dialect> = None;
    for line in template.split_inclusive('\n') {
        match line.trim() {
            "{postgres}" => section = Some(Dialect::Postgres),
            "{sqlite}" => section = Some(Dialect::Sqlite),
            "{end}" => section = None,
            _ if section.is_none_or(|only| only == dialect) => push_line(&mut text, dialect, line),
            _ => {}
        }
    }
    text
}

/// Appends `line` with its inline tokens spelled for `dialect`.
fn push_line(text: &mut String, dialect: Dialect, mut line: &str) {
    while let Some(at) = line.find('{') {
        text.push_str(&line[..at]);
        line = &line[at..];
        let token = TOKENS.iter().find(|(token, _, _)| line.starts_with(token));
        match token {
            Some((token, postgres, sqlite)) => {
                text.push_str(match dialect {
                    Dialect::Postgres => postgres,
                    Dialect::Sqlite => sqlite,
                });
                line = &line[token.len()..];
            }
            None => {
                text.push('{');
                line = &line[1..];
            }
        }
    }
    text.push_str(line);
}

#[cfg(test)]
mod tests;
