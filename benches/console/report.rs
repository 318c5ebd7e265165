//! The console benchmark's figures: medians and percentiles, and the Markdown tables it
//! prints.

use super::*;

/// `values`, smallest first.
pub(super) fn sorted(values: &[Duration]) -> Vec<Duration> {
    let mut values = values.to_vec();
    values.sort();
    values
}

/// A duration in milliseconds, two decimals below one.
pub(super) fn ms(d: Duration) -> String {
    match d.as_secs_f64() * 1000.0 {
        millis if millis < 1.0 => format!("{millis:.2} ms"),
        millis => format!("{millis:.1} ms"),
    }
}

fn mb(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 / 1024.0)
}

fn verdict(met: bool, value: f64, target: f64) -> String {
    if met {
        "met".into()
    } else {
        format!("**missed** by {:.0}%", 100.0 * (value / target - 1.0))
    }
}

/// Prints the seeding and console tables BENCHMARKS.md shows, one row a backend.
pub(super) fn print_tables(reports: &[Report], options: &Options) {
    println!("| backend | N | seeding | seeding msg/s | mean payload | seeding peak RSS |");
    println!("|---|---:|---:|---:|---:|---:|");
    for r in reports {
        println!(
            "| {} | {} | {:.1} s | {} | {} B | {} |",
            r.backend.name(),
            thousands(r.n as f64),
            r.seeded.elapsed.as_secs_f64(),
            thousands(r.n as f64 / r.seeded.elapsed.as_secs_f64()),
            r.seeded.payload_bytes,
            mb(r.seeded.peak_kb)
        );
    }
    println!();
    println!("| backend | measure | median | p95 | max | target | result |");
    println!("|---|---|---:|---:|---:|---|---|");
    for r in reports {
        let b = r.backend.name();
        println!(
            "| {b} | for reference: start-up, first full Events frame (catalog, 24 h volumes, inbox, pause flag) | {} | | | | |",
            ms(r.console.start_frame)
        );
        println!(
            "| {b} | first Queue frame (`4` → counts + page + throughput drawn) | {} | | | < 100 ms | {} |",
            ms(r.console.first_frame),
            verdict(
                r.console.first_frame < FIRST_FRAME_TARGET,
                r.console.first_frame.as_secs_f64(),
                FIRST_FRAME_TARGET.as_secs_f64()
            )
        );
        for f in &r.console.filters {
            let steps = sorted(&f.steps);
            let p95 = percentile(&steps, 0.95);
            let label = if f.filter.is_empty() {
                "no filter".to_string()
            } else {
                format!("`{}`", f.filter)
            };
            println!(
                "| {b} | filter {label}: applied (first page drawn) | {} | | | | |",
                ms(f.applied)
            );
            println!(
                "| {b} | page step (PgDn → next page drawn), {label}, {} steps, {} rows | {} | {} | {} | < 50 ms | {} |",
                steps.len(),
                thousands(f.rows as f64),
                ms(percentile(&steps, 0.5)),
                ms(p95),
                ms(steps.last().copied().unwrap_or_default()),
                verdict(
                    p95 < STEP_TARGET,
                    p95.as_secs_f64(),
                    STEP_TARGET.as_secs_f64()
                )
            );
        }
        let counts = sorted(&r.console.counts);
        println!(
            "| {b} | counts refresh (`LoadCounts`, {} runs) | {} | {} | {} | no table scan | reads `notification_counts` |",
            counts.len(),
            ms(percentile(&counts, 0.5)),
            ms(percentile(&counts, 0.95)),
            ms(counts.last().copied().unwrap_or_default())
        );
        let scans = sorted(&r.scans);
        println!(
            "| {b} | for comparison: `GROUP BY status` over the table ({} runs, own connection) | {} | | {} | | what the counts cost before |",
            scans.len(),
            ms(percentile(&scans, 0.5)),
            ms(scans.last().copied().unwrap_or_default())
        );
        let reasons = sorted(&r.reason_scans);
        println!(
            "| {b} | for comparison: the top-reasons query before issue 13, every failure regrouped ({} runs, own connection; the tab ran it each second) | {} | | {} | | |",
            reasons.len(),
            ms(percentile(&reasons, 0.5)),
            ms(reasons.last().copied().unwrap_or_default())
        );
        for (tab, runs) in &r.console.idle {
            let mut runs = runs.clone();
            runs.sort_by(f64::total_cmp);
            let median = runs[runs.len() / 2];
            let max = runs.last().copied().unwrap_or_default();
            println!(
                "| {b} | idle CPU, {tab} tab open, {} × {} s (share of one core) | {:.2} % | | {:.2} % | < {:.0} % | {} |",
                runs.len(),
                IDLE_WINDOW.as_secs(),
                median * 100.0,
                max * 100.0,
                IDLE_TARGET * 100.0,
                verdict(median < IDLE_TARGET, median, IDLE_TARGET)
            );
        }
        println!(
            "| {b} | peak RSS of the console process (VmHWM; RSS at the end {}) | {} | | | < 100 MB | {} |",
            mb(r.console.rss_kb),
            mb(r.console.peak_kb),
            verdict(
                r.console.peak_kb < MEMORY_TARGET_KB,
                r.console.peak_kb as f64,
                MEMORY_TARGET_KB as f64
            )
        );
    }
    println!();
    println!("Where the first frame's time goes (each effect alone, after the first frame):\n");
    println!("| backend | effect | time |");
    println!("|---|---|---:|");
    for r in reports {
        for (name, time) in &r.console.first_effects {
            println!("| {} | {name} | {} |", r.backend.name(), ms(*time));
        }
    }
    println!();
    println!(
        "(--steps {}, --batch {}; times exclude the run loop's wait for its next frame tick, at most {} ms)",
        options.steps, options.batch, 33
    );
}
