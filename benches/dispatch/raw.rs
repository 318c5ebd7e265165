//! The raw ceiling: the store's own schema driven by plain SQL on one connection.

use super::*;

impl std::fmt::Display for RawTimings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tenth = (self.leases.len() / 10).max(1);
        let mean_ms = |leases: &[Duration]| {
            1000.0 * leases.iter().map(Duration::as_secs_f64).sum::<f64>()
                / leases.len().max(1) as f64
        };
        write!(
            f,
            "insert {:.2} s, lease {:.2} s ({} calls; {:.2} ms each in the first tenth, {:.2} ms in the last), mark-sent {:.2} s",
            self.insert.as_secs_f64(),
            self.leases.iter().sum::<Duration>().as_secs_f64(),
            self.leases.len(),
            mean_ms(&self.leases[..tenth.min(self.leases.len())]),
            mean_ms(&self.leases[self.leases.len().saturating_sub(tenth)..]),
            self.mark_sent.as_secs_f64()
        )
    }
}

/// Inserts, leases and marks sent `n` messages with plain SQL on one connection.
pub(super) async fn raw_ceiling(backend: Backend, n: usize) -> anyhow::Result<RawTimings> {
    let db = backend.fresh_db();
    let (store, template) = migrated_store(&db.url).await?;
    drop(store);
    let notifications = Config::default().notifications;
    let binds = RawBinds {
        template_id: template.id,
        payload: serde_json::to_string(&payload(&template))?,
        reason: herald::queue::leased_reason(Uuid::now_v7()),
        lease_period: notifications.lease_period,
        lease_count: notifications.lease_count,
    };
    // One connection with the store's own settings (on PostgreSQL: custom plans, so
    // statistics gathered on the still-empty table cannot pin the lease to a sequential scan).
    let timings = match backend {
        Backend::Sqlite => {
            let options = store::sqlite_connect_options(&db.url)?;
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await?;
            drive(Raw { pool, binds }, n).await?
        }
        Backend::Postgres => {
            let pool = store::postgres_pool_options()
                .max_connections(1)
                .connect(&db.url)
                .await?;
            drive(Raw { pool, binds }, n).await?
        }
    };
    discard(db);
    Ok(timings)
}

/// What the raw-ceiling statements bind besides ids and times, on either backend.
struct RawBinds {
    template_id: Uuid,
    /// The bench event's payload, as JSON text.
    payload: String,
    /// The `status_reason` a lease writes.
    reason: String,
    lease_period: Duration,
    lease_count: u32,
}

const INSERT_COLUMNS: &str = "INSERT INTO notification_messages (id, notification_template_id, \
     user_id, target, method, status, status_reason, created_by, payload, attempt_count, \
     created_at, updated_at, dedupe_hash) ";

