//! `herald serve` as a process: clean stops, crashes, and several replicas sharing a store.

use crate::common;
use crate::for_both_backends;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestDb;
use common::cli::{Run, herald};
use common::http_sink::{HttpSink, Response};
use common::serve::Serve;
use common::store::count;
use herald::model::MessageState;
use herald::store::{self, OpenMode, Store};

/// A replica of the store in `dir`, configured by its `herald.toml`.
fn replica(dir: &Path, name: &str, extra: &[&str]) -> Serve {
    Serve::start(dir, "herald.toml", name, extra)
}

fn write_config(dir: &Path, db: &TestDb, endpoint: &str, extra: &str) {
    std::fs::write(
        dir.join("herald.toml"),
        format!(
            "database_url = \"{}\"\n\n[notifications]\nmethod = \"webhook\"\nfetch_interval = \"1s\"\nstore_sync_interval = \"50ms\"\n{extra}\n\n[notifications.webhook]\nendpoint = \"{endpoint}\"\n",
            db.url
        ),
    )
    .expect("write herald.toml");
}

async fn migrated(db: &TestDb) -> Arc<dyn Store> {
    let store = store::open(&db.url, OpenMode::Migrate).await.unwrap();
    store
        .upsert_catalog(herald::catalog::builtin())
        .await
        .unwrap();
    store
}

async fn counts(store: &dyn Store) -> Vec<(MessageState, i64)> {
    store.count_by_state().await.unwrap()
}

