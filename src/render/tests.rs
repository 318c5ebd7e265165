use std::collections::BTreeMap;

use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

use super::*;
use crate::model::{EventKind, EventSpec, Role, User, UserStatus};
use crate::routing::build_payload;

fn event(spec: EventSpec) -> EventTemplate {
    EventTemplate {
        id: Uuid::now_v7(),
        spec,
        method: None,
    }
}

fn spec(title: &str, body: &str, actions: &[(&str, &str)]) -> EventSpec {
    EventSpec {
        name: "sample_event".to_string(),
        group: "Tests".to_string(),
        title_template: title.to_string(),
        body_template: body.to_string(),
        actions: actions
            .iter()
            .map(|(label, url)| Action::new(*label, *url))
            .collect(),
        audience_roles: Vec::new(),
        enabled_by_default: true,
        kind: EventKind::Custom,
        inbox: true,
        reaches_suspended: false,
        labels: Vec::new(),
    }
}

fn alice() -> User {
    User {
        id: Uuid::now_v7(),
        username: "alice".to_string(),
        email: "alice@example.com".to_string(),
        name: "Alice Liddell".to_string(),
        roles: vec![Role::Owner],
        status: UserStatus::Active,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

/// Every label a built-in template prints, with plausible values.
fn realistic_labels() -> BTreeMap<String, String> {
    [
        ("name", "my-workspace"),
        ("workspace", "my-workspace"),
        ("workspace_owner_username", "alice"),
        ("template_name", "docker"),
        ("template_version_name", "v1.2.3"),
        ("template_version_message", "bump base image"),
        ("initiator", "bob"),
        ("reason", "initiated by user"),
        ("workspace_build_number", "42"),
        ("time_til_deletion", "7 days"),
        ("threshold", "90%"),
        ("volume", "/home/coder"),
        ("task", "fix-the-build"),
        ("account_name", "carol"),
        ("account_display_name", "Carol"),
        ("one_time_passcode", "123456"),
        ("expires_in", "15 minutes"),
        ("custom_title", "Hello"),
        ("custom_message", "A **custom** message"),
        ("message", "deprecated in favour of docker-v2"),
        ("environment", "prod"),
        ("plan_id", "plan_7"),
        ("audit", "not_null_customer_id"),
        ("model", "sales.orders"),
        ("owner", "bob"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn realistic_data() -> Value {
    json!({
        "error": "Error: terraform apply failed\n  exit status 1",
        "sql": "SELECT * FROM sales.orders WHERE customer_id IS NULL",
        "count": 3,
        "volumes": [{"path": "/home/coder", "threshold": "90%"}],
        "report_frequency": "week",
        "templates": [{
            "name": "docker",
            "display_name": "Docker",
            "failed_builds": 2,
            "total_builds": 10,
            "versions": [{
                "template_version_name": "v1.2.3",
                "failed_count": 2,
                "failed_builds": [
                    {"workspace_owner_username": "alice", "workspace_name": "ws", "build_number": 7}
                ]
            }]
        }]
    })
}

#[test]
fn every_builtin_event_renders_for_a_user_and_for_a_target() {
    let user = alice();
    let labels = realistic_labels();
    let data = realistic_data();
    for spec in crate::catalog::builtin() {
        let event = event(spec.clone());
        for (who, payload) in [
            (
                "a user",
                build_payload(&event, Some(&user), &labels, &data, &[]),
            ),
            (
                "a target",
                build_payload(&event, None, &labels, &data, &["alerts".to_string()]),
            ),
        ] {
            let rendered =
                render(&event, &payload).unwrap_or_else(|e| panic!("{} for {who}: {e}", spec.name));
            assert!(!rendered.title.is_empty(), "{}: empty title", spec.name);
            assert!(!rendered.title.contains('\n'), "{}: title", spec.name);
            assert!(
                !rendered.body_markdown.is_empty(),
                "{}: empty body",
                spec.name
            );
            assert_eq!(rendered.actions.len(), spec.actions.len(), "{}", spec.name);
            assert!(
                !rendered.body_text.contains("**"),
                "{}: {}",
                spec.name,
                rendered.body_text
            );
        }
    }
}

#[test]
fn every_builtin_event_renders_with_no_optional_labels_or_data() {
    // Only the labels a template prints unguarded; everything optional is left out.
    let required = [
        "name",
        "task",
        "account_name",
        "audit",
        "one_time_passcode",
        "custom_title",
        "custom_message",
    ];
    let labels: BTreeMap<String, String> = realistic_labels()
        .into_iter()
        .filter(|(k, _)| required.contains(&k.as_str()))
        .collect();
    for spec in crate::catalog::builtin() {
        let event = event(spec.clone());
        let payload = build_payload(&event, Some(&alice()), &labels, &Value::Null, &[]);
        if let Err(e) = render(&event, &payload) {
            panic!("{}: {e}", spec.name);
        }
    }
}

#[test]
fn workspace_deleted_reads_like_coders_example() {
    let event = crate::catalog::builtin()
        .iter()
        .find(|e| e.name == "workspace_deleted")
        .map(|spec| event(spec.clone()))
        .expect("workspace_deleted is built in");
    let labels = realistic_labels();
    let payload = build_payload(&event, Some(&alice()), &labels, &json!({}), &[]);
    let rendered = render(&event, &payload).unwrap();
    assert_eq!(rendered.title, "Workspace \"my-workspace\" deleted");
    assert!(rendered.body_markdown.starts_with("Hi Alice Liddell,\n\n"));
    assert!(
        rendered
            .body_text
            .contains("Your workspace my-workspace was deleted."),
        "{}",
        rendered.body_text
    );
    assert_eq!(
        rendered.actions,
        vec![
            Action::new("View workspaces", "/workspaces"),
            Action::new("View templates", "/templates"),
        ]
    );
}

#[test]
fn context_exposes_user_labels_data_and_an_empty_base_url() {
    let user = alice();
    let e = event(spec(
        "{{ user.username }} / {{ labels.env }}",
        "{{ user.id }} {{ user.email }} {{ user.name }} {{ data.n + 1 }} [{{ base_url }}] {{ actions | length }}",
        &[("Open {{ labels.env }}", "{{ base_url }}/e/{{ labels.env }}")],
    ));
    let labels = BTreeMap::from([("env".to_string(), "prod".to_string())]);
    let payload = build_payload(&e, Some(&user), &labels, &json!({"n": 41}), &[]);
    let rendered = render(&e, &payload).unwrap();
    assert_eq!(rendered.title, "alice / prod");
    assert_eq!(
        rendered.body_markdown,
        format!("{} alice@example.com Alice Liddell 42 [] 1", user.id)
    );
    assert_eq!(rendered.actions, vec![Action::new("Open prod", "/e/prod")]);
}

#[test]
fn base_url_reaches_templates_and_makes_relative_action_urls_absolute() {
    let e = event(spec(
        "t",
        "[see]({{ base_url }}/runs)",
        &[
            ("Templated", "{{ base_url }}/e/{{ labels.env }}"),
            ("Relative", "/w/{{ labels.env }}"),
            ("Absolute", "https://other.example.com/x"),
            ("Protocol-relative", "//cdn.example.com/x"),
        ],
    ));
    let labels = BTreeMap::from([("env".to_string(), "prod".to_string())]);
    let payload = build_payload(&e, Some(&alice()), &labels, &json!({}), &[]);
    let overrides = overrides("base_url = \"https://herald.example.com/coder/\"\n");
    let rendered = render_for(&e, &overrides, None, &payload).unwrap();
    assert_eq!(
        rendered.body_markdown,
        "[see](https://herald.example.com/coder/runs)"
    );
    let urls: Vec<&str> = rendered.actions.iter().map(|a| a.url.as_str()).collect();
    assert_eq!(
        urls,
        [
            "https://herald.example.com/coder/e/prod",
            "https://herald.example.com/coder/w/prod",
            "https://other.example.com/x",
            "//cdn.example.com/x",
        ]
    );
    // Without it, URLs stay as the templates make them.
    let rendered = render_for(&e, &Overrides::default(), None, &payload).unwrap();
    assert_eq!(rendered.actions[0].url, "/e/prod");
    assert_eq!(rendered.actions[1].url, "/w/prod");
}

#[test]
fn a_payload_without_user_fields_renders_them_empty() {
    let e = event(spec("[{{ user.username }}]", "[{{ user.email }}]", &[]));
    let rendered = render(&e, &json!({})).unwrap();
    assert_eq!(rendered.title, "[]");
    assert_eq!(rendered.body_markdown, "[]");
}

#[test]
fn markdown_is_not_html_escaped() {
    let e = event(spec("{{ labels.t }}", "{{ labels.t }}", &[]));
    let payload = json!({"labels": {"t": "<b> & \"q\""}});
    let rendered = render(&e, &payload).unwrap();
    assert_eq!(rendered.title, "<b> & \"q\"");
    assert_eq!(rendered.body_markdown, "<b> & \"q\"");
}

#[test]
fn the_title_is_trimmed_to_one_line() {
    let e = event(spec("\n  Build\n failed  {{ labels.x }}\n", "b", &[]));
    let rendered = render(&e, &json!({"labels": {"x": "again"}})).unwrap();
    assert_eq!(rendered.title, "Build failed again");
}

#[test]
fn errors_name_the_template_that_failed() {
    let cases = [
        (spec("{{ labels.missing }}", "ok", &[]), "title"),
        (spec("ok", "line\n{{ labels.missing }}", &[]), "body"),
        (spec("ok", "{% if %}", &[]), "body"),
        (
            spec("ok", "ok", &[("ok", "ok"), ("{{ nope.x }}", "ok")]),
            "action 2 label",
        ),
        (spec("ok", "ok", &[("ok", "{{ 1 + }}")]), "action 1 url"),
    ];
    for (spec, template) in cases {
        let err = render(&event(spec), &json!({})).unwrap_err();
        assert_eq!(err.template, template);
        assert_eq!(err.event, "sample_event");
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "cannot render the {template} template of event `sample_event`: "
            )),
            "{text}"
        );
        assert!(text.contains(&format!("(in {template}:")), "{text}");
        assert!(!text.contains('\n'), "{text}");
    }
}

#[test]
fn printing_an_undefined_value_is_an_error_but_testing_one_is_not() {
    let e = event(spec(
        "{% if labels.x %}x{% endif %}t",
        "{{ labels.x }}",
        &[],
    ));
    let err = render(&e, &json!({"labels": {}})).unwrap_err();
    assert_eq!(err.template, "body");
    assert!(err.detail.contains("undefined"), "{}", err.detail);
}

// -----------------------------------------------------------------------------------------
// Compiled-template cache
// -----------------------------------------------------------------------------------------

#[test]
fn a_template_is_compiled_once_and_the_cache_is_bounded() {
    let cache = TemplateCache::new(2);
    let context = minijinja::Value::from_serialize(json!({"x": 1}));
    let render = |source: &str| cache.render(source, &context).unwrap();
    assert_eq!(render("a {{ x }}"), "a 1");
    assert_eq!(cache.len(), 1);
    assert_eq!(render("a {{ x }}"), "a 1");
    assert_eq!(cache.len(), 1, "the same source is not compiled again");
    assert_eq!(render("b {{ x + 1 }}"), "b 2");
    assert_eq!(cache.len(), 2);
    assert_eq!(render("c {{ x + 2 }}"), "c 3");
    assert_eq!(cache.len(), 1, "a full cache starts over");
    assert_eq!(render("a {{ x }}"), "a 1");
    assert_eq!(cache.len(), 2);
}

#[test]
fn a_syntax_error_is_not_cached_and_names_no_source_text() {
    let cache = TemplateCache::new(4);
    let context = minijinja::Value::from_serialize(json!({}));
    let error = cache.render("ok {% if %}", &context).unwrap_err();
    assert_eq!(cache.len(), 0);
    let detail = describe(&error, Some("body"));
    assert!(detail.starts_with("syntax error: "), "{detail}");
    assert!(detail.ends_with(" (in body:1)"), "{detail}");
}

#[test]
fn the_catalog_renders_alike_from_many_threads() {
    let labels = realistic_labels();
    let data = realistic_data();
    let user = alice();
    let cases: Vec<(EventTemplate, Value)> = crate::catalog::builtin()
        .iter()
        .map(|spec| {
            let e = event(spec.clone());
            let payload = build_payload(&e, Some(&user), &labels, &data, &[]);
            (e, payload)
        })
        .collect();
    let expected: Vec<Rendered> = cases.iter().map(|(e, p)| render(e, p).unwrap()).collect();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..5 {
                    for ((e, p), want) in cases.iter().zip(&expected) {
                        assert_eq!(&render(e, p).unwrap(), want);
                    }
                }
            });
        }
    });
}

