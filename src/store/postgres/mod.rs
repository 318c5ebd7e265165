//! The PostgreSQL store, for several replicas on several machines. This module keeps what only
//! PostgreSQL does: the pool and its planner setting, native ids, times and arrays, the
//! migration lock, and waking other replicas with `LISTEN/NOTIFY`.

mod bulk;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgArguments, PgConnection, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{Executor, Postgres, Row, Transaction};
use tokio::sync::Notify;
use uuid::Uuid;

use super::backend::{Backend, Handle, On, StoredRow, bind_with, plain_getters, run_on};
use super::migrations::{check_version, migrate, schema_version};
use super::sql::{Dialect, List, Param, Statement};
use super::{
    AttemptRecord, LeaseRequest, LeasedMessage, NewMessage, OpenMode, StoreError, StoreResult,
};

/// PostgreSQL implementation of [`super::Store`].
pub struct PostgresStore {
    pool: PgPool,
    handle: Handle,
}

/// The `LISTEN/NOTIFY` channel that wakes dispatchers on every replica.
const WAKEUP_CHANNEL: &str = "herald_wakeup";

/// Serializes migrations run by replicas starting at the same time.
const MIGRATION_LOCK: i64 = 0x6865_7261_6c64; // "herald"

/// The store's pool settings, `max_connections` aside (also used by the benchmarks' raw-SQL
/// ceiling, so both measure the same planner).
pub fn pool_options() -> PgPoolOptions {
    PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(10))
        // Generic plans built while the queue was empty keep sequential scans forever;
        // planning each execution keeps the lease on its index.
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                conn.execute("SET plan_cache_mode = force_custom_plan")
                    .await?;
                Ok(())
            })
        })
}

impl PostgresStore {
    /// Connects to `url` and, with [`OpenMode::Migrate`], applies pending migrations.
    pub async fn open(url: &str, mode: OpenMode) -> StoreResult<PostgresStore> {
        let shown = crate::secret::redact_url_password(url);
        let pool = pool_options()
            .max_connections(16)
            .connect(url)
            .await
            .map_err(|e| StoreError::Open {
                url: shown.clone(),
                detail: format!("{e}; check that the server is running and database_url is right"),
            })?;
        let store = PostgresStore {
            pool,
            handle: Handle::new(shown),
        };
        match mode {
            OpenMode::Migrate => migrate(&store).await?,
            OpenMode::Existing => {
                check_version(&store.handle.url, schema_version(&store).await?)?;
            }
        }
        Ok(store)
    }
}

fn millis(d: Duration) -> f64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX) as f64
}

/// Binds `params` as native values; lists as arrays.
fn bind<'q>(
    statement: &'q Statement,
    params: &'q [Param<'q>],
) -> sqlx::query::Query<'q, Postgres, PgArguments> {
    bind_with(statement, params, |query, param| match *param {
        Param::Id(id) => query.bind(id),
        Param::Time(at) => query.bind(at),
        Param::Later(span) => query.bind(millis(span)),
        Param::Ids(ids) => query.bind(ids),
        Param::Strs(list) => query.bind(list),
        Param::Strings(list) | Param::List(&List::Strings(list)) => query.bind(list),
        Param::List(List::Strs(list)) => query.bind(list.as_slice()),
        // Lists are made as JSON for SQLite only; values are bound by `bind_with`.
        _ => query.bind(param.json_list()),
    })
}

fn connection<'a>(on: On<'a, Transaction<'static, Postgres>>) -> Option<&'a mut PgConnection> {
    match on {
        On::Pool => None,
        On::Tx(tx) => Some(&mut **tx),
    }
}

impl Backend for PostgresStore {
    type Row = PgRow;
    type Tx = Transaction<'static, Postgres>;
    const DIALECT: Dialect = Dialect::Postgres;

    fn handle(&self) -> &Handle {
        &self.handle
    }

    fn watch_wakeups(&self) -> Arc<Notify> {
        let pool = self.pool.clone();
        self.handle.watch(|wake| listen_for_wakeups(pool, wake))
    }

    async fn begin(&self) -> StoreResult<Self::Tx> {
        Ok(self.pool.begin().await?)
    }

    async fn commit(tx: Self::Tx) -> StoreResult<()> {
        Ok(tx.commit().await?)
    }

