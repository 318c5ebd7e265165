//! The schema's migrations (one SQL file per backend and version, in `migrations/`), and
//! applying or checking them the same way on every backend.

use super::backend::{Backend, On, StoredRow};
use super::sql::{Param, queries as q};
use super::{StoreError, StoreResult};

/// One schema migration: its version, name and SQL for each backend.
pub(super) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

macro_rules! migration {
    ($version:literal, $name:literal) => {
        Migration {
            version: $version,
            name: $name,
            sqlite: include_str!(concat!(
                "migrations/sqlite/000",
                $version,
                "_",
                $name,
                ".sql"
            )),
            postgres: include_str!(concat!(
                "migrations/postgres/000",
                $version,
                "_",
                $name,
                ".sql"
            )),
        }
    };
}

pub(super) const MIGRATIONS: &[Migration] = &[
    migration!(1, "init"),
    migration!(2, "dispatch"),
    migration!(3, "lease_by_status"),
    migration!(4, "counts"),
    migration!(5, "faults"),
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
        let script = match B::DIALECT {
            super::sql::Dialect::Postgres => m.postgres,
            super::sql::Dialect::Sqlite => m.sqlite,
        };
        B::run_script(&mut tx, script).await?;
        let params = [Param::I64(m.version), Param::Text(m.name)];
        let record = q::RECORD_MIGRATION.get(B::DIALECT);
        backend.execute(On::Tx(&mut tx), record, &params).await?;
    }
    B::commit(tx).await
}
