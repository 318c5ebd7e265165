//! The operations the console needs beyond the CLI's: searches by reason and title, messages
//! rendered as their recipients see them, counts, top reasons, volumes, throughput, replicas,
//! doctor, and a test of any event sent to yourself.
//!
//! Same rules as the rest of the service: every operation checks the caller's roles first, and
//! members only ever see their own messages.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{EnqueueReport, OWNERS, QUEUE_WATCHERS, Service, ServiceError, ServiceResult, require};
use crate::channels::CheckResult;
use crate::model::{Attempt, EventTemplate, Message, MessageState, User};
use crate::queue;
use crate::render::{self, Overrides, Rendered};
use crate::routing::{self, EnqueueRequest};
use crate::store::{
    MessageFilter, PageRequest, ReasonCount, Replica, StateCounts, StoreError, Undeliverable,
};

/// Which messages the console's queue shows: the store filter, a recipient by name, and an
/// exact `status_reason` (the Troubleshoot tab's jump).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueQuery {
    /// Statuses, event glob and method; its `user_id` is ignored (use `user`).
    pub filter: MessageFilter,
    /// A recipient's username.
    pub user: Option<String>,
    /// Only messages whose `status_reason` is exactly this.
    pub reason: Option<String>,
    /// Only messages whose rendered title contains this, ignoring case (`title~TEXT`).
    pub title: Option<String>,
}

/// A message with its title rendered as its recipient sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TitledMessage {
    #[serde(flatten)]
    pub message: Message,
    /// The rendered title, fit for a terminal; says so when the templates do not render.
    pub title: String,
}

/// One message as the console's detail shows it: the row, its attempts, and what its recipient
/// gets (or why it does not render).
#[derive(Debug, Clone, PartialEq)]
pub struct MessageDetail {
    pub message: Message,
    pub attempts: Vec<Attempt>,
    pub rendered: Result<Rendered, String>,
}

/// How many messages past the cursor a `title~` search reads, at most, before it answers with
/// the matches it found (titles are rendered, not stored, so they cannot be searched by index).
pub const TITLE_SCAN_LIMIT: usize = 5_000;

/// How many messages a `title~` search reads per store page.
const TITLE_SCAN_CHUNK: u32 = 500;

/// The longest title shown.
const MAX_TITLE_CHARS: usize = 200;

/// Event templates read for one batch of renders, by event name (`None`: not in the catalog).
type Templates = HashMap<String, Option<EventTemplate>>;

impl Service {
    /// The store filter `caller` may run for `query`: members see only their own messages,
    /// owners and on-call anyone's.
    async fn visible_filter(
        &self,
        caller: &User,
        query: &QueueQuery,
    ) -> ServiceResult<MessageFilter> {
        let mut filter = query.filter.clone();
        let sees_all = require(caller, QUEUE_WATCHERS, "").is_ok();
        filter.user_id = match query.user.as_deref() {
            Some(name) if name != caller.username => {
                require(caller, QUEUE_WATCHERS, "listing another user's messages")?;
                Some(self.user_named(name).await?.id)
            }
            Some(_) => Some(caller.id),
            None if !sees_all => Some(caller.id),
            None => None,
        };
        if let Some(event) = &filter.event
            && !event.contains('*')
        {
            self.event_named(event).await?;
        }
        Ok(filter)
    }

    /// A keyset page of the messages matching `query`, newest first.
    pub async fn search_messages(
        &self,
        caller: &User,
        query: &QueueQuery,
        page: PageRequest,
    ) -> ServiceResult<Vec<Message>> {
        let filter = self.visible_filter(caller, query).await?;
        Ok(self
            .store
            .search_messages(&filter, query.reason.as_deref(), page)
            .await?)
    }

