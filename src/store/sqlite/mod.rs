//! The embedded SQLite store: one file, WAL mode, writers serialized by `BEGIN IMMEDIATE`. This
//! module keeps what only SQLite does: the connection, ids and times stored as text, and
//! noticing other processes' commits through `PRAGMA data_version`.

mod bulk;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Connection, Executor, Row, Sqlite, SqliteConnection, Transaction};
use tokio::sync::Notify;
use uuid::Uuid;

use super::backend::{Backend, On, StoredRow, execute_on, fetch_all_on, plain_getters};
use super::migrations::{check_version, migrate, schema_version};
use super::rows::to_json;
use super::sql::{Dialect, List, Param, Statement};
use super::{AttemptRecord, NewMessage, OpenMode, StoreError, StoreResult};

/// SQLite implementation of [`super::Store`].
pub struct SqliteStore {
    pool: SqlitePool,
    url: String,
    options: SqliteConnectOptions,
    wake: Arc<Notify>,
    watching: OnceLock<()>,
}

/// A write transaction and its time: every `{now}` in it is the same instant, as PostgreSQL's
/// `now()` is.
pub(super) struct SqliteTx {
    tx: Transaction<'static, Sqlite>,
    now: DateTime<Utc>,
}

/// How often the watcher asks SQLite whether another process committed.
const DATA_VERSION_POLL: Duration = Duration::from_millis(5);

/// Fixed-width UTC text, so that comparing strings compares instants.
fn ts(dt: DateTime<Utc>) -> String {
    dt.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn parse_ts(table: &'static str, text: &str) -> StoreResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt {
            table,
            detail: format!("bad timestamp `{text}`: {e}"),
        })
}

fn parse_id(table: &'static str, text: &str) -> StoreResult<Uuid> {
    Uuid::parse_str(text).map_err(|e| StoreError::Corrupt {
        table,
        detail: format!("bad id `{text}`: {e}"),
    })
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// The file a `sqlite:` URL names, or `None` for an in-memory database.
fn database_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then_some(path)
}

/// The store's connection settings for the database at `url` (also used by the benchmarks'
/// raw-SQL ceiling, so both measure the same database).
pub fn connect_options(url: &str) -> Result<SqliteConnectOptions, sqlx::Error> {
    Ok(SqliteConnectOptions::from_str(url)?
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true))
}

impl SqliteStore {
    /// Opens (and with [`OpenMode::Migrate`], creates and migrates) the database at `url`.
    pub async fn open(url: &str, mode: OpenMode) -> StoreResult<SqliteStore> {
        let open_err = |detail: String| StoreError::Open {
            url: url.to_string(),
            detail,
        };
        if mode == OpenMode::Existing
            && let Some(path) = database_path(url)
            && !Path::new(path).exists()
        {
            return Err(open_err(format!(
                "no database file at {path}; run `herald migrate` to create it, or check database_url"
            )));
        }
        let options = connect_options(url)
            .map_err(|e| open_err(e.to_string()))?
            .create_if_missing(mode == OpenMode::Migrate);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options.clone())
            .await
            .map_err(|e| open_err(e.to_string()))?;
        let store = SqliteStore {
            pool,
            url: url.to_string(),
            options,
            wake: Arc::new(Notify::new()),
            watching: OnceLock::new(),
        };
        match mode {
            OpenMode::Migrate => migrate(&store).await?,
            OpenMode::Existing => check_version(url, schema_version(&store).await?)?,
        }
        Ok(store)
    }
}

/// Binds `params` (ids and times as text, lists as JSON) and, where the statement has
/// `{now}`, `now` after them.
fn bind<'q>(
    statement: &'q Statement,
    params: &'q [Param<'q>],
    now: DateTime<Utc>,
) -> sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>> {
    let mut query = sqlx::query(&statement.text);
    for param in params {
        query = match *param {
            Param::Text(text) => query.bind(text),
            Param::OptText(text) => query.bind(text),
            Param::Bool(flag) => query.bind(flag),
            Param::I32(n) => query.bind(n),
            Param::I64(n) => query.bind(n),
            Param::Id(id) => query.bind(id.to_string()),
            Param::Time(at) => query.bind(ts(at)),
            Param::Later(span) => query.bind(ts(now + chrono_duration(span))),
            Param::Ids(ids) => query.bind(to_json(&ids)),
            Param::Strs(list) => query.bind(to_json(&list)),
            Param::Strings(list) => query.bind(to_json(&list)),
            Param::List(List::Json(json)) => query.bind(json.as_str()),
            Param::List(List::Strs(list)) => query.bind(to_json(list)),
            Param::List(List::Strings(list)) => query.bind(to_json(list)),
        };
    }
    if statement.binds_now {
        query = query.bind(ts(now));
    }
    query
}

