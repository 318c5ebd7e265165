//! The console over SSH with the real OpenSSH client: `herald serve --ssh ADDR` on a seeded
//! SQLite store, `ssh` in a pseudo-terminal with a key from `ssh-keygen` that
//! `herald users keys add` gave a user. The console opens as that user; a member's opt-out
//! toggle is what `herald optout list` sees, and a member has no pause; on-call pauses after
//! the confirmation; a resize re-lays the screen; two sessions do not disturb each other; `q`
//! and a killed client both end their session while the server goes on. Unknown keys,
//! suspended users, password logins, commands and sessions without a terminal are refused; the
//! limits (consoles at once, idle time, refused logins per address) hold.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::cli::{ADD_ALICE_AS_OWNER, Run, herald};
use common::pty::{Console, wait_until};
use common::serve::Serve;
use common::ssh::{KeyPair, keygen};
use serde_json::Value;

/// A store with owner alice, member bob and on-call carol, each with a key, and
/// `herald serve --ssh` on it.
struct Deployment {
    _db: common::TestDb,
    url: String,
    dir: tempfile::TempDir,
    port: u16,
    alice: KeyPair,
    bob: KeyPair,
    carol: KeyPair,
    serve: Serve,
}

impl Deployment {
    fn start() -> Deployment {
        Deployment::start_with("")
    }

