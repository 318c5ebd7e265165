//! Telemetry's tests: log formats and filters, the ring, metrics rendering.

use super::*;

use tracing::{debug, info, info_span, trace, warn};
use tracing_subscriber::layer::SubscriberExt;

/// A writer shared with the test, standing in for stderr.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// Runs `emit` under a local subscriber built from `opts`; returns what reached stderr and
/// the ring.
fn run_logging(opts: &LogOptions, emit: impl FnOnce()) -> (String, LogRing) {
    let out = Captured::default();
    let layer = LogLayer::new(opts, out.clone()).unwrap();
    let ring = layer.ring();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), emit);
    (out.text(), ring)
}

fn opts(level: Level, filter: Option<&str>) -> LogOptions {
    LogOptions {
        filter: filter.map(str::to_owned),
        level,
        ..LogOptions::serve()
    }
}

fn texts(ring: &LogRing) -> Vec<String> {
    ring.snapshot().into_iter().map(|line| line.text).collect()
}

fn line(level: Level, target: &str, text: &str) -> LogLine {
    LogLine {
        time: Utc::now(),
        level,
        target: target.to_owned(),
        text: text.to_owned(),
    }
}

/// `text` holds every one of `present` and none of `absent`.
#[track_caller]
fn assert_holds(text: &str, present: &[&str], absent: &[&str]) {
    for needle in present {
        assert!(text.contains(needle), "no {needle:?} in:\n{text}");
    }
    for needle in absent {
        assert!(!text.contains(needle), "{needle:?} in:\n{text}");
    }
}

#[test]
fn debug_events_are_shown_only_when_they_match_the_filter() {
    let (stderr, ring) = run_logging(&opts(Level::INFO, Some(".*notifications.*")), || {
        debug!(target: "herald::dispatch", "leased notifications batch");
        debug!(target: "herald::store", "flushed outcomes");
        info!(target: "herald::dispatch", "dispatcher started");
    });
    assert_eq!(
        texts(&ring),
        ["leased notifications batch", "dispatcher started"]
    );
    assert_holds(
        &stderr,
        &["leased notifications batch", "dispatcher started"],
        &["flushed outcomes"],
    );
}

#[test]
fn the_filter_matches_target_and_fields_too() {
    let (_, ring) = run_logging(&opts(Level::INFO, Some("dispatch.*m-42")), || {
        debug!(target: "herald::dispatch", message_id = "m-42", "delivered");
        debug!(target: "herald::dispatch", message_id = "m-43", "delivered");
        debug!(target: "herald::store", message_id = "m-42", "delivered");
    });
    let kept = ring.snapshot();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0].target, "herald::dispatch");
    assert_eq!(kept[0].text, "delivered message_id=m-42");
}

#[test]
fn without_a_filter_debug_events_are_dropped_and_dot_star_keeps_them_all() {
    let emit = || {
        debug!(target: "herald::a", "one");
        debug!(target: "herald::b", "two");
        trace!(target: "herald::c", "three");
    };
    let (stderr, ring) = run_logging(&opts(Level::INFO, None), emit);
    assert!(ring.is_empty(), "{:?}", ring.snapshot());
    assert_eq!(stderr, "");

    let (stderr, ring) = run_logging(&opts(Level::INFO, Some(".*")), emit);
    assert_eq!(texts(&ring), ["one", "two"], "debug only, never trace");
    assert_eq!(stderr.lines().count(), 2, "{stderr}");

    let (_, ring) = run_logging(&opts(Level::INFO, Some("  ")), emit);
    assert!(ring.is_empty(), "a blank filter is no filter");
}

#[test]
fn a_warn_base_level_keeps_info_in_the_ring_but_not_on_stderr() {
    let (stderr, ring) = run_logging(&opts(Level::WARN, None), || {
        info!(target: "herald::service", "paused");
        warn!(target: "herald::service", "store slow");
    });
    assert_eq!(texts(&ring), ["paused", "store slow"]);
    assert_holds(&stderr, &["store slow"], &["paused"]);
}

#[test]
fn text_lines_carry_rfc3339_time_level_target_and_fields() {
    let (stderr, _) = run_logging(&opts(Level::INFO, None), || {
        info!(
            target: "herald::dispatch",
            notifier_id = "n-1",
            message_id = %"m-7",
            attempt = 2_u64,
            reason = "connection refused",
            "delivered"
        );
    });
    let expected = Regex::new(
        r#"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z  INFO herald::dispatch: delivered notifier_id=n-1 message_id=m-7 attempt=2 reason="connection refused"\n$"#,
    )
    .unwrap();
    assert!(expected.is_match(&stderr), "{stderr:?}");
    assert!(!stderr.contains('\x1b'), "no colour unless asked");
}

