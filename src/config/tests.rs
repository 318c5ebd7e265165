//! The configuration's behaviour as DESIGN §9 states it: precedence, every key and variable,
//! and each refusal with its exact message.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::interpolate::{InterpolationError, interpolate};
use super::*;
use crate::model::{Method, Role, TargetType};

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| map.get(name).cloned()
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml_str(text, "herald.toml", &no_env)
}

fn parse_err(text: &str) -> String {
    match parse(text) {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(error) => error.to_string(),
    }
}

fn write_file(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn empty_file_gives_the_documented_defaults() {
    let config = parse("").unwrap();
    assert_eq!(config, Config::default());
    assert_eq!(config.database_url, "sqlite://herald.db");
    assert_eq!(config.notifications.method, Method::Smtp);
    assert_eq!(
        config.notifications.retention,
        Duration::from_secs(7 * 86_400)
    );
    assert_eq!(
        config.notifications.store_sync_interval,
        Duration::from_millis(250)
    );
    assert_eq!(config.email.hello, "localhost");
}

#[test]
fn precedence_is_flag_then_env_then_file_then_default() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        &dir,
        "custom.toml",
        r#"
database_url = "sqlite://file.db"
[notifications]
fetch_interval = "20s"
retry_interval = "10m"
"#,
    );
    let env = env_of(&[
        ("HERALD_DATABASE_URL", "sqlite://env.db"),
        ("HERALD_NOTIFICATIONS_FETCH_INTERVAL", "30s"),
    ]);
    let sources = ConfigSources {
        file: Some(file),
        database_url: Some("postgres://flag/herald".to_string()),
    };
    let config = Config::load(&sources, &env).unwrap();
    assert_eq!(
        config.database_url, "postgres://flag/herald",
        "flag beats env"
    );
    assert_eq!(
        config.notifications.fetch_interval,
        Duration::from_secs(30),
        "env beats file"
    );
    assert_eq!(
        config.notifications.retry_interval,
        Duration::from_secs(600),
        "file beats default"
    );
    assert_eq!(
        config.notifications.lease_period,
        Duration::from_secs(120),
        "default"
    );

    let without_flag = ConfigSources {
        database_url: None,
        ..sources
    };
    let config = Config::load(&without_flag, &env).unwrap();
    assert_eq!(config.database_url, "sqlite://env.db");
}

#[test]
fn config_file_comes_from_flag_then_herald_config_then_default_file() {
    let dir = tempfile::tempdir().unwrap();
    let flag_file = write_file(&dir, "flag.toml", "username = \"from-flag\"");
    let env_file = write_file(&dir, "env.toml", "username = \"from-env-file\"");
    let default_file = write_file(&dir, "herald.toml", "username = \"from-default\"");
    let env = env_of(&[("HERALD_CONFIG", env_file.to_str().unwrap())]);
    let with_flag = ConfigSources {
        file: Some(flag_file),
        database_url: None,
    };
    let username = |sources: &ConfigSources, env: &dyn Fn(&str) -> Option<String>| {
        Config::load_with_default_file(sources, env, &default_file)
            .unwrap()
            .username
    };
    assert_eq!(username(&with_flag, &env).as_deref(), Some("from-flag"));
    assert_eq!(
        username(&ConfigSources::default(), &env).as_deref(),
        Some("from-env-file")
    );
    assert_eq!(
        username(&ConfigSources::default(), &no_env).as_deref(),
        Some("from-default")
    );

    let absent = dir.path().join("absent.toml");
    let config =
        Config::load_with_default_file(&ConfigSources::default(), &no_env, &absent).unwrap();
    assert_eq!(config, Config::default(), "no file at all is fine");
}

#[test]
fn named_config_file_that_does_not_exist_is_an_error() {
    let env = env_of(&[("HERALD_CONFIG", "/nonexistent/herald.toml")]);
    let error = Config::load(&ConfigSources::default(), &env).unwrap_err();
    assert_eq!(
        error.to_string(),
        "config file /nonexistent/herald.toml (from HERALD_CONFIG) does not exist"
    );
    let sources = ConfigSources {
        file: Some(PathBuf::from("/nonexistent/x.toml")),
        database_url: None,
    };
    let error = Config::load(&sources, &no_env).unwrap_err();
    assert!(error.to_string().contains("(from --config)"), "{error}");
}

#[test]
fn file_errors_from_load_name_the_file_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(&dir, "bad.toml", "\n[notifications]\nlease_count = 0\n");
    let sources = ConfigSources {
        file: Some(file.clone()),
        database_url: None,
    };
    let error = Config::load(&sources, &no_env).unwrap_err().to_string();
    assert_eq!(
        error,
        format!(
            "{} line 3: notifications.lease_count: must be at least 1, got 0",
            file.display()
        )
    );
}

