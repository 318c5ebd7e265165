//! `GET /api/v1/openapi.json` (DESIGN §12) against the real server on loopback: the document is
//! a whole OpenAPI 3.1 document; it lists exactly the endpoints the server answers, and the
//! server answers every one it lists; each status documented for reporting an event is one
//! the server really sends; and every endpoint's real answers match the schemas documented for
//! them, field for field.

use std::collections::BTreeSet;

use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use herald::model::{MessageState, Role};
use herald::service::EnqueueInput;
use herald::store::NewInboxEntry;

use crate::common;
use crate::for_both_backends;
use common::TestDb;
use common::api::RunningApi;

/// Every route `src/api/routes.rs` registers, written out by hand: the document must list
/// exactly these.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/api/v1/openapi.json"),
    ("POST", "/api/v1/events"),
    ("GET", "/api/v1/events"),
    ("GET", "/api/v1/messages"),
    ("GET", "/api/v1/messages/{id}"),
    ("POST", "/api/v1/messages/{id}/retry"),
    ("POST", "/api/v1/pause"),
    ("POST", "/api/v1/resume"),
    ("GET", "/api/v1/status"),
    ("GET", "/api/v1/inbox"),
    ("POST", "/api/v1/inbox/{id}/read"),
    ("GET", "/api/v1/optouts"),
    ("PUT", "/api/v1/optouts/{event}"),
    ("DELETE", "/api/v1/optouts/{event}"),
    ("POST", "/api/v1/ingest/coder"),
    ("GET", "/api/v1/audit"),
];

/// The methods probed on every documented path (HEAD is left out: axum answers it wherever
/// GET is, as HTTP asks).
const PROBED: &[&str] = &["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

/// One call of the schema check: method, documented path, URL, token and JSON body.
type Case<'a> = (&'a str, &'a str, String, Option<&'a str>, Option<Value>);

const CODER_EXAMPLE: &str = include_str!("../fixtures/coder/workspace_deleted.json");

/// One answer read whole, JSON or not.
struct Reply {
    status: StatusCode,
    content_type: String,
    www_authenticate: bool,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {}", self.status, self.text))
    }
}

/// The server, an owner's and a member's token, and an HTTP client.
struct Setup {
    api: RunningApi,
    http: reqwest::Client,
    owner_token: String,
    member_token: String,
}

async fn setup(db: &TestDb) -> Setup {
    let api = RunningApi::start(db).await;
    let alice = api.add_user(None, "alice", &[Role::Owner]).await;
    let bob = api.add_user(Some(&alice), "bob", &[Role::Member]).await;
    let owner_token = api.token(&alice, "t").await;
    let member_token = api.token(&bob, "t").await;
    Setup {
        api,
        http: reqwest::Client::new(),
        owner_token,
        member_token,
    }
}

impl Setup {
    /// `method path` with `token` (none: no Authorization header), a JSON `body` if any.
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        let method = Method::from_bytes(method.as_bytes()).expect("a method");
        let mut request = self.http.request(method, self.api.at(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        self.send(request).await
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("the API answers");
        let status = response.status();
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let content_type = header(reqwest::header::CONTENT_TYPE);
        let www_authenticate = header(reqwest::header::WWW_AUTHENTICATE) == "Bearer";
        let text = response.text().await.expect("a body");
        Reply {
            status,
            content_type,
            www_authenticate,
            text,
        }
    }

    /// The document, fetched as any client would: no token needed.
    async fn document(&self) -> Value {
        let reply = self.call("GET", "/api/v1/openapi.json", None, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_eq!(reply.content_type, "application/json");
        reply.json()
    }
}

/// Every operation of the document, as (`METHOD`, path).
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("`paths` is an object");
    paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("a path item is an object")
                .keys()
                .filter(|key| PROBED.contains(&key.to_uppercase().as_str()))
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect()
}

fn operation<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    let op = &doc["paths"][path][method.to_lowercase()];
    assert!(op.is_object(), "{method} {path} is not in the document");
    op
}

