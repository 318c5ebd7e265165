//! The API's endpoints beyond reporting events (DESIGN §12), each over real HTTP on loopback:
//! its happy path and its main refusal, with the same permission rules as the CLI.

use chrono::Utc;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use herald::model::{MessageState, Method, Role, User};
use herald::service::EnqueueInput;
use herald::store::NewInboxEntry;

use crate::common;
use crate::for_both_backends;
use common::TestDb;
use common::api::{Client, RunningApi};

/// The API over `db` with owner alice, on-call carol and member bob, and a client for each.
struct Team {
    api: RunningApi,
    alice: User,
    bob: User,
    owner: Client,
    oncall: Client,
    member: Client,
}

async fn team(db: &TestDb) -> Team {
    let api = RunningApi::start(db).await;
    let alice = api.add_user(None, "alice", &[Role::Owner]).await;
    let carol = api.add_user(Some(&alice), "carol", &[Role::Oncall]).await;
    let bob = api.add_user(Some(&alice), "bob", &[Role::Member]).await;
    let owner = Client::new(&api, Some(&api.token(&alice, "t").await));
    let oncall = Client::new(&api, Some(&api.token(&carol, "t").await));
    let member = Client::new(&api, Some(&api.token(&bob, "t").await));
    Team {
        api,
        alice,
        bob,
        owner,
        oncall,
        member,
    }
}

impl Team {
    /// `workspace_deleted` of workspace `name` for `user`; the ids of the messages made.
    async fn report(&self, user: &str, name: &str) -> Vec<Uuid> {
        let report = self
            .api
            .service
            .enqueue(
                &self.alice,
                &EnqueueInput {
                    event: "workspace_deleted".into(),
                    users: vec![user.into()],
                    labels: vec![format!("name={name}")],
                    ..EnqueueInput::default()
                },
            )
            .await
            .expect("enqueued");
        report.enqueued.iter().map(|m| m.id).collect()
    }

    /// A message to alice that failed for good, as a retry finds one.
    async fn failed_message_of_alice(&self) -> Uuid {
        let store = self.api.service.store();
        let template = common::store::template_id(&**store, "workspace_deleted").await;
        let mut message =
            common::store::message(template, Some(self.alice.id), Method::Webhook, None);
        message.planned.status = MessageState::PermanentFailure;
        message.planned.status_reason = Some("410 Gone".into());
        let outcome = store.enqueue(&[message]).await.expect("stored");
        outcome.enqueued[0]
    }

    async fn status_of(&self, id: Uuid) -> MessageState {
        let (message, _) = self
            .api
            .service
            .store()
            .message(id)
            .await
            .expect("read")
            .expect("there");
        message.status
    }
}

fn ids_of(messages: &Value) -> Vec<String> {
    messages
        .as_array()
        .unwrap_or_else(|| panic!("an array: {messages}"))
        .iter()
        .map(|m| m["id"].as_str().expect("an id").to_string())
        .collect()
}

#[tokio::test]
async fn every_endpoint_needs_a_token() {
    let db = common::sqlite_db();
    let t = team(&db).await;
    let anonymous = Client::new(&t.api, None);
    let id = Uuid::now_v7();
    let paths = [
        ("GET", "/api/v1/events".to_string()),
        ("GET", "/api/v1/messages".to_string()),
        ("GET", format!("/api/v1/messages/{id}")),
        ("POST", format!("/api/v1/messages/{id}/retry")),
        ("POST", "/api/v1/pause".to_string()),
        ("POST", "/api/v1/resume".to_string()),
        ("GET", "/api/v1/status".to_string()),
        ("GET", "/api/v1/inbox".to_string()),
        ("POST", format!("/api/v1/inbox/{id}/read")),
        ("GET", "/api/v1/optouts".to_string()),
        ("PUT", "/api/v1/optouts/workspace_deleted".to_string()),
        ("DELETE", "/api/v1/optouts/workspace_deleted".to_string()),
    ];
    for (method, path) in &paths {
        let method: reqwest::Method = method.parse().unwrap();
        let answer = anonymous.send(anonymous.request(method, path)).await;
        assert!(
            answer
                .error(StatusCode::UNAUTHORIZED)
                .contains("Authorization: Bearer"),
            "{path}"
        );
        assert_eq!(answer.headers[reqwest::header::WWW_AUTHENTICATE], "Bearer");
    }
    let status = t.api.service.store().settings().await.unwrap();
    assert!(!status.notifier_paused, "the refused pause changed nothing");
}