#[test]
fn variables_in_string_values_are_read_from_the_environment() {
    let env = env_of(&[("SMTP_PASSWORD", "hunter2"), ("HOST", "mail.example.com")]);
    let text = r#"
[email]
smarthost = "${HOST}:587"
[email.auth]
password = "${SMTP_PASSWORD}"
"#;
    let config = Config::from_toml_str(text, "herald.toml", &env).unwrap();
    assert_eq!(
        config.email.smarthost.as_deref(),
        Some("mail.example.com:587")
    );
    assert_eq!(config.email.auth.password.unwrap().expose(), "hunter2");
}

#[test]
fn double_dollar_is_a_literal_and_lone_dollar_is_kept() {
    let env = env_of(&[("X", "x")]);
    assert_eq!(interpolate("a$${X}b", &env).unwrap(), "a${X}b");
    assert_eq!(interpolate("cost $5 ${X}", &env).unwrap(), "cost $5 x");
    assert!(matches!(
        interpolate("${X", &env),
        Err(InterpolationError::Malformed(_))
    ));
}

#[test]
fn unset_variable_error_names_key_line_and_variable() {
    let text = "\n[email.auth]\nusername = \"herald\"\npassword = \"${SMTP_PASSWORD}\"\n";
    assert_eq!(
        parse_err(text),
        "herald.toml line 4: `email.auth.password` uses ${SMTP_PASSWORD}, which is not set \
         in the environment"
    );
}

#[test]
fn unset_variable_in_a_target_names_the_target_key() {
    let text = r#"
[[targets]]
type = "slack_webhook"
name = "ops"
notify_on = ["run_failure"]
url = "${SLACK_WEBHOOK_URL}"
"#;
    assert_eq!(
        parse_err(text),
        "herald.toml line 6: `targets[0].url` uses ${SLACK_WEBHOOK_URL}, which is not set \
         in the environment"
    );
}

#[test]
fn unknown_key_error_names_the_dotted_key_and_line() {
    let text = "[notifications]\nmethod = \"smtp\"\n\nfetch_intervall = \"15s\"\n";
    assert_eq!(
        parse_err(text),
        "herald.toml line 4: unknown key `notifications.fetch_intervall`; expected one of: \
         method, inbox_enabled, dispatch_timeout, max_send_attempts, retry_interval, \
         max_retry_delay, fetch_interval, lease_count, lease_period, store_sync_interval, store_sync_buffer, \
         retention, webhook"
    );
}

#[test]
fn unknown_key_in_a_nested_table_names_the_dotted_key_and_line() {
    let text = "[email]\nhello = \"h\"\n\n[email.tls]\nstarttls = true\nskip_verfy = true\n";
    let error = parse_err(text);
    assert!(
        error.starts_with("herald.toml line 6: unknown key `email.tls.skip_verfy`; expected one of: force_tls, starttls, skip_verify,"),
        "{error}"
    );

    let error = parse_err("[email]\n[email.tsl]\nstarttls = true\n");
    assert_eq!(
        error,
        "herald.toml line 2: unknown key `email.tsl`; expected one of: from, smarthost, \
         hello, auth, tls"
    );

    let error = parse_err("datbase_url = \"sqlite://x\"");
    assert!(
        error.starts_with("herald.toml line 1: unknown key `datbase_url`; expected one of: database_url, base_url, username, notifications, email, targets, users"),
        "{error}"
    );
}

#[test]
fn unknown_key_in_a_user_target_names_its_path() {
    let text = r#"
[[users]]
username = "alice"
email = "alice@example.com"

[[users.targets]]
type = "slack_api"
name = "dm"
notify_on = ["apply_failure"]
token = "xoxb"
chanel = "U123"
"#;
    let error = parse_err(text);
    assert!(
        error.starts_with("herald.toml line 11: unknown key `users[0].targets[0].chanel`"),
        "{error}"
    );
}

#[test]
fn dotted_keys_implicit_tables_and_inline_tables_are_read_with_lines() {
    let text = "email.tls.starttls = true\n\n[notifications.webhook]\nendpoint = \"https://h/x\"\n";
    let config = parse(text).unwrap();
    assert!(config.email.tls.starttls);
    assert_eq!(
        config.notifications.webhook.endpoint.as_deref(),
        Some("https://h/x")
    );

    let error = parse_err("[notifications.webhook]\nendpoint = \"https://h/x\"\nsecret = \"s\"\n");
    assert!(
        error.starts_with("herald.toml line 3: unknown key `notifications.webhook.secret`; expected one of: endpoint, signing_secret"),
        "{error}"
    );
    let error = parse_err("\nemail = { tls = { starttls = \"perhaps\" } }\n");
    assert!(
        error.starts_with("herald.toml line 2: email.tls.starttls: invalid boolean `perhaps`"),
        "{error}"
    );
}