    /// A keyset page of the messages matching `query` with their rendered titles, newest
    /// first. With `query.title` it reads at most [`TITLE_SCAN_LIMIT`] messages past the
    /// cursor, so a short page may not be the last.
    pub async fn search_titled(
        &self,
        caller: &User,
        query: &QueueQuery,
        page: PageRequest,
    ) -> ServiceResult<Vec<TitledMessage>> {
        let filter = self.visible_filter(caller, query).await?;
        let reason = query.reason.as_deref();
        let mut templates = Templates::new();
        let Some(needle) = query.title.as_deref().map(str::to_lowercase) else {
            let list = self.store.search_messages(&filter, reason, page).await?;
            return self.titled_with(list, &mut templates).await;
        };
        let limit = page.limit as usize;
        let mut found = Vec::new();
        let mut before = page.before;
        let mut scanned = 0;
        while found.len() < limit && scanned < TITLE_SCAN_LIMIT {
            let chunk = PageRequest {
                before,
                limit: TITLE_SCAN_CHUNK,
            };
            let list = self.store.search_messages(&filter, reason, chunk).await?;
            let read = list.len();
            scanned += read;
            before = list.last().map(|m| m.id);
            for m in self.titled_with(list, &mut templates).await? {
                if found.len() < limit && m.title.to_lowercase().contains(&needle) {
                    found.push(m);
                }
            }
            if read < TITLE_SCAN_CHUNK as usize {
                break;
            }
        }
        Ok(found)
    }

    /// `messages` (already read under the caller's permissions) with their rendered titles.
    pub async fn titled(&self, messages: Vec<Message>) -> ServiceResult<Vec<TitledMessage>> {
        self.titled_with(messages, &mut Templates::new()).await
    }

    async fn titled_with(
        &self,
        messages: Vec<Message>,
        templates: &mut Templates,
    ) -> ServiceResult<Vec<TitledMessage>> {
        let mut out = Vec::with_capacity(messages.len());
        for message in messages {
            let title = match self.render_with(&message, templates).await? {
                Ok(r) => queue::clean_text(&r.title, MAX_TITLE_CHARS),
                Err(why) => format!("({why})"),
            };
            out.push(TitledMessage { message, title });
        }
        Ok(out)
    }

    /// One message with its attempts and its rendering; own messages, or any for owners and
    /// on-call.
    pub async fn message_detail(&self, caller: &User, id: &str) -> ServiceResult<MessageDetail> {
        let (message, attempts) = self.message(caller, id).await?;
        let rendered = self.rendered(&message).await?;
        Ok(MessageDetail {
            message,
            attempts,
            rendered,
        })
    }

    /// `message` rendered as the dispatcher renders it for delivery (the config's overrides,
    /// the target's), or why it does not render.
    pub async fn rendered(&self, message: &Message) -> ServiceResult<Result<Rendered, String>> {
        self.render_with(message, &mut Templates::new()).await
    }

    async fn render_with(
        &self,
        message: &Message,
        templates: &mut Templates,
    ) -> ServiceResult<Result<Rendered, String>> {
        if !templates.contains_key(&message.event) {
            let found = self.store.template_by_name(&message.event).await?;
            templates.insert(message.event.clone(), found);
        }
        let Some(event) = templates.get(&message.event).and_then(Option::as_ref) else {
            return Ok(Err(format!(
                "event `{}` is no longer in the catalog",
                message.event
            )));
        };
        let none = Overrides::default();
        let overrides = match &self.overrides {
            Ok(o) => o,
            Err(_) => &none,
        };
        Ok(render::render_for(
            event,
            overrides,
            message.target.as_deref(),
            &message.payload,
        )
        .map_err(|e| format!("does not render: {e}")))
    }

    /// How many messages match `query` (as the caller may see them).
    pub async fn count_matching(&self, caller: &User, query: &QueueQuery) -> ServiceResult<i64> {
        let filter = self.visible_filter(caller, query).await?;
        Ok(self
            .store
            .count_messages(&filter, query.reason.as_deref())
            .await?)
    }

    /// Retries every failed message matching `query`; owners only. Its statuses must be
    /// failure states (none means both). Returns how many were put back to `pending`.
    pub async fn retry_query(&self, caller: &User, query: &QueueQuery) -> ServiceResult<usize> {
        require(caller, OWNERS, "retrying messages")?;
        let mut filter = self.visible_filter(caller, query).await?;
        for s in &filter.statuses {
            if queue::can_retry(*s, false).is_err() {
                return Err(ServiceError::Invalid(format!(
                    "cannot retry messages in state {s}: only temporary_failure and permanent_failure can be retried"
                )));
            }
        }
        if filter.statuses.is_empty() {
            filter.statuses = vec![
                MessageState::TemporaryFailure,
                MessageState::PermanentFailure,
            ];
        }
        let reason = query.reason.as_deref();
        let mut subject = super::audit::describe_filter(&filter, query.user.as_deref());
        if let Some(r) = reason {
            subject.push_str(&format!(" reason={r}"));
        }
        let total = self
            .retry_pages(caller, false, subject, |page| {
                self.store.search_messages(&filter, reason, page)
            })
            .await?;
        tracing::info!(user = %caller.username, count = total, "messages retried from the console");
        Ok(total)
    }