#[tokio::test]
async fn the_catalog_lists_every_event_with_its_label_schema() {
    let db = common::sqlite_db();
    let t = team(&db).await;
    let answer = t.member.get("/api/v1/events").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let events = answer.body.as_array().expect("an array");
    assert_eq!(events.len(), herald::catalog::builtin().len());
    let deleted = events
        .iter()
        .find(|e| e["name"] == "workspace_deleted")
        .expect("workspace_deleted");
    assert_eq!(deleted["labels"][0]["name"], "name");
    assert_eq!(deleted["labels"][0]["required"], true);
    assert_eq!(deleted["effective_method"], "smtp");
    let refused = t.member.get("/api/v1/events?verbose=1").await;
    assert!(
        refused
            .error(StatusCode::BAD_REQUEST)
            .contains("unknown parameter `verbose`, it takes no parameters")
    );
}

/// Follows `next` from `first` to the end; every page's messages, in order.
async fn all_pages(client: &Client, first: &str) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut pages = 0;
    let mut path = first.to_string();
    loop {
        let answer = client.get(&path).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.body);
        pages += 1;
        ids.extend(ids_of(&answer.body["messages"]));
        match answer.body["next"].as_str() {
            Some(next) => path = format!("{first}&after={next}"),
            None => return (ids, pages),
        }
    }
}

async fn messages_are_listed_a_keyset_page_at_a_time_and_members_see_only_their_own(db: TestDb) {
    let t = team(&db).await;
    let mut bobs = Vec::new();
    for n in 0..5 {
        bobs.extend(t.report("bob", &format!("ws{n}")).await);
    }
    let alices = t.report("alice", "mine").await;

    // Owners see everyone's, newest first, two at a time.
    let (paged, pages) = all_pages(&t.owner, "/api/v1/messages?limit=2&method=inbox").await;
    assert_eq!(paged.len(), 6, "{paged:?}");
    assert_eq!(pages, 3 + 1, "three full pages, then an empty one");
    let store_order: Vec<String> = common::store::list(
        &**t.api.service.store(),
        &herald::store::MessageFilter {
            method: Some(Method::Inbox),
            ..Default::default()
        },
        100,
    )
    .await
    .iter()
    .map(|m| m.id.to_string())
    .collect();
    assert_eq!(paged, store_order, "the store's order, without repeats");

    // A member sees their own only, and may not ask for another's.
    let (mine, _) = all_pages(&t.member, "/api/v1/messages?limit=100").await;
    let mut expected: Vec<String> = bobs.iter().map(Uuid::to_string).collect();
    expected.sort();
    let mut mine_sorted = mine.clone();
    mine_sorted.sort();
    assert_eq!(mine_sorted, expected);
    let refused = t.member.get("/api/v1/messages?user=alice").await;
    assert!(
        refused
            .error(StatusCode::FORBIDDEN)
            .contains("listing another user's messages")
    );
    let carols_view = t
        .oncall
        .get("/api/v1/messages?user=alice&event=workspace_*")
        .await;
    let mut seen = ids_of(&carols_view.body["messages"]);
    seen.sort();
    let mut alices: Vec<String> = alices.iter().map(Uuid::to_string).collect();
    alices.sort();
    assert_eq!(seen, alices);
    let pending = t.owner.get("/api/v1/messages?status=sent,inhibited").await;
    assert_eq!(pending.body["messages"], json!([]), "none sent yet");
}

for_both_backends!(messages_are_listed_a_keyset_page_at_a_time_and_members_see_only_their_own);

