//! `config.example.toml` is the documentation of every key: it must load as shipped, and its
//! commented-out examples must be valid when uncommented.

use std::time::Duration;

use herald::config::{Config, env_table};
use herald::model::{EventTemplate, Method, Role, TargetType};
use herald::render::{Overrides, render, render_for, validate_catalog};
use serde_json::json;
use uuid::Uuid;

const EXAMPLE: &str = include_str!("../../config.example.toml");

#[test]
fn config_example_loads_with_no_environment() {
    let config = Config::from_toml_str(EXAMPLE, "config.example.toml", &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(
        config,
        Config::default(),
        "the example's active values are the defaults"
    );
    assert_eq!(config.database_url, "sqlite://herald.db");
    assert_eq!(config.username, None);
    assert_eq!(config.base_url, None);
    let n = &config.notifications;
    assert_eq!(n.method, Method::Smtp);
    assert!(n.inbox_enabled);
    assert_eq!(n.dispatch_timeout, Duration::from_secs(60));
    assert_eq!(n.max_send_attempts, 5);
    assert_eq!(n.retry_interval, Duration::from_secs(5 * 60));
    assert_eq!(n.fetch_interval, Duration::from_secs(15));
    assert_eq!(n.lease_count, 100);
    assert_eq!(n.lease_period, Duration::from_secs(2 * 60));
    assert_eq!(n.store_sync_interval, Duration::from_millis(250));
    assert_eq!(n.store_sync_buffer, 500);
    assert_eq!(n.retention, Duration::from_secs(7 * 24 * 60 * 60));
    assert_eq!(n.webhook.endpoint, None);
    assert!(n.webhook.signing_secret.is_none());
    let e = &config.email;
    assert_eq!(e.from, None);
    assert_eq!(e.smarthost, None);
    assert_eq!(e.hello, "localhost");
    assert!(e.auth.password.is_none() && e.auth.password_file.is_none());
    assert!(!e.tls.force_tls && !e.tls.starttls && !e.tls.skip_verify);
    assert_eq!(config.http.listen, None);
    assert!(config.targets.is_empty());
    assert!(config.users.is_empty());
    assert!(config.events.is_empty());
    assert!(
        Overrides::from_config(&config)
            .unwrap_or_else(|e| panic!("{e}"))
            .is_empty()
    );
    assert_eq!(config.configured_methods(), [Method::Inbox]);
}

/// Turns `#key = …` / `#[[targets]]` lines into TOML; prose (`# …`) stays a comment.
fn uncommented(text: &str) -> String {
    text.lines()
        .map(|line| match line.strip_prefix('#') {
            Some(rest) if !rest.is_empty() && !rest.starts_with([' ', '#']) => rest,
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Any variable the example reads: a URL for `…_URL`, else `value-of-NAME`.
fn example_env(name: &str) -> Option<String> {
    Some(if name.ends_with("_URL") {
        "https://hooks.example.com/services/T0/B0/XXXX".to_string()
    } else {
        format!("value-of-{name}")
    })
}

#[test]
fn config_example_with_every_example_uncommented_loads() {
    let config = Config::from_toml_str(&uncommented(EXAMPLE), "config.example.toml", &example_env)
        .unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(config.username.as_deref(), Some("alice"));
    assert_eq!(
        config.base_url.as_deref(),
        Some("https://coder.example.com")
    );
    assert_eq!(
        config.email.smarthost.as_deref(),
        Some("smtp.example.com:587")
    );
    assert_eq!(
        config.email.auth.password.as_ref().map(|p| p.expose()),
        Some("value-of-SMTP_PASSWORD")
    );
    let types: Vec<TargetType> = config.targets.iter().map(|t| t.target_type).collect();
    assert_eq!(
        types,
        [
            TargetType::SlackWebhook,
            TargetType::SlackApi,
            TargetType::Smtp,
            TargetType::Webhook
        ]
    );
    assert_eq!(
        config.targets[0].url.as_ref().map(|u| u.expose()),
        Some("https://hooks.example.com/services/T0/B0/XXXX")
    );
    assert_eq!(config.users[0].roles, [Role::Owner]);
    assert_eq!(config.users[0].targets[0].name, "admin-dm");
    assert_eq!(
        config.configured_methods(),
        [Method::Smtp, Method::Webhook, Method::Inbox]
    );
    assert_eq!(config.events.keys().collect::<Vec<_>>(), ["run_failure"]);
    assert_eq!(config.http.listen, Some("127.0.0.1:8080".parse().unwrap()));
}

fn builtin_events() -> Vec<EventTemplate> {
    herald::catalog::builtin()
        .iter()
        .map(|spec| EventTemplate {
            id: Uuid::nil(),
            spec: spec.clone(),
            method: None,
        })
        .collect()
}

#[test]
fn config_example_overrides_compile_validate_and_render() {
    let config = Config::from_toml_str(&uncommented(EXAMPLE), "config.example.toml", &example_env)
        .unwrap_or_else(|e| panic!("{e}"));
    let overrides = Overrides::from_config(&config).unwrap_or_else(|e| panic!("{e}"));
    let events = builtin_events();
    if let Err(errors) = validate_catalog(&events, &overrides) {
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        panic!("{errors:#?}");
    }

    let run_failure = events
        .iter()
        .find(|e| e.spec.name == "run_failure")
        .expect("run_failure is built in");
    let payload = json!({
        "labels": {"environment": "prod"},
        "data": {"error": "boom"},
        "targets": ["incident-bridge"],
    });
    let catalog = render(run_failure, &payload).unwrap_or_else(|e| panic!("{e}"));
    let everyone =
        render_for(run_failure, &overrides, None, &payload).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(everyone.title, catalog.title);
    let appended = everyone
        .body_markdown
        .strip_prefix(&catalog.body_markdown)
        .unwrap_or_else(|| panic!("the catalog's body comes first: {}", everyone.body_markdown));
    assert!(
        appended.starts_with("\n\nLast lines of the pipeline log:\n\n```text\n"),
        "{appended}"
    );
    assert!(appended.ends_with("\n```"), "{appended}");
    if !std::path::Path::new("/var/log/pipeline.log").exists() {
        assert!(
            appended.contains("(log /var/log/pipeline.log unavailable: "),
            "{appended}"
        );
    }

    let bridge = render_for(run_failure, &overrides, Some("incident-bridge"), &payload)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(bridge.title, "[prod] SQLMesh run failed in \"prod\"");
    assert_eq!(bridge.body_markdown, everyone.body_markdown);
}

/// The provider block that follows the line starting with `heading`: its `#   ` lines, as TOML.
fn provider_block(heading: &str) -> String {
    let mut lines = EXAMPLE
        .lines()
        .skip_while(|line| !line.starts_with(heading));
    let block: Vec<&str> = lines
        .by_ref()
        .skip_while(|line| !line.starts_with("#   "))
        .take_while(|line| line.starts_with("#   "))
        .map(|line| &line["#   ".len()..])
        .collect();
    assert!(
        !block.is_empty(),
        "no `{heading}` block in config.example.toml"
    );
    block.join("\n")
}

#[test]
fn config_example_gmail_and_outlook_setups_load() {
    let gmail = Config::from_toml_str(&provider_block("# Gmail"), "gmail", &example_env)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(gmail.email.smarthost.as_deref(), Some("smtp.gmail.com:465"));
    assert!(gmail.email.tls.force_tls && !gmail.email.tls.starttls);
    assert_eq!(
        gmail.email.auth.password.as_ref().map(|p| p.expose()),
        Some("value-of-GMAIL_APP_PASSWORD")
    );

    let outlook = Config::from_toml_str(&provider_block("# Outlook"), "outlook", &example_env)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        outlook.email.smarthost.as_deref(),
        Some("smtp.office365.com:587")
    );
    assert!(outlook.email.tls.starttls && !outlook.email.tls.force_tls);
    assert_eq!(
        outlook.email.auth.username.as_deref(),
        Some("alerts@contoso.com")
    );
}

#[test]
fn config_example_documents_every_environment_variable() {
    for (env, key) in env_table() {
        assert!(
            EXAMPLE.contains(env),
            "config.example.toml does not mention {env} ({key})"
        );
        let leaf = key.rsplit('.').next().unwrap_or(key);
        assert!(
            EXAMPLE.contains(&format!("{leaf} =")) || EXAMPLE.contains(&format!("{leaf}=")),
            "config.example.toml does not show {key}"
        );
    }
}
