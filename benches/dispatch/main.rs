//! Dispatcher benchmarks (issue 3, item 8), with Herald's default `[notifications]` settings
//! and only the webhook endpoint pointed at a local HTTP sink — the point is "fast without
//! tuning":
//!
//! * **throughput**: N messages enqueued through [`Store::enqueue`] in batches of 1,000 by a
//!   producer on its own store handle while 1 or 3 dispatchers (each on its own handle, as
//!   separate processes would be) deliver them; timed from the first enqueue until
//!   `count_by_state` shows N `sent`.
//! * **raw ceiling**: the same store's schema driven by plain SQL on one connection — batched
//!   INSERT of 1,000 rows, lease 100 with the store's own `UPDATE … RETURNING`, one mark-sent
//!   UPDATE per leased batch, no HTTP — measured in the same run, so the figure is a ratio.
//! * **latency**: one message every 20 ms with `fetch_interval = 15s`; enqueue call → receipt
//!   at the sink, matched by `X-Message-Id`.
//!
//! ```text
//! cargo bench --bench dispatch                       # everything: N = 100,000, 3 runs each
//! cargo bench --bench dispatch -- --quick            # N = 10,000, 1 run, 200 latency samples
//! cargo bench --bench dispatch -- postgres throughput --n 50000 --runs 5 --replicas 3
//! cargo bench --bench dispatch -- api sqlite --n 5000 --runs 3   # the producers' HTTP API
//! ```
//!
//! PostgreSQL is a throwaway cluster started by the test harness (or `HERALD_TEST_DATABASE_URL`);
//! SQLite is a file in a temp dir. BENCHMARKS.md has the figures and how to read them.

mod alone;
mod api;
#[path = "../common/mod.rs"]
mod common;
mod latency;
mod raw;
mod report;
mod smtp;
mod throughput;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::Utc;
use common::figures::{nproc, percentile, read_trimmed, thousands};
use common::harness::http_sink::{HttpSink, Response};
use common::harness::store::count as count_of;
use common::{Backend, TestDb, discard, parse_count};
use herald::channels::Channels;
use herald::channels::inbox::InboxChannel;
use herald::config::Config;
use herald::dispatch::{DispatchSettings, Dispatcher};
use herald::model::{EventTemplate, MessageState, Method, User};
use herald::store::{self, NewMessage, OpenMode, Store};
use herald::telemetry::Metrics;
use sqlx::sqlite::SqlitePoolOptions;
use sqlx::{Connection, Postgres, QueryBuilder, Row, Sqlite};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Messages per producer enqueue and per raw INSERT.
const BATCH: usize = 1_000;
/// How often the end of a throughput run is checked.
const POLL: Duration = Duration::from_millis(20);
/// Gap between messages in the latency scenario.
const LATENCY_GAP: Duration = Duration::from_millis(20);
/// A run that takes longer than this has failed.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);
/// The event every benchmark message is queued for.
const EVENT: &str = "test_notification";

