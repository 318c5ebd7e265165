//! Hand-built console states for the `update` and snapshot tests: fixed ids, a fixed clock,
//! no store. `use crate::common::console as console_fixtures;` brings them in.
#![allow(dead_code)]

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use herald::channels::CheckResult;
use herald::console::action::{Action, OptOutRow};
use herald::console::state::{AppState, Session, Tab};
use herald::console::update::update;
use herald::dispatch::DispatcherState;
use herald::model::{
    Action as EventAction, Attempt, EventTemplate, Message, MessageState, Method, Role, User,
    UserStatus,
};
use herald::render::Rendered;
use herald::service::channel_health::ChannelHealth;
use herald::service::read_models::{MessageDetail, TitledMessage};
use herald::store::{InboxEntry, ReasonCount, Replica};
use herald::telemetry::LogLine;
use uuid::Uuid;

/// The fixtures' clock: 2025-01-15 12:00:00 UTC.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 15, 12, 0, 0)
        .single()
        .expect("a valid instant")
}

/// `secs` seconds before [`now`].
pub fn ago(secs: i64) -> DateTime<Utc> {
    now() - chrono::Duration::seconds(secs)
}

/// A fixed id from a number.
pub fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn user(n: u128, name: &str, roles: &[Role]) -> User {
    User {
        id: id(n),
        username: name.to_string(),
        email: format!("{name}@example.com"),
        name: name.to_uppercase(),
        roles: roles.to_vec(),
        status: UserStatus::Active,
        created_at: ago(86_400 * 30),
        updated_at: ago(86_400 * 30),
    }
}

/// `alice`, an owner.
pub fn owner() -> User {
    user(1, "alice", &[Role::Owner])
}

/// `bob`, a member.
pub fn member() -> User {
    user(2, "bob", &[Role::Member])
}

/// `carol`, on call.
pub fn oncall() -> User {
    user(3, "carol", &[Role::Oncall])
}

/// A console session for `user`.
pub fn session(user: User, read_only: bool) -> Session {
    Session {
        user,
        store_url: "sqlite:///srv/herald/herald.db".into(),
        read_only,
        embedded_dispatcher: true,
        default_method: Method::Smtp,
        fetch_interval: Duration::from_secs(15),
    }
}

/// The built-in catalog with fixed ids; `run_failure` goes by webhook.
pub fn catalog() -> Vec<EventTemplate> {
    herald::catalog::builtin()
        .iter()
        .enumerate()
        .map(|(i, spec)| EventTemplate {
            id: id(1000 + i as u128),
            method: (spec.name == "run_failure").then_some(Method::Webhook),
            spec: spec.clone(),
        })
        .collect()
}

/// One message; `n` orders them (higher is newer).
pub fn message(
    n: u128,
    event: &str,
    user: Option<&str>,
    method: Method,
    status: MessageState,
    reason: Option<&str>,
    age_secs: i64,
) -> Message {
    Message {
        id: id(10_000 + n),
        notification_template_id: id(1000),
        event: event.to_string(),
        user_id: user.map(|_| id(2)),
        username: user.map(str::to_string),
        target: None,
        method,
        status,
        status_reason: reason.map(str::to_string),
        created_by: "alice".into(),
        payload: serde_json::json!({"labels": {"name": "ws1"}, "data": {}}),
        attempt_count: i32::from(matches!(
            status,
            MessageState::PermanentFailure | MessageState::TemporaryFailure | MessageState::Sent
        )),
        created_at: ago(age_secs),
        updated_at: ago(age_secs),
        leased_until: (status == MessageState::Leased).then(|| ago(age_secs - 120)),
        next_retry_after: (status == MessageState::TemporaryFailure).then(|| ago(-240)),
        queued_seconds: None,
        dedupe_hash: None,
    }
}

/// A page of the queue, newest first, with one of every state, a stuck pending one and a
/// lease that expired.
pub fn page() -> Vec<Message> {
    use MessageState::*;
    vec![
        message(
            9,
            "run_failure",
            None,
            Method::Webhook,
            PermanentFailure,
            Some("webhook 503 after 1.2s"),
            30,
        ),
        message(
            8,
            "workspace_deleted",
            Some("bob"),
            Method::Smtp,
            TemporaryFailure,
            Some("smtp 421 4.7.0 try again later"),
            95,
        ),
        message(
            7,
            "workspace_deleted",
            Some("bob"),
            Method::Inbox,
            Sent,
            None,
            95,
        ),
        message(
            6,
            "apply_failure",
            Some("bob"),
            Method::Smtp,
            Pending,
            None,
            20,
        ),
        message(
            5,
            "audit_failure",
            Some("bob"),
            Method::Smtp,
            Pending,
            None,
            900,
        ),
        message(
            4,
            "run_start",
            Some("bob"),
            Method::Webhook,
            Leased,
            Some("leased by notifier 0193"),
            400,
        ),
        message(
            3,
            "user_account_created",
            Some("bob"),
            Method::Smtp,
            Inhibited,
            Some("disabled by user"),
            3600,
        ),
        message(
            2,
            "run_failure",
            Some("bob"),
            Method::Webhook,
            PermanentFailure,
            Some("webhook 404 not found"),
            7200,
        ),
    ]
}

