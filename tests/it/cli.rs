//! The command line, driven as a user drives it: the built binary against both backends.

use crate::common;
use crate::for_both_backends;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::TestDb;
use common::cli::{ADD_ALICE_AS_OWNER, Run, herald};
use serde_json::Value;

/// A store plus a scratch working directory (so no stray ./herald.toml is read).
struct Herald {
    db: TestDb,
    dir: tempfile::TempDir,
}

impl Herald {
    fn new(db: TestDb) -> Herald {
        Herald {
            db,
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// `herald --database-url URL ARGS…`
    fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[])
    }

    fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = self.command(args);
        cmd.envs(env.iter().copied());
        Run::of(&mut cmd)
    }

    /// `herald --database-url URL ARGS…`, not yet run.
    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = herald(self.dir.path(), &["--database-url", &self.db.url]);
        cmd.args(args);
        cmd
    }

    /// `herald --as USER ARGS…`
    fn as_user(&self, user: &str, args: &[&str]) -> Run {
        let mut all = vec!["--as", user];
        all.extend_from_slice(args);
        self.run(&all)
    }

    /// Migrated, with owner alice and member bob.
    fn with_alice_and_bob(db: TestDb) -> Herald {
        let h = Herald::new(db);
        h.run(&["migrate"]).ok();
        h.run(&ADD_ALICE_AS_OWNER).ok();
        h.add_user("bob", "member");
        h
    }

    /// Alice adds `name` (`name@example.com`) with `role`.
    fn add_user(&self, name: &str, role: &str) {
        let email = format!("{name}@example.com");
        let args = ["users", "add", name, "--email", &email, "--role", role];
        self.as_user("alice", &args).ok();
    }

    /// Alice enqueues `workspace_deleted` for bob, labelled `name=NAME`; the JSON answer.
    fn enqueue_for_bob(&self, name: &str) -> Value {
        let label = format!("name={name}");
        let args = [
            "enqueue",
            "workspace_deleted",
            "--user",
            "bob",
            "--label",
            &label,
            "--json",
        ];
        self.as_user("alice", &args).ok().json()
    }

    /// Runs `herald serve` on this store until `done()` holds or `timeout` passes, then
    /// kills it.
    fn serve_until(&self, timeout: Duration, mut done: impl FnMut() -> bool) {
        let mut serve = self
            .command(&["serve"])
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn herald serve");
        let deadline = Instant::now() + timeout;
        while !done() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = serve.kill();
        let _ = serve.wait();
    }

    fn message_count(&self) -> usize {
        let list = self
            .as_user("alice", &["messages", "list", "--json", "--limit", "1000"])
            .ok();
        list.json().as_array().expect("array").len()
    }
}

/// The row of the JSON array `list` whose `key` is `value`.
#[track_caller]
fn row<'a>(list: &'a Value, key: &str, value: &str) -> &'a Value {
    list.as_array()
        .expect("array")
        .iter()
        .find(|r| r[key] == value)
        .unwrap_or_else(|| panic!("no row with {key} = {value:?} in {list}"))
}

/// The string `key` of every row of the JSON array `list`.
#[track_caller]
fn column<'a>(list: &'a Value, key: &str) -> Vec<&'a str> {
    list.as_array()
        .expect("array")
        .iter()
        .map(|row| {
            row[key]
                .as_str()
                .unwrap_or_else(|| panic!("no {key} in {row}"))
        })
        .collect()
}

fn ids(list: &Value) -> Vec<String> {
    column(list, "id").into_iter().map(str::to_string).collect()
}

