//! Figures and the report: medians, tables and the machine the run was on.

use super::*;

pub(super) fn per_second(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
}

/// The median (mean of the middle two for an even count).
pub(super) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        len if len % 2 == 1 => sorted[len / 2],
        len => (sorted[len / 2 - 1] + sorted[len / 2]) / 2.0,
    }
}

pub(super) fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

pub(super) fn print_throughput_table(rows: &[ThroughputRow]) {
    let list = |values: &[f64]| {
        values
            .iter()
            .map(|v| thousands(*v))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    println!(
        "| scenario | backend | replicas | N | median msg/s | runs msg/s | raw msg/s (median; runs) | ratio | enqueue msg/s | target |"
    );
    println!("|---|---|---|---|---:|---|---|---:|---:|---|");
    for row in rows {
        let target = row.backend.target();
        let verdict = if row.median >= target {
            format!("≥ {} met", thousands(target))
        } else {
            format!(
                "≥ {} **missed** by {:.0}%",
                thousands(target),
                100.0 * (1.0 - row.median / target)
            )
        };
        println!(
            "| end to end | {} | {} | {} | {} | {} | {} ({}) | {:.2} | {} | {} |",
            row.backend.name(),
            row.replicas,
            thousands(row.n as f64),
            thousands(row.median),
            list(&row.runs),
            thousands(row.raw_median),
            list(&row.raw_runs),
            row.median / row.raw_median,
            thousands(row.enqueue_median),
            verdict
        );
    }
    println!();
}

pub(super) fn print_latency_table(rows: &[LatencyRun]) {
    println!(
        "| scenario | backend | replicas | producer | messages | p50 | p99 | max | enqueue call p50 | target p50 < 10 ms, p99 < 100 ms |"
    );
    println!("|---|---|---|---|---:|---:|---:|---:|---:|---|");
    for row in rows {
        let p50_ok = row.p50 < Duration::from_millis(10);
        let p99_ok = row.p99 < Duration::from_millis(100);
        let verdict = match (p50_ok, p99_ok) {
            (true, true) => "met".to_string(),
            (false, true) => "p50 **missed**".to_string(),
            (true, false) => "p99 **missed**".to_string(),
            (false, false) => "p50 and p99 **missed**".to_string(),
        };
        println!(
            "| latency, one message / {} ms, fetch_interval 15s | {} | 1 | {} | {} | {} | {} | {} | {} | {} |",
            LATENCY_GAP.as_millis(),
            row.backend.name(),
            row.producer.label(),
            row.samples,
            ms(row.p50),
            ms(row.p99),
            ms(row.max),
            ms(row.enqueue_p50),
            verdict
        );
    }
    println!();
}

pub(super) fn print_drain_table(rows: &[(Backend, usize, EndToEndRun)], n: usize) {
    println!(
        "Diagnostic (`drain`): the producer alone (no dispatcher running), then the dispatchers alone on a full queue.\n"
    );
    println!(
        "| backend | replicas | N | enqueue alone msg/s | dispatchers alone msg/s | flushes | mean flush |"
    );
    println!("|---|---|---|---:|---:|---:|---:|");
    for (backend, replicas, run) in rows {
        let b = &run.breakdown;
        println!(
            "| {} | {replicas} | {} | {} | {} | {:.0} | {:.1} ms |",
            backend.name(),
            thousands(n as f64),
            thousands(run.enqueue_per_second),
            thousands(run.per_second),
            b.flushes,
            1000.0 * b.flush_seconds / b.flushes.max(1.0)
        );
    }
    println!();
}

/// What the figures were measured on.
pub(super) struct Machine {
    lines: Vec<(String, String)>,
}

impl Machine {
    pub(super) async fn probe(backends: &[Backend]) -> anyhow::Result<Machine> {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let memory = std::fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:").map(|v| v.trim().to_string()))
            .unwrap_or_else(|| "unknown".into());
        let rustc = std::process::Command::new(std::env::var("RUSTC").unwrap_or("rustc".into()))
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|e| format!("unknown ({e})"));
        let kernel = read_trimmed("/proc/sys/kernel/osrelease");

        let mut sqlite = sqlx::SqliteConnection::connect("sqlite::memory:").await?;
        let sqlite_version: String = sqlx::query_scalar("select sqlite_version()")
            .fetch_one(&mut sqlite)
            .await?;
        let postgres_version = if backends.contains(&Backend::Postgres) {
            // Also starts the throwaway cluster now, outside every timed section.
            let db = Backend::Postgres.fresh_db();
            let version = tokio::task::block_in_place(|| {
                common::harness::psql(&db.url, "select version()")
                    .map_err(|e| anyhow::anyhow!("asking PostgreSQL its version: {e}"))
            })?;
            discard(db);
            format!(
                "{version} ({})",
                if std::env::var(common::harness::EXTERNAL_URL_VAR)
                    .is_ok_and(|v| !v.trim().is_empty())
                {
                    "server from HERALD_TEST_DATABASE_URL"
                } else {
                    "throwaway cluster from tests/it/common: fsync = off, synchronous_commit = off, \
                     full_page_writes = off, otherwise defaults"
                }
            )
        } else {
            "not run".into()
        };
        Ok(Machine {
            lines: vec![
                ("nproc".into(), nproc().to_string()),
                ("CPU".into(), cpu),
                ("memory".into(), memory),
                ("kernel".into(), kernel),
                ("rustc".into(), rustc),
                ("PostgreSQL".into(), postgres_version),
                (
                    "SQLite".into(),
                    format!(
                        "{sqlite_version} (bundled with sqlx; WAL, synchronous = NORMAL, file in {})",
                        std::env::temp_dir().display()
                    ),
                ),
                (
                    "load average at start".into(),
                    read_trimmed("/proc/loadavg"),
                ),
            ],
        })
    }

    pub(super) fn print(&self) {
        for (name, value) in &self.lines {
            println!("- {name}: {value}");
        }
    }
}

