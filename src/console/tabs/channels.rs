//! The Troubleshoot tab's channel health panel (DESIGN §14): per method and per target, what
//! waits, the last 15 minutes' sent / temporary / permanent attempts, p50 / p95 delivery
//! time, the last error and whether it is paused — read every [`HEALTH_REFRESH_SECS`] while
//! the tab is shown, from the store's kept counts and the window's attempts. Enter opens the
//! Queue filtered to the selected channel; `p` pauses or resumes it after a confirmation.

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Row;

use crate::model::{ChannelPause, PauseScope};
use crate::service::MessageFilter;
use crate::service::channel_health::ChannelHealth;
use crate::service::read_models::QueueQuery;

use crate::console::action::Effect;
use crate::console::filter;
use crate::console::queue;
use crate::console::state::{AppState, Confirm, Overlay, Tab};
use crate::console::theme::Theme;
use crate::console::view::{draw_note, list_table, table_state};

/// How often the panel is read again while the tab is shown: health moves faster than the
/// failure reasons, and every read is a few counter rows plus the window's attempts.
pub const HEALTH_REFRESH_SECS: i64 = 5;

/// The panel's data.
#[derive(Debug, Clone, Default)]
pub struct ChannelsState {
    /// One row per channel, once read.
    pub rows: Option<Vec<ChannelHealth>>,
    /// When they were last read.
    pub read_at: Option<DateTime<Utc>>,
    /// The selected row.
    pub selected: usize,
    /// Whether the reasons pane has the keys instead of this one (←/→ switch).
    pub reasons_focused: bool,
}

impl ChannelsState {
    /// Whether the panel should be read again at `now`.
    pub fn stale(&self, now: DateTime<Utc>) -> bool {
        self.read_at
            .is_none_or(|at| (now - at).num_seconds() >= HEALTH_REFRESH_SECS)
    }

    /// The selected channel.
    pub fn selected_row(&self) -> Option<&ChannelHealth> {
        self.rows.as_ref()?.get(self.selected)
    }
}

/// New rows arrived; true when they changed.
pub fn loaded(state: &mut AppState, rows: Vec<ChannelHealth>) -> bool {
    let c = &mut state.channels;
    c.read_at = Some(state.now);
    c.selected = c.selected.min(rows.len().saturating_sub(1));
    if c.rows.as_ref() == Some(&rows) {
        return false;
    }
    c.rows = Some(rows);
    true
}

/// The pause that holds exactly this row: its method's for user messages, else its target's.
pub fn own_scope(row: &ChannelHealth) -> (PauseScope, String) {
    match &row.target {
        Some(target) => (PauseScope::Target, target.clone()),
        None => (PauseScope::Method, row.method.as_str().to_string()),
    }
}

/// How a scoped pause reads: `method smtp`, `target ops-alerts`.
pub fn scope_text(scope: PauseScope, name: &str) -> String {
    format!("{scope} {name}")
}

/// The row's name in the panel: `webhook` for a method's user messages, `→ ops` for a target
/// (its method is what its type delivers by).
fn channel_text(row: &ChannelHealth) -> String {
    match &row.target {
        Some(target) => format!("→ {target}"),
        None => row.method.to_string(),
    }
}

/// Enter: the Queue tab filtered to the selected channel (`target=…`, or `method=…` for a
/// method's messages).
pub fn jump(state: &mut AppState) -> Option<Effect> {
    let row = state.channels.selected_row()?.clone();
    let filter = match row.target {
        Some(target) => MessageFilter {
            target: Some(target),
            ..MessageFilter::default()
        },
        None => MessageFilter {
            method: Some(row.method),
            ..MessageFilter::default()
        },
    };
    let query = QueueQuery {
        filter,
        ..QueueQuery::default()
    };
    let text = filter::format(&query);
    state.tab = Tab::Queue;
    Some(queue::apply_query(state, query, text))
}

/// Whether `pauses` holds exactly `scope` `name`.
fn is_paused(pauses: &[ChannelPause], scope: PauseScope, name: &str) -> bool {
    pauses.iter().any(|p| p.scope == scope && p.name == name)
}

/// `p`: asks to pause the selected channel on every replica, or to resume it when its own
/// pause holds it.
pub fn ask_toggle_pause(state: &mut AppState) {
    let Some(row) = state.channels.selected_row() else {
        state.fail("no channel selected");
        return;
    };
    let (scope, name) = own_scope(row);
    let Some(pauses) = &state.pauses else {
        state.fail("the pauses have not been read yet; try again in a moment");
        return;
    };
    let paused = is_paused(pauses, scope, &name);
    let what = scope_text(scope, &name);
    let reach = match scope {
        PauseScope::Method => format!(" (its user messages and every {name} target)"),
        PauseScope::Target => String::new(),
    };
    let (title, question) = if paused {
        (
            "Resume channel",
            format!(
                "Resume {what}{reach} on every replica?\nWhat it held starts going out at once."
            ),
        )
    } else {
        (
            "Pause channel",
            format!(
                "Pause {what}{reach} on every replica?\nIts messages keep queueing; every other channel keeps delivering."
            ),
        )
    };
    state.overlay = Overlay::Confirm(Confirm {
        title: title.into(),
        question,
        effect: Effect::SetChannelPaused {
            scope,
            name,
            paused: !paused,
        },
    });
}

