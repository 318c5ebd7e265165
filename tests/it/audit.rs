//! The audit trail (DESIGN §14), on both backends: the store writes an audited change and its
//! row in one transaction (neither without the other), lists the trail newest first with its
//! filters and purges it by age; every mutating service call writes its row (a test walks
//! them, and another reads `src/service/` so a new call must be classified); and `herald
//! audit list --json` (the built binary) shows a pause, a resume and a retry with their actors.

use crate::common;
use crate::for_both_backends;

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{Duration, Utc};
use common::TestDb;
use common::deployment::Deployment;
use common::ssh::keygen;
use common::store::{migrated, new_user, template_id, webhook_in};
use herald::model::{MessageState, Method, PauseScope, Role, UserStatus};
use herald::service::read_models::QueueQuery;
use herald::service::{FrontEnd, NewUser, Service, actions};
use herald::store::{
    self, AuditEntry, AuditFilter, AuditRecord, MessageFilter, OpenMode, PageRequest, Store,
};
use serde_json::{Value, json};
use uuid::Uuid;

type R = anyhow::Result<()>;

/// The service's public async calls that change something, each written to the audit trail.
/// [`every_mutating_service_call_writes_its_audit_row`] calls every one.
const AUDITED: &[&str] = &[
    "add_ssh_key",
    "add_user",
    "create_token",
    "pause_channel",
    "purge_messages",
    "remove_ssh_key",
    "resume_channel",
    "retry_matching",
    "retry_messages",
    "retry_query",
    "revoke_token",
    "set_event_method",
    "set_opt_out",
    "set_paused",
    "set_user_status",
];

/// The service's other public async calls, with why they write no audit row.
const NOT_AUDITED: &[(&str, &str)] = &[
    ("audit_log", "reads"),
    (
        "authenticate_ssh_key",
        "a login: touches the key's last_used_at only",
    ),
    (
        "authenticate_token",
        "a request: touches the token's last_used_at only",
    ),
    (
        "authenticate_tokens",
        "many requests: touches the tokens' last_used_at only",
    ),
    ("bootstrapping", "reads"),
    ("channel_health", "reads"),
    ("channel_pauses", "reads"),
    ("check_ready", "reads"),
    ("count_by_state", "reads"),
    ("count_matching", "reads"),
    ("doctor", "reads (reaches the channels, sends nothing)"),
    ("enqueue", "a producer's event, not an operator action"),
    ("event", "reads"),
    ("event_volumes", "reads"),
    ("events", "reads"),
    ("explain", "reads (writes nothing by contract)"),
    ("identify", "reads"),
    ("inbox", "reads"),
    ("list_messages", "reads"),
    ("list_ssh_keys", "reads"),
    ("list_tokens", "reads"),
    ("list_users", "reads"),
    ("mark_inbox", "the caller's own inbox"),
    ("message", "reads"),
    ("message_detail", "reads"),
    ("notifier_status", "reads"),
    ("opt_outs", "reads"),
    (
        "prepare_enqueue_many",
        "a producer's events, not an operator action",
    ),
    (
        "queue_prepared",
        "a producer's events, not an operator action",
    ),
    ("rendered", "reads"),
    ("replicas", "reads"),
    ("search_messages", "reads"),
    ("search_titled", "reads"),
    ("send_custom", "a notification to the caller themself"),
    (
        "send_event_test",
        "a test notification to the caller themself",
    ),
    ("send_test", "a test notification to the caller themself"),
    ("ssh_key_user", "reads"),
    (
        "start",
        "syncs the catalog and the config's users: not an operator action",
    ),
    ("throughput", "reads"),
    ("titled", "reads"),
    ("top_status_reasons", "reads"),
    ("undeliverable", "reads"),
];

