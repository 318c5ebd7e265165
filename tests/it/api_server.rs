//! The HTTP API's server over real TCP on loopback, with a real client: health, readiness,
//! JSON errors, the body limit and a graceful stop. The request log is checked on the real
//! binary (`serve::serve_with_http_…`), whose subscriber is its own.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;

use herald::api::MAX_BODY_BYTES;

use crate::common;
use crate::for_both_backends;
use common::TestDb;
use common::api::RunningApi;

type R = anyhow::Result<()>;

async fn json_of(response: reqwest::Response) -> anyhow::Result<(StatusCode, Value)> {
    let status = response.status();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    assert_eq!(
        content_type.as_deref(),
        Some("application/json"),
        "{status}"
    );
    Ok((status, response.json().await?))
}

#[tokio::test]
async fn healthz_answers_ok_without_touching_the_store() -> R {
    let db = common::sqlite_db();
    let api = RunningApi::start(&db).await;
    let (status, body) = json_of(reqwest::get(api.at("/healthz")).await?).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "status": "ok" }));
    let head = reqwest::Client::new()
        .head(api.at("/healthz"))
        .send()
        .await?;
    assert_eq!(head.status(), StatusCode::OK);
    assert!(head.bytes().await?.is_empty(), "HEAD has no body");
    Ok(())
}

/// Drops the table `/readyz` reads, as a store wiped or replaced under a running server is.
async fn drop_settings_table(db: &TestDb) -> R {
    let sql = "DROP TABLE notification_settings";
    if db.is_postgres() {
        common::psql(&db.url, sql).map_err(anyhow::Error::msg)?;
    } else {
        let mut other = sqlx::SqliteConnection::connect(&db.url).await?;
        sqlx::query(sql).execute(&mut other).await?;
    }
    Ok(())
}

async fn readyz_is_ok_on_a_migrated_store_and_503_once_its_tables_are_gone(db: TestDb) -> R {
    let api = RunningApi::start(&db).await;
    let (status, body) = json_of(reqwest::get(api.at("/readyz")).await?).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "status": "ready" }));

    drop_settings_table(&db).await?;
    let (status, body) = json_of(reqwest::get(api.at("/readyz")).await?).await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let error = body["error"].as_str().expect("an error sentence");
    assert!(error.starts_with("not ready: "), "{error}");
    assert!(error.contains("notification_settings"), "says why: {error}");
    assert!(
        error.ends_with("check that the store is reachable and migrated (`herald migrate`)"),
        "{error}"
    );
    // Alive all the same.
    let health = reqwest::get(api.at("/healthz")).await?;
    assert_eq!(health.status(), StatusCode::OK);
    Ok(())
}

for_both_backends!(readyz_is_ok_on_a_migrated_store_and_503_once_its_tables_are_gone);

#[tokio::test]
async fn unknown_paths_are_a_json_404_naming_the_path() -> R {
    let db = common::sqlite_db();
    let api = RunningApi::start(&db).await;
    for path in ["/", "/api/v1/nothing", "/healthz/extra"] {
        let (status, body) = json_of(reqwest::get(api.at(path)).await?).await?;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            body,
            json!({ "error": format!("no endpoint at {path}; herald serves /healthz, /readyz, /metrics and the API under /api/v1") }),
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_wrong_method_is_a_json_405_listing_the_allowed_ones() -> R {
    let db = common::sqlite_db();
    let api = RunningApi::start(&db).await;
    let client = reqwest::Client::new();
    for (method, path) in [
        (reqwest::Method::POST, "/metrics"),
        (reqwest::Method::DELETE, "/healthz"),
        (reqwest::Method::PUT, "/readyz"),
    ] {
        let response = client.request(method.clone(), api.at(path)).send().await?;
        let allow = response
            .headers()
            .get(reqwest::header::ALLOW)
            .map(|v| v.to_str().unwrap_or_default().to_owned());
        assert_eq!(allow.as_deref(), Some("GET,HEAD"), "{method} {path}");
        let (status, body) = json_of(response).await?;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_eq!(
            body,
            json!({ "error": format!("{method} is not allowed on {path}; the Allow header lists the methods it takes") }),
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_body_over_1_mib_is_refused_with_a_json_413() -> R {
    let db = common::sqlite_db();
    let api = RunningApi::start(&db).await;
    let client = reqwest::Client::new();
    let over = vec![b'x'; 2 * 1024 * 1024];
    for path in ["/api/v1/events", "/healthz"] {
        let response = client
            .post(api.at(path))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(over.clone())
            .send()
            .await?;
        let (status, body) = json_of(response).await?;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        assert_eq!(
            body,
            json!({ "error": "the request body is 2097152 bytes, over the 1048576-byte (1 MiB) limit; send a smaller one" }),
        );
    }
    // At the limit a body is not refused for its size: it reaches the endpoint, which asks
    // for a token.
    let response = client
        .post(api.at("/api/v1/events"))
        .body(vec![b'x'; MAX_BODY_BYTES])
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    Ok(())
}

/// A request held in flight: `/readyz` waiting on a lock another connection holds on the
/// table it reads. Returns the lock's connection (commit it to let the request go) once the
/// request is waiting.
async fn hold_readyz_in_flight(
    db: &TestDb,
    api: &RunningApi,
) -> anyhow::Result<(
    sqlx::PgConnection,
    tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>,
)> {
    let mut locker = sqlx::PgConnection::connect(&db.url).await?;
    sqlx::query("BEGIN").execute(&mut locker).await?;
    sqlx::query("LOCK TABLE notification_settings IN ACCESS EXCLUSIVE MODE")
        .execute(&mut locker)
        .await?;
    let url = api.at("/readyz");
    let request = tokio::spawn(async move { reqwest::get(url).await });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'notification_settings'::regclass",
        )
        .fetch_one(&mut locker)
        .await?;
        if waiting > 0 {
            return Ok((locker, request));
        }
        anyhow::ensure!(Instant::now() < deadline, "/readyz never reached the store");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_refuses_new_connections_and_lets_a_request_in_flight_finish() -> R {
    let db = common::postgres_db();
    let api = RunningApi::start(&db).await;
    let addr = api.addr;
    let (mut locker, request) = hold_readyz_in_flight(&db, &api).await?;

    let stopping = tokio::spawn(api.stop(Duration::from_secs(10)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting connections while stopping"
    );
    assert!(
        !stopping.is_finished(),
        "stopped before the request finished"
    );

    sqlx::query("COMMIT").execute(&mut locker).await?;
    let response = request.await??;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the request in flight finished"
    );
    assert!(stopping.await?, "every request finished within the bound");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_waits_no_longer_than_its_bound_for_a_request_in_flight() -> R {
    let db = common::postgres_db();
    let api = RunningApi::start(&db).await;
    let (mut locker, _request) = hold_readyz_in_flight(&db, &api).await?;
    let started = Instant::now();
    assert!(
        !api.stop(Duration::from_millis(300)).await,
        "the request was still running"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    sqlx::query("COMMIT").execute(&mut locker).await?;
    Ok(())
}
