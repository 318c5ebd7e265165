//! The dispatcher's two hot writes on SQLite, the lease and the ack, each run as one blocking
//! call on a connection of Herald's own (rusqlite), instead of one trip to sqlx's worker thread
//! per statement and one channel crossing per row. Issue 10's profile put those hand-offs and
//! the wake-ups behind them at about a fifth of the drain's CPU.
//!
//! A call holds the writer's slot (the [`Leased`](super::connections::Leased) writer, unused
//! meanwhile), so this process still writes one transaction at a time and its two writing
//! connections never meet in SQLite's busy handler. It runs on tokio's blocking pool and commits only if its caller still
//! waits for the answer: a lease whose caller has gone is rolled back, as a dropped sqlx
//! transaction is.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use rusqlite::types::ValueRef;
use rusqlite::{CachedStatement, Connection, OpenFlags, Row, TransactionBehavior};
use sqlx::sqlite::SqliteConnectOptions;
use uuid::Uuid;

use super::BUSY_TIMEOUT;
use super::connections::Connections;
use super::text::{Stored, parse_id, parse_ts, stored, ts};
use crate::store::backend::StoredRow;
use crate::store::sql::{Param, Statement};
use crate::store::{StoreError, StoreResult};

/// The direct connection to one database file, opened when first needed and again after an
/// error that may have broken it.
pub(super) struct Direct {
    path: PathBuf,
    /// An in-memory database, which the store's connections share by its name in SQLite's
    /// shared cache (sqlx names it).
    in_memory: bool,
    conn: Mutex<Option<Connection>>,
}

/// A `BEGIN IMMEDIATE` transaction on the direct connection, and the instant `{now}` stands
/// for in all its statements.
pub(super) struct DirectTx<'c> {
    tx: rusqlite::Transaction<'c>,
    now: DateTime<Utc>,
    now_text: String,
}

impl Direct {
    /// The direct connection to the database the store's `options` name; nothing is opened
    /// yet.
    pub(super) fn new(options: &SqliteConnectOptions, in_memory: bool) -> Arc<Direct> {
        Arc::new(Direct {
            path: options.get_filename().to_path_buf(),
            in_memory,
            conn: Mutex::new(None),
        })
    }

    /// Runs `job` in one transaction, holding the slot of `writer`; commits when the job
    /// succeeds and its caller still waits.
    pub(super) async fn transaction<R, F>(
        self: &Arc<Self>,
        writer: &Arc<Connections>,
        job: F,
    ) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&DirectTx<'_>) -> StoreResult<R> + Send + 'static,
    {
        let slot = writer.take().await?;
        let direct = Arc::clone(self);
        let (reply, answer) = tokio::sync::oneshot::channel();
        tokio::task::spawn_blocking(move || {
            let result = direct.run(job, || !reply.is_closed());
            drop(slot);
            let _ = reply.send(result);
        });
        // The job panicked: nothing was committed.
        answer
            .await
            .map_err(|_| StoreError::Database(sqlx::Error::WorkerCrashed))?
    }

    /// Runs `job` in one transaction on this thread; commits when it succeeds and
    /// `still_wanted` says its caller still waits (else rolls back).
    pub(super) fn run<R>(
        &self,
        job: impl FnOnce(&DirectTx<'_>) -> StoreResult<R>,
        still_wanted: impl Fn() -> bool,
    ) -> StoreResult<R> {
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let open = match conn.take() {
            Some(open) => open,
            None => self.open()?,
        };
        let open = conn.insert(open);
        let result = transact(open, job, still_wanted);
        if let Err(e) = &result
            && may_break_connection(e)
        {
            *conn = None;
        }
        result
    }

    /// Opens the file with the settings of the store's other connections
    /// ([`super::connect_options`]); WAL mode is the file's own and already set.
    fn open(&self) -> StoreResult<Connection> {
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if self.in_memory {
            flags |= OpenFlags::SQLITE_OPEN_URI
                | OpenFlags::SQLITE_OPEN_MEMORY
                | OpenFlags::SQLITE_OPEN_SHARED_CACHE;
        }
        let conn = Connection::open_with_flags(&self.path, flags).map_err(store_error)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(store_error)?;
        // Statement journals in memory: on a file they spilled past 64 KiB to a temporary
        // file made and removed for each lease and ack (5 % of the drain's CPU, measured). A
        // lease or an ack changes at most a few hundred rows, so the journal stays small.
        conn.execute_batch(
            "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA temp_store = MEMORY;",
        )
        .map_err(store_error)?;
        conn.set_prepared_statement_cache_capacity(STATEMENTS);
        Ok(conn)
    }
}

/// More than the lease's and the ack's statements together, so each is prepared once.
const STATEMENTS: usize = 16;

fn transact<R>(
    conn: &mut Connection,
    job: impl FnOnce(&DirectTx<'_>) -> StoreResult<R>,
    still_wanted: impl Fn() -> bool,
) -> StoreResult<R> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(store_error)?;
    let now = Utc::now();
    let tx = DirectTx {
        tx,
        now,
        now_text: ts(now),
    };
    let out = job(&tx)?;
    if !still_wanted() {
        // Dropping the transaction rolls it back.
        return Err(StoreError::Conflict(
            "the caller stopped waiting; rolled back".into(),
        ));
    }
    tx.tx.commit().map_err(store_error)?;
    Ok(out)
}

/// What a [`DirectTx`] runs: an expanded [`Statement`] (its `{now}` bound by the transaction),
/// or SQLite's own text (parameters `?1…`, no `{now}`).
pub(super) struct Query<'a> {
    text: &'a str,
    binds_now: bool,
}