/// The SQLite store's timestamp text (fixed-width UTC).
fn sqlite_ts(at: chrono::DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// One backend's raw-ceiling statements, each as its store runs it.
trait RawQueue {
    /// What a lease returns, and the type of its `id` column.
    type Row: Row;
    type Id: for<'r> sqlx::Decode<'r, <Self::Row as Row>::Database>
        + sqlx::Type<<Self::Row as Row>::Database>;
    /// Inserts `count` pending messages in one statement.
    async fn insert(&mut self, count: usize) -> anyhow::Result<()>;
    /// Leases one batch as the store's `lease_batch` does (an empty batch: nothing left).
    async fn lease(&mut self) -> anyhow::Result<Vec<Self::Row>>;
    /// Marks the leased `ids` sent.
    async fn mark_sent(&mut self, ids: &[Self::Id]) -> anyhow::Result<()>;
}

/// One connection to the bench's store, with the store's own settings.
struct Raw<DB: sqlx::Database> {
    pool: sqlx::Pool<DB>,
    binds: RawBinds,
}

/// Inserts `n` messages in batches, leasing and marking sent what each batch made leasable,
/// and times each kind of statement.
async fn drive<DB: sqlx::Database>(mut queue: Raw<DB>, n: usize) -> anyhow::Result<RawTimings>
where
    Raw<DB>: RawQueue<Row = DB::Row>,
    for<'c> &'c str: sqlx::ColumnIndex<DB::Row>,
{
    let mut timings = RawTimings::default();
    let started = Instant::now();
    let (mut inserted, mut sent) = (0, 0);
    while sent < n {
        let count = BATCH.min(n - inserted);
        if count > 0 {
            let clock = Instant::now();
            queue.insert(count).await?;
            inserted += count;
            timings.insert += clock.elapsed();
        }
        loop {
            let clock = Instant::now();
            let rows = queue.lease().await?;
            timings.leases.push(clock.elapsed());
            if rows.is_empty() {
                break;
            }
            let ids = rows
                .iter()
                .map(|row| row.try_get::<<Raw<DB> as RawQueue>::Id, _>("id"))
                .collect::<Result<Vec<_>, _>>()?;
            let clock = Instant::now();
            queue.mark_sent(&ids).await?;
            timings.mark_sent += clock.elapsed();
            sent += ids.len();
        }
    }
    timings.total = started.elapsed();
    queue.pool.close().await;
    Ok(timings)
}

/// The raw ceiling's statements on SQLite: ids and times as text.
impl RawQueue for Raw<Sqlite> {
    type Row = sqlx::sqlite::SqliteRow;
    type Id = String;

    async fn insert(&mut self, count: usize) -> anyhow::Result<()> {
        let now = sqlite_ts(Utc::now());
        let template = self.binds.template_id.to_string();
        let mut insert = QueryBuilder::<Sqlite>::new(INSERT_COLUMNS);
        insert.push_values(0..count, |mut row, _| {
            row.push_bind(Uuid::now_v7().to_string())
                .push_bind(template.as_str())
                .push("NULL, NULL, 'webhook', 'pending', NULL, 'bench'")
                .push_bind(self.binds.payload.as_str())
                .push("0")
                .push_bind(now.clone())
                .push_bind(now.clone())
                .push("NULL");
        });
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        insert.build().execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn lease(&mut self) -> anyhow::Result<Vec<Self::Row>> {
        let now = Utc::now();
        let now_text = sqlite_ts(now);
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // One statement in the shape of the store's lease (pending, due retries and expired
        // leases together), without its capability filter and lease token.
        let rows = sqlx::query(
            "UPDATE notification_messages SET status = 'leased', leased_until = ?1,
                 status_reason = ?2, updated_at = ?3,
                 queued_seconds = (julianday(?3) - julianday(updated_at)) * 86400.0
             WHERE id IN (
                 SELECT id FROM notification_messages
                 WHERE status IN ('pending', 'temporary_failure', 'leased')
                   AND attempt_count < ?4
                   AND (status = 'pending'
                        OR (status = 'temporary_failure' AND next_retry_after <= ?3)
                        OR (status = 'leased' AND leased_until < ?3))
                 ORDER BY id LIMIT ?5)
             RETURNING id, notification_template_id, user_id, target, method, payload,
                 attempt_count, created_at, queued_seconds",
        )
        .bind(sqlite_ts(
            now + chrono::Duration::from_std(self.binds.lease_period)?,
        ))
        .bind(&self.binds.reason)
        .bind(&now_text)
        .bind(5_i64)
        .bind(i64::from(self.binds.lease_count))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows)
    }

    async fn mark_sent(&mut self, ids: &[String]) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE notification_messages SET status = 'sent', status_reason = NULL,
                 attempt_count = attempt_count + 1, leased_until = NULL, updated_at = ?2
             WHERE id IN (SELECT value FROM json_each(?1)) AND status = 'leased'",
        )
        .bind(serde_json::to_string(ids)?)
        .bind(sqlite_ts(Utc::now()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// The raw ceiling's statements on PostgreSQL: native UUIDs, times and JSONB.
impl RawQueue for Raw<Postgres> {
    type Row = sqlx::postgres::PgRow;
    type Id = Uuid;

    async fn insert(&mut self, count: usize) -> anyhow::Result<()> {
        let now = Utc::now();
        let mut insert = QueryBuilder::<Postgres>::new(INSERT_COLUMNS);
        insert.push_values(0..count, |mut row, _| {
            row.push_bind(Uuid::now_v7())
                .push_bind(self.binds.template_id)
                .push("NULL, NULL, 'webhook', 'pending', NULL, 'bench'")
                .push_bind(self.binds.payload.as_str())
                .push_unseparated("::jsonb")
                .push("0")
                .push_bind(now)
                .push_bind(now)
                .push("NULL");
        });
        insert.build().execute(&self.pool).await?;
        Ok(())
    }

    async fn lease(&mut self) -> anyhow::Result<Vec<Self::Row>> {
        // One statement in the shape of the store's lease (see the SQLite one above).
        let rows = sqlx::query(
            "WITH leasable AS (
                 SELECT id FROM notification_messages
                 WHERE status IN ('pending', 'temporary_failure', 'leased')
                   AND attempt_count < $3
                   AND (status = 'pending'
                        OR (status = 'temporary_failure' AND next_retry_after <= now())
                        OR (status = 'leased' AND leased_until < now()))
                 ORDER BY id LIMIT $4
                 FOR UPDATE SKIP LOCKED)
             UPDATE notification_messages m SET status = 'leased',
                 leased_until = now() + $1 * interval '1 millisecond', status_reason = $2,
                 updated_at = now(),
                 queued_seconds = EXTRACT(EPOCH FROM now() - m.updated_at)::double precision
             FROM leasable WHERE m.id = leasable.id
             RETURNING m.id, m.notification_template_id, m.user_id, m.target, m.method,
                 m.payload::text AS payload, m.attempt_count, m.created_at, m.queued_seconds",
        )
        .bind(self.binds.lease_period.as_millis() as f64)
        .bind(&self.binds.reason)
        .bind(5_i32)
        .bind(i64::from(self.binds.lease_count))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    async fn mark_sent(&mut self, ids: &[Uuid]) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE notification_messages SET status = 'sent', status_reason = NULL,
                 attempt_count = attempt_count + 1, leased_until = NULL, updated_at = now()
             WHERE id = ANY($1) AND status = 'leased'",
        )
        .bind(ids)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// Writes `count` messages that were sent a day ago, each with its one attempt, straight into
/// the store's tables (one statement each), as a store that has run for a while holds them.
pub(super) async fn seed_old_sent(
    backend: Backend,
    url: &str,
    template_id: Uuid,
    count: usize,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let count = i64::try_from(count)?;
    match backend {
        Backend::Sqlite => {
            let options = store::sqlite_connect_options(url)?;
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await?;
            let day_ago = sqlite_ts(Utc::now() - chrono::Duration::days(1));
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            // Old ids: a fixed v7-shaped prefix far in the past, so they sort before new ones.
            sqlx::query(
                "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < ?1)
                 INSERT INTO notification_messages (id, notification_template_id, user_id,
                     target, method, status, status_reason, created_by, payload,
                     attempt_count, created_at, updated_at, dedupe_hash)
                 SELECT printf('00000000-0000-7000-8000-%012d', i), ?2, NULL, NULL, 'webhook',
                     'sent', NULL, 'bench', '{\"labels\":{\"name\":\"old\"},\"data\":{}}', 1,
                     ?3, ?3, NULL FROM c",
            )
            .bind(count)
            .bind(template_id.to_string())
            .bind(&day_ago)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO notification_attempts (message_id, attempt_number, notifier_id,
                     started_at, duration_ms, outcome, reason)
                 SELECT id, 1, ?1, created_at, 3, 'sent', NULL FROM notification_messages
                 WHERE id < '00000000-0000-7000-8000-999999999999'",
            )
            .bind(Uuid::now_v7().to_string())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            pool.close().await;
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url).await?;
            sqlx::query(
                "INSERT INTO notification_messages (id, notification_template_id, user_id,
                     target, method, status, status_reason, created_by, payload,
                     attempt_count, created_at, updated_at, dedupe_hash)
                 SELECT ('00000000-0000-7000-8000-' || lpad(i::text, 12, '0'))::uuid, $2,
                     NULL, NULL, 'webhook', 'sent', NULL, 'bench',
                     '{\"labels\":{\"name\":\"old\"},\"data\":{}}'::jsonb, 1,
                     now() - interval '1 day', now() - interval '1 day', NULL
                 FROM generate_series(1, $1) AS i",
            )
            .bind(count)
            .bind(template_id)
            .execute(&mut conn)
            .await?;
            sqlx::query(
                "INSERT INTO notification_attempts (message_id, attempt_number, notifier_id,
                     started_at, duration_ms, outcome, reason)
                 SELECT id, 1, gen_random_uuid(), created_at, 3, 'sent', NULL
                 FROM notification_messages WHERE status = 'sent'",
            )
            .execute(&mut conn)
            .await?;
            // As autovacuum would have by then: the planner sees the table as it is.
            sqlx::query("VACUUM ANALYZE notification_messages")
                .execute(&mut conn)
                .await?;
        }
    }
    eprintln!(
        "  seeded {count} old sent messages in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