#[test]
fn bad_duration_in_the_file_names_key_and_line() {
    let text = "[notifications]\nretry_interval = \"5 minutez\"\n";
    assert_eq!(
        parse_err(text),
        "herald.toml line 2: notifications.retry_interval: invalid duration `5 minutez` \
         (expected e.g. 15s, 5m, 7d)"
    );
    let error = parse_err("[notifications]\nfetch_interval = 15\n");
    assert!(error.contains("a number needs a unit"), "{error}");
}

#[test]
fn a_duration_past_any_timestamp_is_refused_naming_the_key() {
    // 1,000,000 years past now is no date chrono (or a store) can hold.
    assert_eq!(
        parse_err("[notifications]\nlease_period = \"1000000y\"\n"),
        "herald.toml line 2: notifications.lease_period: `1000000y` is too long (at most \
         100years)"
    );
    for key in [
        "dispatch_timeout",
        "retry_interval",
        "fetch_interval",
        "store_sync_interval",
        "retention",
    ] {
        let error = parse_err(&format!("[notifications]\n{key} = \"300000y\"\n"));
        assert!(
            error.starts_with(&format!(
                "herald.toml line 2: notifications.{key}: `300000y` is too long"
            )),
            "{error}"
        );
    }
    let env = env_of(&[("HERALD_NOTIFICATIONS_RETENTION", "1000000 years")]);
    let error = Config::load(&ConfigSources::default(), &env).unwrap_err();
    assert_eq!(
        error.to_string(),
        "HERALD_NOTIFICATIONS_RETENTION: `1000000 years` is too long (at most 100years)"
    );
    let config = parse("[notifications]\nretention = \"100y\"\n").unwrap();
    assert_eq!(config.notifications.retention, MAX_DURATION);
}

#[test]
fn base_url_is_an_absolute_http_url_kept_without_trailing_slashes() {
    assert_eq!(parse("").unwrap().base_url, None);
    let cases = [
        ("https://coder.example.com", "https://coder.example.com"),
        ("https://coder.example.com/", "https://coder.example.com"),
        (
            "http://127.0.0.1:3000/herald//",
            "http://127.0.0.1:3000/herald",
        ),
    ];
    for (given, kept) in cases {
        let config = parse(&format!("base_url = \"{given}\"\n")).unwrap();
        assert_eq!(config.base_url.as_deref(), Some(kept), "{given}");
    }
    let env = env_of(&[("HERALD_BASE_URL", "https://env.example.com/")]);
    let config = Config::load(&ConfigSources::default(), &env).unwrap();
    assert_eq!(config.base_url.as_deref(), Some("https://env.example.com"));

    let refused = [
        (
            "coder.example.com",
            "invalid URL `coder.example.com` (expected an absolute http:// or https:// URL, \
             e.g. https://herald.example.com)",
        ),
        (
            "/relative",
            "invalid URL `/relative` (expected an absolute http:// or https:// URL, e.g. \
             https://herald.example.com)",
        ),
        (
            "ftp://coder.example.com",
            "invalid URL `ftp://coder.example.com` (expected an absolute http:// or \
             https:// URL, e.g. https://herald.example.com)",
        ),
        (
            "https://coder.example.com/?x=1",
            "`https://coder.example.com/?x=1` has a query or fragment; give the URL \
             templates append paths to, e.g. https://coder.example.com",
        ),
        (
            "https://user:pw@coder.example.com",
            "`https://user:<redacted>@coder.example.com` holds credentials, which would \
             be in every link sent",
        ),
    ];
    for (given, why) in refused {
        assert_eq!(
            parse_err(&format!("base_url = \"{given}\"\n")),
            format!("herald.toml line 1: base_url: {why}"),
            "{given}"
        );
    }
}

#[test]
fn bad_env_value_names_the_environment_variable() {
    let cases = [
        (
            "HERALD_NOTIFICATIONS_RETRY_INTERVAL",
            "5 minutez",
            "HERALD_NOTIFICATIONS_RETRY_INTERVAL: invalid duration `5 minutez` (expected e.g. 15s, 5m, 7d)",
        ),
        (
            "HERALD_NOTIFICATIONS_INBOX_ENABLED",
            "maybe",
            "HERALD_NOTIFICATIONS_INBOX_ENABLED: invalid boolean `maybe` (expected true/false, yes/no or 1/0)",
        ),
        (
            "HERALD_NOTIFICATIONS_MAX_SEND_ATTEMPTS",
            "0",
            "HERALD_NOTIFICATIONS_MAX_SEND_ATTEMPTS: must be at least 1, got 0",
        ),
        (
            "HERALD_NOTIFICATIONS_METHOD",
            "slack_api",
            "HERALD_NOTIFICATIONS_METHOD: `slack_api` cannot be the deployment default (expected smtp or webhook; slack_api is for targets)",
        ),
        (
            "HERALD_EMAIL_SMARTHOST",
            "smtp.example.com",
            "HERALD_EMAIL_SMARTHOST: invalid smarthost `smtp.example.com` (expected host:port, e.g. smtp.example.com:587)",
        ),
        (
            "HERALD_DATABASE_URL",
            "mysql://root:pw@db/x",
            "HERALD_DATABASE_URL: unsupported database URL scheme `mysql` (expected sqlite://PATH, postgres://… or postgresql://…)",
        ),
    ];
    for (name, value, expected) in cases {
        let env = env_of(&[(name, value)]);
        let error = Config::load(&ConfigSources::default(), &env).unwrap_err();
        assert_eq!(error.to_string(), expected);
    }
}

