//! Rendering: an event's templates and a message's payload become the title, the Markdown
//! body, its plain-text twin and the actions a channel sends (DESIGN §2, §3).
//!
//! Pure. Templates are minijinja with [`UndefinedBehavior::SemiStrict`]: printing a missing
//! value is an error (a typo in a template must not ship a blank), while `{% if labels.x %}`
//! may test an optional one. The context is the one `assets/events.toml` documents:
//! `user {id, email, name, username}`, `labels`, `data`, `actions` and `base_url`.

use std::sync::OnceLock;

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::model::{Action, EventTemplate};

/// What a channel sends for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The title on one line, trimmed.
    pub title: String,
    /// The body as Markdown, trimmed.
    pub body_markdown: String,
    /// The body as plain text (see [`markdown_to_text`]).
    pub body_text: String,
    /// The event's actions with their label and URL rendered.
    pub actions: Vec<Action>,
}

/// A template that failed to render; becomes a message's `permanent_failure` reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot render the {template} template of event `{event}`: {detail}")]
pub struct RenderError {
    /// The event whose template failed.
    pub event: String,
    /// Which template: `title`, `body`, `action 1 label`, `action 2 url`, … (1-based).
    pub template: String,
    /// minijinja's message, with the template's name and line.
    pub detail: String,
}

/// The template context, borrowed from the payload.
#[derive(Serialize)]
struct Context<'a> {
    user: UserContext<'a>,
    labels: &'a Value,
    data: &'a Value,
    actions: &'a Value,
    base_url: &'a str,
}

#[derive(Serialize)]
struct UserContext<'a> {
    id: &'a str,
    email: &'a str,
    name: &'a str,
    username: &'a str,
}

/// Renders `event`'s templates against a stored payload (the shape of
/// [`crate::routing::build_payload`]). Missing user fields are empty strings, missing labels
/// and data empty objects, so a target message renders like a user's without the greeting.
pub fn render(event: &EventTemplate, payload: &Value) -> Result<Rendered, RenderError> {
    let empty_object = Value::Object(Map::new());
    let empty_array = Value::Array(Vec::new());
    let text = |field: &str| payload.get(field).and_then(Value::as_str).unwrap_or("");
    let object_or_empty = |field: &str| match payload.get(field) {
        Some(value) if !value.is_null() => value,
        _ => &empty_object,
    };
    let context = Context {
        user: UserContext {
            id: text("user_id"),
            email: text("user_email"),
            name: text("user_name"),
            username: text("user_username"),
        },
        labels: object_or_empty("labels"),
        data: object_or_empty("data"),
        actions: payload.get("actions").unwrap_or(&empty_array),
        base_url: "",
    };

    let env = environment();
    let spec = &event.spec;
    let render_one = |template: String, source: &str| {
        if !has_template_syntax(source) {
            return Ok(source.to_string());
        }
        env.render_named_str(&template, source, &context)
            .map_err(|err| RenderError {
                event: spec.name.clone(),
                template,
                detail: err.to_string(),
            })
    };

    let title = single_line(&render_one("title".to_string(), &spec.title_template)?);
    let body_markdown = render_one("body".to_string(), &spec.body_template)?
        .trim()
        .to_string();
    let actions = spec
        .actions
        .iter()
        .enumerate()
        .map(|(i, action)| {
            let n = i + 1;
            Ok(Action {
                label: single_line(&render_one(format!("action {n} label"), &action.label)?),
                url: render_one(format!("action {n} url"), &action.url)?
                    .trim()
                    .to_string(),
            })
        })
        .collect::<Result<Vec<_>, RenderError>>()?;
    let body_text = markdown_to_text(&body_markdown);
    Ok(Rendered {
        title,
        body_markdown,
        body_text,
        actions,
    })
}

/// The environment every template renders in, built once: semi-strict undefined, no HTML
/// escaping (the output is Markdown and plain text; HTML is escaped where HTML is made).
fn environment() -> &'static Environment<'static> {
    static ENVIRONMENT: OnceLock<Environment<'static>> = OnceLock::new();
    ENVIRONMENT.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env
    })
}

