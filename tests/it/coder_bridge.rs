//! The Coder bridge, `POST /api/v1/ingest/coder`, over real HTTP on loopback: Coder's example
//! webhook body (tests/fixtures/coder/, byte for byte from Coder's documentation) queues the
//! catalog event for the Herald user it names; tokens by header or `?token=`; unknown users
//! and notifications refused with nothing written.

use herald::model::{Role, User};
use herald::service::{MessageFilter, NewUser, PageRequest};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common;
use crate::for_both_backends;
use common::TestDb;
use common::api::RunningApi;

type R = anyhow::Result<()>;

const SEED_EXAMPLE: &str = include_str!("../fixtures/coder/workspace_deleted.json");

/// The API with the owner `alice` (whose token is returned), the member `danny` (Coder's
/// example user, danny@coder.com) and that member's own token.
struct Setup {
    api: RunningApi,
    owner: User,
    owner_token: String,
    member_token: String,
    /// Kept for the test's length: a SQLite database's directory goes with it.
    _db: TestDb,
}

async fn setup(db: TestDb) -> anyhow::Result<Setup> {
    let api = RunningApi::start(&db).await;
    let owner = api
        .service
        .add_user(None, user("alice", "alice@example.com", Role::Owner))
        .await?;
    api.service
        .add_user(Some(&owner), user("danny", "danny@coder.com", Role::Member))
        .await?;
    let (_, secret) = api.service.create_token(&owner, "coder", None).await?;
    let owner_token = secret.expose().to_string();
    let (_, secret) = api
        .service
        .create_token(&owner, "danny-own", Some("danny"))
        .await?;
    let member_token = secret.expose().to_string();
    Ok(Setup {
        api,
        owner,
        owner_token,
        member_token,
        _db: db,
    })
}

fn user(username: &str, email: &str, role: Role) -> NewUser {
    NewUser {
        username: username.into(),
        email: email.into(),
        name: String::new(),
        roles: vec![role],
    }
}

impl Setup {
    async fn post(&self, query: &str, bearer: Option<&str>, body: &str) -> (StatusCode, Value) {
        let mut request = reqwest::Client::new()
            .post(self.api.at(&format!("/api/v1/ingest/coder{query}")))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("the API answers");
        let status = response.status();
        let body = response.json().await.expect("a JSON answer");
        (status, body)
    }

    /// Every message in the store.
    async fn messages(&self) -> Vec<herald::model::Message> {
        self.api
            .service
            .list_messages(
                &self.owner,
                MessageFilter::default(),
                None,
                PageRequest {
                    before: None,
                    limit: 100,
                },
            )
            .await
            .expect("messages list")
    }
}

/// The seed's example body with `payload` changed by `edit`.
fn example_with(edit: impl FnOnce(&mut Value)) -> String {
    let mut body: Value = serde_json::from_str(SEED_EXAMPLE).unwrap();
    edit(&mut body["payload"]);
    body.to_string()
}

async fn coder_bridge_queues_the_seed_example_for_its_user(db: TestDb) -> R {
    let s = setup(db).await?;
    let (status, body) = s.post("", Some(&s.owner_token), SEED_EXAMPLE).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let enqueued = body["enqueued"].as_array().expect("enqueued messages");
    assert!(!enqueued.is_empty(), "{body}");
    assert_eq!(body["duplicates"], json!([]));

    let messages = s.messages().await;
    assert_eq!(messages.len(), enqueued.len(), "{messages:?}");
    let labels = json!({
        "initiator": "danny",
        "name": "my-workspace",
        "reason": "initiated by user",
    });
    for message in &messages {
        assert_eq!(message.event, "workspace_deleted");
        assert_eq!(message.username.as_deref(), Some("danny"));
        assert_eq!(message.created_by, "alice");
        assert_eq!(message.payload["labels"], labels, "{}", message.payload);
        assert!(
            enqueued
                .iter()
                .any(|e| e["id"] == json!(message.id.to_string())),
            "{body}"
        );
    }
    Ok(())
}

for_both_backends!(coder_bridge_queues_the_seed_example_for_its_user);

