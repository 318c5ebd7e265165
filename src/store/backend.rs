//! What each backend provides so the store's logic is written once ([`super::shared`]): running
//! a [`Statement`] with [`Param`]s on the pool or in a transaction, reading its rows, and the
//! few operations whose SQL truly differs (bulk enqueue, bulk acknowledgement, wake-ups).

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::{Database, Executor, IntoArguments, Pool};
use tokio::sync::Notify;
use uuid::Uuid;

use super::sql::{Dialect, Param, Statement};
use super::{AttemptRecord, NewMessage, StoreResult};

/// Where a statement runs.
pub(super) enum On<'a, Tx> {
    Pool,
    Tx(&'a mut Tx),
}

/// A SQL backend; [`super::Store`] is implemented once for every backend.
pub(super) trait Backend: Send + Sync + 'static {
    type Row: StoredRow + Send + Sync;
    type Tx: Send;
    const DIALECT: Dialect;
    /// `sqlite` or `postgres`.
    const NAME: &'static str;
    /// Whether the lease's statements run in one transaction (SQLite, where writers are
    /// serialized anyway) or each on its own (PostgreSQL, where `SKIP LOCKED` keeps
    /// concurrent leases apart and short statements hold row locks briefly).
    const LEASE_IN_ONE_TRANSACTION: bool;

    /// The database URL with any password removed.
    fn url(&self) -> &str;
    /// Wakes this process's dispatcher.
    fn local_wake(&self) -> &Arc<Notify>;
    /// Starts (once) watching for other processes' changes; returns the notifier.
    fn watch_wakeups(&self) -> Arc<Notify>;

    fn begin(&self) -> impl Future<Output = StoreResult<Self::Tx>> + Send;
    fn commit(tx: Self::Tx) -> impl Future<Output = StoreResult<()>> + Send;
    fn fetch_all<'a>(
        &'a self,
        on: On<'a, Self::Tx>,
        statement: &'a Statement,
        params: &'a [Param<'a>],
    ) -> impl Future<Output = StoreResult<Vec<Self::Row>>> + Send + 'a;
    /// Runs a statement; returns how many rows it changed.
    fn execute<'a>(
        &'a self,
        on: On<'a, Self::Tx>,
        statement: &'a Statement,
        params: &'a [Param<'a>],
    ) -> impl Future<Output = StoreResult<u64>> + Send + 'a;
    /// Runs a migration script (several statements, no parameters).
    fn run_script<'a>(
        tx: &'a mut Self::Tx,
        script: &'a str,
    ) -> impl Future<Output = StoreResult<()>> + Send + 'a;
    /// Keeps other processes from migrating at the same time, until `tx` ends.
    fn lock_migrations(tx: &mut Self::Tx) -> impl Future<Output = StoreResult<()>> + Send;

    /// Inserts new messages in one statement, skipping those whose dedupe hash exists;
    /// returns the ids inserted.
    fn insert_messages<'a>(
        tx: &'a mut Self::Tx,
        messages: &'a [NewMessage],
    ) -> impl Future<Output = StoreResult<Vec<Uuid>>> + Send + 'a;
    /// Tells dispatchers in other processes that messages may have become leasable.
    fn wake_replicas<'a>(
        &'a self,
        on: On<'a, Self::Tx>,
    ) -> impl Future<Output = StoreResult<()>> + Send + 'a;
    /// [`super::Store::record_attempts`].
    fn record_attempts<'a>(
        &'a self,
        records: &'a [AttemptRecord],
    ) -> impl Future<Output = StoreResult<u64>> + Send + 'a;
}

/// A result row, read the same way whichever backend returned it.
pub(super) trait StoredRow {
    fn str(&self, column: &str) -> StoreResult<&str>;
    fn opt_str(&self, column: &str) -> StoreResult<Option<&str>>;
    fn text(&self, column: &str) -> StoreResult<String>;
    fn opt_text(&self, column: &str) -> StoreResult<Option<String>>;
    fn flag(&self, column: &str) -> StoreResult<bool>;
    fn int(&self, column: &str) -> StoreResult<i32>;
    fn big(&self, column: &str) -> StoreResult<i64>;
    fn opt_big(&self, column: &str) -> StoreResult<Option<i64>>;
    fn opt_float(&self, column: &str) -> StoreResult<Option<f64>>;
    fn id(&self, table: &'static str, column: &str) -> StoreResult<Uuid>;
    fn opt_id(&self, table: &'static str, column: &str) -> StoreResult<Option<Uuid>>;
    fn time(&self, table: &'static str, column: &str) -> StoreResult<DateTime<Utc>>;
    fn opt_time(&self, table: &'static str, column: &str) -> StoreResult<Option<DateTime<Utc>>>;
    /// The row's `id` as stored, to bind back even when it does not read as an id.
    fn raw_id(&self) -> Option<Param<'_>>;
}

/// The [`StoredRow`] getters whose column types both backends decode alike.
macro_rules! plain_getters {
    () => {
        fn str(&self, column: &str) -> StoreResult<&str> {
            Ok(self.try_get(column)?)
        }
        fn opt_str(&self, column: &str) -> StoreResult<Option<&str>> {
            Ok(self.try_get(column)?)
        }
        fn text(&self, column: &str) -> StoreResult<String> {
            Ok(self.try_get(column)?)
        }
        fn opt_text(&self, column: &str) -> StoreResult<Option<String>> {
            Ok(self.try_get(column)?)
        }
        fn flag(&self, column: &str) -> StoreResult<bool> {
            Ok(self.try_get(column)?)
        }
        fn int(&self, column: &str) -> StoreResult<i32> {
            Ok(self.try_get(column)?)
        }
        fn big(&self, column: &str) -> StoreResult<i64> {
            Ok(self.try_get(column)?)
        }
        fn opt_big(&self, column: &str) -> StoreResult<Option<i64>> {
            Ok(self.try_get(column)?)
        }
        fn opt_float(&self, column: &str) -> StoreResult<Option<f64>> {
            Ok(self.try_get(column)?)
        }
    };
}
pub(super) use plain_getters;

/// A bound query's rows, on the pool or on a connection (a transaction's).
pub(super) async fn fetch_all_on<'q, DB>(
    pool: &Pool<DB>,
    conn: Option<&mut DB::Connection>,
    query: sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>,
) -> Result<Vec<DB::Row>, sqlx::Error>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
{
    match conn {
        None => query.fetch_all(pool).await,
        Some(conn) => query.fetch_all(conn).await,
    }
}

/// Runs a bound query on the pool or on a connection.
pub(super) async fn execute_on<'q, DB>(
    pool: &Pool<DB>,
    conn: Option<&mut DB::Connection>,
    query: sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>,
) -> Result<DB::QueryResult, sqlx::Error>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
{
    match conn {
        None => query.execute(pool).await,
        Some(conn) => query.execute(conn).await,
    }
}