const USAGE: &str = "\
usage: cargo bench --bench dispatch -- [--quick] [--n N] [--runs R] [--latency-n M]
                                       [--replicas 1,3] [--old K] [sqlite] [postgres] [throughput] [latency]
                                       [drain] [serve] [serve-smtp] [store] [http] [api]

  --quick        N = 10,000, 1 run, 200 latency samples (defaults: 100,000, 3, 500)
  --n N          messages per throughput run (and per raw-ceiling run)
  --runs R       runs of each throughput scenario; the median is reported
  --latency-n M  messages in each latency run
  --replicas L   comma-separated replica counts for the throughput runs (default 1,3)
  --set KEY=VALUE
                 serve, serve-smtp and api only: one more setting for each `herald serve`,
                 as a config key (notifications.lease_count=300) or its HERALD_* variable;
                 repeat for more. Herald's defaults otherwise
  --old K        serve only: K old `sent` messages (with an attempt each) in the table before
                 the N are queued, as in a store that has run for a while (default 0)
  sqlite, postgres, throughput, latency
                 run only these backends / scenarios (default: all)
  drain          diagnostic, not run by default: enqueue N with no dispatcher running (the
                 producer alone), then start the replicas and time until all are sent (the
                 dispatchers alone)
  serve          not run by default: enqueue N, then start one real `herald serve` (the
                 release binary, default settings) and time until all are sent; its CPU
                 seconds and peak RSS are read from /proc (the sink and producer excluded)
  serve-smtp     not run by default: `serve` by email: N messages for one user queued, then
                 one real `herald serve` with email.smarthost = Postfix's smtp-sink on
                 loopback (apt-get install postfix); also how many SMTP sessions it opened
  store          diagnostic, not run by default: enqueue N, then lease them all (100 at a
                 time) and ack them sent (500 at a time) through the store alone, one call
                 after the other: the store's own cost per message, without delivery
  http           diagnostic, not run by default: N POSTs through Herald's HTTP client to the
                 sink, 200 at a time: the HTTP client's own cost (the sink's CPU included)
  api            not run by default: the release `herald serve --http` (notifications paused,
                 so the dispatcher sends nothing; method webhook: 2 messages a recipient) takes
                 N `POST /api/v1/events` (default N = 5,000; --quick 1,000) from 12 keep-alive
                 clients with 1 recipient each, and N/20 (at least 50) with 100 recipients each;
                 events/s, messages/s, the server's CPU µs per event (/proc), p50/p99 latency;
                 then 50 `herald enqueue` processes of the same shape on the same store";

fn main() -> anyhow::Result<()> {
    let options = match Options::parse(std::env::args().skip(1))? {
        Some(options) => options,
        None => {
            println!("{USAGE}");
            return Ok(());
        }
    };
    let runtime = common::runtime()?;
    runtime.block_on(run(options))
}

// -------------------------------------------------------------------------------------------
// Options
// -------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Options {
    n: usize,
    runs: usize,
    latency_n: usize,
    replicas: Vec<usize>,
    old: usize,
    backends: Vec<Backend>,
    throughput: bool,
    latency: bool,
    drain: bool,
    serve: bool,
    serve_smtp: bool,
    store: bool,
    http: bool,
    api: bool,
    /// Reports per single-recipient API run.
    api_n: usize,
    quick: bool,
}

/// `KEY=VALUE` as the `HERALD_*` variable `herald serve` reads: a config key
/// (`notifications.lease_count`) becomes `HERALD_NOTIFICATIONS_LEASE_COUNT`.
fn setting(text: &str) -> anyhow::Result<(String, String)> {
    let Some((key, value)) = text.split_once('=') else {
        bail!("--set needs KEY=VALUE, such as notifications.lease_count=300; got `{text}`");
    };
    let key = key.trim();
    if key.is_empty()
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
    {
        bail!("--set: `{key}` is not a config key (such as notifications.lease_count)");
    }
    let variable = if key.starts_with("HERALD_") {
        key.to_string()
    } else {
        format!("HERALD_{}", key.replace('.', "_").to_ascii_uppercase())
    };
    Ok((variable, value.to_string()))
}