async fn wait_for_sent(store: &dyn Store, n: i64, timeout: Duration, replicas: &[&Serve]) {
    let deadline = Instant::now() + timeout;
    loop {
        let c = counts(store).await;
        if count(&c, MessageState::Sent) == n {
            return;
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = replicas.iter().map(|r| r.log()).collect();
            panic!(
                "timed out waiting for {n} sent; counts {c:?}\nlogs:\n{}",
                logs.join("\n---\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn unique_ids(sink: &HttpSink) -> HashSet<String> {
    sink.requests()
        .iter()
        .map(|r| r.header("x-message-id").unwrap().to_string())
        .collect()
}

async fn sigterm_finishes_in_flight_work_and_exits_zero(db: TestDb) {
    let store = migrated(&db).await;
    let sink =
        HttpSink::start(|_r, _n| Response::new(200).with_delay(Duration::from_millis(30))).await;
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &db, &sink.url, "lease_count = 20");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let replica = replica(dir.path(), "a", &["--metrics-addr", &addr]);
    common::seed::webhook_messages(&*store, 400).await;
    assert!(
        sink.wait_for(40, Duration::from_secs(20)).await,
        "sink did not receive enough requests"
    );

    // Deliveries are under way; their attempts show up as they finish.
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let text = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .expect("metrics endpoint")
            .text()
            .await
            .unwrap();
        if text.contains("herald_dispatch_attempts_total{") || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(metrics.contains("herald_dispatch_attempts_total{event=\"test_notification\",method=\"webhook\",result=\"sent\"}"), "{metrics}");
    assert!(metrics.contains("herald_inflight"), "{metrics}");

    let log = replica.log_path();
    let code = replica.terminate();
    assert_eq!(
        code,
        0,
        "{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
    let c = counts(&*store).await;
    assert_eq!(
        count(&c, MessageState::Leased),
        0,
        "nothing left leased: {c:?}"
    );
    assert_eq!(count(&c, MessageState::Sent), sink.count() as i64, "{c:?}");
    assert!(
        count(&c, MessageState::Pending) > 0,
        "stopped mid-queue: {c:?}"
    );
    assert!(
        store.list_replicas().await.unwrap().is_empty(),
        "heartbeat row removed"
    );
}

async fn a_killed_replica_loses_nothing(db: TestDb) {
    let store = migrated(&db).await;
    let sink =
        HttpSink::start(|_r, _n| Response::new(200).with_delay(Duration::from_millis(20))).await;
    let dir = tempfile::tempdir().unwrap();
    write_config(
        dir.path(),
        &db,
        &sink.url,
        "lease_count = 50\nlease_period = \"2s\"\ndispatch_timeout = \"1s\"",
    );
    let first = replica(dir.path(), "first", &[]);
    let ids = common::seed::webhook_messages(&*store, 300).await;
    assert!(
        sink.wait_for(60, Duration::from_secs(20)).await,
        "sink did not receive enough requests"
    );
    first.signal("-KILL");
    drop(first);
    let c = counts(&*store).await;
    assert!(
        count(&c, MessageState::Leased) > 0,
        "killed mid-batch: {c:?}"
    );

    let second = replica(dir.path(), "second", &[]);
    wait_for_sent(&*store, 300, Duration::from_secs(60), &[&second]).await;
    let delivered = unique_ids(&sink);
    for id in &ids {
        assert!(
            delivered.contains(&id.to_string()),
            "message {id} was never delivered"
        );
    }
    assert_eq!(second.terminate(), 0);
}

/// `127.0.0.1:PORT` for a port that was free a moment ago.
fn free_loopback_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_http_answers_healthz_and_stops_cleanly_on_sigterm() {
    let db = common::sqlite_db();
    let store = migrated(&db).await;
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &db, "http://127.0.0.1:9/hook", "");
    let addr = free_loopback_addr();
    let replica = replica(
        dir.path(),
        "api",
        &["--http", &addr, "--log-filter", "http request"],
    );

    let deadline = Instant::now() + Duration::from_secs(20);
    let health = loop {
        match reqwest::get(format!("http://{addr}/healthz")).await {
            Ok(response) => break response,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(err) => panic!("/healthz never answered ({err}):\n{}", replica.log()),
        }
    };
    assert_eq!(health.status(), reqwest::StatusCode::OK);
    assert_eq!(
        health.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({ "status": "ok" })
    );
    let ready = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
    assert_eq!(ready.status(), reqwest::StatusCode::OK);
    let metrics = reqwest::get(format!("http://{addr}/metrics?token=s3cret-token"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("herald_inflight 0"), "{metrics}");
    assert!(
        replica
            .log()
            .contains(&format!("serving the HTTP API at http://{addr}")),
        "{}",
        replica.log()
    );

    let log = replica.log_path();
    let code = replica.terminate();
    assert_eq!(
        code,
        0,
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "the API stopped with the process"
    );
    // Every request at debug (shown by --log-filter): method, path, status, duration; never
    // the query, which may carry a token.
    let log = std::fs::read_to_string(log).unwrap();
    let requests: Vec<&str> = log.lines().filter(|l| l.contains("http request")).collect();
    for (path, status) in [("/healthz", 200), ("/readyz", 200), ("/metrics", 200)] {
        let fields = [
            "DEBUG herald::api".to_string(),
            "method=GET".to_string(),
            format!("path={path} "),
            format!("status={status}"),
            "duration=".to_string(),
        ];
        assert!(
            requests
                .iter()
                .any(|l| fields.iter().all(|f| l.contains(f.as_str()))),
            "no line with {fields:?} in\n{log}"
        );
    }
    assert!(!log.contains("s3cret"), "a query string was logged:\n{log}");
    assert!(
        store.list_replicas().await.unwrap().is_empty(),
        "heartbeat row removed"
    );
}

#[tokio::test]
async fn serve_refuses_to_start_when_its_http_address_is_in_use() {
    let db = common::sqlite_db();
    let store = migrated(&db).await;
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &db, "http://127.0.0.1:9/hook", "");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let refusal = |setting: &str| {
        format!(
            "error: cannot listen on {addr} for the HTTP API ({setting}): address in use; stop what is using it or choose another address"
        )
    };

    let flag = Run::of(&mut herald(
        dir.path(),
        &[
            "--config",
            "herald.toml",
            "serve",
            "--http",
            &addr.to_string(),
        ],
    ))
    .fails_with(&refusal("--http"));
    assert!(
        !flag.stderr.contains("herald serve started"),
        "{}",
        flag.stderr
    );

    let mut config = std::fs::read_to_string(dir.path().join("herald.toml")).unwrap();
    config.push_str(&format!("\n[http]\nlisten = \"{addr}\"\n"));
    std::fs::write(dir.path().join("herald.toml"), config).unwrap();
    Run::of(&mut herald(
        dir.path(),
        &["--config", "herald.toml", "serve"],
    ))
    .fails_with(&refusal("http.listen"));

    assert!(
        store.list_replicas().await.unwrap().is_empty(),
        "no replica started, so nothing was leased"
    );
    drop(taken);
}

for_both_backends!(
    sigterm_finishes_in_flight_work_and_exits_zero,
    a_killed_replica_loses_nothing,
);

/// Three replicas on PostgreSQL share 20,000 messages, each delivered exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_postgres_replicas_share_the_work_and_deliver_each_message_once() {
    let db = common::postgres_db();
    let store = migrated(&db).await;
    let sink = HttpSink::ok().await;
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &db, &sink.url, "");
    let replicas: Vec<Serve> = ["r1", "r2", "r3"]
        .iter()
        .map(|name| replica(dir.path(), name, &[]))
        .collect();
    common::seed::webhook_messages(&*store, 20_000).await;
    let refs: Vec<&Serve> = replicas.iter().collect();
    wait_for_sent(&*store, 20_000, Duration::from_secs(180), &refs).await;
    assert_eq!(sink.count(), 20_000, "each message delivered exactly once");
    assert_eq!(unique_ids(&sink).len(), 20_000);
    let per_notifier = common::psql(
        &db.url,
        "SELECT count(*) FROM notification_attempts GROUP BY notifier_id",
    )
    .unwrap();
    let shares: Vec<i64> = per_notifier
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(shares.len(), 3, "all three replicas delivered: {shares:?}");
    assert!(shares.iter().all(|n| *n > 0), "{shares:?}");
    for r in replicas {
        assert_eq!(r.terminate(), 0);
    }
}
