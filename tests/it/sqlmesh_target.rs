//! The SQLMesh target (assets/integrations/sqlmesh/herald_target.py) in a real SQLMesh: the
//! `sqlmesh` package from the registry in a venv under `target/`, a DuckDB project with one
//! model and a failing (non-blocking) audit, `herald serve --http` as the real binary with a
//! token from `herald tokens create`; `sqlmesh plan --auto-apply` and `sqlmesh run` must queue
//! `apply_start`, `apply_end`, `run_start`, `run_end` and `audit_failure` with their labels, and
//! a run with Herald gone must still succeed, logging why the events were not reported.
//!
//! The venv (`<target>/tmp/sqlmesh-venv-VERSION`) is made once and reused by later runs; it
//! needs `python3 -m venv` (Debian: `python3-venv`) and the package registry. When either is
//! missing the test fails saying so: it never skips.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common;
use crate::common::cli::{ADD_ALICE_AS_OWNER, Run, herald};
use crate::common::serve::Serve;
use crate::for_both_backends;
use common::TestDb;

/// The SQLMesh release the test installs (works with Python 3.9 to 3.13).
const SQLMESH_VERSION: &str = "0.236.4";

const EVENTS: [&str; 10] = [
    "apply_start",
    "apply_end",
    "apply_failure",
    "run_start",
    "run_end",
    "run_failure",
    "audit_failure",
    "migration_start",
    "migration_end",
    "migration_failure",
];

/// `<venv>/bin`, made at most once per test process; panics saying what is missing.
fn sqlmesh_bin() -> &'static Path {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BIN.get_or_init(venv_with_sqlmesh) {
        Ok(bin) => bin,
        Err(e) => panic!("the SQLMesh target test needs SQLMesh {SQLMESH_VERSION}: {e}"),
    }
}

fn venv_with_sqlmesh() -> Result<PathBuf, String> {
    let venv =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("sqlmesh-venv-{SQLMESH_VERSION}"));
    let bin = venv.join("bin");
    // Written last: a venv without it was interrupted and is made again. It names the venv's
    // own path too: a venv's scripts point at where it was made, so one copied or moved with
    // its `target/` is made again rather than failing with a missing interpreter.
    let complete = venv.join("herald-complete");
    let stamp = format!("{SQLMESH_VERSION} {}", venv.display());
    if fs::read_to_string(&complete).is_ok_and(|made| made == stamp) {
        return Ok(bin);
    }
    let _ = fs::remove_dir_all(&venv);
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running python3 (is Python 3 installed?): {e}"))?;
    if !made.status.success() {
        return Err(format!(
            "`python3 -m venv {}` failed ({}): {}; install the venv module (Debian: `apt-get \
             install python3-venv`)",
            venv.display(),
            made.status,
            stderr(&made)
        ));
    }
    let installed = Command::new(bin.join("pip"))
        .args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            &format!("sqlmesh=={SQLMESH_VERSION}"),
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running the venv's pip: {e}"))?;
    if !installed.status.success() {
        let _ = fs::remove_dir_all(&venv);
        return Err(format!(
            "pip could not install sqlmesh=={SQLMESH_VERSION} from the package registry ({}): \
             {}; make the registry reachable for pip (PIP_INDEX_URL for a mirror) and run the \
             test again",
            installed.status,
            stderr(&installed)
        ));
    }
    fs::write(&complete, &stamp).map_err(|e| format!("writing {}: {e}", complete.display()))?;
    Ok(bin)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).trim().to_string()
}

