//! The queue's filter language: `status=permanent_failure event=run_* user=bob method=webhook
//! target=ops`, plus `reason="…"` for an exact `status_reason` and `title~TEXT` for titles
//! containing TEXT.
//! Pure parsing and printing.

use crate::model::{MessageState, Method};
use crate::service::read_models::QueueQuery;

/// The keys the language knows.
const KEYS: &str = "status, event, user, method, target, reason, title~";

/// Parses filter text; empty text is no filter. Errors say what to write instead.
pub fn parse(text: &str) -> Result<QueueQuery, String> {
    let mut query = QueueQuery::default();
    for (key, contains, value) in terms(text)? {
        let op = if contains { "~" } else { "=" };
        if value.is_empty() {
            return Err(format!("`{key}{op}` needs a value"));
        }
        if contains != (key == "title") {
            return Err(if contains {
                format!(
                    "`{key}~` is not a filter; only title~TEXT matches part of a value ({KEYS})"
                )
            } else {
                format!("write `title~{value}`: a title matches by the text it contains")
            });
        }
        match key.as_str() {
            "title" => query.title = Some(value),
            "status" | "state" => {
                for name in value.split(',').filter(|s| !s.is_empty()) {
                    let states: &[MessageState] = match name {
                        "failed" | "failure" => &[
                            MessageState::TemporaryFailure,
                            MessageState::PermanentFailure,
                        ],
                        _ => &[name.parse::<MessageState>().map_err(|e| e.to_string())?],
                    };
                    for s in states {
                        if !query.filter.statuses.contains(s) {
                            query.filter.statuses.push(*s);
                        }
                    }
                }
            }
            "event" => query.filter.event = Some(value),
            "user" => query.user = Some(value),
            "method" => {
                query.filter.method = Some(value.parse::<Method>().map_err(|e| e.to_string())?)
            }
            "target" => query.filter.target = Some(value),
            "reason" => query.reason = Some(value),
            other => return Err(format!("unknown filter key `{other}`; use {KEYS}")),
        }
    }
    Ok(query)
}

/// Splits `key=value` and `key~value` terms (the flag: `~`); values may be double-quoted
/// (`\"` inside quotes is a quote).
fn terms(text: &str) -> Result<Vec<(String, bool, String)>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && *c != '~' && !c.is_whitespace()) {
            key.push(c);
        }
        let contains = match chars.next_if(|c| *c == '=' || *c == '~') {
            Some(op) => op == '~',
            None => {
                return Err(format!(
                    "`{key}` is not a filter term; write key=value, e.g. status=permanent_failure ({KEYS})"
                ));
            }
        };
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next() {
                    None => return Err(format!("`{key}=\"` has no closing quote")),
                    Some('"') => break,
                    Some('\\') if chars.peek() == Some(&'"') => {
                        chars.next();
                        value.push('"');
                    }
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                value.push(c);
            }
        }
        out.push((key.to_lowercase(), contains, value));
    }
}

/// The text that [`parse`] turns back into `query`.
pub fn format(query: &QueueQuery) -> String {
    let mut terms = Vec::new();
    if !query.filter.statuses.is_empty() {
        let names: Vec<&str> = query.filter.statuses.iter().map(|s| s.as_str()).collect();
        terms.push(format!("status={}", names.join(",")));
    }
    if let Some(event) = &query.filter.event {
        terms.push(format!("event={}", quote(event)));
    }
    if let Some(user) = &query.user {
        terms.push(format!("user={}", quote(user)));
    }
    if let Some(method) = query.filter.method {
        terms.push(format!("method={method}"));
    }
    if let Some(target) = &query.filter.target {
        terms.push(format!("target={}", quote(target)));
    }
    if let Some(reason) = &query.reason {
        terms.push(format!("reason={}", quote(reason)));
    }
    if let Some(title) = &query.title {
        terms.push(format!("title~{}", quote(title)));
    }
    terms.join(" ")
}

fn quote(value: &str) -> String {
    if value.is_empty() || value.contains(|c: char| c.is_whitespace() || c == '"') {
        format!("\"{}\"", value.replace('"', "\\\""))
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_parses_and_prints_back() {
        let text = "status=permanent_failure,temporary_failure event=run_* user=bob method=webhook target=alice/ops reason=\"smtp 550 \\\"no\\\"\" title~\"ws-1\\\" deleted\"";
        let query = parse(text).unwrap();
        assert_eq!(query.filter.statuses.len(), 2);
        assert_eq!(query.filter.event.as_deref(), Some("run_*"));
        assert_eq!(query.user.as_deref(), Some("bob"));
        assert_eq!(query.filter.method, Some(Method::Webhook));
        assert_eq!(query.filter.target.as_deref(), Some("alice/ops"));
        assert_eq!(query.reason.as_deref(), Some("smtp 550 \"no\""));
        assert_eq!(query.title.as_deref(), Some("ws-1\" deleted"));
        assert_eq!(parse(&format(&query)).unwrap(), query);
    }

    #[test]
    fn mistakes_say_what_to_write() {
        assert!(
            parse("status=nope")
                .unwrap_err()
                .contains("expected one of")
        );
        assert!(
            parse("colour=red")
                .unwrap_err()
                .contains("unknown filter key")
        );
        assert!(parse("bob").unwrap_err().contains("key=value"));
        assert!(
            parse("reason=\"open")
                .unwrap_err()
                .contains("closing quote")
        );
        assert!(parse("event=").unwrap_err().contains("needs a value"));
        assert!(parse("title~").unwrap_err().contains("needs a value"));
        assert!(parse("title=ws-1").unwrap_err().contains("title~ws-1"));
        assert!(parse("event~run").unwrap_err().contains("only title~TEXT"));
        assert_eq!(
            parse("title~Deleted").unwrap().title.as_deref(),
            Some("Deleted")
        );
        assert_eq!(parse("  ").unwrap(), QueueQuery::default());
    }
}