/// A pause or resume took effect: says so and reads the pauses and the panel again.
pub fn pause_set(
    state: &mut AppState,
    scope: PauseScope,
    name: &str,
    paused: bool,
    changed: bool,
    fx: &mut Vec<Effect>,
) {
    let what = scope_text(scope, name);
    state.say(match (paused, changed) {
        (true, true) => format!("{what} paused on every replica"),
        (true, false) => format!("{what} was paused already"),
        (false, true) => format!("{what} resumed"),
        (false, false) => format!("{what} was not paused"),
    });
    state.channels.read_at = None;
    state.loading.remove(&crate::console::action::Load::Pauses);
    state
        .loading
        .remove(&crate::console::action::Load::Channels);
    fx.push(Effect::LoadPauses);
    fx.push(Effect::LoadChannels);
}

/// The panel's height in `area_height` rows: its rows and header, at most a third of the tab.
pub fn height(state: &AppState, area_height: u16) -> u16 {
    let rows = state.channels.rows.as_ref().map_or(1, |r| r.len().max(1));
    let wanted = u16::try_from(rows + 3).unwrap_or(u16::MAX);
    wanted.min((area_height * 2 / 5).max(4))
}

/// `1234` as `1234`, `12345` as `12k`, `1234567` as `1.2M`: five columns at most.
fn count_text(n: i64) -> String {
    match n {
        0 => "·".to_string(),
        1..100_000 => n.to_string(),
        100_000..1_000_000 => format!("{}k", n / 1000),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

/// `850ms`, `1.2s`, `14s`, `3m`: five columns at most; `—` when unknown.
fn duration_text(ms: Option<i64>) -> String {
    match ms {
        None => "—".to_string(),
        Some(ms @ ..1000) => format!("{ms}ms"),
        Some(ms @ 1000..10_000) => format!("{:.1}s", ms as f64 / 1000.0),
        Some(ms @ 10_000..60_000) => format!("{}s", ms / 1000),
        Some(ms) => format!("{}m", ms / 60_000),
    }
}

/// Draws the panel.
pub fn draw(frame: &mut Frame, area: Rect, state: &AppState, theme: Theme) {
    let c = &state.channels;
    let title = "Channels (attempts in the last 15 min; p pauses one)";
    let Some(rows) = &c.rows else {
        draw_note(frame, area, title, "loading…", theme);
        return;
    };
    if rows.is_empty() {
        draw_note(frame, area, title, "no channel is configured", theme);
        return;
    }
    let lines = rows.iter().map(|r| {
        let failing = r.sent == 0 && r.temporary_failure + r.permanent_failure > 0;
        let name_style = if r.paused {
            theme.paused()
        } else if failing {
            theme.error()
        } else {
            theme.title()
        };
        let error = r
            .last_error
            .as_deref()
            .map(|e| crate::queue::clean_text(e, crate::queue::MAX_REASON_CHARS));
        let error = match (error, r.last_error_at) {
            (Some(e), Some(at)) => Line::from(vec![
                Span::styled(e, theme.error()),
                Span::styled(
                    format!(" · {} ago", crate::console::view::age(state.now, at)),
                    theme.dim(),
                ),
            ]),
            (Some(e), None) => Line::styled(e, theme.error()),
            (None, _) => Line::raw(""),
        };
        Row::new(vec![
            Line::styled(channel_text(r), name_style),
            Line::raw(count_text(r.backlog)),
            Line::styled(count_text(r.sent), theme.ok()),
            Line::styled(
                count_text(r.temporary_failure),
                theme.state(crate::model::MessageState::TemporaryFailure),
            ),
            Line::styled(
                count_text(r.permanent_failure),
                theme.state(crate::model::MessageState::PermanentFailure),
            ),
            Line::raw(duration_text(r.p50_ms)),
            Line::raw(duration_text(r.p95_ms)),
            if r.paused {
                Line::styled("yes", theme.paused())
            } else {
                Line::raw("")
            },
            error,
        ])
    });
    let widths = [
        Constraint::Length(18),
        Constraint::Length(5),
        Constraint::Length(5),
        Constraint::Length(4),
        Constraint::Length(4),
        Constraint::Length(5),
        Constraint::Length(5),
        Constraint::Length(4),
        Constraint::Min(10),
    ];
    let header = &[
        "CHANNEL",
        "WAIT",
        "SENT",
        "TEMP",
        "PERM",
        "P50",
        "P95",
        "HELD",
        "LAST ERROR",
    ];
    let table = list_table(lines, widths, header, title, theme);
    let selected = if c.reasons_focused {
        None
    } else {
        Some(c.selected)
    };
    let mut ts = match selected {
        Some(i) => table_state(i, rows.len()),
        None => ratatui::widgets::TableState::default(),
    };
    frame.render_stateful_widget(table, area, &mut ts);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_durations_fit_five_columns() {
        for (n, text) in [(0, "·"), (7, "7"), (99_999, "99999"), (123_456, "123k")] {
            assert_eq!(count_text(n), text);
        }
        assert_eq!(count_text(1_234_567), "1.2M");
        for (ms, text) in [
            (None, "—"),
            (Some(850), "850ms"),
            (Some(1234), "1.2s"),
            (Some(14_200), "14s"),
            (Some(180_000), "3m"),
        ] {
            assert_eq!(duration_text(ms), text);
        }
    }
}