/// The `herald serve` drains: medians over the runs of each backend.
pub(super) fn print_serve_table(rows: &[(Backend, ServeRun, f64)], n: usize) {
    let rows: Vec<(Backend, &ServeRun, Option<f64>)> =
        rows.iter().map(|(b, r, raw)| (*b, r, Some(*raw))).collect();
    print_serve_rows("herald serve drain", &rows, n, |backend| {
        let target = if backend == Backend::Sqlite {
            20_000.0
        } else {
            12_000.0
        };
        format!("≥ {} msg/s, ≤ 50 µs CPU/msg", thousands(target))
    });
}

/// The `herald serve` drains by SMTP to smtp-sink (issue 10).
pub(super) fn print_smtp_serve_table(rows: &[(Backend, ServeRun)], n: usize) {
    let rows: Vec<(Backend, &ServeRun, Option<f64>)> =
        rows.iter().map(|(b, r)| (*b, r, None)).collect();
    print_serve_rows("herald serve → smtp-sink", &rows, n, |_| {
        "≥ 5,000 msg/s, pooled connections".to_string()
    });
}

/// One row per backend of `scenario`'s runs (with the raw loop's rate where it ran), with the
/// `target` of each backend.
fn print_serve_rows(
    scenario: &str,
    rows: &[(Backend, &ServeRun, Option<f64>)],
    n: usize,
    target: impl Fn(Backend) -> String,
) {
    println!(
        "\n| scenario | backend | N | median msg/s (runs) | median CPU µs/msg (runs) | peak RSS MB | raw lease + mark-sent rows/s, same runs (median) | target |"
    );
    println!("|---|---|---:|---|---|---:|---:|---|");
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let runs: Vec<&ServeRun> = rows
            .iter()
            .filter(|(b, _, _)| *b == backend)
            .map(|(_, r, _)| *r)
            .collect();
        let raw: Vec<f64> = rows
            .iter()
            .filter(|(b, _, _)| *b == backend)
            .filter_map(|(_, _, raw)| *raw)
            .collect();
        if runs.is_empty() {
            continue;
        }
        let rates: Vec<f64> = runs.iter().map(|r| r.per_second).collect();
        let cpu: Vec<f64> = runs.iter().map(|r| r.cpu_us_per_message(n)).collect();
        let rss = runs.iter().map(|r| r.peak_rss_kb).max().unwrap_or(0) / 1024;
        let list = |v: &[f64], digits: usize| {
            v.iter()
                .map(|x| format!("{x:.digits$}"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        println!(
            "| {scenario} | {} | {} | {} ({}) | {:.1} ({}) | {rss} | {} | {} |",
            backend.name(),
            thousands(n as f64),
            thousands(median(&rates)),
            list(&rates, 0),
            median(&cpu),
            list(&cpu, 1),
            if raw.is_empty() {
                "—".to_string()
            } else {
                thousands(median(&raw))
            },
            target(backend),
        );
    }
}

/// The producers' API (issue 11): per backend and recipient count, medians of the runs.
pub(super) fn print_api_table(runs: &[ApiRun]) {
    println!(
        "\n| scenario | backend | recipients | N | events/s (runs) | messages/s | server CPU µs/event (runs) | p50 | p99 | `herald enqueue` events/s | target |"
    );
    println!("|---|---|---:|---:|---|---:|---|---:|---:|---:|---|");
    for backend in [Backend::Sqlite, Backend::Postgres] {
        for recipients in [1, 100] {
            let group: Vec<&ApiRun> = runs
                .iter()
                .filter(|r| r.backend == backend && r.recipients == recipients)
                .collect();
            let Some(first) = group.first() else {
                continue;
            };
            let of = |f: fn(&ApiRun) -> f64| group.iter().map(|r| f(r)).collect::<Vec<f64>>();
            let list = |values: &[f64]| {
                values
                    .iter()
                    .map(|v| thousands(*v))
                    .collect::<Vec<_>>()
                    .join(" / ")
            };
            let rates = of(|r| r.events_per_second);
            let cpu = of(|r| r.cpu_us_per_event);
            let p50 = of(|r| r.p50.as_secs_f64());
            let p99 = of(|r| r.p99.as_secs_f64());
            let target = if backend == Backend::Sqlite && recipients == 1 {
                let verdict = if median(&rates) >= 3_000.0 {
                    "met"
                } else {
                    "**missed**"
                };
                format!("≥ 3,000 events/s {verdict}")
            } else {
                "—".to_string()
            };
            println!(
                "| POST /api/v1/events | {} | {recipients} | {} | {} ({}) | {} | {} ({}) | {} | {} | {:.1} | {target} |",
                backend.name(),
                thousands(first.n as f64),
                thousands(median(&rates)),
                list(&rates),
                thousands(median(&of(ApiRun::messages_per_second))),
                thousands(median(&cpu)),
                list(&cpu),
                ms(Duration::from_secs_f64(median(&p50))),
                ms(Duration::from_secs_f64(median(&p99))),
                median(&of(|r| r.cli_events_per_second)),
            );
        }
    }
}
