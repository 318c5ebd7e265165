//! The Block Kit message: header, status, body sections, failure details and action buttons,
//! within Slack's limits.

use super::*;

/// How an event reads at a glance, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Status {
    Failed,
    Alert,
    Started,
    Succeeded,
    Notice,
}

impl Status {
    /// `*_failure` / `*_failed*` failed, `*out_of_*` an alert, `*_start` started, `*_end` and
    /// `*success*` succeeded, anything else a notice.
    fn of(event: &str) -> Status {
        if event.contains("_failure") || event.contains("_failed") {
            Status::Failed
        } else if event.contains("out_of_") {
            Status::Alert
        } else if event.ends_with("_start") || event.ends_with("_started") {
            Status::Started
        } else if event.ends_with("_end") || event.contains("success") {
            Status::Succeeded
        } else {
            Status::Notice
        }
    }

    fn emoji(self) -> &'static str {
        match self {
            Status::Failed => ":x:",
            Status::Alert => ":red_circle:",
            Status::Started => ":arrow_forward:",
            Status::Succeeded => ":white_check_mark:",
            Status::Notice => ":bell:",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Status::Failed => "Failed",
            Status::Alert => "Alert",
            Status::Started => "Started",
            Status::Succeeded => "Succeeded",
            Status::Notice => "Notice",
        }
    }
}

/// A run of the message: prose (Slack mrkdwn, already escaped) or preformatted code (raw).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Segment {
    Text(String),
    Code(String),
}

/// The Block Kit message for one notification, as both Slack channels send it (`slack_api`
/// adds `channel`): `{"text", "blocks"}` with a `header` (status emoji and title), a section
/// with the status and the message (the Markdown body as Slack mrkdwn, each fenced code block
/// its own preformatted section), the payload's `data.sql` and `data.error` preformatted when
/// the body does not already show them, and the actions with absolute URLs as buttons. `text`
/// is the fallback notifications show. Every text is cut to Slack's limits with `…`.
pub fn slack_message(event: &str, rendered: &Rendered, payload: &Value) -> Value {
    let status = Status::of(event);
    let title = match rendered.title.trim() {
        "" => event,
        title => title,
    };
    let header = json!({
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": cut(&format!("{} {title}", status.emoji()), HEADER_TEXT_MAX),
            "emoji": true,
        },
    });

    let mut segments = Vec::new();
    push_segment(
        &mut segments,
        Segment::Text(format!(
            "*Status:* {} · *Event:* `{}`",
            status.label(),
            escape(event)
        )),
    );
    for segment in markdown_segments(&rendered.body_markdown) {
        push_segment(&mut segments, segment);
    }
    push_failure_detail(&mut segments, payload);

    let buttons = buttons(&rendered.actions);
    let room = BLOCKS_MAX - 1 - usize::from(!buttons.is_empty());
    if segments.len() > room {
        segments.truncate(room - 1);
        segments.push(Segment::Text("…".to_string()));
    }
    let mut blocks = Vec::with_capacity(segments.len() + 2);
    blocks.push(header);
    blocks.extend(segments.iter().map(section_block));
    if !buttons.is_empty() {
        blocks.push(json!({"type": "actions", "elements": buttons}));
    }

    let mut text = format!("{} {}", status.emoji(), escape(title));
    let body = rendered.body_text.trim();
    if !body.is_empty() {
        text.push('\n');
        text.push_str(&escape(body));
    }
    json!({"text": cut_mrkdwn(&text, TEXT_MAX), "blocks": blocks})
}

/// Appends `segment`, joining prose to prose so one section holds it; empty runs are dropped.
pub(super) fn push_segment(segments: &mut Vec<Segment>, segment: Segment) {
    match (segments.last_mut(), segment) {
        (_, Segment::Text(text)) if text.trim().is_empty() => {}
        (_, Segment::Code(code)) if code.trim().is_empty() => {}
        (Some(Segment::Text(last)), Segment::Text(text)) => {
            last.push_str("\n\n");
            last.push_str(&text);
        }
        (_, segment) => segments.push(segment),
    }
}

