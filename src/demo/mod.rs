//! `herald demo`: a demo store with users of every role, local sinks (some failing on
//! purpose), a steady trickle of events, and the console on top as the demo owner.
//!
//! A front end like the CLI: every change goes through the service, and the console is the
//! one `herald console` runs.

mod sinks;
mod traffic;

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use tokio::sync::watch;

use crate::config::Config;
use crate::console::ConsoleOptions;
use crate::model::{Method, User, UserStatus};
use crate::service::Service;
use crate::store::{self, OpenMode};
use crate::telemetry::LogHandle;

use sinks::Sinks;
use traffic::Dice;

/// The demo's own store, in the working directory.
pub const DEMO_DATABASE_FILE: &str = "herald-demo.db";

/// The user the console opens as (an owner, who enqueues the traffic).
pub const DEMO_OWNER: &str = "demo-owner";

/// The demo configuration, with `{placeholders}` for the sinks' addresses.
const DEMO_CONFIG: &str = include_str!("demo.toml");

/// Events enqueued up front when the store has no messages yet (a few hundred messages).
const HISTORY_EVENTS: usize = 120;

/// `herald demo` flags.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoOptions {
    /// Delete `./herald-demo.db` first.
    pub reset: bool,
    /// Events enqueued per second while the console is open; `0` sends none.
    pub rate: f64,
    /// `--database-url`, when given explicitly: used instead of `./herald-demo.db`.
    pub database_url: Option<String>,
}

/// Builds (or reuses) the demo store, starts the sinks and the trickle, and runs the console as
/// [`DEMO_OWNER`] until it quits; then stops the trickle and the sinks and says how to return.
pub async fn run(options: &DemoOptions, logs: Option<LogHandle>) -> Result<()> {
    crate::console::ensure_terminal()?;
    let url = match &options.database_url {
        Some(_) if options.reset => bail!(
            "--reset only recreates ./{DEMO_DATABASE_FILE}; with --database-url, empty that store yourself"
        ),
        Some(url) => url.clone(),
        None => {
            if options.reset {
                remove_demo_store(Path::new(DEMO_DATABASE_FILE))?;
            }
            format!("sqlite://{DEMO_DATABASE_FILE}")
        }
    };
    let dice = Arc::new(Dice::seeded());
    let sinks = Sinks::start(dice.clone())
        .await
        .context("cannot start the demo's local HTTP sinks on 127.0.0.1")?;
    let outcome = run_with_sinks(options, &url, &sinks, dice, logs).await;
    sinks.stop().await;
    let store = outcome?;
    if options.database_url.is_some() {
        println!("demo data is in {store}; `herald --database-url URL demo` reopens it");
    } else {
        println!(
            "the demo store is ./{DEMO_DATABASE_FILE}: `herald demo` reopens it, `herald demo --reset` starts afresh"
        );
    }
    Ok(())
}

/// Everything between starting and stopping the sinks; returns the store's display URL.
async fn run_with_sinks(
    options: &DemoOptions,
    url: &str,
    sinks: &Sinks,
    dice: Arc<Dice>,
    logs: Option<LogHandle>,
) -> Result<String> {
    let mut config = demo_config(&sinks.base_url())?;
    config.database_url = url.to_string();
    let store = store::open(url, OpenMode::Migrate).await?;
    let display_url = store.display_url().to_string();
    let strangers = foreign_users(&config, &store.list_users().await?);
    if !strangers.is_empty() {
        bail!(
            "the store at {display_url} holds users that are not the demo's ({}); herald demo sends \
             its traffic and failing sinks to every user of the store, so it only runs on its own \
             store: run `herald demo` without --database-url (./{DEMO_DATABASE_FILE}) or point it at \
             an empty store",
            strangers.join(", ")
        );
    }
    let service = Arc::new(Service::start(store, Arc::new(config)).await?);
    let owner = service.identify(DEMO_OWNER).await?;
    prepare(&service, &owner).await?;
    let queued: i64 = service
        .count_by_state(&owner)
        .await?
        .iter()
        .map(|(_, n)| n)
        .sum();
    if queued == 0 {
        traffic::seed_history(&service, &owner, &dice, HISTORY_EVENTS).await?;
    }
    let (stop, stopping) = watch::channel(false);
    let trickle = tokio::spawn(traffic::trickle(
        service.clone(),
        owner.clone(),
        options.rate,
        dice,
        stopping,
    ));
    let outcome = crate::console::run(service, owner, ConsoleOptions::default(), logs).await;
    let _ = stop.send(true);
    if let Err(e) = trickle.await {
        tracing::warn!("the demo traffic did not stop cleanly: {e}");
    }
    outcome.map(|()| display_url)
}

