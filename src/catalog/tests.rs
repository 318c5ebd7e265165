use std::collections::BTreeMap;

use super::*;

/// The Coder events DESIGN §3 requires, by the name producers use.
const CODER: &[&str] = &[
    // workspace events
    "workspace_created",
    "workspace_deleted",
    "workspace_autobuild_failed",
    "workspace_manual_build_failed",
    "workspace_manually_updated",
    "workspace_autoupdated",
    "workspace_marked_dormant",
    "workspace_marked_for_deletion",
    "workspace_out_of_memory",
    "workspace_out_of_disk",
    // task events
    "task_idle",
    "task_working",
    // template events
    "template_deleted",
    "template_deprecated",
    "template_workspace_builds_failed_report",
    // user events, to admins
    "user_account_created",
    "user_account_deleted",
    "user_account_suspended",
    "user_account_activated",
    // user events, to the user
    "your_account_suspended",
    "your_account_activated",
    "user_password_reset",
    // notification events
    "test_notification",
    "custom_notification",
];

/// The SQLMesh events DESIGN §3 requires.
const SQLMESH: &[&str] = &[
    "apply_start",
    "apply_end",
    "apply_failure",
    "run_start",
    "run_end",
    "run_failure",
    "audit_failure",
    "migration_start",
    "migration_end",
    "migration_failure",
];

/// Every event DESIGN §3 requires: both seeds.
fn required() -> impl Iterator<Item = &'static str> {
    CODER.iter().chain(SQLMESH).copied()
}

fn event(name: &str) -> &'static EventSpec {
    builtin()
        .iter()
        .find(|event| event.name == name)
        .unwrap_or_else(|| panic!("no built-in event `{name}`"))
}

/// A minimal valid event, with `extra` lines appended to its table.
fn one_event(name: &str, extra: &str) -> String {
    format!(
        "[[events]]\nname = \"{name}\"\ngroup = \"G\"\ntitle = \"T\"\nbody = \"B\"\naudience = []\n{extra}"
    )
}

/// A well-formed event, then the event `name` without its line `line`.
fn second_event_without(name: &str, line: &str) -> String {
    let second = one_event(name, "").replace(line, "");
    format!("{}\n{second}", one_event("first", ""))
}

#[test]
fn catalog_holds_every_event_of_both_seeds() {
    let mut missing = Vec::new();
    for name in required() {
        if !builtin().iter().any(|event| event.name == name) {
            missing.push(name);
        }
    }
    assert!(missing.is_empty(), "missing events: {missing:?}");
    let extra: Vec<&str> = builtin()
        .iter()
        .map(|event| event.name.as_str())
        .filter(|name| !required().any(|required| required == *name))
        .collect();
    assert!(extra.is_empty(), "events no seed asks for: {extra:?}");
}

#[test]
fn names_are_unique_snake_case() {
    let mut seen = std::collections::HashSet::new();
    for event in builtin() {
        assert!(
            is_snake_case(&event.name),
            "`{}` is not snake_case",
            event.name
        );
        assert!(seen.insert(&event.name), "`{}` appears twice", event.name);
    }
}

#[test]
fn builtin_is_parsed_once() {
    assert!(std::ptr::eq(builtin(), builtin()));
}

#[test]
fn one_time_passcode_never_goes_to_the_inbox() {
    assert!(!event("user_password_reset").inbox);
    for event in builtin().iter().filter(|e| e.name != "user_password_reset") {
        assert!(event.inbox, "`{}` should reach the inbox", event.name);
    }
}

#[test]
fn user_events_reach_owners_and_user_admins() {
    for name in [
        "user_account_created",
        "user_account_deleted",
        "user_account_suspended",
        "user_account_activated",
    ] {
        assert_eq!(
            event(name).audience_roles,
            [Role::Owner, Role::UserAdmin],
            "{name}"
        );
    }
}

#[test]
fn template_events_reach_template_admins() {
    for name in [
        "template_deleted",
        "template_deprecated",
        "template_workspace_builds_failed_report",
    ] {
        assert_eq!(event(name).audience_roles, [Role::TemplateAdmin], "{name}");
    }
}

#[test]
fn every_other_event_reaches_only_the_users_named() {
    for event in builtin() {
        if event.name.starts_with("user_account_") || event.name.starts_with("template_") {
            continue;
        }
        assert!(
            event.audience_roles.is_empty(),
            "`{}` has audience {:?}",
            event.name,
            event.audience_roles
        );
    }
}

#[test]
fn only_news_of_the_users_own_account_reaches_them_while_suspended() {
    for event in builtin() {
        let expected = matches!(
            event.name.as_str(),
            "your_account_suspended" | "your_account_activated"
        );
        assert_eq!(event.reaches_suspended, expected, "{}", event.name);
    }
}

