//! The embedded SQLite store: one file, WAL mode, writers serialized by `BEGIN IMMEDIATE`. This
//! module keeps what only SQLite does: the connection, ids and times stored as text, and
//! noticing other processes' commits through `PRAGMA data_version`.

mod bulk;
#[cfg(test)]
mod tests;
mod text;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Connection, Executor, Sqlite, SqliteConnection, Transaction};
use tokio::sync::Notify;
use uuid::Uuid;

use self::text::{Now, bind, ts};
use super::backend::{Backend, Handle, On, run_on};
use super::migrations::{check_version, migrate, schema_version};
use super::sql::{Dialect, Param, Statement};
use super::{AttemptRecord, NewMessage, OpenMode, StoreError, StoreResult};

/// SQLite implementation of [`super::Store`].
///
/// Every write in this process goes through one connection (`writer`): SQLite runs one writer
/// at a time anyway, and queueing for that connection costs a wake-up where several writing
/// connections would meet in SQLite's busy handler, which sleeps in steps of milliseconds.
/// Reads use the other connections (WAL lets them run beside the writer).
pub struct SqliteStore {
    pool: SqlitePool,
    writer: SqlitePool,
    options: SqliteConnectOptions,
    handle: Handle,
}

/// A write transaction and its time: every `{now}` in it is the same instant, as PostgreSQL's
/// `now()` is.
pub(super) struct SqliteTx {
    tx: Transaction<'static, Sqlite>,
    now: DateTime<Utc>,
    /// `now` as stored, made once for all the transaction's statements.
    now_text: String,
}

/// Connections for reads (the console's panels, listings) beside the one writer.
const READERS: u32 = 6;

/// How often the watcher asks SQLite whether another process committed.
const DATA_VERSION_POLL: Duration = Duration::from_millis(5);

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
        // No ping before each use (sqlx's default): a connection to a local file does not go
        // stale, and the ping is one more trip to the connection's worker thread per
        // statement: a sixth of the API's CPU per event, measured (BENCHMARKS.md, issue 11).
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .map_err(|e| open_err(e.to_string()))?;
        let pool = SqlitePoolOptions::new()
            .max_connections(READERS)
            .test_before_acquire(false)
            .connect_lazy_with(options.clone());
        let store = SqliteStore {
            pool,
            writer,
            options,
            handle: Handle::new(url.to_string()),
        };
        match mode {
            OpenMode::Migrate => migrate(&store).await?,
            OpenMode::Existing => check_version(url, schema_version(&store).await?)?,
        }
        Ok(store)
    }
}

impl SqliteStore {
    /// The writer for statements that change rows, a reader for the others.
    fn pool_for(&self, statement: &Statement) -> &SqlitePool {
        if statement.writes {
            &self.writer
        } else {
            &self.pool
        }
    }
}

/// The connection a statement runs on (none: the pool) and the time `{now}` stands for.
fn target<'a>(on: On<'a, SqliteTx>) -> (Option<&'a mut SqliteConnection>, Now<'a>) {
    match on {
        On::Pool => {
            let now = Now {
                at: Utc::now(),
                text: None,
            };
            (None, now)
        }
        On::Tx(SqliteTx { tx, now, now_text }) => {
            let now = Now {
                at: *now,
                text: Some(now_text.as_str()),
            };
            (Some(&mut **tx), now)
        }
    }
}

impl Backend for SqliteStore {
    type Row = SqliteRow;
    type Tx = SqliteTx;
    const DIALECT: Dialect = Dialect::Sqlite;

    async fn begin(&self) -> StoreResult<SqliteTx> {
        let tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let now = Utc::now();
        Ok(SqliteTx {
            tx,
            now,
            now_text: ts(now),
        })
    }

    async fn commit(tx: SqliteTx) -> StoreResult<()> {
        Ok(tx.tx.commit().await?)
    }

    fn handle(&self) -> &Handle {
        &self.handle
    }

    fn watch_wakeups(&self) -> Arc<Notify> {
        let options = self.options.clone();
        self.handle.watch(|wake| watch_data_version(options, wake))
    }

    async fn fetch_all<'a>(
        &'a self,
        on: On<'a, SqliteTx>,
        statement: &'a Statement,
        params: &'a [Param<'a>],
    ) -> StoreResult<Vec<SqliteRow>> {
        let (conn, now) = target(on);
        Ok(run_on!(
            bind(statement, params, now),
            fetch_all,
            self.pool_for(statement),
            conn
        )?)
    }

    async fn execute<'a>(
        &'a self,
        on: On<'a, SqliteTx>,
        statement: &'a Statement,
        params: &'a [Param<'a>],
    ) -> StoreResult<u64> {
        let (conn, now) = target(on);
        let pool = self.pool_for(statement);
        let done = run_on!(bind(statement, params, now), execute, pool, conn)?;
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
        bulk::record_attempts(&self.writer, records).await
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
