//! The test harness itself: fresh databases on both backends, removed afterwards.

use crate::common;
use crate::for_both_backends;

use std::path::Path;
use std::str::FromStr;

use common::{TestDb, postgres_db, psql, sqlite_db};

#[test]
fn postgres_databases_created_in_parallel_are_distinct_and_reachable() {
    let (first, second) = std::thread::scope(|scope| {
        let first = scope.spawn(postgres_db);
        let second = scope.spawn(postgres_db);
        (first.join().unwrap(), second.join().unwrap())
    });

    assert_ne!(first.name, second.name);
    assert_ne!(first.url, second.url);
    for db in [&first, &second] {
        assert_eq!(db.backend, "postgres");
        assert!(db.name.starts_with("herald_test_"), "{}", db.name);
        let without_query = db.url.split('?').next().unwrap();
        assert!(
            db.url.starts_with("postgres://") && without_query.ends_with(&format!("/{}", db.name)),
            "{}",
            db.url
        );
        assert_eq!(psql(&db.url, "select 1").unwrap(), "1");
        assert_eq!(psql(&db.url, "select current_database()").unwrap(), db.name);
        let tables = "select count(*) from information_schema.tables where table_schema = 'public'";
        assert_eq!(
            psql(&db.url, tables).unwrap(),
            "0",
            "not empty: {}",
            db.name
        );
    }

    let first_name = first.name.clone();
    drop(first);
    let exists = format!("select count(*) from pg_database where datname = '{first_name}'");
    assert_eq!(
        psql(&second.url, &exists).unwrap(),
        "0",
        "{first_name} not dropped"
    );
}

#[test]
fn sqlite_url_points_into_an_existing_temp_dir() {
    let db = sqlite_db();
    assert_eq!(db.backend, "sqlite");
    let path = db.url.strip_prefix("sqlite://").expect("a sqlite:// URL");
    let path = Path::new(path);
    assert!(path.is_absolute(), "{}", db.url);
    assert_eq!(path.file_name().unwrap(), "herald.db");
    let dir = path.parent().unwrap().to_path_buf();
    assert!(dir.is_dir(), "{} does not exist", dir.display());
    assert!(dir.starts_with(std::env::temp_dir()), "{}", dir.display());
    assert!(!path.exists(), "the database file should not exist yet");

    let other = sqlite_db();
    assert_ne!(other.url, db.url);

    drop(db);
    assert!(!dir.exists(), "{} not removed", dir.display());
}

/// The store's driver accepts both URLs and each database starts empty.
async fn sqlx_connects_to_a_fresh_database(db: TestDb) -> anyhow::Result<()> {
    let table_count = match db.backend {
        "sqlite" => {
            let options =
                sqlx::sqlite::SqliteConnectOptions::from_str(&db.url)?.create_if_missing(true);
            let pool = sqlx::SqlitePool::connect_with(options).await?;
            let count: i64 = sqlx::query_scalar("select count(*) from sqlite_master")
                .fetch_one(&pool)
                .await?;
            pool.close().await;
            count
        }
        "postgres" => {
            let pool = sqlx::PgPool::connect(&db.url).await?;
            let count: i64 = sqlx::query_scalar(
                "select count(*) from information_schema.tables where table_schema = 'public'",
            )
            .fetch_one(&pool)
            .await?;
            pool.close().await;
            count
        }
        other => anyhow::bail!("unknown backend {other}"),
    };
    anyhow::ensure!(table_count == 0, "{db:?} has {table_count} tables");
    Ok(())
}

/// A body returning `()` works too.
async fn backend_matches_the_module(db: TestDb) {
    assert!(db.is_sqlite() != db.is_postgres());
    assert!(db.url.starts_with(match db.backend {
        "sqlite" => "sqlite://",
        _ => "postgres://",
    }));
}

for_both_backends!(
    sqlx_connects_to_a_fresh_database,
    backend_matches_the_module
);