impl Options {
    /// The options, or `None` when help was asked for. Cargo's own `--bench` is ignored.
    fn parse(args: impl Iterator<Item = String>) -> anyhow::Result<Option<Options>> {
        let mut quick = false;
        let (mut n, mut runs, mut latency_n) = (None, None, None);
        let mut old = 0;
        let mut extra = Vec::new();
        let mut replicas = vec![1, 3];
        let mut backends = Vec::new();
        let (mut throughput, mut latency, mut drain, mut serve) = (false, false, false, false);
        let (mut serve_smtp, mut store, mut http, mut api) = (false, false, false, false);
        let mut args = args.peekable();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| -> anyhow::Result<String> {
                args.next()
                    .with_context(|| format!("{name} needs a value\n\n{USAGE}"))
            };
            match arg.as_str() {
                "--bench" => {}
                "-h" | "--help" => return Ok(None),
                "--quick" => quick = true,
                "--n" => n = Some(parse_count("--n", &value("--n")?)?),
                "--runs" => runs = Some(parse_count("--runs", &value("--runs")?)?),
                "--old" => old = value("--old")?.parse().context("--old needs a count")?,
                "--set" => extra.push(setting(&value("--set")?)?),
                "--latency-n" => {
                    latency_n = Some(parse_count("--latency-n", &value("--latency-n")?)?)
                }
                "--replicas" => {
                    replicas = value("--replicas")?
                        .split(',')
                        .map(|r| parse_count("--replicas", r))
                        .collect::<anyhow::Result<_>>()?
                }
                "sqlite" => backends.push(Backend::Sqlite),
                "postgres" => backends.push(Backend::Postgres),
                "throughput" => throughput = true,
                "latency" => latency = true,
                "drain" => drain = true,
                "serve" => serve = true,
                "serve-smtp" => serve_smtp = true,
                "store" => store = true,
                "http" => http = true,
                "api" => api = true,
                other => bail!("unknown argument `{other}`\n\n{USAGE}"),
            }
        }
        if backends.is_empty() {
            backends = vec![Backend::Sqlite, Backend::Postgres];
        }
        if !throughput && !latency && !drain && !serve && !serve_smtp && !store && !http && !api {
            (throughput, latency) = (true, true);
        }
        throughput::EXTRA_SETTINGS
            .set(extra)
            .map_err(|_| anyhow::anyhow!("the options were parsed twice"))?;
        Ok(Some(Options {
            n: n.unwrap_or(if quick { 10_000 } else { 100_000 }),
            runs: runs.unwrap_or(if quick { 1 } else { 3 }),
            latency_n: latency_n.unwrap_or(if quick { 200 } else { 500 }),
            replicas,
            old,
            backends,
            throughput,
            latency,
            drain,
            serve,
            serve_smtp,
            store,
            http,
            api,
            api_n: n.unwrap_or(if quick { 1_000 } else { 5_000 }),
            quick,
        }))
    }
}

// -------------------------------------------------------------------------------------------
// The run
// -------------------------------------------------------------------------------------------

