//! What the channel tests share: configurations written from the keys that matter to a test
//! (`[[targets]]` and `[[users]]` entries), a built-in event, and alice.

use std::fmt::Debug;

use chrono::Utc;
use uuid::Uuid;

use herald::config::Config;
use herald::model::{EventTemplate, Role, User, UserStatus};

/// A `[[targets]]` entry of `kind` named `name`, hearing `notify_on`, with `keys`. Each value
/// is written as Rust debug-prints it, which is TOML for ASCII strings, numbers and lists.
pub fn target(kind: &str, name: &str, notify_on: &[&str], keys: &[(&str, &dyn Debug)]) -> String {
    let mut toml =
        format!("[[targets]]\ntype = {kind:?}\nname = {name:?}\nnotify_on = {notify_on:?}\n");
    for (key, value) in keys {
        toml.push_str(&format!("{key} = {value:?}\n"));
    }
    toml
}

/// A `[[users]]` entry for `username` (at example.com) owning `targets` (each made by
/// [`target`]).
pub fn user(username: &str, targets: &[String]) -> String {
    let mut toml =
        format!("[[users]]\nusername = {username:?}\nemail = \"{username}@example.com\"\n");
    for target in targets {
        toml.push_str(&target.replacen("[[targets]]", "[[users.targets]]", 1));
    }
    toml
}

/// The configuration `toml` makes; a test's own mistake panics with the text.
pub fn config(toml: &str) -> Config {
    Config::from_toml_str(toml, "test.toml", &|_| None)
        .unwrap_or_else(|e| panic!("test config: {e}\n{toml}"))
}

/// The built-in event `name`, as the store would hand it over.
pub fn builtin_event(name: &str) -> EventTemplate {
    let spec = herald::catalog::builtin()
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("{name} is built in"))
        .clone();
    EventTemplate {
        id: Uuid::now_v7(),
        spec,
        method: None,
    }
}

/// Alice Liddell, an active member.
pub fn alice() -> User {
    User {
        id: Uuid::now_v7(),
        username: "alice".to_string(),
        email: "alice@example.com".to_string(),
        name: "Alice Liddell".to_string(),
        roles: vec![Role::Member],
        status: UserStatus::Active,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}
