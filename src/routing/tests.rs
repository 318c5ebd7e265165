use super::*;
use crate::model::{Action, EventKind, EventSpec, Role, TargetType, UserStatus};
use chrono::{TimeZone, Utc};

// ----- fixtures -----

fn user(n: u128, username: &str) -> User {
    let at = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    User {
        id: Uuid::from_u128(n),
        username: username.to_string(),
        email: format!("{username}@example.com"),
        name: username.to_uppercase(),
        roles: vec![Role::Member],
        status: UserStatus::Active,
        created_at: at,
        updated_at: at,
    }
}

fn alice() -> User {
    user(1, "alice")
}
fn bob() -> User {
    user(2, "bob")
}
fn carol() -> User {
    user(3, "carol")
}

fn suspended(mut u: User) -> User {
    u.status = UserStatus::Suspended;
    u
}

fn event(name: &str) -> EventTemplate {
    EventTemplate {
        id: Uuid::from_u128(0xE0),
        spec: EventSpec {
            name: name.to_string(),
            group: "Workspace Events".to_string(),
            title_template: "Workspace {{labels.name}} deleted".to_string(),
            body_template: "Your workspace was deleted.".to_string(),
            actions: vec![Action::new("View workspaces", "{{base_url}}/workspaces")],
            audience_roles: vec![],
            enabled_by_default: true,
            kind: EventKind::System,
            inbox: true,
            reaches_suspended: false,
            labels: vec![],
        },
        method: None,
    }
}

fn target(name: &str, kind: TargetType, notify_on: &[&str], owner: Option<&str>) -> TargetRef {
    TargetRef {
        name: name.to_string(),
        target_type: kind,
        notify_on: notify_on.iter().map(|s| s.to_string()).collect(),
        owner: owner.map(str::to_string),
    }
}

fn pref(u: &User, disabled: bool) -> Preference {
    Preference {
        user_id: u.id,
        template_id: event("any").id,
        disabled,
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 5, d).unwrap()
}

/// Owns every input of an [`EnqueueRequest`]; defaults: smtp default, inbox on, smtp and
/// webhook configured, dedupe on.
struct Case {
    event: EventTemplate,
    explicit: Vec<User>,
    audience: Vec<User>,
    actor: Option<User>,
    audit_owner: Option<User>,
    bystanders: Vec<User>,
    labels: BTreeMap<String, String>,
    data: Value,
    targets: Vec<TargetRef>,
    preferences: Vec<Preference>,
    settings: RoutingSettings,
    dedupe: bool,
    day: NaiveDate,
}

impl Case {
    fn new(event_name: &str) -> Self {
        Case {
            event: event(event_name),
            explicit: vec![],
            audience: vec![],
            actor: None,
            audit_owner: None,
            bystanders: vec![],
            labels: BTreeMap::new(),
            data: json!({"k": "v"}),
            targets: vec![],
            preferences: vec![],
            settings: RoutingSettings {
                default_method: Method::Smtp,
                inbox_enabled: true,
                configured: vec![Method::Smtp, Method::Webhook],
            },
            dedupe: true,
            day: day(1),
        }
    }

    fn explicit(mut self, users: Vec<User>) -> Self {
        self.explicit = users;
        self
    }
    fn audience(mut self, users: Vec<User>) -> Self {
        self.audience = users;
        self
    }
    fn event_with(mut self, f: impl FnOnce(&mut EventTemplate)) -> Self {
        f(&mut self.event);
        self
    }
    fn settings_with(mut self, f: impl FnOnce(&mut RoutingSettings)) -> Self {
        f(&mut self.settings);
        self
    }
    fn preferences(mut self, prefs: Vec<Preference>) -> Self {
        self.preferences = prefs;
        self
    }
    fn targets(mut self, targets: Vec<TargetRef>) -> Self {
        self.targets = targets;
        self
    }
    fn actor(mut self, u: User) -> Self {
        self.actor = Some(u);
        self
    }
    fn audit_owner(mut self, u: User) -> Self {
        self.audit_owner = Some(u);
        self
    }
    fn labels(mut self, pairs: &[(&str, &str)]) -> Self {
        self.labels = labels(pairs);
        self
    }