#[tokio::test]
async fn a_bad_listing_query_is_a_400_saying_what_to_send() {
    let db = common::sqlite_db();
    let t = team(&db).await;
    for (query, needle) in [
        (
            "colour=red",
            "unknown parameter `colour`, expected one of `status`, `event`, `user`, `method`, `limit`, `after`",
        ),
        ("status=sent,lost", "query parameter `status`: unknown"),
        ("method=pigeon", "query parameter `method`: unknown"),
        ("limit=0", "ask for 1 to 10000 messages"),
        ("limit=many", "limit"),
        ("after=yesterday", "pass the `next` of the previous page"),
        ("event=no_such_event", "unknown event `no_such_event`"),
    ] {
        let answer = t.owner.get(&format!("/api/v1/messages?{query}")).await;
        let status = if query.starts_with("event") {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::BAD_REQUEST
        };
        let error = answer.error(status);
        assert!(error.contains(needle), "{query}: {error}");
    }
}

#[tokio::test]
async fn a_message_is_shown_with_its_attempts_to_whoever_may_see_it() {
    let db = common::sqlite_db();
    let t = team(&db).await;
    let id = t.failed_message_of_alice().await;
    let answer = t.owner.get(&format!("/api/v1/messages/{id}")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["id"], id.to_string());
    assert_eq!(answer.body["status"], "permanent_failure");
    assert_eq!(answer.body["attempts"], json!([]));
    assert!(
        t.member
            .get(&format!("/api/v1/messages/{id}"))
            .await
            .error(StatusCode::FORBIDDEN)
            .contains("viewing another user's message")
    );
    let unknown = Uuid::now_v7();
    assert!(
        t.owner
            .get(&format!("/api/v1/messages/{unknown}"))
            .await
            .error(StatusCode::NOT_FOUND)
            .contains(&format!("no message with id {unknown}"))
    );
    assert!(
        t.owner
            .get("/api/v1/messages/nope")
            .await
            .error(StatusCode::BAD_REQUEST)
            .contains("`nope` is not a message id")
    );
}

#[tokio::test]
async fn retrying_is_for_owners_and_a_member_retrying_anothers_message_is_refused() {
    let db = common::sqlite_db();
    let t = team(&db).await;
    let id = t.failed_message_of_alice().await;
    let path = format!("/api/v1/messages/{id}/retry");
    let refused = t.member.post_empty(&path).await;
    assert!(
        refused
            .error(StatusCode::FORBIDDEN)
            .contains("permission denied: retrying messages requires the owner role")
    );
    assert_eq!(t.status_of(id).await, MessageState::PermanentFailure);

    let answer = t.owner.post_empty(&path).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body, json!({ "retried": [id] }));
    assert_eq!(t.status_of(id).await, MessageState::Pending);

    let again = t.owner.post_empty(&path).await;
    assert!(
        again
            .error(StatusCode::CONFLICT)
            .contains(&format!("message {id} was not retried: pending"))
    );
}

#[tokio::test]
async fn pausing_is_for_owners_and_oncall_and_the_status_for_everyone() {
    let db = common::sqlite_db();
    let t = team(&db).await;
    let paused = t.oncall.post_empty("/api/v1/pause").await;
    assert_eq!(paused.status, StatusCode::OK, "{}", paused.body);
    assert_eq!(paused.body["notifier_paused"], true);
    assert!(paused.body["updated_at"].is_string());
    let seen = t.member.get("/api/v1/status").await;
    assert_eq!(seen.status, StatusCode::OK);
    assert_eq!(seen.body["notifier_paused"], true);

    assert!(
        t.member
            .post_empty("/api/v1/resume")
            .await
            .error(StatusCode::FORBIDDEN)
            .contains("resuming notifications requires the owner or oncall role")
    );
    assert!(
        t.api
            .service
            .store()
            .settings()
            .await
            .unwrap()
            .notifier_paused
    );
    let resumed = t.owner.post_empty("/api/v1/resume").await;
    assert_eq!(resumed.body["notifier_paused"], false);
    assert!(
        !t.api
            .service
            .store()
            .settings()
            .await
            .unwrap()
            .notifier_paused
    );
}