/// `data.sql` and `data.error` as preformatted sections, unless the body already shows them
/// in a code block (the catalog's failure templates do).
pub(super) fn push_failure_detail(segments: &mut Vec<Segment>, payload: &Value) {
    for (key, label) in [("sql", "Query"), ("error", "Error")] {
        let detail = match payload.pointer(&format!("/data/{key}")) {
            None | Some(Value::Null) => continue,
            Some(Value::String(text)) => text.trim().to_string(),
            Some(other) => serde_json::to_string_pretty(other).unwrap_or_default(),
        };
        if detail.is_empty() {
            continue;
        }
        let shown = segments
            .iter()
            .any(|s| matches!(s, Segment::Code(code) if code.contains(&detail)));
        if !shown {
            push_segment(segments, Segment::Text(format!("*{label}:*")));
            push_segment(segments, Segment::Code(detail));
        }
    }
}

/// A `section` block for a segment, cut to Slack's section limit (code stays fenced).
pub(super) fn section_block(segment: &Segment) -> Value {
    let text = match segment {
        Segment::Text(text) => cut_mrkdwn(text, SECTION_TEXT_MAX),
        Segment::Code(code) => {
            let fences = "```\n\n```".chars().count();
            format!(
                "```\n{}\n```",
                cut_mrkdwn(&escape(code), SECTION_TEXT_MAX - fences)
            )
        }
    };
    json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})
}

/// Url buttons for the actions Slack can open: absolute http(s) URLs only (a relative link
/// would make Slack refuse the whole message).
pub(super) fn buttons(actions: &[Action]) -> Vec<Value> {
    actions
        .iter()
        .filter(|a| is_absolute_url(&a.url) && a.url.chars().count() <= BUTTON_URL_MAX)
        .take(BUTTONS_MAX)
        .map(|action| {
            let label = match action.label.trim() {
                "" => "Open",
                label => label,
            };
            json!({
                "type": "button",
                "text": {"type": "plain_text", "text": cut(label, BUTTON_TEXT_MAX), "emoji": true},
                "url": action.url,
            })
        })
        .collect()
}

pub(super) fn is_absolute_url(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

/// Escapes the three characters Slack's mrkdwn reserves.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// The byte index where `text` must be cut to leave room for `…` within `max` chars, or
/// `None` when it fits.
pub(super) fn cut_point(text: &str, max: usize) -> Option<usize> {
    text.char_indices().nth(max)?;
    Some(
        text.char_indices()
            .nth(max.saturating_sub(1))
            .map_or(text.len(), |(i, _)| i),
    )
}

/// `text` if it has at most `max` chars, else its first `max - 1` chars and `…`.
pub(super) fn cut(text: &str, max: usize) -> String {
    match cut_point(text, max) {
        Some(end) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// Like [`cut`] for escaped mrkdwn: never leaves half an entity (`&am`) or half a link
/// (`<https://…|te`).
pub(super) fn cut_mrkdwn(text: &str, max: usize) -> String {
    let Some(end) = cut_point(text, max) else {
        return text.to_string();
    };
    let mut head = &text[..end];
    if let Some(amp) = head.rfind('&')
        && head.len() - amp < "&amp;".len()
        && !head[amp..].contains(';')
    {
        head = &head[..amp];
    }
    if let Some(open) = head.rfind('<')
        && !head[open..].contains('>')
    {
        head = &head[..open];
    }
    format!("{head}…")
}

/// The Markdown body as Slack mrkdwn, split at fenced code blocks: `**b**` → `*b*`, `_i_`,
/// `~~s~~` → `~s~`, headings bold, `[t](https://u)` → `<https://u|t>` (a relative link keeps
/// only its text), lists with `•`, quotes with `>`; `&`, `<`, `>` escaped.
pub(super) fn markdown_segments(markdown: &str) -> Vec<Segment> {
    let mut writer = MrkdwnWriter::default();
    for event in Parser::new_ext(markdown, Options::ENABLE_STRIKETHROUGH) {
        writer.event(event);
    }
    writer.finish()
}
