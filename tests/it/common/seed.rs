//! Queued messages for dispatcher tests and benchmarks, written straight into the store.

use chrono::Utc;
use herald::model::{MessageState, Method, PlannedMessage, User};
use herald::store::{NewMessage, Store};
use uuid::Uuid;

/// Queues `n` pending webhook messages of `test_notification` (labels `n=<i>`), in batches of
/// 1,000; returns their ids in creation order.
pub async fn webhook_messages(store: &dyn Store, n: usize) -> Vec<Uuid> {
    test_notifications(
        store,
        n,
        Method::Webhook,
        None,
        None,
        chrono::Duration::zero(),
    )
    .await
}

/// Queues `n` pending `test_notification` messages (labels `n=<i>`) by `method`, for `target`
/// (a target message) or `user`, created `age` ago, in batches of 1,000; returns their ids in
/// creation order.
pub async fn test_notifications(
    store: &dyn Store,
    n: usize,
    method: Method,
    target: Option<&str>,
    user: Option<&User>,
    age: chrono::Duration,
) -> Vec<Uuid> {
    let template = store
        .template_by_name("test_notification")
        .await
        .expect("read the catalog")
        .expect("test_notification is in the catalog (upsert it first)");
    let mut ids = Vec::with_capacity(n);
    let all: Vec<usize> = (0..n).collect();
    for chunk in all.chunks(1000) {
        let batch: Vec<NewMessage> = chunk
            .iter()
            .map(|i| NewMessage {
                id: Uuid::now_v7(),
                template_id: template.id,
                created_by: "test".into(),
                created_at: Utc::now() - age,
                planned: PlannedMessage {
                    user_id: user.map(|u| u.id),
                    target: target.map(str::to_string),
                    method,
                    status: MessageState::Pending,
                    status_reason: None,
                    payload: herald::routing::build_payload(
                        &template,
                        user,
                        &[("n".to_string(), i.to_string())].into_iter().collect(),
                        &serde_json::json!({}),
                        &[],
                    ),
                    dedupe_hash: None,
                },
            })
            .collect();
        ids.extend(store.enqueue(&batch).await.expect("enqueue").enqueued);
    }
    ids
}
