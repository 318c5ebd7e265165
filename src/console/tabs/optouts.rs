//! The Opt-outs tab: every event with whether the subject receives it; space toggles.
//! The subject is you; an owner can switch to another user with `u`.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row};

use crate::console::action::{Effect, OptOutRow};
use crate::console::state::AppState;
use crate::console::theme::Theme;
use crate::console::view::{GroupColumn, draw_note, list_table, table_state};

/// The Opt-outs tab's data.
#[derive(Debug, Clone, Default)]
pub struct OptOutsState {
    /// Whose opt-outs are asked for: `None` is the caller.
    pub subject: Option<String>,
    /// The username the rows belong to, once loaded.
    pub shown_user: String,
    /// One row per event, by group then name.
    pub rows: Vec<OptOutRow>,
    /// Whether the rows were read.
    pub loaded: bool,
    /// The selected row.
    pub selected: usize,
}

/// The effect that reads the current subject's opt-outs.
pub fn load(state: &AppState) -> Effect {
    Effect::LoadOptOuts(state.optouts.subject.clone())
}

/// Space: flips the selected event for the subject.
pub fn toggle(state: &mut AppState) -> Option<Effect> {
    let Some(row) = state.optouts.rows.get(state.optouts.selected) else {
        state.fail("no event selected");
        return None;
    };
    let disabled = row.enabled;
    let event = row.event.clone();
    state.say(format!(
        "{} {event}…",
        if disabled {
            "opting out of"
        } else {
            "opting in to"
        }
    ));
    Some(Effect::SetOptOut {
        event,
        user: state.optouts.subject.clone(),
        disabled,
    })
}

/// The subject a `u` prompt names: empty or yourself means you.
pub fn subject_from(state: &AppState, text: &str) -> Option<String> {
    let name = text.trim();
    (!name.is_empty() && name != state.session.user.username).then(|| name.to_string())
}

/// Applies loaded rows; true when something changed.
pub fn loaded(state: &mut AppState, user: String, mut rows: Vec<OptOutRow>) -> bool {
    rows.sort_by(|a, b| (&a.group, &a.event).cmp(&(&b.group, &b.event)));
    let o = &mut state.optouts;
    let changed = !o.loaded || o.rows != rows || o.shown_user != user;
    o.rows = rows;
    o.shown_user = user;
    o.loaded = true;
    o.selected = o.selected.min(o.rows.len().saturating_sub(1));
    changed
}

/// Applies a saved choice to its row.
pub fn saved(state: &mut AppState, event: &str, disabled: bool) {
    if let Some(row) = state.optouts.rows.iter_mut().find(|r| r.event == event) {
        row.enabled = !disabled;
        row.preference = Some(disabled);
    }
    let whose = state.optouts.shown_user.clone();
    state.say(if disabled {
        format!("{whose} opted out of {event}")
    } else {
        format!("{whose} receives {event}")
    });
}

/// Draws the Opt-outs tab.
pub fn draw(frame: &mut Frame, area: Rect, state: &AppState, theme: Theme) {
    let o = &state.optouts;
    let [note, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    let who = if o.loaded {
        o.shown_user.clone()
    } else {
        state.session.user.username.clone()
    };
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::raw(" Notifications "),
            Span::styled(who.clone(), theme.title()),
            Span::raw(" receives. Inhibited rows are still queued, so Queue shows why."),
        ])),
        note,
    );
    let title = format!("Opt-outs of {who}");
    if !o.loaded {
        draw_note(frame, body, &title, "loading…", theme);
        return;
    }
    let mut groups = GroupColumn::default();
    let rows = o.rows.iter().map(|r| {
        let group = groups.cell(&r.group);
        let (mark, style) = if r.enabled {
            ("[x] on ", theme.ok())
        } else {
            ("[ ] off", theme.dim())
        };
        let why = match r.preference {
            Some(true) => "opted out",
            Some(false) => "opted in",
            None if r.enabled_by_default => "default",
            None => "off by default",
        };
        Row::new(vec![
            Line::raw(group),
            Line::styled(mark, style),
            Line::raw(r.event.clone()),
            Line::styled(why, theme.dim()),
        ])
    });
    let widths = [
        Constraint::Length(12),
        Constraint::Length(7),
        Constraint::Min(20),
        Constraint::Length(14),
    ];
    let header = &["GROUP", "GET IT", "EVENT", "WHY"];
    let table = list_table(rows, widths, header, &title, theme);
    let mut ts = table_state(o.selected, o.rows.len());
    frame.render_stateful_widget(table, body, &mut ts);
}
