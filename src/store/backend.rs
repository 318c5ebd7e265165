//! What each backend provides so the store's logic is written once ([`super::shared`]): running
//! a [`Statement`] with [`Param`]s on the pool or in a transaction, reading its rows, and the
//! few operations whose SQL truly differs (bulk enqueue, bulk acknowledgement, wake-ups).

use std::future::Future;
use std::sync::{Arc, OnceLock, Weak};

use chrono::{DateTime, Utc};
use sqlx::query::Query;
use sqlx::{Database, Encode, Type};
use tokio::sync::Notify;
use uuid::Uuid;

use super::sql::{Dialect, Param, Statement};
use super::{AttemptRecord, LeaseRequest, LeasedMessage, NewMessage, StoreResult};

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

    fn handle(&self) -> &Handle;
    /// Starts (once, through [`Handle::watch`]) noticing other processes' changes; returns
    /// the notifier.
    fn watch_wakeups(&self) -> Arc<Notify>;

    fn begin(&self) -> impl Future<Output = StoreResult<Self::Tx>> + Send;
    fn commit(tx: Self::Tx) -> impl Future<Output = StoreResult<()>> + Send;
    fn fetch_all<'a>(
        &'a self,
        on: On<'a, Self::Tx>,
        statement: &'a Statement,
        params: &'a [Param<'a>],
    ) -> impl Future<Output = StoreResult<Vec<Self::Row>>> + Send + 'a;
    /// [`Backend::fetch_all`] in `tx` for a statement whose `ORDER BY … LIMIT` an index
    /// provides, run so that the order is read from the index whatever the statistics say.
    fn fetch_all_in_index_order<'a>(
        &'a self,
        tx: &'a mut Self::Tx,
        statement: &'a Statement,
        params: &'a [Param<'a>],
    ) -> impl Future<Output = StoreResult<Vec<Self::Row>>> + Send + 'a {
        self.fetch_all(On::Tx(tx), statement, params)
    }
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
    /// [`super::Store::lease_batch`].
    fn lease_batch<'a>(
        &'a self,
        req: &'a LeaseRequest<'a>,
    ) -> impl Future<Output = StoreResult<Vec<LeasedMessage>>> + Send + 'a;
    /// [`super::Store::record_attempts`].
    fn record_attempts<'a>(
        &'a self,
        records: &'a [AttemptRecord],
    ) -> impl Future<Output = StoreResult<u64>> + Send + 'a;
}

/// What every backend's store holds besides its pool.
pub(super) struct Handle {
    /// The database URL with any password removed.
    pub url: String,
    wake: Arc<Notify>,
    watching: OnceLock<()>,
}

impl Handle {
    pub fn new(url: String) -> Handle {
        Handle {
            url,
            wake: Arc::new(Notify::new()),
            watching: OnceLock::new(),
        }
    }

    /// Wakes this process's dispatcher.
    pub fn wake_here(&self) {
        self.wake.notify_one();
    }

    /// Spawns `watcher` the first time (it runs until the notifier is dropped); returns the
    /// notifier.
    pub fn watch<F>(&self, watcher: impl FnOnce(Weak<Notify>) -> F) -> Arc<Notify>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.watching.get_or_init(|| {
            tokio::spawn(watcher(Arc::downgrade(&self.wake)));
        });
        self.wake.clone()
    }
}

/// Binds the values every backend encodes alike, and hands the others to `encode`.
pub(super) fn bind_with<'q, DB>(
    statement: &'q Statement,
    params: &'q [Param<'q>],
    mut encode: impl FnMut(
        Query<'q, DB, DB::Arguments<'q>>,
        &'q Param<'q>,
    ) -> Query<'q, DB, DB::Arguments<'q>>,
) -> Query<'q, DB, DB::Arguments<'q>>
where
    DB: Database,
    &'q str: Encode<'q, DB> + Type<DB>,
    Option<&'q str>: Encode<'q, DB> + Type<DB>,
    bool: Encode<'q, DB> + Type<DB>,
    i32: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
{
    let mut query = sqlx::query(&statement.text);
    for param in params {
        query = match *param {
            Param::Text(text) => query.bind(text),
            Param::OptText(text) => query.bind(text),
            Param::Bool(flag) => query.bind(flag),
            Param::I32(n) => query.bind(n),
            Param::I64(n) => query.bind(n),
            _ => encode(query, param),
        };
    }
    query
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

/// Runs `$query.$method(…)` on `$conn` (a transaction's connection) when there is one, else
/// on `$pool`.
macro_rules! run_on {
    ($query:expr, $method:ident, $pool:expr, $conn:expr) => {{
        let query = $query;
        match $conn {
            None => query.$method($pool).await,
            Some(conn) => query.$method(conn).await,
        }
    }};
}
pub(super) use run_on;