/// `pub async fn NAME` in every file under `dir`, tests left out.
fn public_async_fns(dir: &std::path::Path, found: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).expect("read src/service") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            public_async_fns(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs")
            && path.file_name().is_some_and(|n| n != "tests.rs")
        {
            let text = std::fs::read_to_string(&path).expect("read a service file");
            for rest in text.split("pub async fn ").skip(1) {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                found.insert(name);
            }
        }
    }
}

#[test]
fn every_public_service_call_is_classified_as_audited_or_not() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/service");
    let mut found = BTreeSet::new();
    public_async_fns(&dir, &mut found);
    assert!(
        found.len() > 30,
        "the service's calls were found: {found:?}"
    );
    let classified: BTreeSet<String> = AUDITED
        .iter()
        .copied()
        .chain(NOT_AUDITED.iter().map(|(name, _)| *name))
        .map(str::to_string)
        .collect();
    let new: Vec<&String> = found.difference(&classified).collect();
    assert!(
        new.is_empty(),
        "classify these service calls in tests/it/audit.rs: AUDITED (and walk them in \
         every_mutating_service_call_writes_its_audit_row) if they change anything an operator \
         would ask about, else NOT_AUDITED with why: {new:?}"
    );
    let gone: Vec<&String> = classified.difference(&found).collect();
    assert!(gone.is_empty(), "no longer in src/service: {gone:?}");
}

/// The newest `n` audit rows.
async fn newest(store: &dyn Store, n: u32) -> Vec<AuditRecord> {
    let page = PageRequest {
        before: None,
        limit: n,
    };
    store
        .list_audit(&AuditFilter::default(), page)
        .await
        .expect("list the audit trail")
}

async fn all_rows(store: &dyn Store) -> Vec<AuditRecord> {
    newest(store, 10_000).await
}

fn entry(actor: &str, action: &str, subject: &str) -> AuditEntry {
    let mut detail = serde_json::Map::new();
    detail.insert("via".into(), json!("cli"));
    AuditEntry {
        actor: actor.into(),
        action: action.into(),
        subject: subject.into(),
        detail,
    }
}

async fn an_audited_change_and_its_row_commit_together(db: TestDb) -> R {
    let store = migrated(&db).await;
    let alice = store
        .insert_user(
            &new_user("alice", &[Role::Owner]),
            Some(&entry("(first owner)", actions::USER_ADD, "alice")),
        )
        .await?;
    store
        .set_paused(true, Some(&entry("alice", actions::PAUSE, "everything")))
        .await?;
    assert!(store.settings().await?.notifier_paused);
    let rows = all_rows(&*store).await;
    let got: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| (r.actor.as_str(), r.action.as_str(), r.subject.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("alice", "notifications.pause", "everything"),
            ("(first owner)", "users.add", "alice"),
        ],
        "newest first"
    );
    assert_eq!(rows[0].detail, json!({"via": "cli"}));
    assert!(rows[0].at <= Utc::now() && rows[0].at > Utc::now() - Duration::minutes(1));

    // A change that fails, or changes nothing, records nothing.
    let again = store
        .insert_user(
            &new_user("alice", &[]),
            Some(&entry("alice", actions::USER_ADD, "alice")),
        )
        .await;
    assert!(again.is_err(), "alice exists");
    let revoke = entry("alice", actions::TOKEN_REVOKE, "nope");
    assert!(
        !store
            .revoke_api_token(alice.id, "nope", Some(&revoke))
            .await?
    );
    let resume = entry("alice", actions::RESUME, "method:smtp");
    assert!(
        !store
            .resume_channel(PauseScope::Method, "smtp", Some(&resume))
            .await?
    );
    assert_eq!(all_rows(&*store).await.len(), 2, "nothing new was recorded");

    // A retry records how many messages it put back.
    let t = template_id(&*store, "run_failure").await;
    let failed: Vec<_> = (0..3)
        .map(|_| webhook_in(t, MessageState::PermanentFailure, Some("boom")))
        .collect();
    store.enqueue(&failed).await?;
    let ids: Vec<Uuid> = failed.iter().map(|m| m.id).collect();
    let retry = entry("alice", actions::RETRY, "3 messages");
    let retried = store
        .retry_messages(&ids, false, "retried by alice", Some(&retry))
        .await?;
    assert_eq!(retried.len(), 3);
    let row = &newest(&*store, 1).await[0];
    assert_eq!(row.action, "messages.retry");
    assert_eq!(row.detail["count"], 3);
    Ok(())
}