    fn plan(&self) -> Plan {
        plan(&EnqueueRequest {
            event: &self.event,
            explicit: &self.explicit,
            audience: &self.audience,
            actor: self.actor.as_ref(),
            audit_owner: self.audit_owner.as_ref(),
            bystanders: &self.bystanders,
            labels: &self.labels,
            data: &self.data,
            targets: &self.targets,
            preferences: &self.preferences,
            settings: &self.settings,
            dedupe: self.dedupe,
            day: self.day,
        })
    }

    /// The plan as one line per message: `who method status[: reason]`.
    fn summary(&self) -> Vec<String> {
        let known: Vec<&User> = self
            .explicit
            .iter()
            .chain(&self.audience)
            .chain(&self.actor)
            .chain(&self.audit_owner)
            .collect();
        let name_of = |id: Option<Uuid>| {
            id.map(|id| {
                known
                    .iter()
                    .find(|u| u.id == id)
                    .map(|u| u.username.clone())
                    .unwrap_or_else(|| id.to_string())
            })
        };
        self.plan()
            .messages
            .iter()
            .map(|m| {
                let who = match (&m.target, name_of(m.user_id)) {
                    (Some(t), Some(owner)) => format!("target {t} ({owner})"),
                    (Some(t), None) => format!("target {t}"),
                    (None, Some(u)) => u,
                    (None, None) => "nobody".to_string(),
                };
                let reason = m
                    .status_reason
                    .as_ref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default();
                format!("{who} {} {}{reason}", m.method, m.status)
            })
            .collect()
    }
}

fn check_table(cases: Vec<(&str, Case, &[&str])>) {
    for (what, case, expected) in cases {
        assert_eq!(case.summary(), expected, "case: {what}");
    }
}

// ----- user recipients -----

#[test]
fn user_recipients_are_explicit_users_then_audience_each_once() {
    check_table(vec![
        (
            "explicit users only",
            Case::new("workspace_deleted").explicit(vec![alice(), bob()]),
            &[
                "alice smtp pending",
                "alice inbox pending",
                "bob smtp pending",
                "bob inbox pending",
            ],
        ),
        (
            "audience role holders only",
            Case::new("user_account_created").audience(vec![carol()]),
            &["carol smtp pending", "carol inbox pending"],
        ),
        (
            "explicit union audience, a user in both counted once, explicit first",
            Case::new("user_account_created")
                .explicit(vec![bob()])
                .audience(vec![alice(), bob()]),
            &[
                "bob smtp pending",
                "bob inbox pending",
                "alice smtp pending",
                "alice inbox pending",
            ],
        ),
        (
            "a user named twice with --user counted once",
            Case::new("workspace_deleted").explicit(vec![alice(), alice()]),
            &["alice smtp pending", "alice inbox pending"],
        ),
        (
            "no users and no targets: nothing",
            Case::new("workspace_deleted"),
            &[],
        ),
    ]);
}

#[test]
fn suspended_explicit_user_is_inhibited_unless_the_event_reaches_suspended_users() {
    check_table(vec![
        (
            "normal event",
            Case::new("workspace_deleted").explicit(vec![suspended(alice())]),
            &[
                "alice smtp inhibited: user is suspended",
                "alice inbox inhibited: user is suspended",
            ],
        ),
        (
            "account event that reaches suspended users",
            Case::new("user_account_suspended")
                .explicit(vec![suspended(alice())])
                .event_with(|e| e.spec.reaches_suspended = true),
            &["alice smtp pending", "alice inbox pending"],
        ),
        (
            "suspended audience member is not in the audience",
            Case::new("user_account_created").audience(vec![suspended(bob()), carol()]),
            &["carol smtp pending", "carol inbox pending"],
        ),
    ]);
}

// ----- methods -----