#[test]
fn only_task_working_is_disabled_by_default() {
    for event in builtin() {
        assert_eq!(
            event.enabled_by_default,
            event.name != "task_working",
            "{}",
            event.name
        );
    }
}

#[test]
fn custom_notification_shows_the_callers_title_and_message() {
    let custom = event("custom_notification");
    assert_eq!(custom.kind, EventKind::Custom);
    assert_eq!(custom.title_template, "{{ labels.custom_title }}");
    assert_eq!(custom.body_template, "{{ labels.custom_message }}");
    for event in builtin().iter().filter(|e| e.name != "custom_notification") {
        assert_eq!(event.kind, EventKind::System, "{}", event.name);
    }
}

#[test]
fn test_notification_is_a_notification_event() {
    assert_eq!(event("test_notification").group, "Notification Events");
}

#[test]
fn sqlmesh_events_form_their_own_group() {
    for event in builtin() {
        let is_sqlmesh = SQLMESH.contains(&event.name.as_str());
        assert_eq!(
            event.group == "SQLMesh Events",
            is_sqlmesh,
            "{}",
            event.name
        );
    }
}

#[test]
fn failures_show_the_error_in_a_code_block() {
    for name in [
        "apply_failure",
        "run_failure",
        "migration_failure",
        "audit_failure",
    ] {
        let body = &event(name).body_template;
        assert!(body.contains("{% if data.error %}"), "{name}");
        assert!(body.contains("```text\n{{ data.error }}\n```"), "{name}");
    }
}

#[test]
fn audit_failure_shows_audit_model_environment_owner_and_query() {
    let audit = event("audit_failure");
    let text = format!("{}\n{}", audit.title_template, audit.body_template);
    for needle in [
        "labels.audit",
        "labels.model",
        "labels.environment",
        "labels.owner",
        "```sql\n{{ data.sql }}\n```",
    ] {
        assert!(text.contains(needle), "audit_failure lacks {needle}");
    }
}

#[test]
fn builds_failed_report_lists_the_failed_builds_from_data() {
    let body = &event("template_workspace_builds_failed_report").body_template;
    assert!(body.contains("{% for template in data.templates %}"));
    assert!(body.contains("{% for build in version.failed_builds %}"));
}

#[test]
fn template_delimiters_are_balanced() {
    for event in builtin() {
        let mut texts = vec![&event.title_template, &event.body_template];
        for action in &event.actions {
            texts.extend([&action.label, &action.url]);
        }
        for text in texts {
            for (open, close) in [("{{", "}}"), ("{%", "%}"), ("{#", "#}")] {
                assert_eq!(
                    text.matches(open).count(),
                    text.matches(close).count(),
                    "`{}`: unbalanced {open} {close} in {text:?}",
                    event.name
                );
            }
            let ifs = text.matches("{% if ").count();
            let endifs = text.matches("{% endif %}").count();
            assert_eq!(ifs, endifs, "`{}`: {{% if %}} without end", event.name);
            let fors = text.matches("{% for ").count();
            let endfors = text.matches("{% endfor %}").count();
            assert_eq!(fors, endfors, "`{}`: {{% for %}} without end", event.name);
        }
    }
}

/// `event` as stored, for rendering.
fn stored(spec: &EventSpec) -> crate::model::EventTemplate {
    crate::model::EventTemplate {
        id: uuid::Uuid::nil(),
        spec: spec.clone(),
        method: None,
    }
}

/// `sample-NAME` for each of `names`.
fn sample<'a>(names: impl Iterator<Item = &'a str>) -> BTreeMap<String, String> {
    names
        .map(|n| (n.to_string(), format!("sample-{n}")))
        .collect()
}

/// Renders `event` with `labels` and no data, to a user and to a target.
fn render_with(
    event: &crate::model::EventTemplate,
    labels: &BTreeMap<String, String>,
) -> Result<(), crate::render::RenderError> {
    let user = crate::model::User {
        id: uuid::Uuid::nil(),
        username: "bob".into(),
        email: "bob@example.com".into(),
        name: String::new(),
        roles: vec![Role::Member],
        status: crate::model::UserStatus::Active,
        created_at: chrono::DateTime::UNIX_EPOCH,
        updated_at: chrono::DateTime::UNIX_EPOCH,
    };
    let data = serde_json::json!({});
    for recipient in [Some(&user), None] {
        let payload = crate::routing::build_payload(event, recipient, labels, &data, &[]);
        crate::render::render(event, &payload)?;
    }
    Ok(())
}