#[tokio::test]
async fn the_inbox_is_the_callers_own() {
    let db = common::sqlite_db();
    let t = team(&db).await;
    let message = t.report("bob", "ws1").await[0];
    let store = t.api.service.store();
    let entry = NewInboxEntry {
        id: Uuid::now_v7(),
        user_id: t.bob.id,
        template_id: common::store::template_id(&**store, "workspace_deleted").await,
        message_id: message,
        title: "Workspace \"ws1\" deleted".into(),
        content: "Your workspace **ws1** was deleted.".into(),
        actions: vec![],
        created_at: Utc::now(),
    };
    store.insert_inbox(&entry).await.expect("an inbox entry");

    let unread = t.member.get("/api/v1/inbox?unread=true").await;
    assert_eq!(unread.status, StatusCode::OK, "{}", unread.body);
    assert_eq!(ids_of(&unread.body), [entry.id.to_string()]);
    assert_eq!(unread.body[0]["title"], "Workspace \"ws1\" deleted");
    assert_eq!(t.owner.get("/api/v1/inbox").await.body, json!([]));

    let path = format!("/api/v1/inbox/{}/read", entry.id);
    assert!(
        t.owner
            .post_empty(&path)
            .await
            .error(StatusCode::NOT_FOUND)
            .contains("in alice's inbox")
    );
    let read = t.member.post_empty(&path).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(read.body, json!({ "id": entry.id, "read": true }));
    assert_eq!(
        t.member.get("/api/v1/inbox?unread=true").await.body,
        json!([])
    );
    let read = t.member.get("/api/v1/inbox?read=true").await;
    assert_eq!(ids_of(&read.body), [entry.id.to_string()]);
    assert!(read.body[0]["read_at"].is_string());
    assert!(
        t.member
            .get("/api/v1/inbox?read=true&unread=true")
            .await
            .error(StatusCode::BAD_REQUEST)
            .contains("pass one of them")
    );
}

#[tokio::test]
async fn opt_outs_are_the_callers_own_and_hold_for_the_next_report() {
    let db = common::sqlite_db();
    let t = team(&db).await;
    let rows = t.member.get("/api/v1/optouts").await;
    assert_eq!(rows.status, StatusCode::OK, "{}", rows.body);
    let rows = rows.body.as_array().unwrap().clone();
    assert_eq!(rows.len(), herald::catalog::builtin().len());
    assert!(rows.iter().all(|r| r["username"] == "bob"));

    let out = t.member.put("/api/v1/optouts/workspace_deleted").await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.body);
    assert_eq!(
        (
            &out.body["event"],
            &out.body["enabled"],
            &out.body["disabled"]
        ),
        (&json!("workspace_deleted"), &json!(false), &json!(true))
    );
    // The next report for bob is inhibited, as `herald optout set` would have it.
    let ids = t.report("bob", "ws2").await;
    for id in &ids {
        assert_eq!(t.status_of(*id).await, MessageState::Inhibited);
    }
    let alices = t.owner.get("/api/v1/optouts").await;
    let theirs = alices
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["event"] == "workspace_deleted")
        .unwrap()
        .clone();
    assert_eq!(
        (&theirs["username"], &theirs["enabled"]),
        (&json!("alice"), &json!(true)),
        "bob's opt-out is his own"
    );

    let back = t.member.delete("/api/v1/optouts/workspace_deleted").await;
    assert_eq!(back.status, StatusCode::OK);
    assert_eq!(
        (&back.body["enabled"], &back.body["disabled"]),
        (&json!(true), &json!(false))
    );
    assert!(
        t.member
            .put("/api/v1/optouts/workspace_deletd")
            .await
            .error(StatusCode::NOT_FOUND)
            .contains("did you mean `workspace_deleted`?")
    );
}