/// Whether `source` has any minijinja tag; plain text (most action labels) skips the engine.
fn has_template_syntax(source: &str) -> bool {
    ["{{", "{%", "{#"].iter().any(|open| source.contains(open))
}

/// Joins a text's lines and collapses runs of whitespace, for titles and labels.
fn single_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Markdown to plain text
// ---------------------------------------------------------------------------------------------

/// Makes Markdown readable as plain text without a Markdown parser: fenced code blocks keep
/// their content (the fences go), ATX heading markers go, `**` / `__` emphasis markers go,
/// inline code keeps its content verbatim (backticks go), `[text](url)` and `![alt](url)`
/// become `text (url)` (just `url` when the text is the URL), `<url>` autolinks lose their
/// brackets, and backslash escapes are resolved. Everything else (lists, quotes, single `*`
/// or `_`) is left as written: it already reads as text.
pub fn markdown_to_text(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len());
    let mut fence: Option<(char, usize)> = None;
    for line in markdown.lines() {
        if let Some((fence_char, fence_len)) = fence {
            if closes_fence(line, fence_char, fence_len) {
                fence = None;
            } else {
                out.push_str(line);
                out.push('\n');
            }
            continue;
        }
        if let Some(opened) = opens_fence(line) {
            fence = Some(opened);
            continue;
        }
        inline_to_text(strip_heading_marker(line), &mut out);
        out.push('\n');
    }
    let trimmed_len = out.trim_end().len();
    out.truncate(trimmed_len);
    out
}

/// Up to three spaces of indentation, as CommonMark allows for fences and headings.
fn strip_indent(line: &str) -> Option<&str> {
    let rest = line.trim_start_matches(' ');
    (line.len() - rest.len() <= 3).then_some(rest)
}

/// ```` ``` ```` or `~~~` (three or more) opening a fenced code block: the char and length.
fn opens_fence(line: &str) -> Option<(char, usize)> {
    let rest = strip_indent(line)?;
    let fence_char = rest.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let len = rest.len() - rest.trim_start_matches(fence_char).len();
    // A backtick fence's info string may not contain backticks (else it is inline code).
    let info = &rest[len..];
    (len >= 3 && !(fence_char == '`' && info.contains('`'))).then_some((fence_char, len))
}

fn closes_fence(line: &str, fence_char: char, fence_len: usize) -> bool {
    strip_indent(line).is_some_and(|rest| {
        let after = rest.trim_start_matches(fence_char);
        rest.len() - after.len() >= fence_len && after.trim().is_empty()
    })
}

/// `# Title ##` → `Title`; other lines unchanged.
fn strip_heading_marker(line: &str) -> &str {
    let Some(rest) = strip_indent(line) else {
        return line;
    };
    let hashes = rest.len() - rest.trim_start_matches('#').len();
    let after = &rest[hashes..];
    if !(1..=6).contains(&hashes) || !(after.is_empty() || after.starts_with([' ', '\t'])) {
        return line;
    }
    let content = after.trim();
    // An optional closing sequence of `#`s, when a space separates it from the text.
    let without_closing = content.trim_end_matches('#');
    if without_closing.is_empty() {
        ""
    } else if without_closing.ends_with([' ', '\t']) {
        without_closing.trim_end()
    } else {
        content
    }
}