/// The connection a statement runs on (none: the pool) and the time `{now}` stands for.
fn target<'a>(on: On<'a, SqliteTx>) -> (Option<&'a mut SqliteConnection>, DateTime<Utc>) {
    match on {
        On::Pool => (None, Utc::now()),
        On::Tx(tx) => (Some(&mut *tx.tx), tx.now),
    }
}

impl Backend for SqliteStore {
    type Row = SqliteRow;
    type Tx = SqliteTx;
    const DIALECT: Dialect = Dialect::Sqlite;
    const NAME: &'static str = "sqlite";
    const LEASE_IN_ONE_TRANSACTION: bool = true;

    fn url(&self) -> &str {
        &self.url
    }

    fn local_wake(&self) -> &Arc<Notify> {
        &self.wake
    }

    fn watch_wakeups(&self) -> Arc<Notify> {
        self.watching.get_or_init(|| {
            tokio::spawn(watch_data_version(
                self.options.clone(),
                Arc::downgrade(&self.wake),
            ));
        });
        self.wake.clone()
    }

    async fn begin(&self) -> StoreResult<SqliteTx> {
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok(SqliteTx {
            tx,
            now: Utc::now(),
        })
    }

    async fn commit(tx: SqliteTx) -> StoreResult<()> {
        Ok(tx.tx.commit().await?)
    }

    async fn fetch_all<'a>(
        &'a self,
        on: On<'a, SqliteTx>,
        statement: &'a Statement,
        params: &'a [Param<'a>],
    ) -> StoreResult<Vec<SqliteRow>> {
        let (conn, now) = target(on);
        Ok(fetch_all_on(&self.pool, conn, bind(statement, params, now)).await?)
    }

    async fn execute<'a>(
        &'a self,
        on: On<'a, SqliteTx>,
        statement: &'a Statement,
        params: &'a [Param<'a>],
    ) -> StoreResult<u64> {
        let (conn, now) = target(on);
        let done = execute_on(&self.pool, conn, bind(statement, params, now)).await?;
        Ok(done.rows_affected())
    }

    async fn run_script<'a>(tx: &'a mut SqliteTx, script: &'a str) -> StoreResult<()> {
        (&mut *tx.tx).execute(sqlx::raw_sql(script)).await?;
        Ok(())
    }

    /// `BEGIN IMMEDIATE` already holds the write lock.
    async fn lock_migrations(_tx: &mut SqliteTx) -> StoreResult<()> {
        Ok(())
    }

    async fn insert_messages<'a>(
        tx: &'a mut SqliteTx,
        messages: &'a [NewMessage],
    ) -> StoreResult<Vec<Uuid>> {
        bulk::insert_messages(&mut tx.tx, messages).await
    }

    /// Other processes notice the commit through `PRAGMA data_version`.
    async fn wake_replicas<'a>(&'a self, _on: On<'a, SqliteTx>) -> StoreResult<()> {
        Ok(())
    }

    async fn record_attempts<'a>(&'a self, records: &'a [AttemptRecord]) -> StoreResult<u64> {
        bulk::record_attempts(&self.pool, records).await
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

/// Notices commits by other processes: `PRAGMA data_version` on one connection changes when
/// any other connection commits. Runs until the store's notifier is dropped.
async fn watch_data_version(options: SqliteConnectOptions, wake: std::sync::Weak<Notify>) {
    let mut conn: Option<SqliteConnection> = None;
    let mut last: Option<i64> = None;
    loop {
        tokio::time::sleep(DATA_VERSION_POLL).await;
        let Some(wake) = wake.upgrade() else { return };
        if conn.is_none() {
            match SqliteConnection::connect_with(&options).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot open the SQLite change watcher; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        match sqlx::query_scalar::<_, i64>("PRAGMA data_version")
            .fetch_one(c)
            .await
        {
            Ok(version) => {
                if last.is_some_and(|l| l != version) {
                    wake.notify_one();
                }
                last = Some(version);
            }
            Err(e) => {
                tracing::warn!(error = %e, "SQLite change watcher failed; reconnecting");
                conn = None;
                last = None;
            }
        }
    }
}