/// Usernames in the store that the demo configuration does not declare, sorted; at most a few
/// are named.
fn foreign_users(config: &Config, users: &[User]) -> Vec<String> {
    let mut strangers: Vec<String> = users
        .iter()
        .filter(|u| !config.users.iter().any(|d| d.username == u.username))
        .map(|u| u.username.clone())
        .collect();
    strangers.sort();
    if strangers.len() > 5 {
        let more = strangers.len() - 5;
        strangers.truncate(5);
        strangers.push(format!("and {more} more"));
    }
    strangers
}

/// Deletes the SQLite file and its WAL companions; missing files are fine.
fn remove_demo_store(path: &Path) -> Result<()> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        match std::fs::remove_file(&name) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot delete {} for --reset", Path::new(&name).display())
                });
            }
        }
    }
    Ok(())
}

/// The demo deployment: webhook by default (to the flaky sink) with inbox copies, quick
/// retries and a short dispatch timeout so things move, targets on every sink, and users of
/// every role (declared here, so the service creates them at start).
fn demo_config(base: &str) -> Result<Config> {
    use sinks::{FLAKY, GONE, HEALTHY, MISSING_CHANNEL, SLACK_API, SLOW};
    let text = [
        ("{base}", base),
        ("{HEALTHY}", HEALTHY),
        ("{FLAKY}", FLAKY),
        ("{GONE}", GONE),
        ("{SLOW}", SLOW),
        ("{SLACK_API}", SLACK_API),
        ("{MISSING_CHANNEL}", MISSING_CHANNEL),
        ("{DEMO_OWNER}", DEMO_OWNER),
    ]
    .iter()
    .fold(DEMO_CONFIG.to_string(), |text, (placeholder, value)| {
        text.replace(placeholder, value)
    });
    Config::from_toml_str(&text, "the demo configuration", &|_| None)
        .context("the demo configuration is invalid (a bug in herald demo)")
}

/// The parts of the demo that live in the store: a suspended user, a few opt-outs (and one
/// opt-in to an event that is off by default), and per-event method overrides. Idempotent.
async fn prepare(service: &Service, owner: &User) -> Result<()> {
    service
        .set_user_status(owner, "sam", UserStatus::Suspended)
        .await?;
    for (user, event, disabled) in [
        ("mia", "workspace_autoupdated", true),
        ("mia", "task_working", false),
        ("max", "task_idle", true),
        ("dana", "user_account_created", true),
    ] {
        service
            .set_opt_out(owner, event, Some(user), disabled)
            .await?;
    }
    for event in ["workspace_out_of_memory", "template_deprecated"] {
        service
            .set_event_method(owner, event, Some(Method::Webhook))
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_with_users_of_its_own_is_not_the_demos() {
        let config = demo_config("http://127.0.0.1:9").unwrap();
        let user = |name: &str| User {
            id: uuid::Uuid::now_v7(),
            username: name.to_string(),
            email: format!("{name}@example.com"),
            name: String::new(),
            roles: vec![],
            status: UserStatus::Active,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        };
        assert!(foreign_users(&config, &[user(DEMO_OWNER), user("mia")]).is_empty());
        assert_eq!(
            foreign_users(&config, &[user("mia"), user("zoe"), user("alice")]),
            ["alice", "zoe"]
        );
    }

    #[test]
    fn the_demo_configuration_is_valid_and_reaches_every_sink() {
        let config = demo_config("http://127.0.0.1:9").unwrap();
        assert_eq!(config.notifications.method, Method::Webhook);
        assert!(config.notifications.dispatch_timeout < config.notifications.lease_period);
        let targets = config.target_refs();
        assert_eq!(targets.len(), 6);
        let channels =
            crate::channels::Channels::from_settings(&config.channel_settings()).unwrap();
        assert_eq!(
            channels.methods(),
            vec![Method::Webhook, Method::SlackApi],
            "webhook and slack_api channels"
        );
        let roles: Vec<_> = config.users.iter().flat_map(|u| u.roles.clone()).collect();
        for role in crate::model::Role::ALL {
            assert!(roles.contains(role), "no demo user is {role:?}");
        }
    }

    #[test]
    fn reset_removes_the_store_and_its_companions_only() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join(DEMO_DATABASE_FILE);
        for name in ["herald-demo.db", "herald-demo.db-wal", "other.db"] {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        remove_demo_store(&db).unwrap();
        assert!(!db.exists());
        assert!(!dir.path().join("herald-demo.db-wal").exists());
        assert!(dir.path().join("other.db").exists());
        remove_demo_store(&db).unwrap();
    }
}
