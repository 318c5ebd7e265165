//! Faults and hostile peers (DESIGN §5–§6): each test breaks a promise on purpose — a peer that
//! answers with NUL and escape bytes, huge bodies, absurd `Retry-After`s, hangs and resets; a
//! replica with a partial configuration; purges during delivery; a PostgreSQL restart and a
//! SQLite store locked by another process mid-drain — and shows every message ends where it
//! should, nothing is lost and no replica wedges.

use crate::common;
use crate::for_both_backends;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use common::TestDb;
use common::cli::herald;
use common::dispatcher::Running;
use common::http_sink::{HttpSink, Response};
use common::seed::test_notifications as queue;
use common::serve::Serve;
use common::smtp_server::{SmtpServer, SmtpServerOptions};
use common::store::{count, lease_with, messages_in, migrated, outcome, wait_for_totals};
use herald::config::Config;
use herald::model::{MessageState, Method};
use herald::store::NewUser;
use herald::telemetry::Metrics;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

type R = anyhow::Result<()>;

/// Fast settings and `extra` TOML (targets, sections) on `db`; `notifications` lines (`key = value`) replace the defaults of the same key.
fn config(db: &TestDb, notifications: &str, extra: &str) -> Config {
    let key = |line: &str| {
        line.split('=')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let overridden: Vec<String> = notifications.lines().map(key).collect();
    let defaults: Vec<&str> = [
        "method = \"webhook\"",
        "fetch_interval = \"200ms\"",
        "retry_interval = \"300ms\"",
        "store_sync_interval = \"50ms\"",
        "lease_period = \"10s\"",
        "dispatch_timeout = \"2s\"",
        "max_send_attempts = 3",
    ]
    .into_iter()
    .filter(|line| !overridden.contains(&key(line)))
    .collect();
    let text = format!(
        "database_url = \"{}\"\n\n[notifications]\n{}\n{notifications}\n{extra}",
        db.url,
        defaults.join("\n")
    );
    Config::from_toml_str(&text, "faults.toml", &|_| None).expect("test config")
}

fn webhook_target(name: &str, url: &str) -> String {
    format!(
        "\n[[targets]]\ntype = \"webhook\"\nname = \"{name}\"\nnotify_on = [\"test_notification\"]\nurl = \"{url}\"\n"
    )
}

/// Queues `n` fresh webhook messages for the target `name`; returns their ids.
async fn to_target(store: &dyn herald::store::Store, n: usize, name: &str) -> Vec<Uuid> {
    let now = chrono::Duration::zero();
    queue(store, n, Method::Webhook, Some(name), None, now).await
}

/// A reason fit for a terminal and a log line: no control characters at all.
fn assert_clean(reason: &str) {
    assert!(
        !reason.chars().any(char::is_control),
        "control characters in {reason:?}"
    );
    assert!(
        reason.chars().count() <= herald::queue::MAX_REASON_CHARS + 120,
        "unbounded reason: {} chars",
        reason.chars().count()
    );
}

// ---- hostile HTTP peers ------------------------------------------------------------------

async fn a_nul_answering_webhook_never_wedges_delivery(db: TestDb) -> R {
    let store = migrated(&db).await;
    let hostile = HttpSink::start(|_, _| {
        Response::new(400).with_body("bad\0request \u{1b}[31mred\u{1b}[0m \u{1b}]0;pwned\u{7}\0end")
    })
    .await;
    let healthy = HttpSink::ok().await;
    let targets = format!(
        "{}{}",
        webhook_target("poison", &format!("{}/hook", hostile.url)),
        webhook_target("healthy", &format!("{}/hook", healthy.url))
    );
    let config = config(&db, "", &targets);
    let mut poisoned = Vec::new();
    for _ in 0..4 {
        poisoned.extend(to_target(&*store, 5, "poison").await);
        to_target(&*store, 50, "healthy").await;
    }
    let running = Running::start(&config).await;
    wait_for_totals(
        &*store,
        &[
            (MessageState::Sent, 200),
            (MessageState::PermanentFailure, 20),
        ],
        60,
    )
    .await;
    for m in messages_in(&*store, MessageState::PermanentFailure).await {
        assert!(poisoned.contains(&m.id));
        let reason = m.status_reason.unwrap_or_default();
        assert!(reason.starts_with("webhook 400"), "{reason}");
        assert!(reason.contains("badrequest"), "{reason}");
        assert_clean(&reason);
    }
    // Still delivering: the poison did not wedge the ack path.
    to_target(&*store, 50, "healthy").await;
    wait_for_totals(&*store, &[(MessageState::Sent, 250)], 30).await;
    running.stop().await;
    Ok(())
}

/// Answers every connection with half a status line, then resets it.
async fn resetting_peer() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = socket.read(&mut buf).await;
                let _ = socket.write_all(b"HTTP/1.1 20").await;
                // A zero linger sends RST on drop (and does not block: there is nothing to wait for).
                #[allow(deprecated)]
                let _ = socket.set_linger(Some(Duration::ZERO));
                drop(socket);
            });
        }
    });
    format!("http://{addr}/hook")
}