async fn enqueue_then_list_then_dedupe(db: TestDb) {
    let h = Herald::with_alice_and_bob(db);
    let first = h.enqueue_for_bob("ws1");
    let enqueued = ids(&first["enqueued"]);
    assert!(!enqueued.is_empty(), "{first}");
    assert_eq!(first["duplicates"], Value::Array(vec![]));

    let list = h
        .as_user("alice", &["messages", "list", "--json"])
        .ok()
        .json();
    let rows = list.as_array().unwrap();
    assert_eq!(ids(&list).len(), enqueued.len());
    for row in rows {
        assert!(enqueued.contains(&row["id"].as_str().unwrap().to_string()));
        assert_eq!(row["status"], "pending");
        assert_eq!(row["event"], "workspace_deleted");
        assert_eq!(row["username"], "bob");
        for key in [
            "status_reason",
            "method",
            "attempt_count",
            "created_at",
            "updated_at",
            "notification_template_id",
            "user_id",
            "payload",
            "leased_until",
            "next_retry_after",
            "queued_seconds",
            "dedupe_hash",
            "created_by",
            "target",
            "title",
        ] {
            assert!(row.get(key).is_some(), "missing key {key} in {row}");
        }
        assert_eq!(row["payload"]["labels"]["name"], "ws1");
        assert_eq!(row["title"], "Workspace \"ws1\" deleted", "{row}");
    }
    let table = h.as_user("alice", &["messages", "list"]).ok().stdout;
    assert!(table.contains("TITLE"), "{table}");
    assert!(table.contains("Workspace \"ws1\" deleted"), "{table}");

    let again = h.enqueue_for_bob("ws1");
    assert_eq!(again["enqueued"], Value::Array(vec![]));
    let mut dups: Vec<String> = again["duplicates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let mut expected = enqueued.clone();
    dups.sort();
    expected.sort();
    assert_eq!(dups, expected);
    assert_eq!(
        h.message_count(),
        enqueued.len(),
        "the duplicate created nothing"
    );
}

async fn members_cannot_pause_retry_or_touch_others_opt_outs(db: TestDb) {
    let h = Herald::with_alice_and_bob(db);
    let out = h.enqueue_for_bob("x");
    let id = ids(&out["enqueued"])[0].clone();

    h.as_user("bob", &["notifications", "pause"])
        .fails_with("requires the owner or oncall role");
    h.as_user("bob", &["messages", "retry", &id])
        .fails_with("requires the owner role");
    h.as_user(
        "bob",
        &["optout", "set", "workspace_deleted", "--user", "alice"],
    )
    .fails_with("requires the owner role");
    h.as_user("bob", &["messages", "list", "--user", "alice"])
        .fails_with("requires the owner or oncall role");
    h.as_user(
        "bob",
        &["users", "add", "eve", "--email", "eve@example.com"],
    )
    .fails_with("requires the owner or user-admin role");

    h.as_user("alice", &["notifications", "pause"]).ok();
    let status = h
        .as_user("bob", &["notifications", "status", "--json"])
        .ok()
        .json();
    assert_eq!(status["notifier_paused"], true);
    assert!(
        h.as_user("alice", &["notifications", "status"])
            .ok()
            .stdout
            .contains("paused")
    );
    h.as_user("alice", &["notifications", "resume"]).ok();
    assert!(
        h.as_user("alice", &["notifications", "status"])
            .ok()
            .stdout
            .contains("running")
    );
    h.as_user(
        "alice",
        &["optout", "set", "workspace_deleted", "--user", "bob"],
    )
    .ok();
    let list = h.as_user("bob", &["optout", "list", "--json"]).ok().json();
    assert_eq!(row(&list, "event", "workspace_deleted")["enabled"], false);
}

async fn a_members_own_opt_out_inhibits_their_next_message(db: TestDb) {
    let h = Herald::with_alice_and_bob(db);
    h.as_user("bob", &["optout", "set", "workspace_deleted"])
        .ok();
    let out = h.enqueue_for_bob("ws9");
    let rows = out["enqueued"].as_array().unwrap();
    assert!(!rows.is_empty());
    for row in rows {
        assert_eq!(row["status"], "inhibited");
        assert_eq!(row["status_reason"], "disabled by user");
    }
    h.as_user("bob", &["optout", "clear", "workspace_deleted"])
        .ok();
    let out = h.enqueue_for_bob("ws10");
    assert!(
        out["enqueued"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "pending")
    );
}

async fn bad_input_is_refused_and_writes_nothing(db: TestDb) {
    let h = Herald::with_alice_and_bob(db);
    let cases: &[(&[&str], &str)] = &[
        (
            &["enqueue", "workspace_deleteed", "--user", "bob"],
            "did you mean `workspace_deleted`",
        ),
        (
            &["enqueue", "workspace_deleted", "--user", "bobby"],
            "unknown user `bobby`",
        ),
        (
            &[
                "enqueue",
                "workspace_deleted",
                "--user",
                "bob",
                "--label",
                "name",
            ],
            "KEY=VALUE",
        ),
        (
            &[
                "enqueue",
                "workspace_deleted",
                "--user",
                "bob",
                "--data",
                "{nope",
            ],
            "--data is not valid JSON",
        ),
        (
            &[
                "enqueue",
                "workspace_deleted",
                "--user",
                "bob",
                "--data",
                "[1]",
            ],
            "JSON object",
        ),
        (
            &[
                "enqueue",
                "workspace_deleted",
                "--user",
                "bob",
                "--actor",
                "nobody",
            ],
            "unknown user `nobody`",
        ),
        (&["messages", "show", "not-an-id"], "not a message id"),
        (
            &["prefs", "set", "workspace_deleted", "--method", "pigeon"],
            "unknown delivery method `pigeon`",
        ),
        (
            &["prefs", "set", "workspace_deleted", "--method", "inbox"],
            "inbox cannot be",
        ),
    ];
    for (args, needle) in cases {
        h.as_user("alice", args).fails_with(needle);
    }
    assert_eq!(h.message_count(), 0);
    h.as_user("nobody", &["messages", "list"])
        .fails_with("unknown user `nobody`");
    let usage = h.as_user("alice", &["messages", "list", "--status", "lost"]);
    assert_eq!(usage.code, 2, "usage errors exit 2: {}", usage.stderr);
    assert!(
        usage.stderr.contains("unknown message status `lost`"),
        "{}",
        usage.stderr
    );
}

async fn a_missing_required_label_is_refused_and_writes_nothing(db: TestDb) {
    let h = Herald::with_alice_and_bob(db);
    let before = h.message_count();
    let run = h
        .as_user(
            "alice",
            &["enqueue", "user_account_created", "--user", "bob"],
        )
        .fails_with("needs the label account_name");
    assert!(
        run.stderr
            .contains("(the new account's username); add --label account_name=VALUE"),
        "{}",
        run.stderr
    );
    assert_eq!(
        h.message_count(),
        before,
        "a refused enqueue writes nothing"
    );

    // With it the message is accepted, and a label the event does not declare passes through.
    let out = h
        .as_user(
            "alice",
            &[
                "enqueue",
                "user_account_created",
                "--user",
                "bob",
                "--label",
                "account_name=carol",
                "--label",
                "ticket=OPS-12",
                "--json",
            ],
        )
        .ok()
        .json();
    let rows = out["enqueued"].as_array().unwrap();
    assert!(!rows.is_empty(), "{out}");
    for row in rows {
        assert_eq!(row["payload"]["labels"]["account_name"], "carol");
        assert_eq!(row["payload"]["labels"]["ticket"], "OPS-12");
    }
}

async fn a_label_an_override_reads_unguarded_is_needed_at_enqueue(db: TestDb) {
    let h = Herald::with_alice_and_bob(db);
    std::fs::write(
        h.dir.path().join("herald.toml"),
        "[events.run_failure]\nbody_template = \"{{ body }}\\n\\nModel: {{ labels.model }}\"\n",
    )
    .unwrap();
    let run = h
        .as_user("alice", &["enqueue", "run_failure", "--user", "bob"])
        .fails_with(
            "needs the label model: without it its events.run_failure.body_template template fails",
        );
    assert!(
        run.stderr.contains("add --label model=VALUE"),
        "{}",
        run.stderr
    );
    assert_eq!(h.message_count(), 0);
    h.as_user(
        "alice",
        &[
            "enqueue",
            "run_failure",
            "--user",
            "bob",
            "--label",
            "model=sales.orders",
        ],
    )
    .ok();
    assert!(h.message_count() > 0);
}

async fn events_show_lists_the_labels_a_producer_writes_to(db: TestDb) {
    let h = Herald::with_alice_and_bob(db);
    let text = h
        .as_user("bob", &["events", "show", "user_account_created"])
        .ok()
        .stdout;
    let line = |needle: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(needle))
            .unwrap_or_else(|| panic!("no line starting with `{needle}` in:\n{text}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        line("account_name"),
        "account_name required the new account's username"
    );
    assert_eq!(
        line("account_display_name"),
        "account_display_name optional the account's display name"
    );
    for needle in [
        "User Events",
        "owner, user-admin",
        "User account \"{{ labels.account_name }}\" created",
        "View accounts",
        "herald enqueue user_account_created --label account_name=VALUE",
    ] {
        assert!(text.contains(needle), "no `{needle}` in:\n{text}");
    }

    let json = h
        .as_user("bob", &["events", "show", "user_account_created", "--json"])
        .ok()
        .json();
    assert_eq!(json["name"], "user_account_created");
    assert_eq!(json["group"], "User Events");
    assert_eq!(
        json["audience_roles"],
        serde_json::json!(["owner", "user-admin"])
    );
    assert_eq!(json["method"], Value::Null);
    assert_eq!(json["effective_method"], "smtp");
    assert_eq!(
        json["labels"][0],
        serde_json::json!({
            "name": "account_name",
            "required": true,
            "description": "the new account's username",
        })
    );
    assert!(
        json["labels"]
            .as_array()
            .unwrap()
            .iter()
            .skip(1)
            .all(|l| l["required"] == false),
        "{json}"
    );
    assert_eq!(json["actions"][0]["label"], "View accounts");
    assert!(
        json["title_template"]
            .as_str()
            .unwrap()
            .contains("labels.account_name")
    );

    let list = h.as_user("bob", &["events", "list", "--json"]).ok().json();
    let listed = row(&list, "name", "user_account_created");
    assert_eq!(listed["labels"], json["labels"]);

    h.as_user("bob", &["events", "show", "user_acount_created"])
        .fails_with("unknown event `user_acount_created` (did you mean `user_account_created`?)");
}

async fn unmigrated_and_unreachable_stores_say_what_to_do(db: TestDb) {
    let h = Herald::new(db);
    h.as_user("alice", &["messages", "list"])
        .fails_with("herald migrate");
    let dir = tempfile::tempdir().unwrap();
    let unreachable = "postgres://postgres@127.0.0.1:1/herald";
    let args = [
        "--database-url",
        unreachable,
        "--as",
        "alice",
        "messages",
        "list",
    ];
    Run::of(&mut herald(dir.path(), &args)).fails_with("cannot open the store");
}

async fn the_first_owner_bootstraps_and_then_identity_is_required(db: TestDb) {
    let h = Herald::with_alice_and_bob(db);
    let mut cmd = h.command(&[
        "users",
        "add",
        "mallory",
        "--email",
        "m@example.com",
        "--role",
        "owner",
    ]);
    cmd.env("USER", "nobody-here");
    Run::of(&mut cmd).fails_with("unknown user `nobody-here`");
    // HERALD_USER names the caller like --as does.
    let list = h
        .run_env(&["users", "list", "--json"], &[("HERALD_USER", "alice")])
        .ok()
        .json();
    assert_eq!(column(&list, "username"), ["alice", "bob"]);
    h.as_user("alice", &["users", "suspend", "bob"]).ok();
    h.as_user("bob", &["messages", "list"])
        .fails_with("suspended");
    h.as_user("alice", &["users", "activate", "bob"]).ok();
    h.as_user("bob", &["messages", "list"]).ok();
}

async fn owners_retry_failed_messages(db: TestDb) {
    use herald::model::{MessageState, Method, PlannedMessage};
    use herald::store::{self, NewMessage, OpenMode};
    let h = Herald::with_alice_and_bob(db);
    let store = store::open(&h.db.url, OpenMode::Existing).await.unwrap();
    let template = store
        .template_by_name("run_failure")
        .await
        .unwrap()
        .unwrap();
    let failed = NewMessage {
        id: uuid::Uuid::now_v7(),
        template_id: template.id,
        created_by: "test".into(),
        created_at: chrono::Utc::now(),
        planned: PlannedMessage {
            user_id: None,
            target: Some("ops".into()),
            method: Method::Webhook,
            status: MessageState::PermanentFailure,
            status_reason: Some("webhook 404 after 0.1s".into()),
            payload: serde_json::json!({}),
            dedupe_hash: None,
        },
    };
    store.enqueue(std::slice::from_ref(&failed)).await.unwrap();
    let id = failed.id.to_string();
    let listed = h
        .as_user(
            "alice",
            &[
                "messages",
                "list",
                "--status",
                "permanent_failure",
                "--json",
            ],
        )
        .ok()
        .json();
    assert_eq!(ids(&listed), vec![id.clone()]);
    h.as_user("alice", &["messages", "retry", &id]).ok();
    let shown = h
        .as_user("alice", &["messages", "show", &id, "--json"])
        .ok()
        .json();
    assert_eq!(shown["status"], "pending");
    assert_eq!(shown["status_reason"], "retried by alice");
    assert_eq!(shown["attempts"], Value::Array(vec![]));
    h.as_user("alice", &["messages", "retry", &id])
        .fails_with("no message was retried");
}

async fn custom_and_test_notifications_reach_the_inbox(db: TestDb) {
    let h = Herald::with_alice_and_bob(db);
    h.as_user("bob", &["notifications", "custom", "", ""])
        .fails_with("needs a title or a message");
    let custom = h
        .as_user(
            "bob",
            &[
                "notifications",
                "custom",
                "Build done",
                "All **green**",
                "--json",
            ],
        )
        .ok()
        .json();
    let rows = custom["enqueued"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "only the inbox is configured: {custom}");
    assert_eq!(rows[0]["event"], "custom_notification");
    assert_eq!(rows[0]["username"], "bob");
    assert_eq!(
        rows[0]["dedupe_hash"],
        Value::Null,
        "custom notifications bypass dedupe"
    );
    h.as_user("bob", &["notifications", "test", "--json"]).ok();
    h.as_user("bob", &["notifications", "test", "--method", "smtp"])
        .fails_with("smtp is not configured");

    // A replica delivers them into bob's inbox.
    let mut entries = Value::Null;
    h.serve_until(Duration::from_secs(20), || {
        entries = h.as_user("bob", &["inbox", "list", "--json"]).ok().json();
        entries.as_array().unwrap().len() == 2
    });
    assert_eq!(entries.as_array().unwrap().len(), 2, "{entries}");
    let custom = row(&entries, "event", "custom_notification");
    assert_eq!(custom["title"], "Build done");
    assert!(
        custom["content"]
            .as_str()
            .unwrap()
            .contains("All **green**")
    );
    assert_eq!(custom["read_at"], Value::Null);
    let id = custom["id"].as_str().unwrap();
    let unread = || {
        let list = h.as_user("bob", &["inbox", "list", "--unread", "--json"]);
        list.ok().json().as_array().expect("array").len()
    };
    h.as_user("bob", &["inbox", "read", id]).ok();
    assert_eq!(unread(), 1);
    h.as_user("alice", &["inbox", "read", id])
        .fails_with("no inbox entry");
    h.as_user("bob", &["inbox", "unread", id]).ok();
    assert_eq!(unread(), 2);
}

async fn doctor_reaches_every_channel_and_says_what_fails(db: TestDb) {
    let h = Herald::with_alice_and_bob(db);
    let sink = common::http_sink::HttpSink::ok().await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    std::fs::write(
        h.dir.path().join("herald.toml"),
        format!(
            "[notifications]\nmethod = \"webhook\"\n[notifications.webhook]\nendpoint = \"{}/hooks/s3cret-path\"\n\n[[targets]]\ntype = \"webhook\"\nname = \"ops\"\nnotify_on = [\"run_failure\"]\nurl = \"http://127.0.0.1:{closed}/hook\"\n",
            sink.url
        ),
    )
    .unwrap();
    let run = h.as_user("alice", &["doctor"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let line = |needle: &str| {
        run.stdout
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no `{needle}` line in:\n{}", run.stdout))
            .to_string()
    };
    assert!(
        line("webhook endpoint").starts_with("[ ok ]"),
        "{}",
        run.stdout
    );
    assert!(
        line("webhook target `ops`").starts_with("[FAIL]"),
        "{}",
        run.stdout
    );
    assert!(
        line("event catalog").starts_with("[ ok ]"),
        "{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains("s3cret-path"),
        "secrets stay out: {}",
        run.stdout
    );
    assert!(run.stderr.contains("checks failed"), "{}", run.stderr);
    let requests = sink.requests();
    assert!(!requests.is_empty());
    assert!(
        requests.iter().all(|r| r.method == "HEAD"),
        "doctor sends nothing"
    );
}

async fn doctor_is_for_owners_and_on_call(db: TestDb) {
    let h = Herald::with_alice_and_bob(db);
    let refused = h.as_user("bob", &["doctor"]).fails_with(
        "permission denied: running doctor requires the owner or oncall role (bob has: member)",
    );
    assert_eq!(refused.stdout, "", "no check ran for a member");

    h.add_user("carol", "oncall");
    // No dispatcher is running here, so a check fails; but on-call gets the checks.
    let run = h.as_user("carol", &["doctor"]);
    assert!(
        run.stdout.lines().any(|l| l.starts_with("[ ok ] store ")),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
}

async fn purge_refuses_an_age_past_any_timestamp(db: TestDb) {
    let h = Herald::with_alice_and_bob(db);
    h.as_user("alice", &["messages", "purge", "--older-than", "300000y"])
        .fails_with("--older-than: `300000y` is too long (at most 100years)");
    h.as_user("alice", &["messages", "purge", "--older-than", "soon"])
        .fails_with("--older-than: invalid duration `soon` (expected e.g. 15s, 5m, 7d)");
    h.as_user("alice", &["messages", "purge", "--older-than", "100y"])
        .ok();
}

async fn on_call_sees_the_queue_but_not_the_users_or_their_emails(db: TestDb) {
    let h = Herald::with_alice_and_bob(db);
    h.add_user("carol", "oncall");
    h.add_user("dave", "user-admin");
    for args in [&["users", "list"][..], &["users", "list", "--json"]] {
        let refused = h.as_user("carol", args).fails_with(
            "permission denied: listing users requires the owner or user-admin role (carol has: oncall)",
        );
        assert!(
            !refused.stdout.contains("@example.com"),
            "{}",
            refused.stdout
        );
    }
    h.as_user("carol", &["messages", "list"]).ok();
    let listed = h.as_user("dave", &["users", "list", "--json"]).ok().json();
    assert_eq!(listed.as_array().map(Vec::len), Some(4), "{listed}");
}

/// Who `token` authenticates as, asked the way the HTTP API asks: the service, over the store
/// the binary wrote to. The error's text when it is refused.
async fn authenticate(db: &TestDb, token: &str) -> Result<String, String> {
    use herald::config::Config;
    use herald::service::Service;
    use herald::store::{self, OpenMode};
    let store = store::open(&db.url, OpenMode::Existing)
        .await
        .map_err(|e| e.to_string())?;
    let service = Service::start(store, std::sync::Arc::new(Config::default()))
        .await
        .map_err(|e| e.to_string())?;
    let user = service.authenticate_token(token).await;
    user.map(|u| u.username).map_err(|e| e.to_string())
}

/// The console's page read with `title~`: the service renders each message's title as the
/// dispatcher would and keeps the pages whose title contains the text, ignoring case.
async fn the_queue_finds_messages_by_their_rendered_title(db: TestDb) {
    use herald::config::Config;
    use herald::service::Service;
    use herald::service::read_models::QueueQuery;
    use herald::store::{self, OpenMode, PageRequest};
    let h = Herald::with_alice_and_bob(db);
    h.enqueue_for_bob("ws-1");
    h.enqueue_for_bob("ws-2");
    let store = store::open(&h.db.url, OpenMode::Existing)
        .await
        .expect("open store");
    let service = Service::start(store, std::sync::Arc::new(Config::default()))
        .await
        .expect("service");
    let alice = service.identify("alice").await.expect("alice");
    let page = PageRequest {
        before: None,
        limit: 50,
    };
    let all = service
        .search_titled(&alice, &QueueQuery::default(), page)
        .await
        .expect("page");
    let mut titles: Vec<&str> = all.iter().map(|m| m.title.as_str()).collect();
    titles.dedup();
    assert_eq!(
        titles,
        ["Workspace \"ws-2\" deleted", "Workspace \"ws-1\" deleted"]
    );
    let query = QueueQuery {
        title: Some("WS-1\" DEL".into()),
        ..QueueQuery::default()
    };
    let found = service
        .search_titled(&alice, &query, page)
        .await
        .expect("search");
    assert!(!found.is_empty());
    assert!(
        found
            .iter()
            .all(|m| m.title == "Workspace \"ws-1\" deleted"),
        "{found:?}"
    );
    assert_eq!(found.len() * 2, all.len());
    let detail = service
        .message_detail(&alice, &found[0].message.id.to_string())
        .await
        .expect("detail");
    let rendered = detail.rendered.expect("renders");
    assert_eq!(rendered.title, "Workspace \"ws-1\" deleted");
    assert!(rendered.body_markdown.contains("ws-1"), "{rendered:?}");
}

async fn a_token_is_printed_once_never_listed_and_refused_once_revoked(db: TestDb) {
    let h = Herald::with_alice_and_bob(db);
    let made = h.as_user("bob", &["tokens", "create", "ci"]).ok();
    let token = made
        .stdout
        .split_whitespace()
        .find(|word| word.starts_with("herald_"))
        .unwrap_or_else(|| panic!("no token in:\n{}", made.stdout))
        .to_string();
    assert_eq!(token.len(), "herald_".len() + 64, "{token}");
    assert_eq!(made.stdout.matches(&token).count(), 1, "{}", made.stdout);
    assert!(
        made.stdout.contains("shown only this once"),
        "{}",
        made.stdout
    );
    assert!(
        made.stdout.contains("Authorization: Bearer"),
        "{}",
        made.stdout
    );
    assert_eq!(authenticate(&h.db, &token).await, Ok("bob".to_string()));

    let deploy = h
        .as_user(
            "alice",
            &["tokens", "create", "deploy", "--user", "bob", "--json"],
        )
        .ok()
        .json();
    assert_eq!(
        (&deploy["name"], &deploy["username"]),
        (&"deploy".into(), &"bob".into())
    );
    let second = deploy["token"]
        .as_str()
        .expect("the token in --json")
        .to_string();
    assert_ne!(second, token);
    h.as_user("alice", &["tokens", "create", "root"]).ok();

    let secrets = [&token["herald_".len()..], &second["herald_".len()..]];
    for user in ["alice", "bob"] {
        for args in [&["tokens", "list"][..], &["tokens", "list", "--json"]] {
            let out = h.as_user(user, args).ok();
            for secret in secrets {
                assert!(
                    !out.stdout.contains(secret),
                    "{user} {args:?}:\n{}",
                    out.stdout
                );
            }
        }
    }
    let table = h.as_user("bob", &["tokens", "list"]).ok().stdout;
    let header: Vec<&str> = table.lines().next().unwrap_or("").split("  ").collect();
    let header: Vec<&str> = header
        .iter()
        .map(|h| h.trim())
        .filter(|h| !h.is_empty())
        .collect();
    assert_eq!(
        header,
        ["NAME", "USER", "CREATED", "LAST USED", "REVOKED"],
        "{table}"
    );
    let bobs = h.as_user("bob", &["tokens", "list", "--json"]).ok().json();
    assert_eq!(
        column(&bobs, "name"),
        ["ci", "deploy"],
        "a member sees only their own"
    );
    assert!(
        row(&bobs, "name", "ci")["last_used_at"].is_string(),
        "{bobs}"
    );
    assert!(
        row(&bobs, "name", "deploy")["last_used_at"].is_null(),
        "{bobs}"
    );
    let everyone = h
        .as_user("alice", &["tokens", "list", "--json"])
        .ok()
        .json();
    assert_eq!(column(&everyone, "username"), ["alice", "bob", "bob"]);

    h.as_user("bob", &["tokens", "create", "deploy"])
        .fails_with("bob already has a live API token named `deploy`");
    h.as_user("bob", &["tokens", "create", "bad name"])
        .fails_with("not a valid token name");
    h.as_user("bob", &["tokens", "revoke", "root", "--user", "alice"])
        .fails_with("permission denied");
    assert_eq!(
        h.as_user("bob", &["tokens", "create"]).code,
        2,
        "a usage error"
    );

    let revoked = h.as_user("bob", &["tokens", "revoke", "ci"]).ok();
    assert!(
        revoked.stdout.contains("revoked bob's API token `ci`"),
        "{}",
        revoked.stdout
    );
    let refused = authenticate(&h.db, &token).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("unknown or revoked")),
        "{refused:?}"
    );
    assert_eq!(authenticate(&h.db, &second).await, Ok("bob".to_string()));
    h.as_user("bob", &["tokens", "revoke", "ci"])
        .fails_with("bob has no live API token named `ci`");
    let bobs = h.as_user("bob", &["tokens", "list", "--json"]).ok().json();
    assert!(row(&bobs, "name", "ci")["revoked_at"].is_string(), "{bobs}");
}

for_both_backends!(
    the_queue_finds_messages_by_their_rendered_title,
    a_token_is_printed_once_never_listed_and_refused_once_revoked,
    an_enqueued_event_arrives_by_email_through_serve,
    doctor_reaches_every_channel_and_says_what_fails,
    doctor_is_for_owners_and_on_call,
    purge_refuses_an_age_past_any_timestamp,
    on_call_sees_the_queue_but_not_the_users_or_their_emails,
    custom_and_test_notifications_reach_the_inbox,
    enqueue_then_list_then_dedupe,
    members_cannot_pause_retry_or_touch_others_opt_outs,
    a_members_own_opt_out_inhibits_their_next_message,
    bad_input_is_refused_and_writes_nothing,
    a_missing_required_label_is_refused_and_writes_nothing,
    a_label_an_override_reads_unguarded_is_needed_at_enqueue,
    events_show_lists_the_labels_a_producer_writes_to,
    unmigrated_and_unreachable_stores_say_what_to_do,
    the_first_owner_bootstraps_and_then_identity_is_required,
    owners_retry_failed_messages,
);

#[test]
fn a_config_typo_or_bad_duration_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("herald.toml");
    // (herald.toml, or no file and the environment, what the one error line names)
    type Case<'a> = (Option<&'a str>, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 4] = [
        (
            Some("[notifications]\nfetch_intervall = \"15s\"\n"),
            &[],
            "fetch_intervall",
        ),
        (
            Some("[notifications]\nretry_interval = \"5 minutez\"\n"),
            &[],
            "notifications.retry_interval",
        ),
        // Past any date a timestamp can hold: refused up front, not a panic at the first lease.
        (
            Some("[notifications]\nlease_period = \"1000000y\"\n"),
            &[],
            "herald.toml line 2: notifications.lease_period: `1000000y` is too long (at most 100years)",
        ),
        (
            None,
            &[("HERALD_NOTIFICATIONS_LEASE_PERIOD", "soon")],
            "HERALD_NOTIFICATIONS_LEASE_PERIOD",
        ),
    ];
    for (text, env, needle) in cases {
        match text {
            Some(text) => std::fs::write(&file, text).unwrap(),
            None => std::fs::remove_file(&file).unwrap(),
        }
        Run::of(herald(dir.path(), &["migrate"]).envs(env.iter().copied())).fails_with(needle);
    }
    assert!(
        !dir.path().join("herald.db").exists(),
        "a config error writes nothing"
    );
}

