//! The command line (DESIGN §10): clap definitions only.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::model::{MessageState, Method, Role};

/// Herald: a notification dispatcher with a terminal admin console.
///
/// Other systems report events (a workspace was deleted, a pipeline run failed); Herald works out
/// who should hear about each one, queues one message per recipient and delivery method in a
/// shared store (SQLite or PostgreSQL), and delivers them by email, webhook, Slack and an in-app
/// inbox.
///
/// Start here:
///   herald --database-url sqlite://herald.db migrate
///   herald users add alice --email alice@example.com --role owner
///   herald --as alice events show workspace_deleted
///   herald --as alice enqueue workspace_deleted --user alice --label name=ws1
///   herald --as alice messages list
#[derive(Debug, Parser)]
#[command(name = "herald", version, verbatim_doc_comment, max_term_width = 100)]
pub struct Cli {
    /// Configuration file [default: $HERALD_CONFIG, else ./herald.toml when present]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Store URL: sqlite://FILE or postgres://USER:PASS@HOST:PORT/DB
    /// [env: HERALD_DATABASE_URL] [default: sqlite://herald.db]
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,

    /// Act as this user (must exist) [default: the OS user]
    #[arg(long = "as", global = true, value_name = "USER", env = "HERALD_USER")]
    pub as_user: Option<String>,

