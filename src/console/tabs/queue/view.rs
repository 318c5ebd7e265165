//! Drawing the Queue tab: counts, throughput, the filter line, the message table (with each
//! message's rendered title) and the message detail (with what its recipient gets).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Paragraph, Row, Sparkline, Wrap};

use crate::model::{Attempt, Message, MessageState, Method};
use crate::render::Rendered;
use crate::service::read_models::MessageDetail;

use crate::console::queue::{PAGE_SIZE, is_stuck};
use crate::console::state::AppState;
use crate::console::theme::Theme;
use crate::console::view::{age, draw_note, list_table, placeholder, table_state};

/// A state's short label, for narrow tables and the counts line.
pub fn short_state(state: MessageState) -> &'static str {
    match state {
        MessageState::Pending => "pending",
        MessageState::Leased => "leased",
        MessageState::Sent => "sent",
        MessageState::TemporaryFailure => "temp fail",
        MessageState::PermanentFailure => "perm fail",
        MessageState::Inhibited => "inhibited",
    }
}

fn recipient(m: &Message) -> String {
    match (&m.username, &m.target) {
        (_, Some(target)) => format!("→{target}"),
        (Some(user), None) => user.clone(),
        (None, None) => "-".into(),
    }
}

/// Draws the Queue tab.
pub fn draw(frame: &mut Frame, area: Rect, state: &AppState, theme: Theme) {
    let [counts, rate, filter, body] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(0),
    ])
    .areas(area);
    draw_counts(frame, counts, state, theme);
    draw_throughput(frame, rate, state, theme);
    draw_filter(frame, filter, state, theme);
    match &state.queue.detail {
        Some(detail) => draw_detail(frame, body, state, detail, theme),
        None => draw_table(frame, body, state, theme),
    }
}

fn draw_counts(frame: &mut Frame, area: Rect, state: &AppState, theme: Theme) {
    let line = if !state.watches_queue() {
        Line::styled(
            " Your messages (owners and on-call see the whole queue)",
            theme.dim(),
        )
    } else if let Some(counts) = &state.queue.counts {
        let mut spans = vec![Span::raw(" ")];
        for (s, n) in counts {
            let style = if *n > 0 { theme.state(*s) } else { theme.dim() };
            spans.push(Span::styled(format!("{} {n}", short_state(*s)), style));
            spans.push(Span::raw("  "));
        }
        Line::from(spans)
    } else {
        Line::styled(" counting…", theme.dim())
    };
    frame.render_widget(Paragraph::new(line), area);
}

fn draw_throughput(frame: &mut Frame, area: Rect, state: &AppState, theme: Theme) {
    let Some(counts) = &state.queue.throughput else {
        return;
    };
    let get = |s| counts.iter().find(|(c, _)| *c == s).map_or(0, |(_, n)| *n);
    let text = format!(
        " last minute: {} sent, {} temporary, {} permanent failures",
        get(MessageState::Sent),
        get(MessageState::TemporaryFailure),
        get(MessageState::PermanentFailure)
    );
    let width = u16::try_from(text.chars().count()).unwrap_or(u16::MAX);
    let [left, right] = Layout::horizontal([
        Constraint::Length(width.saturating_add(2)),
        Constraint::Min(0),
    ])
    .areas(area);
    frame.render_widget(Paragraph::new(text), left);
    let history = &state.queue.sent_history;
    let shown = history.len().saturating_sub(usize::from(right.width));
    frame.render_widget(
        Sparkline::default()
            .data(&history[shown..])
            .style(theme.ok()),
        right,
    );
}