    async fn fetch_all<'a>(
        &'a self,
        on: On<'a, Self::Tx>,
        statement: &'a Statement,
        params: &'a [Param<'a>],
    ) -> StoreResult<Vec<PgRow>> {
        let query = bind(statement, params);
        Ok(run_on!(query, fetch_all, &self.pool, connection(on))?)
    }

    /// With bitmap scans disabled until `tx` ends. The lease's pending pass walks an
    /// index of pending messages in id order; with statistics from before a burst (they say
    /// few messages are pending) PostgreSQL instead read every pending message through a
    /// bitmap and sorted them, for each lease of 100: 15 ms instead of 0.3 at 30,000 pending
    /// (`EXPLAIN ANALYZE`), so the drain slowed as the backlog grew. Disabling sorts instead
    /// let it walk the primary key over every message already sent (measured: 5× slower).
    async fn fetch_all_in_index_order<'a>(
        &'a self,
        tx: &'a mut Self::Tx,
        statement: &'a Statement,
        params: &'a [Param<'a>],
    ) -> StoreResult<Vec<PgRow>> {
        // Until the transaction ends: the lease's later passes are planned the same way, and
        // they read the due index, a B-tree, without a bitmap as well.
        sqlx::query("SET LOCAL enable_bitmapscan = off")
            .execute(&mut **tx)
            .await?;
        Ok(bind(statement, params).fetch_all(&mut **tx).await?)
    }

    async fn execute<'a>(
        &'a self,
        on: On<'a, Self::Tx>,
        statement: &'a Statement,
        params: &'a [Param<'a>],
    ) -> StoreResult<u64> {
        let query = bind(statement, params);
        let done = run_on!(query, execute, &self.pool, connection(on))?;
        Ok(done.rows_affected())
    }

    async fn run_script<'a>(tx: &'a mut Self::Tx, script: &'a str) -> StoreResult<()> {
        (&mut **tx).execute(sqlx::raw_sql(script)).await?;
        Ok(())
    }

    async fn lock_migrations(tx: &mut Self::Tx) -> StoreResult<()> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    async fn insert_messages<'a>(
        tx: &'a mut Self::Tx,
        messages: &'a [NewMessage],
    ) -> StoreResult<Vec<Uuid>> {
        bulk::insert_messages(tx, messages).await
    }

    /// `NOTIFY` is delivered when the transaction (or the statement) commits.
    async fn wake_replicas<'a>(&'a self, on: On<'a, Self::Tx>) -> StoreResult<()> {
        let notify = sqlx::query("SELECT pg_notify($1, '')").bind(WAKEUP_CHANNEL);
        run_on!(notify, execute, &self.pool, connection(on))?;
        Ok(())
    }

    async fn lease_batch<'a>(
        &'a self,
        req: &'a LeaseRequest<'a>,
    ) -> StoreResult<Vec<LeasedMessage>> {
        super::shared::queue::lease_batch(self, req).await
    }

    async fn record_attempts<'a>(&'a self, records: &'a [AttemptRecord]) -> StoreResult<u64> {
        bulk::record_attempts(&self.pool, records).await
    }
}

impl StoredRow for PgRow {
    plain_getters!();

    fn id(&self, _table: &'static str, column: &str) -> StoreResult<Uuid> {
        Ok(self.try_get(column)?)
    }

    fn opt_id(&self, _table: &'static str, column: &str) -> StoreResult<Option<Uuid>> {
        Ok(self.try_get(column)?)
    }

    fn time(&self, _table: &'static str, column: &str) -> StoreResult<DateTime<Utc>> {
        Ok(self.try_get(column)?)
    }

    fn opt_time(&self, _table: &'static str, column: &str) -> StoreResult<Option<DateTime<Utc>>> {
        Ok(self.try_get(column)?)
    }

    fn raw_id(&self) -> Option<Param<'_>> {
        self.try_get("id").ok().map(Param::Id)
    }
}

/// Wakes the local dispatcher on every `NOTIFY herald_wakeup`, reconnecting after errors.
/// Runs until the store's notifier is dropped.
async fn listen_for_wakeups(pool: PgPool, wake: std::sync::Weak<Notify>) {
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot LISTEN for wake-ups; retrying in 1s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(WAKEUP_CHANNEL).await {
            tracing::warn!(error = %e, "cannot LISTEN for wake-ups; retrying in 1s");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        // Anything committed while we were not listening must not be missed.
        match wake.upgrade() {
            Some(w) => w.notify_one(),
            None => return,
        }
        loop {
            match listener.try_recv().await {
                Ok(Some(_)) => match wake.upgrade() {
                    Some(w) => w.notify_one(),
                    None => return,
                },
                // The connection dropped; PgListener reconnects on the next call.
                Ok(None) => match wake.upgrade() {
                    Some(w) => w.notify_one(),
                    None => return,
                },
                Err(e) => {
                    tracing::warn!(error = %e, "wake-up listener failed; reconnecting");
                    break;
                }
            }
        }
    }
}
