//! End-to-end throughput: a producer enqueues while 1 or 3 replicas deliver to a local sink;
//! `drain` splits the two apart.

use super::*;

impl std::fmt::Display for Breakdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sink got {}; leased {:.0}; {:.0} flushes, {:.0} ms each on average; mean send {:.2} ms",
            self.delivered,
            self.leased,
            self.flushes,
            1000.0 * self.flush_seconds / self.flushes.max(1.0),
            1000.0 * self.send_seconds / self.sends.max(1.0)
        )
    }
}

/// The sum of every sample of the metric `name` (any labels) in a Prometheus text.
fn metric_total(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// What both end-to-end scenarios run on: a fresh migrated store (with an observer connection),
/// an HTTP sink that answers 200, and the dispatchers' config aimed at them.
pub(super) struct Rig {
    pub db: TestDb,
    observer: Arc<dyn Store>,
    sink: HttpSink,
    pub config: Config,
    /// Messages already `sent` before the run (`--old`), which the checks add to N.
    old_sent: i64,
}

impl Rig {
    /// The rig, and a producer of the bench event on its store.
    pub(super) async fn new(backend: Backend) -> anyhow::Result<(Rig, Producer)> {
        let db = backend.fresh_db();
        let (observer, template) = migrated_store(&db.url).await?;
        let sink = HttpSink::ok().await;
        sink.set_recording(false);
        let config = default_config(&db.url, &sink.url);
        let producer = Producer {
            store: store::open(&db.url, OpenMode::Existing).await?,
            template_id: template.id,
            payload: payload(&template),
        };
        let rig = Rig {
            db,
            observer,
            sink,
            config,
            old_sent: 0,
        };
        Ok((rig, producer))
    }

    async fn start_replicas(&self, replicas: usize) -> anyhow::Result<Vec<Replica>> {
        let mut running = Vec::with_capacity(replicas);
        for _ in 0..replicas {
            running.push(Replica::start(&self.config).await?);
        }
        Ok(running)
    }

    /// Waits until all `n` messages are sent (saying how far the sink got every 10 s) and
    /// returns the time since `started`.
    async fn wait_until_sent(&self, n: usize, started: Instant) -> anyhow::Result<Duration> {
        let mut last_report = started;
        loop {
            tokio::time::sleep(POLL).await;
            // `sent` is written only after the sink answered, so the sink's counter gates the
            // store query: polling COUNT(*) over 100k rows 50 times a second would load the
            // 2-core machine being measured.
            if self.sink.count() >= n as u64 {
                let counts = self.observer.count_by_state().await?;
                if count_of(&counts, MessageState::Sent) >= n as i64 + self.old_sent {
                    return Ok(started.elapsed());
                }
            }
            if started.elapsed() > RUN_TIMEOUT {
                let counts = self.observer.count_by_state().await?;
                bail!(
                    "not all {n} messages sent after {RUN_TIMEOUT:?}: sink got {}, counts {counts:?}",
                    self.sink.count()
                );
            }
            if last_report.elapsed() > Duration::from_secs(10) {
                last_report = Instant::now();
                eprintln!(
                    "  … {:.0} s: the sink has {} of {n}",
                    started.elapsed().as_secs_f64(),
                    self.sink.count()
                );
            }
        }
    }

    /// Checks that all `n` messages stayed sent after the dispatchers stopped, then drops the
    /// store and the sink.
    pub(super) async fn close(self, n: usize) -> anyhow::Result<()> {
        let counts = self.observer.count_by_state().await?;
        if count_of(&counts, MessageState::Sent) != n as i64 + self.old_sent {
            bail!("after the stop: {counts:?}");
        }
        drop(self.observer);
        drop(self.sink);
        discard(self.db);
        Ok(())
    }

    /// Stops the replicas, checks that all `n` messages stayed sent, and drops the store.
    async fn finish(
        self,
        running: Vec<Replica>,
        n: usize,
        elapsed: Duration,
        enqueue_elapsed: Duration,
    ) -> anyhow::Result<EndToEndRun> {
        let breakdown = stop_all(running, self.sink.count()).await?;
        self.close(n).await?;
        Ok(EndToEndRun {
            per_second: per_second(n, elapsed),
            elapsed,
            enqueue_per_second: per_second(n, enqueue_elapsed),
            breakdown,
        })
    }
}

pub(super) async fn end_to_end(
    backend: Backend,
    replicas: usize,
    n: usize,
) -> anyhow::Result<EndToEndRun> {
    let (rig, producer) = Rig::new(backend).await?;
    let running = rig.start_replicas(replicas).await?;
    // Let every replica reach its idle wait, as a running deployment would be.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = Instant::now();
    let producing = tokio::spawn(async move { producer.enqueue_all(n).await });
    let elapsed = rig.wait_until_sent(n, started).await?;
    let enqueue_elapsed = producing.await.context("the producer panicked")??;
    rig.finish(running, n, elapsed, enqueue_elapsed).await
}

/// The diagnostic split of [`end_to_end`]: the producer enqueues everything while no
/// dispatcher runs, then the replicas start and drain the queue.
pub(super) async fn drain(
    backend: Backend,
    replicas: usize,
    n: usize,
) -> anyhow::Result<EndToEndRun> {
    let (rig, producer) = Rig::new(backend).await?;
    let enqueue_elapsed = producer.enqueue_all(n).await?;
    drop(producer);
    let started = Instant::now();
    let running = rig.start_replicas(replicas).await?;
    let elapsed = rig.wait_until_sent(n, started).await?;
    rig.finish(running, n, elapsed, enqueue_elapsed).await
}

/// Stops every replica cleanly and sums their metrics.
async fn stop_all(running: Vec<Replica>, delivered: u64) -> anyhow::Result<Breakdown> {
    let mut breakdown = Breakdown {
        leased: 0.0,
        flushes: 0.0,
        flush_seconds: 0.0,
        send_seconds: 0.0,
        sends: 0.0,
        delivered,
    };
    for replica in running {
        let text = replica.stop().await?;
        breakdown.leased += metric_total(&text, "herald_leased_total");
        breakdown.flushes += metric_total(&text, "herald_store_flush_seconds_count");
        breakdown.flush_seconds += metric_total(&text, "herald_store_flush_seconds_sum");
        breakdown.sends += metric_total(&text, "herald_send_seconds_count");
        breakdown.send_seconds += metric_total(&text, "herald_send_seconds_sum");
    }
    Ok(breakdown)
}

/// What one `herald serve` process cost while it drained the queue, read from the OS.
pub(super) struct ServeRun {
    pub(super) per_second: f64,
    /// User + system CPU of the `herald serve` process alone (not the sink, not the producer).
    pub(super) cpu: Duration,
    /// Its peak resident set (`VmHWM`), in kB.
    pub(super) peak_rss_kb: u64,
}

impl ServeRun {
    /// CPU microseconds per delivered message, for a drain of `n`.
    pub(super) fn cpu_us_per_message(&self, n: usize) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / n as f64
    }
}

