//! Console benchmark (issue 5, item 6): the Queue tab over a store of 1,000,000 messages.
//!
//! Each backend gets a fresh database (`tests/it/common`: a temp-dir SQLite file, a throwaway
//! PostgreSQL cluster or `HERALD_TEST_DATABASE_URL`), seeded with N messages of mixed states,
//! events, users and methods with payloads built the way routing builds them, through
//! [`Store::enqueue`] in batches. Then a fresh store handle and service, as a console process
//! would open them, and the console's own code: [`update::update`] turns actions into effects,
//! [`Driver`] runs them against the service in tasks (as the run loop does), and
//! [`view::draw`] draws a 120×40 frame into ratatui's `TestBackend`.
//!
//! * **first Queue frame**: from the `4` key (`GoTab(Queue)`) until every effect the tab asked
//!   for (page, counts, throughput, pause flag) has answered and the frame is drawn;
//! * **page step**: from `PgDn` until the next keyset page is in and drawn, over `--steps`
//!   steps, with no filter and with filters (`status=permanent_failure`, `event=run_*`, both,
//!   `user=…`);
//! * **counts refresh**: the `LoadCounts` effect alone, next to the `GROUP BY status` scan the
//!   counts used to be;
//! * **idle CPU per tab** (issue 13, item 6): each tab left open for [`IDLE_RUNS`] × 10 s with
//!   the run loop's own timers (a 1 s tick that asks for the tab's periodic reads, a 33 ms
//!   frame that redraws when something changed); the console process's user + system CPU over
//!   each 10 s, as a share of one core (on PostgreSQL the server's own CPU is not in it);
//! * **memory**: the peak RSS (`VmHWM`) of the process that does all of the above. The console
//!   part runs in a child process of its own (this binary with `--console-child`), so that
//!   the seeder's heap does not count: it opens the store and the service, as `herald console`
//!   does, and reports its figures as one JSON line.
//!
//! ```text
//! cargo bench --bench console                       # N = 1,000,000 on SQLite and PostgreSQL
//! cargo bench --bench console -- sqlite --n 100000  # smaller, one backend
//! ```

#[path = "../common/mod.rs"]
mod common;
mod report;
mod seed;

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use common::figures::{nproc, percentile, read_trimmed, thousands};
use common::{Backend, discard, parse_count};
use herald::config::Config;
use herald::console::action::Action;
use herald::console::driver::Driver;
use herald::console::state::{AppState, Session, Tab};
use herald::console::theme::Theme;
use herald::console::{update, view};
use herald::model::{EventTemplate, MessageState, Method, PlannedMessage, Role, User};
use herald::service::Service;
use herald::store::{self, NewMessage, NewUser, OpenMode};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use report::{ms, print_tables, sorted};
use seed::{Seeded, seed};
use sqlx::Connection;
use tokio::sync::mpsc;
use uuid::Uuid;

/// The terminal the frames are drawn in.
const WIDTH: u16 = 120;
const HEIGHT: u16 = 40;
/// Users in the seeded store (one owner, the rest members): about 5,000 messages each at
/// N = 1,000,000, enough for the `user=` filter's page steps.
const USERS: usize = 200;
/// Seeded messages are spread over this many days before now.
const SPREAD_DAYS: i64 = 30;
/// How often the counts refresh is timed.
const COUNT_RUNS: usize = 20;
/// How often the old whole-table count is timed (it is slow).
const SCAN_RUNS: usize = 3;
/// Messages per Queue page.
const PAGE_SIZE: usize = herald::console::queue::PAGE_SIZE as usize;
/// Any single effect taking longer than this has failed.
const EFFECT_TIMEOUT: Duration = Duration::from_secs(60);