    /// What to do [default: the console]
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open the admin console (the default) with an embedded dispatcher
    ///
    /// Tabs: Events, Delivery, Opt-outs, Queue, Troubleshoot, Inbox; `?` lists every key.
    /// Needs a terminal (80×24 is enough); honours NO_COLOR.
    Console(ConsoleArgs),
    /// Try Herald: a demo store with users, live traffic and failing sinks, in the console
    ///
    /// Creates ./herald-demo.db in the current directory (or reuses it; --reset starts afresh)
    /// with the event catalog, users of every role (demo-owner, dana user-admin, tom
    /// template-admin, olive oncall, mia and max members, sam suspended), a few opt-outs and
    /// per-event methods. Starts local HTTP sinks on 127.0.0.1 — a healthy webhook, a flaky
    /// one (503 with Retry-After), one that answers 404, one that hangs past the 3s dispatch
    /// timeout, and a fake Slack API with one working and one missing channel — enqueues a few
    /// hundred messages, then a steady trickle of events, and opens the console as demo-owner
    /// with the embedded dispatcher. Quitting stops the traffic and the sinks; the store stays.
    ///
    /// The demo brings its own configuration: it ignores --config, ./herald.toml, HERALD_*
    /// variables and --as. Only an explicit --database-url replaces ./herald-demo.db (the demo
    /// users and messages are then written to that store).
    Demo(DemoArgs),
    /// Create the store if needed and apply pending schema migrations
    Migrate,
    /// Run a headless dispatcher (a replica) until SIGINT/SIGTERM
    ///
    /// Delivers queued messages with leases and retries, alongside any other replicas sharing
    /// the store. With --http (or http.listen) it also serves the producers' HTTP API. On
    /// SIGINT/SIGTERM it stops accepting requests and leasing, finishes the requests and
    /// deliveries in flight, writes their outcomes and exits 0.
    Serve(ServeArgs),
    /// The event catalog
    #[command(subcommand)]
    Events(EventsCommand),
    /// Report an event: route it to its recipients and queue the messages
    ///
    /// Recipients are the users named with --user plus every active user holding one of the
    /// event's audience roles, and the notification targets subscribed to the event (only the
    /// actor's own targets when --actor is given). An identical message already queued today is
    /// not queued again; it is reported as a duplicate.
    ///
    /// An event without one of its required labels (`herald events show EVENT` lists them), or
    /// whose templates do not render with the labels and data given, is refused, naming the
    /// label, and nothing is queued.
    #[command(
        after_help = "Examples:\n  herald enqueue workspace_deleted --user bob --label name=ws1 --label reason=\"initiated by user\"\n  herald enqueue run_failure --data '{\"error\": \"model x failed\"}'"
    )]
    Enqueue(EnqueueArgs),
    /// Who would get what for an event, and why — queued, inhibited or skipped — writing nothing
    ///
    /// Takes the arguments of `herald enqueue` and runs the same routing: every user named with
    /// --user, every audience member and every other user, and every target, each with its
    /// method and decision — queued; inhibited (disabled by user, off by default, suspended);
    /// or skipped (method not configured, user suspended, not in audience, not subscribed,
    /// duplicate of a message already queued today). A queued message no running replica can
    /// deliver says so. Answers "why did alice get nothing?" before and after the fact.
    #[command(
        after_help = "Examples:\n  herald explain workspace_deleted --user alice --user bob --label name=ws1\n  herald explain audit_failure --actor alice --label environment=prod --json"
    )]
    Explain(ExplainArgs),
    /// The delivery killswitch
    #[command(subcommand)]
    Notifications(NotificationsCommand),
    /// Each channel's health: what waits, how the last 15 minutes went, what failed last
    #[command(subcommand)]
    Channels(ChannelsCommand),
    /// Inspect, retry and purge queued messages
    #[command(subcommand)]
    Messages(MessagesCommand),
    /// Manage who Herald knows
    #[command(subcommand)]
    Users(UsersCommand),
    /// API tokens: how other systems call Herald's HTTP API as one of its users
    ///
    /// A token acts as its user, with that user's roles, through the same permission checks as
    /// the command line and the console. It is sent as the header
    /// `Authorization: Bearer herald_…` to the API that `herald serve --http ADDR` serves.
    ///
    /// `create` prints the token once: Herald stores only its SHA-256, so it can never show it
    /// again (a lost token is revoked and replaced). A token's name is unique among its user's
    /// live tokens, so `revoke NAME` means your live token of that name, and `--user U` someone
    /// else's; a revoked token's name can be used again. A revoke holds from the next request
    /// on, on every replica: each request reads the store.
    ///
    /// Everyone manages their own tokens. Owners and user-admins also list everyone's and
    /// manage other users' tokens, except that only owners manage an owner's.
    #[command(
        subcommand,
        after_help = "Examples:\n  herald tokens create ci\n  herald tokens create sqlmesh-prod --user etl --json\n  herald tokens list\n  herald tokens revoke ci"
    )]
    Tokens(TokensCommand),
    /// Per-event delivery methods (owners change them)
    #[command(subcommand)]
    Prefs(PrefsCommand),
    /// Turn events off (or back on) for yourself, or as an owner for someone else
    #[command(subcommand)]
    Optout(OptoutCommand),
    /// Your in-app inbox
    #[command(subcommand)]
    Inbox(InboxCommand),
    /// Check the configuration and really reach every configured channel (nothing is sent)
    Doctor(JsonFlag),
    /// Who did what: the audit trail of operator actions (owners and user-admins)
    ///
    /// Every retry, pause and resume (global or scoped), event method change, opt-out changed
    /// for someone else, user added, suspended or activated, API token made or revoked, SSH
    /// key added or removed, and purge is one row, written in the same transaction as the
    /// change: actor, action, subject, and the front end it came through (cli, console, api,
    /// ssh). Tokens appear by name only, keys by fingerprint. Rows are kept for
    /// notifications.retention, like messages.
    #[command(
        subcommand,
        after_help = "Examples:\n  herald audit list\n  herald audit list --actor alice --since 1h\n  herald audit list --action messages.retry --json"
    )]
    Audit(AuditCommand),
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// The newest audit rows first (owners and user-admins)
    List(AuditListArgs),
}

/// `herald audit list` flags.
#[derive(Debug, Args)]
pub struct AuditListArgs {
    /// At most this many rows
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub limit: u32,
    /// Only what this user did
    #[arg(long, value_name = "U")]
    pub actor: Option<String>,
    /// Only this action, e.g. messages.retry, notifications.pause, tokens.revoke
    #[arg(long, value_name = "A")]
    pub action: Option<String>,
    /// Only rows written in the last DURATION (30m, 2h, 7d)
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,
    /// Page on: only rows older than this id (the last id of the previous page)
    #[arg(long, value_name = "ID")]
    pub before: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, Default, Args)]
pub struct ConsoleArgs {
    /// Do not deliver from this process (another replica does)
    #[arg(long)]
    pub no_dispatcher: bool,
    /// Look only: every action that changes anything is removed, and no dispatcher runs
    #[arg(long)]
    pub read_only: bool,
}