    /// As [`Deployment::start`], with `ssh` added to the config's `[ssh]` table.
    fn start_with(ssh: &str) -> Deployment {
        let db = common::sqlite_db();
        let url = db.url.clone();
        let dir = tempfile::tempdir().expect("a scratch dir");
        let cli = |user: Option<&str>, args: &[&str]| {
            let mut cmd = herald(dir.path(), &["--database-url", &url]);
            if let Some(user) = user {
                cmd.args(["--as", user]);
            }
            Run::of(cmd.args(args)).ok()
        };
        cli(None, &["migrate"]);
        cli(None, &ADD_ALICE_AS_OWNER);
        cli(
            Some("alice"),
            &["users", "add", "bob", "--email", "bob@example.com"],
        );
        cli(
            Some("alice"),
            &[
                "users",
                "add",
                "carol",
                "--email",
                "carol@example.com",
                "--role",
                "oncall",
            ],
        );
        let carol = keygen(dir.path(), "carol_key", "ecdsa", "carol@phone");
        cli(
            Some("alice"),
            &["users", "keys", "add", "carol", "--key", &carol.public_line],
        );
        let alice = keygen(dir.path(), "alice_key", "ed25519", "alice@desk");
        let bob = keygen(dir.path(), "bob_key", "ed25519", "bob@laptop");
        cli(
            Some("alice"),
            &["users", "keys", "add", "alice", "--key", &alice.public_line],
        );
        cli(
            Some("bob"),
            &["users", "keys", "add", "bob", "--key", &bob.public_line],
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let host_key = dir.path().join("host_key");
        let config = dir.path().join("herald.toml");
        std::fs::write(
            &config,
            format!(
                "database_url = {url:?}\n[ssh]\nhost_key_file = {:?}\n{ssh}\n",
                host_key.display().to_string()
            ),
        )
        .expect("the config");
        let addr = format!("127.0.0.1:{port}");
        let serve = Serve::start(
            dir.path(),
            &config.display().to_string(),
            "serve",
            &["--ssh", &addr],
        );
        wait_until("the SSH server to listen", || {
            serve.log().contains("serving the console over SSH")
        });
        Deployment {
            _db: db,
            url,
            dir,
            port,
            alice,
            bob,
            carol,
            serve,
        }
    }

    /// `herald --as USER ARGS…` on the store; stdout as JSON.
    fn json(&self, user: &str, args: &[&str]) -> Value {
        let mut cmd = herald(
            self.dir.path(),
            &["--database-url", &self.url, "--as", user],
        );
        Run::of(cmd.args(args)).ok().json()
    }

    /// The `ssh` arguments to reach the server with `key` (no agent, no config, no
    /// known_hosts), then `extra`.
    fn ssh_args(&self, key: &Path, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "-F",
            "/dev/null",
            "-p",
            &self.port.to_string(),
            "-i",
            &key.display().to_string(),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "IdentityAgent=none",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=30",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    /// `ssh` with `key` in an 80×24 pseudo-terminal.
    fn console(&self, key: &Path) -> Console {
        let args = self.ssh_args(key, &["-t", "127.0.0.1"]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env = [("HOME".to_string(), self.dir.path().display().to_string())];
        Console::spawn_program(&ssh_bin(), self.dir.path(), &env, &args)
    }

    /// `ssh` with `key` and `extra`, no terminal, to the end.
    fn run_ssh(&self, key: &Path, extra: &[&str]) -> Run {
        let mut cmd = Command::new(ssh_bin());
        cmd.args(self.ssh_args(key, extra))
            .env("HOME", self.dir.path())
            .stdin(std::process::Stdio::null());
        Run::of(&mut cmd)
    }
}

fn ssh_bin() -> PathBuf {
    PathBuf::from("ssh")
}

/// Whether `user` receives `custom_notification`, by `herald optout list --user USER`.
fn receives_custom(d: &Deployment, user: &str) -> Option<Value> {
    let list = d.json("alice", &["optout", "list", "--user", user, "--json"]);
    list.as_array()
        .and_then(|rows| rows.iter().find(|r| r["event"] == "custom_notification"))
        .map(|r| r["enabled"].clone())
}

/// The screen's row `row`, as text.
fn row(console: &Console, row: usize) -> String {
    console
        .screen()
        .lines()
        .nth(row)
        .unwrap_or_default()
        .to_string()
}

#[test]
fn bob_opts_out_over_ssh_and_q_ends_only_his_session() {
    let d = Deployment::start();
    let host_key = d.dir.path().join("host_key");
    let mode = std::fs::metadata(&host_key)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
        .expect("the host key was made");
    assert_eq!(mode, 0o600);
    assert!(
        d.serve.log().contains("made the SSH host key") && d.serve.log().contains("SHA256:"),
        "the host key's fingerprint is logged:\n{}",
        d.serve.log()
    );
    assert_eq!(receives_custom(&d, "bob"), Some(Value::Bool(true)));

    let mut bob = d.console(&d.bob.private_key);
    bob.wait_for("bob (member)");
    bob.press("3");
    bob.wait_for("Opt-outs of bob");
    bob.wait_for("custom_notification");
    bob.press(" ");
    bob.wait_for("bob opted out of custom_notification");
    bob.press("P");
    assert!(
        !bob.screen().contains("Pause delivery"),
        "members cannot pause"
    );

    // A bigger window: the console re-lays itself to fill it (the footer on the last row).
    let last_before = row(&bob, 23);
    assert!(!last_before.trim().is_empty(), "{}", bob.screen());
    bob.resize(100, 30);
    wait_until("the console to fill the resized window", || {
        !row(&bob, 29).trim().is_empty() && row(&bob, 23).trim() != last_before.trim()
    });

    assert_eq!(bob.quit(), 0, "q ends the session: ssh exits 0");
    bob.assert_terminal_restored();
    assert_eq!(receives_custom(&d, "bob"), Some(Value::Bool(false)));
    wait_until("the server to log the closed session", || {
        d.serve.log().contains("SSH console closed")
    });

    // The server goes on: the next session opens.
    let mut again = d.console(&d.bob.private_key);
    again.wait_for("bob (member)");
    assert_eq!(again.quit(), 0);
    let listed = d.json("bob", &["users", "keys", "list", "--json"]);
    assert!(
        listed[0]["last_used_at"].is_string(),
        "the login is recorded: {listed}"
    );
}

#[test]
fn two_sessions_at_once_and_on_call_pauses_after_confirming() {
    let d = Deployment::start();
    let mut carol = d.console(&d.carol.private_key);
    let mut bob = d.console(&d.bob.private_key);
    carol.wait_for("carol (oncall)");
    bob.wait_for("bob (member)");
    bob.press("3");
    bob.wait_for("Opt-outs of bob");
    assert!(
        !carol.screen().contains("Opt-outs of"),
        "bob's keys do not reach carol's console:\n{}",
        carol.screen()
    );

    carol.press("P");
    carol.wait_for("Pause delivery");
    carol.press("y");
    carol.wait_for("PAUSED");
    let status = {
        let mut cmd = herald(d.dir.path(), &["--database-url", &d.url, "--as", "alice"]);
        Run::of(cmd.args(["notifications", "status"])).ok().stdout
    };
    assert!(status.contains("paused"), "{status}");
    bob.wait_for("PAUSED");

    // Bob's client goes away without a word: his session ends on the server, carol's goes on.
    drop(bob);
    wait_until("the server to end bob's session", || {
        d.serve
            .log()
            .lines()
            .any(|l| l.contains("SSH console closed") && l.contains("bob"))
    });
    carol.press("1");
    carol.wait_for("carol (oncall)");
    assert_eq!(carol.quit(), 0);
    carol.assert_terminal_restored();
}

#[test]
fn unknown_keys_passwords_commands_and_no_terminal_are_refused() {
    let d = Deployment::start();
    let stranger = keygen(d.dir.path(), "stranger_key", "ed25519", "who@where");

    let refused = d.run_ssh(&stranger.private_key, &["-o", "BatchMode=yes", "127.0.0.1"]);
    assert_eq!(refused.code, 255, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("Permission denied (publickey)"),
        "{}",
        refused.stderr
    );
    wait_until(
        "the refusal to be logged with the key's fingerprint",
        || {
            d.serve
                .log()
                .lines()
                .any(|l| l.contains("SSH login refused") && l.contains(&stranger.fingerprint))
        },
    );

    let password = d.run_ssh(
        &stranger.private_key,
        &[
            "-o",
            "BatchMode=yes",
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "PreferredAuthentications=password,keyboard-interactive",
            "127.0.0.1",
        ],
    );
    assert_eq!(password.code, 255, "{}", password.stderr);
    assert!(
        password.stderr.contains("Permission denied (publickey)"),
        "only public keys are offered: {}",
        password.stderr
    );

    let command = d.run_ssh(
        &d.bob.private_key,
        &["127.0.0.1", "herald", "users", "list"],
    );
    assert_eq!(command.code, 1, "{}", command.stderr);
    let lines: Vec<&str> = command.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {}", command.stderr);
    assert!(
        lines[0].contains("opens the console only"),
        "{}",
        command.stderr
    );

    let no_tty = d.run_ssh(&d.bob.private_key, &["-T", "127.0.0.1"]);
    assert_eq!(no_tty.code, 1, "{}", no_tty.stderr);
    assert!(
        no_tty.stderr.contains("needs a terminal"),
        "{}",
        no_tty.stderr
    );

    // A suspended user's key is refused from the next login on.
    let mut cmd = herald(d.dir.path(), &["--database-url", &d.url, "--as", "alice"]);
    Run::of(cmd.args(["users", "suspend", "bob"])).ok();
    let suspended = d.run_ssh(&d.bob.private_key, &["-o", "BatchMode=yes", "127.0.0.1"]);
    assert_eq!(suspended.code, 255, "{}", suspended.stderr);
    assert!(
        suspended.stderr.contains("Permission denied (publickey)"),
        "{}",
        suspended.stderr
    );
    wait_until("the suspended user's refusal to be logged", || {
        d.serve.log().lines().any(|l| {
            l.contains("SSH login refused")
                && l.contains("suspended")
                && l.contains(&d.bob.fingerprint)
        })
    });
    assert_eq!(d.serve.terminate(), 0, "the server stops cleanly");
}

#[test]
fn the_limits_hold_sessions_idle_time_and_refused_logins() {
    let d = Deployment::start_with(
        "max_sessions = 1\nidle_timeout = \"8s\"\nauth_attempts_per_minute = 2",
    );
    let mut bob = d.console(&d.bob.private_key);
    bob.wait_for("bob (member)");
    let mut alice = d.console(&d.alice.private_key);
    alice.wait_for("maximum of 1 consoles open");
    assert_eq!(alice.wait_exit(), 1);

    // Bob types nothing more: after 8 s (long enough for alice to be refused on a busy
    // machine) his console closes, saying why.
    bob.wait_for("without a keystroke (ssh.idle_timeout)");
    assert_eq!(bob.wait_exit(), 0);
    bob.assert_terminal_restored();

    // His console's place is free again.
    let mut alice = d.console(&d.alice.private_key);
    alice.wait_for("alice (owner)");
    assert_eq!(alice.quit(), 0);

    // Two refused logins from this address in a minute: then even a good key is refused.
    let stranger = keygen(d.dir.path(), "stranger_key", "ed25519", "who@where");
    for _ in 0..2 {
        let refused = d.run_ssh(&stranger.private_key, &["-o", "BatchMode=yes", "127.0.0.1"]);
        assert_eq!(refused.code, 255, "{}", refused.stderr);
    }
    let blocked = d.run_ssh(&d.bob.private_key, &["-o", "BatchMode=yes", "127.0.0.1"]);
    assert_eq!(blocked.code, 255, "{}", blocked.stderr);
    assert!(
        blocked.stderr.contains("Permission denied (publickey)"),
        "{}",
        blocked.stderr
    );
    assert!(
        d.serve
            .log()
            .contains("too many refused SSH logins from this address"),
        "{}",
        d.serve.log()
    );
}