/// The shape users run: N messages queued beforehand, then one real `herald serve` (the
/// release binary, default settings, only the webhook endpoint set) drains them to the bench's
/// keep-alive sink. Its CPU comes from `/proc/PID/stat`, read just before it is stopped.
pub(super) async fn serve_drain(
    backend: Backend,
    n: usize,
    old: usize,
) -> anyhow::Result<ServeRun> {
    let (mut rig, producer) = Rig::new(backend).await?;
    if old > 0 {
        seed_old_sent(backend, &rig.db.url, producer.template_id, old).await?;
        rig.old_sent = old as i64;
    }
    producer.enqueue_all(n).await?;
    drop(producer);
    let endpoint = rig
        .config
        .notifications
        .webhook
        .endpoint
        .clone()
        .unwrap_or_default();
    let settings = [
        ("HERALD_DATABASE_URL", rig.db.url.clone()),
        ("HERALD_NOTIFICATIONS_WEBHOOK_ENDPOINT", endpoint),
    ];
    let run = run_serve(n, &settings, &[], |started, _| {
        rig.wait_until_sent(n, started)
    })
    .await?;
    rig.close(n).await?;
    Ok(run)
}

/// The `--set KEY=VALUE` settings, as `HERALD_*` variables for every `herald serve` started.
pub(super) static EXTRA_SETTINGS: std::sync::OnceLock<Vec<(String, String)>> =
    std::sync::OnceLock::new();

/// Starts the release `herald serve ARGS…` with only `settings` among the `HERALD_*`
/// variables, waits with `drained` (given the start and the process id) until it has done its
/// `n` items of work, reads its CPU
/// and peak RSS from `/proc`, stops it with SIGTERM and checks that it exited cleanly; its log
/// is quoted when anything fails.
pub(super) async fn run_serve<F, Fut>(
    n: usize,
    settings: &[(&str, String)],
    args: &[String],
    drained: F,
) -> anyhow::Result<ServeRun>
where
    F: FnOnce(Instant, u32) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Duration>>,
{
    let dir = tempfile::tempdir()?;
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_herald"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("HERALD_") {
            command.env_remove(key);
        }
    }
    command.envs(settings.iter().map(|(key, value)| (key, value)));
    command.envs(EXTRA_SETTINGS.get().into_iter().flatten().cloned());
    let log = dir.path().join("serve.log");
    let started = Instant::now();
    let child = command
        .arg("serve")
        .args(args)
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .context("starting herald serve")?;
    let mut serve = Running(child);
    let logged = || std::fs::read_to_string(&log).unwrap_or_default();
    // A serve that exits (a setting it refuses, a store it cannot open) ends the wait at once.
    let drained = drained(started, serve.0.id());
    tokio::pin!(drained);
    let waited = loop {
        tokio::select! {
            waited = &mut drained => break waited,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                if let Some(status) = serve.0.try_wait()? {
                    bail!("herald serve exited early with {status}:\n{}", logged());
                }
            }
        }
    };
    let usage = usage_of(serve.0.id());
    let stopped = std::process::Command::new("kill")
        .args(["-TERM", &serve.0.id().to_string()])
        .status()?;
    if !stopped.success() {
        bail!("could not signal herald serve");
    }
    let status = serve.0.wait()?;
    let elapsed = waited.with_context(|| format!("herald serve's log:\n{}", logged()))?;
    if !status.success() {
        bail!("herald serve exited with {status}:\n{}", logged());
    }
    let (cpu, peak_rss_kb) = usage?;
    Ok(ServeRun {
        per_second: per_second(n, elapsed),
        cpu,
        peak_rss_kb,
    })
}

/// A child that is killed if the run fails before it is stopped.
pub(super) struct Running(pub(super) std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// CPU (utime + stime) and peak RSS of a running process, from `/proc`.
pub(super) fn usage_of(pid: u32) -> anyhow::Result<(Duration, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("unexpected /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    let per_second = clock_ticks_per_second()?;
    let cpu = Duration::from_secs_f64(ticks as f64 / per_second as f64);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let peak_rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    Ok((cpu, peak_rss_kb))
}

/// `getconf CLK_TCK` (the unit of `/proc/PID/stat`'s CPU times; 100 on Linux almost always).
fn clock_ticks_per_second() -> anyhow::Result<u64> {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}
