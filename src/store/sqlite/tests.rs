//! SQLite's text encodings and URL forms.

use chrono::{DateTime, Utc};

use super::database_path;
use super::text::{parse_ts, ts};

#[test]
fn timestamps_are_fixed_width_so_text_order_is_time_order() {
    let a = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
        .unwrap()
        .with_timezone(&Utc);
    let b = a + chrono::Duration::microseconds(1);
    assert_eq!(ts(a), "2026-01-02T03:04:05.000000Z");
    assert!(ts(a) < ts(b));
    assert_eq!(parse_ts("t", &ts(b)).unwrap(), b);
}

#[test]
fn database_path_reads_both_url_forms() {
    assert_eq!(database_path("sqlite://herald.db"), Some("herald.db"));
    assert_eq!(
        database_path("sqlite:/tmp/x.db?mode=rwc"),
        Some("/tmp/x.db")
    );
    assert_eq!(database_path("sqlite::memory:"), None);
}

mod direct {
    //! The direct connection the lease and the ack run on.

    use std::time::Duration;

    use sqlx::error::ErrorKind;
    use uuid::Uuid;

    use super::super::SqliteStore;
    use crate::model::{Capabilities, Method};
    use crate::store::{LeaseRequest, OpenMode, Store, StoreError};

    async fn store(dir: &tempfile::TempDir) -> SqliteStore {
        let url = format!("sqlite://{}", dir.path().join("herald.db").display());
        SqliteStore::open(&url, OpenMode::Migrate).await.unwrap()
    }

    async fn paused(store: &SqliteStore) -> bool {
        store.settings().await.unwrap().notifier_paused
    }

    const PAUSE: &str = "UPDATE notification_settings SET notifier_paused = 1";

    #[tokio::test(flavor = "multi_thread")]
    async fn a_transaction_commits_only_while_its_caller_waits() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let gone = store.direct.run(|tx| tx.execute(PAUSE, &[]), || false);
        assert!(matches!(gone, Err(StoreError::Conflict(_))), "{gone:?}");
        assert!(!paused(&store).await, "rolled back: its caller had gone");
        let changed = store
            .direct
            .transaction(&store.writer, |tx| tx.execute(PAUSE, &[]))
            .await
            .unwrap();
        assert_eq!(changed, 1);
        assert!(paused(&store).await, "committed");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_connection_has_the_stores_settings_and_keeps_journals_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let settings = store
            .direct
            .transaction(&store.writer, |tx| {
                let mut read = Vec::new();
                for pragma in ["foreign_keys", "synchronous", "temp_store", "busy_timeout"] {
                    tx.for_each_row(format!("PRAGMA {pragma}").as_str(), &[], |row| {
                        read.push(row.get::<_, i64>(0).unwrap());
                        Ok(())
                    })?;
                }
                Ok(read)
            })
            .await
            .unwrap();
        // ON, NORMAL, MEMORY, and the busy timeout in milliseconds.
        assert_eq!(settings, [1, 1, 2, 10_000]);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_refused_write_reads_as_the_same_error_from_either_connection() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let bad = "INSERT INTO users (id, username, email, status, created_at, updated_at)
                   VALUES ('u', 'u', 'u@example.com', 'dormant', 'now', 'now')";
        let direct = store
            .direct
            .transaction(&store.writer, move |tx| tx.execute(bad, &[]))
            .await
            .unwrap_err();
        let mut writer = store.writer.take().await.unwrap();
        let via_sqlx = StoreError::from(sqlx::query(bad).execute(&mut *writer).await.unwrap_err());
        drop(writer);
        let read = |e: &StoreError| match e {
            StoreError::Database(sqlx::Error::Database(db)) => (
                db.kind(),
                db.code().map(|c| c.to_string()),
                db.message().to_string(),
            ),
            other => panic!("not a database error: {other:?}"),
        };
        assert_eq!(read(&direct), read(&via_sqlx));
        assert_eq!(read(&direct).0, ErrorKind::CheckViolation);
        assert_eq!(direct.to_string(), via_sqlx.to_string());
        // A refused value leaves the connection open and usable.
        store
            .direct
            .transaction(&store.writer, |tx| tx.execute(PAUSE, &[]))
            .await
            .unwrap();
        assert!(paused(&store).await);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_in_memory_store_leases_on_the_same_database() {
        let store = SqliteStore::open("sqlite::memory:", OpenMode::Migrate)
            .await
            .unwrap();
        let capabilities = Capabilities {
            methods: vec![Method::Webhook],
            targets: Vec::new(),
        };
        let request = LeaseRequest {
            notifier_id: Uuid::now_v7(),
            limit: 10,
            lease_period: Duration::from_secs(60),
            max_send_attempts: 5,
            capabilities: &capabilities,
        };
        // A connection to another database would have no tables to lease from.
        assert_eq!(store.lease_batch(&request).await.unwrap(), Vec::new());
    }
}
