//! The embedded SQLite store: one file, WAL mode, writers serialized by `BEGIN IMMEDIATE`. This
//! module keeps what only SQLite does: the connection, ids and times stored as text, and
//! noticing other processes' commits through `PRAGMA data_version`.

mod bulk;
mod connections;
mod direct;
mod lease;
#[cfg(test)]
mod tests;
mod text;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteRow, SqliteSynchronous};
use sqlx::{Connection, Executor, SqliteConnection};
use tokio::sync::Notify;
use uuid::Uuid;

use self::connections::{Connections, Leased};
use self::direct::Direct;
use self::text::{Now, bind, ts};
use super::backend::{Backend, Handle, On};
use super::migrations::{check_version, migrate, schema_version};
use super::sql::{Dialect, Param, Statement};
use super::{
    AttemptRecord, LeaseRequest, LeasedMessage, NewMessage, OpenMode, StoreError, StoreResult,
};

/// SQLite implementation of [`super::Store`].
///
/// Every write in this process waits for one slot (`writer`): SQLite runs one writer at a time
/// anyway, and queueing for that slot costs a wake-up where several writing connections would
/// meet in SQLite's busy handler, which sleeps in steps of milliseconds. The slot's sqlx
/// connection runs most writes; the dispatcher's lease and ack run on the direct connection
/// while holding it. Reads use the other connections (WAL lets them run beside the writer).
pub struct SqliteStore {
    readers: Arc<Connections>,
    writer: Arc<Connections>,
    /// The dispatcher's lease and ack, run under `writer`'s slot ([`direct`]).
    direct: Arc<Direct>,
    options: SqliteConnectOptions,
    handle: Handle,
}

/// A write transaction and its time: every `{now}` in it is the same instant, as PostgreSQL's
/// `now()` is.
pub(super) struct SqliteTx {
    /// The writer, inside `BEGIN IMMEDIATE`; rolled back if dropped before the commit.
    conn: Leased,
    now: DateTime<Utc>,
    /// `now` as stored, made once for all the transaction's statements.
    now_text: String,
}

/// Connections for reads (the console's panels, listings) beside the one writer.
const READERS: usize = 6;

/// How long a connection waits for another process's write lock before it fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

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
        .busy_timeout(BUSY_TIMEOUT)
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
        // The writer opens now, so a bad path or an unreadable file is this call's error.
        let writer = Connections::new(options.clone(), 1);
        drop(writer.take().await.map_err(|e| open_err(e.to_string()))?);
        let readers = Connections::new(options.clone(), READERS);
        let direct = Direct::new(&options, database_path(url).is_none());
        let store = SqliteStore {
            readers,
            writer,
            direct,
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
    fn connections_for(&self, statement: &Statement) -> &Arc<Connections> {
        if statement.writes {
            &self.writer
        } else {
            &self.readers
        }
    }
}

/// The transaction's connection a statement runs on (none: one taken for it) and the time
/// `{now}` stands for.
fn target<'a>(on: On<'a, SqliteTx>) -> (Option<&'a mut Leased>, Now<'a>) {
    match on {
        On::Pool => {
            let now = Now {
                at: Utc::now(),
                text: None,
            };
            (None, now)
        }
        On::Tx(SqliteTx {
            conn,
            now,
            now_text,
        }) => {
            let now = Now {
                at: *now,
                text: Some(now_text.as_str()),
            };
            (Some(conn), now)
        }
    }
}

/// Runs `$query.$method(…)` on the transaction's connection when there is one, else on one
/// taken from `$connections` for it; a connection whose worker died is not reused.
macro_rules! run_on {
    ($query:expr, $method:ident, $connections:expr, $conn:expr) => {{
        let query = $query;
        match $conn {
            Some(conn) => {
                let done = query.$method(&mut **conn).await;
                conn.check(done)
            }
            None => {
                let mut conn = $connections.take().await?;
                let done = query.$method(&mut *conn).await;
                conn.check(done)
            }
        }
    }};
}

impl Backend for SqliteStore {
    type Row = SqliteRow;
    type Tx = SqliteTx;
    const DIALECT: Dialect = Dialect::Sqlite;

    async fn begin(&self) -> StoreResult<SqliteTx> {
        let mut conn = self.writer.take().await?;
        conn.begin("BEGIN IMMEDIATE").await?;
        let now = Utc::now();
        Ok(SqliteTx {
            conn,
            now,
            now_text: ts(now),
        })
    }

    async fn commit(mut tx: SqliteTx) -> StoreResult<()> {
        Ok(tx.conn.commit().await?)
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
            self.connections_for(statement),
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
        let connections = self.connections_for(statement);
        let done = run_on!(bind(statement, params, now), execute, connections, conn)?;
        Ok(done.rows_affected())
    }

    async fn run_script<'a>(tx: &'a mut SqliteTx, script: &'a str) -> StoreResult<()> {
        let done = (&mut *tx.conn).execute(sqlx::raw_sql(script)).await;
        tx.conn.check(done)?;
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
        bulk::insert_messages(&mut tx.conn, messages).await
    }

    /// Other processes notice the commit through `PRAGMA data_version`.
    async fn wake_replicas<'a>(&'a self, _on: On<'a, SqliteTx>) -> StoreResult<()> {
        Ok(())
    }

    async fn lease_batch<'a>(
        &'a self,
        req: &'a LeaseRequest<'a>,
    ) -> StoreResult<Vec<LeasedMessage>> {
        lease::lease_batch(&self.direct, &self.writer, req).await
    }

    async fn record_attempts<'a>(&'a self, records: &'a [AttemptRecord]) -> StoreResult<u64> {
        bulk::record_attempts(&self.direct, &self.writer, records).await
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
