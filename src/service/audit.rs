//! The audit trail (DESIGN §14): which operator actions are recorded, the entry each one hands
//! the store (written in the change's own transaction), and who may read the trail.

use serde_json::{Map, Value, json};

use super::*;
use crate::store::{AuditEntry, AuditFilter, AuditRecord};

/// Who may read the audit trail: owners and user-admins.
const AUDIT_READERS: &[Role] = USER_MANAGERS;

/// The front end a call came through, recorded as `via` in each audit row's detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FrontEnd {
    /// A `herald …` command (the default).
    #[default]
    Cli,
    /// The console on a local terminal.
    Console,
    /// The HTTP API (a bearer token's user).
    Api,
    /// The console over SSH (a public key's user).
    Ssh,
}

impl FrontEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            FrontEnd::Cli => "cli",
            FrontEnd::Console => "console",
            FrontEnd::Api => "api",
            FrontEnd::Ssh => "ssh",
        }
    }
}

/// The actions the trail records, as stored in `audit_log.action`.
pub mod actions {
    pub const RETRY: &str = "messages.retry";
    pub const PURGE: &str = "messages.purge";
    pub const PAUSE: &str = "notifications.pause";
    pub const RESUME: &str = "notifications.resume";
    pub const EVENT_METHOD: &str = "prefs.set";
    pub const OPT_OUT: &str = "optout.set";
    pub const OPT_IN: &str = "optout.clear";
    pub const USER_ADD: &str = "users.add";
    pub const USER_SUSPEND: &str = "users.suspend";
    pub const USER_ACTIVATE: &str = "users.activate";
    pub const TOKEN_CREATE: &str = "tokens.create";
    pub const TOKEN_REVOKE: &str = "tokens.revoke";
    pub const KEY_ADD: &str = "keys.add";
    pub const KEY_REMOVE: &str = "keys.remove";
}

/// The subject of a global pause or resume.
pub const EVERYTHING: &str = "everything";

impl Service {
    /// The same operations, recorded in the audit trail as coming through `front_end`. Each
    /// front end makes its own once, when it starts.
    pub fn through(&self, front_end: FrontEnd) -> Service {
        Service {
            store: self.store.clone(),
            config: self.config.clone(),
            overrides: self.overrides.clone(),
            front_end,
        }
    }

    /// The entry for `caller` doing `action` to `subject`, with `detail` (a JSON object) and
    /// the front end.
    pub(super) fn audit_entry(
        &self,
        caller: &str,
        action: &str,
        subject: impl Into<String>,
        detail: Value,
    ) -> AuditEntry {
        let mut detail = match detail {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => Map::from_iter([("value".to_string(), other)]),
        };
        detail.insert("via".into(), json!(self.front_end.as_str()));
        AuditEntry {
            actor: caller.to_string(),
            action: action.to_string(),
            subject: subject.into(),
            detail,
        }
    }

    /// A page of the audit trail, newest first; owners and user-admins.
    pub async fn audit_log(
        &self,
        caller: &User,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> ServiceResult<Vec<AuditRecord>> {
        require(caller, AUDIT_READERS, "reading the audit trail")?;
        Ok(self.store.list_audit(filter, page).await?)
    }
}

/// The front end an audit row came through (`cli`, `console`, `api`, `ssh`), `-` if unknown.
pub fn audit_via(record: &AuditRecord) -> &str {
    record
        .detail
        .get("via")
        .and_then(Value::as_str)
        .unwrap_or("-")
}

/// An audit row's detail without its front end, as `key=value` words (`count=3 user=bob`),
/// for a table.
pub fn audit_detail_words(record: &AuditRecord) -> String {
    let Some(map) = record.detail.as_object() else {
        return String::new();
    };
    map.iter()
        .filter(|(key, _)| key.as_str() != "via")
        .map(|(key, value)| match value {
            Value::String(text) => format!("{key}={text}"),
            other => format!("{key}={other}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A message filter as `key=value` words (`status=permanent_failure event=run_*`), the subject
/// of a retry by filter.
pub(super) fn describe_filter(filter: &MessageFilter, user: Option<&str>) -> String {
    let mut words = Vec::new();
    if !filter.statuses.is_empty() {
        let statuses: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
        words.push(format!("status={}", statuses.join(",")));
    }
    if let Some(event) = &filter.event {
        words.push(format!("event={event}"));
    }
    if let Some(user) = user {
        words.push(format!("user={user}"));
    }
    if let Some(method) = filter.method {
        words.push(format!("method={method}"));
    }
    if words.is_empty() {
        "every failed message".to_string()
    } else {
        words.join(" ")
    }
}