/// How long each idle run leaves a tab open, and how many runs per tab (the median is kept).
const IDLE_WINDOW: Duration = Duration::from_secs(10);
const IDLE_RUNS: usize = 3;
/// The run loop's timers (`console::run`): the frame check and the tick.
const FRAME: Duration = Duration::from_millis(33);
const TICK: Duration = Duration::from_secs(1);
/// Issue 13, item 6: an idle console on any tab uses under 2 % of a core.
const IDLE_TARGET: f64 = 0.02;

/// The hidden flag that runs the console part in a child process, and the child's answer.
const CHILD_FLAG: &str = "--console-child";
const CHILD_MARK: &str = "FIGURES ";

/// The targets of issue 5, item 6.
const FIRST_FRAME_TARGET: Duration = Duration::from_millis(100);
const STEP_TARGET: Duration = Duration::from_millis(50);
const MEMORY_TARGET_KB: u64 = 100 * 1024;

/// The filters the page steps are timed with, as typed after `/`.
const FILTERS: &[&str] = &[
    "",
    "status=permanent_failure",
    "event=run_*",
    "status=permanent_failure event=run_*",
    "user=user042",
    // Rare ones: about 1 % and 0.5 % of the messages.
    "event=your_account_*",
    "event=migration_failure",
];

const USAGE: &str = "\
usage: cargo bench --bench console -- [--n N] [--steps S] [--batch B] [sqlite] [postgres]

  --n N      messages in the store (default 1,000,000)
  --steps S  page steps timed per filter (default 50)
  --batch B  messages per Store::enqueue call while seeding (default 10,000)
  sqlite, postgres
             run only these backends (default: both)";

fn main() -> anyhow::Result<()> {
    let Some(options) = Options::parse(std::env::args().skip(1))? else {
        println!("{USAGE}");
        return Ok(());
    };
    let runtime = common::runtime()?;
    match options.child_url.clone() {
        Some(url) => {
            let figures = runtime.block_on(measure_console(&url, &options))?;
            println!("{CHILD_MARK}{}", serde_json::to_string(&figures)?);
            Ok(())
        }
        None => runtime.block_on(run(options)),
    }
}

#[derive(Debug, Clone)]
struct Options {
    n: usize,
    steps: usize,
    batch: usize,
    backends: Vec<Backend>,
    /// Set in the child: measure the console on this already seeded store.
    child_url: Option<String>,
}

impl Options {
    /// The options, or `None` when help was asked for. Cargo's own `--bench` is ignored.
    fn parse(args: impl Iterator<Item = String>) -> anyhow::Result<Option<Options>> {
        let mut options = Options {
            n: 1_000_000,
            steps: 50,
            batch: 10_000,
            backends: Vec::new(),
            child_url: None,
        };
        let mut args = args.peekable();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| -> anyhow::Result<usize> {
                let text = args
                    .next()
                    .with_context(|| format!("{name} needs a value\n\n{USAGE}"))?;
                parse_count(name, &text)
            };
            match arg.as_str() {
                "--bench" => {}
                "-h" | "--help" => return Ok(None),
                "--n" => options.n = value("--n")?,
                "--steps" => options.steps = value("--steps")?,
                "--batch" => options.batch = value("--batch")?,
                CHILD_FLAG => {
                    options.child_url = Some(args.next().context("--console-child needs a URL")?)
                }
                "sqlite" => options.backends.push(Backend::Sqlite),
                "postgres" => options.backends.push(Backend::Postgres),
                other => bail!("unknown argument `{other}`\n\n{USAGE}"),
            }
        }
        if options.backends.is_empty() {
            options.backends = vec![Backend::Sqlite, Backend::Postgres];
        }
        Ok(Some(options))
    }
}