// -----------------------------------------------------------------------------------------
// HTML body
// -----------------------------------------------------------------------------------------

#[test]
fn the_html_body_is_markdown_with_raw_html_escaped() {
    let e = event(spec("t", "Deleted by **{{ labels.who }}**.", &[]));
    let payload = json!({"labels": {"who": "<script>alert(1)</script>"}});
    let rendered = render(&e, &payload).unwrap();
    assert_eq!(
        rendered.body_html(),
        "<p>Deleted by <strong>&lt;script&gt;alert(1)&lt;/script&gt;</strong>.</p>\n"
    );
    assert_eq!(rendered.body_text, "Deleted by <script>alert(1)</script>.");
}

// -----------------------------------------------------------------------------------------
// Overrides
// -----------------------------------------------------------------------------------------

fn config(toml: &str) -> crate::config::Config {
    crate::config::Config::from_toml_str(toml, "herald.toml", &|_| None)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn overrides(toml: &str) -> Overrides {
    Overrides::from_config(&config(toml)).unwrap_or_else(|e| panic!("{e}"))
}

/// Renders `sample_event` with the catalog's `title` and `body` under the overrides in
/// `toml`, for a user, with no payload.
fn render_overridden(toml: &str, title: &str, body: &str) -> Result<Rendered, RenderError> {
    render_for(
        &event(spec(title, body, &[])),
        &overrides(toml),
        None,
        &json!({}),
    )
}

/// Overrides at every level: catalog, `[events.NAME]`, a target, a user's target.
const PRECEDENCE: &str = include_str!("precedence.toml");

#[test]
fn a_target_override_beats_the_event_override_which_beats_the_catalog() {
    let overrides = overrides(PRECEDENCE);
    let e = event(spec(
        "Catalog title {{ labels.env }}",
        "Catalog **body**",
        &[("Open", "/e/{{ labels.env }}")],
    ));
    let payload = json!({"labels": {"env": "prod"}});
    let render = |target: Option<&str>| render_for(&e, &overrides, target, &payload).unwrap();

    let catalog = super::render(&e, &payload).unwrap();
    assert_eq!(catalog.title, "Catalog title prod");
    assert_eq!(catalog.body_markdown, "Catalog **body**");

    let everyone = render(None);
    assert_eq!(everyone.title, "Event: Catalog title prod");
    assert_eq!(
        everyone.body_markdown, "Catalog **body**",
        "no event body override"
    );
    assert_eq!(
        everyone.actions, catalog.actions,
        "actions are never overridden"
    );

    let ops = render(Some("ops"));
    assert_eq!(
        ops.title, "Event: Catalog title prod",
        "the target has no title"
    );
    assert_eq!(ops.body_markdown, "Ops body for prod\n\nCatalog **body**");
    assert_eq!(ops.body_text, "Ops body for prod\n\nCatalog body");
    assert_eq!(
        ops.body_html(),
        "<p>Ops body for prod</p>\n<p>Catalog <strong>body</strong></p>\n"
    );

    let mine = render(Some("alice/ops"));
    assert_eq!(mine.title, "Mine: Event: Catalog title prod");
    assert_eq!(mine.body_markdown, "Mine only");

    assert_eq!(
        render(Some("plain")),
        everyone,
        "a target without templates"
    );
    assert_eq!(render(Some("nobody")), everyone, "an unknown target");
    assert!(!overrides.is_empty());
    assert!(Overrides::default().is_empty());
}

#[test]
fn an_override_that_does_not_read_the_catalog_does_not_render_it() {
    let catalog = "{{ labels.missing }}";
    let rendered = render_overridden(
        "[events.sample_event]\ntitle_template = \"Fixed\"\nbody_template = \"Fixed body\"\n",
        catalog,
        catalog,
    )
    .unwrap();
    assert_eq!(rendered.title, "Fixed");
    assert_eq!(rendered.body_markdown, "Fixed body");
    assert!(render(&event(spec(catalog, catalog, &[])), &json!({})).is_err());
}

#[test]
fn an_override_error_at_delivery_names_its_config_key() {
    let error = render_overridden(
        "[events.sample_event]\nbody_template = \"line one\\n{{ labels.nope }}\"\n",
        "t",
        "b",
    )
    .unwrap_err();
    assert_eq!(error.template, "events.sample_event.body_template");
    assert_eq!(error.event, "sample_event");
    assert!(
        error
            .detail
            .ends_with("(in events.sample_event.body_template:2)"),
        "{error}"
    );
    assert!(error.detail.contains("undefined"), "{error}");
}

#[test]
fn a_broken_override_refuses_start_up_naming_its_key() {
    let cases = [
        (
            "[events.run_failure]\nbody_template = \"ok\\n{% if %}\"\n",
            "events.run_failure.body_template: invalid template: syntax error: ",
            " (line 2)",
        ),
        (
            "[[targets]]\ntype = \"webhook\"\nname = \"a\"\nnotify_on = [\"x\"]\n\
                 url = \"http://h/p\"\ntitle_template = \"{{ title \"\n",
            "targets[0].title_template: invalid template: syntax error: ",
            " (line 1)",
        ),
        (
            "[[users]]\nusername = \"u\"\nemail = \"u@x\"\n[[users.targets]]\n\
                 type = \"webhook\"\nname = \"a\"\nnotify_on = [\"x\"]\nurl = \"http://h/p\"\n\
                 body_template = \"{{ file_tail(labels.log, 5) }}\"\n",
            "users[0].targets[0].body_template: invalid template: file_tail(labels.log, 5)",
            "it never comes from event data",
        ),
    ];
    for (toml, starts, ends) in cases {
        let error = Overrides::from_config(&config(toml))
            .unwrap_err()
            .to_string();
        assert!(error.starts_with(starts), "{error}");
        assert!(error.ends_with(ends), "{error}");
    }
}

// -----------------------------------------------------------------------------------------
// file_tail
// -----------------------------------------------------------------------------------------

fn log_with_lines(dir: &tempfile::TempDir, count: usize) -> String {
    let path = dir.path().join("pipeline.log");
    let text: String = (1..=count).map(|n| format!("log line {n}\n")).collect();
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn an_override_appends_the_tail_of_a_file_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_with_lines(&dir, 20);
    let toml = format!(
        "[events.sample_event]\nbody_template = '''{{{{ body }}}}\n\n```text\n\
             {{{{ file_tail(\"{log}\", 3) }}}}\n```'''\n"
    );
    let rendered = render_overridden(&toml, "t", "Run failed.").unwrap();
    assert_eq!(
        rendered.body_markdown,
        "Run failed.\n\n```text\nlog line 18\nlog line 19\nlog line 20\n```"
    );
    assert!(
        rendered
            .body_html()
            .contains("<pre><code class=\"language-text\">log line 18\nlog line 19\n"),
        "{}",
        rendered.body_html()
    );
}

#[test]
fn file_tail_returns_at_most_a_thousand_lines() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_with_lines(&dir, 1500);
    let toml =
        format!("[events.sample_event]\nbody_template = '{{{{ file_tail(\"{log}\", 5000) }}}}'\n");
    let body = render_overridden(&toml, "t", "b").unwrap().body_markdown;
    assert_eq!(body.lines().count(), MAX_TAIL_LINES);
    assert!(body.starts_with("log line 501\n"), "{}", &body[..20]);
}