#[test]
fn peer_text_in_a_log_line_cannot_reach_the_terminal_raw() {
    let hostile = "bad\0body \u{1b}[2J\u{1b}]0;pwned\u{7}";
    let (stderr, ring) = run_logging(&opts(Level::INFO, None), || {
        warn!(error = %hostile, reason = hostile, "failed: {hostile}");
    });
    assert!(
        !stderr.contains('\u{1b}') && !stderr.contains('\0'),
        "{stderr:?}"
    );
    assert!(stderr.contains("\\u{1b}[2J"), "{stderr:?}");
    for line in ring.snapshot() {
        assert!(!line.text.chars().any(char::is_control), "{line:?}");
    }
}

#[test]
fn ansi_colours_the_level_only_when_asked() {
    let opts = LogOptions {
        ansi: true,
        ..opts(Level::INFO, None)
    };
    let (stderr, _) = run_logging(&opts, || warn!("careful"));
    assert!(stderr.contains("\x1b[33m WARN\x1b[0m"), "{stderr:?}");
}

#[test]
fn span_fields_are_attached_to_events_inside_the_span() {
    let (_, ring) = run_logging(&opts(Level::INFO, None), || {
        let span = info_span!("dispatch", notifier_id = "n-9", message_id = "outer");
        let _entered = span.enter();
        info!(message_id = "m-1", "sent");
    });
    assert_eq!(texts(&ring), ["sent message_id=m-1 notifier_id=n-9"]);
}

#[test]
fn json_lines_keep_typed_fields() {
    let opts = LogOptions {
        json: true,
        ..opts(Level::INFO, None)
    };
    let (stderr, ring) = run_logging(&opts, || {
        info!(target: "herald::dispatch", notifier_id = "n-1", attempt = 3_i64, ok = true, "sent");
    });
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    let value: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(value["level"], "INFO");
    assert_eq!(value["target"], "herald::dispatch");
    assert_eq!(value["fields"]["message"], "sent");
    assert_eq!(value["fields"]["notifier_id"], "n-1");
    assert_eq!(value["fields"]["attempt"], 3);
    assert_eq!(value["fields"]["ok"], true);
    let timestamp = value["timestamp"].as_str().unwrap();
    assert!(
        DateTime::parse_from_rfc3339(timestamp).is_ok(),
        "{timestamp}"
    );
    assert_eq!(texts(&ring), ["sent notifier_id=n-1 attempt=3 ok=true"]);
}

#[test]
fn muting_stderr_keeps_the_ring_recording() {
    let out = Captured::default();
    let layer = LogLayer::new(&opts(Level::INFO, None), out.clone()).unwrap();
    let handle = layer.handle();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        info!("before");
        handle.set_stderr(false);
        info!("muted");
        handle.set_stderr(true);
        info!("after");
    });
    assert_eq!(texts(&handle.ring()), ["before", "muted", "after"]);
    let stderr = out.text();
    assert!(
        stderr.contains("before") && stderr.contains("after"),
        "{stderr}"
    );
    assert!(!stderr.contains("muted"), "{stderr}");
}

#[test]
fn a_bad_filter_regex_is_a_one_line_error_naming_the_filter() {
    let err = capture_layer(&opts(Level::INFO, Some("(notifications"))).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(&err, TelemetryError::InvalidLogFilter { filter, .. } if filter == "(notifications"),
        "{err:?}"
    );
    assert!(!text.contains('\n'), "{text:?}");
    assert!(text.contains("\"(notifications\""), "{text}");
    assert!(text.contains("unclosed group"), "{text}");
}

#[test]
fn capture_layer_records_without_a_global_subscriber() {
    let (layer, ring) = capture_layer(&opts(Level::INFO, None)).unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        info!(target: "herald::dispatch", "captured");
    });
    let kept = ring.snapshot();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].level, Level::INFO);
    assert_eq!(kept[0].target, "herald::dispatch");
}

#[test]
fn init_logging_refuses_when_a_global_subscriber_is_set() {
    // Whichever of these installs first, a later init must be an error, not a panic.
    let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry());
    let result = init_logging(&opts(Level::ERROR, None));
    assert!(
        matches!(result, Err(TelemetryError::LoggingAlreadyInitialized)),
        "{result:?}"
    );
}

#[test]
fn the_ring_keeps_only_the_last_capacity_lines() {
    let ring = LogRing::new(3);
    for i in 0..5 {
        ring.push(line(Level::INFO, "herald::t", &format!("line {i}")));
    }
    assert_eq!(texts(&ring), ["line 2", "line 3", "line 4"]);
    assert_eq!(ring.len(), 3);
    assert_eq!(ring.capacity(), 3);
}

