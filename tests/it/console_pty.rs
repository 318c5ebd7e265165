//! The real binary's console in a pseudo-terminal (portable-pty, screen read with vt100), on a
//! seeded SQLite store whose webhook endpoint refuses connections, so the embedded dispatcher
//! turns every webhook message into a permanent failure.
//!
//! As the owner: switch tabs, pause with `P` + `y` (banner and `notifications status` agree),
//! filter the queue to `permanent_failure`, retry one after confirming and see the counts
//! change, quit with `q` (exit 0, alternate screen left, cursor shown). As a member, with plain
//! `herald` (no subcommand): toggle an opt-out and see `herald optout list` agree. With
//! `--read-only`, no dispatcher runs: nothing is delivered and no replica row appears. Quitting
//! waits for the deliveries in flight (up to `dispatch_timeout`) instead of abandoning them.

use crate::common;

use common::cli::{ADD_ALICE_AS_OWNER, Run, herald};
use common::pty::{Console, wait_until};
use serde_json::Value;

/// A seeded store and the environment every `herald` run here gets.
struct Deployment {
    _db: common::TestDb,
    url: String,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Deployment {
    fn seeded() -> Deployment {
        let db = common::sqlite_db();
        let url = db.url.clone();
        let dir = tempfile::tempdir().expect("a scratch dir");
        // A port nothing listens on: every webhook delivery is refused at once.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let env = vec![
            ("NO_COLOR".into(), "1".into()),
            ("HERALD_NOTIFICATIONS_METHOD".into(), "webhook".into()),
            (
                "HERALD_NOTIFICATIONS_WEBHOOK_ENDPOINT".into(),
                format!("http://127.0.0.1:{closed}/hook"),
            ),
            ("HERALD_NOTIFICATIONS_MAX_SEND_ATTEMPTS".into(), "1".into()),
            ("HERALD_NOTIFICATIONS_FETCH_INTERVAL".into(), "1s".into()),
        ];
        let d = Deployment {
            _db: db,
            url,
            dir,
            env,
        };
        d.cli(None, &["migrate"]);
        d.cli(None, &ADD_ALICE_AS_OWNER);
        d.cli(
            Some("alice"),
            &["users", "add", "bob", "--email", "bob@example.com"],
        );
        for name in ["ws1", "ws2", "ws3"] {
            d.run_failure_for_bob(name);
        }
        d
    }

    /// Runs `herald` as `user`; panics unless it succeeds; returns stdout.
    fn cli(&self, user: Option<&str>, args: &[&str]) -> String {
        let mut cmd = herald(self.dir.path(), &["--database-url", &self.url]);
        if let Some(user) = user {
            cmd.arg("--as").arg(user);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v))).args(args);
        Run::of(&mut cmd).ok().stdout
    }

    /// Alice enqueues `run_failure` for bob, labelled `name=NAME`.
    fn run_failure_for_bob(&self, name: &str) {
        let label = format!("name={name}");
        let args = ["enqueue", "run_failure", "--user", "bob", "--label", &label];
        self.cli(Some("alice"), &args);
    }

    fn json(&self, user: &str, args: &[&str]) -> Value {
        let out = self.cli(Some(user), args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
    }

    fn count(&self, status: &str) -> usize {
        let list = self.json("alice", &["messages", "list", "--status", status, "--json"]);
        list.as_array().map_or(0, Vec::len)
    }

    /// Starts `herald [args]` as `user` in an 80×24 pseudo-terminal.
    fn console(&self, user: &str, args: &[&str]) -> Console {
        let mut all = vec!["--database-url", &self.url, "--as", user];
        all.extend_from_slice(args);
        Console::spawn(self.dir.path(), &self.env, &all)
    }
}

