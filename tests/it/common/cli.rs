//! The built `herald` binary run as a person runs it: a command in a scratch directory with no
//! `HERALD_*` from the test's environment, and what it did (exit code, stdout, stderr) with the
//! checks command-line tests make on it.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// `users add alice --email alice@example.com --role owner`: the first owner, which needs no
/// caller (the store has no owner yet).
pub const ADD_ALICE_AS_OWNER: [&str; 7] = [
    "users",
    "add",
    "alice",
    "--email",
    "alice@example.com",
    "--role",
    "owner",
];

/// The herald binary with `args`, in `dir`, with no `HERALD_*` from the test's environment.
pub fn herald(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
    cmd.current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("HERALD_") {
            cmd.env_remove(key);
        }
    }
    cmd.args(args).env("NO_COLOR", "1").stdin(Stdio::null());
    cmd
}

/// What one run of the binary did.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Runs `cmd` to the end.
    pub fn of(cmd: &mut Command) -> Run {
        Run::from(cmd.output().expect("run herald"))
    }

    /// Stdout as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    /// Exit 0, or the test fails showing stderr.
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "expected success; stderr:\n{}", self.stderr);
        self
    }

    /// Exit 1 with one error line on stderr containing `needle`.
    #[track_caller]
    pub fn fails_with(self, needle: &str) -> Run {
        assert_eq!(
            self.code, 1,
            "expected exit 1; stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        let errors: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .collect();
        assert_eq!(errors.len(), 1, "expected one error line:\n{}", self.stderr);
        assert!(
            errors[0].contains(needle),
            "expected `{needle}` in:\n{}",
            self.stderr
        );
        self
    }
}

impl From<Output> for Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}
