//! `POST /api/v1/events`: a producer's report end to end through the real binary (token made
//! by `herald tokens`, delivered by `herald serve`), and every bad report refused with its
//! status and one sentence, writing nothing.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use serde_json::{Value, json};

use herald::model::Role;

use crate::common;
use crate::for_both_backends;
use common::TestDb;
use common::api::{Answer, Client, RunningApi};
use common::cli::{ADD_ALICE_AS_OWNER, Run, herald};
use common::http_sink::{HttpSink, Response};
use common::serve::Serve;

const EVENTS: &str = "/api/v1/events";

/// The example report: bob's workspace ws1 was deleted.
fn workspace_deleted() -> Value {
    json!({"event": "workspace_deleted", "users": ["bob"], "labels": {"name": "ws1"}})
}

/// `herald --config herald.toml ARGS…` in `dir`, run to the end and successful.
fn cli(dir: &Path, args: &[&str]) -> Run {
    let mut all = vec!["--config", "herald.toml"];
    all.extend_from_slice(args);
    Run::of(&mut herald(dir, &all)).ok()
}

/// Waits for `herald serve`'s API at `addr` to answer `/healthz`.
async fn wait_until_serving(addr: &str, replica: &Serve) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match reqwest::get(format!("http://{addr}/healthz")).await {
            Ok(response) if response.status() == StatusCode::OK => return,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!("/healthz never answered ({other:?}):\n{}", replica.log()),
        }
    }
}

/// The Done-when, with the real binary: `herald tokens create ci --user alice` gives a
/// token; with it the report is a 201 carrying the message ids, and `herald serve` delivers
/// exactly those to the webhook; without it, or once it is revoked, a 401.
async fn a_reported_event_is_delivered_and_a_missing_or_revoked_token_is_refused(db: TestDb) {
    let sink = HttpSink::start(|_, _| Response::new(200)).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("herald.toml"),
        format!(
            "database_url = \"{}\"\n\n[notifications]\nmethod = \"webhook\"\nfetch_interval = \"1s\"\nstore_sync_interval = \"50ms\"\n\n[notifications.webhook]\nendpoint = \"{}/hook\"\n",
            db.url, sink.url
        ),
    )
    .unwrap();
    cli(dir.path(), &["migrate"]);
    cli(dir.path(), &ADD_ALICE_AS_OWNER);
    cli(
        dir.path(),
        &[
            "--as",
            "alice",
            "users",
            "add",
            "bob",
            "--email",
            "bob@example.com",
        ],
    );
    let made = cli(
        dir.path(),
        &[
            "--as", "alice", "tokens", "create", "ci", "--user", "alice", "--json",
        ],
    )
    .json();
    let token = made["token"].as_str().expect("the token").to_string();

    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };
    let replica = Serve::start(dir.path(), "herald.toml", "serve", &["--http", &addr]);
    wait_until_serving(&addr, &replica).await;
    let url = format!("http://{addr}{EVENTS}");
    let http = reqwest::Client::new();

    let answer = Answer::of(
        http.post(&url)
            .bearer_auth(&token)
            .json(&workspace_deleted())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    let enqueued = answer.body["enqueued"].as_array().expect("enqueued");
    assert_eq!(answer.body["duplicates"], json!([]));
    assert!(
        enqueued.iter().all(|m| m["username"] == "bob"
            && m["event"] == "workspace_deleted"
            && m["payload"]["labels"]["name"] == "ws1"),
        "{enqueued:?}"
    );
    let webhook: BTreeSet<String> = enqueued
        .iter()
        .filter(|m| m["method"] == "webhook")
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(webhook.len(), 1, "bob's webhook message: {enqueued:?}");
    assert!(
        sink.wait_for(1, Duration::from_secs(20)).await,
        "nothing delivered:\n{}",
        replica.log()
    );
    // A moment more for anything else that would (wrongly) be delivered.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let delivered: BTreeSet<String> = sink
        .requests()
        .iter()
        .map(|r| r.header("x-message-id").expect("X-Message-Id").to_string())
        .collect();
    assert_eq!(delivered, webhook, "the sink got exactly the ids answered");
    assert_eq!(sink.requests().len(), 1, "once each");

    let without = Answer::of(
        http.post(&url)
            .json(&workspace_deleted())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        without
            .error(StatusCode::UNAUTHORIZED)
            .contains("Authorization: Bearer")
    );
    assert_eq!(without.headers[WWW_AUTHENTICATE], "Bearer");

    cli(dir.path(), &["--as", "alice", "tokens", "revoke", "ci"]);
    let revoked = Answer::of(
        http.post(&url)
            .bearer_auth(&token)
            .json(&workspace_deleted())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        revoked
            .error(StatusCode::UNAUTHORIZED)
            .contains("unknown or revoked")
    );
    assert_eq!(revoked.headers[WWW_AUTHENTICATE], "Bearer");
    assert_eq!(replica.terminate(), 0);
}

for_both_backends!(
    a_reported_event_is_delivered_and_a_missing_or_revoked_token_is_refused,
    the_messages_a_report_is_answered_with_are_the_stored_ones,
);