async fn hostile_peers_end_in_the_state_they_earn(db: TestDb) -> R {
    let store = migrated(&db).await;
    let huge =
        HttpSink::start(|_, _| Response::new(500).with_body("\u{1b}[2J".repeat(400_000))).await;
    let absurd =
        HttpSink::start(|_, _| Response::new(503).with_header("Retry-After", "99999999999")).await;
    let hang = HttpSink::start(|_, _| Response::ok().with_delay(Duration::from_secs(30))).await;
    let reset = resetting_peer().await;
    let healthy = HttpSink::ok().await;
    let targets = [
        webhook_target("huge", &format!("{}/hook", huge.url)),
        webhook_target("absurd", &format!("{}/hook", absurd.url)),
        webhook_target("hang", &format!("{}/hook", hang.url)),
        webhook_target("reset", &reset),
        webhook_target("healthy", &format!("{}/hook", healthy.url)),
    ]
    .concat();
    // A long retry interval keeps each failure in temporary_failure where the test reads it.
    let config = config(
        &db,
        "retry_interval = \"1h\"\nmax_retry_delay = \"2h\"\ndispatch_timeout = \"1s\"",
        &targets,
    );
    for name in ["huge", "absurd", "hang", "reset"] {
        to_target(&*store, 2, name).await;
    }
    to_target(&*store, 20, "healthy").await;
    let started = Utc::now();
    let running = Running::start(&config).await;
    wait_for_totals(
        &*store,
        &[
            (MessageState::Sent, 20),
            (MessageState::TemporaryFailure, 8),
        ],
        60,
    )
    .await;
    running.stop().await;
    let failed = messages_in(&*store, MessageState::TemporaryFailure).await;
    for m in &failed {
        let reason = m.status_reason.clone().unwrap_or_default();
        assert_clean(&reason);
        let target = m.target.as_deref().unwrap_or_default();
        let next = m.next_retry_after.expect("a retry time");
        assert!(
            next <= Utc::now() + chrono::Duration::hours(2),
            "{target}: waits past max_retry_delay: {next}"
        );
        match target {
            "huge" => assert!(reason.starts_with("webhook 500"), "{reason}"),
            "absurd" => {
                assert!(reason.starts_with("webhook 503"), "{reason}");
                assert!(
                    next >= started + chrono::Duration::minutes(119),
                    "the Retry-After is honoured up to the cap: {next}"
                );
            }
            "hang" => assert!(reason.contains("dispatch timeout after 1s"), "{reason}"),
            "reset" => assert!(!reason.is_empty()),
            other => panic!("unexpected failure for {other}: {reason}"),
        }
    }
    Ok(())
}

/// A webhook channel with a bug: it panics, or never returns.
struct BrokenChannel {
    panics: bool,
}

#[async_trait::async_trait]
impl herald::channels::Channel for BrokenChannel {
    fn method(&self) -> Method {
        Method::Webhook
    }

    async fn deliver(
        &self,
        _delivery: &herald::channels::Delivery<'_>,
    ) -> herald::model::DeliveryOutcome {
        if self.panics {
            panic!("index out of bounds: the len is 0 but the index is 0");
        }
        std::future::pending().await
    }
}