#[test]
fn each_user_gets_the_event_or_default_method_plus_an_inbox_copy() {
    check_table(vec![
        (
            "default method smtp, inbox copy",
            Case::new("workspace_deleted").explicit(vec![alice()]),
            &["alice smtp pending", "alice inbox pending"],
        ),
        (
            "default method webhook",
            Case::new("workspace_deleted")
                .explicit(vec![alice()])
                .settings_with(|s| s.default_method = Method::Webhook),
            &["alice webhook pending", "alice inbox pending"],
        ),
        (
            "per-event method overrides the default",
            Case::new("workspace_deleted")
                .explicit(vec![alice()])
                .event_with(|e| e.method = Some(Method::Webhook)),
            &["alice webhook pending", "alice inbox pending"],
        ),
        (
            "no inbox copy when inbox is disabled",
            Case::new("workspace_deleted")
                .explicit(vec![alice()])
                .settings_with(|s| s.inbox_enabled = false),
            &["alice smtp pending"],
        ),
        (
            "no inbox copy for the one-time passcode",
            Case::new("user_request_one_time_passcode")
                .explicit(vec![alice()])
                .event_with(|e| e.spec.inbox = false),
            &["alice smtp pending"],
        ),
        (
            "no second inbox message when the per-event method is inbox",
            Case::new("workspace_deleted")
                .explicit(vec![alice()])
                .event_with(|e| e.method = Some(Method::Inbox)),
            &["alice inbox pending"],
        ),
    ]);
}

#[test]
fn unconfigured_method_is_not_enqueued_and_warned_about_once_per_method() {
    let cases: Vec<(&str, Case, &[&str], &[&str])> = vec![
        (
            "smtp without email.smarthost",
            Case::new("workspace_deleted")
                .explicit(vec![alice(), bob()])
                .settings_with(|s| s.configured = vec![Method::Webhook]),
            &["alice inbox pending", "bob inbox pending"],
            &["smtp is not configured (email.smarthost is not set): 2 messages not enqueued"],
        ),
        (
            "webhook without endpoint, one message",
            Case::new("workspace_deleted")
                .explicit(vec![alice()])
                .event_with(|e| e.method = Some(Method::Webhook))
                .settings_with(|s| s.configured = vec![Method::Smtp]),
            &["alice inbox pending"],
            &[
                "webhook is not configured (notifications.webhook.endpoint is not set): \
                 1 message not enqueued",
            ],
        ),
        (
            "slack for users has no target",
            Case::new("workspace_deleted")
                .explicit(vec![alice()])
                .event_with(|e| e.method = Some(Method::SlackApi)),
            &["alice inbox pending"],
            &[
                "slack_api is not configured (no target: Slack reaches people only \
                 through [[targets]]): 1 message not enqueued",
            ],
        ),
        (
            "inbox needs no configuration",
            Case::new("workspace_deleted")
                .explicit(vec![alice()])
                .event_with(|e| e.method = Some(Method::Inbox))
                .settings_with(|s| s.configured = vec![]),
            &["alice inbox pending"],
            &[],
        ),
        (
            "skipped opt-out rows are counted too",
            Case::new("workspace_deleted")
                .explicit(vec![alice()])
                .preferences(vec![pref(&alice(), true)])
                .settings_with(|s| s.configured = vec![]),
            &["alice inbox inhibited: disabled by user"],
            &["smtp is not configured (email.smarthost is not set): 1 message not enqueued"],
        ),
    ];
    for (what, case, messages, warnings) in cases {
        assert_eq!(case.summary(), messages, "case: {what}");
        assert_eq!(case.plan().warnings, warnings, "case: {what}");
    }
}

// ----- opt-outs -----