#[test]
fn an_owner_pauses_filters_and_retries_and_a_member_opts_out() {
    let d = Deployment::seeded();

    // ---- the owner --------------------------------------------------------------------
    let mut c = d.console("alice", &["console"]);
    c.wait_for("alice (owner)");
    c.wait_for("1 Events");
    // The embedded dispatcher delivers: inbox copies are sent, webhooks refused for good.
    wait_until("3 permanent failures", || d.count("permanent_failure") == 3);

    c.press("2");
    c.wait_for("Delivery methods");
    c.press("3");
    c.wait_for("Opt-outs of alice");
    c.press("4");
    c.wait_for("perm fail 3");

    c.press("P");
    c.wait_for("Pause delivery on every replica?");
    c.press("y");
    c.wait_for("■ PAUSED ■");
    let status = d.cli(Some("alice"), &["notifications", "status"]);
    assert!(status.contains("paused"), "{status}");

    c.press("/");
    c.wait_for("filter:");
    c.type_text("status=permanent_failure");
    c.press("\r");
    c.wait_for("filter: status=permanent_failure");
    c.wait_for("Messages (3)");

    c.press("r");
    c.wait_for("Retry 1 message (run_failure to bob by webhook");
    c.press("y");
    c.wait_for("retried 1");
    // Paused, so the retried message waits in pending: the screen and the store agree.
    c.wait_for("Messages (2)");
    c.wait_for("pending 1");
    c.wait_for("perm fail 2");
    assert_eq!(d.count("pending"), 1);
    assert_eq!(d.count("permanent_failure"), 2);

    c.press(":");
    c.type_text("logs");
    c.press("\r");
    c.wait_for("Top failure reasons");

    assert_eq!(c.quit(), 0, "q exits 0");
    c.assert_terminal_restored();
    d.cli(Some("alice"), &["notifications", "resume"]);

    // ---- a member, with plain `herald` ---------------------------------------------------
    let before = d.json("bob", &["optout", "list", "--json"]);
    let first = |list: &Value| {
        list.as_array()
            .and_then(|rows| rows.iter().find(|r| r["event"] == "custom_notification"))
            .map(|r| r["enabled"].clone())
    };
    assert_eq!(first(&before), Some(Value::Bool(true)));
    let mut m = d.console("bob", &[]);
    m.wait_for("bob (member)");
    m.press("3");
    m.wait_for("Opt-outs of bob");
    m.wait_for("custom_notification");
    m.press(" ");
    m.wait_for("bob opted out of custom_notification");
    m.press("P");
    assert!(
        !m.screen().contains("Pause delivery"),
        "members cannot pause"
    );
    assert_eq!(m.quit(), 0);
    m.assert_terminal_restored();
    let after = d.json("bob", &["optout", "list", "--json"]);
    assert_eq!(first(&after), Some(Value::Bool(false)));
}

/// The replicas registered in the store (`notification_replicas`).
fn replicas(url: &str) -> usize {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let store = herald::store::open(url, herald::store::OpenMode::Existing)
            .await
            .expect("the store opens");
        store.list_replicas().await.expect("replicas").len()
    })
}

#[test]
fn a_read_only_console_runs_no_dispatcher() {
    let d = Deployment::seeded();
    let pending = d.count("pending");
    assert!(pending > 0, "the seed queued messages");
    let mut c = d.console("alice", &["console", "--read-only"]);
    c.wait_for("read-only");
    // A dispatcher registers at once and delivers within a fetch interval (1s here).
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(replicas(&d.url), 0, "a replica row appeared");
    assert_eq!(d.count("pending"), pending, "messages were delivered");
    c.wait_for("no dispatcher here");
    assert_eq!(c.quit(), 0);
    c.assert_terminal_restored();
}

/// Longer than the fixed 30 s the console used to wait for its dispatcher on quit.
const SLOW_ANSWER: std::time::Duration = std::time::Duration::from_secs(35);