/// Drops `audit_log` behind the store's back, so that writing an audit row fails.
async fn drop_audit_table(db: &TestDb) -> R {
    if db.is_postgres() {
        common::psql(&db.url, "DROP TABLE audit_log").map_err(anyhow::Error::msg)?;
    } else {
        use sqlx::Connection;
        let mut other = sqlx::SqliteConnection::connect(&db.url).await?;
        sqlx::query("DROP TABLE audit_log")
            .execute(&mut other)
            .await?;
        other.close().await?;
    }
    Ok(())
}

async fn a_failed_audit_write_undoes_the_change(db: TestDb) -> R {
    let store = migrated(&db).await;
    let alice = store
        .insert_user(&new_user("alice", &[Role::Owner]), None)
        .await?;
    drop_audit_table(&db).await?;
    let paused = store
        .set_paused(true, Some(&entry("alice", actions::PAUSE, "everything")))
        .await;
    assert!(paused.is_err(), "the audit row cannot be written");
    assert!(
        !store.settings().await?.notifier_paused,
        "the pause was rolled back with it"
    );
    let pause = entry("alice", actions::PAUSE, "method:smtp");
    let held = store
        .pause_channel(PauseScope::Method, "smtp", "alice", Some(&pause))
        .await;
    assert!(held.is_err());
    assert!(store.channel_pauses().await?.is_empty());
    let status = entry("alice", actions::USER_SUSPEND, "alice");
    let suspended = store
        .set_user_status(alice.id, UserStatus::Suspended, Some(&status))
        .await;
    assert!(suspended.is_err());
    let alice = store.user_by_id(alice.id).await?.expect("alice");
    assert!(alice.is_active(), "the suspension was rolled back");
    // Unaudited changes do not touch the table.
    store.set_paused(true, None).await?;
    assert!(store.settings().await?.notifier_paused);
    Ok(())
}

async fn the_trail_pages_newest_first_filters_and_purges_by_age(db: TestDb) -> R {
    let store = migrated(&db).await;
    for (i, actor) in ["alice", "bob", "alice", "bob", "alice"].iter().enumerate() {
        let paused = i % 2 == 0;
        let action = if paused {
            actions::PAUSE
        } else {
            actions::RESUME
        };
        store
            .set_paused(paused, Some(&entry(actor, action, &format!("step {i}"))))
            .await?;
    }
    let subjects = |rows: &[AuditRecord]| -> Vec<String> {
        rows.iter().map(|r| r.subject.clone()).collect::<Vec<_>>()
    };
    let first = newest(&*store, 2).await;
    assert_eq!(subjects(&first), ["step 4", "step 3"]);
    let page = PageRequest {
        before: Some(first[1].id),
        limit: 10,
    };
    let rest = store.list_audit(&AuditFilter::default(), page).await?;
    assert_eq!(subjects(&rest), ["step 2", "step 1", "step 0"]);

    let all = PageRequest {
        before: None,
        limit: 10,
    };
    let bobs = AuditFilter {
        actor: Some("bob".into()),
        ..AuditFilter::default()
    };
    assert_eq!(
        subjects(&store.list_audit(&bobs, all).await?),
        ["step 3", "step 1"]
    );
    let pauses = AuditFilter {
        action: Some("notifications.pause".into()),
        ..AuditFilter::default()
    };
    assert_eq!(
        subjects(&store.list_audit(&pauses, all).await?),
        ["step 4", "step 2", "step 0"]
    );
    let recent = AuditFilter {
        since: Some(Utc::now() - Duration::minutes(5)),
        ..AuditFilter::default()
    };
    assert_eq!(store.list_audit(&recent, all).await?.len(), 5);
    let future = AuditFilter {
        since: Some(Utc::now() + Duration::minutes(5)),
        ..AuditFilter::default()
    };
    assert!(store.list_audit(&future, all).await?.is_empty());

    assert_eq!(
        store.purge_audit(Utc::now() - Duration::days(1)).await?,
        0,
        "fresh rows are kept"
    );
    assert_eq!(
        store.purge_audit(Utc::now() + Duration::seconds(1)).await?,
        5
    );
    assert!(all_rows(&*store).await.is_empty());
    Ok(())
}

