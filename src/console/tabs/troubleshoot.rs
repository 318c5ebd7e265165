//! The Troubleshoot tab: every channel's health on top ([`crate::console::channels`]), the
//! top `status_reason`s of the newest failures, read every
//! [`REASONS_REFRESH_SECS`] (Enter shows the messages behind one),
//! replicas with their heartbeats and deliveries in flight, this process's live log stream
//! with a regex filter (or, on `a`, the audit trail), and `doctor`'s results on `d`. Owners
//! and on-call only.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Wrap};
use regex::Regex;
use tracing::Level;

use crate::channels::CheckResult;
use crate::service::read_models::QueueQuery;
use crate::service::{MessageFilter, REASONS_WINDOW, ReasonCount, Replica};
use crate::telemetry::LogLine;

use crate::console::action::Effect;
use crate::console::filter;
use crate::console::queue;
use crate::console::queue_view::short_state;
use crate::console::state::{AppState, Tab};
use crate::console::theme::Theme;
use crate::console::view::{age, draw_note, list_table, pane, table_state};

/// `5000` as `5,000`.
fn thousands(n: u32) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// How many log lines the tab keeps.
pub const LOG_KEEP: usize = 2000;

/// How many reasons are read.
pub const REASONS: u32 = 20;

/// How often the top reasons are read again while the tab is open: a window of the newest
/// failures changes slowly, and an idle console must cost next to nothing.
pub const REASONS_REFRESH_SECS: i64 = 10;

/// A replica not seen for this long is shown as gone quiet.
const QUIET_SECS: i64 = 60;

/// The Troubleshoot tab's data.
#[derive(Debug, Clone, Default)]
pub struct TroubleshootState {
    /// The commonest failure reasons, once read.
    pub reasons: Option<Vec<ReasonCount>>,
    /// When the reasons were last read.
    pub reasons_at: Option<DateTime<Utc>>,
    /// The selected reason.
    pub selected: usize,
    /// The replicas, once read.
    pub replicas: Option<Vec<Replica>>,
    /// The newest log lines, oldest first.
    pub logs: VecDeque<LogLine>,
    /// The log filter, compiled.
    pub log_filter: Option<Regex>,
    /// The log filter as typed.
    pub log_filter_text: String,
    /// `doctor`'s results, once run.
    pub doctor: Option<Vec<CheckResult>>,
    /// Whether `doctor` is running.
    pub doctor_running: bool,
}

/// Enter: shows the messages behind the selected reason in the Queue tab.
pub fn jump(state: &mut AppState) -> Option<Effect> {
    let reason = state
        .troubleshoot
        .reasons
        .as_ref()?
        .get(state.troubleshoot.selected)?
        .clone();
    let query = QueueQuery {
        filter: MessageFilter {
            statuses: vec![reason.status],
            ..MessageFilter::default()
        },
        user: None,
        title: None,
        reason: Some(reason.reason),
    };
    let text = filter::format(&query);
    state.tab = Tab::Queue;
    Some(queue::apply_query(state, query, text))
}

/// Sets the log filter from typed text; empty clears it.
pub fn set_log_filter(state: &mut AppState, text: &str) -> Result<(), String> {
    let t = &mut state.troubleshoot;
    if text.trim().is_empty() {
        t.log_filter = None;
        t.log_filter_text.clear();
        return Ok(());
    }
    let re = Regex::new(text).map_err(|e| {
        let first = e
            .to_string()
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_string();
        format!("not a regular expression: {first}")
    })?;
    t.log_filter = Some(re);
    t.log_filter_text = text.to_string();
    Ok(())
}

/// New log lines arrived; true when any are shown under the filter.
pub fn append_logs(state: &mut AppState, lines: Vec<LogLine>) -> bool {
    let t = &mut state.troubleshoot;
    let shown = lines
        .iter()
        .any(|l| t.log_filter.as_ref().is_none_or(|re| l.matches(re)));
    t.logs.extend(lines);
    while t.logs.len() > LOG_KEEP {
        t.logs.pop_front();
    }
    shown && state.tab == Tab::Troubleshoot
}

/// Draws the Troubleshoot tab.
pub fn draw(frame: &mut Frame, area: Rect, state: &AppState, theme: Theme) {
    if !state.watches_queue() {
        frame.render_widget(
            Paragraph::new("Troubleshooting shows the whole queue and this process's logs: it needs the owner or oncall role.")
                .wrap(Wrap { trim: true })
                .block(pane("Troubleshoot", theme)),
            area,
        );
        return;
    }
    let [health, area] = Layout::vertical([
        Constraint::Length(crate::console::channels::height(state, area.height)),
        Constraint::Min(0),
    ])
    .areas(area);
    crate::console::channels::draw(frame, health, state, theme);
    let top_height = (area.height / 2).max(6);
    let [top, logs] =
        Layout::vertical([Constraint::Length(top_height), Constraint::Min(0)]).areas(area);
    let [reasons, right] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(top);
    draw_reasons(frame, reasons, state, theme);
    let t = &state.troubleshoot;
    if t.doctor.is_some() || t.doctor_running {
        let [replicas, doctor] =
            Layout::vertical([Constraint::Percentage(40), Constraint::Percentage(60)]).areas(right);
        draw_replicas(frame, replicas, state, theme);
        draw_doctor(frame, doctor, state, theme);
    } else {
        draw_replicas(frame, right, state, theme);
    }
    if state.audit.visible {
        crate::console::audit::draw(frame, logs, state, theme);
    } else {
        draw_logs(frame, logs, state, theme);
    }
}