#[test]
fn generation_counts_every_push_and_since_returns_newer_lines() {
    let ring = LogRing::new(2);
    assert_eq!(ring.generation(), 0);
    ring.push(line(Level::INFO, "t", "a"));
    let seen = ring.generation();
    assert_eq!(seen, 1);
    ring.push(line(Level::INFO, "t", "b"));
    ring.push(line(Level::INFO, "t", "c"));
    assert_eq!(ring.generation(), 3);
    let newer: Vec<String> = ring.since(seen).into_iter().map(|l| l.text).collect();
    assert_eq!(newer, ["b", "c"]);
    assert!(ring.since(ring.generation()).is_empty());

    let none = LogRing::new(0);
    none.push(line(Level::INFO, "t", "a"));
    assert_eq!((none.len(), none.generation()), (0, 1));
}

#[test]
fn lines_matching_filters_on_level_target_and_text() {
    let ring = LogRing::new(10);
    ring.push(line(Level::INFO, "herald::dispatch", "sent message_id=m-1"));
    ring.push(line(Level::ERROR, "herald::channels::smtp", "refused"));
    ring.push(line(Level::INFO, "herald::store", "flushed"));
    let matching = |pattern: &str| -> Vec<String> {
        ring.lines_matching(&Regex::new(pattern).unwrap())
            .into_iter()
            .map(|l| l.text)
            .collect()
    };
    assert_eq!(matching("^ERROR"), ["refused"]);
    assert_eq!(
        matching("dispatch|store"),
        ["sent message_id=m-1", "flushed"]
    );
    assert_eq!(matching(r"message_id=m-\d"), ["sent message_id=m-1"]);
    assert!(matching("nothing-like-this").is_empty());
}

#[test]
fn log_line_display_is_the_text_form() {
    let line = LogLine {
        time: DateTime::parse_from_rfc3339("2024-05-06T07:08:09.010Z")
            .unwrap()
            .with_timezone(&Utc),
        level: Level::WARN,
        target: "herald::dispatch".to_owned(),
        text: "slow".to_owned(),
    };
    assert_eq!(
        line.to_string(),
        "2024-05-06T07:08:09.010Z  WARN herald::dispatch: slow"
    );
}

// --- metrics ---

/// The sample lines of `text` whose metric name is `name`, label set included.
fn samples<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .collect()
}

