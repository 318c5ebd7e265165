//! Enqueueing: routing an event to its recipients, the label contract checked before anything
//! is written, and the test and custom notifications a person sends themselves.

use super::lookups::{Lookups, Parsed};
use super::*;
use std::collections::HashMap;

/// An event routed and not yet written: what [`Service::route`] returns.
pub(super) struct Routed {
    pub event: EventTemplate,
    pub labels: BTreeMap<String, String>,
    pub plan: routing::Plan,
    /// The username of every user routing considered, by id, so the queued messages can be
    /// answered without reading them back.
    pub usernames: HashMap<Uuid, String>,
}

impl Service {
    /// What routing needs from the configuration: the default method, the inbox copy, the
    /// methods this deployment configured.
    pub(super) fn routing_settings(&self) -> RoutingSettings {
        RoutingSettings {
            default_method: self.config.notifications.method,
            inbox_enabled: self.config.notifications.inbox_enabled,
            configured: self.config.configured_methods(),
        }
    }

    /// Routes an event to its recipients and queues the messages, all or nothing. Owners only:
    /// producers run as an owner account.
    pub async fn enqueue(
        &self,
        caller: &User,
        input: &EnqueueInput,
    ) -> ServiceResult<EnqueueReport> {
        require(caller, OWNERS, "enqueueing events")?;
        self.enqueue_unchecked(caller, input, true, None).await
    }

    async fn enqueue_unchecked(
        &self,
        caller: &User,
        input: &EnqueueInput,
        dedupe: bool,
        only_method: Option<Method>,
    ) -> ServiceResult<EnqueueReport> {
        let Routed {
            event,
            labels,
            plan,
            usernames,
        } = self.route(input, dedupe, false).await?;
        let planned = plan.messages.into_iter();
        let planned: Vec<_> = match only_method {
            None => planned.collect(),
            // A test by one method: the user's row for it, whatever their routing says.
            Some(method) => planned
                .take(1)
                .map(|p| routing::PlannedMessage {
                    method,
                    dedupe_hash: None,
                    ..p
                })
                .collect(),
        };
        self.queue_planned(caller, &event, &labels, planned, plan.warnings, usernames)
            .await
    }

    /// Resolves what `input` names and routes it ([`routing::plan`]), writing nothing: what
    /// enqueue queues and explain shows. With `bystanders`, every other known user is a
    /// candidate too, so the plan says why each gets nothing.
    pub(super) async fn route(
        &self,
        input: &EnqueueInput,
        dedupe: bool,
        bystanders: bool,
    ) -> ServiceResult<Routed> {
        let parsed = Parsed::of(input)?;
        let lookups = self.lookups(&[(input, &parsed)]).await?;
        let others = if bystanders {
            self.store.list_users().await?
        } else {
            Vec::new()
        };
        self.route_with(input, parsed, &lookups, dedupe, &others)
            .await
    }

    /// Routes `input` over what `lookups` read for it; a name they miss gets its
    /// unknown-event or unknown-user error here.
    pub(super) async fn route_with(
        &self,
        input: &EnqueueInput,
        parsed: Parsed,
        lookups: &Lookups,
        dedupe: bool,
        others: &[User],
    ) -> ServiceResult<Routed> {
        let Parsed { labels, data } = parsed;
        let event = match lookups.event(&input.event) {
            Some(event) => event.clone(),
            None => self.event_named(&input.event).await?,
        };
        let mut explicit: Vec<User> = Vec::with_capacity(input.users.len());
        for name in &input.users {
            // A name given twice was taken the first time.
            if explicit.iter().any(|u| &u.username == name) {
                continue;
            }
            let user = match lookups.user(name) {
                Some(user) => user.clone(),
                None => self.user_named(name).await?,
            };
            explicit.push(user);
        }
        let actor = match self.actor_name(input) {
            Some(name) => {
                let actor = match lookups.user(name) {
                    Some(actor) => actor.clone(),
                    None => self.user_named(name).await?,
                };
                if !actor.is_active() {
                    return Err(ServiceError::Invalid(format!(
                        "actor `{name}` is suspended: their targets receive nothing; activate them or drop --actor"
                    )));
                }
                Some(actor)
            }
            None => None,
        };
        let audit_owner = match labels.get("owner") {
            Some(owner) if input.event == "audit_failure" => lookups.user(owner).cloned(),
            _ => None,
        };
        let targets = self.config.target_refs();
        let settings = self.routing_settings();
        let now = Utc::now();
        let plan = routing::plan(&EnqueueRequest {
            event: &event,
            explicit: &explicit,
            audience: lookups.audience(&event),
            actor: actor.as_ref(),
            audit_owner: audit_owner.as_ref(),
            bystanders: others,
            labels: &labels,
            data: &data,
            targets: &targets,
            preferences: lookups.preferences(&event),
            settings: &settings,
            dedupe,
            day: now.date_naive(),
        });
        let usernames = explicit
            .iter()
            .chain(lookups.audience(&event))
            .chain(&actor)
            .chain(&audit_owner)
            .chain(others)
            .map(|u| (u.id, u.username.clone()))
            .collect();
        Ok(Routed {
            event,
            labels,
            plan,
            usernames,
        })
    }

