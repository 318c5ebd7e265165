//! The store's SQLite connections, held by Herald rather than by sqlx's pool: sqlx's pool pings
//! every connection it takes back (one more trip to the connection's worker thread and back per
//! statement, measured at a fifth of the API's CPU per event), and a connection to a local file
//! has nothing a ping could find. A connection whose worker has died is dropped, not reused.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

use sqlx::sqlite::{SqliteConnectOptions, SqliteTransactionManager};
use sqlx::{Connection, SqliteConnection, TransactionManager};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Up to `size` connections to one database, opened when first needed and kept open.
pub(super) struct Connections {
    idle: Mutex<Vec<SqliteConnection>>,
    slots: Arc<Semaphore>,
    options: SqliteConnectOptions,
}

impl Connections {
    /// Room for `size` connections; none is opened yet.
    pub(super) fn new(options: SqliteConnectOptions, size: usize) -> Arc<Connections> {
        Arc::new(Connections {
            idle: Mutex::new(Vec::with_capacity(size)),
            slots: Arc::new(Semaphore::new(size)),
            options,
        })
    }

    /// A connection of this set for the caller alone: an idle one, else a new one once fewer
    /// than `size` are out. Waits while all are out.
    pub(super) async fn take(self: &Arc<Self>) -> Result<Leased, sqlx::Error> {
        let permit = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let idle = self.idle.lock().expect("idle connections").pop();
        let conn = match idle {
            Some(conn) => conn,
            None => SqliteConnection::connect_with(&self.options).await?,
        };
        Ok(Leased {
            conn: Some(conn),
            home: Arc::clone(self),
            broken: false,
            in_transaction: false,
            _permit: permit,
        })
    }
}

/// One connection, taken from its [`Connections`] and given back when dropped (a
/// transaction left open is rolled back first, as sqlx's own transactions do).
pub(super) struct Leased {
    conn: Option<SqliteConnection>,
    home: Arc<Connections>,
    broken: bool,
    in_transaction: bool,
    _permit: OwnedSemaphorePermit,
}

impl Leased {
    /// Notes an error from this connection: one that says its worker is gone, or its file
    /// unreadable, means the connection is closed instead of given back.
    pub(super) fn check<T>(&mut self, result: Result<T, sqlx::Error>) -> Result<T, sqlx::Error> {
        if let Err(sqlx::Error::WorkerCrashed | sqlx::Error::Io(_)) = &result {
            self.broken = true;
        }
        result
    }

    /// Opens a transaction with `statement` (`BEGIN IMMEDIATE` for writes).
    pub(super) async fn begin(&mut self, statement: &'static str) -> Result<(), sqlx::Error> {
        let begun = SqliteTransactionManager::begin(self, Some(statement.into())).await;
        self.check(begun)?;
        self.in_transaction = true;
        Ok(())
    }

    /// Commits the transaction [`Leased::begin`] opened.
    pub(super) async fn commit(&mut self) -> Result<(), sqlx::Error> {
        let committed = SqliteTransactionManager::commit(self).await;
        self.check(committed)?;
        self.in_transaction = false;
        Ok(())
    }
}

impl Deref for Leased {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        self.conn.as_ref().expect("a leased connection")
    }
}

impl DerefMut for Leased {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.conn.as_mut().expect("a leased connection")
    }
}

impl Drop for Leased {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        if self.broken {
            return;
        }
        if self.in_transaction {
            // Queued on the connection's worker ahead of whatever its next user sends.
            SqliteTransactionManager::start_rollback(&mut conn);
        }
        self.home.idle.lock().expect("idle connections").push(conn);
    }
}