async fn a_delivery_that_panics_or_hangs_counts_as_an_attempt(db: TestDb) -> R {
    let store = migrated(&db).await;
    for panics in [true, false] {
        let config = config(
            &db,
            "dispatch_timeout = \"300ms\"\nretry_interval = \"100ms\"\nmax_send_attempts = 2",
            "[notifications.webhook]\nendpoint = \"http://127.0.0.1:9/never\"\n",
        );
        let ids = common::seed::webhook_messages(&*store, 3).await;
        let running = Running::start_with(&config, |channels| {
            channels.insert(Arc::new(BrokenChannel { panics }));
        })
        .await;
        wait_for_totals(
            &*store,
            &[(MessageState::PermanentFailure, if panics { 3 } else { 6 })],
            30,
        )
        .await;
        running.stop().await;
        for id in ids {
            let (m, attempts) = store.message(id).await?.expect("message");
            let reason = m.status_reason.unwrap_or_default();
            assert_eq!(attempts.len(), 2, "{reason}");
            let expected = if panics {
                "delivery failed inside herald (panic: index out of bounds"
            } else {
                "dispatch timeout after 300ms"
            };
            assert!(reason.starts_with(expected), "{reason}");
            assert!(reason.contains("gave up after 2 attempts"), "{reason}");
        }
    }
    Ok(())
}

// ---- purges and retention during delivery ------------------------------------------------

async fn purges_during_delivery_never_delete_what_is_deliverable(db: TestDb) -> R {
    let store = migrated(&db).await;
    let slow = HttpSink::start(|_, _| Response::ok().with_delay(Duration::from_millis(150))).await;
    let config = config(
        &db,
        "lease_count = 10",
        &webhook_target("slow", &format!("{}/hook", slow.url)),
    );
    // Queued long ago (a backlog after an outage): older than any purge cutoff below.
    let old = chrono::Duration::days(30);
    let ids = queue(&*store, 60, Method::Webhook, Some("slow"), None, old).await;
    let running = Running::start(&config).await;
    assert!(slow.wait_for(1, Duration::from_secs(10)).await);
    let owner = Uuid::now_v7();
    let deadline = Instant::now() + Duration::from_secs(30);
    while slow.count() < 60 && Instant::now() < deadline {
        // `messages purge --older-than 1d` and the retention duty, over and over.
        store
            .purge_messages(Utc::now() - chrono::Duration::days(1), None)
            .await?;
        herald::dispatch::purge_old_messages(&*store, owner, Duration::from_secs(86_400)).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(slow.wait_for(60, Duration::from_secs(30)).await);
    running.stop().await;
    let delivered: HashSet<String> = slow
        .requests()
        .iter()
        .filter_map(|r| r.header("x-message-id").map(str::to_string))
        .collect();
    for id in &ids {
        assert!(
            delivered.contains(&id.to_string()),
            "{id} was never delivered"
        );
    }
    Ok(())
}

// ---- the store fails under the dispatcher ------------------------------------------------

#[test]
fn a_postgres_restart_mid_drain_loses_nothing() {
    let cluster = common::PrivateCluster::start();
    let db = cluster.db();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = migrated(&db).await;
        let sink =
            HttpSink::start(|_, _| Response::ok().with_delay(Duration::from_millis(10))).await;
        let config = config(
            &db,
            "lease_count = 5",
            &webhook_target("sink", &format!("{}/hook", sink.url)),
        );
        let ids = to_target(&*store, 3000, "sink").await;
        let running = Running::start(&config).await;
        assert!(sink.wait_for(300, Duration::from_secs(60)).await);
        tokio::task::spawn_blocking(move || cluster.restart())
            .await
            .unwrap();
        let store = migrated(&db).await;
        wait_for_totals(&*store, &[(MessageState::Sent, 3000)], 120).await;
        running.stop().await;
        let delivered: HashSet<String> = sink
            .requests()
            .iter()
            .filter_map(|r| r.header("x-message-id").map(str::to_string))
            .collect();
        assert_eq!(delivered.len(), ids.len(), "every message reached the sink");
    });
}