#[test]
fn env_booleans_accept_true_false_yes_no_one_zero() {
    for (value, expected) in [
        ("true", true),
        ("YES", true),
        ("1", true),
        ("False", false),
        ("no", false),
        ("0", false),
    ] {
        let env = env_of(&[("HERALD_EMAIL_TLS_STARTTLS", value)]);
        let config = Config::load(&ConfigSources::default(), &env).unwrap();
        assert_eq!(config.email.tls.starttls, expected, "{value}");
    }
}

#[test]
fn every_env_variable_overrides_its_setting() {
    let values = [
        ("HERALD_DATABASE_URL", "postgresql://db/herald"),
        ("HERALD_BASE_URL", "https://herald.example.com/"),
        ("HERALD_USERNAME", "alice"),
        ("HERALD_NOTIFICATIONS_METHOD", "webhook"),
        ("HERALD_NOTIFICATIONS_INBOX_ENABLED", "false"),
        ("HERALD_NOTIFICATIONS_DISPATCH_TIMEOUT", "10s"),
        ("HERALD_NOTIFICATIONS_MAX_SEND_ATTEMPTS", "9"),
        ("HERALD_NOTIFICATIONS_RETRY_INTERVAL", "1s"),
        ("HERALD_NOTIFICATIONS_MAX_RETRY_DELAY", "10m"),
        ("HERALD_NOTIFICATIONS_FETCH_INTERVAL", "2s"),
        ("HERALD_NOTIFICATIONS_LEASE_COUNT", "7"),
        ("HERALD_NOTIFICATIONS_LEASE_PERIOD", "20s"),
        ("HERALD_NOTIFICATIONS_STORE_SYNC_INTERVAL", "3s"),
        ("HERALD_NOTIFICATIONS_STORE_SYNC_BUFFER", "8"),
        ("HERALD_NOTIFICATIONS_RETENTION", "1d"),
        (
            "HERALD_NOTIFICATIONS_WEBHOOK_ENDPOINT",
            "https://hooks.example.com/x",
        ),
        ("HERALD_NOTIFICATIONS_WEBHOOK_SIGNING_SECRET", "sign"),
        ("HERALD_EMAIL_FROM", "Herald <h@example.com>"),
        ("HERALD_EMAIL_SMARTHOST", "[::1]:2525"),
        ("HERALD_EMAIL_HELLO", "herald.local"),
        ("HERALD_EMAIL_AUTH_USERNAME", "u"),
        ("HERALD_EMAIL_AUTH_PASSWORD_FILE", "/run/secrets/smtp"),
        ("HERALD_EMAIL_AUTH_IDENTITY", "id"),
        ("HERALD_EMAIL_FORCE_TLS", "yes"),
        ("HERALD_EMAIL_TLS_STARTTLS", "1"),
        ("HERALD_EMAIL_TLS_SKIP_VERIFY", "true"),
        ("HERALD_EMAIL_TLS_SERVER_NAME", "mail"),
        ("HERALD_EMAIL_TLS_CERT_FILE", "/c.pem"),
        ("HERALD_EMAIL_TLS_CERT_KEY_FILE", "/k.pem"),
        ("HERALD_EMAIL_TLS_CA_FILE", "/ca.pem"),
    ];
    let env = env_of(&values);
    let c = Config::load(&ConfigSources::default(), &env).unwrap();
    let n = &c.notifications;
    assert_eq!(c.database_url, "postgresql://db/herald");
    assert_eq!(c.base_url.as_deref(), Some("https://herald.example.com"));
    assert_eq!(c.username.as_deref(), Some("alice"));
    assert_eq!(n.method, Method::Webhook);
    assert!(!n.inbox_enabled);
    assert_eq!(n.dispatch_timeout, Duration::from_secs(10));
    assert_eq!(n.max_send_attempts, 9);
    assert_eq!(n.max_retry_delay, Duration::from_secs(600));
    assert_eq!(n.retry_interval, Duration::from_secs(1));
    assert_eq!(n.fetch_interval, Duration::from_secs(2));
    assert_eq!(n.lease_count, 7);
    assert_eq!(n.lease_period, Duration::from_secs(20));
    assert_eq!(n.store_sync_interval, Duration::from_secs(3));
    assert_eq!(n.store_sync_buffer, 8);
    assert_eq!(n.retention, Duration::from_secs(86_400));
    assert_eq!(
        n.webhook.endpoint.as_deref(),
        Some("https://hooks.example.com/x")
    );
    assert_eq!(n.webhook.signing_secret.as_ref().unwrap().expose(), "sign");
    let e = &c.email;
    assert_eq!(e.from.as_deref(), Some("Herald <h@example.com>"));
    assert_eq!(e.smarthost.as_deref(), Some("[::1]:2525"));
    assert_eq!(e.hello, "herald.local");
    assert_eq!(e.auth.username.as_deref(), Some("u"));
    assert_eq!(
        e.auth.password_file.as_deref(),
        Some(Path::new("/run/secrets/smtp"))
    );
    assert_eq!(e.auth.identity.as_deref(), Some("id"));
    assert!(e.tls.force_tls && e.tls.starttls && e.tls.skip_verify);
    assert_eq!(e.tls.server_name.as_deref(), Some("mail"));
    assert_eq!(e.tls.cert_file.as_deref(), Some(Path::new("/c.pem")));
    assert_eq!(e.tls.cert_key_file.as_deref(), Some(Path::new("/k.pem")));
    assert_eq!(e.tls.ca_file.as_deref(), Some(Path::new("/ca.pem")));
    assert_eq!(
        env_table().count(),
        values.len() + 1,
        "plus HERALD_EMAIL_AUTH_PASSWORD"
    );
}