/// The schema documented for `status` of `method path`, for its JSON or text content.
fn response_schema<'a>(doc: &'a Value, method: &str, path: &str, status: StatusCode) -> &'a Value {
    let response = &operation(doc, method, path)["responses"][status.as_str()];
    let content = response["content"]
        .as_object()
        .unwrap_or_else(|| panic!("{method} {path} documents no content for {status}"));
    &content.values().next().expect("one content type")["schema"]
}

/// The documented statuses of `method path`.
fn documented_statuses(doc: &Value, method: &str, path: &str) -> BTreeSet<u16> {
    operation(doc, method, path)["responses"]
        .as_object()
        .expect("responses")
        .keys()
        .map(|status| status.parse().expect("a numeric status"))
        .collect()
}

/// `path` with its parameters filled: `{id}` with `id`, `{event}` with a catalog event.
fn filled(path: &str, id: Uuid) -> String {
    path.replace("{id}", &id.to_string())
        .replace("{event}", "workspace_deleted")
}

/// `#/components/schemas/NAME`, resolved.
fn resolve<'a>(doc: &'a Value, reference: &str) -> &'a Value {
    let name = reference
        .strip_prefix("#/components/schemas/")
        .unwrap_or_else(|| panic!("a reference outside the components: {reference}"));
    let schema = &doc["components"]["schemas"][name];
    assert!(schema.is_object(), "{reference} does not resolve");
    schema
}

/// Whether `value` matches `schema`. With `closed`, an object with documented `properties`
/// takes no others (so a field sent but not documented fails, as does one documented but not
/// sent when required).
fn conforms(
    doc: &Value,
    schema: &Value,
    value: &Value,
    at: &str,
    closed: bool,
) -> Result<(), String> {
    if let Some(reference) = schema["$ref"].as_str() {
        return conforms(doc, resolve(doc, reference), value, at, closed);
    }
    if let Some(parts) = schema["allOf"].as_array() {
        let mut merged = json!({"type": "object", "properties": {}, "required": []});
        for part in parts {
            let part = match part["$ref"].as_str() {
                Some(reference) => resolve(doc, reference),
                None => part,
            };
            for (name, property) in part["properties"].as_object().into_iter().flatten() {
                merged["properties"][name] = property.clone();
            }
            for name in part["required"].as_array().into_iter().flatten() {
                merged["required"]
                    .as_array_mut()
                    .unwrap()
                    .push(name.clone());
            }
        }
        return conforms(doc, &merged, value, at, closed);
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(options) = schema[key].as_array() {
            let errors: Vec<String> = options
                .iter()
                .filter_map(|option| conforms(doc, option, value, at, closed).err())
                .collect();
            return if errors.len() < options.len() {
                Ok(())
            } else {
                Err(format!(
                    "{at}: matches none of {key}: {}",
                    errors.join("; ")
                ))
            };
        }
    }
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let types: Vec<&str> = match &schema["type"] {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let type_fits = types.is_empty()
        || types.contains(&kind)
        || (kind == "integer" && types.contains(&"number"));
    if !type_fits {
        return Err(format!("{at}: {kind} {value}, documented as {types:?}"));
    }
    if let Some(values) = schema["enum"].as_array()
        && !values.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {values:?}"));
    }
    if let (Some(format), Some(text)) = (schema["format"].as_str(), value.as_str()) {
        let ok = match format {
            "uuid" => Uuid::parse_str(text).is_ok(),
            "date-time" => chrono::DateTime::parse_from_rfc3339(text).is_ok(),
            _ => true,
        };
        if !ok {
            return Err(format!("{at}: {text:?} is not a {format}"));
        }
    }
    if let Value::Object(fields) = value {
        let properties = schema["properties"].as_object();
        for name in schema["required"].as_array().into_iter().flatten() {
            let name = name.as_str().expect("a required name");
            if !fields.contains_key(name) {
                return Err(format!("{at}: required `{name}` is missing"));
            }
        }
        for (name, field) in fields {
            let here = format!("{at}.{name}");
            match (
                properties.and_then(|p| p.get(name)),
                &schema["additionalProperties"],
            ) {
                (Some(property), _) => conforms(doc, property, field, &here, closed)?,
                (None, Value::Bool(false)) => return Err(format!("{here} is not documented")),
                (None, extra @ Value::Object(_)) => conforms(doc, extra, field, &here, closed)?,
                (None, _) if closed && properties.is_some() => {
                    return Err(format!("{here} is sent but not documented"));
                }
                (None, _) => {}
            }
        }
    }
    if let (Value::Array(items), Some(item)) = (value, schema.get("items")) {
        for (i, element) in items.iter().enumerate() {
            conforms(doc, item, element, &format!("{at}[{i}]"), closed)?;
        }
    }
    Ok(())
}