/// Whether the reasons should be read again at `now`.
pub fn reasons_stale(t: &TroubleshootState, now: DateTime<Utc>) -> bool {
    t.reasons_at
        .is_none_or(|at| (now - at).num_seconds() >= REASONS_REFRESH_SECS)
}

fn draw_reasons(frame: &mut Frame, area: Rect, state: &AppState, theme: Theme) {
    let title = &format!(
        "Top failure reasons (last {} each)",
        thousands(REASONS_WINDOW)
    );
    let Some(reasons) = &state.troubleshoot.reasons else {
        draw_note(frame, area, title, "loading…", theme);
        return;
    };
    if reasons.is_empty() {
        let text = Span::styled("no failed messages", theme.ok());
        draw_note(frame, area, title, text, theme);
        return;
    }
    let rows = reasons.iter().map(|r| {
        Row::new(vec![
            Line::raw(r.count.to_string()),
            Line::styled(short_state(r.status), theme.state(r.status)),
            // Shown clean; the filter behind Enter keeps the stored text.
            Line::raw(crate::queue::clean_text(
                &r.reason,
                crate::queue::MAX_REASON_CHARS,
            )),
        ])
    });
    let widths = [
        Constraint::Length(6),
        Constraint::Length(9),
        Constraint::Min(10),
    ];
    let table = list_table(rows, widths, &[], title, theme);
    let mut ts = if state.channels.reasons_focused {
        table_state(state.troubleshoot.selected, reasons.len())
    } else {
        ratatui::widgets::TableState::default()
    };
    frame.render_stateful_widget(table, area, &mut ts);
}

fn draw_replicas(frame: &mut Frame, area: Rect, state: &AppState, theme: Theme) {
    let title = "Replicas";
    let Some(replicas) = &state.troubleshoot.replicas else {
        draw_note(frame, area, title, "loading…", theme);
        return;
    };
    let mut lines = Vec::new();
    if replicas.is_empty() {
        lines.push(Line::styled(
            "no dispatcher is running: start `herald serve`",
            theme.error(),
        ));
    }
    for w in state.undeliverable.iter().flatten() {
        lines.push(Line::styled(w.describe(), theme.error()));
    }
    for r in replicas {
        let quiet = (state.now - r.last_seen_at).num_seconds() > QUIET_SECS;
        lines.push(Line::from(vec![
            Span::styled(
                format!("{} pid {}", r.hostname, r.pid),
                if quiet { theme.error() } else { theme.title() },
            ),
            Span::raw(format!(
                "  seen {} ago, {} in flight, up {}",
                age(state.now, r.last_seen_at),
                r.in_flight,
                age(state.now, r.started_at)
            )),
        ]));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(pane(title, theme)),
        area,
    );
}

fn draw_doctor(frame: &mut Frame, area: Rect, state: &AppState, theme: Theme) {
    let t = &state.troubleshoot;
    let mut lines = Vec::new();
    if t.doctor_running {
        lines.push(Line::styled("running…", theme.dim()));
    }
    for r in t.doctor.iter().flatten() {
        let (verdict, style) = if r.ok {
            (" ok  ", theme.ok())
        } else {
            ("FAIL ", theme.error())
        };
        lines.push(Line::from(vec![
            Span::styled(verdict, style),
            Span::raw(format!("{}: {}", r.check, r.detail)),
        ]));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(pane("Doctor", theme)),
        area,
    );
}

fn draw_logs(frame: &mut Frame, area: Rect, state: &AppState, theme: Theme) {
    let t = &state.troubleshoot;
    let title = if t.log_filter_text.is_empty() {
        "Log (/ to filter)".to_string()
    } else {
        format!("Log matching /{}/", t.log_filter_text)
    };
    let room = usize::from(area.height.saturating_sub(2));
    let mut shown: Vec<&LogLine> = t
        .logs
        .iter()
        .rev()
        .filter(|l| t.log_filter.as_ref().is_none_or(|re| l.matches(re)))
        .take(room)
        .collect();
    shown.reverse();
    let lines: Vec<Line> = shown
        .into_iter()
        .map(|l| {
            let style = match l.level {
                Level::ERROR => theme.error(),
                Level::WARN => theme.warn(),
                _ => theme.dim(),
            };
            Line::from(vec![
                Span::styled(
                    format!("{} {:<5} ", l.time.format("%H:%M:%S"), l.level.as_str()),
                    style,
                ),
                Span::raw(format!("{}: {}", l.target, l.text)),
            ])
        })
        .collect();
    frame.render_widget(Paragraph::new(lines).block(pane(&title, theme)), area);
}