async fn run(options: Options) -> anyhow::Result<()> {
    println!("# herald console benchmark\n");
    println!("- nproc: {}", nproc());
    println!("- load average at start: {}", read_trimmed("/proc/loadavg"));
    println!(
        "- N = {}, {} page steps per filter, seeding batches of {}, {WIDTH}×{HEIGHT} TestBackend\n",
        thousands(options.n as f64),
        options.steps,
        thousands(options.batch as f64)
    );
    let mut reports = Vec::new();
    for &backend in &options.backends {
        let report = measure(backend, &options)
            .await
            .with_context(|| format!("the console benchmark on {}", backend.name()))?;
        reports.push(report);
    }
    println!("\n## Results\n");
    println!(
        "load average at the end: {}\n",
        read_trimmed("/proc/loadavg")
    );
    print_tables(&reports, &options);
    Ok(())
}

// -------------------------------------------------------------------------------------------
// The console, driven by its own code
// -------------------------------------------------------------------------------------------

/// The console's state, driver and a test terminal: the run loop without the terminal I/O.
struct Console {
    state: AppState,
    driver: Driver,
    results: mpsc::UnboundedReceiver<Action>,
    outstanding: usize,
    terminal: Terminal<TestBackend>,
    theme: Theme,
}

impl Console {
    fn new(service: Arc<Service>, caller: User) -> anyhow::Result<Console> {
        let config = service.config();
        let session = Session {
            user: caller.clone(),
            store_url: service.store().display_url().to_string(),
            read_only: false,
            embedded_dispatcher: false,
            default_method: config.notifications.method,
            fetch_interval: config.notifications.fetch_interval,
        };
        let (tx, results) = mpsc::unbounded_channel();
        let mut console = Console {
            state: AppState::new(session, Utc::now()),
            driver: Driver::new(service, caller, tx),
            results,
            outstanding: 0,
            terminal: Terminal::new(TestBackend::new(WIDTH, HEIGHT))?,
            theme: Theme::colored(),
        };
        let effects = update::init(&mut console.state);
        console.spawn(effects);
        Ok(console)
    }

    fn spawn(&mut self, effects: Vec<herald::console::action::Effect>) {
        for effect in effects {
            self.driver.spawn(effect);
            self.outstanding += 1;
        }
    }

    /// What the run loop does with an action.
    fn dispatch(&mut self, action: Action) {
        let effects = update::update(&mut self.state, action);
        self.spawn(effects);
    }

    /// Feeds effect results back until no effect is in flight; fails on an error notice.
    async fn settle(&mut self) -> anyhow::Result<()> {
        while self.outstanding > 0 {
            let action = tokio::time::timeout(EFFECT_TIMEOUT, self.results.recv())
                .await
                .context("an effect took longer than a minute")?
                .context("the driver's channel closed")?;
            self.outstanding -= 1;
            self.dispatch(action);
        }
        if let Some(notice) = &self.state.notice
            && notice.error
        {
            bail!("the console reported an error: {}", notice.text);
        }
        Ok(())
    }

    fn draw(&mut self) -> anyhow::Result<()> {
        let (state, theme) = (&self.state, self.theme);
        self.terminal.draw(|f| view::draw(f, state, theme))?;
        Ok(())
    }

    /// The drawn screen as text, for sanity checks.
    fn screen(&self) -> String {
        let buffer = self.terminal.backend().buffer();
        buffer.content.iter().map(|c| c.symbol()).collect()
    }

