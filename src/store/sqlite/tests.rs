//! SQLite's text encodings and URL forms.

use chrono::{DateTime, Utc};

use super::database_path;
use super::text::{parse_ts, ts};

#[test]
fn timestamps_are_fixed_width_so_text_order_is_time_order() {
    let a = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
        .unwrap()
        .with_timezone(&Utc);
    let b = a + chrono::Duration::microseconds(1);
    assert_eq!(ts(a), "2026-01-02T03:04:05.000000Z");
    assert!(ts(a) < ts(b));
    assert_eq!(parse_ts("t", &ts(b)).unwrap(), b);
}

#[test]
fn database_path_reads_both_url_forms() {
    assert_eq!(database_path("sqlite://herald.db"), Some("herald.db"));
    assert_eq!(
        database_path("sqlite:/tmp/x.db?mode=rwc"),
        Some("/tmp/x.db")
    );
    assert_eq!(database_path("sqlite::memory:"), None);
}