    /// Admits routed messages of `event` sent with `labels` ([`Service::prepare`]), inserts them
    /// (one transaction) and reads back the ones created. Every path into the queue comes here
    /// or to [`Service::queue_prepared`].
    pub(super) async fn queue_planned(
        &self,
        caller: &User,
        event: &EventTemplate,
        labels: &BTreeMap<String, String>,
        planned: Vec<routing::PlannedMessage>,
        warnings: Vec<String>,
        usernames: HashMap<Uuid, String>,
    ) -> ServiceResult<EnqueueReport> {
        let prepared = self.prepare(caller, event, labels, planned, warnings, usernames)?;
        self.queue_prepared(vec![prepared])
            .await
            .pop()
            .expect("one report for one event")
    }

    /// Labels at the door (DESIGN §3): refuses, before anything is written, a message without a
    /// label its event requires, or one whose templates do not render for a planned recipient
    /// with the config's overrides, as the dispatcher would render it.
    pub(super) fn admit(
        &self,
        event: &EventTemplate,
        labels: &BTreeMap<String, String>,
        planned: &[routing::PlannedMessage],
    ) -> ServiceResult<()> {
        labels::check_required(&event.spec, labels)?;
        let overrides = self.overrides.as_ref().map_err(|e| {
            ServiceError::Invalid(format!(
                "cannot check the message against the config's template overrides: {e}; fix \
                 the override (`herald doctor` checks every template)"
            ))
        })?;
        let messages = planned.iter().map(|p| (p.target.as_deref(), &p.payload));
        labels::check_renders(event, overrides, messages)?;
        Ok(())
    }

    /// Sends `test_notification` to the caller, bypassing dedupe: by `method` only when given,
    /// else by the caller's normal routing (the event's method plus the inbox copy).
    pub async fn send_test(
        &self,
        caller: &User,
        method: Option<Method>,
    ) -> ServiceResult<EnqueueReport> {
        let input = EnqueueInput {
            event: "test_notification".into(),
            users: vec![caller.username.clone()],
            actor: None,
            labels: vec![format!("initiator={}", caller.username)],
            data: None,
        };
        let Some(method) = method else {
            return self.enqueue_unchecked(caller, &input, false, None).await;
        };
        if !self.config.configured_methods().contains(&method) {
            return Err(ServiceError::Invalid(format!(
                "{method} is not configured on this deployment ({}); `herald doctor` checks every channel",
                match method {
                    Method::Smtp => "set email.smarthost and email.from",
                    Method::Webhook => "set notifications.webhook.endpoint",
                    _ => "Slack reaches people only through [[targets]]",
                }
            )));
        }
        self.enqueue_unchecked(caller, &input, false, Some(method))
            .await
    }

    /// Sends an ad-hoc `custom_notification` to the caller (Coder's `notifications custom`).
    pub async fn send_custom(
        &self,
        caller: &User,
        title: &str,
        message: &str,
    ) -> ServiceResult<EnqueueReport> {
        if title.trim().is_empty() && message.trim().is_empty() {
            return Err(ServiceError::Invalid(
                "a custom notification needs a title or a message: herald notifications custom \"Build done\" \"All tests passed\"".into(),
            ));
        }
        let input = EnqueueInput {
            event: "custom_notification".into(),
            users: vec![caller.username.clone()],
            actor: None,
            labels: vec![
                format!("custom_title={title}"),
                format!("custom_message={message}"),
            ],
            data: None,
        };
        self.enqueue_unchecked(caller, &input, false, None).await
    }
}