async fn housekeeping_purges_audit_rows_past_retention(db: TestDb) -> R {
    let store = migrated(&db).await;
    store
        .set_paused(true, Some(&entry("alice", actions::PAUSE, "everything")))
        .await?;
    let notifier = Uuid::now_v7();
    herald::dispatch::purge_old_messages(&*store, notifier, std::time::Duration::from_secs(3600))
        .await;
    assert_eq!(all_rows(&*store).await.len(), 1, "younger than retention");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    herald::dispatch::purge_old_messages(&*store, notifier, std::time::Duration::from_millis(1))
        .await;
    assert!(
        all_rows(&*store).await.is_empty(),
        "older than retention: purged"
    );
    Ok(())
}

/// Checks the newest audit row: `actor` did `action` to `subject` through the CLI, with
/// `detail` among its detail's keys.
#[track_caller]
fn assert_row(row: &AuditRecord, actor: &str, action: &str, subject: &str, detail: Value) {
    assert_eq!(
        (
            row.actor.as_str(),
            row.action.as_str(),
            row.subject.as_str()
        ),
        (actor, action, subject),
        "{row:?}"
    );
    assert_eq!(row.detail["via"], "cli", "{row:?}");
    for (key, value) in detail.as_object().expect("an object") {
        assert_eq!(&row.detail[key], value, "{key} in {row:?}");
    }
}

/// Three permanently failed webhook messages of `run_failure`.
async fn failed_messages(store: &dyn Store) -> anyhow::Result<Vec<Uuid>> {
    let t = template_id(store, "run_failure").await;
    let batch: Vec<_> = (0..3)
        .map(|_| webhook_in(t, MessageState::PermanentFailure, Some("boom")))
        .collect();
    store.enqueue(&batch).await?;
    Ok(batch.iter().map(|m| m.id).collect())
}