#[tokio::test]
async fn every_bad_report_gets_its_status_and_one_sentence_and_writes_nothing() {
    let db = common::sqlite_db();
    let api = RunningApi::start(&db).await;
    let alice = api.add_user(None, "alice", &[Role::Owner]).await;
    let bob = api.add_user(Some(&alice), "bob", &[Role::Member]).await;
    let owner = Client::new(&api, Some(&api.token(&alice, "ci").await));
    let member = Client::new(&api, Some(&api.token(&bob, "mine").await));
    let revoked = Client::new(&api, Some(&api.token(&alice, "old").await));
    api.service
        .revoke_token(&alice, "old", None)
        .await
        .expect("revoked");
    let anonymous = Client::new(&api, None);
    let malformed_token = Client::new(&api, Some("not-a-herald-token"));
    let unknown_token = Client::new(&api, Some(&format!("herald_{}", "0".repeat(64))));

    let post = |client: &Client| client.request(reqwest::Method::POST, EVENTS);
    let with = |change: &dyn Fn(&mut Value)| {
        let mut report = workspace_deleted();
        change(&mut report);
        report
    };
    let cases: Vec<(&str, reqwest::RequestBuilder, StatusCode, &str)> = vec![
        (
            "malformed JSON",
            post(&owner)
                .header(CONTENT_TYPE, "application/json")
                .body("{\"event\":"),
            StatusCode::BAD_REQUEST,
            "send a JSON object with Content-Type: application/json",
        ),
        (
            "an unknown field",
            post(&owner).json(&with(&|r| r["priority"] = json!("high"))),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown field `priority`",
        ),
        (
            "an unknown event",
            post(&owner).json(&with(&|r| r["event"] = json!("workspace_deleteed"))),
            StatusCode::NOT_FOUND,
            "unknown event `workspace_deleteed` (did you mean `workspace_deleted`?)",
        ),
        (
            "an unknown user",
            post(&owner).json(&with(&|r| r["users"] = json!(["bob", "nobody"]))),
            StatusCode::NOT_FOUND,
            "unknown user `nobody`",
        ),
        (
            "a missing required label",
            post(&owner).json(&with(&|r| r["labels"] = json!({"reason": "cleanup"}))),
            StatusCode::UNPROCESSABLE_ENTITY,
            "event workspace_deleted needs the label name",
        ),
        (
            "a label value that is an object",
            post(&owner).json(&with(&|r| r["labels"]["name"] = json!({"a": 1}))),
            StatusCode::UNPROCESSABLE_ENTITY,
            "label `name` is an object, not a string",
        ),
        (
            "a body over 1 MiB",
            post(&owner)
                .header(CONTENT_TYPE, "application/json")
                .body(vec![b' '; 1024 * 1024 + 1]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "over the 1048576-byte (1 MiB) limit",
        ),
        (
            "a wrong content type",
            post(&owner)
                .header(CONTENT_TYPE, "text/plain")
                .body(workspace_deleted().to_string()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type: application/json",
        ),
        (
            "an unknown query parameter",
            post(&owner)
                .query(&[("dry_run", "1")])
                .json(&workspace_deleted()),
            StatusCode::BAD_REQUEST,
            "the query of /api/v1/events is refused: unknown parameter `dry_run`, it takes no parameters",
        ),
        (
            "no token",
            post(&anonymous).json(&workspace_deleted()),
            StatusCode::UNAUTHORIZED,
            "send `Authorization: Bearer <token>`",
        ),
        (
            "another scheme than Bearer",
            post(&anonymous)
                .header(AUTHORIZATION, "Basic YWxpY2U6cHc=")
                .json(&workspace_deleted()),
            StatusCode::UNAUTHORIZED,
            "the Authorization header is not `Bearer <token>`",
        ),
        (
            "a malformed token",
            post(&malformed_token).json(&workspace_deleted()),
            StatusCode::UNAUTHORIZED,
            "the API token is malformed",
        ),
        (
            "an unknown token",
            post(&unknown_token).json(&workspace_deleted()),
            StatusCode::UNAUTHORIZED,
            "the API token is unknown or revoked",
        ),
        (
            "a revoked token",
            post(&revoked).json(&workspace_deleted()),
            StatusCode::UNAUTHORIZED,
            "the API token is unknown or revoked",
        ),
        (
            "a member's token (producers report as an owner)",
            post(&member).json(&workspace_deleted()),
            StatusCode::FORBIDDEN,
            "permission denied: enqueueing events requires the owner role (bob has: member)",
        ),
    ];
    for (what, request, status, needle) in cases {
        let answer = owner.send(request).await;
        let error = answer.error(status);
        assert!(error.contains(needle), "{what}: {error}");
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(answer.headers[WWW_AUTHENTICATE], "Bearer", "{what}");
        }
        assert_eq!(api.message_count().await, 0, "{what}: nothing written");
    }

    // The same report well formed, with the owner's token, is taken: each refusal above was
    // for what it said.
    let answer = owner.post(EVENTS, &workspace_deleted()).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    let enqueued = answer.body["enqueued"].as_array().unwrap().len();
    assert!(enqueued > 0);
    assert_eq!(api.message_count().await, enqueued as i64);
}

#[tokio::test]
async fn a_repeated_report_is_answered_with_the_duplicates_it_matched() {
    let db = common::sqlite_db();
    let api = RunningApi::start(&db).await;
    let alice = api.add_user(None, "alice", &[Role::Owner]).await;
    api.add_user(Some(&alice), "bob", &[Role::Member]).await;
    let owner = Client::new(&api, Some(&api.token(&alice, "ci").await));
    let first = owner.post(EVENTS, &workspace_deleted()).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let again = owner.post(EVENTS, &workspace_deleted()).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    assert_eq!(again.body["enqueued"], json!([]));
    let ids = |v: &Value| -> BTreeSet<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|m| m.get("id").unwrap_or(m).as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        ids(&again.body["duplicates"]),
        ids(&first.body["enqueued"]),
        "today's identical messages"
    );
}

