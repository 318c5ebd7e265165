//! The producers' API (issue 11): the release `herald serve --http` taking `POST /api/v1/events`
//! from keep-alive clients, 1 and 100 recipients an event, beside `herald enqueue` (one CLI
//! process an event) on the same store.
//!
//! Notifications are paused before the start, so the dispatcher leases nothing and the server's
//! CPU is the API's and the enqueue path's alone; `notifications.method = webhook` (the endpoint
//! is the bench's sink, never called while paused) so each recipient gets a webhook message and
//! its inbox copy: 2 messages a recipient.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use herald::model::Role;
use herald::service::{NewUser, Service};

/// Concurrent keep-alive clients posting events.
pub(super) const CLIENTS: usize = 12;
/// `herald enqueue` processes per CLI measurement (one after the other).
pub(super) const CLI_EVENTS: usize = 50;
/// The event every report is for; its one required label is `name`, varied per report so the
/// daily dedupe keeps every one.
const API_EVENT: &str = "workspace_deleted";
/// The owner whose token the clients send.
const OWNER: &str = "bench-owner";
/// Messages routing makes per recipient: the webhook one and the inbox copy.
const PER_RECIPIENT: usize = 2;

/// One API run: `n` reports of `recipients` recipients each.
pub(super) struct ApiRun {
    pub backend: Backend,
    pub recipients: usize,
    pub n: usize,
    pub events_per_second: f64,
    /// The server's CPU (user + system, from `/proc`) over the posts, per event.
    pub cpu_us_per_event: f64,
    pub p50: Duration,
    pub p99: Duration,
    /// `herald enqueue` processes, one after the other, against the same store.
    pub cli_events_per_second: f64,
}

impl ApiRun {
    pub(super) fn messages_per_second(&self) -> f64 {
        self.events_per_second * (self.recipients * PER_RECIPIENT) as f64
    }
}

/// A fresh store with the owner, `recipients` users and the owner's token; notifications
/// paused. Returns the token's secret.
async fn seeded_store(url: &str, sink_url: &str, recipients: usize) -> anyhow::Result<String> {
    let store = store::open(url, OpenMode::Migrate).await?;
    let mut config = default_config(url, sink_url);
    config.notifications.method = Method::Webhook;
    let service = Service::start(store, Arc::new(config)).await?;
    let owner = service
        .add_user(
            None,
            NewUser {
                username: OWNER.into(),
                email: "owner@example.com".into(),
                name: "Bench Owner".into(),
                roles: vec![Role::Owner],
            },
        )
        .await?;
    for i in 0..recipients {
        service
            .add_user(
                Some(&owner),
                NewUser {
                    username: recipient(i),
                    email: format!("{}@example.com", recipient(i)),
                    name: format!("User {i}"),
                    roles: Vec::new(),
                },
            )
            .await?;
    }
    let (_, secret) = service.create_token(&owner, "bench", None).await?;
    service.set_paused(&owner, true).await?;
    Ok(secret.expose().to_string())
}

fn recipient(i: usize) -> String {
    format!("user{i:03}")
}

fn recipients_of(count: usize) -> Vec<String> {
    (0..count).map(recipient).collect()
}

/// The serve process's environment: the store, the webhook default, the sink.
fn serve_settings(url: &str, sink_url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("HERALD_DATABASE_URL", url.to_string()),
        ("HERALD_NOTIFICATIONS_METHOD", "webhook".to_string()),
        (
            "HERALD_NOTIFICATIONS_WEBHOOK_ENDPOINT",
            sink_url.to_string(),
        ),
    ]
}