    /// The commonest reasons messages failed; owners and on-call.
    pub async fn top_status_reasons(
        &self,
        caller: &User,
        limit: u32,
    ) -> ServiceResult<Vec<ReasonCount>> {
        let read = self.store.top_status_reasons(limit);
        watching(caller, "viewing failure reasons", read).await
    }

    /// Messages created since `since`, per event; owners and on-call.
    pub async fn event_volumes(
        &self,
        caller: &User,
        since: DateTime<Utc>,
    ) -> ServiceResult<Vec<(String, i64)>> {
        watching(
            caller,
            "viewing event volumes",
            self.store.volume_by_event(since),
        )
        .await
    }

    /// Delivery attempts since `since`, per outcome; owners and on-call.
    pub async fn throughput(
        &self,
        caller: &User,
        since: DateTime<Utc>,
    ) -> ServiceResult<StateCounts> {
        let read = self.store.attempts_since(since);
        watching(caller, "viewing delivery throughput", read).await
    }

    /// Every dispatcher's heartbeat row; owners and on-call.
    pub async fn replicas(&self, caller: &User) -> ServiceResult<Vec<Replica>> {
        watching(caller, "viewing replicas", self.store.list_replicas()).await
    }

    /// Messages that wait for a method or target no running replica delivers; owners and
    /// on-call.
    pub async fn undeliverable(&self, caller: &User) -> ServiceResult<Vec<Undeliverable>> {
        let read = crate::dispatch::undeliverable_now(&*self.store);
        watching(caller, "viewing undeliverable messages", read).await
    }

    /// `herald doctor`'s checks; owners and on-call.
    pub async fn doctor(&self, caller: &User) -> ServiceResult<Vec<CheckResult>> {
        require(caller, QUEUE_WATCHERS, "running doctor")?;
        Ok(super::doctor::diagnose(self).await)
    }

    /// Sends `event` to the caller alone, with sample labels, by the caller's usual methods:
    /// no audience, no targets, no dedupe, and the caller's opt-out does not apply (they asked
    /// for it). Anyone may test an event on themselves.
    pub async fn send_event_test(
        &self,
        caller: &User,
        event: &str,
    ) -> ServiceResult<EnqueueReport> {
        let event = self.event_named(event).await?;
        // Every label a template may read, the config overrides' too: the test is admitted
        // and renders as a real message would. (Broken overrides refuse it at admission.)
        let overrides = self.overrides.as_ref().ok().cloned().unwrap_or_default();
        let mut labels: BTreeMap<String, String> =
            crate::render::labels_read(&event.spec, &overrides)
                .into_iter()
                .map(|name| {
                    let value = format!("sample-{name}");
                    (name, value)
                })
                .collect();
        labels.insert("initiator".into(), caller.username.clone());
        let data = serde_json::json!({"test": true});
        let settings = self.routing_settings();
        let now = Utc::now();
        let plan = routing::plan(&EnqueueRequest {
            event: &event,
            explicit: std::slice::from_ref(caller),
            audience: &[],
            actor: None,
            audit_owner: None,
            bystanders: &[],
            labels: &labels,
            data: &data,
            targets: &[],
            preferences: &[],
            settings: &settings,
            dedupe: false,
            day: now.date_naive(),
        });
        let usernames = HashMap::new();
        self.queue_planned(
            caller,
            &event,
            &labels,
            plan.messages,
            plan.warnings,
            usernames,
        )
        .await
    }
}

