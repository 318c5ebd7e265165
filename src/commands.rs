//! Runs one CLI command through the service layer and prints the result.
//!
//! A front end: no SQL here, and no permission logic (the service checks roles).

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use chrono::Utc;
use serde_json::json;

use crate::cli::{
    Cli, Command, ConsoleArgs, EnqueueArgs, EventsCommand, InboxCommand, ListArgs, MessagesCommand,
    NotificationsCommand, OptoutCommand, PrefsCommand, RetryArgs, UsersCommand,
};
use crate::config::{Config, ConfigSources};
use crate::model::{EventTemplate, Message, Method, Role, User, UserStatus};
use crate::output::{Table, indented, print_json, short_time};
use crate::service::{EnqueueInput, EnqueueReport, Service};
use crate::store::{self, InboxFilter, MessageFilter, NewUser, OpenMode, PageRequest};
use crate::telemetry::LogHandle;

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
        return crate::serve::serve(&service, args).await;
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
        Command::Notifications(cmd) => notifications(&service, &caller, cmd).await,
        Command::Messages(cmd) => messages(&service, &caller, cmd).await,
        Command::Users(cmd) => users(&service, &caller, cmd).await,
        Command::Prefs(cmd) => prefs(&service, &caller, cmd).await,
        Command::Optout(cmd) => optout(&service, &caller, cmd).await,
        Command::Inbox(cmd) => inbox(&service, &caller, cmd).await,
        Command::Doctor(flag) => doctor(&service, &caller, flag.json).await,
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

async fn events_list(service: &Service, caller: &User, json: bool) -> Result<()> {
    crate::serve::checked_templates(service).await?;
    let events = service.events(caller).await?;
    let default = service.default_method();
    if json {
        let rows: Vec<_> = events.iter().map(|e| event_json(e, default)).collect();
        return print_json(&rows);
    }
    let mut table = Table::new(["EVENT", "GROUP", "METHOD", "AUDIENCE", "ENABLED"]);
    for e in &events {
        table.row([
            e.spec.name.clone(),
            e.spec.group.clone(),
            method_text(e.method, default),
            e.spec
                .audience_roles
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(","),
            if e.spec.enabled_by_default {
                "yes"
            } else {
                "no (opt-in)"
            }
            .to_string(),
        ]);
    }
    table.print();
    Ok(())
}

/// An event as `events list --json` and `events show --json` print it.
fn event_json(e: &EventTemplate, default: Method) -> serde_json::Value {
    json!({
        "id": e.id,
        "name": e.spec.name,
        "group": e.spec.group,
        "title_template": e.spec.title_template,
        "body_template": e.spec.body_template,
        "actions": e.spec.actions,
        "audience_roles": e.spec.audience_roles,
        "enabled_by_default": e.spec.enabled_by_default,
        "method": e.method,
        "effective_method": e.method.unwrap_or(default),
        "kind": e.spec.kind,
        "inbox": e.spec.inbox,
        "reaches_suspended": e.spec.reaches_suspended,
        "labels": e.spec.labels,
    })
}

async fn events_show(service: &Service, caller: &User, name: &str, json: bool) -> Result<()> {
    let event = service.event(caller, name).await?;
    let default = service.default_method();
    if json {
        return print_json(&event_json(&event, default));
    }
    let spec = &event.spec;
    let yes_no = |yes: bool| if yes { "yes" } else { "no" };
    println!("event:               {}", spec.name);
    println!("group:               {}", spec.group);
    println!("kind:                {}", spec.kind);
    println!(
        "audience:            {}",
        if spec.audience_roles.is_empty() {
            "only the users named with --user (and subscribed targets)".to_string()
        } else {
            let roles: Vec<&str> = spec.audience_roles.iter().map(|r| r.as_str()).collect();
            format!("{} (besides the users named)", roles.join(", "))
        }
    );
    println!(
        "method:              {}",
        method_text(event.method, default)
    );
    println!(
        "enabled by default:  {}",
        if spec.enabled_by_default {
            "yes"
        } else {
            "no (users opt in)"
        }
    );
    println!("inbox copy:          {}", yes_no(spec.inbox));
    println!("reaches suspended:   {}", yes_no(spec.reaches_suspended));
    if spec.labels.is_empty() {
        println!("labels:              none");
    } else {
        println!("labels:");
        let mut table = Table::new(["LABEL", "", "DESCRIPTION"]);
        for label in &spec.labels {
            table.row([
                label.name.clone(),
                if label.required {
                    "required"
                } else {
                    "optional"
                }
                .to_string(),
                label.description.clone(),
            ]);
        }
        print!("{}", indented(&table.render(), 2));
    }
    println!("title template:");
    print!("{}", indented(&spec.title_template, 2));
    println!("body template:");
    print!("{}", indented(&spec.body_template, 2));
    if spec.actions.is_empty() {
        println!("actions:             none");
    } else {
        println!("actions:");
        let mut table = Table::new(["LABEL", "URL"]);
        for action in &spec.actions {
            table.row([action.label.clone(), action.url.clone()]);
        }
        print!("{}", indented(&table.render(), 2));
    }
    let mut example = format!("herald enqueue {}", spec.name);
    for label in spec.required_labels() {
        example.push_str(&format!(" --label {}=VALUE", label.name));
    }
    if spec.audience_roles.is_empty() {
        example.push_str(" --user USER");
    }
    println!("enqueue it:");
    print!("{}", indented(&example, 2));
    Ok(())
}