fn draw_filter(frame: &mut Frame, area: Rect, state: &AppState, theme: Theme) {
    let q = &state.queue;
    let filter = if q.filter_text.is_empty() {
        Span::styled("none (/ to filter)", theme.dim())
    } else {
        Span::styled(q.filter_text.clone(), theme.title())
    };
    let mut spans = vec![Span::raw(" filter: "), filter];
    spans.push(Span::styled(
        format!("   page {}", q.page_number()),
        theme.dim(),
    ));
    if !q.marked.is_empty() {
        spans.push(Span::styled(
            format!("   {} marked", q.marked.len()),
            theme.warn(),
        ));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_table(frame: &mut Frame, area: Rect, state: &AppState, theme: Theme) {
    let q = &state.queue;
    let title = format!(
        "Messages ({}{})",
        q.page.len(),
        if q.page.len() >= PAGE_SIZE as usize {
            "+"
        } else {
            ""
        }
    );
    if let Some(note) = placeholder(q.loaded, q.page.is_empty(), "no messages match") {
        draw_note(frame, area, &title, note, theme);
        return;
    }
    let wide = area.width >= 110;
    let paused = state.paused.unwrap_or(false);
    let rows = q.page.iter().enumerate().map(|(i, m)| {
        let title = q.titles.get(i).map_or("", String::as_str);
        let marked = if q.marked.contains(&m.id) { "●" } else { " " };
        let stuck = is_stuck(m, state.now, paused, state.session.fetch_interval);
        let flags = Span::styled(
            format!("{marked}{}", if stuck { "!" } else { " " }),
            if stuck { theme.error() } else { theme.warn() },
        );
        let status = if stuck && wide {
            format!("{} STUCK", m.status)
        } else if stuck {
            format!("{}!", short_state(m.status))
        } else if wide {
            m.status.to_string()
        } else {
            short_state(m.status).to_string()
        };
        let mut cells = vec![Line::from(flags), Line::raw(age(state.now, m.created_at))];
        if wide {
            cells.push(Line::raw(m.event.clone()));
        }
        cells.extend([
            Line::raw(title.to_string()),
            Line::raw(recipient(m)),
            Line::raw(m.method.to_string()),
            Line::styled(
                status,
                if stuck {
                    theme.error()
                } else {
                    theme.state(m.status)
                },
            ),
            Line::raw(m.attempt_count.to_string()),
            Line::styled(shown(m.status_reason.as_deref()), theme.dim()),
        ]);
        Row::new(cells)
    });
    // Narrow, the title says what a message is and the event column gives way to it.
    let mut widths = vec![Constraint::Length(2), Constraint::Length(4)];
    if wide {
        widths.push(Constraint::Fill(2));
    }
    widths.extend([
        Constraint::Fill(if wide { 3 } else { 2 }),
        Constraint::Length(if wide { 12 } else { 8 }),
        Constraint::Length(if wide { 13 } else { 7 }),
        Constraint::Length(if wide { 17 } else { 9 }),
        Constraint::Length(3),
        Constraint::Fill(if wide { 2 } else { 1 }),
    ]);
    let header: &'static [&'static str] = if wide {
        &[
            "", "AGE", "EVENT", "TITLE", "TO", "METHOD", "STATUS", "ATT", "REASON",
        ]
    } else {
        &[
            "", "AGE", "TITLE", "TO", "METHOD", "STATUS", "ATT", "REASON",
        ]
    };
    let table = list_table(rows, widths, header, &title, theme);
    let mut ts = table_state(q.selected, q.page.len());
    frame.render_stateful_widget(table, area, &mut ts);
}

fn draw_detail(frame: &mut Frame, area: Rect, state: &AppState, d: &MessageDetail, theme: Theme) {
    let (m, attempts): (&Message, &[Attempt]) = (&d.message, &d.attempts);
    let label = |text: &'static str| Span::styled(format!("{text:<17}"), theme.column_title());
    let time = |t: chrono::DateTime<chrono::Utc>| {
        format!(
            "{} ({})",
            t.format("%Y-%m-%d %H:%M:%S UTC"),
            age(state.now, t)
        )
    };
    let paused = state.paused.unwrap_or(false);
    let mut lines = vec![
        Line::from(vec![label("id"), Span::raw(m.id.to_string())]),
        Line::from(vec![label("event"), Span::raw(m.event.clone())]),
        match &d.rendered {
            Ok(r) => Line::from(vec![
                label("title"),
                Span::styled(clean(&r.title), theme.title()),
            ]),
            Err(why) => Line::from(vec![
                label("title"),
                Span::styled(clean(why), theme.error()),
            ]),
        },
        Line::from(vec![label("recipient"), Span::raw(recipient(m))]),
        Line::from(vec![label("method"), Span::raw(m.method.to_string())]),
        Line::from(vec![
            label("status"),
            Span::styled(m.status.to_string(), theme.state(m.status)),
            if is_stuck(m, state.now, paused, state.session.fetch_interval) {
                Span::styled("  STUCK", theme.error())
            } else {
                Span::raw("")
            },
        ]),
        Line::from(vec![
            label("status_reason"),
            Span::raw(
                m.status_reason
                    .as_deref()
                    .map_or("-".into(), |r| shown(Some(r))),
            ),
        ]),
        Line::from(vec![
            label("attempts"),
            Span::raw(m.attempt_count.to_string()),
        ]),
        Line::from(vec![label("created"), Span::raw(time(m.created_at))]),
        Line::from(vec![label("updated"), Span::raw(time(m.updated_at))]),
    ];
    if let Some(t) = m.leased_until {
        lines.push(Line::from(vec![label("leased until"), Span::raw(time(t))]));
    }
    let next = match (m.status, m.next_retry_after) {
        (MessageState::TemporaryFailure, Some(t)) => time(t),
        (MessageState::Pending, _) if paused => "when delivery resumes".into(),
        (MessageState::Pending, _) => "at the next lease".into(),
        _ => "-".into(),
    };
    lines.push(Line::from(vec![label("next retry"), Span::raw(next)]));
    lines.push(Line::from(vec![
        label("created by"),
        Span::raw(m.created_by.clone()),
    ]));
    lines.push(Line::default());
    if let Ok(r) = &d.rendered {
        lines.push(Line::styled(
            format!("what the recipient gets ({})", sent_as(m.method)),
            theme.title(),
        ));
        recipient_view(&mut lines, m.method, r, theme);
        lines.push(Line::default());
    }
    lines.push(Line::styled("attempt history", theme.title()));
    if attempts.is_empty() {
        lines.push(Line::styled("  none yet", theme.dim()));
    }
    for a in attempts {
        lines.push(Line::from(vec![
            Span::raw(format!(
                "  #{:<2} {}  {:>6}ms  ",
                a.attempt_number,
                a.started_at.format("%m-%d %H:%M:%S"),
                a.duration_ms
            )),
            Span::styled(
                format!("{:<17}", a.outcome.as_str()),
                theme.state(a.outcome),
            ),
            Span::raw(format!(" {}", shown(a.reason.as_deref()))),
        ]));
    }
    lines.push(Line::default());
    lines.push(Line::styled("payload", theme.title()));
    let payload =
        serde_json::to_string_pretty(&m.payload).unwrap_or_else(|_| m.payload.to_string());
    lines.extend(payload.lines().map(|l| Line::raw(format!("  {l}"))));
    let title = format!("Message {} — Esc back", m.id);
    frame.render_widget(
        Paragraph::new(Text::from(lines))
            .wrap(Wrap { trim: false })
            .scroll((state.queue.detail_scroll, 0))
            .block(Block::bordered().title(Span::styled(title, theme.title()))),
        area,
    );
}

/// How `method` shows a message, for the detail's heading.
fn sent_as(method: Method) -> &'static str {
    match method {
        Method::Smtp => "email, its plain-text part",
        Method::Webhook => "webhook, the Markdown body in its JSON",
        Method::SlackWebhook | Method::SlackApi => "Slack, the body as mrkdwn",
        Method::Inbox => "inbox, the Markdown content",
    }
}

/// The title, body and actions as `method` delivers them: email's plain-text part (its HTML
/// twin is made from the same Markdown), the Markdown every other method carries.
fn recipient_view(lines: &mut Vec<Line<'static>>, method: Method, r: &Rendered, theme: Theme) {
    let body = match method {
        Method::Smtp => &r.body_text,
        _ => &r.body_markdown,
    };
    lines.push(Line::styled("body", theme.column_title()));
    lines.extend(body.lines().map(|l| Line::raw(format!("  {}", clean(l)))));
    for a in &r.actions {
        lines.push(Line::from(vec![
            Span::styled(format!("{:<17}", "action"), theme.column_title()),
            Span::raw(format!("{} → {}", clean(&a.label), clean(&a.url))),
        ]));
    }
}

/// Rendered text fit for the terminal (a payload's labels may carry control characters).
fn clean(text: &str) -> String {
    crate::queue::clean_text(text, 4_000)
}

/// A stored reason fit for the terminal (older rows may carry a peer's control characters).
fn shown(reason: Option<&str>) -> String {
    reason.map_or_else(String::new, |r| {
        crate::queue::clean_text(r, crate::queue::MAX_REASON_CHARS)
    })
}