#[test]
fn every_label_a_template_reads_is_declared_and_every_declared_one_is_read() {
    for event in builtin() {
        let read = crate::render::labels_read(event, &crate::render::Overrides::default());
        let declared: std::collections::BTreeSet<String> =
            event.labels.iter().map(|l| l.name.clone()).collect();
        let undeclared: Vec<&String> = read.difference(&declared).collect();
        assert!(
            undeclared.is_empty(),
            "`{}` reads undeclared labels {undeclared:?}: add them to its `labels`",
            event.name
        );
        let unread: Vec<&String> = declared.difference(&read).collect();
        assert!(
            unread.is_empty(),
            "`{}` declares labels no template reads: {unread:?}",
            event.name
        );
    }
}

#[test]
fn every_event_renders_with_only_its_required_labels() {
    for event in builtin() {
        let labels = sample(event.required_labels().map(|l| l.name.as_str()));
        if let Err(e) = render_with(&stored(event), &labels) {
            panic!(
                "`{}` with only its required labels {:?}: {e}; mark the label it needs \
                     `required = true` or guard it with {{% if %}}",
                event.name,
                labels.keys().collect::<Vec<_>>()
            );
        }
    }
}

#[test]
fn every_required_label_is_really_needed() {
    for event in builtin() {
        let all = sample(event.labels.iter().map(|l| l.name.as_str()));
        assert_eq!(render_with(&stored(event), &all), Ok(()), "{}", event.name);
        for required in event.required_labels() {
            let mut without = all.clone();
            without.remove(&required.name);
            assert!(
                render_with(&stored(event), &without).is_err(),
                "`{}` renders without `{}`: mark it `required = false`",
                event.name,
                required.name
            );
        }
    }
}

#[test]
fn every_label_says_what_it_is() {
    for event in builtin() {
        for label in &event.labels {
            assert!(
                !label.description.ends_with('.') && label.description.len() >= 8,
                "`{}` label `{}`: describe it in a short phrase without a full stop",
                event.name,
                label.name
            );
        }
    }
}

#[test]
fn producers_must_give_the_identifying_labels() {
    let required = |name: &str| -> Vec<&str> {
        event(name)
            .required_labels()
            .map(|l| l.name.as_str())
            .collect()
    };
    assert_eq!(required("user_account_created"), ["account_name"]);
    assert_eq!(required("workspace_deleted"), ["name"]);
    assert_eq!(required("task_idle"), ["task"]);
    assert_eq!(required("user_password_reset"), ["one_time_passcode"]);
    assert_eq!(required("audit_failure"), ["audit"]);
    assert_eq!(
        required("custom_notification"),
        ["custom_title", "custom_message"]
    );
    for name in ["run_failure", "test_notification", "migration_start"] {
        assert!(required(name).is_empty(), "{name}");
    }
}

#[test]
fn declared_labels_are_looked_up_by_event_name() {
    assert_eq!(
        declared_labels("user_account_created"),
        event("user_account_created").labels
    );
    assert!(declared_labels("no_such_event").is_empty());
}

#[test]
fn labels_are_refused_unless_snake_case_and_declared_once() {
    let with = |labels: &str| parse(&one_event("labelled", &format!("labels = [{labels}]\n")));
    let err = with(r#"{ name = "Name", required = true, description = "the name" }"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 7: event `labelled`: label name `Name` is not snake_case: use lowercase ASCII \
             letters, digits and `_`, starting with a letter"
    );
    let twice = r#"{ name = "x", required = true, description = "one x" },
  { name = "x", required = false, description = "another x" }"#;
    assert_eq!(
        with(twice).unwrap_err().to_string(),
        "line 8: event `labelled` declares the label `x` twice (first at line 7)"
    );
    let blank = r#"{ name = "x", required = true, description = " " }"#;
    assert_eq!(
        with(blank).unwrap_err().to_string(),
        "line 7: event `labelled`: `labels[0].description` is empty"
    );
    let unstated = r#"{ name = "x", description = "an x" }"#;
    let message = with(unstated).unwrap_err().to_string();
    assert!(
        message.contains("event `labelled`, field `labels`: missing field `required`"),
        "{message}"
    );
    let unknown = r#"{ name = "x", required = true, description = "an x", default = "y" }"#;
    let message = with(unknown).unwrap_err().to_string();
    assert!(message.contains("unknown field `default`"), "{message}");
}

#[test]
fn omitted_flags_take_their_defaults() {
    let events = parse(&one_event("plain", "")).unwrap();
    let plain = &events[0];
    assert!(plain.enabled_by_default);
    assert!(plain.inbox);
    assert!(!plain.reaches_suspended);
    assert_eq!(plain.kind, EventKind::System);
    assert!(plain.actions.is_empty());
    assert!(plain.labels.is_empty());
}