#[test]
fn empty_env_variable_counts_as_unset() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(&dir, "h.toml", "[email]\nsmarthost = \"mail:25\"\n");
    let env = env_of(&[("HERALD_EMAIL_SMARTHOST", ""), ("HERALD_CONFIG", "")]);
    let sources = ConfigSources {
        file: Some(file),
        database_url: None,
    };
    let config = Config::load(&sources, &env).unwrap();
    assert_eq!(config.email.smarthost.as_deref(), Some("mail:25"));
}

#[test]
fn dispatch_timeout_not_shorter_than_lease_period_is_refused() {
    let text = "[notifications]\ndispatch_timeout = \"2m\"\n";
    assert_eq!(
        parse_err(text),
        "notifications.dispatch_timeout (2m from herald.toml line 2) must be shorter than \
         notifications.lease_period (2m by default), or a slow delivery outlives its lease \
         and is sent twice; lower dispatch_timeout or raise lease_period"
    );
    let env = env_of(&[("HERALD_NOTIFICATIONS_LEASE_PERIOD", "30s")]);
    let error = Config::load(&ConfigSources::default(), &env)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("(1m by default)")
            && error.contains("(30s from HERALD_NOTIFICATIONS_LEASE_PERIOD)"),
        "{error}"
    );
}

#[test]
fn method_other_than_smtp_or_webhook_is_refused() {
    let error = parse_err("[notifications]\nmethod = \"inbox\"\n");
    assert!(
        error.starts_with("herald.toml line 2: notifications.method: `inbox` cannot be"),
        "{error}"
    );
    let error = parse_err("[notifications]\nmethod = \"mail\"\n");
    assert!(
        error.contains("unknown method `mail` (expected smtp or webhook)"),
        "{error}"
    );
}

#[test]
fn wrong_toml_type_names_the_key_and_what_was_found() {
    assert_eq!(
        parse_err("[notifications]\ninbox_enabled = [true]\n"),
        "herald.toml line 2: notifications.inbox_enabled: expected a boolean, found an array"
    );
    assert_eq!(
        parse_err("email = \"x\"\n"),
        "herald.toml line 1: email: expected a table ([email]), found a string"
    );
}

#[test]
fn invalid_toml_names_the_line() {
    let error = parse_err("[notifications]\nmethod = smtp\n");
    assert!(
        error.starts_with("herald.toml line 2: invalid TOML: "),
        "{error}"
    );
    let error = parse_err("username = 1979-05-27\n");
    assert!(
        error.contains("line 1") && error.contains("date-time"),
        "{error}"
    );
}

#[test]
fn target_without_url_is_refused() {
    let text = r#"
[[targets]]
type = "slack_webhook"
name = "ops"
notify_on = ["run_failure"]
"#;
    assert_eq!(
        parse_err(text),
        "herald.toml line 2: targets[0].url: missing; a slack_webhook target needs the URL \
         to post to"
    );
}

#[test]
fn slack_api_target_needs_token_and_channel() {
    let base = "[[targets]]\ntype = \"slack_api\"\nname = \"dm\"\nnotify_on = [\"x\"]\n";
    let error = parse_err(&format!("{base}channel = \"U1\"\n"));
    assert!(error.contains("targets[0].token: missing"), "{error}");
    let error = parse_err(&format!("{base}token = \"xoxb\"\n"));
    assert!(error.contains("targets[0].channel: missing"), "{error}");
    let config = parse(&format!("{base}token = \"xoxb\"\nchannel = \"U1\"\n")).unwrap();
    assert_eq!(config.targets[0].api_base_url, "https://slack.com/api");
}