#[tokio::test]
async fn coder_bridge_takes_the_token_in_the_query() -> R {
    let s = setup(common::sqlite_db()).await?;
    let query = format!("?token={}", s.owner_token);
    let (status, body) = s.post(&query, None, SEED_EXAMPLE).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(!s.messages().await.is_empty());
    Ok(())
}

#[tokio::test]
async fn coder_bridge_without_a_token_is_401_and_writes_nothing() -> R {
    let s = setup(common::sqlite_db()).await?;
    let (status, body) = s.post("", None, SEED_EXAMPLE).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("API token"),
        "{body}"
    );
    let (status, _) = s.post("?token=herald_wrong", None, SEED_EXAMPLE).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(s.messages().await.is_empty());
    Ok(())
}

#[tokio::test]
async fn coder_bridge_refuses_a_non_owner_token() -> R {
    let s = setup(common::sqlite_db()).await?;
    let (status, body) = s.post("", Some(&s.member_token), SEED_EXAMPLE).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("enqueueing events"), "{error}");
    assert!(s.messages().await.is_empty());
    Ok(())
}

#[tokio::test]
async fn coder_bridge_refuses_an_unknown_user_and_writes_nothing() -> R {
    let s = setup(common::sqlite_db()).await?;
    let body = example_with(|payload| {
        payload["user_username"] = json!("erin");
        payload["user_email"] = json!("erin@coder.com");
    });
    let (status, answer) = s.post("", Some(&s.owner_token), &body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let error = answer["error"].as_str().unwrap();
    assert!(error.contains("`erin` (erin@coder.com)"), "{error}");
    assert!(
        error.contains("herald users add erin --email erin@coder.com"),
        "{error}"
    );
    assert!(s.messages().await.is_empty());
    Ok(())
}

#[tokio::test]
async fn coder_bridge_finds_the_user_by_email_when_the_username_differs() -> R {
    let s = setup(common::sqlite_db()).await?;
    let body = example_with(|payload| {
        payload["user_username"] = json!("daniel.coder");
        payload["user_email"] = json!("Danny@Coder.com");
    });
    let (status, answer) = s.post("", Some(&s.owner_token), &body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let messages = s.messages().await;
    assert!(!messages.is_empty());
    assert!(
        messages
            .iter()
            .all(|m| m.username.as_deref() == Some("danny"))
    );
    Ok(())
}

#[tokio::test]
async fn coder_bridge_refuses_an_unknown_notification_and_writes_nothing() -> R {
    let s = setup(common::sqlite_db()).await?;
    let body = example_with(|payload| payload["notification_name"] = json!("Workspace Exploded"));
    let (status, answer) = s.post("", Some(&s.owner_token), &body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let error = answer["error"].as_str().unwrap();
    assert!(error.contains("\"Workspace Exploded\""), "{error}");
    assert!(error.contains("`workspace_exploded`"), "{error}");
    assert!(s.messages().await.is_empty());
    Ok(())
}

#[tokio::test]
async fn coder_bridge_names_a_missing_notification_name() -> R {
    let s = setup(common::sqlite_db()).await?;
    let body = example_with(|payload| {
        payload.as_object_mut().unwrap().remove("notification_name");
    });
    let (status, answer) = s.post("", Some(&s.owner_token), &body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let error = answer["error"].as_str().unwrap();
    assert!(error.contains("payload.notification_name"), "{error}");
    assert!(s.messages().await.is_empty());
    Ok(())
}

#[tokio::test]
async fn coder_bridge_maps_a_known_template_id_and_passes_data_through() -> R {
    let s = setup(common::sqlite_db()).await?;
    let body = example_with(|payload| {
        payload["notification_name"] = json!("Workspace Autobuild Failed (renamed)");
        payload["notification_template_id"] = json!("381df2a9-c0c0-4749-420f-80a9280c66f9");
        payload["data"] = json!({ "error": "terraform apply failed" });
        payload["a_field_coder_added_later"] = json!(true);
    });
    let (status, answer) = s.post("", Some(&s.owner_token), &body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let messages = s.messages().await;
    assert!(!messages.is_empty());
    for message in &messages {
        assert_eq!(message.event, "workspace_autobuild_failed");
        assert_eq!(
            message.payload["data"],
            json!({ "error": "terraform apply failed" })
        );
    }
    Ok(())
}