/// A free loopback port (bound, read, released).
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// `n` reports of `recipients` recipients each to a real `herald serve --http`, then
/// [`CLI_EVENTS`] `herald enqueue` processes of the same shape; checks the store holds every
/// message made.
pub(super) async fn api_run(
    backend: Backend,
    recipients: usize,
    n: usize,
) -> anyhow::Result<ApiRun> {
    let db = backend.fresh_db();
    let sink = HttpSink::ok().await;
    sink.set_recording(false);
    let token = seeded_store(&db.url, &sink.url, recipients).await?;
    let users = recipients_of(recipients);
    let settings = serve_settings(&db.url, &sink.url);
    let address = format!("127.0.0.1:{}", free_port()?);
    let base = format!("http://{address}");

    let posts = Mutex::new(None);
    let run = run_serve(
        n,
        &settings,
        &["--http".to_string(), address.clone()],
        |_, pid| {
            let (base, token, users, posts) = (&base, &token, &users, &posts);
            async move {
                wait_until_ready(base).await?;
                let (cpu_before, _) = usage_of(pid)?;
                let outcome = post_all(base, token, users, n).await?;
                let elapsed = outcome.elapsed;
                *posts.lock().expect("posts") = Some((cpu_before, outcome));
                Ok(elapsed)
            }
        },
    )
    .await?;
    let (cpu_before, mut outcome) = posts
        .into_inner()
        .expect("posts")
        .context("the posts did not finish")?;
    let cpu = run.cpu.saturating_sub(cpu_before);

    let cli_elapsed = cli_enqueue_all(&settings, &users, CLI_EVENTS)?;

    let observer = store::open(&db.url, OpenMode::Existing).await?;
    let counts = observer.count_by_state().await?;
    let expected = ((n + CLI_EVENTS) * recipients * PER_RECIPIENT) as i64;
    let pending = count_of(&counts, MessageState::Pending);
    if pending != expected {
        bail!("the store holds {pending} pending messages, expected {expected}: {counts:?}");
    }
    if sink.count() != 0 {
        bail!(
            "the sink got {} requests while notifications were paused",
            sink.count()
        );
    }
    drop(observer);
    drop(sink);
    discard(db);

    outcome.latencies.sort();
    Ok(ApiRun {
        backend,
        recipients,
        n,
        events_per_second: run.per_second,
        cpu_us_per_event: cpu.as_secs_f64() * 1e6 / n as f64,
        p50: percentile(&outcome.latencies, 0.50),
        p99: percentile(&outcome.latencies, 0.99),
        cli_events_per_second: per_second(CLI_EVENTS, cli_elapsed),
    })
}

/// Polls `/healthz` until the server answers (it migrates and loads the catalog first).
async fn wait_until_ready(base: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if let Ok(answer) = client.get(format!("{base}/healthz")).send().await
            && answer.status().is_success()
        {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("herald serve --http did not answer /healthz at {base} within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Posts {
    elapsed: Duration,
    latencies: Vec<Duration>,
}

/// `n` reports from [`CLIENTS`] keep-alive clients (one connection each), every answer checked
/// to be `201` with all its messages; returns the wall time and each request's latency.
async fn post_all(base: &str, token: &str, users: &[String], n: usize) -> anyhow::Result<Posts> {
    let url = format!("{base}/api/v1/events");
    let next = Arc::new(AtomicUsize::new(0));
    let expected = users.len() * PER_RECIPIENT;
    let started = Instant::now();
    let mut clients = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()?;
        let (url, token, users, next) = (
            url.clone(),
            format!("Bearer {token}"),
            users.to_vec(),
            next.clone(),
        );
        clients.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return anyhow::Ok(latencies);
                }
                let body = serde_json::json!({
                    "event": API_EVENT,
                    "users": users,
                    "labels": {"name": format!("ws-{i}")},
                });
                let sent = Instant::now();
                let answer = client
                    .post(&url)
                    .header("Authorization", &token)
                    .json(&body)
                    .send()
                    .await?;
                let status = answer.status();
                let text = answer.text().await?;
                latencies.push(sent.elapsed());
                if status != reqwest::StatusCode::CREATED {
                    bail!("POST /api/v1/events answered {status}: {text}");
                }
                let answer: serde_json::Value = serde_json::from_str(&text)?;
                let made = answer["enqueued"].as_array().map_or(0, Vec::len);
                if made != expected {
                    bail!("POST /api/v1/events made {made} messages, expected {expected}: {text}");
                }
            }
        }));
    }
    let mut latencies = Vec::with_capacity(n);
    for client in clients {
        latencies.extend(client.await.context("a client panicked")??);
    }
    Ok(Posts {
        elapsed: started.elapsed(),
        latencies,
    })
}

/// `events` `herald --as OWNER enqueue` processes, one after the other, each for every user;
/// returns the wall time. (Blocking: nothing else runs meanwhile.)
fn cli_enqueue_all(
    settings: &[(&str, String)],
    users: &[String],
    events: usize,
) -> anyhow::Result<Duration> {
    let dir = tempfile::tempdir()?;
    let started = Instant::now();
    for i in 0..events {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_herald"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("HERALD_") {
                command.env_remove(key);
            }
        }
        command
            .envs(settings.iter().map(|(key, value)| (key, value)))
            .current_dir(dir.path())
            .args(["--as", OWNER, "enqueue", API_EVENT])
            .args(users.iter().flat_map(|u| ["--user", u.as_str()]))
            .args(["--label", &format!("name=cli-{i}")]);
        let out = command.output().context("running herald enqueue")?;
        if !out.status.success() {
            bail!(
                "herald enqueue exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    Ok(started.elapsed())
}