#[test]
fn attempts_are_counted_per_label_set_with_labels_in_name_order() {
    let metrics = Metrics::new();
    metrics.record_attempt("webhook", "run_failure", "sent", 0.02);
    metrics.record_attempt("webhook", "run_failure", "sent", 0.03);
    metrics.record_attempt("smtp", "run_failure", "temporary_failure", 1.0);
    let text = metrics.render();
    assert_eq!(
        samples(&text, "herald_dispatch_attempts_total"),
        [
            r#"herald_dispatch_attempts_total{event="run_failure",method="smtp",result="temporary_failure"} 1"#,
            r#"herald_dispatch_attempts_total{event="run_failure",method="webhook",result="sent"} 2"#,
        ]
    );
    assert!(
        text.contains(r#"herald_send_seconds_count{method="webhook"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"herald_send_seconds_sum{method="webhook"} 0.05"#),
        "{text}"
    );
}

#[test]
fn label_values_are_escaped() {
    let metrics = Metrics::new();
    metrics.record_retry("we\"ird\\me\nthod");
    let text = metrics.render();
    assert_eq!(
        samples(&text, "herald_retries_total"),
        [r#"herald_retries_total{method="we\"ird\\me\nthod"} 1"#]
    );
}

#[test]
fn histogram_buckets_are_cumulative_and_end_with_inf() {
    let metrics = Metrics::new();
    for seconds in [0.005, 0.3, 0.3, 100.0] {
        metrics.record_attempt("slack", "e", "sent", seconds);
    }
    let text = metrics.render();
    let buckets = samples(&text, "herald_send_seconds_bucket");
    let expected: Vec<String> = [
        ("0.005", 1),
        ("0.01", 1),
        ("0.025", 1),
        ("0.05", 1),
        ("0.1", 1),
        ("0.25", 1),
        ("0.5", 3),
        ("1", 3),
        ("2.5", 3),
        ("5", 3),
        ("10", 3),
        ("30", 3),
        ("60", 3),
        ("+Inf", 4),
    ]
    .iter()
    .map(|(le, n)| format!(r#"herald_send_seconds_bucket{{method="slack",le="{le}"}} {n}"#))
    .collect();
    assert_eq!(buckets, expected);
    assert_eq!(
        samples(&text, "herald_send_seconds_sum"),
        [r#"herald_send_seconds_sum{method="slack"} 100.605"#]
    );
    assert_eq!(
        samples(&text, "herald_send_seconds_count"),
        [r#"herald_send_seconds_count{method="slack"} 4"#]
    );
}

#[test]
fn non_finite_observations_are_dropped_and_negative_ones_count_as_zero() {
    let metrics = Metrics::new();
    metrics.observe_flush(f64::NAN);
    metrics.observe_flush(f64::INFINITY);
    metrics.observe_flush(-2.0);
    let present = [
        "herald_store_flush_seconds_bucket{le=\"0.001\"} 1\n",
        "herald_store_flush_seconds_count 1\n",
        "herald_store_flush_seconds_sum 0\n",
    ];
    assert_holds(&metrics.render(), &present, &[]);
}

#[test]
fn gauges_and_plain_counters_render_their_current_values() {
    let metrics = Metrics::new();
    metrics.inflight_add(5);
    metrics.inflight_add(-2);
    metrics.set_pending_updates(7);
    metrics.set_pending_updates(4);
    metrics.record_lease(10);
    metrics.record_lease(5);
    metrics.observe_queued("inbox", 400.0);
    let text = metrics.render();
    assert_eq!(samples(&text, "herald_inflight"), ["herald_inflight 3"]);
    assert_eq!(
        samples(&text, "herald_pending_updates"),
        ["herald_pending_updates 4"]
    );
    assert_eq!(
        samples(&text, "herald_leased_total"),
        ["herald_leased_total 15"]
    );
    assert!(
        text.contains("herald_queued_seconds_bucket{method=\"inbox\",le=\"300\"} 0\n")
            && text.contains("herald_queued_seconds_bucket{method=\"inbox\",le=\"600\"} 1\n"),
        "{text}"
    );
}

#[test]
fn render_is_valid_exposition_text() {
    let metrics = Metrics::new();
    metrics.record_attempt("webhook", "run_failure", "sent", 0.1);
    metrics.record_attempt("smtp", "audit_failed", "permanent_failure", 2.0);
    metrics.record_retry("smtp");
    metrics.observe_queued("smtp", 1.5);
    metrics.observe_flush(0.004);
    metrics.set_message_counts(vec![("sent".into(), 12), ("pending".into(), 3)]);
    metrics.set_backlog(vec![("webhook".into(), 3), ("smtp".into(), 0)]);
    let text = metrics.render();
    assert!(
        text.contains("\nherald_messages{status=\"pending\"} 3\n"),
        "{text}"
    );
    assert!(
        text.contains("\nherald_backlog_messages{method=\"smtp\"} 0\n"),
        "{text}"
    );

    let sample_line = Regex::new(
        r#"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*\})? (-?[0-9.]+(?:e[+-]?[0-9]+)?|\+Inf|-Inf|NaN)$"#,
    )
    .unwrap();
    let mut typed: HashMap<String, String> = HashMap::new();
    let mut helped = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap().to_owned();
            assert!(helped.insert(name), "HELP twice: {line}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().unwrap().to_owned();
            let kind = parts.next().unwrap().to_owned();
            assert!(
                ["counter", "gauge", "histogram"].contains(&kind.as_str()),
                "{line}"
            );
            assert!(typed.insert(name, kind).is_none(), "TYPE twice: {line}");
        } else {
            let captures = sample_line
                .captures(line)
                .unwrap_or_else(|| panic!("not a sample line: {line:?}"));
            let name = &captures[1];
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    name.strip_suffix(suffix)
                        .filter(|base| typed.get(*base).is_some_and(|k| k == "histogram"))
                })
                .unwrap_or(name);
            assert!(typed.contains_key(family), "sample before its TYPE: {line}");
        }
    }
    assert!(text.ends_with('\n'));
    assert_eq!(typed.len(), 13, "{typed:?}");
    assert_eq!(
        helped.len(),
        typed.len(),
        "every family has HELP: {helped:?}"
    );
}

#[test]
fn concurrent_records_are_all_counted() {
    let metrics = Arc::new(Metrics::new());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let metrics = metrics.clone();
            std::thread::spawn(move || {
                for i in 0..5_000 {
                    let method = if i % 2 == 0 { "webhook" } else { "smtp" };
                    metrics.record_attempt(method, &format!("event_{}", t % 2), "sent", 0.01);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let text = metrics.render();
    let total: u64 = samples(&text, "herald_dispatch_attempts_total")
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, 20_000);
    assert_eq!(samples(&text, "herald_dispatch_attempts_total").len(), 4);
}

#[test]
fn metrics_can_be_shared_across_threads() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<Metrics>();
    shareable::<LogRing>();
    shareable::<LogHandle>();
}