/// `herald demo` flags.
#[derive(Debug, Clone, Copy, Args)]
pub struct DemoArgs {
    /// Delete ./herald-demo.db first and build the demo from scratch
    #[arg(long)]
    pub reset: bool,
    /// Events enqueued per second while the console is open (0 for none)
    #[arg(
        long,
        value_name = "EVENTS_PER_SEC",
        default_value_t = 1.5,
        value_parser = parse_rate,
        allow_negative_numbers = true
    )]
    pub rate: f64,
}

/// `--rate`: a number of events per second from 0 to 1000.
fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if (0.0..=1000.0).contains(&rate) => Ok(rate),
        _ => Err(format!(
            "`{text}` is not a rate: give events per second from 0 to 1000, e.g. 1.5"
        )),
    }
}

#[derive(Debug, Subcommand)]
pub enum InboxCommand {
    /// Your inbox, unread first
    List {
        /// Only unread entries
        #[arg(long, conflicts_with = "read")]
        unread: bool,
        /// Only read entries
        #[arg(long)]
        read: bool,
        #[arg(long, value_name = "N", default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Mark an entry read
    Read { id: String },
    /// Mark an entry unread
    Unread { id: String },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Serve the producers' HTTP API at http://IP:PORT (/api/v1, /healthz, /readyz, /metrics)
    /// [config: http.listen] [env: HERALD_HTTP_LISTEN]
    #[arg(long, value_name = "IP:PORT")]
    pub http: Option<std::net::SocketAddr>,
    /// Run the SSH server at IP:PORT: `ssh -p PORT HOST` opens the console as the Herald user
    /// who owns the key (`herald users keys add`) [config: ssh.listen] [env: HERALD_SSH_LISTEN]
    #[arg(long, value_name = "IP:PORT")]
    pub ssh: Option<std::net::SocketAddr>,
    /// Also serve the same endpoints as --http (/metrics, /healthz, /readyz and the API) at
    /// http://IP:PORT, e.g. for Prometheus to scrape on an address of its own
    #[arg(long, value_name = "IP:PORT")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Also log debug lines matching this regex, e.g. '.*notifications.*' ('.*' for all)
    #[arg(long, value_name = "REGEX", env = "HERALD_LOG_FILTER")]
    pub log_filter: Option<String>,
    /// Log JSON lines instead of text
    #[arg(long)]
    pub log_json: bool,
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// List every event: name, group, method, audience, enabled by default
    List(JsonFlag),
    /// Show one event: the labels a producer sends, who receives it, its templates and actions
    ///
    /// Labels are what `herald enqueue EVENT --label NAME=VALUE` gives the templates. A required
    /// label must be given: enqueue refuses the event without it, naming it, and writes
    /// nothing. An optional one only adds to the text when given. Labels the event does not
    /// declare are accepted and passed through in the payload. A template override in the
    /// config ([events.NAME], or a target's title_template / body_template) may read more
    /// labels: enqueue checks those too, and names any it needs.
    #[command(
        after_help = "Examples:\n  herald events show user_account_created\n  herald events show run_failure --json"
    )]
    Show {
        /// Event name (see `herald events list`)
        event: String,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

/// An event as a producer reports it: what `enqueue` queues and `explain` explains.
#[derive(Debug, Args)]
pub struct EventArgs {
    /// Event name (see `herald events list`)
    pub event: String,
    /// A recipient (repeatable)
    #[arg(long = "user", value_name = "USER")]
    pub users: Vec<String>,
    /// The user the event is about, SQLMesh-style: only their own targets are notified
    /// [default: `username` from the config]
    #[arg(long, value_name = "USER")]
    pub actor: Option<String>,
    /// A template label, KEY=VALUE (repeatable); `herald events show EVENT` lists the
    /// event's labels, and enqueue refuses the event without its required ones
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Structured details as a JSON object, e.g. '{"error": "…"}'
    #[arg(long, value_name = "JSON")]
    pub data: Option<String>,
}

#[derive(Debug, Args)]
pub struct EnqueueArgs {
    #[command(flatten)]
    pub event: EventArgs,
    /// Print {"enqueued": [messages…], "duplicates": [ids…]}
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub event: EventArgs,
    /// Print {"event", "decisions": [{recipient, user, target, method, decision, reason,
    /// duplicate_of}…], "warnings"}
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum NotificationsCommand {
    /// Stop delivering on every replica (messages keep queueing), or only one method or target
    ///
    /// Without a flag everything stops. With --method or --target only those messages are held
    /// (they stay pending) while every other channel keeps delivering: a failing Slack
    /// workspace is held while email flows. Every replica honours it at its next lease.
    #[command(
        after_help = "Examples:\n  herald notifications pause\n  herald notifications pause --method slack_api\n  herald notifications pause --target team-slack"
    )]
    Pause(ChannelArgs),
    /// Resume delivering on every replica, or lift one method's or target's pause
    Resume(ChannelArgs),
    /// Show whether delivery is paused, and every paused method and target
    Status(JsonFlag),
    /// Send yourself a test notification (bypasses dedupe)
    Test {
        /// Only by this method: smtp, webhook or inbox [default: your usual methods]
        #[arg(long, value_name = "M")]
        method: Option<Method>,
        #[arg(long)]
        json: bool,
    },
    /// Send yourself an ad-hoc notification, e.g. when a long task ends
    #[command(
        after_help = "Example:\n  make test && herald notifications custom \"Tests passed\" \"All green\""
    )]
    Custom {
        title: String,
        message: String,
        #[arg(long)]
        json: bool,
    },
}

