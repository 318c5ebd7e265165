//! The Troubleshoot tab's audit trail view (`a`): who retried, paused, resumed, changed users,
//! tokens or keys, newest first, in place of the log stream. The newest [`AUDIT_ROWS`] rows
//! are read only while the view is open, at most every [`AUDIT_REFRESH_SECS`].

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Line;
use ratatui::widgets::Row;

use crate::service::{AuditRecord, audit_detail_words, audit_via};

use crate::console::state::AppState;
use crate::console::theme::Theme;
use crate::console::view::{age, draw_note, list_table};

/// How many of the newest rows the view reads.
pub const AUDIT_ROWS: u32 = 50;

/// How often the rows are read again while the view is open.
pub const AUDIT_REFRESH_SECS: i64 = 5;

/// The audit view's state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditView {
    /// Whether it is shown (in place of the log stream).
    pub visible: bool,
    /// The newest rows, once read.
    pub rows: Option<Vec<AuditRecord>>,
    /// When they were last read.
    pub read_at: Option<DateTime<Utc>>,
}

impl AuditView {
    /// Whether the rows should be read at `now`: only while shown.
    pub fn stale(&self, now: DateTime<Utc>) -> bool {
        self.visible
            && self
                .read_at
                .is_none_or(|at| (now - at).num_seconds() >= AUDIT_REFRESH_SECS)
    }
}

/// `a`: shows or hides the view; a view shown again is read again at once.
pub fn toggle(state: &mut AppState) {
    let view = &mut state.audit;
    view.visible = !view.visible;
    if view.visible {
        view.read_at = None;
    }
}

/// The rows were read; true when they changed.
pub fn loaded(state: &mut AppState, rows: Vec<AuditRecord>) -> bool {
    state.audit.read_at = Some(state.now);
    if state.audit.rows.as_ref() == Some(&rows) {
        return false;
    }
    state.audit.rows = Some(rows);
    true
}

/// Draws the view into `area`.
pub fn draw(frame: &mut Frame, area: Rect, state: &AppState, theme: Theme) {
    let title = &format!("Audit trail, newest {AUDIT_ROWS} (a: back to the log)");
    let Some(rows) = &state.audit.rows else {
        draw_note(frame, area, title, "loading…", theme);
        return;
    };
    if rows.is_empty() {
        draw_note(frame, area, title, "no operator actions yet", theme);
        return;
    }
    // Narrow terminals drop the detail: the subject says what was done to, which matters more.
    let wide = area.width >= 100;
    let lines = rows.iter().map(|r| {
        let mut cells = vec![
            Line::styled(age(state.now, r.at), theme.dim()),
            Line::raw(crate::queue::clean_text(&r.actor, 32)),
            Line::styled(r.action.clone(), theme.title()),
            Line::raw(crate::queue::clean_text(&r.subject, 80)),
            Line::styled(audit_via(r).to_string(), theme.dim()),
        ];
        if wide {
            let words = audit_detail_words(r);
            cells.push(Line::raw(crate::queue::clean_text(
                &words,
                crate::queue::MAX_REASON_CHARS,
            )));
        }
        Row::new(cells)
    });
    let (widths, header): (Vec<Constraint>, &'static [&'static str]) = if wide {
        (
            vec![
                Constraint::Length(4),
                Constraint::Length(14),
                Constraint::Length(20),
                Constraint::Length(38),
                Constraint::Length(7),
                Constraint::Min(10),
            ],
            &["AGO", "ACTOR", "ACTION", "SUBJECT", "VIA", "DETAIL"],
        )
    } else {
        (
            vec![
                Constraint::Length(4),
                Constraint::Length(10),
                Constraint::Length(20),
                Constraint::Min(10),
                Constraint::Length(7),
            ],
            &["AGO", "ACTOR", "ACTION", "SUBJECT", "VIA"],
        )
    };
    frame.render_widget(list_table(lines, widths, header, title, theme), area);
}