/// `curl -d '{…}'` (the README's and the one-liner) sends its body as
/// `application/x-www-form-urlencoded`; a client may send none. Both are read as JSON.
#[tokio::test]
async fn a_report_sent_as_curl_sends_it_or_without_a_type_is_taken() {
    let db = common::sqlite_db();
    let api = RunningApi::start(&db).await;
    let alice = api.add_user(None, "alice", &[Role::Owner]).await;
    api.add_user(Some(&alice), "bob", &[Role::Member]).await;
    let owner = Client::new(&api, Some(&api.token(&alice, "ci").await));
    let body = json!({"event": "workspace_deleted", "users": ["bob"], "labels": {"name": "ws1"}});
    let as_curl = Answer::of(
        owner
            .request(reqwest::Method::POST, EVENTS)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body.to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(as_curl.status, StatusCode::CREATED, "{}", as_curl.body);
    assert_eq!(as_curl.body["enqueued"][0]["username"], "bob");
    let untyped = Answer::of(
        owner
            .request(reqwest::Method::POST, EVENTS)
            .body(
                json!({"event": "workspace_deleted", "users": ["bob"], "labels": {"name": "ws2"}})
                    .to_string(),
            )
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(untyped.status, StatusCode::CREATED, "{}", untyped.body);
    let before = api.message_count().await;
    let form = Answer::of(
        owner
            .request(reqwest::Method::POST, EVENTS)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body("event=workspace_deleted&users=bob")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        form.error(StatusCode::BAD_REQUEST)
            .contains("not valid JSON"),
        "{}",
        form.body
    );
    assert_eq!(
        api.message_count().await,
        before,
        "a refused form writes nothing"
    );
}

/// Reports sent at once are answered from what was written, not read back: each message a
/// `201` names is, field for field, what `GET /api/v1/messages/{id}` then reads from the store,
/// with the repeat answered by the original's id. Both backends, many reports in flight so
/// that they share a batch.
async fn the_messages_a_report_is_answered_with_are_the_stored_ones(db: TestDb) {
    let api = RunningApi::start(&db).await;
    let alice = api.add_user(None, "alice", &[Role::Owner]).await;
    api.add_user(Some(&alice), "bob", &[Role::Member]).await;
    api.add_user(Some(&alice), "carol", &[Role::Member]).await;
    let owner = Client::new(&api, Some(&api.token(&alice, "ci").await));
    let report = |i: usize| {
        json!({
            "event": "workspace_deleted",
            "users": ["bob", "carol"],
            "labels": {"name": format!("ws-{}", i % 12)},
            "data": {"size": i % 12, "ratio": 0.5, "tags": ["a", "b"]},
        })
    };
    let sent: Vec<_> = (0..16)
        .map(|i| {
            let (owner, report) = (owner.clone(), report(i));
            tokio::spawn(async move { owner.post(EVENTS, &report).await })
        })
        .collect();
    let mut answers = Vec::new();
    for answer in sent {
        answers.push(answer.await.expect("a report's task"));
    }
    let mut enqueued = Vec::new();
    let mut duplicates = 0;
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        enqueued.extend(
            answer.body["enqueued"]
                .as_array()
                .expect("enqueued")
                .clone(),
        );
        duplicates += answer.body["duplicates"].as_array().map_or(0, Vec::len);
    }
    assert_eq!(
        enqueued.len(),
        12 * 2,
        "12 distinct reports, 2 inbox messages each"
    );
    assert_eq!(
        duplicates,
        4 * 2,
        "the four repeats' messages are duplicates"
    );
    for answered in &enqueued {
        let id = answered["id"].as_str().expect("an id");
        let mut stored = owner.get(&format!("/api/v1/messages/{id}")).await;
        assert_eq!(stored.status, StatusCode::OK, "{}", stored.body);
        stored
            .body
            .as_object_mut()
            .expect("a message")
            .remove("attempts");
        assert_eq!(answered, &stored.body, "answered, then stored");
    }
}