/// `127.0.0.1:PORT` of a port free a moment ago.
fn free_loopback_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// A SQLMesh project in `dir`: DuckDB, one daily model owned by alice with one failing audit
/// (non-blocking, so the plan applies), and the Herald target for all ten events.
fn write_project(dir: &Path) {
    fs::create_dir_all(dir.join("models")).unwrap();
    fs::create_dir_all(dir.join("audits")).unwrap();
    let target =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/integrations/sqlmesh/herald_target.py");
    fs::copy(&target, dir.join("herald_target.py")).expect("copy herald_target.py");
    let notify_on = EVENTS.map(|e| format!("\"{e}\"")).join(", ");
    fs::write(
        dir.join("config.py"),
        format!(
            r#"from sqlmesh.core.config import Config, DuckDBConnectionConfig, GatewayConfig, ModelDefaultsConfig

from herald_target import HeraldNotificationTarget

config = Config(
    gateways={{"local": GatewayConfig(connection=DuckDBConnectionConfig(database="warehouse.duckdb"))}},
    default_gateway="local",
    model_defaults=ModelDefaultsConfig(dialect="duckdb", start="3 days ago"),
    notification_targets=[HeraldNotificationTarget(notify_on=[{notify_on}], environment="prod")],
)
"#
        ),
    )
    .unwrap();
    fs::write(
        dir.join("models/orders.sql"),
        "MODEL (\n  name shop.orders,\n  kind FULL,\n  cron '@daily',\n  owner alice,\n  audits (no_negative_amounts)\n);\n\nSELECT 1 AS id, 10 AS amount\nUNION ALL\nSELECT 2 AS id, -5 AS amount\n",
    )
    .unwrap();
    fs::write(
        dir.join("audits/no_negative_amounts.sql"),
        "AUDIT (\n  name no_negative_amounts,\n  blocking false\n);\n\nSELECT * FROM @this_model WHERE amount < 0\n",
    )
    .unwrap();
}

/// `sqlmesh ARGS…` in `project` reporting to `url` with `token`; fails the test unless it
/// exits 0.
fn sqlmesh(project: &Path, url: &str, token: &str, args: &[&str]) -> Output {
    let mut command = Command::new(sqlmesh_bin().join("sqlmesh"));
    command.current_dir(project).args(args).stdin(Stdio::null());
    for (key, _) in std::env::vars() {
        if key.starts_with("HERALD_") || key.starts_with("SQLMESH") {
            command.env_remove(key);
        }
    }
    let output = command
        .env("HERALD_URL", url)
        .env("HERALD_TOKEN", token)
        // SQLMesh's anonymous usage reports go to the internet; the test stays on loopback.
        .env("SQLMESH__DISABLE_ANONYMIZED_ANALYTICS", "1")
        .env("NO_COLOR", "1")
        .output()
        .expect("run sqlmesh");
    assert!(
        output.status.success(),
        "sqlmesh {args:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        stderr(&output)
    );
    output
}

/// What SQLMesh logged under `project/logs`.
fn sqlmesh_logs(project: &Path) -> String {
    let mut text = String::new();
    for entry in fs::read_dir(project.join("logs")).expect("SQLMesh's log directory") {
        text += &fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
    }
    text
}

/// Until the API accepts connections (it is bound before the replica starts).
fn wait_listening(addr: &str, serve: &Serve) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "herald never listened:\n{}",
            serve.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The one message of `event`, failing the test unless exactly one was queued.
fn only<'a>(messages: &'a [Value], event: &str) -> &'a Value {
    let found: Vec<&Value> = messages.iter().filter(|m| m["event"] == event).collect();
    assert_eq!(
        found.len(),
        1,
        "one {event} message expected: {messages:#?}"
    );
    found[0]
}

fn labels(message: &Value) -> &serde_json::Map<String, Value> {
    message["payload"]["labels"].as_object().expect("labels")
}

async fn sqlmesh_target_reports_plan_run_and_audit_events_to_herald(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let db_url = db.url.clone();
    tokio::task::spawn_blocking(move || run_the_project(&root, &db_url))
        .await
        .expect("the SQLMesh run's thread");
    drop(db);
}

