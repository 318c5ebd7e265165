//! The Events tab: the catalog by group, with each event's method, default and 24-hour volume;
//! the detail shows its templates and actions; `t` sends a test of it to yourself; `x`
//! explains who would get it ([`crate::console::explain`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Paragraph, Row, Wrap};

use crate::model::{EventTemplate, Method};

use crate::console::action::Effect;
use crate::console::state::AppState;
use crate::console::theme::Theme;
use crate::console::view::{GroupColumn, draw_note, list_table, table_state};

/// The catalog, shared by the Events and Delivery tabs.
#[derive(Debug, Clone, Default)]
pub struct EventsState {
    /// Every event, by group then name.
    pub catalog: Vec<EventTemplate>,
    /// Whether the catalog was read.
    pub loaded: bool,
    /// Messages per event in the last 24 hours; `None` until read (or not allowed).
    pub volumes: Option<BTreeMap<String, i64>>,
    /// When the volumes were read.
    pub volumes_at: Option<DateTime<Utc>>,
    /// The Events tab's selected row.
    pub selected: usize,
    /// The Delivery tab's selected row.
    pub delivery_selected: usize,
    /// Whether the Events tab shows the selected event's detail.
    pub detail: bool,
}

/// Volumes older than this are read again while the tab is shown.
pub const VOLUME_REFRESH_SECS: i64 = 30;

impl EventsState {
    /// Replaces the catalog, sorted by group then name; true when it changed.
    pub fn set_catalog(&mut self, mut events: Vec<EventTemplate>) -> bool {
        events.sort_by(|a, b| {
            (a.spec.group.as_str(), a.spec.name.as_str())
                .cmp(&(b.spec.group.as_str(), b.spec.name.as_str()))
        });
        let changed = !self.loaded || self.catalog != events;
        self.catalog = events;
        self.loaded = true;
        let last = self.catalog.len().saturating_sub(1);
        self.selected = self.selected.min(last);
        self.delivery_selected = self.delivery_selected.min(last);
        changed
    }

    /// The event selected in the Events tab.
    pub fn selected_event(&self) -> Option<&EventTemplate> {
        self.catalog.get(self.selected)
    }

    /// Whether the volumes should be read again at `now`.
    pub fn volumes_stale(&self, now: DateTime<Utc>) -> bool {
        self.volumes_at
            .is_none_or(|at| (now - at).num_seconds() >= VOLUME_REFRESH_SECS)
    }
}

/// `t`: the effect sending the selected event to yourself.
pub fn send_test(state: &mut AppState) -> Option<Effect> {
    let Some(event) = state.events.selected_event() else {
        state.fail("no event selected");
        return None;
    };
    let name = event.spec.name.clone();
    state.say(format!("sending a test of {name} to you…"));
    Some(Effect::SendEventTest(name))
}

/// How an event's method reads: its own, or the default marked as such.
pub fn method_text(method: Option<Method>, default: Method) -> String {
    match method {
        Some(m) => m.to_string(),
        None => format!("{default} (default)"),
    }
}

/// The METHOD column's width: its longest cell (`slack_webhook (default)`), so no method is
/// cut while the EVENT column has room to spare.
pub fn method_width(catalog: &[EventTemplate], default: Method) -> u16 {
    let longest = catalog
        .iter()
        .map(|e| method_text(e.method, default).chars().count())
        .max()
        .unwrap_or(0)
        .max("METHOD".len());
    u16::try_from(longest).unwrap_or(u16::MAX)
}

/// Draws the Events tab.
pub fn draw(frame: &mut Frame, area: Rect, state: &AppState, theme: Theme) {
    if state.explain.open() {
        crate::console::explain::draw(frame, area, state, theme);
        return;
    }
    let events = &state.events;
    if events.detail
        && let Some(event) = events.selected_event()
    {
        draw_detail(frame, area, state, event, theme);
        return;
    }
    let title = format!("Events ({})", events.catalog.len());
    if !events.loaded {
        draw_note(frame, area, &title, "loading the catalog…", theme);
        return;
    }
    let default = state.session.default_method;
    let mut groups = GroupColumn::default();
    let rows = events.catalog.iter().map(|e| {
        let group = groups.cell(&e.spec.group);
        let volume = match &events.volumes {
            Some(v) => v.get(&e.spec.name).copied().unwrap_or(0).to_string(),
            None => "—".to_string(),
        };
        Row::new(vec![
            group,
            e.spec.name.clone(),
            method_text(e.method, default),
            if e.spec.enabled_by_default {
                "yes"
            } else {
                "no"
            }
            .to_string(),
            volume,
        ])
    });
    let widths = [
        Constraint::Length(12),
        Constraint::Fill(1),
        Constraint::Length(method_width(&events.catalog, default)),
        Constraint::Length(3),
        Constraint::Length(6),
    ];
    let header = &["GROUP", "EVENT", "METHOD", "ON", "24H"];
    let table = list_table(rows, widths, header, &title, theme);
    let mut ts = table_state(events.selected, events.catalog.len());
    frame.render_stateful_widget(table, area, &mut ts);
}

fn draw_detail(frame: &mut Frame, area: Rect, state: &AppState, e: &EventTemplate, theme: Theme) {
    let label = |text: &'static str| Span::styled(text, theme.column_title());
    let roles: Vec<&str> = e.spec.audience_roles.iter().map(|r| r.as_str()).collect();
    let mut lines = vec![
        Line::from(vec![label("group      "), Span::raw(e.spec.group.clone())]),
        Line::from(vec![
            label("method     "),
            Span::raw(method_text(e.method, state.session.default_method)),
        ]),
        Line::from(vec![
            label("enabled    "),
            Span::raw(if e.spec.enabled_by_default {
                "by default"
            } else {
                "opt-in (off by default)"
            }),
        ]),
        Line::from(vec![
            label("audience   "),
            Span::raw(if roles.is_empty() {
                "named users only".to_string()
            } else {
                roles.join(", ")
            }),
        ]),
        Line::from(vec![
            label("kind       "),
            Span::raw(e.spec.kind.to_string()),
        ]),
        Line::default(),
        Line::from(label("title template")),
        Line::raw(e.spec.title_template.clone()),
        Line::default(),
        Line::from(label("body template")),
    ];
    lines.extend(
        e.spec
            .body_template
            .lines()
            .map(|l| Line::raw(l.to_string())),
    );
    lines.push(Line::default());
    lines.push(Line::from(label("actions")));
    if e.spec.actions.is_empty() {
        lines.push(Line::styled("none", theme.dim()));
    }
    for a in &e.spec.actions {
        lines.push(Line::raw(format!("{} → {}", a.label, a.url)));
    }
    let title = e.spec.name.clone();
    let text = Text::from(lines);
    frame.render_widget(
        Paragraph::new(text)
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(Span::styled(title, theme.title()))),
        area,
    );
}