async fn every_mutating_service_call_writes_its_audit_row(db: TestDb) -> R {
    let d = Deployment::new(
        &db,
        "http://127.0.0.1:9/hook",
        "http://127.0.0.1:9/slack",
        "1h",
    );
    let store = store::open(&db.url, OpenMode::Existing).await?;
    let service = Service::start(store.clone(), Arc::new(d.config.clone())).await?;
    let s = &*store;
    let mut walked: BTreeSet<&str> = BTreeSet::new();
    let mut step = |name: &'static str| {
        walked.insert(name);
    };
    let alice = service.identify("alice").await?;
    let user = |name: &str, role: Role| NewUser {
        username: name.into(),
        email: format!("{name}@example.com"),
        name: String::new(),
        roles: vec![role],
    };

    let bob = service
        .add_user(Some(&alice), user("bob", Role::Member))
        .await?;
    assert_row(
        &newest(s, 1).await[0],
        "alice",
        "users.add",
        "bob",
        json!({"roles": ["member"]}),
    );
    let olive = service
        .add_user(Some(&alice), user("olive", Role::Oncall))
        .await?;
    step("add_user");

    service
        .set_user_status(&alice, "bob", UserStatus::Suspended)
        .await?;
    assert_row(
        &newest(s, 1).await[0],
        "alice",
        "users.suspend",
        "bob",
        json!({}),
    );
    service
        .set_user_status(&alice, "bob", UserStatus::Active)
        .await?;
    assert_row(
        &newest(s, 1).await[0],
        "alice",
        "users.activate",
        "bob",
        json!({}),
    );
    step("set_user_status");

    service
        .set_event_method(&alice, "workspace_deleted", Some(Method::Webhook))
        .await?;
    let prefs = json!({"method": "webhook"});
    assert_row(
        &newest(s, 1).await[0],
        "alice",
        "prefs.set",
        "workspace_deleted",
        prefs,
    );
    step("set_event_method");

    let event = json!({"event": "workspace_deleted"});
    service
        .set_opt_out(&alice, "workspace_deleted", Some("bob"), true)
        .await?;
    assert_row(
        &newest(s, 1).await[0],
        "alice",
        "optout.set",
        "bob",
        event.clone(),
    );
    service
        .set_opt_out(&alice, "workspace_deleted", Some("bob"), false)
        .await?;
    assert_row(
        &newest(s, 1).await[0],
        "alice",
        "optout.clear",
        "bob",
        event,
    );
    let before = all_rows(s).await.len();
    service
        .set_opt_out(&bob, "workspace_deleted", None, true)
        .await?;
    assert_eq!(
        all_rows(s).await.len(),
        before,
        "one's own opt-outs are not audited"
    );
    step("set_opt_out");

    service.set_paused(&olive, true).await?;
    let row = &newest(s, 1).await[0];
    assert_row(row, "olive", "notifications.pause", "everything", json!({}));
    service.set_paused(&olive, false).await?;
    let row = &newest(s, 1).await[0];
    assert_row(
        row,
        "olive",
        "notifications.resume",
        "everything",
        json!({}),
    );
    step("set_paused");

    service
        .pause_channel(&olive, PauseScope::Target, "team-slack")
        .await?;
    let row = &newest(s, 1).await[0];
    assert_row(
        row,
        "olive",
        "notifications.pause",
        "target:team-slack",
        json!({}),
    );
    step("pause_channel");
    service
        .resume_channel(&olive, PauseScope::Target, "team-slack")
        .await?;
    let row = &newest(s, 1).await[0];
    assert_row(
        row,
        "olive",
        "notifications.resume",
        "target:team-slack",
        json!({}),
    );
    step("resume_channel");

    let ids = failed_messages(s).await?;
    let one = ids[0].to_string();
    service
        .retry_messages(&alice, std::slice::from_ref(&one), false)
        .await?;
    let count = json!({"count": 1, "ids": [one.clone()]});
    assert_row(
        &newest(s, 1).await[0],
        "alice",
        "messages.retry",
        &one,
        count,
    );
    step("retry_messages");
    let failed = MessageFilter {
        statuses: vec![MessageState::PermanentFailure],
        ..MessageFilter::default()
    };
    assert_eq!(service.retry_matching(&alice, &failed, false).await?, 2);
    let row = &newest(s, 1).await[0];
    let count = json!({"count": 2, "by_filter": true});
    assert_row(
        row,
        "alice",
        "messages.retry",
        "status=permanent_failure",
        count,
    );
    step("retry_matching");
    failed_messages(s).await?;
    let query = QueueQuery {
        reason: Some("boom".into()),
        ..QueueQuery::default()
    };
    assert_eq!(service.retry_query(&alice, &query).await?, 3);
    let row = &newest(s, 1).await[0];
    let subject = "status=temporary_failure,permanent_failure reason=boom";
    assert_row(row, "alice", "messages.retry", subject, json!({"count": 3}));
    step("retry_query");

    let (_, secret) = service.create_token(&alice, "ci", Some("bob")).await?;
    let row = &newest(s, 1).await[0];
    assert_row(row, "alice", "tokens.create", "ci", json!({"user": "bob"}));
    step("create_token");
    service.revoke_token(&alice, "ci", Some("bob")).await?;
    let row = &newest(s, 1).await[0];
    assert_row(row, "alice", "tokens.revoke", "ci", json!({"user": "bob"}));
    step("revoke_token");

    let key = keygen(d.dir.path(), "bob_key", "ed25519", "bob@laptop");
    service.add_ssh_key(&alice, "bob", &key.public_line).await?;
    let row = &newest(s, 1).await[0];
    let whose = json!({"user": "bob", "comment": "bob@laptop"});
    assert_row(row, "alice", "keys.add", &key.fingerprint, whose.clone());
    step("add_ssh_key");
    service.remove_ssh_key(&alice, &key.fingerprint).await?;
    let row = &newest(s, 1).await[0];
    assert_row(row, "alice", "keys.remove", &key.fingerprint, whose);
    step("remove_ssh_key");

    let cutoff = Utc::now() - Duration::days(1);
    let purged = service.purge_messages(&alice, cutoff).await?;
    assert_eq!((purged.messages, purged.audit_rows), (0, 0));
    let row = &newest(s, 1).await[0];
    let subject = format!("changed before {}", cutoff.to_rfc3339());
    assert_row(
        row,
        "alice",
        "messages.purge",
        &subject,
        json!({"count": 0}),
    );
    step("purge_messages");

    // The front end a call came through is recorded.
    let api = service.through(FrontEnd::Api);
    api.set_paused(&olive, true).await?;
    assert_eq!(newest(s, 1).await[0].detail["via"], "api");

    let text = serde_json::to_string(&all_rows(s).await)?;
    assert!(
        !text.contains(secret.expose()),
        "a token's secret is never in the trail"
    );
    let audited: BTreeSet<&str> = AUDITED.iter().copied().collect();
    assert_eq!(walked, audited, "every audited call was walked");
    Ok(())
}