    /// Types `text` into the queue's filter prompt and submits it, as `/` would.
    fn filter(&mut self, text: &str) {
        self.dispatch(Action::Filter);
        self.dispatch(Action::Edit(tui_input::InputRequest::DeleteLine));
        for c in text.chars() {
            self.dispatch(Action::Edit(tui_input::InputRequest::InsertChar(c)));
        }
        self.dispatch(Action::SubmitInput);
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct FilterRun {
    filter: String,
    applied: Duration,
    steps: Vec<Duration>,
    rows: usize,
}

/// What the console child measures.
#[derive(serde::Serialize, serde::Deserialize)]
struct ConsoleFigures {
    /// From a fresh console to its first full frame on the Events tab (for reference).
    start_frame: Duration,
    first_frame: Duration,
    first_effects: Vec<(String, Duration)>,
    counts: Vec<Duration>,
    filters: Vec<FilterRun>,
    /// Per tab, the CPU share of one core each idle run used.
    idle: Vec<(String, Vec<f64>)>,
    /// Peak and current RSS of the console process at the end.
    peak_kb: u64,
    rss_kb: u64,
}

struct Report {
    backend: Backend,
    n: usize,
    seeded: Seeded,
    scans: Vec<Duration>,
    /// The top reasons as the Troubleshoot tab read them before issue 13, every second.
    reason_scans: Vec<Duration>,
    console: ConsoleFigures,
}

/// Seeds a fresh database, times the old count, then measures the console in a child process.
async fn measure(backend: Backend, options: &Options) -> anyhow::Result<Report> {
    let db = backend.fresh_db();
    eprintln!(
        "{}: seeding {} messages…",
        backend.name(),
        thousands(options.n as f64)
    );
    let seeded = seed(&db.url, options).await?;
    eprintln!(
        "{}: seeded in {:.1} s ({:.0} msg/s)",
        backend.name(),
        seeded.elapsed.as_secs_f64(),
        options.n as f64 / seeded.elapsed.as_secs_f64()
    );
    if backend == Backend::Postgres {
        // Autovacuum analyzes a table this busy within a minute; do it now so every run plans
        // with current statistics.
        raw_execute(&db.url, "ANALYZE").await?;
    }
    let scans = old_count_scans(&db.url).await?;
    let reason_scans = old_reason_scans(&db.url).await?;
    let console = tokio::task::block_in_place(|| run_child(&db.url, options))?;
    discard(db);
    Ok(Report {
        backend,
        n: options.n,
        seeded,
        scans,
        reason_scans,
        console,
    })
}

/// Runs this binary again with [`CHILD_FLAG`] and reads its figures.
fn run_child(url: &str, options: &Options) -> anyhow::Result<ConsoleFigures> {
    let exe = std::env::current_exe().context("finding this benchmark's executable")?;
    let output = std::process::Command::new(exe)
        .args([CHILD_FLAG, url])
        .args(["--n", &options.n.to_string()])
        .args(["--steps", &options.steps.to_string()])
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running the console child process")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("the console child failed ({}): {stdout}", output.status);
    }
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(CHILD_MARK))
        .with_context(|| format!("the console child printed no figures: {stdout}"))?;
    Ok(serde_json::from_str(line)?)
}