#[test]
fn target_key_of_another_type_is_refused() {
    let text = r#"
[[targets]]
type = "slack_webhook"
name = "ops"
notify_on = ["run_failure"]
url = "https://hooks.slack.com/services/T/B/X"
token = "xoxb"
"#;
    assert_eq!(
        parse_err(text),
        "herald.toml line 7: targets[0].token: a slack_webhook target does not take \
         `token` (its own keys: url)"
    );
}

#[test]
fn target_needs_a_type_a_name_and_events() {
    let error = parse_err("[[targets]]\nname = \"a\"\nnotify_on = [\"x\"]\n");
    assert!(
        error.contains("targets[0].type: missing; expected one of"),
        "{error}"
    );
    let error = parse_err("[[targets]]\ntype = \"pager\"\n");
    assert!(error.contains("unknown target type `pager`"), "{error}");
    let error = parse_err(
        "[[targets]]\ntype = \"webhook\"\nname = \"a\"\nurl = \"http://x\"\nnotify_on = []\n",
    );
    assert!(
        error.starts_with(
            "herald.toml line 5: targets[0].notify_on: target `a` listens to no event"
        ),
        "{error}"
    );
}

#[test]
fn smtp_target_needs_recipients_and_a_host_or_the_smarthost() {
    let no_recipients =
        "[[targets]]\ntype = \"smtp\"\nname = \"m\"\nnotify_on = [\"x\"]\nhost = \"mail\"\n";
    assert!(parse_err(no_recipients).contains("targets[0].recipients: missing"));

    let hostless = "[[targets]]\ntype = \"smtp\"\nname = \"m\"\nnotify_on = [\"x\"]\nrecipients = [\"a@example.com\"]\n";
    assert_eq!(
        parse_err(hostless),
        "herald.toml line 1: targets[0].host: smtp target `m` has no host and \
         email.smarthost is not set; give the target a host or set email.smarthost"
    );
    let dir = tempfile::tempdir().unwrap();
    let sources = ConfigSources {
        file: Some(write_file(&dir, "h.toml", hostless)),
        database_url: None,
    };
    let env = env_of(&[("HERALD_EMAIL_SMARTHOST", "mail:25")]);
    let config = Config::load(&sources, &env).unwrap();
    assert_eq!(config.targets[0].recipients, ["a@example.com"]);
}

#[test]
fn target_names_are_unique_globally_and_per_user() {
    let target = "type = \"webhook\"\nname = \"ops\"\nnotify_on = [\"x\"]\nurl = \"http://h/p\"\n";
    let error = parse_err(&format!("[[targets]]\n{target}\n[[targets]]\n{target}"));
    assert!(
        error.starts_with("herald.toml line 7: targets[1].name: target name `ops` is already used by targets[0] (herald.toml line 1)"),
        "{error}"
    );

    let user = "[[users]]\nusername = \"a\"\nemail = \"a@x\"\n";
    let shared_name = format!("[[targets]]\n{target}\n{user}[[users.targets]]\n{target}");
    let config = parse(&shared_name).unwrap();
    assert_eq!(
        config.target_refs().len(),
        2,
        "a user's target may share a global name"
    );

    let twice = format!("{user}[[users.targets]]\n{target}[[users.targets]]\n{target}");
    assert!(
        parse_err(&twice).contains("users[0].targets[1].name: target name `ops` is already used")
    );
}

#[test]
fn usernames_are_unique() {
    let user = "[[users]]\nusername = \"alice\"\nemail = \"a@example.com\"\n";
    let error = parse_err(&format!("{user}{user}"));
    assert!(
        error.starts_with(
            "herald.toml line 4: users[1].username: user `alice` is already declared by users[0]"
        ),
        "{error}"
    );
}

#[test]
fn users_are_read_with_roles_and_own_targets() {
    let text = r#"
[[users]]
username = "admin"
email = "admin@example.com"
name = "The Admin"
roles = ["owner", "oncall"]

  [[users.targets]]
  type = "slack_api"
  name = "admin-dm"
  notify_on = ["apply_failure", "audit_failure"]
  token = "xoxb-1"
  channel = "U123"
"#;
    let config = parse(text).unwrap();
    let user = &config.users[0];
    assert_eq!(user.roles, [Role::Owner, Role::Oncall]);
    assert_eq!(user.targets[0].target_type, TargetType::SlackApi);
    let refs = config.target_refs();
    assert_eq!(refs[0].owner.as_deref(), Some("admin"));

    let error = parse_err("[[users]]\nusername = \"a\"\nemail = \"a@x\"\nroles = [\"admin\"]\n");
    assert!(
        error.contains("users[0].roles: unknown role `admin`; expected one of: owner"),
        "{error}"
    );
}

