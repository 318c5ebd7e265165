//! A small deployment the operators' tools are tried on: webhook as the default method and a
//! global Slack target `team-slack` for `workspace_deleted`, as a config file the built binary
//! reads (`herald --config FILE --as alice …`) and as the loaded [`Config`] in-process replicas
//! run with; owner alice exists.

use super::TestDb;
use super::cli::{ADD_ALICE_AS_OWNER, Run, herald};
use herald::config::{Config, ConfigSources};

/// The deployment: its scratch directory, its config file, and the config loaded.
pub struct Deployment {
    pub dir: tempfile::TempDir,
    pub config_path: String,
    pub config: Config,
}

impl Deployment {
    /// The deployment on `db`, delivering to `webhook` and the Slack target at `slack`;
    /// failed attempts are retried after `retry_interval` (`300ms`, `1h`).
    pub fn new(db: &TestDb, webhook: &str, slack: &str, retry_interval: &str) -> Deployment {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("herald.toml");
        std::fs::write(
            &path,
            format!(
                r#"database_url = "{url}"
[notifications]
method = "webhook"
inbox_enabled = false
fetch_interval = "15s"
retry_interval = "{retry_interval}"
store_sync_interval = "50ms"
[notifications.webhook]
endpoint = "{webhook}"
[[targets]]
type = "slack_webhook"
name = "team-slack"
notify_on = ["workspace_deleted"]
url = "{slack}"
"#,
                url = db.url,
            ),
        )
        .expect("write config");
        let config_path = path.display().to_string();
        let sources = ConfigSources {
            file: Some(path),
            database_url: None,
        };
        let config = Config::load(&sources, &|_| None).expect("load config");
        let d = Deployment {
            dir,
            config_path,
            config,
        };
        d.run_as(None, &["migrate"]).ok();
        d.run_as(None, &ADD_ALICE_AS_OWNER).ok();
        d
    }

    /// `herald --config FILE --as alice ARGS…`
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_as(Some("alice"), args)
    }

    /// `herald --config FILE [--as USER] ARGS…`
    pub fn run_as(&self, user: Option<&str>, args: &[&str]) -> Run {
        let mut cmd = herald(self.dir.path(), &["--config", &self.config_path]);
        if let Some(user) = user {
            cmd.args(["--as", user]);
        }
        cmd.args(args);
        Run::of(&mut cmd)
    }

    /// `workspace_deleted` for alice, labelled `name=ws-N`: one webhook and one Slack message.
    pub fn enqueue(&self, n: usize) {
        let label = format!("name=ws-{n}");
        let args = [
            "enqueue",
            "workspace_deleted",
            "--user",
            "alice",
            "--label",
            &label,
        ];
        self.run(&args).ok();
    }
}