#[test]
fn a_missing_file_renders_a_note_instead_of_failing() {
    let rendered = render_overridden(
        "[events.sample_event]\nbody_template = '{{ body }} {{ file_tail(\"/nonexistent/pipeline.log\", 50) }}'\n",
        "t",
        "Run failed.",
    )
    .unwrap();
    assert_eq!(
        rendered.body_markdown,
        "Run failed. (log /nonexistent/pipeline.log unavailable: No such file or directory \
             (os error 2))"
    );
}

#[test]
fn a_catalog_template_cannot_read_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_with_lines(&dir, 3);
    // Even a path some override may read: the catalog's context carries event data.
    let overrides = overrides(&format!(
        "[events.sample_event]\ntitle_template = '{{{{ file_tail(\"{log}\", 1) }}}}'\n"
    ));
    for (body, path) in [
        ("{{ file_tail(\"/etc/passwd\", 5) }}", "/etc/passwd"),
        ("{{ file_tail(labels.log, 5) }}", log.as_str()),
    ] {
        let e = event(spec("t", body, &[]));
        let payload = json!({"labels": {"log": log}});
        let error = render_for(&e, &overrides, None, &payload).unwrap_err();
        assert_refused(&error, "body", path);
    }
}

#[test]
fn an_override_reads_only_the_paths_it_names_itself() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_with_lines(&dir, 3);
    // The title names the log; the body reaches for it through an alias and event data.
    let overrides = overrides(&format!(
        "[events.sample_event]\ntitle_template = '{{{{ file_tail(\"{log}\", 1) }}}}'\n\
             body_template = '{{% set tail = file_tail %}}{{{{ tail(labels.log, 5) }}}}'\n"
    ));
    let e = event(spec("t", "b", &[]));
    let payload = json!({"labels": {"log": log}});
    let error = render_for(&e, &overrides, None, &payload).unwrap_err();
    assert_refused(&error, "events.sample_event.body_template", &log);

    let overrides = overrides_without_body(&log);
    let rendered = render_for(&e, &overrides, None, &payload).unwrap();
    assert_eq!(rendered.title, "log line 3");
}