#[test]
fn event_overrides_are_read_by_event_name() {
    let text = r#"
[events.run_failure]
body_template = """{{ body }}

{{ file_tail("/var/log/pipeline.log", 50) }}"""

[events.apply_start]
title_template = "Deploying {{ labels.environment }}"
"#;
    let config = parse(text).unwrap();
    assert_eq!(
        config.events.keys().collect::<Vec<_>>(),
        ["apply_start", "run_failure"]
    );
    let run_failure = &config.events["run_failure"];
    assert_eq!(run_failure.title_template, None);
    assert_eq!(
        run_failure.body_template.as_deref(),
        Some("{{ body }}\n\n{{ file_tail(\"/var/log/pipeline.log\", 50) }}")
    );
    assert_eq!(
        config.events["apply_start"].title_template.as_deref(),
        Some("Deploying {{ labels.environment }}")
    );
    assert!(parse("").unwrap().events.is_empty());
}

#[test]
fn unknown_key_in_an_event_override_names_the_key_and_line() {
    let text = "[events.run_failure]\ntitle_template = \"t\"\n\nbody = \"b\"\n";
    assert_eq!(
        parse_err(text),
        "herald.toml line 4: unknown key `events.run_failure.body`; expected one of: \
         title_template, body_template"
    );
    let error = parse_err("evnts.run_failure.body_template = \"b\"\n");
    assert!(
        error.starts_with(
            "herald.toml line 1: unknown key `evnts`; expected one of: database_url, \
             base_url, username, notifications, email, targets, users, events"
        ),
        "{error}"
    );
}

#[test]
fn event_override_must_be_a_table_that_overrides_something() {
    assert_eq!(
        parse_err("events = [\"run_failure\"]\n"),
        "herald.toml line 1: events: expected a table of event names \
         ([events.run_failure]), found an array"
    );
    assert_eq!(
        parse_err("[events]\nrun_failure = \"{{ body }}\"\n"),
        "herald.toml line 2: events.run_failure: expected a table ([events.run_failure]) \
         with title_template and/or body_template, found a string"
    );
    assert_eq!(
        parse_err("\n[events.run_failure]\n"),
        "herald.toml line 2: events.run_failure: overrides nothing: set title_template \
         and/or body_template, or remove the table"
    );
    assert_eq!(
        parse_err("[events.run_failure]\nbody_template = 5\n"),
        "herald.toml line 2: events.run_failure.body_template: expected a string, found \
         an integer"
    );
}

#[test]
fn event_override_templates_read_the_environment_like_every_string() {
    let env = env_of(&[("TEAM", "data-eng")]);
    let text = "[events.run_failure]\ntitle_template = \"[${TEAM}] {{ title }}\"\n";
    let config = Config::from_toml_str(text, "herald.toml", &env).unwrap();
    assert_eq!(
        config.events["run_failure"].title_template.as_deref(),
        Some("[data-eng] {{ title }}")
    );
}

#[test]
fn database_url_must_be_sqlite_or_postgres() {
    for url in [
        "sqlite://herald.db",
        "sqlite::memory:",
        "postgres://h/db",
        "postgresql://h/db",
    ] {
        assert!(parse(&format!("database_url = \"{url}\"")).is_ok(), "{url}");
    }
    let error = parse_err("database_url = \"mysql://u:secret@h/db\"");
    assert!(
        error.contains("unsupported database URL scheme `mysql`"),
        "{error}"
    );
    assert!(
        !error.contains("secret"),
        "the URL's password is not echoed: {error}"
    );
}

#[test]
fn smarthost_must_be_host_and_port() {
    for bad in ["mail", "mail:", ":25", "mail:smtp", "mail:70000"] {
        let error = parse_err(&format!("[email]\nsmarthost = \"{bad}\""));
        assert!(
            error.contains("email.smarthost: invalid smarthost"),
            "{bad}: {error}"
        );
    }
    assert!(parse("[email]\nsmarthost = \"mail.example.com:465\"").is_ok());
}

#[test]
fn password_and_password_file_together_are_refused() {
    let text = "[email.auth]\npassword = \"p\"\npassword_file = \"/run/p\"\n";
    assert_eq!(
        parse_err(text),
        "email.auth.password (herald.toml line 2) and email.auth.password_file \
         (herald.toml line 3) are both set; keep one"
    );
}

#[test]
fn client_certificate_needs_its_key() {
    let error = parse_err("[email.tls]\ncert_file = \"/c.pem\"\n");
    assert!(
        error.starts_with(
            "email.tls.cert_file (herald.toml line 2) is set but email.tls.cert_key_file is not"
        ),
        "{error}"
    );
}