fn method_text(method: Option<Method>, default: Method) -> String {
    match method {
        Some(m) => m.to_string(),
        None => format!("{default} (default)"),
    }
}

async fn enqueue(service: &Service, caller: &User, args: EnqueueArgs) -> Result<()> {
    let report = service
        .enqueue(
            caller,
            &EnqueueInput {
                event: args.event,
                users: args.users,
                actor: args.actor,
                labels: args.labels,
                data: args.data,
            },
        )
        .await?;
    print_enqueued(&report, args.json)
}

/// Prints what an enqueue created: JSON `{"enqueued": [...], "duplicates": [...]}` or lines.
fn print_enqueued(report: &EnqueueReport, json: bool) -> Result<()> {
    if json {
        return print_json(&json!({
            "enqueued": report.enqueued,
            "duplicates": report.duplicates,
        }));
    }
    if report.enqueued.is_empty() && report.duplicates.is_empty() {
        println!("no recipients: nobody is addressed by this event and no target subscribes to it");
    }
    for m in &report.enqueued {
        println!(
            "enqueued {}  {}  {}  {}",
            m.id,
            recipient(m),
            m.method,
            status_text(m)
        );
    }
    for id in &report.duplicates {
        println!("duplicate of {id} (identical message already queued today)");
    }
    Ok(())
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

async fn notifications(service: &Service, caller: &User, cmd: NotificationsCommand) -> Result<()> {
    match cmd {
        NotificationsCommand::Pause => {
            service.set_paused(caller, true).await?;
            println!(
                "notifications paused: no replica delivers until `herald notifications resume`"
            );
        }
        NotificationsCommand::Resume => {
            service.set_paused(caller, false).await?;
            println!("notifications resumed");
        }
        NotificationsCommand::Status(flag) => {
            let settings = service.notifier_status(caller).await?;
            if flag.json {
                return print_json(&settings);
            }
            let state = if settings.notifier_paused {
                "paused"
            } else {
                "running"
            };
            println!(
                "notifications {state} (since {})",
                short_time(settings.updated_at)
            );
        }
        NotificationsCommand::Test { method, json } => {
            let report = service.send_test(caller, method).await?;
            print_enqueued(&report, json)?;
        }
        NotificationsCommand::Custom {
            title,
            message,
            json,
        } => {
            let report = service.send_custom(caller, &title, &message).await?;
            print_enqueued(&report, json)?;
        }
    }
    Ok(())
}

async fn doctor(service: &Service, caller: &User, json: bool) -> Result<()> {
    let results = service.doctor(caller).await?;
    let failed = results.iter().filter(|r| !r.ok).count();
    if json {
        print_json(&results)?;
    } else {
        for r in &results {
            let verdict = if r.ok { " ok " } else { "FAIL" };
            println!("[{verdict}] {}: {}", r.check, r.detail);
        }
    }
    if failed > 0 {
        bail!("{failed} of {} checks failed", results.len());
    }
    if !json {
        println!("all {} checks passed", results.len());
    }
    Ok(())
}

async fn inbox(service: &Service, caller: &User, cmd: InboxCommand) -> Result<()> {
    match cmd {
        InboxCommand::List {
            unread,
            read,
            limit,
            json,
        } => {
            let filter = match (unread, read) {
                (true, _) => InboxFilter::Unread,
                (_, true) => InboxFilter::Read,
                _ => InboxFilter::All,
            };
            let entries = service.inbox(caller, filter, limit).await?;
            if json {
                return print_json(&entries);
            }
            if entries.is_empty() {
                println!("your inbox is empty");
                return Ok(());
            }
            let mut table = Table::new(["ID", "RECEIVED", "READ", "EVENT", "TITLE"]);
            for e in &entries {
                table.row([
                    e.id.to_string(),
                    short_time(e.created_at),
                    if e.read_at.is_some() { "yes" } else { "new" }.to_string(),
                    e.event.clone(),
                    e.title.clone(),
                ]);
            }
            table.print();
            Ok(())
        }
        InboxCommand::Read { id } => {
            service.mark_inbox(caller, &id, true).await?;
            println!("marked {id} read");
            Ok(())
        }
        InboxCommand::Unread { id } => {
            service.mark_inbox(caller, &id, false).await?;
            println!("marked {id} unread");
            Ok(())
        }
    }
}

async fn messages(service: &Service, caller: &User, cmd: MessagesCommand) -> Result<()> {
    match cmd {
        MessagesCommand::List(args) => messages_list(service, caller, args).await,
        MessagesCommand::Show { id, json } => {
            let (message, attempts) = service.message(caller, &id).await?;
            if json {
                let mut value = serde_json::to_value(&message)?;
                value["attempts"] = serde_json::to_value(&attempts)?;
                return print_json(&value);
            }
            println!("id:               {}", message.id);
            println!("event:            {}", message.event);
            println!("recipient:        {}", recipient(&message));
            println!("method:           {}", message.method);
            println!("status:           {}", message.status);
            println!(
                "status_reason:    {}",
                message.status_reason.as_deref().map_or("-".into(), shown)
            );
            println!("attempt_count:    {}", message.attempt_count);
            println!("created_at:       {}", message.created_at.to_rfc3339());
            println!("updated_at:       {}", message.updated_at.to_rfc3339());
            if let Some(t) = message.leased_until {
                println!("leased_until:     {}", t.to_rfc3339());
            }
            if let Some(t) = message.next_retry_after {
                println!("next_retry_after: {}", t.to_rfc3339());
            }
            println!("created_by:       {}", message.created_by);
            println!(
                "payload:\n{}",
                serde_json::to_string_pretty(&message.payload)?
            );
            if attempts.is_empty() {
                println!("attempts:         none yet");
            } else {
                let mut table = Table::new(["#", "STARTED", "DURATION", "OUTCOME", "REASON"]);
                for a in &attempts {
                    table.row([
                        a.attempt_number.to_string(),
                        short_time(a.started_at),
                        format!("{}ms", a.duration_ms),
                        a.outcome.to_string(),
                        a.reason.as_deref().map(shown).unwrap_or_default(),
                    ]);
                }
                table.print();
            }
            Ok(())
        }
        MessagesCommand::Retry(args) => retry(service, caller, args).await,
        MessagesCommand::Purge { older_than } => {
            let age = match older_than {
                Some(text) => crate::config::parse_duration(&text)
                    .map_err(|why| anyhow::anyhow!("--older-than: {why}"))?,
                None => service.config().notifications.retention,
            };
            let cutoff = chrono::Duration::from_std(age)
                .ok()
                .and_then(|age| Utc::now().checked_sub_signed(age))
                .with_context(|| {
                    format!(
                        "a cut-off {} ago is before any date the store can hold",
                        humantime::format_duration(age)
                    )
                })?;
            let n = service.purge_messages(caller, cutoff).await?;
            println!(
                "purged {n} messages last changed before {}",
                short_time(cutoff)
            );
            Ok(())
        }
    }
}

async fn messages_list(service: &Service, caller: &User, args: ListArgs) -> Result<()> {
    let before = match &args.before {
        Some(id) => Some(
            uuid::Uuid::parse_str(id)
                .with_context(|| format!("--before `{id}` is not a message id"))?,
        ),
        None => None,
    };
    let filter = MessageFilter {
        statuses: args.statuses,
        event: args.event,
        user_id: None,
        method: args.method,
    };
    let page = PageRequest {
        before,
        limit: args.limit,
    };
    let list = service
        .list_messages(caller, filter, args.user.as_deref(), page)
        .await?;
    if args.json {
        return print_json(&list);
    }
    if list.is_empty() {
        println!("no messages");
        return Ok(());
    }
    let mut table = Table::new([
        "ID",
        "CREATED",
        "EVENT",
        "RECIPIENT",
        "METHOD",
        "STATUS",
        "ATTEMPTS",
        "REASON",
    ]);
    for m in &list {
        table.row([
            m.id.to_string(),
            short_time(m.created_at),
            m.event.clone(),
            recipient(m),
            m.method.to_string(),
            m.status.to_string(),
            m.attempt_count.to_string(),
            m.status_reason.as_deref().map(shown).unwrap_or_default(),
        ]);
    }
    table.print();
    if list.len() == args.limit as usize
        && let Some(last) = list.last()
    {
        eprintln!("more: --before {}", last.id);
    }
    Ok(())
}

async fn retry(service: &Service, caller: &User, args: RetryArgs) -> Result<()> {
    if let Some(status) = args.status {
        let filter = MessageFilter {
            statuses: vec![status],
            event: args.event,
            ..MessageFilter::default()
        };
        let n = service.retry_matching(caller, &filter, args.force).await?;
        println!("retried {n} messages");
        return Ok(());
    }
    let report = service
        .retry_messages(caller, &args.ids, args.force)
        .await?;
    for id in &report.retried {
        println!("retried {id}");
    }
    for (id, why) in &report.skipped {
        eprintln!("not retried {id}: {why}");
    }
    if report.retried.is_empty() {
        bail!("no message was retried");
    }
    Ok(())
}

async fn users(service: &Service, caller: &User, cmd: UsersCommand) -> Result<()> {
    match cmd {
        UsersCommand::Add { .. } => Ok(()),
        UsersCommand::List(flag) => {
            let users = service.list_users(caller).await?;
            if flag.json {
                return print_json(&users);
            }
            let mut table = Table::new(["USERNAME", "EMAIL", "NAME", "ROLES", "STATUS"]);
            for u in &users {
                table.row([
                    u.username.clone(),
                    u.email.clone(),
                    u.name.clone(),
                    roles_text(u),
                    u.status.to_string(),
                ]);
            }
            table.print();
            Ok(())
        }
        UsersCommand::Suspend { username } => {
            service
                .set_user_status(caller, &username, UserStatus::Suspended)
                .await?;
            println!("suspended {username}: they no longer act or receive notifications");
            Ok(())
        }
        UsersCommand::Activate { username } => {
            service
                .set_user_status(caller, &username, UserStatus::Active)
                .await?;
            println!("activated {username}");
            Ok(())
        }
    }
}

async fn prefs(service: &Service, caller: &User, cmd: PrefsCommand) -> Result<()> {
    match cmd {
        PrefsCommand::List(flag) => {
            let events = service.events(caller).await?;
            let default = service.default_method();
            if flag.json {
                let rows: Vec<_> = events
                    .iter()
                    .map(|e| {
                        json!({
                            "name": e.spec.name,
                            "group": e.spec.group,
                            "method": e.method,
                            "effective_method": e.method.unwrap_or(default),
                        })
                    })
                    .collect();
                return print_json(&rows);
            }
            let mut table = Table::new(["EVENT", "GROUP", "METHOD"]);
            for e in &events {
                table.row([
                    e.spec.name.clone(),
                    e.spec.group.clone(),
                    method_text(e.method, default),
                ]);
            }
            table.print();
            Ok(())
        }
        PrefsCommand::Set { event, method } => {
            let method = if method == "default" {
                None
            } else {
                Some(method.parse::<Method>()?)
            };
            let updated = service.set_event_method(caller, &event, method).await?;
            println!(
                "{} now goes by {}",
                updated.spec.name,
                method_text(updated.method, service.default_method())
            );
            Ok(())
        }
    }
}

async fn optout(service: &Service, caller: &User, cmd: OptoutCommand) -> Result<()> {
    match cmd {
        OptoutCommand::List { user, json } => {
            let (subject, entries) = service.opt_outs(caller, user.as_deref()).await?;
            if json {
                let rows: Vec<_> = entries
                    .iter()
                    .map(|e| {
                        json!({
                            "username": subject.username,
                            "event": e.event.spec.name,
                            "group": e.event.spec.group,
                            "enabled": e.enabled,
                            "disabled": e.preference,
                            "enabled_by_default": e.event.spec.enabled_by_default,
                        })
                    })
                    .collect();
                return print_json(&rows);
            }
            let mut table = Table::new(["EVENT", "GROUP", "YOU GET IT", "WHY"]);
            for e in &entries {
                let why = match e.preference {
                    Some(true) => "opted out",
                    Some(false) => "opted in",
                    None if e.event.spec.enabled_by_default => "default",
                    None => "off by default",
                };
                table.row([
                    e.event.spec.name.clone(),
                    e.event.spec.group.clone(),
                    if e.enabled { "yes" } else { "no" }.to_string(),
                    why.to_string(),
                ]);
            }
            println!("opt-outs of {}:", subject.username);
            table.print();
            Ok(())
        }
        OptoutCommand::Set { event, user } => {
            let subject = service
                .set_opt_out(caller, &event, user.as_deref(), true)
                .await?;
            println!("{} opted out of {event}", subject.username);
            Ok(())
        }
        OptoutCommand::Clear { event, user } => {
            // Clearing an opt-out of an event that is off by default would leave it off, so
            // clearing means "I want it": an explicit opt-in.
            let subject = service
                .set_opt_out(caller, &event, user.as_deref(), false)
                .await?;
            println!("{} receives {event} again", subject.username);
            Ok(())
        }
    }
}