/// Checks that `template` failed for reading `path` with `file_tail`.
fn assert_refused(error: &RenderError, template: &str, path: &str) {
    assert_eq!(error.template, template);
    assert!(
        error
            .detail
            .contains(&format!("file_tail(\"{path}\") is refused")),
        "{error}"
    );
}

fn overrides_without_body(log: &str) -> Overrides {
    overrides(&format!(
        "[events.sample_event]\ntitle_template = '{{{{ file_tail(\"{log}\", 1) }}}}'\n"
    ))
}

// -----------------------------------------------------------------------------------------
// Validation
// -----------------------------------------------------------------------------------------

fn builtin_events() -> Vec<EventTemplate> {
    crate::catalog::builtin()
        .iter()
        .map(|spec| event(spec.clone()))
        .collect()
}

#[test]
fn the_builtin_catalog_validates_with_and_without_overrides() {
    let events = builtin_events();
    assert_eq!(validate_catalog(&events, &Overrides::default()), Ok(()));
    let overrides = overrides(
        r#"
[events.run_failure]
body_template = "{{ body }}\n\nOwner: {{ labels.pipeline_owner }}"

[[targets]]
type = "webhook"
name = "ops"
notify_on = ["audit_failure", "run_failure"]
url = "http://hooks.example.com/ops"
title_template = "[{{ labels.environment }}] {{ title }}"
"#,
    );
    assert_eq!(validate_catalog(&events, &overrides), Ok(()));
}