/// `herald audit list --json`'s rows as (actor, action, subject), newest first.
fn listed(d: &Deployment, args: &[&str]) -> Vec<(String, String, String)> {
    let mut all = vec!["audit", "list", "--json"];
    all.extend_from_slice(args);
    let rows = d.run(&all).ok().json();
    rows.as_array()
        .expect("an array")
        .iter()
        .map(|r| {
            let text = |key: &str| r[key].as_str().unwrap_or_default().to_string();
            (text("actor"), text("action"), text("subject"))
        })
        .collect()
}

fn row(actor: &str, action: &str, subject: &str) -> (String, String, String) {
    (actor.into(), action.into(), subject.into())
}

async fn audit_list_shows_the_pause_the_resume_and_a_retry_with_their_actors(db: TestDb) -> R {
    let d = Deployment::new(
        &db,
        "http://127.0.0.1:9/hook",
        "http://127.0.0.1:9/slack",
        "1h",
    );
    let add_olive = [
        "users",
        "add",
        "olive",
        "--email",
        "o@example.com",
        "--role",
        "oncall",
    ];
    d.run(&add_olive).ok();
    d.run_as(Some("olive"), &["notifications", "pause"]).ok();
    d.run(&["notifications", "pause", "--target", "team-slack"])
        .ok();
    d.run_as(Some("olive"), &["notifications", "resume"]).ok();
    let store = store::open(&db.url, OpenMode::Existing).await?;
    let ids = failed_messages(&*store).await?;
    let id = ids[0].to_string();
    d.run(&["messages", "retry", &id]).ok();

    let rows = listed(&d, &[]);
    assert_eq!(
        rows,
        [
            row("alice", "messages.retry", &id),
            row("olive", "notifications.resume", "everything"),
            row("alice", "notifications.pause", "target:team-slack"),
            row("olive", "notifications.pause", "everything"),
            row("alice", "users.add", "olive"),
            row("(first owner)", "users.add", "alice"),
        ]
    );
    let json = d.run(&["audit", "list", "--json", "--limit", "1"]).ok();
    assert_eq!(json.json()[0]["detail"]["via"], "cli");
    assert!(
        json.stderr.contains("more: --before "),
        "a hint when more rows exist: {}",
        json.stderr
    );
    assert_eq!(
        listed(&d, &["--actor", "olive", "--action", "notifications.pause"]),
        [row("olive", "notifications.pause", "everything")]
    );
    let table = d.run(&["audit", "list"]).ok().stdout;
    assert!(
        table.contains("ACTOR") && table.contains("notifications.resume"),
        "{table}"
    );
    d.run_as(Some("olive"), &["audit", "list"])
        .fails_with("permission denied");

    // `messages purge` purges the trail too, then records itself.
    let purged = d.run(&["messages", "purge", "--older-than", "0s"]).ok();
    assert!(
        purged.stdout.contains("and 6 audit rows"),
        "{}",
        purged.stdout
    );
    let rows = listed(&d, &[]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0].0.as_str(), rows[0].1.as_str()),
        ("alice", "messages.purge")
    );
    Ok(())
}