#[test]
fn every_field_is_read() {
    let text = "[[events]]
name = \"full\"
group = \"G\"
title = \"T\"
body = \"B\"
audience = [\"oncall\", \"member\"]
enabled_by_default = false
kind = \"custom\"
inbox = false
reaches_suspended = true
labels = [{ name = \"topic\", required = true, description = \"what it is about\" }]
[[events.actions]]
label = \"Open\"
url = \"{{ base_url }}/x\"
";
    let events = parse(text).unwrap();
    assert_eq!(
        events,
        [EventSpec {
            name: "full".into(),
            group: "G".into(),
            title_template: "T".into(),
            body_template: "B".into(),
            actions: vec![Action::new("Open", "{{ base_url }}/x")],
            audience_roles: vec![Role::Oncall, Role::Member],
            enabled_by_default: false,
            kind: EventKind::Custom,
            inbox: false,
            reaches_suspended: true,
            labels: vec![LabelSpec {
                name: "topic".into(),
                required: true,
                description: "what it is about".into(),
            }],
        }]
    );
}

#[test]
fn duplicate_names_are_refused() {
    let text = format!("{}\n{}", one_event("twice", ""), one_event("twice", ""));
    let err = parse(&text).unwrap_err();
    assert_eq!(
        err,
        CatalogError::DuplicateName {
            name: "twice".into(),
            line: 9,
            first_line: 2,
        }
    );
    assert_eq!(
        err.to_string(),
        "line 9: event `twice` is declared twice (first at line 2)"
    );
}

#[test]
fn names_that_are_not_snake_case_are_refused() {
    for name in [
        "",
        "Workspace",
        "workspace-deleted",
        "1st_event",
        "_private",
        "has space",
        "café",
    ] {
        let err = parse(&one_event(name, "")).unwrap_err();
        assert_eq!(
            err,
            CatalogError::InvalidName {
                name: name.into(),
                line: 2,
            },
            "{name:?}"
        );
    }
    assert!(parse(&one_event("a1_b2", "")).is_ok());
}

/// Checks that `text` is refused with an error that begins with `expected`.
fn assert_refused_with(text: &str, expected: &str) {
    let message = parse(text).unwrap_err().to_string();
    assert!(message.starts_with(expected), "{message}");
}

#[test]
fn unknown_keys_are_refused_naming_the_key() {
    assert_refused_with(
        &one_event("colourful", "colour = \"red\"\n"),
        "line 7, event `colourful`: unknown field `colour`",
    );
}

#[test]
fn unknown_keys_in_actions_are_refused_naming_the_key() {
    let text = one_event(
        "linked",
        "[[events.actions]]\nlabel = \"L\"\nlink = \"x\"\n",
    );
    assert_refused_with(
        &text,
        "line 9, event `linked`, field `actions`: unknown field `link`",
    );
}

#[test]
fn unknown_roles_are_refused_naming_the_role() {
    let text = one_event("guarded", "").replace("audience = []", "audience = [\"admin\"]");
    assert_refused_with(
        &text,
        "line 6, event `guarded`, field `audience`: unknown role `admin`; expected one of: owner",
    );
}

#[test]
fn wrong_types_are_refused_naming_the_field() {
    let text = one_event("typed", "inbox = \"no\"\n");
    assert_refused_with(&text, "line 7, event `typed`, field `inbox`: invalid type");
}

#[test]
fn missing_fields_are_refused_naming_the_event() {
    let text = second_event_without("silent", "audience = []\n");
    let message = parse(&text).unwrap_err().to_string();
    assert_eq!(message, "line 8, event `silent`: missing field `audience`");
}

#[test]
fn events_without_a_name_are_named_by_position() {
    let text = second_event_without("second", "name = \"second\"\n");
    let err = parse(&text).unwrap_err();
    assert!(
        matches!(
            &err,
            CatalogError::Invalid {
                event: Some(EventRef::Position(2)),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "line 8, event #2: missing field `name`");
}

#[test]
fn empty_templates_are_refused_naming_the_field() {
    let text = one_event("blank", "").replace("title = \"T\"", "title = \"  \"");
    assert_eq!(
        parse(&text).unwrap_err().to_string(),
        "line 4: event `blank`: `title` is empty"
    );
    let text = one_event("no_url", "[[events.actions]]\nlabel = \"L\"\nurl = \"\"\n");
    assert_eq!(
        parse(&text).unwrap_err().to_string(),
        "line 9: event `no_url`: `actions[0].url` is empty"
    );
}

#[test]
fn syntax_errors_give_the_line_on_one_line() {
    let text = one_event("broken", "title2 = \"unterminated\n");
    let err = parse(&text).unwrap_err();
    let message = err.to_string();
    assert!(message.starts_with("line 7"), "{message}");
    assert!(!message.contains('\n'), "{message:?}");
}

#[test]
fn a_file_without_events_is_refused() {
    assert_refused_with("[[event]]\nname = \"x\"\n", "line 1: unknown field `event`");
    assert!(parse("").is_err());
    assert_eq!(parse("events = []\n").unwrap(), []);
}