#[test]
fn validation_reports_every_broken_template_once() {
    let mut events = builtin_events();
    events.push(event(EventSpec {
        name: "broken_event".to_string(),
        ..spec(
            "ok {{ labels.x }}",
            "{% if labels.x %}",
            &[("Open", "{{ data.url.path }}")],
        )
    }));
    let overrides = overrides(
        r#"
[events.run_failure]
title_template = "{{ title | no_such_filter }}"

[events.run_failuer]
body_template = "typo"

# Hides broken_event's broken body from a render with overrides; validation still finds it.
[events.broken_event]
body_template = "masked"

[[targets]]
type = "webhook"
name = "ops"
notify_on = ["run_end"]
url = "http://hooks.example.com/ops"
body_template = "{{ data.missing.deeper }}"
"#,
    );
    let errors = validate_catalog(&events, &overrides).unwrap_err();
    let texts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let expected = [
        ("broken_event", "body", "syntax error"),
        ("broken_event", "action 1 url", "undefined"),
        ("run_end", "targets[0].body_template", "undefined"),
        (
            "run_failure",
            "events.run_failure.title_template",
            "no_such_filter",
        ),
        (
            "run_failuer",
            "[events.run_failuer]",
            "no event `run_failuer` in the catalog",
        ),
    ];
    assert_eq!(errors.len(), expected.len(), "{texts:#?}");
    for (event, template, detail) in expected {
        assert!(
            errors
                .iter()
                .any(|e| e.event == event && e.template == template && e.detail.contains(detail)),
            "no {event} / {template} / {detail} in {texts:#?}"
        );
    }
}

#[test]
fn sample_payload_has_every_label_the_templates_mention() {
    let e = event(spec(
        "{{ labels.a }}",
        "{% if labels.b_2 %}{{ labels.b_2 }}{% endif %}",
        &[("{{ labels.c }}", "/x/{{labels.d}}")],
    ));
    let payload = sample_payload(&e);
    assert_eq!(
        payload["labels"],
        json!({"a": "sample-a", "b_2": "sample-b_2", "c": "sample-c", "d": "sample-d"})
    );
    assert_eq!(payload["data"], json!({"error": "sample error"}));
    assert_eq!(payload["user_username"], "");
    assert!(render(&e, &payload).is_ok());
}