async fn the_api_serves_the_trail_to_owners_and_records_its_own_calls(db: TestDb) -> R {
    use common::api::{Client, RunningApi};
    use reqwest::StatusCode;
    let api = RunningApi::start(&db).await;
    let alice = api.add_user(None, "alice", &[Role::Owner]).await;
    let bob = api.add_user(Some(&alice), "bob", &[Role::Member]).await;
    let owner = Client::new(&api, Some(&api.token(&alice, "ops").await));
    let member = Client::new(&api, Some(&api.token(&bob, "mine").await));

    assert_eq!(
        owner.post_empty("/api/v1/pause").await.status,
        StatusCode::OK
    );
    let page = owner.get("/api/v1/audit?limit=1").await;
    assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
    let newest = &page.body["rows"][0];
    assert_eq!(newest["actor"], "alice");
    assert_eq!(newest["action"], "notifications.pause");
    assert_eq!(newest["detail"]["via"], "api", "the API records itself");
    let next = page.body["next"].as_str().expect("a full page has a next");
    let rest = owner.get(&format!("/api/v1/audit?after={next}")).await;
    let actions: Vec<&str> = rest.body["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        ["tokens.create", "tokens.create", "users.add", "users.add"]
    );
    assert_eq!(rest.body["next"], Value::Null);
    let bobs = owner.get("/api/v1/audit?actor=bob&since=1h").await;
    assert_eq!(bobs.body["rows"][0]["action"], "tokens.create");
    member
        .get("/api/v1/audit")
        .await
        .error(StatusCode::FORBIDDEN);
    owner
        .get("/api/v1/audit?since=soon")
        .await
        .error(StatusCode::BAD_REQUEST);
    Ok(())
}

for_both_backends!(
    an_audited_change_and_its_row_commit_together,
    a_failed_audit_write_undoes_the_change,
    the_trail_pages_newest_first_filters_and_purges_by_age,
    housekeeping_purges_audit_rows_past_retention,
    every_mutating_service_call_writes_its_audit_row,
    audit_list_shows_the_pause_the_resume_and_a_retry_with_their_actors,
    the_api_serves_the_trail_to_owners_and_records_its_own_calls,
);

// ---- the console's audit view (Troubleshoot, `a`) ----------------------------------------

mod console {
    use crate::common::console::{ago, feed, on_tab, oncall, owner};

    use herald::console::action::{Action, Effect};
    use herald::console::audit::AUDIT_REFRESH_SECS;
    use herald::console::state::{AppState, Tab};
    use herald::console::theme::Theme;
    use herald::console::update::update;
    use herald::console::view::draw;
    use herald::service::AuditRecord;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use serde_json::json;
    use uuid::Uuid;

