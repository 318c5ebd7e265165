//! `herald demo` end to end: the real binary in a pseudo-terminal, in a scratch directory.
//!
//! It builds ./herald-demo.db, opens the console as demo-owner, and its local sinks and
//! trickle of events give the queue messages in several states, failures included; `q` exits
//! 0 and says how to come back. A second run reuses the store without seeding it again.

use crate::common;

use common::cli::{ADD_ALICE_AS_OWNER, Run, herald};
use common::pty::{Console, wait_until};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

fn env() -> Vec<(String, String)> {
    vec![("NO_COLOR".into(), "1".into())]
}

/// `herald --database-url sqlite://DIR/herald-demo.db --as demo-owner messages list --json`.
fn demo_messages(dir: &Path) -> Vec<Value> {
    let url = format!("sqlite://{}", dir.join("herald-demo.db").display());
    let args = ["--database-url", &url, "--as", "demo-owner"];
    let mut cmd = herald(dir, &args);
    cmd.args(["messages", "list", "--limit", "10000", "--json"]);
    Run::of(&mut cmd)
        .ok()
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn states(messages: &[Value]) -> BTreeSet<String> {
    messages
        .iter()
        .filter_map(|m| m["status"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn the_demo_opens_the_console_on_a_busy_store_with_failures_and_can_be_reopened() {
    let dir = tempfile::tempdir().expect("a scratch dir");

    let mut c = Console::spawn(dir.path(), &env(), &["demo"]);
    c.wait_for("demo-owner (owner)");
    c.wait_for("dispatcher running");
    // The sinks answer: some messages are delivered, some fail for good or for now.
    wait_until("sent messages and failures", || {
        let seen = states(&demo_messages(dir.path()));
        seen.contains("sent")
            && seen.contains("permanent_failure")
            && seen.contains("inhibited")
            && seen.len() >= 4
    });
    c.press("5");
    c.wait_for("Top failure reasons");
    c.wait_for("perm fail slack chat.postMessage");
    c.wait_for("perm fail webhook 404");
    assert_eq!(c.quit(), 0, "q exits 0");
    c.assert_terminal_restored();
    assert!(
        c.output().contains("`herald demo` reopens it"),
        "the exit hint:\n{}",
        c.output()
    );
    let first = demo_messages(dir.path());
    assert!(first.len() >= 200, "history was seeded: {}", first.len());
    let seen = states(&first);
    assert!(
        seen.contains("permanent_failure") || seen.contains("temporary_failure"),
        "{seen:?}"
    );

    // Reopened without traffic: the same store, not seeded again.
    let mut again = Console::spawn(dir.path(), &env(), &["demo", "--rate", "0"]);
    again.wait_for("demo-owner (owner)");
    again.wait_for("dispatcher running");
    assert_eq!(again.quit(), 0);
    assert_eq!(demo_messages(dir.path()).len(), first.len());
}

#[test]
fn the_demo_needs_a_terminal_and_then_creates_nothing() {
    let dir = tempfile::tempdir().expect("a scratch dir");
    let run = Run::of(&mut herald(dir.path(), &["demo"]));
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("needs a terminal"), "{}", run.stderr);
    assert!(!dir.path().join("herald-demo.db").exists());
}

#[test]
fn reset_with_an_explicit_database_url_is_refused() {
    let dir = tempfile::tempdir().expect("a scratch dir");
    let c = Console::spawn(
        dir.path(),
        &env(),
        &["--database-url", "sqlite://elsewhere.db", "demo", "--reset"],
    );
    let mut seen = String::new();
    common::pty::wait_until("herald to refuse", || {
        seen = c.output();
        seen.contains("--reset only recreates")
    });
    assert!(!dir.path().join("elsewhere.db").exists(), "{seen}");
}

#[test]
fn the_demo_refuses_a_store_with_users_of_its_own() {
    let dir = tempfile::tempdir().expect("a scratch dir");
    let url = format!("sqlite://{}", dir.path().join("prod.db").display());
    for args in [&["migrate"][..], &ADD_ALICE_AS_OWNER] {
        let mut cmd = herald(dir.path(), &["--database-url", &url]);
        Run::of(cmd.args(args)).ok();
    }
    let mut c = Console::spawn(dir.path(), &env(), &["--database-url", &url, "demo"]);
    assert_eq!(c.wait_exit(), 1, "{}", c.output());
    let said = c.output();
    assert!(
        said.contains("users that are not the demo's (alice)"),
        "{said}"
    );
    assert!(
        !said.contains("demo-owner (owner)"),
        "the console never opened"
    );
}