#[test]
fn opt_outs_and_events_disabled_by_default_give_inhibited_rows() {
    let off_by_default = |e: &mut EventTemplate| e.spec.enabled_by_default = false;
    check_table(vec![
        (
            "user opted out",
            Case::new("workspace_deleted")
                .explicit(vec![alice(), bob()])
                .preferences(vec![pref(&alice(), true)]),
            &[
                "alice smtp inhibited: disabled by user",
                "alice inbox inhibited: disabled by user",
                "bob smtp pending",
                "bob inbox pending",
            ],
        ),
        (
            "event disabled by default, no preference",
            Case::new("template_weekly_report")
                .explicit(vec![alice()])
                .event_with(off_by_default),
            &[
                "alice smtp inhibited: disabled by user",
                "alice inbox inhibited: disabled by user",
            ],
        ),
        (
            "event disabled by default, user opted in",
            Case::new("template_weekly_report")
                .explicit(vec![alice()])
                .event_with(off_by_default)
                .preferences(vec![pref(&alice(), false)]),
            &["alice smtp pending", "alice inbox pending"],
        ),
        (
            "a preference for another event does not apply",
            Case::new("workspace_deleted")
                .explicit(vec![alice()])
                .preferences(vec![Preference {
                    template_id: Uuid::from_u128(0xE1),
                    ..pref(&alice(), true)
                }]),
            &["alice smtp pending", "alice inbox pending"],
        ),
        (
            "suspension is reported before the opt-out",
            Case::new("workspace_deleted")
                .explicit(vec![suspended(alice())])
                .preferences(vec![pref(&alice(), true)]),
            &[
                "alice smtp inhibited: user is suspended",
                "alice inbox inhibited: user is suspended",
            ],
        ),
    ]);
}

// ----- targets -----

fn sqlmesh_targets() -> Vec<TargetRef> {
    vec![
        target(
            "team-slack",
            TargetType::SlackWebhook,
            &["apply_start", "run_start"],
            None,
        ),
        target("team-mail", TargetType::Smtp, &["run_failure"], None),
        target(
            "alice-dm",
            TargetType::SlackApi,
            &["apply_start", "audit_failure"],
            Some("alice"),
        ),
        target(
            "bob-dm",
            TargetType::SlackApi,
            &["apply_start", "audit_failure"],
            Some("bob"),
        ),
        target("bob-hook", TargetType::Webhook, &["run_start"], Some("bob")),
    ]
}

#[test]
fn targets_follow_the_sqlmesh_actor_rule() {
    let prod_audit = [("environment", "prod"), ("owner", "bob")];
    check_table(vec![
        (
            "without an actor: global targets that hold the event",
            Case::new("apply_start").targets(sqlmesh_targets()),
            &["target team-slack slack_webhook pending"],
        ),
        (
            "without an actor: another event, another global target",
            Case::new("run_failure").targets(sqlmesh_targets()),
            &["target team-mail smtp pending"],
        ),
        (
            "with an actor: only the actor's targets, global ones ignored",
            Case::new("apply_start")
                .targets(sqlmesh_targets())
                .actor(alice()),
            &["target alice/alice-dm (alice) slack_api pending"],
        ),
        (
            "with an actor who has no target for the event: nothing",
            Case::new("run_failure")
                .targets(sqlmesh_targets())
                .actor(alice()),
            &[],
        ),
        (
            "audit_failure in prod: also the owner's targets",
            Case::new("audit_failure")
                .targets(sqlmesh_targets())
                .actor(alice())
                .labels(&prod_audit)
                .audit_owner(bob()),
            &[
                "target alice/alice-dm (alice) slack_api pending",
                "target bob/bob-dm (bob) slack_api pending",
            ],
        ),
        (
            "audit_failure in prod without an actor: the owner's targets",
            Case::new("audit_failure")
                .targets(sqlmesh_targets())
                .labels(&prod_audit)
                .audit_owner(bob()),
            &["target bob/bob-dm (bob) slack_api pending"],
        ),
        (
            "audit_failure outside prod: not the owner's targets",
            Case::new("audit_failure")
                .targets(sqlmesh_targets())
                .actor(alice())
                .labels(&[("environment", "dev"), ("owner", "bob")])
                .audit_owner(bob()),
            &["target alice/alice-dm (alice) slack_api pending"],
        ),
        (
            "audit_failure in prod with an owner the caller could not resolve",
            Case::new("audit_failure")
                .targets(sqlmesh_targets())
                .actor(alice())
                .labels(&prod_audit),
            &["target alice/alice-dm (alice) slack_api pending"],
        ),
        (
            "audit_failure in prod, owner is the actor: each target once",
            Case::new("audit_failure")
                .targets(sqlmesh_targets())
                .actor(bob())
                .labels(&prod_audit)
                .audit_owner(bob()),
            &["target bob/bob-dm (bob) slack_api pending"],
        ),
        (
            "the owner exception is only for audit_failure",
            Case::new("apply_start")
                .targets(sqlmesh_targets())
                .actor(alice())
                .labels(&prod_audit)
                .audit_owner(bob()),
            &["target alice/alice-dm (alice) slack_api pending"],
        ),
    ]);
}