/// Checks `reply` against what the document says of `method path`: its status is documented,
/// its content type is the documented one and its body matches the documented schema.
#[track_caller]
fn check_documented(doc: &Value, method: &str, path: &str, reply: &Reply) {
    let statuses = documented_statuses(doc, method, path);
    assert!(
        statuses.contains(&reply.status.as_u16()),
        "{method} {path} answered {} ({}), which it does not document (it documents {statuses:?})",
        reply.status,
        reply.text
    );
    let response = &operation(doc, method, path)["responses"][reply.status.as_str()];
    let content = response["content"].as_object().expect("documented content");
    assert!(
        content.contains_key(&reply.content_type),
        "{method} {path} {}: sent {:?}, documented {:?}",
        reply.status,
        reply.content_type,
        content.keys().collect::<Vec<_>>()
    );
    let schema = response_schema(doc, method, path, reply.status);
    let body = if reply.content_type == "application/json" {
        reply.json()
    } else {
        Value::String(reply.text.clone())
    };
    if let Err(why) = conforms(doc, schema, &body, "body", true) {
        panic!("{method} {path} {}: {why}\n{body:#}", reply.status);
    }
}

async fn the_document_is_whole_openapi_3_1(db: TestDb) {
    let s = setup(&db).await;
    let doc = s.document().await;

    let version = doc["openapi"].as_str().expect("`openapi` is a string");
    assert!(version.starts_with("3.1."), "OpenAPI {version}");
    assert_eq!(doc["info"]["title"], "Herald");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        doc["info"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("README")),
        "the description points at the README: {}",
        doc["info"]
    );
    let schemas = doc["components"]["schemas"]
        .as_object()
        .expect("components.schemas");
    for name in [
        "ErrorBody",
        "EventReport",
        "Enqueued",
        "Message",
        "Event",
        "CoderWebhook",
    ] {
        assert!(schemas.contains_key(name), "no schema `{name}`");
    }
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["type"], "http");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["query_token"]["type"], "apiKey");
    assert_eq!(schemes["query_token"]["in"], "query");
    assert_eq!(schemes["query_token"]["name"], "token");

    // Every reference anywhere resolves.
    fn references<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    out.push(r);
                }
                map.values().for_each(|v| references(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| references(v, out)),
            _ => {}
        }
    }
    let mut refs = Vec::new();
    references(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        resolve(&doc, r);
    }

    let mut operation_ids = BTreeSet::new();
    for (method, path) in operations(&doc) {
        let op = operation(&doc, &method, &path);
        let id = op["operationId"].as_str().expect("an operationId");
        assert!(
            operation_ids.insert(id.to_string()),
            "operationId {id} twice"
        );
        assert!(op["summary"].is_string(), "{method} {path} has a summary");
        // Each `{parameter}` of the path is a required path parameter with a type.
        for name in path
            .split('{')
            .skip(1)
            .map(|rest| rest.split('}').next().unwrap())
        {
            let declared = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["name"] == name && p["in"] == "path")
                .unwrap_or_else(|| panic!("{method} {path}: `{name}` is not declared"));
            assert_eq!(declared["required"], true, "{method} {path} {name}");
            assert!(
                declared["schema"]["type"].is_string(),
                "{method} {path} {name}"
            );
            assert!(
                declared["description"].is_string(),
                "{method} {path} {name}"
            );
        }
        for param in op["parameters"].as_array().into_iter().flatten() {
            assert!(param["description"].is_string(), "{method} {path}: {param}");
        }
        // Every error is `{"error": …}`.
        let responses = op["responses"].as_object().expect("responses");
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{method} {path}"
        );
        for (status, response) in responses {
            assert!(
                response["description"].is_string(),
                "{method} {path} {status}"
            );
            if !status.starts_with('2') {
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path} {status}"
                );
            }
        }
        // Tokens: everything under /api/v1 but the document itself; the Coder bridge also
        // takes `?token=`.
        let security: Vec<String> = op["security"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|s| s.as_object().unwrap().keys().cloned())
            .collect();
        let expected: &[&str] = match path.as_str() {
            "/api/v1/ingest/coder" => &["bearer", "query_token"],
            "/api/v1/openapi.json" | "/healthz" | "/readyz" | "/metrics" => &[],
            _ => &["bearer"],
        };
        assert_eq!(security, expected, "{method} {path}");
        if !expected.is_empty() {
            assert!(
                responses.contains_key("401"),
                "{method} {path} documents 401"
            );
        }
    }

    // The request bodies: what a producer and Coder really send matches them.
    let report = json!({"event": "workspace_deleted", "users": ["bob"], "labels": {"name": "ws1"}, "data": {"by": "ci"}});
    let report_schema = &operation(&doc, "POST", "/api/v1/events")["requestBody"]["content"]["application/json"]
        ["schema"];
    conforms(&doc, report_schema, &report, "report", false).unwrap();
    let stray = json!({"event": "workspace_deleted", "colour": "red"});
    assert!(
        conforms(&doc, report_schema, &stray, "report", false).is_err(),
        "an unknown field is refused by the document as by the server"
    );
    let coder_schema = &operation(&doc, "POST", "/api/v1/ingest/coder")["requestBody"]["content"]["application/json"]
        ["schema"];
    let coder: Value = serde_json::from_str(CODER_EXAMPLE).unwrap();
    conforms(&doc, coder_schema, &coder, "coder", false).unwrap();
}

