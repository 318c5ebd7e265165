//! The store root's own rules: event globs, the UUIDv7 floor, schema version checks.

use chrono::Utc;
use uuid::Uuid;

use super::migrations::{check_version, latest_version};
use super::sql::search::like_pattern;
use super::uuid_v7_floor;

#[test]
fn event_globs_become_escaped_like_patterns() {
    assert_eq!(like_pattern("run_*"), "run\\_%");
    assert_eq!(like_pattern("100%"), "100\\%");
}

#[test]
fn the_v7_floor_sorts_below_ids_made_at_or_after_its_time() {
    let now = Utc::now();
    let floor = uuid_v7_floor(now);
    assert_eq!(floor.get_version_num(), 7);
    let later = Uuid::now_v7();
    assert!(later >= floor);
    assert!(
        later.to_string() >= floor.to_string(),
        "text order is byte order"
    );
    assert!(uuid_v7_floor(now - chrono::Duration::seconds(1)) < floor);
}

#[test]
fn versions_behind_or_ahead_are_refused_with_what_to_do() {
    let behind = check_version("sqlite://x.db", 0).unwrap_err().to_string();
    assert!(behind.contains("run `herald migrate`"), "{behind}");
    let ahead = check_version("sqlite://x.db", 99).unwrap_err().to_string();
    assert!(ahead.contains("upgrade herald"), "{ahead}");
    check_version("sqlite://x.db", latest_version()).unwrap();
}