/// Which channel `notifications pause` / `resume` holds; neither flag means everything.
#[derive(Debug, Clone, Args)]
pub struct ChannelArgs {
    /// Only this method: smtp, webhook, slack_webhook, slack_api, inbox (its targets too)
    #[arg(long, value_name = "M", conflicts_with = "target")]
    pub method: Option<Method>,
    /// Only this target, as declared (`owner/name` for a user's own)
    #[arg(long, value_name = "NAME")]
    pub target: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ChannelsCommand {
    /// Per method and per target: backlog, attempts of the last 15 minutes (sent, temporary,
    /// permanent), p50 / p95 delivery time, the last error, and whether it is paused
    ///
    /// A method's row is its user messages; each target has a row of its own. Delivery times
    /// and last errors come from the latest 5,000 attempts of the window. Owners and on-call.
    Status(JsonFlag),
}

#[derive(Debug, Subcommand)]
pub enum MessagesCommand {
    /// List messages, newest first (members see their own)
    List(ListArgs),
    /// One message with its payload and attempt history
    Show {
        /// Message id
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Put failed messages back to pending (owners)
    #[command(
        after_help = "Examples:\n  herald messages retry 0193b3c4-…\n  herald messages retry --status permanent_failure --event 'run_*'"
    )]
    Retry(RetryArgs),
    /// Delete messages (and their attempts) last changed before a time (owners)
    Purge {
        /// Age cut-off, e.g. 7d, 12h [default: notifications.retention]
        #[arg(long, value_name = "DURATION")]
        older_than: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only these states (repeatable or comma-separated): pending, leased, sent,
    /// temporary_failure, permanent_failure, inhibited
    #[arg(long = "status", value_name = "S", value_delimiter = ',')]
    pub statuses: Vec<MessageState>,
    /// Only this event; `*` matches any run of characters (run_*)
    #[arg(long, value_name = "E")]
    pub event: Option<String>,
    /// Only this recipient (owners and on-call)
    #[arg(long, value_name = "U")]
    pub user: Option<String>,
    /// Only this method: smtp, webhook, slack_webhook, slack_api, inbox
    #[arg(long, value_name = "M")]
    pub method: Option<Method>,
    /// At most this many
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub limit: u32,
    /// Page on: only messages older than this id (the last id of the previous page)
    #[arg(long, value_name = "ID")]
    pub before: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    /// Message ids
    #[arg(required_unless_present = "status", conflicts_with_all = ["status", "event"])]
    pub ids: Vec<String>,
    /// Retry every message in this state (temporary_failure or permanent_failure)
    #[arg(long, value_name = "S")]
    pub status: Option<MessageState>,
    /// With --status: only this event (`*` wildcards allowed)
    #[arg(long, value_name = "E", requires = "status")]
    pub event: Option<String>,
    /// Also retry inhibited messages (the recipient opted out)
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add a user (the first owner can be added by anyone)
    Add {
        username: String,
        #[arg(long, value_name = "EMAIL")]
        email: String,
        /// Display name
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// owner, user-admin, template-admin, oncall or member (repeatable) [default: member]
        #[arg(long = "role", value_name = "ROLE", value_delimiter = ',')]
        roles: Vec<Role>,
    },
    /// List users
    List(JsonFlag),
    /// Stop a user acting and receiving notifications
    Suspend { username: String },
    /// Reactivate a suspended user
    Activate { username: String },
    /// SSH public keys that open the console over SSH as their user (`herald serve --ssh`)
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a public key to a user: yours, or (owners and user-admins) someone else's
    ///
    /// An SSH connection that proves it holds the key opens the console as that user. Only
    /// ssh-ed25519 and ecdsa-sha2-nistp256/384/521 keys; a key belongs to one user.
    Add {
        username: String,
        /// The public key's line, e.g. --key "$(cat ~/.ssh/id_ed25519.pub)"
        #[arg(long, value_name = "KEY")]
        key: String,
    },
    /// List keys with their `SHA256:…` fingerprints: yours, or everyone's (or USER's) for
    /// owners and user-admins
    List {
        username: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Remove a key by its fingerprint (`SHA256:…`, as `herald users keys list` shows it)
    Remove { fingerprint: String },
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Make a token and print it, once
    ///
    /// Copy the token when it is printed: only its SHA-256 is kept. Without --user the token
    /// is yours; with it, owners and user-admins make one for another user (it then acts as
    /// that user).
    Create {
        /// Unique among the user's live tokens: 1–64 letters, digits, `_`, `-` or `.`
        /// (e.g. ci, sqlmesh-prod)
        name: String,
        /// Make it for this user instead of yourself (owners and user-admins)
        #[arg(long, value_name = "U")]
        user: Option<String>,
        /// Print the token's row and, under "token", the token itself, as JSON
        #[arg(long)]
        json: bool,
    },
    /// List tokens (yours; every user's for owners and user-admins), never the token itself
    List(JsonFlag),
    /// Revoke a live token: requests that send it are refused from the next one on
    Revoke {
        /// The token's name (`herald tokens list` shows them)
        name: String,
        /// Revoke this user's token of that name instead of yours (owners and user-admins)
        #[arg(long, value_name = "U")]
        user: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PrefsCommand {
    /// Each event's delivery method
    List(JsonFlag),
    /// Set an event's delivery method, or `default` for the deployment default (owners)
    Set {
        event: String,
        /// smtp, webhook, slack_webhook, slack_api, or default
        #[arg(long, value_name = "M")]
        method: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum OptoutCommand {
    /// Every event and whether you (or --user) receive it
    List {
        #[arg(long, value_name = "U")]
        user: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Stop receiving an event
    Set {
        event: String,
        #[arg(long, value_name = "U")]
        user: Option<String>,
    },
    /// Receive an event again (removes the opt-out)
    Clear {
        event: String,
        #[arg(long, value_name = "U")]
        user: Option<String>,
    },
}

impl Command {
    /// Whether the command runs without an invoking user.
    pub fn needs_identity(&self) -> bool {
        !matches!(
            self,
            Command::Migrate | Command::Demo(_) | Command::Users(UsersCommand::Add { .. })
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn demo_rates_are_checked() {
        let rate = |args: &[&str]| {
            Cli::try_parse_from([&["herald", "demo"], args].concat()).map(|cli| match cli.command {
                Some(Command::Demo(demo)) => demo.rate,
                other => panic!("not demo: {other:?}"),
            })
        };
        assert_eq!(rate(&[]).unwrap(), 1.5);
        assert_eq!(rate(&["--rate", "0"]).unwrap(), 0.0);
        assert_eq!(rate(&["--rate", "20"]).unwrap(), 20.0);
        for bad in ["-1", "NaN", "fast", "1e9"] {
            assert!(rate(&["--rate", bad]).is_err(), "{bad}");
        }
    }
}