async fn the_document_lists_exactly_what_the_server_answers(db: TestDb) {
    let s = setup(&db).await;
    let doc = s.document().await;
    let documented = operations(&doc);
    let routes: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        documented, routes,
        "the document's operations are the routes of src/api/routes.rs"
    );

    // Every documented operation is answered — by its handler, not the 404 or 405 fallback —
    // with a status and a body the document gives for it.
    let placeholder = Uuid::now_v7();
    for (method, path) in &documented {
        let body = matches!(method.as_str(), "POST" | "PUT").then(|| json!({}));
        let reply = s
            .call(
                method,
                &filled(path, placeholder),
                Some(&s.owner_token),
                body.as_ref(),
            )
            .await;
        assert_ne!(
            reply.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert!(
            !reply.text.contains("no endpoint at"),
            "{method} {path} reached the fallback: {}",
            reply.text
        );
        check_documented(&doc, method, path, &reply);
    }

    // Every method the server answers on a documented path is documented; the rest are 405.
    let paths: BTreeSet<&String> = documented.iter().map(|(_, p)| p).collect();
    for path in paths {
        for method in PROBED {
            if documented.contains(&(method.to_string(), path.clone())) {
                continue;
            }
            let reply = s
                .call(
                    method,
                    &filled(path, placeholder),
                    Some(&s.owner_token),
                    None,
                )
                .await;
            assert_eq!(
                reply.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is answered but not documented: {}",
                reply.text
            );
        }
    }

    // And a path the document does not list is the router's 404.
    let reply = s
        .call("GET", "/api/v1/nothing", Some(&s.owner_token), None)
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(
        reply.text.contains("no endpoint at /api/v1/nothing"),
        "{}",
        reply.text
    );
}