#[test]
fn a_broken_template_override_refuses_start_up_naming_its_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("herald.toml"),
        "[events.run_failure]\nbody_template = \"{{ broken\"\n",
    )
    .unwrap();
    Run::of(&mut herald(dir.path(), &["migrate"])).ok();
    let mut child = herald(dir.path(), &["serve"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve started despite a broken template override");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Run::from(child.wait_with_output().unwrap()).fails_with("events.run_failure.body_template");
    Run::of(&mut herald(dir.path(), &ADD_ALICE_AS_OWNER)).ok();
    Run::of(&mut herald(
        dir.path(),
        &["--as", "alice", "events", "list"],
    ))
    .fails_with("events.run_failure.body_template");
}

/// The whole path by email: `herald enqueue` as a producer, `herald serve` as the replica, a
/// real SMTP server (aiosmtpd) as the peer.
async fn an_enqueued_event_arrives_by_email_through_serve(db: TestDb) {
    use common::smtp_server::{SmtpServer, SmtpServerOptions};
    let smtp = SmtpServer::start(SmtpServerOptions::new());
    let h = Herald::with_alice_and_bob(db);
    std::fs::write(
        h.dir.path().join("herald.toml"),
        format!(
            "[email]\nfrom = \"Herald <herald@example.com>\"\nsmarthost = \"{}\"\n",
            smtp.address()
        ),
    )
    .unwrap();
    let out = h.enqueue_for_bob("ws-mail");
    assert_eq!(column(&out["enqueued"], "method"), ["smtp", "inbox"]);
    h.serve_until(Duration::from_secs(30), || !smtp.received().is_empty());
    let mails = smtp.received();
    assert_eq!(mails.len(), 1, "{}", smtp.stderr());
    assert_eq!(mails[0].to, ["bob@example.com"]);
    assert_eq!(mails[0].mime.content_type, "multipart/alternative");
    assert!(
        mails[0]
            .mime
            .subject
            .as_deref()
            .unwrap_or("")
            .contains("ws-mail"),
        "{:?}",
        mails[0].mime.subject
    );
}