#[test]
fn secret_debug_and_display_are_redacted() {
    let secret = Secret::new("hunter2");
    assert_eq!(format!("{secret:?}"), "<redacted>");
    assert_eq!(secret.to_string(), "<redacted>");
    assert_eq!(secret.expose(), "hunter2");

    let env = env_of(&[("HERALD_EMAIL_AUTH_PASSWORD", "hunter2")]);
    let config = Config::load(&ConfigSources::default(), &env).unwrap();
    assert!(!format!("{config:?}").contains("hunter2"));
}

#[test]
fn invalid_secret_url_is_reported_redacted() {
    let text = "[[targets]]\ntype = \"webhook\"\nname = \"a\"\nnotify_on = [\"x\"]\nurl = \"hooks.example.com/T0/secret\"\n";
    let error = parse_err(text);
    assert!(error.contains("targets[0].url: invalid URL"), "{error}");
    assert!(!error.contains("secret"), "{error}");
}

#[test]
fn redact_url_keeps_scheme_host_and_port_only() {
    assert_eq!(
        redact_url("https://hooks.slack.com/services/T0/B0/XXXX"),
        "https://hooks.slack.com/<redacted>"
    );
    assert_eq!(
        redact_url("http://user:pw@localhost:8080/hook?token=abc"),
        "http://localhost:8080/<redacted>"
    );
    assert_eq!(redact_url("https://example.com"), "https://example.com");
    assert_eq!(redact_url("not a url"), "<redacted>");
    assert_eq!(
        redact_url_password("postgres://herald:pw@db:5432/herald"),
        "postgres://herald:<redacted>@db:5432/herald"
    );
    assert_eq!(
        redact_url_password("sqlite://herald.db"),
        "sqlite://herald.db"
    );
}

#[test]
fn redact_url_password_hides_password_query_parameters_too() {
    let cases = [
        (
            "postgres://db/herald?password=s3cret&sslmode=require",
            "postgres://db/herald?password=<redacted>&sslmode=require",
        ),
        (
            "postgresql://herald@db:5432/herald?sslmode=verify-full&sslpassword=k3y",
            "postgresql://herald@db:5432/herald?sslmode=verify-full&sslpassword=<redacted>",
        ),
        (
            "postgres://herald:pw@db/herald?application_name=herald&PassWord=s3cret",
            "postgres://herald:<redacted>@db/herald?application_name=herald&PassWord=<redacted>",
        ),
        // Raw `&` and `#` in a password: no piece of it shows.
        (
            "postgres://db/herald?password=ab&cd&sslmode=require",
            "postgres://db/herald?password=<redacted>&sslmode=require",
        ),
        (
            "postgres://db/herald?password=ab#cd",
            "postgres://db/herald?password=<redacted>#<redacted>",
        ),
        (
            "postgres://db/herald?sslmode=require#section",
            "postgres://db/herald?sslmode=require#section",
        ),
        // sqlx decodes the names and values of query parameters.
        (
            "postgres://db/herald?pass%77ord=a%26b%3Dc&sslmode=disable",
            "postgres://db/herald?pass%77ord=<redacted>&sslmode=disable",
        ),
        (
            "postgres://db/herald?sslmode=require&passfile=/etc/herald/pgpass",
            "postgres://db/herald?sslmode=require&passfile=/etc/herald/pgpass",
        ),
        (
            "postgres://db/herald?password",
            "postgres://db/herald?password",
        ),
        ("sqlite://herald.db?mode=rwc", "sqlite://herald.db?mode=rwc"),
    ];
    for (url, shown) in cases {
        assert_eq!(redact_url_password(url), shown, "{url}");
    }
}

#[test]
fn configured_methods_follow_smarthost_and_webhook_endpoint() {
    let mut config = Config::default();
    assert_eq!(config.configured_methods(), [Method::Inbox]);
    config.email.smarthost = Some("mail:25".to_string());
    config.notifications.webhook.endpoint = Some("https://h/x".to_string());
    assert_eq!(
        config.configured_methods(),
        [Method::Smtp, Method::Webhook, Method::Inbox]
    );
}

#[test]
fn a_table_made_by_a_dotted_key_or_header_is_placed_at_that_key() {
    assert_eq!(
        parse_err("\n[[users.targets]]\nname = \"x\"\n"),
        "herald.toml line 2: users: expected an array of tables ([[users]])"
    );
    assert_eq!(
        parse_err("[notifications]\nwebhook.endpoint.x = 1\n"),
        "herald.toml line 2: notifications.webhook.endpoint: expected a string, found a table"
    );
}

#[test]
fn an_integer_past_64_bits_is_invalid_toml() {
    assert_eq!(
        parse_err("\n[notifications]\nlease_count = 99999999999999999999\n"),
        "herald.toml line 3: invalid TOML: number too large to fit in target type"
    );
}