/// Appends one line of inline Markdown to `out` as plain text.
fn inline_to_text(line: &str, out: &mut String) {
    let mut rest = line;
    let mut previous: Option<char> = None;
    while let Some(c) = rest.chars().next() {
        let consumed = match c {
            '\\' => match rest[1..].chars().next() {
                Some(escaped) if escaped.is_ascii_punctuation() => {
                    out.push(escaped);
                    1 + escaped.len_utf8()
                }
                _ => {
                    out.push('\\');
                    1
                }
            },
            '`' => code_span(rest, out),
            '*' | '_' if rest[1..].starts_with(c) => {
                let run = rest.len() - rest.trim_start_matches(c).len();
                let next = rest[run..].chars().next();
                if is_emphasis_run(c, previous, next) {
                    // Any run of two or more delimiters: `**`, `__`, `***` all go.
                } else {
                    out.push_str(&rest[..run]);
                }
                run
            }
            '!' if rest[1..].starts_with('[') => match link(&rest[1..]) {
                Some((text, url, len)) => {
                    push_link(text, url, out);
                    1 + len
                }
                None => {
                    out.push('!');
                    1
                }
            },
            '[' => match link(rest) {
                Some((text, url, len)) => {
                    push_link(text, url, out);
                    len
                }
                None => {
                    out.push('[');
                    1
                }
            },
            '<' => match autolink(rest) {
                Some((url, len)) => {
                    out.push_str(url);
                    len
                }
                None => {
                    out.push('<');
                    1
                }
            },
            _ => {
                out.push(c);
                c.len_utf8()
            }
        };
        previous = rest[..consumed].chars().next_back();
        rest = &rest[consumed..];
    }
}

/// Whether a run of `**` / `__` is an emphasis delimiter rather than text: not surrounded by
/// whitespace (`2 ** 3`), and for `_` not inside a word (`snake__case`), as CommonMark has it.
fn is_emphasis_run(c: char, previous: Option<char>, next: Option<char>) -> bool {
    let space_before = previous.is_none_or(char::is_whitespace);
    let space_after = next.is_none_or(char::is_whitespace);
    if space_before && space_after {
        return false;
    }
    if c == '_' {
        let word_before = previous.is_some_and(char::is_alphanumeric);
        let word_after = next.is_some_and(char::is_alphanumeric);
        return !(word_before && word_after);
    }
    true
}

/// A code span starting at `text` (which starts with a backtick run): appends its content
/// verbatim and returns the bytes consumed; an unmatched run is kept as text.
fn code_span(text: &str, out: &mut String) -> usize {
    let run = text.len() - text.trim_start_matches('`').len();
    let body = &text[run..];
    let mut search = 0;
    while let Some(found) = body[search..].find('`') {
        let start = search + found;
        let close = body[start..].len() - body[start..].trim_start_matches('`').len();
        if close == run {
            let content = &body[..start];
            // CommonMark strips one space on each side when both are there (`` ` `x` ` ``).
            let content = match content.strip_prefix(' ').and_then(|c| c.strip_suffix(' ')) {
                Some(inner) if !inner.trim().is_empty() => inner,
                _ => content,
            };
            out.push_str(content);
            return run + start + close;
        }
        search = start + close;
    }
    out.push_str(&text[..run]);
    run
}

/// `[text](url)` at the start of `text`: the text, the URL and the bytes consumed. The text
/// may nest brackets; the URL may nest parentheses and carry a `"title"`, which is dropped.
fn link(text: &str) -> Option<(&str, &str, usize)> {
    let mut depth = 0usize;
    let mut close_bracket = None;
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '[' => depth += 1,
            ']' => {
                depth -= 1;
                if depth == 0 {
                    close_bracket = Some(i);
                    break;
                }
            }
            _ => {}
        }
    }
    let close_bracket = close_bracket?;
    let after = &text[close_bracket + 1..];
    if !after.starts_with('(') {
        return None;
    }
    let mut depth = 0usize;
    let mut close_paren = None;
    for (i, c) in after.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    close_paren = Some(i);
                    break;
                }
            }
            _ => {}
        }
    }
    let close_paren = close_paren?;
    let destination = after[1..close_paren].trim();
    let url = destination
        .split_once([' ', '\t'])
        .map_or(destination, |(url, _title)| url);
    let url = url
        .strip_prefix('<')
        .and_then(|u| u.strip_suffix('>'))
        .unwrap_or(url);
    Some((
        &text[1..close_bracket],
        url,
        close_bracket + 1 + close_paren + 1,
    ))
}

fn push_link(text: &str, url: &str, out: &mut String) {
    let mut label = String::with_capacity(text.len());
    inline_to_text(text, &mut label);
    if label.is_empty() || label == url {
        out.push_str(url);
    } else if url.is_empty() {
        out.push_str(&label);
    } else {
        out.push_str(&label);
        out.push_str(" (");
        out.push_str(url);
        out.push(')');
    }
}