impl<'a> From<&'a Statement> for Query<'a> {
    fn from(statement: &'a Statement) -> Query<'a> {
        Query {
            text: &statement.text,
            binds_now: statement.binds_now,
        }
    }
}

impl<'a> From<&'a str> for Query<'a> {
    fn from(text: &'a str) -> Query<'a> {
        Query {
            text,
            binds_now: false,
        }
    }
}

impl DirectTx<'_> {
    /// Runs `query`; returns how many rows it changed.
    pub fn execute<'q>(
        &self,
        query: impl Into<Query<'q>>,
        params: &[Param<'_>],
    ) -> StoreResult<usize> {
        let mut prepared = self.prepare(query.into(), params)?;
        prepared.raw_execute().map_err(store_error)
    }

    /// Runs `query`, handing each row it returns to `each`.
    pub fn for_each_row<'q>(
        &self,
        query: impl Into<Query<'q>>,
        params: &[Param<'_>],
        mut each: impl FnMut(&Row<'_>) -> StoreResult<()>,
    ) -> StoreResult<()> {
        let mut prepared = self.prepare(query.into(), params)?;
        let mut rows = prepared.raw_query();
        while let Some(row) = rows.next().map_err(store_error)? {
            each(row)?;
        }
        Ok(())
    }

    /// `query` (prepared once, then cached) with `params` bound to `?1…` and, when it
    /// binds `{now}`, the transaction's time after them.
    fn prepare(&self, query: Query<'_>, params: &[Param<'_>]) -> StoreResult<CachedStatement<'_>> {
        let mut prepared = self.tx.prepare_cached(query.text).map_err(store_error)?;
        for (at, param) in params.iter().enumerate() {
            let bound = match stored(param, self.now) {
                Stored::Text(text) => prepared.raw_bind_parameter(at + 1, text.as_ref()),
                Stored::Int(n) => prepared.raw_bind_parameter(at + 1, n),
                Stored::Null => prepared.raw_bind_parameter(at + 1, rusqlite::types::Null),
            };
            bound.map_err(store_error)?;
        }
        if query.binds_now {
            prepared
                .raw_bind_parameter(params.len() + 1, self.now_text.as_str())
                .map_err(store_error)?;
        }
        Ok(prepared)
    }
}

/// An error from SQLite itself, read the way sqlx reads one (its extended code, its message),
/// so whoever looks at a store error sees the same thing from either connection.
#[derive(Debug)]
struct SqliteFailure {
    code: i32,
    message: String,
}

impl std::fmt::Display for SqliteFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "(code: {}) {}", self.code, self.message)
    }
}

impl std::error::Error for SqliteFailure {}

impl sqlx::error::DatabaseError for SqliteFailure {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
        Some(self.code.to_string().into())
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        use rusqlite::ffi;
        use sqlx::error::ErrorKind;
        match self.code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                ErrorKind::UniqueViolation
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ErrorKind::ForeignKeyViolation,
            ffi::SQLITE_CONSTRAINT_NOTNULL => ErrorKind::NotNullViolation,
            ffi::SQLITE_CONSTRAINT_CHECK => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}

fn store_error(error: rusqlite::Error) -> StoreError {
    let error = match error {
        rusqlite::Error::SqliteFailure(failure, message) => {
            sqlx::Error::Database(Box::new(SqliteFailure {
                code: failure.extended_code,
                message: message.unwrap_or_else(|| failure.to_string()),
            }))
        }
        other => sqlx::Error::Protocol(other.to_string()),
    };
    StoreError::Database(error)
}