async fn each_documented_status_of_reporting_is_really_sent(db: TestDb) {
    let s = setup(&db).await;
    let doc = s.document().await;
    let (method, path) = ("POST", "/api/v1/events");
    let owner = Some(s.owner_token.as_str());
    let good = json!({"event": "workspace_deleted", "users": ["bob"], "labels": {"name": "ws1"}});
    let request = || s.http.post(s.api.at(path)).bearer_auth(&s.owner_token);

    let mut sent = Vec::new();
    sent.push(s.call(method, path, owner, Some(&good)).await);
    sent.push(
        s.send(
            request()
                .header("Content-Type", "application/json")
                .body(r#"{"event": "#),
        )
        .await,
    );
    sent.push(s.call(method, path, None, Some(&good)).await);
    sent.push(
        s.call(method, path, Some(&s.member_token), Some(&good))
            .await,
    );
    sent.push(
        s.call(
            method,
            path,
            owner,
            Some(&json!({"event": "no_such_event", "users": ["bob"]})),
        )
        .await,
    );
    sent.push(
        s.send(
            request()
                .header("Content-Type", "application/json")
                .body(vec![b' '; 1024 * 1024 + 1]),
        )
        .await,
    );
    sent.push(
        s.send(
            request()
                .header("Content-Type", "text/plain")
                .body(good.to_string()),
        )
        .await,
    );
    sent.push(
        s.call(
            method,
            path,
            owner,
            Some(&json!({"event": "workspace_deleted", "colour": "red"})),
        )
        .await,
    );

    let mut seen = BTreeSet::new();
    for reply in &sent {
        check_documented(&doc, method, path, reply);
        if reply.status == StatusCode::UNAUTHORIZED {
            assert!(
                reply.www_authenticate,
                "a 401 says `WWW-Authenticate: Bearer`"
            );
        }
        seen.insert(reply.status.as_u16());
    }
    assert_eq!(
        seen,
        documented_statuses(&doc, method, path),
        "each documented status is one these requests really get"
    );
    assert_eq!(
        seen,
        BTreeSet::from([201, 400, 401, 403, 404, 413, 415, 422])
    );
}

async fn every_endpoints_answers_match_their_schemas(db: TestDb) {
    let s = setup(&db).await;
    let doc = s.document().await;
    let service = &s.api.service;
    let store = service.store();
    let alice = service.authenticate_token(&s.owner_token).await.unwrap();
    let bob = service.authenticate_token(&s.member_token).await.unwrap();

    // A queue with a message that was tried once and failed, and an inbox entry for bob.
    let report = service
        .enqueue(
            &alice,
            &EnqueueInput {
                event: "workspace_deleted".into(),
                users: vec!["bob".into()],
                labels: vec!["name=ws1".into()],
                ..EnqueueInput::default()
            },
        )
        .await
        .expect("enqueued");
    let notifier = Uuid::now_v7();
    let leased = common::store::lease(&**store, notifier, 100)
        .await
        .expect("leased");
    let tried = leased.first().expect("a message to try");
    store
        .record_attempts(&[common::store::outcome(
            tried,
            notifier,
            MessageState::PermanentFailure,
            Some("410 Gone"),
        )])
        .await
        .expect("an attempt");
    let entry = NewInboxEntry {
        id: Uuid::now_v7(),
        user_id: bob.id,
        template_id: common::store::template_id(&**store, "workspace_deleted").await,
        message_id: report.enqueued[0].id,
        title: "Workspace \"ws1\" deleted".into(),
        content: "Your workspace **ws1** was deleted.".into(),
        actions: vec![herald::model::Action::new(
            "Open",
            "https://coder.example/ws1",
        )],
        created_at: Utc::now(),
    };
    store.insert_inbox(&entry).await.expect("an inbox entry");
    s.api.add_user(Some(&alice), "danny", &[Role::Member]).await;
    let coder: Value = serde_json::from_str(CODER_EXAMPLE).unwrap();

    let owner = Some(s.owner_token.as_str());
    let member = Some(s.member_token.as_str());
    let message = format!("/api/v1/messages/{}", tried.id);
    let cases: Vec<Case> = vec![
        ("GET", "/healthz", "/healthz".into(), None, None),
        ("GET", "/readyz", "/readyz".into(), None, None),
        ("GET", "/metrics", "/metrics".into(), None, None),
        (
            "GET",
            "/api/v1/openapi.json",
            "/api/v1/openapi.json".into(),
            None,
            None,
        ),
        (
            "POST",
            "/api/v1/events",
            "/api/v1/events".into(),
            owner,
            Some(
                json!({"event": "workspace_deleted", "users": ["bob"], "labels": {"name": "ws2"}, "data": {"by": "ci"}}),
            ),
        ),
        (
            "GET",
            "/api/v1/events",
            "/api/v1/events".into(),
            member,
            None,
        ),
        (
            "GET",
            "/api/v1/messages",
            "/api/v1/messages?limit=1".into(),
            owner,
            None,
        ),
        ("GET", "/api/v1/messages/{id}", message.clone(), owner, None),
        (
            "POST",
            "/api/v1/messages/{id}/retry",
            format!("{message}/retry"),
            owner,
            None,
        ),
        ("POST", "/api/v1/pause", "/api/v1/pause".into(), owner, None),
        (
            "GET",
            "/api/v1/status",
            "/api/v1/status".into(),
            member,
            None,
        ),
        (
            "POST",
            "/api/v1/resume",
            "/api/v1/resume".into(),
            owner,
            None,
        ),
        ("GET", "/api/v1/inbox", "/api/v1/inbox".into(), member, None),
        (
            "POST",
            "/api/v1/inbox/{id}/read",
            format!("/api/v1/inbox/{}/read", entry.id),
            member,
            None,
        ),
        (
            "PUT",
            "/api/v1/optouts/{event}",
            "/api/v1/optouts/workspace_deleted".into(),
            member,
            None,
        ),
        (
            "GET",
            "/api/v1/optouts",
            "/api/v1/optouts".into(),
            member,
            None,
        ),
        (
            "DELETE",
            "/api/v1/optouts/{event}",
            "/api/v1/optouts/workspace_deleted".into(),
            member,
            None,
        ),
        (
            "POST",
            "/api/v1/ingest/coder",
            "/api/v1/ingest/coder".into(),
            owner,
            Some(coder),
        ),
        // After the pause, resume and retry above, so the page has rows.
        (
            "GET",
            "/api/v1/audit",
            "/api/v1/audit?limit=2".into(),
            owner,
            None,
        ),
    ];
    let mut checked = BTreeSet::new();
    for (method, path, url, token, body) in &cases {
        let reply = s.call(method, url, *token, body.as_ref()).await;
        assert!(
            reply.status.is_success(),
            "{method} {url}: {} {}",
            reply.status,
            reply.text
        );
        check_documented(&doc, method, path, &reply);
        checked.insert((method.to_string(), path.to_string()));
    }
    // The shapes were really exercised: the message has its attempt, the page and the
    // catalog are not empty.
    let shown = s.call("GET", &message, owner, None).await.json();
    assert_eq!(shown["attempts"][0]["reason"], "410 Gone", "{shown}");
    let page = s
        .call("GET", "/api/v1/messages?limit=1", owner, None)
        .await
        .json();
    assert!(page["next"].is_string(), "a full page has `next`: {page}");
    assert_eq!(
        checked,
        operations(&doc),
        "every operation's answer was checked"
    );

    // And the check can fail: a field the schema does not have, or one missing.
    let schema = response_schema(&doc, "GET", "/api/v1/status", StatusCode::OK);
    let status = s.call("GET", "/api/v1/status", member, None).await.json();
    let mut extra = status.clone();
    extra["colour"] = json!("red");
    assert!(conforms(&doc, schema, &extra, "body", true).is_err());
    let mut missing = status;
    missing.as_object_mut().unwrap().remove("updated_at");
    assert!(conforms(&doc, schema, &missing, "body", true).is_err());
}

for_both_backends!(
    the_document_is_whole_openapi_3_1,
    the_document_lists_exactly_what_the_server_answers,
    each_documented_status_of_reporting_is_really_sent,
    every_endpoints_answers_match_their_schemas,
);