/// The title a recipient of `m` sees, as the service renders it (fixed per event here; the
/// rendering itself is tested against the real catalog in `console_titles`).
pub fn title_of(m: &Message) -> String {
    match m.event.as_str() {
        "workspace_deleted" => "Workspace \"ws1\" deleted".into(),
        "run_failure" => "Run failed in ws1".into(),
        "run_start" => "Run started in ws1".into(),
        "apply_failure" => "Apply failed in ws1".into(),
        "audit_failure" => "Audit failed in ws1".into(),
        "user_account_created" => "Welcome to Herald".into(),
        other => format!("{other} happened"),
    }
}

/// `messages` with their titles, as the page read answers.
pub fn titled(messages: Vec<Message>) -> Vec<TitledMessage> {
    messages
        .into_iter()
        .map(|message| TitledMessage {
            title: title_of(&message),
            message,
        })
        .collect()
}

/// The detail of the first message of [`page`]: the row, its attempts, and what its
/// recipient gets.
pub fn detail() -> MessageDetail {
    let message = page()[0].clone();
    let rendered = Rendered::new(
        title_of(&message),
        "The run of **ws1** failed after 1.2s.\n\nOpen the run to see its log.".into(),
        vec![herald::model::Action::new(
            "View run",
            "https://herald.example/runs/7",
        )],
    );
    MessageDetail {
        message,
        attempts: attempts(),
        rendered: Ok(rendered),
    }
}

/// The attempts of the first message of [`page`].
pub fn attempts() -> Vec<Attempt> {
    vec![Attempt {
        message_id: id(10_009),
        attempt_number: 1,
        notifier_id: id(77),
        started_at: ago(31),
        duration_ms: 1200,
        outcome: MessageState::PermanentFailure,
        reason: Some("webhook 503 after 1.2s".into()),
    }]
}

/// Counts matching a busy queue.
pub fn counts() -> Vec<(MessageState, i64)> {
    use MessageState::*;
    vec![
        (Pending, 2),
        (Leased, 1),
        (Sent, 1234),
        (TemporaryFailure, 1),
        (PermanentFailure, 2),
        (Inhibited, 1),
    ]
}

fn throughput() -> Vec<(MessageState, i64)> {
    MessageState::ALL
        .iter()
        .map(|s| (*s, if *s == MessageState::Sent { 42 } else { 0 }))
        .collect()
}

/// Opt-out rows for the whole catalog; bob opted out of `workspace_deleted`.
pub fn optout_rows() -> Vec<OptOutRow> {
    catalog()
        .iter()
        .map(|e| {
            let opted_out = e.spec.name == "workspace_deleted";
            OptOutRow {
                event: e.spec.name.clone(),
                group: e.spec.group.clone(),
                enabled: !opted_out && e.spec.enabled_by_default,
                preference: opted_out.then_some(true),
                enabled_by_default: e.spec.enabled_by_default,
            }
        })
        .collect()
}

/// Two inbox entries, one unread.
pub fn inbox_entries(user: &User) -> Vec<InboxEntry> {
    vec![
        InboxEntry {
            id: id(500),
            user_id: user.id,
            template_id: id(1000),
            event: "workspace_deleted".into(),
            message_id: Some(id(10_007)),
            title: "Workspace \"ws1\" deleted".into(),
            content: "Hi BOB,\n\nYour workspace **ws1** was deleted.".into(),
            actions: vec![EventAction {
                label: "View workspaces".into(),
                url: "https://coder.example.com/workspaces".into(),
            }],
            read_at: None,
            created_at: ago(95),
        },
        InboxEntry {
            id: id(501),
            user_id: user.id,
            template_id: id(1001),
            event: "test_notification".into(),
            message_id: None,
            title: "A test notification".into(),
            content: "This is a test.".into(),
            actions: Vec::new(),
            read_at: Some(ago(3000)),
            created_at: ago(3600),
        },
    ]
}

fn logs() -> Vec<LogLine> {
    vec![
        LogLine {
            time: ago(50),
            level: tracing::Level::INFO,
            target: "herald::dispatch".into(),
            text: "notifications dispatcher started notifier_id=0193".into(),
        },
        LogLine {
            time: ago(30),
            level: tracing::Level::WARN,
            target: "herald::dispatch".into(),
            text: "notification delivery failed: webhook 503 after 1.2s method=webhook".into(),
        },
    ]
}