    fn rows() -> Vec<AuditRecord> {
        let row =
            |n: u128, secs: i64, actor: &str, action: &str, subject: &str, detail| AuditRecord {
                id: Uuid::from_u128(n),
                at: ago(secs),
                actor: actor.into(),
                action: action.into(),
                subject: subject.into(),
                detail,
            };
        vec![
            row(
                6,
                4,
                "alice",
                "messages.retry",
                "0193b3c4-0000-7000-8000-000000000001",
                json!({"via": "console", "count": 1}),
            ),
            row(
                5,
                40,
                "olive",
                "notifications.resume",
                "target:team-slack",
                json!({"via": "ssh"}),
            ),
            row(
                4,
                300,
                "olive",
                "notifications.pause",
                "target:team-slack",
                json!({"via": "ssh"}),
            ),
            row(
                3,
                900,
                "alice",
                "tokens.create",
                "ci",
                json!({"via": "cli", "user": "etl"}),
            ),
            row(
                2,
                3_600,
                "alice",
                "keys.add",
                "SHA256:4wKp1bP0q2cQ9hH3q7cZ3t2m8Yb1nT6w8xv5lW0aQ2E",
                json!({"via": "cli", "user": "bob", "comment": "bob@laptop"}),
            ),
            row(
                1,
                86_400,
                "(first owner)",
                "users.add",
                "alice",
                json!({"via": "cli", "roles": ["owner"]}),
            ),
        ]
    }

    fn text(state: &AppState, width: u16, height: u16) -> String {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("a terminal");
        terminal
            .draw(|f| draw(f, state, Theme::plain()))
            .expect("drawing never fails on a test backend");
        let buffer = terminal.backend().buffer().clone();
        buffer
            .content
            .chunks(usize::from(width))
            .map(|row| {
                let line: String = row.iter().map(|c| c.symbol()).collect();
                line.trim_end().to_string()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_audit_view_reads_only_while_shown_and_at_most_every_few_seconds() {
        let mut s = on_tab(owner(), false, Tab::Troubleshoot);
        let start = s.now;
        let tick = |s: &mut AppState, secs: i64| {
            let effects = update(s, Action::Tick(start + chrono::Duration::seconds(secs)));
            let read = effects.contains(&Effect::LoadAudit);
            if read {
                feed(s, Action::AuditLoaded(Ok(rows())));
            }
            read
        };
        assert!(!tick(&mut s, 1), "hidden: never read");
        let effects = update(&mut s, Action::ToggleAudit);
        assert!(effects.contains(&Effect::LoadAudit), "shown: read at once");
        feed(&mut s, Action::AuditLoaded(Ok(rows())));
        // Shown (and read) at 1 s.
        for secs in 2..=AUDIT_REFRESH_SECS {
            assert!(!tick(&mut s, secs), "read again after {} s", secs - 1);
        }
        assert!(tick(&mut s, 1 + AUDIT_REFRESH_SECS));
        feed(&mut s, Action::GoTab(Tab::Queue));
        assert!(
            !tick(&mut s, 3 * AUDIT_REFRESH_SECS),
            "another tab: not read"
        );
        feed(&mut s, Action::GoTab(Tab::Troubleshoot));
        feed(&mut s, Action::ToggleAudit);
        assert!(
            !tick(&mut s, 4 * AUDIT_REFRESH_SECS),
            "hidden again: not read"
        );

        let mut o = on_tab(oncall(), false, Tab::Troubleshoot);
        let effects = update(&mut o, Action::ToggleAudit);
        assert!(
            effects.is_empty() && !o.audit.visible,
            "on-call may not read the trail"
        );
    }

    #[test]
    fn the_audit_view_at_80x24_and_120x40() {
        let mut s = on_tab(owner(), false, Tab::Troubleshoot);
        feed(&mut s, Action::ToggleAudit);
        let loading = text(&s, 80, 24);
        assert!(loading.contains("loading…"), "{loading}");
        feed(&mut s, Action::AuditLoaded(Ok(rows())));
        insta::assert_snapshot!("audit_view_80x24", text(&s, 80, 24));
        insta::assert_snapshot!("audit_view_120x40", text(&s, 120, 40));
        feed(&mut s, Action::AuditLoaded(Ok(Vec::new())));
        assert!(text(&s, 80, 24).contains("no operator actions yet"));
    }
}