/// The console's part, in a process of its own: open the seeded store and the service as
/// `herald console` does, start on the Events tab, then time the Queue tab.
async fn measure_console(url: &str, options: &Options) -> anyhow::Result<ConsoleFigures> {
    let store = store::open(url, OpenMode::Existing).await?;
    let service = Arc::new(Service::start(store, Arc::new(Config::default())).await?);
    let owner = service
        .store()
        .user_by_username("alice")
        .await?
        .context("the seeded owner is missing")?;
    let started = Instant::now();
    let mut console = Console::new(service.clone(), owner.clone())?;
    console.settle().await?;
    console.draw()?;
    let start_frame = started.elapsed();

    // The first Queue frame: `4`, every effect answered, one frame drawn.
    let started = Instant::now();
    console.dispatch(Action::GoTab(Tab::Queue));
    console.settle().await?;
    console.draw()?;
    let first_frame = started.elapsed();
    check_page(&console, "the first Queue frame")?;
    let total: i64 = console
        .state
        .queue
        .counts
        .as_ref()
        .context("the first Queue frame has no counts")?
        .iter()
        .map(|(_, n)| n)
        .sum();
    if total != options.n as i64 {
        bail!("the counts add up to {total}, not {}", options.n);
    }

    // The same effects one at a time, to see where the first frame's time goes.
    let driver = Driver::new(service.clone(), owner.clone(), mpsc::unbounded_channel().0);
    let mut first_effects = Vec::new();
    for effect in update::update(&mut console.state, Action::Refresh) {
        let name = format!("{effect:?}");
        let name = name
            .split([' ', '(', '{'])
            .next()
            .unwrap_or("?")
            .to_string();
        let clock = Instant::now();
        driver.perform(effect).await;
        first_effects.push((name, clock.elapsed()));
    }
    console.state.loading.clear();

    let mut counts = Vec::with_capacity(COUNT_RUNS);
    for _ in 0..COUNT_RUNS {
        let clock = Instant::now();
        let action = driver
            .perform(herald::console::action::Effect::LoadCounts)
            .await;
        console.dispatch(action);
        counts.push(clock.elapsed());
    }

    let mut filters = Vec::new();
    for filter in FILTERS {
        let run = page_steps(&mut console, filter, options.steps)
            .await
            .with_context(|| format!("paging with the filter `{filter}`"))?;
        let steps = sorted(&run.steps);
        eprintln!(
            "  filter `{filter}`: applied in {}, step median {} p95 {}",
            ms(run.applied),
            ms(percentile(&steps, 0.5)),
            ms(percentile(&steps, 0.95))
        );
        filters.push(run);
    }
    console.filter("");
    console.settle().await?;
    let mut idle = Vec::new();
    for tab in Tab::ALL {
        let runs = idle_runs(&mut console, tab).await?;
        eprintln!(
            "  idle on {}: {}",
            tab.title(),
            runs.iter()
                .map(|r| format!("{:.2} %", r * 100.0))
                .collect::<Vec<_>>()
                .join(", ")
        );
        idle.push((tab.title().to_string(), runs));
    }
    let memory = memory();
    Ok(ConsoleFigures {
        start_frame,
        first_frame,
        first_effects,
        counts,
        filters,
        idle,
        peak_kb: memory.peak_kb,
        rss_kb: memory.rss_kb,
    })
}

/// Opens `tab` and leaves it for [`IDLE_RUNS`] windows of [`IDLE_WINDOW`], driven as
/// `console::run` drives it: the tick asks for the tab's periodic reads, results are applied
/// as they arrive, the frame timer redraws when the state's revision moved. Each run's CPU
/// (this process, user + system) as a share of one core.
async fn idle_runs(console: &mut Console, tab: Tab) -> anyhow::Result<Vec<f64>> {
    console.dispatch(Action::GoTab(tab));
    console.settle().await?;
    console.draw()?;
    let mut runs = Vec::with_capacity(IDLE_RUNS);
    for _ in 0..IDLE_RUNS {
        let mut frame = tokio::time::interval(FRAME);
        let mut tick = tokio::time::interval(TICK);
        frame.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut drawn = console.state.revision;
        let cpu_before = process_cpu()?;
        let started = Instant::now();
        let end = tokio::time::Instant::now() + IDLE_WINDOW;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(end) => break,
                _ = frame.tick() => {
                    if console.state.revision != drawn {
                        console.draw()?;
                        drawn = console.state.revision;
                    }
                }
                _ = tick.tick() => console.dispatch(Action::Tick(Utc::now())),
                Some(action) = console.results.recv() => {
                    console.outstanding -= 1;
                    console.dispatch(action);
                }
            }
        }
        let cpu = process_cpu()? - cpu_before;
        runs.push(cpu.as_secs_f64() / started.elapsed().as_secs_f64());
        console.settle().await?;
        if !console.screen().contains(tab.title()) {
            bail!("the {} tab was not drawn", tab.title());
        }
    }
    Ok(runs)
}

/// This process's CPU time so far (user + system, all threads), from `/proc/self/stat`.
fn process_cpu() -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("unexpected /proc/self/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()?;
    let per_second: u64 = String::from_utf8_lossy(&out.stdout).trim().parse()?;
    Ok(Duration::from_secs_f64(ticks as f64 / per_second as f64))
}