/// The read models' one rule: `caller` must watch the queue (owner or on-call) for `action`;
/// only then does the store `read` run (a future does nothing until awaited).
async fn watching<T>(
    caller: &User,
    action: &str,
    read: impl Future<Output = Result<T, StoreError>>,
) -> ServiceResult<T> {
    require(caller, QUEUE_WATCHERS, action)?;
    Ok(read.await?)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::Config;
    use crate::model::{Method, Role};
    use crate::service::EnqueueInput;
    use crate::store::{self, NewUser, OpenMode};

    struct Fixture {
        service: Service,
        owner: User,
        oncall: User,
        bob: User,
        _dir: tempfile::TempDir,
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("a temp dir");
        let url = format!("sqlite://{}", dir.path().join("herald.db").display());
        let store = store::open(&url, OpenMode::Migrate).await.expect("a store");
        let service = Service::start(store, Arc::new(Config::default()))
            .await
            .expect("a service");
        let add = |name: &str, roles: &[Role]| NewUser {
            username: name.to_string(),
            email: format!("{name}@example.com"),
            name: String::new(),
            roles: roles.to_vec(),
        };
        let owner = service
            .add_user(None, add("alice", &[Role::Owner]))
            .await
            .expect("alice");
        let oncall = service
            .add_user(Some(&owner), add("carol", &[Role::Oncall]))
            .await
            .expect("carol");
        let bob = service
            .add_user(Some(&owner), add("bob", &[Role::Member]))
            .await
            .expect("bob");
        for user in ["alice", "bob"] {
            service
                .enqueue(
                    &owner,
                    &EnqueueInput {
                        event: "run_failure".into(),
                        users: vec![user.into()],
                        ..EnqueueInput::default()
                    },
                )
                .await
                .expect("enqueued");
        }
        Fixture {
            service,
            owner,
            oncall,
            bob,
            _dir: dir,
        }
    }

    fn page() -> PageRequest {
        PageRequest {
            before: None,
            limit: 100,
        }
    }

    /// Asserts that `report` enqueued something, and that every message passes `check`.
    #[track_caller]
    fn assert_all_enqueued(report: &EnqueueReport, check: impl Fn(&Message) -> bool) {
        assert!(!report.enqueued.is_empty());
        assert!(report.enqueued.iter().all(check));
    }

    #[tokio::test]
    async fn members_search_and_count_only_their_own_messages() {
        let f = fixture().await;
        let all = QueueQuery::default();
        let everyone = f
            .service
            .search_messages(&f.owner, &all, page())
            .await
            .unwrap();
        let mine = f
            .service
            .search_messages(&f.bob, &all, page())
            .await
            .unwrap();
        assert!(everyone.len() > mine.len());
        assert!(mine.iter().all(|m| m.username.as_deref() == Some("bob")));
        assert_eq!(
            f.service.count_matching(&f.bob, &all).await.unwrap(),
            i64::try_from(mine.len()).unwrap()
        );
        let alices = QueueQuery {
            user: Some("alice".into()),
            ..QueueQuery::default()
        };
        assert!(matches!(
            f.service.search_messages(&f.bob, &alices, page()).await,
            Err(ServiceError::Forbidden { .. })
        ));
        assert!(
            !f.service
                .search_messages(&f.oncall, &alices, page())
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn queue_read_models_are_for_owners_and_oncall() {
        let f = fixture().await;
        let since = Utc::now() - chrono::Duration::hours(1);
        for watcher in [&f.owner, &f.oncall] {
            f.service.top_status_reasons(watcher, 5).await.unwrap();
            let volumes = f.service.event_volumes(watcher, since).await.unwrap();
            assert_eq!(volumes.len(), 1);
            assert_eq!(volumes[0].0, "run_failure");
            f.service.throughput(watcher, since).await.unwrap();
            f.service.replicas(watcher).await.unwrap();
        }
        let forbidden =
            |r: Result<(), ServiceError>| matches!(r, Err(ServiceError::Forbidden { .. }));
        assert!(forbidden(
            f.service.top_status_reasons(&f.bob, 5).await.map(|_| ())
        ));
        assert!(forbidden(
            f.service.event_volumes(&f.bob, since).await.map(|_| ())
        ));
        assert!(forbidden(
            f.service.throughput(&f.bob, since).await.map(|_| ())
        ));
        assert!(forbidden(f.service.replicas(&f.bob).await.map(|_| ())));
        assert!(forbidden(f.service.doctor(&f.bob).await.map(|_| ())));
    }

    #[tokio::test]
    async fn retrying_a_query_is_for_owners_and_only_touches_failures() {
        let f = fixture().await;
        let query = QueueQuery::default();
        assert!(matches!(
            f.service.retry_query(&f.oncall, &query).await,
            Err(ServiceError::Forbidden { .. })
        ));
        let sent = QueueQuery {
            filter: MessageFilter {
                statuses: vec![MessageState::Sent],
                ..MessageFilter::default()
            },
            ..QueueQuery::default()
        };
        assert!(matches!(
            f.service.retry_query(&f.owner, &sent).await,
            Err(ServiceError::Invalid(_))
        ));
        assert_eq!(
            f.service.retry_query(&f.owner, &query).await.unwrap(),
            0,
            "nothing failed yet"
        );
    }

    #[tokio::test]
    async fn every_built_in_sender_satisfies_the_label_contract() {
        let f = fixture().await;
        for event in crate::catalog::builtin() {
            let report = f.service.send_event_test(&f.bob, &event.name).await;
            assert!(report.is_ok(), "{}: {report:?}", event.name);
        }
        f.service.send_test(&f.bob, None).await.unwrap();
        f.service
            .send_custom(&f.bob, "Build done", "")
            .await
            .unwrap();
        f.service
            .send_custom(&f.bob, "", "All green")
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn an_event_test_gives_the_labels_an_override_reads_which_enqueue_requires() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let url = format!("sqlite://{}", dir.path().join("herald.db").display());
        let store = store::open(&url, OpenMode::Migrate).await.expect("a store");
        let config = Config::from_toml_str(
            "[events.run_failure]\nbody_template = \"{{ body }} Model: {{ labels.model }}\"\n",
            "herald.toml",
            &|_| None,
        )
        .expect("a config");
        let service = Service::start(store, Arc::new(config))
            .await
            .expect("a service");
        let owner = service
            .add_user(
                None,
                NewUser {
                    username: "alice".into(),
                    email: "alice@example.com".into(),
                    name: String::new(),
                    roles: vec![Role::Owner],
                },
            )
            .await
            .expect("alice");
        let report = service
            .send_event_test(&owner, "run_failure")
            .await
            .unwrap();
        assert_all_enqueued(&report, |m| m.payload["labels"]["model"] == "sample-model");
        let input = EnqueueInput {
            event: "run_failure".into(),
            users: vec!["alice".into()],
            ..EnqueueInput::default()
        };
        let err = service.enqueue(&owner, &input).await.unwrap_err();
        assert!(
            matches!(
                &err,
                ServiceError::Labels(crate::labels::LabelError::NeededByTemplate { labels, .. })
                    if labels == &["model"]
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn an_enqueue_without_a_required_label_is_refused_and_writes_nothing() {
        let f = fixture().await;
        let all = QueueQuery::default();
        let before = f.service.count_matching(&f.owner, &all).await.unwrap();
        let input = EnqueueInput {
            event: "user_account_created".into(),
            users: vec!["bob".into()],
            labels: vec!["initiator=alice".into()],
            ..EnqueueInput::default()
        };
        let err = f.service.enqueue(&f.owner, &input).await.unwrap_err();
        assert!(
            matches!(
                &err,
                ServiceError::Labels(crate::labels::LabelError::Missing { missing, .. })
                    if missing.len() == 1 && missing[0].name == "account_name"
            ),
            "{err:?}"
        );
        assert_eq!(
            f.service.count_matching(&f.owner, &all).await.unwrap(),
            before
        );
    }

    #[tokio::test]
    async fn an_event_test_reaches_only_the_caller() {
        let f = fixture().await;
        let report = f
            .service
            .send_event_test(&f.bob, "user_account_created")
            .await
            .unwrap();
        assert_all_enqueued(&report, |m| m.username.as_deref() == Some("bob"));
        assert!(report.enqueued.iter().any(|m| m.method == Method::Inbox));
        let again = f
            .service
            .send_event_test(&f.bob, "user_account_created")
            .await
            .unwrap();
        assert_eq!(
            again.enqueued.len(),
            report.enqueued.len(),
            "no dedupe for tests"
        );
        assert!(matches!(
            f.service.send_event_test(&f.bob, "no_such_event").await,
            Err(ServiceError::UnknownEvent { .. })
        ));
    }
}