async fn a_locked_sqlite_store_loses_nothing(db: TestDb) -> R {
    let store = migrated(&db).await;
    let sink = HttpSink::ok().await;
    let config = config(
        &db,
        "lease_count = 50",
        &webhook_target("sink", &format!("{}/hook", sink.url)),
    );
    to_target(&*store, 2000, "sink").await;
    let running = Running::start(&config).await;
    assert!(sink.wait_for(100, Duration::from_secs(30)).await);
    // Another process takes the write lock for longer than the store's busy timeout (10 s).
    use sqlx::Connection;
    let mut other = sqlx::SqliteConnection::connect(&db.url).await?;
    sqlx::query("BEGIN EXCLUSIVE").execute(&mut other).await?;
    let during = sink.count();
    tokio::time::sleep(Duration::from_secs(12)).await;
    sqlx::query("COMMIT").execute(&mut other).await?;
    drop(other);
    wait_for_totals(&*store, &[(MessageState::Sent, 2000)], 60).await;
    assert!(sink.count() >= 2000 && sink.count() > during);
    running.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_a_locked_store_loses_nothing() -> R {
    a_locked_sqlite_store_loses_nothing(common::sqlite_db()).await
}

// ---- replicas with different configurations (the real binary) ----------------------------

async fn a_replica_without_email_leaves_smtp_to_one_that_has_it(db: TestDb) -> R {
    let store = migrated(&db).await;
    let smtp = SmtpServer::start(SmtpServerOptions::new());
    let sink = HttpSink::ok().await;
    let dir = tempfile::tempdir()?;
    let common = format!(
        "database_url = \"{}\"\n\n[notifications]\nmethod = \"smtp\"\nfetch_interval = \"1s\"\n\
         store_sync_interval = \"50ms\"\n\n[notifications.webhook]\nendpoint = \"{}/hook\"\n",
        db.url, sink.url
    );
    std::fs::write(dir.path().join("partial.toml"), &common)?;
    std::fs::write(
        dir.path().join("full.toml"),
        format!(
            "{common}\n[email]\nfrom = \"Herald <herald@example.com>\"\nsmarthost = \"{}\"\n",
            smtp.address()
        ),
    )?;
    let bob = store
        .insert_user(
            &NewUser {
                username: "bob".into(),
                email: "bob@example.com".into(),
                name: "Bob".into(),
                roles: vec![herald::model::Role::Owner],
            },
            None,
        )
        .await?;
    let now = chrono::Duration::zero();
    queue(&*store, 10, Method::Smtp, None, Some(&bob), now).await;
    queue(&*store, 10, Method::Webhook, None, Some(&bob), now).await;

    let partial = Serve::start(dir.path(), "partial.toml", "partial", &[]);
    wait_for_totals(&*store, &[(MessageState::Sent, 10)], 30).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let counts = store.count_by_state().await?;
    assert_eq!(
        count(&counts, MessageState::Pending),
        10,
        "{counts:?}\n{}",
        partial.log()
    );
    assert_eq!(
        count(&counts, MessageState::PermanentFailure),
        0,
        "{counts:?}"
    );
    let doctor = herald(
        dir.path(),
        &["--config", "partial.toml", "--as", "bob", "doctor"],
    )
    .output()?;
    let said = String::from_utf8_lossy(&doctor.stdout);
    assert_eq!(doctor.status.code(), Some(1), "{said}");
    assert!(
        said.contains("10 smtp messages wait: no replica has an smtp channel"),
        "{said}"
    );

    let full = Serve::start(dir.path(), "full.toml", "full", &[]);
    wait_for_totals(&*store, &[(MessageState::Sent, 20)], 60).await;
    assert_eq!(smtp.received().len(), 10);
    let counts = store.count_by_state().await?;
    assert_eq!(
        count(&counts, MessageState::PermanentFailure),
        0,
        "{counts:?}"
    );
    assert_eq!(partial.terminate(), 0);
    assert_eq!(full.terminate(), 0);
    Ok(())
}

for_both_backends!(
    a_nul_answering_webhook_never_wedges_delivery,
    a_delivery_that_panics_or_hangs_counts_as_an_attempt,
    hostile_peers_end_in_the_state_they_earn,
    purges_during_delivery_never_delete_what_is_deliverable,
    a_replica_without_email_leaves_smtp_to_one_that_has_it,
);

// ---- poison in the store's path -----------------------------------------------------------

/// An outcome PostgreSQL refuses (a NUL byte in text) is isolated: the rest of the batch is
/// written and the poisoned message ends `permanent_failure` with a readable reason.
async fn an_outcome_the_store_refuses_is_isolated(db: TestDb) -> R {
    let store = migrated(&db).await;
    let ids = common::seed::webhook_messages(&*store, 3).await;
    let notifier = Uuid::now_v7();
    let capabilities = herald::model::Capabilities {
        methods: vec![Method::Webhook],
        targets: vec![],
    };
    let leased = lease_with(
        &*store,
        notifier,
        3,
        Duration::from_secs(60),
        5,
        &capabilities,
    )
    .await?;
    assert_eq!(leased.len(), 3);
    let mut batch = vec![
        outcome(&leased[0], notifier, MessageState::Sent, None),
        outcome(
            &leased[1],
            notifier,
            MessageState::PermanentFailure,
            Some("webhook 400: bad\0body"),
        ),
        outcome(&leased[2], notifier, MessageState::Sent, None),
    ];
    assert!(
        store.record_attempts(&batch).await.is_err(),
        "PostgreSQL refuses a NUL byte in text"
    );
    let metrics = Metrics::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        herald::dispatch::write_outcomes(&*store, &mut batch, &metrics),
    )
    .await
    .expect("a refused outcome never wedges the flush");
    assert!(batch.is_empty());
    for (i, id) in ids.iter().enumerate() {
        let (m, attempts) = store.message(*id).await?.expect("message");
        let expected = if leased[1].id == *id {
            MessageState::PermanentFailure
        } else {
            MessageState::Sent
        };
        assert_eq!(m.status, expected, "message {i}");
        assert_eq!(attempts.len(), 1, "message {i}");
        if expected == MessageState::PermanentFailure {
            let reason = m.status_reason.unwrap_or_default();
            assert!(
                reason.contains("the store refused to record its outcome"),
                "{reason}"
            );
            assert_clean(&reason);
        }
    }
    assert!(
        metrics
            .render()
            .contains("herald_isolated_outcomes_total 1")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_an_outcome_the_store_refuses_is_isolated() -> R {
    an_outcome_the_store_refuses_is_isolated(common::postgres_db()).await
}

/// A row that cannot be read at lease time (SQLite stores any text, so a payload that is not
/// JSON can be written behind Herald's back) is made `permanent_failure`; the rest of its batch
/// is leased and delivered.
#[tokio::test(flavor = "multi_thread")]
async fn sqlite_an_unreadable_row_is_isolated_at_lease_time() -> R {
    let db = common::sqlite_db();
    let store = migrated(&db).await;
    let sink = HttpSink::ok().await;
    let ids = to_target(&*store, 5, "sink").await;
    use sqlx::Connection;
    let mut other = sqlx::SqliteConnection::connect(&db.url).await?;
    sqlx::query("UPDATE notification_messages SET payload = 'not json {' WHERE id = ?")
        .bind(ids[2].to_string())
        .execute(&mut other)
        .await?;
    drop(other);
    let config = config(
        &db,
        "",
        &webhook_target("sink", &format!("{}/hook", sink.url)),
    );
    let running = Running::start(&config).await;
    wait_for_totals(
        &*store,
        &[(MessageState::Sent, 4), (MessageState::PermanentFailure, 1)],
        30,
    )
    .await;
    running.stop().await;
    let mut other = sqlx::SqliteConnection::connect(&db.url).await?;
    let (status, reason): (String, String) =
        sqlx::query_as("SELECT status, status_reason FROM notification_messages WHERE id = ?")
            .bind(ids[2].to_string())
            .fetch_one(&mut other)
            .await?;
    assert_eq!(status, "permanent_failure");
    assert!(reason.contains("cannot be read"), "{reason}");
    assert_clean(&reason);
    Ok(())
}