#[test]
fn targets_ignore_preferences_and_configured_methods() {
    let case = Case::new("run_failure")
        .targets(sqlmesh_targets())
        .event_with(|e| e.spec.enabled_by_default = false)
        .settings_with(|s| s.configured = vec![]);
    assert_eq!(case.summary(), ["target team-mail smtp pending"]);
    assert!(case.plan().warnings.is_empty());
}

#[test]
fn users_and_targets_are_both_notified_users_first() {
    let case = Case::new("apply_start")
        .explicit(vec![carol()])
        .targets(sqlmesh_targets());
    assert_eq!(
        case.summary(),
        [
            "carol smtp pending",
            "carol inbox pending",
            "target team-slack slack_webhook pending",
        ]
    );
}

#[test]
fn a_target_declared_twice_is_notified_once_with_a_warning() {
    let twice = target("team-slack", TargetType::SlackWebhook, &["run_start"], None);
    let case = Case::new("run_start").targets(vec![twice.clone(), twice]);
    let plan = case.plan();
    assert_eq!(plan.messages.len(), 1);
    assert_eq!(
        plan.warnings,
        ["target `team-slack` is declared more than once; notified once"]
    );
}

// ----- payload -----

#[test]
fn user_payload_follows_the_coder_webhook_schema() {
    let case = Case::new("workspace_deleted")
        .explicit(vec![alice()])
        .labels(&[("name", "ws1")]);
    let plan = case.plan();
    assert_eq!(
        plan.messages[0].payload,
        json!({
            "_version": "1.2",
            "notification_name": "workspace_deleted",
            "notification_template_id": "00000000-0000-0000-0000-0000000000e0",
            "user_id": "00000000-0000-0000-0000-000000000001",
            "user_email": "alice@example.com",
            "user_name": "ALICE",
            "user_username": "alice",
            "actions": [{"label": "View workspaces", "url": "{{base_url}}/workspaces"}],
            "labels": {"name": "ws1"},
            "data": {"k": "v"},
            "targets": [],
        })
    );
    // The inbox copy carries the same payload.
    assert_eq!(plan.messages[1].payload, plan.messages[0].payload);
}

#[test]
fn target_payload_has_empty_user_fields_and_names_the_target() {
    let case = Case::new("apply_start")
        .targets(sqlmesh_targets())
        .actor(alice());
    let message = &case.plan().messages[0];
    assert_eq!(message.user_id, Some(alice().id));
    assert_eq!(message.target.as_deref(), Some("alice/alice-dm"));
    let p = &message.payload;
    for field in ["user_id", "user_email", "user_name", "user_username"] {
        assert_eq!(p[field], "", "{field}");
    }
    assert_eq!(p["targets"], json!(["alice/alice-dm"]));
    assert_eq!(p["notification_name"], "apply_start");
}

#[test]
fn null_data_becomes_an_empty_object() {
    let payload = build_payload(&event("e"), None, &BTreeMap::new(), &Value::Null, &[]);
    assert_eq!(payload["data"], json!({}));
}

// ----- dedupe -----

/// The dedupe hash of event id `0xE0 + event` for user id `user`.
fn hash(
    event: u128,
    user: u128,
    target: Option<&str>,
    method: Method,
    payload: &Value,
    on: NaiveDate,
) -> String {
    dedupe_hash(
        Uuid::from_u128(0xE0 + event),
        Some(Uuid::from_u128(user)),
        target,
        method,
        payload,
        on,
    )
}

/// The hash of event `0xE0` for user 1, to no target.
fn hash_of(method: Method, payload: &Value, on: NaiveDate) -> String {
    hash(0, 1, None, method, payload, on)
}

