//! Runs one CLI command through the service layer and prints the result.
//!
//! A front end: no SQL here, and no permission logic (the service checks roles).

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use chrono::Utc;
use serde_json::json;

use super::present::{Table, indented, print_json, short_time};
use crate::cli::{
    AuditCommand, Cli, Command, ConsoleArgs, EnqueueArgs, EventsCommand, InboxCommand, ListArgs,
    MessagesCommand, NotificationsCommand, OptoutCommand, PrefsCommand, RetryArgs, TokensCommand,
    UsersCommand,
};
use crate::config::{Config, ConfigSources};
use crate::model::{Message, Method, Role, User, UserStatus};
use crate::service::{EnqueueInput, EnqueueReport, Service};
use crate::service::{InboxFilter, MessageFilter, NewUser, PageRequest};
use crate::store::{self, OpenMode};
use crate::telemetry::LogHandle;

mod audit;
mod channels;
mod enqueue;
mod events;
mod explain;
mod messages;
mod notifications;
mod tokens;
mod users;

use audit::*;
use channels::*;
use enqueue::*;
use events::*;
use explain::*;
use messages::*;
use notifications::*;
use tokens::*;
use users::*;

/// Loads the config, opens the store, and runs the command (the console when none is given;
/// it mutes `logs`' stderr while it holds the terminal).
pub async fn run(mut cli: Cli, logs: Option<LogHandle>) -> Result<()> {
    let command = cli
        .command
        .take()
        .unwrap_or(Command::Console(ConsoleArgs::default()));
    if let Command::Demo(args) = command {
        // The demo brings its own configuration and store; only --database-url reaches it.
        let options = crate::demo::DemoOptions {
            reset: args.reset,
            rate: args.rate,
            database_url: cli.database_url.clone(),
        };
        return crate::demo::run(&options, logs).await;
    }
    let env = |name: &str| std::env::var(name).ok();
    let config = Config::load(
        &ConfigSources {
            file: cli.config.clone(),
            database_url: cli.database_url.clone(),
        },
        &env,
    )?;
    let mode = match command {
        Command::Migrate | Command::Serve(_) => OpenMode::Migrate,
        _ => OpenMode::Existing,
    };
    let store = store::open(&config.database_url, mode).await?;
    let service = Service::start(store, Arc::new(config)).await?;

    if let Command::Serve(args) = &command {
        let ring = logs.as_ref().map(LogHandle::ring);
        return crate::serve::serve(Arc::new(service), args, ring).await;
    }
    if let Command::Migrate = command {
        println!(
            "store {} ({}) is migrated and the catalog is up to date",
            service.store().display_url(),
            service.store().backend()
        );
        return Ok(());
    }
    if let Command::Users(UsersCommand::Add {
        username,
        email,
        name,
        roles,
    }) = &command
    {
        let caller = if service.bootstrapping().await? {
            None
        } else {
            Some(service.identify(&invoking_user(&cli)?).await?)
        };
        let roles = if roles.is_empty() {
            vec![Role::Member]
        } else {
            roles.clone()
        };
        let user = service
            .add_user(
                caller.as_ref(),
                NewUser {
                    username: username.clone(),
                    email: email.clone(),
                    name: name.clone().unwrap_or_default(),
                    roles,
                },
            )
            .await?;
        println!("added user {} ({})", user.username, roles_text(&user));
        return Ok(());
    }

    let caller = service.identify(&invoking_user(&cli)?).await?;
    match command {
        Command::Migrate
        | Command::Serve(_)
        | Command::Demo(_)
        | Command::Users(UsersCommand::Add { .. }) => Ok(()),
        Command::Events(EventsCommand::List(flag)) => {
            events_list(&service, &caller, flag.json).await
        }
        Command::Events(EventsCommand::Show { event, json }) => {
            events_show(&service, &caller, &event, json).await
        }
        Command::Enqueue(args) => enqueue(&service, &caller, args).await,
        Command::Explain(args) => explain(&service, &caller, args).await,
        Command::Channels(cmd) => channels(&service, &caller, cmd).await,
        Command::Notifications(cmd) => notifications(&service, &caller, cmd).await,
        Command::Messages(cmd) => messages(&service, &caller, cmd).await,
        Command::Users(cmd) => users(&service, &caller, cmd).await,
        Command::Tokens(cmd) => tokens(&service, &caller, cmd).await,
        Command::Prefs(cmd) => prefs(&service, &caller, cmd).await,
        Command::Optout(cmd) => optout(&service, &caller, cmd).await,
        Command::Inbox(cmd) => inbox(&service, &caller, cmd).await,
        Command::Doctor(flag) => doctor(&service, &caller, flag.json).await,
        Command::Audit(AuditCommand::List(args)) => audit_list(&service, &caller, args).await,
        Command::Console(args) => {
            let options = crate::console::ConsoleOptions {
                no_dispatcher: args.no_dispatcher,
                read_only: args.read_only,
            };
            crate::console::run(Arc::new(service), caller, options, logs).await
        }
    }
}

/// `--as` / `HERALD_USER` (clap reads both), else the OS user.
fn invoking_user(cli: &Cli) -> Result<String> {
    if let Some(user) = &cli.as_user {
        return Ok(user.clone());
    }
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .context("cannot tell who you are: pass --as USER or set HERALD_USER")
}

fn roles_text(user: &User) -> String {
    user.roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn method_text(method: Option<Method>, default: Method) -> String {
    match method {
        Some(m) => m.to_string(),
        None => format!("{default} (default)"),
    }
}

fn recipient(m: &Message) -> String {
    match (&m.username, &m.target) {
        (_, Some(target)) => format!("target:{target}"),
        (Some(user), None) => user.clone(),
        (None, None) => "-".to_string(),
    }
}

/// A stored reason as a terminal may show it: rows written before reasons were cleaned may
/// still carry a peer's control characters.
fn shown(reason: &str) -> String {
    crate::queue::clean_text(reason, crate::queue::MAX_REASON_CHARS)
}

fn status_text(m: &Message) -> String {
    match &m.status_reason {
        Some(reason) => format!("{} ({})", m.status, shown(reason)),
        None => m.status.to_string(),
    }
}