/// Whether the connection is closed after `error` rather than kept: anything but a busy or
/// locked database, a refused value and an unreadable row.
fn may_break_connection(error: &StoreError) -> bool {
    match error {
        StoreError::Database(sqlx::Error::Database(db)) => {
            let primary = db.code().and_then(|c| c.parse::<i32>().ok()).unwrap_or(0) & 0xff;
            !matches!(
                primary,
                rusqlite::ffi::SQLITE_BUSY
                    | rusqlite::ffi::SQLITE_LOCKED
                    | rusqlite::ffi::SQLITE_CONSTRAINT
                    | rusqlite::ffi::SQLITE_TOOBIG
                    | rusqlite::ffi::SQLITE_MISMATCH
            )
        }
        StoreError::Database(_) => true,
        _ => false,
    }
}

/// `column`'s value, or the error sqlx gives for a column it cannot read.
fn value<'r>(row: &'r Row<'_>, column: &str) -> StoreResult<ValueRef<'r>> {
    row.get_ref(column)
        .map_err(|e| unreadable(column, e.to_string()))
}

fn unreadable(column: &str, detail: String) -> StoreError {
    StoreError::Database(sqlx::Error::ColumnDecode {
        index: format!("{column:?}"),
        source: detail.into(),
    })
}

fn mismatch(column: &str, wanted: &str, found: ValueRef<'_>) -> StoreError {
    unreadable(
        column,
        format!("expected {wanted}, found {:?}", found.data_type()),
    )
}

fn text_of<'r>(column: &str, value: ValueRef<'r>) -> StoreResult<Option<&'r str>> {
    match value {
        ValueRef::Null => Ok(None),
        ValueRef::Text(bytes) => std::str::from_utf8(bytes)
            .map(Some)
            .map_err(|e| unreadable(column, e.to_string())),
        other => Err(mismatch(column, "text", other)),
    }
}

fn int_of(column: &str, value: ValueRef<'_>) -> StoreResult<Option<i64>> {
    match value {
        ValueRef::Null => Ok(None),
        ValueRef::Integer(n) => Ok(Some(n)),
        other => Err(mismatch(column, "an integer", other)),
    }
}

fn required<T>(column: &str, value: Option<T>) -> StoreResult<T> {
    value.ok_or_else(|| unreadable(column, "unexpected NULL".into()))
}

impl StoredRow for Row<'_> {
    fn str(&self, column: &str) -> StoreResult<&str> {
        required(column, text_of(column, value(self, column)?)?)
    }
    fn opt_str(&self, column: &str) -> StoreResult<Option<&str>> {
        text_of(column, value(self, column)?)
    }
    fn text(&self, column: &str) -> StoreResult<String> {
        self.str(column).map(str::to_string)
    }
    fn opt_text(&self, column: &str) -> StoreResult<Option<String>> {
        Ok(self.opt_str(column)?.map(str::to_string))
    }
    fn flag(&self, column: &str) -> StoreResult<bool> {
        Ok(self.big(column)? != 0)
    }
    fn int(&self, column: &str) -> StoreResult<i32> {
        let n = self.big(column)?;
        i32::try_from(n).map_err(|e| unreadable(column, e.to_string()))
    }
    fn big(&self, column: &str) -> StoreResult<i64> {
        required(column, int_of(column, value(self, column)?)?)
    }
    fn opt_big(&self, column: &str) -> StoreResult<Option<i64>> {
        int_of(column, value(self, column)?)
    }
    fn opt_float(&self, column: &str) -> StoreResult<Option<f64>> {
        match value(self, column)? {
            ValueRef::Null => Ok(None),
            ValueRef::Real(x) => Ok(Some(x)),
            ValueRef::Integer(n) => Ok(Some(n as f64)),
            other => Err(mismatch(column, "a number", other)),
        }
    }
    fn id(&self, table: &'static str, column: &str) -> StoreResult<Uuid> {
        parse_id(table, self.str(column)?)
    }
    fn opt_id(&self, table: &'static str, column: &str) -> StoreResult<Option<Uuid>> {
        self.opt_str(column)?
            .map(|t| parse_id(table, t))
            .transpose()
    }
    fn time(&self, table: &'static str, column: &str) -> StoreResult<DateTime<Utc>> {
        parse_ts(table, self.str(column)?)
    }
    fn opt_time(&self, table: &'static str, column: &str) -> StoreResult<Option<DateTime<Utc>>> {
        self.opt_str(column)?
            .map(|t| parse_ts(table, t))
            .transpose()
    }
    fn raw_id(&self) -> Option<Param<'_>> {
        self.str("id").ok().map(Param::Text)
    }
}
