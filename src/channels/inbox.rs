//! The in-app inbox: delivering is writing a row of `inbox_notifications`.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use uuid::Uuid;

use super::{Channel, Delivery};
use crate::model::{DeliveryOutcome, Method};
use crate::store::{NewInboxEntry, Store};

/// Writes inbox entries into the shared store.
pub struct InboxChannel {
    store: Arc<dyn Store>,
}

impl InboxChannel {
    pub fn new(store: Arc<dyn Store>) -> InboxChannel {
        InboxChannel { store }
    }
}

#[async_trait]
impl Channel for InboxChannel {
    fn method(&self) -> Method {
        Method::Inbox
    }

    async fn deliver(&self, delivery: &Delivery<'_>) -> DeliveryOutcome {
        let Some(user_id) = delivery.user_id else {
            return DeliveryOutcome::Permanent {
                reason: "inbox message without a recipient user".into(),
            };
        };
        let template_id = delivery
            .payload
            .get("notification_template_id")
            .and_then(|v| v.as_str())
            .and_then(|s| Uuid::parse_str(s).ok());
        let Some(template_id) = template_id else {
            return DeliveryOutcome::Permanent {
                reason: "inbox message payload has no notification_template_id".into(),
            };
        };
        let entry = NewInboxEntry {
            id: Uuid::now_v7(),
            user_id,
            template_id,
            message_id: delivery.message_id,
            title: delivery.rendered.title.clone(),
            content: delivery.rendered.body_markdown.clone(),
            actions: delivery.rendered.actions.clone(),
            created_at: Utc::now(),
        };
        match self.store.insert_inbox(&entry).await {
            Ok(()) => DeliveryOutcome::Sent,
            Err(e) => DeliveryOutcome::Retryable {
                reason: format!("inbox write failed: {e}"),
                retry_after: None,
            },
        }
    }
}
