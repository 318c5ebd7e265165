//! `herald explain`, the built binary against both backends: every candidate's routing decision,
//! as enqueue would decide it, and nothing written.

use crate::common;
use crate::for_both_backends;

use common::TestDb;
use common::cli::{ADD_ALICE_AS_OWNER, Run, herald};
use herald::store::{self, OpenMode};
use serde_json::Value;

/// A migrated store with owner alice and member bob, webhook as the default method (its
/// endpoint never called: explain delivers nothing), and a scratch working directory.
struct Deployment {
    db: TestDb,
    dir: tempfile::TempDir,
}

impl Deployment {
    fn new(db: TestDb) -> Deployment {
        let d = Deployment {
            db,
            dir: tempfile::tempdir().expect("temp dir"),
        };
        d.run(None, &["migrate"]).ok();
        d.run(None, &ADD_ALICE_AS_OWNER).ok();
        let bob = ["users", "add", "bob", "--email", "bob@example.com"];
        d.run(Some("alice"), &bob).ok();
        d
    }

    /// `herald [--as USER] ARGS…` with the webhook deployment's environment.
    fn run(&self, user: Option<&str>, args: &[&str]) -> Run {
        let mut cmd = herald(self.dir.path(), &["--database-url", &self.db.url]);
        if let Some(user) = user {
            cmd.args(["--as", user]);
        }
        cmd.args(args)
            .env("HERALD_NOTIFICATIONS_METHOD", "webhook")
            .env(
                "HERALD_NOTIFICATIONS_WEBHOOK_ENDPOINT",
                "http://127.0.0.1:9/never-called",
            );
        Run::of(&mut cmd)
    }

    /// How many messages the store holds, in any state.
    async fn message_count(&self) -> i64 {
        let store = store::open(&self.db.url, OpenMode::Existing)
            .await
            .expect("open store");
        let counts = store.count_by_state().await.expect("count");
        counts.iter().map(|(_, n)| n).sum()
    }
}

const DONE_WHEN: [&str; 9] = [
    "explain",
    "workspace_deleted",
    "--user",
    "alice",
    "--user",
    "bob",
    "--label",
    "name=x",
    "--json",
];

/// The decisions for `user` as `(method, decision, reason)`.
fn decisions_of(explanation: &Value, user: &str) -> Vec<(String, String, String)> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    explanation["decisions"]
        .as_array()
        .expect("decisions")
        .iter()
        .filter(|d| d["user"] == user && d["target"].is_null())
        .map(|d| (text(&d["method"]), text(&d["decision"]), text(&d["reason"])))
        .collect()
}

async fn explain_shows_queued_and_opted_out_recipients_and_writes_nothing(db: TestDb) {
    let d = Deployment::new(db);
    d.run(Some("bob"), &["optout", "set", "workspace_deleted"])
        .ok();
    let explanation = d.run(Some("alice"), &DONE_WHEN).ok().json();
    assert_eq!(explanation["event"], "workspace_deleted");
    let alice = decisions_of(&explanation, "alice");
    let methods: Vec<(&str, &str)> = alice
        .iter()
        .map(|(m, decision, _)| (m.as_str(), decision.as_str()))
        .collect();
    assert_eq!(methods, [("webhook", "queued"), ("inbox", "queued")]);
    // No replica runs: the queued messages would wait, and explain says so.
    assert!(
        alice[0].2.contains("no replica can deliver it"),
        "{alice:?}"
    );
    let bob = decisions_of(&explanation, "bob");
    assert_eq!(
        bob,
        [
            (
                "webhook".into(),
                "inhibited".into(),
                "disabled by user".into()
            ),
            (
                "inbox".into(),
                "inhibited".into(),
                "disabled by user".into()
            ),
        ]
    );
    assert_eq!(d.message_count().await, 0, "explain wrote messages");

    let text = d.run(Some("alice"), &DONE_WHEN[..8]).ok().stdout;
    assert!(text.contains("RECIPIENT"), "{text}");
    assert!(text.contains("nothing was written"), "{text}");
    assert_eq!(d.message_count().await, 0, "explain wrote messages");
}

async fn explain_names_the_message_an_identical_one_duplicates(db: TestDb) {
    let d = Deployment::new(db);
    let mut enqueue = DONE_WHEN;
    enqueue[0] = "enqueue";
    let enqueued = d.run(Some("alice"), &enqueue).ok().json();
    let before = d.message_count().await;
    assert_eq!(before, 4, "{enqueued}");
    let explanation = d.run(Some("alice"), &DONE_WHEN).ok().json();
    let alice_webhook = enqueued["enqueued"]
        .as_array()
        .expect("enqueued")
        .iter()
        .find(|m| m["username"] == "alice" && m["method"] == "webhook")
        .expect("alice's webhook message")["id"]
        .clone();
    let decision = explanation["decisions"]
        .as_array()
        .expect("decisions")
        .iter()
        .find(|d| d["user"] == "alice" && d["method"] == "webhook")
        .expect("alice's webhook decision")
        .clone();
    assert_eq!(decision["decision"], "skipped", "{decision}");
    assert_eq!(decision["duplicate_of"], alice_webhook, "{decision}");
    let reason = decision["reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("duplicate of "), "{reason}");
    assert_eq!(d.message_count().await, before, "explain wrote messages");
}

async fn explain_lists_other_users_as_not_in_the_audience(db: TestDb) {
    let d = Deployment::new(db);
    let carol = ["users", "add", "carol", "--email", "carol@example.com"];
    d.run(Some("alice"), &carol).ok();
    let args = [
        "explain",
        "workspace_deleted",
        "--user",
        "bob",
        "--label",
        "name=x",
        "--json",
    ];
    let explanation = d.run(Some("alice"), &args).ok().json();
    for user in ["alice", "carol"] {
        let decisions = decisions_of(&explanation, user);
        assert_eq!(decisions.len(), 1, "{user}: {decisions:?}");
        let (method, decision, reason) = &decisions[0];
        assert_eq!((method.as_str(), decision.as_str()), ("", "skipped"));
        assert!(reason.starts_with("not in audience"), "{reason}");
    }
}

async fn explain_refuses_what_enqueue_refuses_and_members(db: TestDb) {
    let d = Deployment::new(db);
    d.run(
        Some("alice"),
        &["explain", "workspace_deleted", "--user", "bob"],
    )
    .fails_with("name");
    d.run(Some("alice"), &["explain", "no_such_event"])
        .fails_with("unknown event");
    d.run(Some("bob"), &DONE_WHEN[..8])
        .fails_with("permission denied");
    assert_eq!(d.message_count().await, 0);
}

for_both_backends!(
    explain_shows_queued_and_opted_out_recipients_and_writes_nothing,
    explain_names_the_message_an_identical_one_duplicates,
    explain_lists_other_users_as_not_in_the_audience,
    explain_refuses_what_enqueue_refuses_and_members,
);
