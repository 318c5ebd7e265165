//! The configuration's behaviour as DESIGN §9 states it: precedence, every key and variable,
//! and each refusal with its exact message. What a file alone decides is a fixture under
//! `tests/fixtures/config/` (walked by the last two tests); what needs the environment, flags
//! or several files stays here as code.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::interpolate::{InterpolationError, interpolate};
use super::*;
use crate::model::Method;

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

/// The configuration from defaults and `pairs` as the environment, with no file.
fn load_env(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::load(&ConfigSources::default(), &env_of(pairs))
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
fn config_file_named_by_the_flag_that_does_not_exist_is_an_error() {
    // HERALD_CONFIG naming an absent file is a case of bad_env_value_names_the_environment_variable.
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
fn a_hundred_years_is_the_longest_duration_kept() {
    // Longer ones are refused: fixtures invalid/*_too_long.toml, and the environment's in
    // bad_env_value_names_the_environment_variable.
    let config = parse("[notifications]\nretention = \"100y\"\n").unwrap();
    assert_eq!(config.notifications.retention, MAX_DURATION);
}

#[test]
fn base_url_from_the_environment_is_kept_without_trailing_slashes() {
    let config = load_env(&[("HERALD_BASE_URL", "https://env.example.com/")]).unwrap();
    assert_eq!(config.base_url.as_deref(), Some("https://env.example.com"));
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
        (
            "HERALD_NOTIFICATIONS_RETENTION",
            "1000000 years",
            "HERALD_NOTIFICATIONS_RETENTION: `1000000 years` is too long (at most 100years)",
        ),
        // Where each duration came from: the default and the variable.
        (
            "HERALD_NOTIFICATIONS_LEASE_PERIOD",
            "30s",
            "notifications.dispatch_timeout (1m by default) must be shorter than \
             notifications.lease_period (30s from HERALD_NOTIFICATIONS_LEASE_PERIOD), or a slow \
             delivery outlives its lease and is sent twice; lower dispatch_timeout or raise \
             lease_period",
        ),
        (
            "HERALD_CONFIG",
            "/nonexistent/herald.toml",
            "config file /nonexistent/herald.toml (from HERALD_CONFIG) does not exist",
        ),
    ];
    for (name, value, expected) in cases {
        let error = load_env(&[(name, value)]).unwrap_err();
        assert_eq!(error.to_string(), expected, "{name}={value}");
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
        let config = load_env(&[("HERALD_EMAIL_TLS_STARTTLS", value)]).unwrap();
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
        ("HERALD_HTTP_LISTEN", "0.0.0.0:8080"),
        ("HERALD_SSH_LISTEN", "127.0.0.1:2222"),
        ("HERALD_SSH_HOST_KEY_FILE", "/var/lib/herald/host_key"),
        ("HERALD_SSH_MAX_SESSIONS", "4"),
        ("HERALD_SSH_IDLE_TIMEOUT", "5m"),
        ("HERALD_SSH_AUTH_ATTEMPTS_PER_MINUTE", "3"),
    ];
    let c = load_env(&values).unwrap();
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
    assert_eq!(c.http.listen, Some("0.0.0.0:8080".parse().unwrap()));
    assert_eq!(c.ssh.listen, Some("127.0.0.1:2222".parse().unwrap()));
    assert_eq!(c.ssh.host_key_file, Path::new("/var/lib/herald/host_key"));
    assert_eq!(c.ssh.max_sessions, 4);
    assert_eq!(c.ssh.idle_timeout, Duration::from_secs(300));
    assert_eq!(c.ssh.auth_attempts_per_minute, 3);
    assert_eq!(
        env_table().count(),
        values.len() + 1,
        "plus HERALD_EMAIL_AUTH_PASSWORD"
    );
}

#[test]
fn http_listen_from_the_environment_beats_the_file_and_a_bad_one_names_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(&dir, "h.toml", "[http]\nlisten = \"127.0.0.1:8080\"\n");
    let sources = ConfigSources {
        file: Some(file),
        database_url: None,
    };
    let from_file = Config::load(&sources, &no_env).unwrap();
    assert_eq!(
        from_file.http.listen,
        Some("127.0.0.1:8080".parse().unwrap())
    );
    let env = env_of(&[("HERALD_HTTP_LISTEN", "[::1]:9090")]);
    let from_env = Config::load(&sources, &env).unwrap();
    assert_eq!(from_env.http.listen, Some("[::1]:9090".parse().unwrap()));

    let env = env_of(&[("HERALD_HTTP_LISTEN", "herald:80")]);
    let error = Config::load(&sources, &env).unwrap_err();
    assert_eq!(
        error.to_string(),
        "HERALD_HTTP_LISTEN: invalid address `herald:80` (expected IP:PORT, e.g. 127.0.0.1:8080 or [::]:8080)"
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
fn smtp_target_without_a_host_uses_the_smarthost_from_the_environment() {
    let sources = ConfigSources {
        file: Some(fixture_dir().join("invalid/smtp_target_without_host_or_smarthost.toml")),
        database_url: None,
    };
    let env = env_of(&[("HERALD_EMAIL_SMARTHOST", "mail:25")]);
    let config = Config::load(&sources, &env).unwrap();
    assert_eq!(config.targets[0].smtp.recipients, ["a@example.com"]);
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
fn secret_debug_and_display_are_redacted() {
    let secret = Secret::new("hunter2");
    assert_eq!(format!("{secret:?}"), "<redacted>");
    assert_eq!(secret.to_string(), "<redacted>");
    assert_eq!(secret.expose(), "hunter2");

    let config = load_env(&[("HERALD_EMAIL_AUTH_PASSWORD", "hunter2")]).unwrap();
    assert!(!format!("{config:?}").contains("hunter2"));
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

/// The folder of config fixtures: `invalid/NAME.toml` beside `NAME.err` (the exact error),
/// `valid/NAME.toml` beside `NAME.yields` (one `path = Debug value` a line).
fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config")
}

/// Each `.toml` in `folder` with the text of its `sidecar` file, sorted by name; a fixture
/// without its sidecar, or a sidecar without its fixture, fails the walk.
fn fixtures(folder: &str, sidecar: &str) -> Vec<(String, String, String)> {
    let dir = fixture_dir().join(folder);
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    names.sort();
    for path in &names {
        let extension = path.extension().and_then(|e| e.to_str());
        let partner = match extension {
            Some("toml") => path.with_extension(sidecar),
            Some(e) if e == sidecar => path.with_extension("toml"),
            _ => panic!("{}: neither a fixture nor its .{sidecar}", path.display()),
        };
        assert!(
            partner.exists(),
            "{} has no {}",
            path.display(),
            partner.display()
        );
    }
    names
        .iter()
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .map(|path| {
            let read = |path: &Path| {
                std::fs::read_to_string(path)
                    .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
            };
            let name = format!("{folder}/{}", path.file_name().unwrap().to_string_lossy());
            (name, read(path), read(&path.with_extension(sidecar)))
        })
        .collect()
}

/// The `Debug` text of the setting a `.yields` line names.
fn yielded(config: &Config, path: &str) -> String {
    if let Some(rest) = path.strip_prefix("events.").filter(|rest| *rest != "keys") {
        let (event, field) = rest.split_once('.').expect("events.EVENT.FIELD");
        let event = &config.events[event];
        return match field {
            "title_template" => format!("{:?}", event.title_template),
            "body_template" => format!("{:?}", event.body_template),
            _ => panic!("no such event setting `{field}`"),
        };
    }
    match path {
        "database_url" => format!("{:?}", config.database_url),
        "base_url" => format!("{:?}", config.base_url),
        "notifications.method" => format!("{:?}", config.notifications.method),
        "notifications.retention" => format!("{:?}", config.notifications.retention),
        "notifications.store_sync_interval" => {
            format!("{:?}", config.notifications.store_sync_interval)
        }
        "notifications.webhook.endpoint" => format!("{:?}", config.notifications.webhook.endpoint),
        "email.hello" => format!("{:?}", config.email.hello),
        "email.smarthost" => format!("{:?}", config.email.smarthost),
        "email.tls.starttls" => format!("{:?}", config.email.tls.starttls),
        "http.listen" => format!("{:?}", config.http.listen),
        "targets[0].api_base_url" => format!("{:?}", config.targets[0].slack_api.api_base_url),
        "users[0].roles" => format!("{:?}", config.users[0].roles),
        "users[0].targets[0].target_type" => {
            format!("{:?}", config.users[0].targets[0].target_type)
        }
        "target_refs.len" => format!("{:?}", config.target_refs().len()),
        "target_refs[0].owner" => format!("{:?}", config.target_refs()[0].owner),
        "events.keys" => format!("{:?}", config.events.keys().collect::<Vec<_>>()),
        _ => panic!("no such setting `{path}` in yielded()"),
    }
}

#[test]
fn invalid_config_fixtures_are_refused_with_their_exact_error() {
    let cases = fixtures("invalid", "err");
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(name, text, expected)| {
            let expected = expected.strip_suffix('\n').unwrap_or(expected);
            match parse(text) {
                Ok(config) => Some(format!("{name}: expected an error, got {config:?}")),
                Err(error) if error.to_string() == expected => None,
                Err(error) => Some(format!(
                    "{name}:\n  expected: {expected}\n  got:      {error}"
                )),
            }
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        cases.len() >= 60,
        "only {} invalid fixtures found",
        cases.len()
    );
}

#[test]
fn valid_config_fixtures_yield_their_settings() {
    let cases = fixtures("valid", "yields");
    let mut failures = Vec::new();
    for (name, text, yields) in &cases {
        let config = match parse(text) {
            Ok(config) => config,
            Err(error) => {
                failures.push(format!("{name}: {error}"));
                continue;
            }
        };
        for line in yields.lines().filter(|line| !line.trim().is_empty()) {
            let (path, expected) = line.split_once(" = ").expect("PATH = VALUE");
            let got = yielded(&config, path);
            if got != expected {
                failures.push(format!(
                    "{name}: {path}\n  expected: {expected}\n  got:      {got}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        cases.len() >= 14,
        "only {} valid fixtures found",
        cases.len()
    );
}
