//! A migrated store and the rows tests write into it by hand: users, messages, leases and the
//! outcomes of their deliveries, plus the counts and listings tests read back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use herald::catalog;
use herald::model::{Capabilities, Message, MessageState, Method, PlannedMessage, Role};
use herald::queue::AttemptResult;
use herald::store::{
    self, AttemptRecord, LeaseRequest, LeasedMessage, MessageFilter, NewMessage, NewUser, OpenMode,
    PageRequest, Store,
};
use uuid::Uuid;

use super::TestDb;

/// `db` migrated, with the built-in catalog in it.
pub async fn migrated(db: &TestDb) -> Arc<dyn Store> {
    let store = store::open(&db.url, OpenMode::Migrate)
        .await
        .expect("open store");
    store
        .upsert_catalog(catalog::builtin())
        .await
        .expect("catalog");
    store
}

/// User `name` (`name@example.com`, display name `NAME`) with `roles`.
pub fn new_user(name: &str, roles: &[Role]) -> NewUser {
    NewUser {
        username: name.to_string(),
        email: format!("{name}@example.com"),
        name: name.to_uppercase(),
        roles: roles.to_vec(),
    }
}

/// The id of the catalog's event `name`.
pub async fn template_id(store: &dyn Store, name: &str) -> Uuid {
    store
        .template_by_name(name)
        .await
        .expect("read the catalog")
        .unwrap_or_else(|| panic!("{name} is in the catalog"))
        .id
}

/// A pending message of `template_id` to `user_id` by `method`, labelled `name=ws1`.
pub fn message(
    template_id: Uuid,
    user_id: Option<Uuid>,
    method: Method,
    hash: Option<&str>,
) -> NewMessage {
    NewMessage {
        id: Uuid::now_v7(),
        template_id,
        created_by: "test".into(),
        created_at: Utc::now(),
        planned: PlannedMessage {
            user_id,
            target: None,
            method,
            status: MessageState::Pending,
            status_reason: None,
            payload: serde_json::json!({"labels": {"name": "ws1"}}),
            dedupe_hash: hash.map(str::to_string),
        },
    }
}

/// A webhook message of `template_id` to no user, already in `status` (with `reason`, if any).
pub fn webhook_in(template_id: Uuid, status: MessageState, reason: Option<&str>) -> NewMessage {
    let mut m = message(template_id, None, Method::Webhook, None);
    m.planned.status = status;
    m.planned.status_reason = reason.map(str::to_string);
    m
}

/// A replica that delivers every method (and no targets).
pub fn every_method() -> Capabilities {
    Capabilities {
        methods: Method::ALL.to_vec(),
        targets: vec![],
    }
}

/// Leases up to `n` messages for a minute, with every method and max_send_attempts 5.
pub async fn lease(
    store: &dyn Store,
    notifier: Uuid,
    n: u32,
) -> Result<Vec<LeasedMessage>, store::StoreError> {
    lease_with(
        store,
        notifier,
        n,
        Duration::from_secs(60),
        5,
        &every_method(),
    )
    .await
}

/// Leases up to `n` messages `capabilities` can deliver, for `lease_period`.
pub async fn lease_with(
    store: &dyn Store,
    notifier: Uuid,
    n: u32,
    lease_period: Duration,
    max_send_attempts: u32,
    capabilities: &Capabilities,
) -> Result<Vec<LeasedMessage>, store::StoreError> {
    store
        .lease_batch(&LeaseRequest {
            notifier_id: notifier,
            limit: n,
            lease_period,
            max_send_attempts,
            capabilities,
        })
        .await
}

/// The outcome of `leased`'s delivery by `notifier`, just now; a temporary failure is due
/// for its retry at once.
pub fn outcome(
    leased: &LeasedMessage,
    notifier: Uuid,
    status: MessageState,
    reason: Option<&str>,
) -> AttemptRecord {
    AttemptRecord {
        message_id: leased.id,
        method: leased.method,
        target: leased.target.clone(),
        lease_token: leased.lease_token,
        notifier_id: notifier,
        started_at: Utc::now(),
        duration_ms: 3,
        result: AttemptResult {
            status,
            status_reason: reason.map(str::to_string),
            attempt_count: leased.attempt_count + 1,
            next_retry_after: (status == MessageState::TemporaryFailure)
                .then(|| Utc::now() - chrono::Duration::seconds(1)),
        },
    }
}

/// How many messages `counts` (from `count_by_state`) holds in `state`.
pub fn count(counts: &[(MessageState, i64)], state: MessageState) -> i64 {
    counts.iter().find(|(s, _)| *s == state).map_or(0, |c| c.1)
}

/// The first `limit` messages `filter` lists, newest first.
pub async fn list(store: &dyn Store, filter: &MessageFilter, limit: u32) -> Vec<Message> {
    store
        .list_messages(
            filter,
            PageRequest {
                before: None,
                limit,
            },
        )
        .await
        .expect("list messages")
}

/// Every message in `state` (up to 10,000).
pub async fn messages_in(store: &dyn Store, state: MessageState) -> Vec<Message> {
    let filter = MessageFilter {
        statuses: vec![state],
        ..MessageFilter::default()
    };
    list(store, &filter, 10_000).await
}

/// Polls until `ok(counts)` holds, or fails after `timeout` showing the counts and the top
/// failure reasons.
pub async fn wait_for_counts(
    store: &dyn Store,
    what: &str,
    timeout: Duration,
    ok: impl Fn(&[(MessageState, i64)]) -> bool,
) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(counts) = store.count_by_state().await {
            if ok(&counts) {
                return;
            }
            if Instant::now() >= deadline {
                let reasons = store.top_status_reasons(5).await.unwrap_or_default();
                panic!("timed out waiting for {what}; counts: {counts:?}; reasons: {reasons:?}");
            }
        } else {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Polls until each `(state, n)` of `totals` holds exactly, for up to `secs` seconds (see
/// [`wait_for_counts`]).
pub async fn wait_for_totals(store: &dyn Store, totals: &[(MessageState, i64)], secs: u64) {
    let timeout = Duration::from_secs(secs);
    let what: Vec<String> = totals.iter().map(|(s, n)| format!("{n} {s}")).collect();
    let ok = |c: &[(MessageState, i64)]| totals.iter().all(|(s, n)| count(c, *s) == *n);
    wait_for_counts(store, &what.join(", "), timeout, ok).await;
}