async fn run(options: Options) -> anyhow::Result<()> {
    let began = Instant::now();
    let machine = Machine::probe(&options.backends).await?;
    println!("# herald dispatcher benchmark\n");
    machine.print();
    println!(
        "\nsettings: Herald defaults (Config::default()) + notifications.webhook.endpoint = local sink; \
         N = {}, runs = {}, latency messages = {}{}\n",
        options.n,
        options.runs,
        options.latency_n,
        if options.quick { " (--quick)" } else { "" }
    );
    for (variable, value) in throughput::EXTRA_SETTINGS.get().into_iter().flatten() {
        println!("- and, for each `herald serve`: {variable}={value}");
    }

    let mut throughput = Vec::new();
    if options.throughput {
        for &backend in &options.backends {
            throughput.extend(throughput_scenarios(&options, backend).await?);
        }
    }
    let mut drains = Vec::new();
    if options.drain {
        for &backend in &options.backends {
            for &replicas in &options.replicas {
                for rep in 1..=options.runs {
                    let run = drain(backend, replicas, options.n)
                        .await
                        .with_context(|| format!("drain on {} x{replicas}", backend.name()))?;
                    println!(
                        "run {rep}/{}: {:8} drain, {replicas} replica(s): enqueue alone {:>8.0} msg/s, dispatchers alone {:>8.0} msg/s ({})",
                        options.runs,
                        backend.name(),
                        run.enqueue_per_second,
                        run.per_second,
                        run.breakdown
                    );
                    drains.push((backend, replicas, run));
                }
            }
        }
    }
    let mut serves = Vec::new();
    if options.serve {
        for &backend in &options.backends {
            for rep in 1..=options.runs {
                let run = serve_drain(backend, options.n, options.old)
                    .await
                    .with_context(|| format!("herald serve on {}", backend.name()))?;
                // The same store's raw lease + mark-sent loop, right after: the ceiling the
                // drain is compared with.
                let raw = raw_ceiling(backend, options.n)
                    .await
                    .with_context(|| format!("raw ceiling on {}", backend.name()))?;
                let raw_rate = per_second(
                    options.n,
                    raw.leases.iter().sum::<Duration>() + raw.mark_sent,
                );
                println!(
                    "run {rep}/{}: {:8} herald serve drain: {:>8.0} msg/s, {:.1} µs CPU per message, peak RSS {} MB; raw lease + mark-sent {:>8.0} rows/s",
                    options.runs,
                    backend.name(),
                    run.per_second,
                    run.cpu_us_per_message(options.n),
                    run.peak_rss_kb / 1024,
                    raw_rate,
                );
                serves.push((backend, run, raw_rate));
            }
        }
    }
    let mut smtp_serves = Vec::new();
    if options.serve_smtp {
        for &backend in &options.backends {
            for rep in 1..=options.runs {
                let (run, sink) = serve_smtp(backend, options.n)
                    .await
                    .with_context(|| format!("herald serve by SMTP on {}", backend.name()))?;
                println!(
                    "run {rep}/{}: {:8} herald serve → smtp-sink: {:>8.0} msg/s, {:.1} µs CPU per message, peak RSS {} MB; smtp-sink: {sink}",
                    options.runs,
                    backend.name(),
                    run.per_second,
                    run.cpu_us_per_message(options.n),
                    run.peak_rss_kb / 1024
                );
                smtp_serves.push((backend, run));
            }
        }
    }
    if options.store {
        for &backend in &options.backends {
            for rep in 1..=options.runs {
                let run = store_alone(backend, options.n)
                    .await
                    .with_context(|| format!("the store alone on {}", backend.name()))?;
                println!(
                    "run {rep}/{}: {:8} store alone: {:>8.0} msg/s, {:.1} µs CPU per message ({run})",
                    options.runs,
                    backend.name(),
                    per_second(options.n, run.total),
                    run.cpu.as_secs_f64() * 1e6 / options.n as f64,
                );
            }
        }
    }
    if options.http {
        for rep in 1..=options.runs {
            for kind in [HttpClientKind::Herald, HttpClientKind::Reqwest] {
                let run = http_alone(options.n, kind)
                    .await
                    .with_context(|| format!("the {} HTTP client alone", kind.label()))?;
                println!(
                    "run {rep}/{}: http client alone, {:18}: {:>8.0} requests/s, {:.1} µs CPU per request (client and sink)",
                    options.runs,
                    kind.label(),
                    per_second(options.n, run.total),
                    run.cpu.as_secs_f64() * 1e6 / options.n as f64,
                );
            }
        }
    }
    let mut apis = Vec::new();
    if options.api {
        for &backend in &options.backends {
            for rep in 1..=options.runs {
                for (recipients, n) in [(1, options.api_n), (100, (options.api_n / 20).max(50))] {
                    let run = api_run(backend, recipients, n).await.with_context(|| {
                        format!(
                            "the API on {} with {recipients} recipient(s)",
                            backend.name()
                        )
                    })?;
                    println!(
                        "run {rep}/{}: {:8} api, {recipients:>3} recipient(s), {n} events: {:>7.0} events/s, {:>8.0} msg/s, {:.0} µs server CPU per event, p50 {} p99 {}; herald enqueue {:.1} events/s",
                        options.runs,
                        backend.name(),
                        run.events_per_second,
                        run.messages_per_second(),
                        run.cpu_us_per_event,
                        ms(run.p50),
                        ms(run.p99),
                        run.cli_events_per_second,
                    );
                    apis.push(run);
                }
            }
        }
    }
    let mut latency = Vec::new();
    if options.latency {
        for &backend in &options.backends {
            for producer in [ProducerKind::OtherProcess, ProducerKind::SameProcess] {
                let run = latency_run(backend, options.latency_n, producer)
                    .await
                    .with_context(|| format!("latency on {}", backend.name()))?;
                println!(
                    "latency {:8} producer {:13}: p50 {} p99 {} max {} (enqueue call p50 {}, {} msgs)",
                    backend.name(),
                    producer.label(),
                    ms(run.p50),
                    ms(run.p99),
                    ms(run.max),
                    ms(run.enqueue_p50),
                    run.samples
                );
                latency.push(run);
            }
        }
    }

    println!("\n## Results\n");
    machine.print();
    println!(
        "load average at the end: {}; total benchmark time {:.0} s\n",
        read_trimmed("/proc/loadavg"),
        began.elapsed().as_secs_f64()
    );
    if !throughput.is_empty() {
        print_throughput_table(&throughput);
    }
    if !latency.is_empty() {
        print_latency_table(&latency);
    }
    if !drains.is_empty() {
        print_drain_table(&drains, options.n);
    }
    if !serves.is_empty() {
        print_serve_table(&serves, options.n);
    }
    if !smtp_serves.is_empty() {
        print_smtp_serve_table(&smtp_serves, options.n);
    }
    if !apis.is_empty() {
        print_api_table(&apis);
    }
    Ok(())
}