#[test]
fn quitting_waits_for_deliveries_in_flight_up_to_the_dispatch_timeout() {
    let mut d = Deployment::seeded();
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let sink = runtime.block_on(common::http_sink::HttpSink::start(|_, _| {
        common::http_sink::Response::ok().with_delay(SLOW_ANSWER)
    }));
    for (key, value) in &mut d.env {
        if key == "HERALD_NOTIFICATIONS_WEBHOOK_ENDPOINT" {
            *value = format!("{}/hook", sink.url);
        }
    }
    d.env
        .push(("HERALD_NOTIFICATIONS_DISPATCH_TIMEOUT".into(), "50s".into()));
    let webhooks = |status: &str| {
        let list = d.json(
            "alice",
            &[
                "messages", "list", "--method", "webhook", "--status", status, "--json",
            ],
        );
        list.as_array().map_or(0, Vec::len)
    };
    let queued = webhooks("pending");
    assert_eq!(queued, 3, "the seed queued three webhooks");

    let mut c = d.console("alice", &["console"]);
    c.wait_for("alice (owner)");
    wait_until("every webhook in flight", || sink.count() == 3);
    let quitting = std::time::Instant::now();
    assert_eq!(c.quit(), 0);
    assert!(
        quitting.elapsed() >= SLOW_ANSWER - std::time::Duration::from_secs(3),
        "the console exited after {:?}, before the deliveries finished",
        quitting.elapsed()
    );
    c.assert_terminal_restored();
    assert!(
        c.output()
            .contains("waiting up to 1m 5s for the dispatcher to finish the deliveries in flight"),
        "the wait is explained:\n{}",
        c.output()
    );
    assert_eq!(
        webhooks("sent"),
        3,
        "every delivery in flight was finished and recorded"
    );
    assert_eq!(webhooks("leased"), 0);
    assert_eq!(
        replicas(&d.url),
        0,
        "the replica row is removed on a clean stop"
    );
}

/// An SMTP server on loopback whose EHLO reply has a line of only whitespace, which lettre
/// 0.11 panics on. Returns its `host:port`; it lives as long as the test process.
fn hostile_smtp_server() -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let address = listener.local_addr().expect("its address").to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || -> std::io::Result<()> {
                stream.write_all(b"220 hostile ESMTP\r\n")?;
                let mut reader = BufReader::new(stream.try_clone()?);
                let mut line = String::new();
                while reader.read_line(&mut line)? > 0 {
                    if line.to_ascii_uppercase().starts_with("EHLO") {
                        stream.write_all(b"250-hostile.example\r\n250- \r\n250 8BITMIME\r\n")?;
                    } else {
                        stream.write_all(b"502 5.5.1 not here\r\n")?;
                    }
                    line.clear();
                }
                Ok(())
            });
        }
    });
    address
}

#[test]
fn a_hostile_smtp_server_fails_its_message_and_the_console_keeps_running() {
    let mut d = Deployment::seeded();
    d.env.extend([
        ("HERALD_NOTIFICATIONS_METHOD".into(), "smtp".into()),
        ("HERALD_EMAIL_SMARTHOST".into(), hostile_smtp_server()),
        ("HERALD_EMAIL_FROM".into(), "herald@example.com".into()),
    ]);
    d.run_failure_for_bob("ws9");
    let smtp = |d: &Deployment| {
        d.json("alice", &["messages", "list", "--method", "smtp", "--json"])
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(smtp(&d).len(), 1, "one email queued");

    let mut c = d.console("alice", &["console"]);
    c.wait_for("alice (owner)");
    wait_until("the email to fail", || {
        smtp(&d)[0]["status"] == "permanent_failure"
    });
    let reason = smtp(&d)[0]["status_reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        reason.contains("sent a greeting or EHLO reply the SMTP client cannot read"),
        "{reason}"
    );
    // Still drawing: the caught panic did not take the terminal back.
    c.press("4");
    c.wait_for("perm fail");
    assert!(c.screen().contains("dispatcher running"), "{}", c.screen());
    assert_eq!(c.quit(), 0);
    c.assert_terminal_restored();
}

#[test]
fn an_owner_pauses_one_channel_from_the_health_panel_and_resumes_it() {
    let d = Deployment::seeded();
    let mut c = d.console("alice", &["console", "--no-dispatcher"]);
    c.wait_for("alice (owner)");
    c.press("5");
    c.wait_for("Channels (attempts in the last 15 min");
    // The webhook method's user messages are the first row; the seed queued three for bob.
    c.wait_for("webhook");
    c.press("p");
    c.wait_for("Pause method webhook");
    c.press("y");
    c.wait_for("■ PAUSED ■  method webhook");
    let status = d.cli(Some("alice"), &["notifications", "status"]);
    assert!(
        status.contains("method webhook paused by alice"),
        "{status}"
    );
    assert!(
        status.contains("notifications running"),
        "only one channel: {status}"
    );

    c.press("p");
    c.wait_for("Resume method webhook");
    c.press("y");
    c.wait_for("method webhook resumed");
    let status = d.cli(Some("alice"), &["notifications", "status"]);
    assert!(!status.contains("paused by"), "{status}");
    assert_eq!(c.quit(), 0);
    c.assert_terminal_restored();
}