fn run_the_project(root: &Path, db_url: &str) {
    sqlmesh_bin();
    let started = Instant::now();
    let targets = EVENTS.map(|e| format!("\"{e}\"")).join(", ");
    // A global target for every SQLMesh event; paused, so the messages wait in the queue.
    fs::write(
        root.join("herald.toml"),
        format!(
            "database_url = \"{db_url}\"\n\n[[targets]]\ntype = \"webhook\"\nname = \"data-alerts\"\nnotify_on = [{targets}]\nurl = \"http://127.0.0.1:9/hook\"\n"
        ),
    )
    .unwrap();
    let cli = |args: &[&str]| {
        let mut all = vec!["--config", "herald.toml"];
        all.extend_from_slice(args);
        Run::of(&mut herald(root, &all)).ok()
    };
    cli(&["migrate"]);
    cli(&ADD_ALICE_AS_OWNER);
    cli(&["--as", "alice", "notifications", "pause"]);
    let created = cli(&["--as", "alice", "tokens", "create", "sqlmesh"]);
    let token = created
        .stdout
        .split_whitespace()
        .find(|word| word.starts_with("herald_"))
        .unwrap_or_else(|| panic!("no token in:\n{}", created.stdout))
        .to_string();

    let addr = free_loopback_addr();
    let url = format!("http://{addr}");
    let serve = Serve::start(root, "herald.toml", "serve", &["--http", &addr]);
    wait_listening(&addr, &serve);

    let project = root.join("project");
    write_project(&project);
    // Applied as of yesterday, so today's `run` has an interval to fill (and ends with
    // run_end, which a run with nothing to do never sends).
    sqlmesh(
        &project,
        &url,
        &token,
        &[
            "plan",
            "--auto-apply",
            "--no-prompts",
            "--execution-time",
            "1 day ago",
        ],
    );
    sqlmesh(&project, &url, &token, &["run"]);

    let listed = cli(&["--as", "alice", "messages", "list", "--json"]).json();
    let messages = listed.as_array().expect("a JSON list of messages").clone();
    for message in &messages {
        assert_eq!(message["target"], "data-alerts", "{message:#}");
        assert_eq!(message["created_by"], "alice", "{message:#}");
    }
    let apply_start = labels(only(&messages, "apply_start"));
    let apply_end = labels(only(&messages, "apply_end"));
    assert_eq!(apply_start["environment"], "prod", "{apply_start:?}");
    let plan_id = apply_start["plan_id"].as_str().expect("a plan id");
    assert!(plan_id.len() >= 8, "{plan_id}");
    assert_eq!(apply_end["environment"], "prod");
    assert_eq!(apply_end["plan_id"], plan_id, "the same plan");
    assert_eq!(labels(only(&messages, "run_start"))["environment"], "prod");
    assert_eq!(labels(only(&messages, "run_end"))["environment"], "prod");
    // The audit failed in the plan's backfill and again in the run (Herald's dedupe may keep
    // the second, identical one out).
    let audits: Vec<&Value> = messages
        .iter()
        .filter(|m| m["event"] == "audit_failure")
        .collect();
    assert!(!audits.is_empty(), "no audit_failure: {messages:#?}");
    for audit in audits {
        let audit_labels = labels(audit);
        assert_eq!(audit_labels["audit"], "no_negative_amounts", "{audit:#}");
        assert_eq!(audit_labels["model"], "shop.orders", "{audit:#}");
        assert_eq!(audit_labels["owner"], "alice", "{audit:#}");
        assert_eq!(audit_labels["environment"], "prod", "{audit:#}");
        let data = &audit["payload"]["data"];
        assert_eq!(data["count"], 1, "{audit:#}");
        let sql = data["sql"].as_str().unwrap_or_default();
        assert!(sql.contains("amount"), "{audit:#}");
    }
    for event in ["apply_failure", "run_failure", "migration_failure"] {
        assert!(
            messages.iter().all(|m| m["event"] != event),
            "{messages:#?}"
        );
    }

    // Herald gone: SQLMesh's run still succeeds, and says in its log why nothing was reported.
    assert_eq!(serve.terminate(), 0);
    sqlmesh(&project, &url, &token, &["run"]);
    let logs = sqlmesh_logs(&project);
    assert!(
        logs.contains(&format!(
            "Herald: could not report run_start: {url} is unreachable"
        )),
        "{logs}"
    );
    assert!(!logs.contains(&token), "the token was logged");
    eprintln!("sqlmesh_target: the project ran in {:?}", started.elapsed());
}

for_both_backends!(sqlmesh_target_reports_plan_run_and_audit_events_to_herald);