/// Every throughput run of one backend: per repetition the raw ceiling, then each replica
/// count, each on a fresh database; medians across repetitions.
async fn throughput_scenarios(
    options: &Options,
    backend: Backend,
) -> anyhow::Result<Vec<ThroughputRow>> {
    let mut raw: Vec<f64> = Vec::new();
    let mut e2e: BTreeMap<usize, Vec<EndToEndRun>> = BTreeMap::new();
    for rep in 1..=options.runs {
        let ceiling = raw_ceiling(backend, options.n)
            .await
            .with_context(|| format!("raw ceiling on {}", backend.name()))?;
        println!(
            "run {rep}/{}: {:8} raw ceiling           {:>8.0} msg/s ({:.2} s: {ceiling})",
            options.runs,
            backend.name(),
            per_second(options.n, ceiling.total),
            ceiling.total.as_secs_f64()
        );
        raw.push(per_second(options.n, ceiling.total));
        for &replicas in &options.replicas {
            let run = end_to_end(backend, replicas, options.n)
                .await
                .with_context(|| format!("end to end on {} x{replicas}", backend.name()))?;
            println!(
                "run {rep}/{}: {:8} end to end, {replicas} replica(s) {:>8.0} msg/s ({:.2} s; enqueue {:.0} msg/s; {})",
                options.runs,
                backend.name(),
                run.per_second,
                run.elapsed.as_secs_f64(),
                run.enqueue_per_second,
                run.breakdown
            );
            e2e.entry(replicas).or_default().push(run);
        }
    }
    let raw_median = median(&raw);
    Ok(e2e
        .into_iter()
        .map(|(replicas, runs)| {
            let rates: Vec<f64> = runs.iter().map(|r| r.per_second).collect();
            let enqueue: Vec<f64> = runs.iter().map(|r| r.enqueue_per_second).collect();
            ThroughputRow {
                backend,
                replicas,
                n: options.n,
                runs: rates.clone(),
                median: median(&rates),
                enqueue_median: median(&enqueue),
                raw_runs: raw.clone(),
                raw_median,
            }
        })
        .collect())
}

// -------------------------------------------------------------------------------------------
// Backends, stores and replicas
// -------------------------------------------------------------------------------------------

impl Backend {
    /// What `end to end` must reach, in messages per second (issue 3).
    fn target(self) -> f64 {
        match self {
            Backend::Sqlite => 15_000.0,
            Backend::Postgres => 10_000.0,
        }
    }
}

/// Herald's defaults, with only the webhook endpoint pointed at the sink.
fn default_config(database_url: &str, sink_url: &str) -> Config {
    let mut config = Config {
        database_url: database_url.to_string(),
        ..Config::default()
    };
    config.notifications.webhook.endpoint = Some(sink_url.to_string());
    config
}

/// Creates and migrates the store, loads the catalog, and returns the benchmark's event.
async fn migrated_store(url: &str) -> anyhow::Result<(Arc<dyn Store>, EventTemplate)> {
    let store = store::open(url, OpenMode::Migrate).await?;
    store.upsert_catalog(herald::catalog::builtin()).await?;
    let template = store
        .template_by_name(EVENT)
        .await?
        .with_context(|| format!("the builtin catalog has no `{EVENT}` event"))?;
    Ok((store, template))
}

/// The payload `herald enqueue test_notification` stores.
fn payload(template: &EventTemplate) -> serde_json::Value {
    payload_for(template, None)
}

/// The payload `herald enqueue test_notification --user U` stores.
fn payload_for(template: &EventTemplate, user: Option<&User>) -> serde_json::Value {
    herald::routing::build_payload(
        template,
        user,
        &BTreeMap::new(),
        &serde_json::json!({}),
        &[],
    )
}