/// `<scheme:…>` or `<address@host>` at the start of `text`: the URL and the bytes consumed.
fn autolink(text: &str) -> Option<(&str, usize)> {
    let end = text.find('>')?;
    let inner = &text[1..end];
    let is_uri = inner.split_once(':').is_some_and(|(scheme, _)| {
        scheme.len() >= 2
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
    });
    let is_email = inner.contains('@') && !inner.contains(':');
    let plain = !inner.is_empty() && !inner.contains([' ', '<', '\t']);
    (plain && (is_uri || is_email)).then_some((inner, end + 1))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::Utc;
    use serde_json::json;
    use uuid::Uuid;

    use super::*;
    use crate::model::{EventKind, EventSpec, Role, User, UserStatus};
    use crate::routing::build_payload;

    fn event(spec: EventSpec) -> EventTemplate {
        EventTemplate {
            id: Uuid::now_v7(),
            spec,
            method: None,
        }
    }

    fn spec(title: &str, body: &str, actions: &[(&str, &str)]) -> EventSpec {
        EventSpec {
            name: "sample_event".to_string(),
            group: "Tests".to_string(),
            title_template: title.to_string(),
            body_template: body.to_string(),
            actions: actions
                .iter()
                .map(|(label, url)| Action {
                    label: label.to_string(),
                    url: url.to_string(),
                })
                .collect(),
            audience_roles: Vec::new(),
            enabled_by_default: true,
            kind: EventKind::Custom,
            inbox: true,
            reaches_suspended: false,
        }
    }

    fn alice() -> User {
        User {
            id: Uuid::now_v7(),
            username: "alice".to_string(),
            email: "alice@example.com".to_string(),
            name: "Alice Liddell".to_string(),
            roles: vec![Role::Owner],
            status: UserStatus::Active,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    /// Every label a built-in template prints, with plausible values.
    fn realistic_labels() -> BTreeMap<String, String> {
        [
            ("name", "my-workspace"),
            ("workspace", "my-workspace"),
            ("workspace_owner_username", "alice"),
            ("template_name", "docker"),
            ("template_version_name", "v1.2.3"),
            ("template_version_message", "bump base image"),
            ("initiator", "bob"),
            ("reason", "initiated by user"),
            ("workspace_build_number", "42"),
            ("time_til_deletion", "7 days"),
            ("threshold", "90%"),
            ("volume", "/home/coder"),
            ("task", "fix-the-build"),
            ("account_name", "carol"),
            ("account_display_name", "Carol"),
            ("one_time_passcode", "123456"),
            ("expires_in", "15 minutes"),
            ("custom_title", "Hello"),
            ("custom_message", "A **custom** message"),
            ("message", "deprecated in favour of docker-v2"),
            ("environment", "prod"),
            ("plan_id", "plan_7"),
            ("audit", "not_null_customer_id"),
            ("model", "sales.orders"),
            ("owner", "bob"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn realistic_data() -> Value {
        json!({
            "error": "Error: terraform apply failed\n  exit status 1",
            "sql": "SELECT * FROM sales.orders WHERE customer_id IS NULL",
            "count": 3,
            "volumes": [{"path": "/home/coder", "threshold": "90%"}],
            "report_frequency": "week",
            "templates": [{
                "name": "docker",
                "display_name": "Docker",
                "failed_builds": 2,
                "total_builds": 10,
                "versions": [{
                    "template_version_name": "v1.2.3",
                    "failed_count": 2,
                    "failed_builds": [
                        {"workspace_owner_username": "alice", "workspace_name": "ws", "build_number": 7}
                    ]
                }]
            }]
        })
    }

    #[test]
    fn every_builtin_event_renders_for_a_user_and_for_a_target() {
        let user = alice();
        let labels = realistic_labels();
        let data = realistic_data();
        for spec in crate::catalog::builtin() {
            let event = event(spec.clone());
            for (who, payload) in [
                (
                    "a user",
                    build_payload(&event, Some(&user), &labels, &data, &[]),
                ),
                (
                    "a target",
                    build_payload(&event, None, &labels, &data, &["alerts".to_string()]),
                ),
            ] {
                let rendered = render(&event, &payload)
                    .unwrap_or_else(|e| panic!("{} for {who}: {e}", spec.name));
                assert!(!rendered.title.is_empty(), "{}: empty title", spec.name);
                assert!(!rendered.title.contains('\n'), "{}: title", spec.name);
                assert!(
                    !rendered.body_markdown.is_empty(),
                    "{}: empty body",
                    spec.name
                );
                assert_eq!(rendered.actions.len(), spec.actions.len(), "{}", spec.name);
                assert!(
                    !rendered.body_text.contains("**"),
                    "{}: {}",
                    spec.name,
                    rendered.body_text
                );
            }
        }
    }

    #[test]
    fn every_builtin_event_renders_with_no_optional_labels_or_data() {
        // Only the labels a template prints unguarded; everything optional is left out.
        let required = [
            "name",
            "task",
            "account_name",
            "audit",
            "one_time_passcode",
            "custom_title",
            "custom_message",
        ];
        let labels: BTreeMap<String, String> = realistic_labels()
            .into_iter()
            .filter(|(k, _)| required.contains(&k.as_str()))
            .collect();
        for spec in crate::catalog::builtin() {
            let event = event(spec.clone());
            let payload = build_payload(&event, Some(&alice()), &labels, &Value::Null, &[]);
            if let Err(e) = render(&event, &payload) {
                panic!("{}: {e}", spec.name);
            }
        }
    }

    #[test]
    fn workspace_deleted_reads_like_coders_example() {
        let event = crate::catalog::builtin()
            .iter()
            .find(|e| e.name == "workspace_deleted")
            .map(|spec| event(spec.clone()))
            .expect("workspace_deleted is built in");
        let labels = realistic_labels();
        let payload = build_payload(&event, Some(&alice()), &labels, &json!({}), &[]);
        let rendered = render(&event, &payload).unwrap();
        assert_eq!(rendered.title, "Workspace \"my-workspace\" deleted");
        assert!(rendered.body_markdown.starts_with("Hi Alice Liddell,\n\n"));
        assert!(
            rendered
                .body_text
                .contains("Your workspace my-workspace was deleted."),
            "{}",
            rendered.body_text
        );
        assert_eq!(
            rendered.actions,
            vec![
                Action {
                    label: "View workspaces".to_string(),
                    url: "/workspaces".to_string()
                },
                Action {
                    label: "View templates".to_string(),
                    url: "/templates".to_string()
                },
            ]
        );
    }

    #[test]
    fn context_exposes_user_labels_data_and_an_empty_base_url() {
        let user = alice();
        let e = event(spec(
            "{{ user.username }} / {{ labels.env }}",
            "{{ user.id }} {{ user.email }} {{ user.name }} {{ data.n + 1 }} [{{ base_url }}] {{ actions | length }}",
            &[("Open {{ labels.env }}", "{{ base_url }}/e/{{ labels.env }}")],
        ));
        let labels = BTreeMap::from([("env".to_string(), "prod".to_string())]);
        let payload = build_payload(&e, Some(&user), &labels, &json!({"n": 41}), &[]);
        let rendered = render(&e, &payload).unwrap();
        assert_eq!(rendered.title, "alice / prod");
        assert_eq!(
            rendered.body_markdown,
            format!("{} alice@example.com Alice Liddell 42 [] 1", user.id)
        );
        assert_eq!(
            rendered.actions,
            vec![Action {
                label: "Open prod".to_string(),
                url: "/e/prod".to_string()
            }]
        );
    }

    #[test]
    fn a_payload_without_user_fields_renders_them_empty() {
        let e = event(spec("[{{ user.username }}]", "[{{ user.email }}]", &[]));
        let rendered = render(&e, &json!({})).unwrap();
        assert_eq!(rendered.title, "[]");
        assert_eq!(rendered.body_markdown, "[]");
    }

    #[test]
    fn markdown_is_not_html_escaped() {
        let e = event(spec("{{ labels.t }}", "{{ labels.t }}", &[]));
        let payload = json!({"labels": {"t": "<b> & \"q\""}});
        let rendered = render(&e, &payload).unwrap();
        assert_eq!(rendered.title, "<b> & \"q\"");
        assert_eq!(rendered.body_markdown, "<b> & \"q\"");
    }

    #[test]
    fn the_title_is_trimmed_to_one_line() {
        let e = event(spec("\n  Build\n failed  {{ labels.x }}\n", "b", &[]));
        let rendered = render(&e, &json!({"labels": {"x": "again"}})).unwrap();
        assert_eq!(rendered.title, "Build failed again");
    }

    #[test]
    fn errors_name_the_template_that_failed() {
        let cases = [
            (spec("{{ labels.missing }}", "ok", &[]), "title"),
            (spec("ok", "line\n{{ labels.missing }}", &[]), "body"),
            (spec("ok", "{% if %}", &[]), "body"),
            (
                spec("ok", "ok", &[("ok", "ok"), ("{{ nope.x }}", "ok")]),
                "action 2 label",
            ),
            (spec("ok", "ok", &[("ok", "{{ 1 + }}")]), "action 1 url"),
        ];
        for (spec, template) in cases {
            let err = render(&event(spec), &json!({})).unwrap_err();
            assert_eq!(err.template, template);
            assert_eq!(err.event, "sample_event");
            let text = err.to_string();
            assert!(
                text.starts_with(&format!(
                    "cannot render the {template} template of event `sample_event`: "
                )),
                "{text}"
            );
            assert!(text.contains(&format!("(in {template}:")), "{text}");
            assert!(!text.contains('\n'), "{text}");
        }
    }

    #[test]
    fn printing_an_undefined_value_is_an_error_but_testing_one_is_not() {
        let e = event(spec(
            "{% if labels.x %}x{% endif %}t",
            "{{ labels.x }}",
            &[],
        ));
        let err = render(&e, &json!({"labels": {}})).unwrap_err();
        assert_eq!(err.template, "body");
        assert!(err.detail.contains("undefined"), "{}", err.detail);
    }

    #[test]
    fn markdown_becomes_plain_text() {
        let cases = [
            ("**bold** and __strong__", "bold and strong"),
            ("# Title", "Title"),
            ("### Title ###", "Title"),
            ("#hashtag", "#hashtag"),
            ("Use `my__var` and ``a ` b``", "Use my__var and a ` b"),
            (
                "[the docs](https://x.io/a_(b))",
                "the docs (https://x.io/a_(b))",
            ),
            ("[https://x.io](https://x.io)", "https://x.io"),
            ("![logo](/l.png \"Logo\")", "logo (/l.png)"),
            ("[**Build** #7](/b/7)", "Build #7 (/b/7)"),
            ("see <https://x.io>", "see https://x.io"),
            ("a < b > c", "a < b > c"),
            ("[not a link] (x)", "[not a link] (x)"),
            (
                "snake__case__word and 2 ** 3",
                "snake__case__word and 2 ** 3",
            ),
            ("\\*literal\\* \\_x\\_", "*literal* _x_"),
            ("- item one\n- item **two**", "- item one\n- item two"),
            ("> quoted", "> quoted"),
            ("unclosed `tick", "unclosed `tick"),
        ];
        for (markdown, text) in cases {
            assert_eq!(markdown_to_text(markdown), text, "from {markdown:?}");
        }
    }

    #[test]
    fn fenced_code_keeps_its_content_verbatim() {
        let markdown =
            "Failed:\n\n```text\n# not a heading\n**kept** [a](b)\n```\n\nAfter\n~~~~\nx\n~~~~";
        assert_eq!(
            markdown_to_text(markdown),
            "Failed:\n\n# not a heading\n**kept** [a](b)\n\nAfter\nx"
        );
    }

    #[test]
    fn an_unclosed_fence_runs_to_the_end() {
        assert_eq!(markdown_to_text("a\n```\n**b**"), "a\n**b**");
    }
}