/// Applies `filter` (timed like a first frame), then pages down `steps` times.
async fn page_steps(
    console: &mut Console,
    filter: &str,
    steps: usize,
) -> anyhow::Result<FilterRun> {
    let started = Instant::now();
    console.filter(filter);
    console.settle().await?;
    console.draw()?;
    let applied = started.elapsed();
    check_page(console, "the filtered first page")?;
    let mut times = Vec::with_capacity(steps);
    let mut rows = console.state.queue.page.len();
    // A short page is the end of the table (only with a small --n): PgDn stays put there.
    while times.len() < steps && console.state.queue.page.len() == PAGE_SIZE {
        let step = times.len() + 1;
        let before = console.state.queue.page.last().map(|m| m.id);
        let started = Instant::now();
        console.dispatch(Action::PageDown);
        console.settle().await?;
        console.draw()?;
        times.push(started.elapsed());
        let page = &console.state.queue.page;
        if page.is_empty() || !console.screen().contains("Messages (") {
            bail!("page step {step} drew no messages");
        }
        if page.first().map(|m| m.id) >= before {
            bail!("page step {step} did not move to older messages");
        }
        rows += page.len();
    }
    Ok(FilterRun {
        filter: filter.to_string(),
        applied,
        steps: times,
        rows,
    })
}

/// The page must be full and drawn.
fn check_page(console: &Console, what: &str) -> anyhow::Result<()> {
    let q = &console.state.queue;
    if !q.loaded || q.page.len() < PAGE_SIZE {
        bail!("{what} shows {} messages, not a full page", q.page.len());
    }
    let screen = console.screen();
    if !screen.contains("Messages (50+)") {
        bail!("{what} was not drawn as a full message table");
    }
    Ok(())
}

// -------------------------------------------------------------------------------------------
// Around the console: plain SQL on a separate connection
// -------------------------------------------------------------------------------------------

/// The whole-table `GROUP BY status` that `count_by_state` ran before the counts table.
async fn old_count_scans(url: &str) -> anyhow::Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(SCAN_RUNS);
    for _ in 0..SCAN_RUNS {
        let clock = Instant::now();
        raw_execute(
            url,
            "SELECT status, COUNT(*) FROM notification_messages GROUP BY status",
        )
        .await?;
        times.push(clock.elapsed());
    }
    Ok(times)
}

/// The top-reasons query the Troubleshoot tab ran each second before issue 13: every failed
/// message regrouped by reason.
async fn old_reason_scans(url: &str) -> anyhow::Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(SCAN_RUNS);
    for _ in 0..SCAN_RUNS {
        let clock = Instant::now();
        raw_execute(
            url,
            "SELECT status, status_reason, COUNT(*) AS n FROM notification_messages
             WHERE status IN ('temporary_failure', 'permanent_failure') AND status_reason IS NOT NULL
             GROUP BY status, status_reason
             ORDER BY n DESC, status_reason, status LIMIT 20",
        )
        .await?;
        times.push(clock.elapsed());
    }
    Ok(times)
}

/// Runs `sql` on a connection of its own (not the store's); the connect time is excluded.
async fn raw_execute(url: &str, sql: &str) -> anyhow::Result<()> {
    if url.starts_with("sqlite:") {
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?;
        let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
        sqlx::raw_sql(sql).execute(&mut conn).await?;
        conn.close().await?;
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await?;
        sqlx::raw_sql(sql).execute(&mut conn).await?;
        conn.close().await?;
    }
    Ok(())
}

// -------------------------------------------------------------------------------------------
// Memory
// -------------------------------------------------------------------------------------------

struct Memory {
    /// `VmHWM`: the peak resident set since the start or the last reset.
    peak_kb: u64,
    /// `VmRSS`: the resident set now.
    rss_kb: u64,
}

fn memory() -> Memory {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    Memory {
        peak_kb: field("VmHWM:"),
        rss_kb: field("VmRSS:"),
    }
}
