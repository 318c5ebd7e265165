//! Drawing the whole console from the state: header, tab bar, the tab, footer, notice line
//! and overlays. Pure: the same state draws the same frame.

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Paragraph, Row, Table, TableState};

use crate::console::state::{AppState, Overlay, Tab};
use crate::console::theme::Theme;
use crate::console::{
    confirm, delivery, events, footer, header, help, inbox, optouts, queue_view, troubleshoot,
};

/// The smallest terminal the console draws in; smaller ones get one line saying so.
pub const MIN_WIDTH: u16 = 40;
/// See [`MIN_WIDTH`].
pub const MIN_HEIGHT: u16 = 10;

/// Draws one frame.
pub fn draw(frame: &mut Frame, state: &AppState, theme: Theme) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let text = format!(
            "terminal too small ({}×{}); herald needs {MIN_WIDTH}×{MIN_HEIGHT}",
            area.width, area.height
        );
        frame.render_widget(Paragraph::new(text), area);
        return;
    }
    let paused = state.paused == Some(true) || state.pauses.as_ref().is_some_and(|p| !p.is_empty());
    let [head, banner, tabs, body, foot, notice] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(u16::from(paused)),
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    header::draw(frame, head, state, theme);
    if paused {
        header::draw_paused(frame, banner, state, theme);
    }
    header::draw_tabs(frame, tabs, state, theme);
    match state.tab {
        Tab::Events => events::draw(frame, body, state, theme),
        Tab::Delivery => delivery::draw(frame, body, state, theme),
        Tab::OptOuts => optouts::draw(frame, body, state, theme),
        Tab::Queue => queue_view::draw(frame, body, state, theme),
        Tab::Troubleshoot => troubleshoot::draw(frame, body, state, theme),
        Tab::Inbox => inbox::draw(frame, body, state, theme),
    }
    footer::draw_hints(frame, foot, state, theme);
    footer::draw_notice(frame, notice, state, theme);
    match &state.overlay {
        Overlay::Help(scroll) => help::draw(frame, body, state, *scroll, theme),
        Overlay::Confirm(c) => confirm::draw_confirm(frame, body, state, c, theme),
        Overlay::Prompt(_) | Overlay::None => {}
    }
}

/// A bordered pane with a bold title.
pub fn pane(title: &str, theme: Theme) -> Block<'static> {
    Block::bordered().title(Span::styled(format!(" {title} "), theme.title()))
}

/// A pane holding a few words instead of its list: `loading…`, `your inbox is empty`.
pub fn draw_note<'a>(
    frame: &mut Frame,
    area: Rect,
    title: &str,
    text: impl Into<Text<'a>>,
    theme: Theme,
) {
    frame.render_widget(Paragraph::new(text).block(pane(title, theme)), area);
}

/// What a list's pane says instead of rows: `loading…` until it is loaded, then `empty`
/// while it has none.
pub fn placeholder(loaded: bool, is_empty: bool, empty: &'static str) -> Option<&'static str> {
    if !loaded {
        Some("loading…")
    } else if is_empty {
        Some(empty)
    } else {
        None
    }
}

/// A tab's list: column titles above the rows (none when `header` is empty), the selected row
/// highlighted and marked `›`, in a titled pane. Draw it with [`table_state`].
pub fn list_table<'a>(
    rows: impl IntoIterator<Item = Row<'a>>,
    widths: impl IntoIterator<Item = Constraint>,
    header: &'static [&'static str],
    title: &str,
    theme: Theme,
) -> Table<'a> {
    let table = Table::new(rows, widths)
        .row_highlight_style(theme.selected())
        .highlight_symbol("› ")
        .block(pane(title, theme));
    if header.is_empty() {
        table
    } else {
        table.header(Row::new(header.iter().copied()).style(theme.column_title()))
    }
}

/// A table selection for `len` rows.
pub fn table_state(selected: usize, len: usize) -> TableState {
    TableState::default().with_selected((len > 0).then_some(selected.min(len - 1)))
}

/// A group's name without the ` Events` every group ends with.
pub fn short_group(group: &str) -> &str {
    group.strip_suffix(" Events").unwrap_or(group)
}

/// The GROUP column of an event list: a group's short name on its first row, blank on the
/// rows after it.
#[derive(Debug, Default)]
pub struct GroupColumn<'a> {
    last: &'a str,
}

impl<'a> GroupColumn<'a> {
    /// The cell for the next row, whose event is in `group`.
    pub fn cell(&mut self, group: &'a str) -> String {
        let cell = if group == self.last {
            String::new()
        } else {
            short_group(group).to_string()
        };
        self.last = group;
        cell
    }
}

/// How long ago `t` was at `now`, in one unit: `12s`, `5m`, `3h`, `2d`; `in 5m` for the
/// future.
pub fn age(now: DateTime<Utc>, t: DateTime<Utc>) -> String {
    let secs = (now - t).num_seconds();
    let span = |s: i64| match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    };
    if secs < 0 {
        format!("in {}", span(-secs))
    } else {
        span(secs)
    }
}

/// A rectangle of at most `width`×`height` centred in `area`.
pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

/// `key description` pairs as one line of hints.
pub fn hint_line<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>, theme: Theme) -> Line<'a> {
    let mut spans = Vec::new();
    for (key, description) in pairs {
        spans.push(Span::styled(key, theme.key()));
        spans.push(Span::raw(format!(" {description}  ")));
    }
    Line::from(spans)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_in_one_unit() {
        let now = Utc::now();
        let ago = |s| age(now, now - chrono::Duration::seconds(s));
        assert_eq!(ago(5), "5s");
        assert_eq!(ago(125), "2m");
        assert_eq!(ago(7300), "2h");
        assert_eq!(ago(200_000), "2d");
        assert_eq!(ago(-90), "in 1m");
    }

    #[test]
    fn centering_never_leaves_the_area() {
        let area = Rect::new(0, 0, 10, 5);
        assert_eq!(centered(area, 20, 20), area);
        assert_eq!(centered(area, 4, 1), Rect::new(3, 2, 4, 1));
    }
}