/// Channel health as an on-call engineer meets it: webhook fine, smtp slow, the `ops-alerts`
/// Slack target failing with a backlog, a user's own Slack DM quiet.
pub fn channel_rows() -> Vec<ChannelHealth> {
    let row = |method, target: Option<&str>| ChannelHealth {
        method,
        target: target.map(str::to_string),
        backlog: 0,
        sent: 0,
        temporary_failure: 0,
        permanent_failure: 0,
        p50_ms: None,
        p95_ms: None,
        last_error: None,
        last_error_at: None,
        paused: false,
    };
    vec![
        ChannelHealth {
            backlog: 3,
            sent: 1480,
            p50_ms: Some(42),
            p95_ms: Some(180),
            ..row(Method::Webhook, None)
        },
        ChannelHealth {
            backlog: 12,
            sent: 311,
            temporary_failure: 4,
            p50_ms: Some(850),
            p95_ms: Some(4200),
            last_error: Some("smtp 421 4.7.0 try again later".into()),
            last_error_at: Some(ago(95)),
            ..row(Method::Smtp, None)
        },
        ChannelHealth {
            sent: 96,
            p50_ms: Some(3),
            p95_ms: Some(9),
            ..row(Method::Inbox, None)
        },
        ChannelHealth {
            backlog: 240,
            temporary_failure: 57,
            permanent_failure: 6,
            p50_ms: Some(1200),
            p95_ms: Some(30_000),
            last_error: Some("slack 500 internal_error after 1.2s".into()),
            last_error_at: Some(ago(8)),
            ..row(Method::SlackWebhook, Some("ops-alerts"))
        },
        row(Method::SlackApi, Some("alice/dm")),
    ]
}

/// Feeds `action` to `state`, ignoring the effects.
pub fn feed(state: &mut AppState, action: Action) {
    let _ = update(state, action);
}

/// A console for `user` with every tab's data loaded through `update`, as the driver would
/// deliver it; `paused` sets the pause flag.
pub fn loaded(user: User, read_only: bool, paused: bool) -> AppState {
    let watcher = user.has_role(Role::Owner) || user.has_role(Role::Oncall);
    let inbox = inbox_entries(&user);
    let name = user.username.clone();
    let mut s = AppState::new(session(user, read_only), now());
    feed(&mut s, Action::SettingsLoaded(Ok(paused)));
    feed(&mut s, Action::PausesLoaded(Ok(Vec::new())));
    feed(
        &mut s,
        Action::DispatcherChanged(if paused {
            DispatcherState::Paused
        } else {
            DispatcherState::Running
        }),
    );
    feed(&mut s, Action::EventsLoaded(Ok(catalog())));
    feed(&mut s, Action::OptOutsLoaded(Ok((name, optout_rows()))));
    feed(&mut s, Action::InboxLoaded(Ok(inbox)));
    let seq = s.queue.seq;
    let mine: Vec<Message> = page()
        .into_iter()
        .filter(|m| watcher || m.username.as_deref() == Some("bob"))
        .collect();
    feed(
        &mut s,
        Action::PageLoaded {
            seq,
            result: Ok(titled(mine)),
        },
    );
    feed(&mut s, Action::LogsAppended(logs()));
    if watcher {
        feed(
            &mut s,
            Action::VolumesLoaded(Ok(vec![
                ("run_failure".into(), 1200),
                ("workspace_deleted".into(), 37),
            ])),
        );
        feed(&mut s, Action::CountsLoaded(Ok(counts())));
        feed(&mut s, Action::ChannelsLoaded(Ok(channel_rows())));
        feed(&mut s, Action::ThroughputLoaded(Ok(throughput())));
        feed(
            &mut s,
            Action::ReasonsLoaded(Ok(vec![
                ReasonCount {
                    status: MessageState::PermanentFailure,
                    reason: "webhook 503 after 1.2s".into(),
                    count: 120,
                },
                ReasonCount {
                    status: MessageState::TemporaryFailure,
                    reason: "smtp 421 4.7.0 try again later".into(),
                    count: 7,
                },
                ReasonCount {
                    status: MessageState::PermanentFailure,
                    reason: "webhook 404 not found".into(),
                    count: 1,
                },
            ])),
        );
        feed(
            &mut s,
            Action::ReplicasLoaded(Ok(vec![Replica {
                id: id(77),
                hostname: "herald-1".into(),
                pid: 4242,
                started_at: ago(3600),
                last_seen_at: ago(2),
                in_flight: 3,
                capabilities: Default::default(),
            }])),
        );
        feed(
            &mut s,
            Action::DoctorFinished(Ok(vec![
                CheckResult::pass(
                    "store sqlite:///srv/herald/herald.db",
                    "sqlite store reachable and migrated",
                ),
                CheckResult::fail(
                    "default method smtp",
                    "email.smarthost is not set: users receive inbox copies only",
                ),
            ])),
        );
    }
    s.notice = None;
    s
}

/// [`loaded`], on `tab`.
pub fn on_tab(user: User, paused: bool, tab: Tab) -> AppState {
    let mut s = loaded(user, false, paused);
    s.tab = tab;
    s
}