/// Queues webhook messages for the benchmark's event, the way `herald enqueue` does.
struct Producer {
    store: Arc<dyn Store>,
    template_id: Uuid,
    payload: serde_json::Value,
}

impl Producer {
    fn message(&self) -> NewMessage {
        self.message_for(None, Method::Webhook)
    }

    /// A message by `method`, for the user `user_id` if any.
    fn message_for(&self, user_id: Option<Uuid>, method: Method) -> NewMessage {
        let mut message = common::harness::store::message(self.template_id, user_id, method, None);
        message.created_by = "bench".into();
        message.planned.payload = self.payload.clone();
        message
    }

    /// Enqueues `n` messages in batches of [`BATCH`]; returns how long that took.
    async fn enqueue_all(&self, n: usize) -> anyhow::Result<Duration> {
        self.enqueue_all_for(n, None, Method::Webhook).await
    }

    /// [`Producer::enqueue_all`], each message by `method` for the user `user_id` if any.
    async fn enqueue_all_for(
        &self,
        n: usize,
        user_id: Option<Uuid>,
        method: Method,
    ) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let mut left = n;
        while left > 0 {
            let batch: Vec<NewMessage> = (0..left.min(BATCH))
                .map(|_| self.message_for(user_id, method))
                .collect();
            let outcome = self.store.enqueue(&batch).await?;
            if outcome.enqueued.len() != batch.len() {
                bail!(
                    "enqueued {} of {} messages",
                    outcome.enqueued.len(),
                    batch.len()
                );
            }
            left -= batch.len();
        }
        Ok(started.elapsed())
    }
}

/// One dispatcher on its own store handle, as a separate `herald serve` would have.
struct Replica {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    stop: watch::Sender<bool>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Replica {
    /// Builds the replica like `herald serve` does: configured channels plus the inbox.
    async fn start(config: &Config) -> anyhow::Result<Replica> {
        let store = store::open(&config.database_url, OpenMode::Existing).await?;
        let mut channels = Channels::from_settings(&config.channel_settings())?;
        channels.insert(Arc::new(InboxChannel::new(store.clone())));
        let metrics = Arc::new(Metrics::new());
        let dispatcher = Dispatcher::new(
            store.clone(),
            Arc::new(channels),
            DispatchSettings::from(config),
            metrics.clone(),
        )?;
        let (stop, stopping) = watch::channel(false);
        let task = tokio::spawn(dispatcher.run(stopping));
        Ok(Replica {
            store,
            metrics,
            stop,
            task,
        })
    }

    /// Stops it cleanly; returns its metrics text.
    async fn stop(self) -> anyhow::Result<String> {
        let _ = self.stop.send(true);
        self.task.await.context("the dispatcher panicked")??;
        Ok(self.metrics.render())
    }
}

use alone::*;
use api::*;
use latency::*;
use raw::*;
use report::*;
use smtp::*;
use throughput::*;

// The figures the scenarios hand to the report (fields private: the scenario modules are
// children of this one).

struct EndToEndRun {
    per_second: f64,
    elapsed: Duration,
    enqueue_per_second: f64,
    breakdown: Breakdown,
}

/// Where the dispatchers' time went, from their own metrics (summed over replicas).
struct Breakdown {
    leased: f64,
    flushes: f64,
    flush_seconds: f64,
    send_seconds: f64,
    sends: f64,
    delivered: u64,
}

/// Where a raw-ceiling run's time went.
#[derive(Default)]
struct RawTimings {
    /// From the first INSERT to the last mark-sent.
    total: Duration,
    insert: Duration,
    /// Each lease statement (and its transaction), in order.
    leases: Vec<Duration>,
    mark_sent: Duration,
}

struct LatencyRun {
    backend: Backend,
    producer: ProducerKind,
    samples: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
    enqueue_p50: Duration,
}

struct ThroughputRow {
    backend: Backend,
    replicas: usize,
    n: usize,
    runs: Vec<f64>,
    median: f64,
    enqueue_median: f64,
    raw_runs: Vec<f64>,
    raw_median: f64,
}