#[test]
fn dedupe_hash_is_stable_for_identical_input() {
    let payload = json!({"b": 1, "a": [1, 2]});
    let first = hash_of(Method::Smtp, &payload, day(1));
    assert_eq!(first, hash_of(Method::Smtp, &payload, day(1)));
    assert_eq!(first.len(), 64);
    assert!(first.chars().all(|c| c.is_ascii_hexdigit()));
    // Keys are sorted, so the order they were written in does not matter.
    let reordered: Value = serde_json::from_str(r#"{"a":[1,2],"b":1}"#).unwrap();
    assert_eq!(first, hash_of(Method::Smtp, &reordered, day(1)));
}

#[test]
fn dedupe_hash_differs_when_any_field_differs() {
    let payload = json!({"a": 1});
    let base = hash_of(Method::Smtp, &payload, day(1));
    let smtp = Method::Smtp;
    let variants = [
        ("another day", hash_of(smtp, &payload, day(2))),
        ("another method", hash_of(Method::Inbox, &payload, day(1))),
        ("another payload", hash_of(smtp, &json!({"a": 2}), day(1))),
        ("another user", hash(0, 2, None, smtp, &payload, day(1))),
        ("a target", hash(0, 1, Some("t"), smtp, &payload, day(1))),
        ("another event", hash(1, 1, None, smtp, &payload, day(1))),
    ];
    for (what, hash) in variants {
        assert_ne!(hash, base, "{what}");
    }
}

#[test]
fn planned_messages_carry_the_dedupe_hash_of_their_fields() {
    let mut case = Case::new("apply_start")
        .explicit(vec![alice()])
        .audience(vec![alice(), bob()])
        .targets(sqlmesh_targets());
    let plan = case.plan();
    assert_eq!(plan.messages.len(), 5);
    for m in &plan.messages {
        let expected = dedupe_hash(
            case.event.id,
            m.user_id,
            m.target.as_deref(),
            m.method,
            &m.payload,
            case.day,
        );
        assert_eq!(m.dedupe_hash.as_deref(), Some(expected.as_str()));
    }
    let unique: HashSet<_> = plan.messages.iter().map(|m| &m.dedupe_hash).collect();
    assert_eq!(unique.len(), plan.messages.len(), "no two share a hash");

    // The same enqueue the same day plans the same hashes; the next day, new ones.
    assert_eq!(case.plan(), plan);
    case.day = day(2);
    assert_ne!(
        case.plan().messages[0].dedupe_hash,
        plan.messages[0].dedupe_hash
    );
}

#[test]
fn test_notifications_have_no_dedupe_hash() {
    let mut case = Case::new("test_notification")
        .explicit(vec![alice()])
        .targets(vec![target(
            "t",
            TargetType::Webhook,
            &["test_notification"],
            None,
        )]);
    case.dedupe = false;
    let plan = case.plan();
    assert_eq!(plan.messages.len(), 3);
    assert!(plan.messages.iter().all(|m| m.dedupe_hash.is_none()));
}

// ----- labels -----

#[test]
fn parse_label_accepts_key_equals_value_and_refuses_the_rest() {
    type Parsed = Result<(String, String), LabelError>;
    let ok = |k: &str, v: &str| Ok((k.to_string(), v.to_string()));
    let cases: Vec<(&str, Parsed)> = vec![
        ("name=ws1", ok("name", "ws1")),
        ("a=b=c", ok("a", "b=c")),
        ("empty=", ok("empty", "")),
        ("k.e_y-1=some value", ok("k.e_y-1", "some value")),
        (
            "noequals",
            Err(LabelError::MissingEquals("noequals".to_string())),
        ),
        ("=v", Err(LabelError::EmptyKey("=v".to_string()))),
        (
            "bad key=v",
            Err(LabelError::InvalidKey {
                label: "bad key=v".to_string(),
                key: "bad key".to_string(),
            }),
        ),
        (
            "naïve=v",
            Err(LabelError::InvalidKey {
                label: "naïve=v".to_string(),
                key: "naïve".to_string(),
            }),
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(parse_label(input), expected, "input: {input}");
    }
}

#[test]
fn label_errors_say_what_is_wrong_and_show_the_expected_form() {
    let cases = [
        (
            "noequals",
            "label `noequals` has no `=`; expected KEY=VALUE, e.g. `--label name=ws1`",
        ),
        (
            "=v",
            "label `=v` has an empty key; expected KEY=VALUE, e.g. `--label name=ws1`",
        ),
        (
            "bad key=v",
            "label key `bad key` (in `bad key=v`) may hold only letters, digits, `_`, `.` \
             and `-`; expected KEY=VALUE, e.g. `--label name=ws1`",
        ),
    ];
    for (input, message) in cases {
        let err = parse_label(input).unwrap_err();
        assert_eq!(err.to_string(), message, "input: {input}");
    }
}

#[test]
fn parse_labels_collects_labels_and_refuses_a_duplicate_key() {
    let items = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        parse_labels(&items(&["name=ws1", "environment=prod"])),
        Ok(labels(&[("name", "ws1"), ("environment", "prod")]))
    );
    assert_eq!(parse_labels(&[]), Ok(BTreeMap::new()));
    let err = parse_labels(&items(&["name=a", "name=b"])).unwrap_err();
    assert_eq!(
        err,
        LabelError::DuplicateKey {
            key: "name".to_string(),
            first: "name=a".to_string(),
            second: "name=b".to_string(),
        }
    );
    assert_eq!(
        err.to_string(),
        "label `name` is given twice (`name=a` and `name=b`); give each key once"
    );
    assert!(matches!(
        parse_labels(&items(&["ok=1", "broken"])),
        Err(LabelError::MissingEquals(_))
    ));
}

// ----- decisions (what `herald explain` shows) -----

impl Case {
    fn bystanders(mut self, users: Vec<User>) -> Self {
        self.bystanders = users;
        self
    }

    /// The decisions as one line each: `who method outcome[: reason]`.
    fn decisions(&self) -> Vec<String> {
        self.plan()
            .decisions
            .iter()
            .map(|d| {
                let who = match (&d.target, &d.user) {
                    (Some(t), _) => format!("target {t}"),
                    (None, Some(u)) => u.clone(),
                    (None, None) => "nobody".to_string(),
                };
                let method = d.method.map_or("-".to_string(), |m| m.to_string());
                let reason = d
                    .reason
                    .as_ref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default();
                format!("{who} {method} {}{reason}", d.outcome)
            })
            .collect()
    }
}

fn admin(mut u: User) -> User {
    u.roles = vec![Role::UserAdmin];
    u
}

#[test]
fn every_planned_message_has_a_decision_naming_it() {
    let case = Case::new("workspace_deleted")
        .explicit(vec![alice(), bob()])
        .preferences(vec![pref(&bob(), true)])
        .targets(vec![target(
            "ops",
            TargetType::SlackWebhook,
            &["workspace_deleted"],
            None,
        )]);
    let plan = case.plan();
    let written: Vec<usize> = plan.decisions.iter().filter_map(|d| d.message).collect();
    assert_eq!(written, (0..plan.messages.len()).collect::<Vec<_>>());
    for d in &plan.decisions {
        let m = &plan.messages[d.message.unwrap()];
        assert_eq!(Some(m.method), d.method);
        assert_eq!(m.target, d.target);
        let inhibited = m.status == MessageState::Inhibited;
        assert_eq!(inhibited, d.outcome == Outcome::Inhibited, "{d:?}");
        assert_eq!(m.status_reason, d.reason);
    }
}

#[test]
fn decisions_give_every_candidate_its_outcome_and_reason() {
    let event_has_audience = |e: &mut EventTemplate| e.spec.audience_roles = vec![Role::UserAdmin];
    let cases: Vec<(&str, Case, &[&str])> = vec![
        (
            "queued by the event's method and the inbox",
            Case::new("workspace_deleted")
                .explicit(vec![alice()])
                .settings_with(|s| s.default_method = Method::Webhook),
            &["alice webhook queued", "alice inbox queued"],
        ),
        (
            "inhibited: opted out",
            Case::new("workspace_deleted")
                .explicit(vec![bob()])
                .preferences(vec![pref(&bob(), true)]),
            &[
                "bob smtp inhibited: disabled by user",
                "bob inbox inhibited: disabled by user",
            ],
        ),
        (
            "inhibited: off by default and not enabled",
            Case::new("workspace_deleted")
                .explicit(vec![bob()])
                .event_with(|e| e.spec.enabled_by_default = false),
            &[
                "bob smtp inhibited: disabled by user",
                "bob inbox inhibited: disabled by user",
            ],
        ),
        (
            "inhibited: an explicit user who is suspended",
            Case::new("workspace_deleted").explicit(vec![suspended(alice())]),
            &[
                "alice smtp inhibited: user is suspended",
                "alice inbox inhibited: user is suspended",
            ],
        ),
        (
            "skipped: method not configured",
            Case::new("workspace_deleted")
                .explicit(vec![alice()])
                .settings_with(|s| s.configured = vec![Method::Webhook]),
            &[
                "alice smtp skipped: method not configured: email.smarthost is not set",
                "alice inbox queued",
            ],
        ),
        (
            "skipped: not in audience, the event has none",
            Case::new("workspace_deleted")
                .explicit(vec![alice()])
                .bystanders(vec![alice(), carol()]),
            &[
                "alice smtp queued",
                "alice inbox queued",
                "carol - skipped: not in audience: workspace_deleted has no audience roles, \
                 only users named with --user receive it",
            ],
        ),
        (
            "skipped: not in audience, holds none of its roles",
            Case::new("user_account_created")
                .event_with(event_has_audience)
                .audience(vec![admin(alice())])
                .bystanders(vec![admin(alice()), carol()]),
            &[
                "alice smtp queued",
                "alice inbox queued",
                "carol - skipped: not in audience: user_account_created reaches user-admin, \
                 and the user holds none of them",
            ],
        ),
        (
            "skipped: a suspended holder of an audience role",
            Case::new("user_account_created")
                .event_with(event_has_audience)
                .bystanders(vec![suspended(admin(bob()))]),
            &[
                "bob - skipped: user suspended: holds the audience role user-admin but \
               suspended users are not in the audience",
            ],
        ),
    ];
    for (what, case, expected) in cases {
        assert_eq!(case.decisions(), expected, "case: {what}");
    }
}

#[test]
fn decisions_say_why_each_target_is_left_out() {
    let cases: Vec<(&str, Case, &[&str])> = vec![
        (
            "without an actor",
            Case::new("apply_start").targets(sqlmesh_targets()),
            &[
                "target team-slack slack_webhook queued",
                "target team-mail smtp skipped: not subscribed: its notify_on does not list \
                 apply_start",
                "target alice/alice-dm slack_api skipped: owned by `alice`: a user's targets \
                 are notified only with --actor alice",
                "target bob/bob-dm slack_api skipped: owned by `bob`: a user's targets are \
                 notified only with --actor bob",
                "target bob/bob-hook webhook skipped: not subscribed: its notify_on does not \
                 list apply_start",
            ],
        ),
        (
            "with an actor",
            Case::new("apply_start")
                .targets(sqlmesh_targets())
                .actor(alice()),
            &[
                "target team-slack slack_webhook skipped: global target: with the actor \
                 `alice` only the actor's own targets are notified",
                "target team-mail smtp skipped: not subscribed: its notify_on does not list \
                 apply_start",
                "target alice/alice-dm slack_api queued",
                "target bob/bob-dm slack_api skipped: owned by `bob`, not by the actor \
                 `alice`; a user's targets hear only of events they act in",
                "target bob/bob-hook webhook skipped: not subscribed: its notify_on does not \
                 list apply_start",
            ],
        ),
        (
            "declared twice",
            Case::new("run_failure").targets(vec![
                target("team-mail", TargetType::Smtp, &["run_failure"], None),
                target("team-mail", TargetType::Smtp, &["run_failure"], None),
            ]),
            &[
                "target team-mail smtp queued",
                "target team-mail smtp skipped: declared more than once: notified once, by its \
                 first declaration",
            ],
        ),
    ];
    for (what, case, expected) in cases {
        assert_eq!(case.decisions(), expected, "case: {what}");
    }
}
