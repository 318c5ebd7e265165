//! `config.example.toml` is the documentation of every key: it must load as shipped, and its
//! commented-out examples must be valid when uncommented.

use std::time::Duration;

use herald::config::{Config, env_table};
use herald::model::{Method, Role, TargetType};

const EXAMPLE: &str = include_str!("../config.example.toml");

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
    assert!(config.targets.is_empty());
    assert!(config.users.is_empty());
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

#[test]
fn config_example_with_every_example_uncommented_loads() {
    let env = |name: &str| {
        Some(if name.ends_with("_URL") {
            "https://hooks.example.com/services/T0/B0/XXXX".to_string()
        } else {
            format!("value-of-{name}")
        })
    };
    let config = Config::from_toml_str(&uncommented(EXAMPLE), "config.example.toml", &env)
        .unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(config.username.as_deref(), Some("alice"));
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
