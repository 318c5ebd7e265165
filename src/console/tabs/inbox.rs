//! The Inbox tab: your in-app notifications, unread first; Enter reads one, space marks it read
//! or unread.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Paragraph, Row, Wrap};
use uuid::Uuid;

use crate::service::InboxEntry;

use crate::console::action::Effect;
use crate::console::state::AppState;
use crate::console::theme::Theme;
use crate::console::view::{age, draw_note, list_table, placeholder, table_state};

/// How many entries are read.
pub const INBOX_LIMIT: u32 = 200;

/// The Inbox tab's data.
#[derive(Debug, Clone, Default)]
pub struct InboxState {
    /// The entries, unread first, then newest first (as the store orders them).
    pub entries: Vec<InboxEntry>,
    /// Whether they were read.
    pub loaded: bool,
    /// The selected row.
    pub selected: usize,
    /// Whether the selected entry is open.
    pub detail: bool,
}

impl InboxState {
    /// How many entries are unread.
    pub fn unread(&self) -> usize {
        self.entries.iter().filter(|e| e.read_at.is_none()).count()
    }
}

/// Applies loaded entries; true when they changed. The selection follows its entry.
pub fn loaded(state: &mut AppState, entries: Vec<InboxEntry>) -> bool {
    let i = &mut state.inbox;
    if i.loaded && i.entries == entries {
        return false;
    }
    let keep = i.entries.get(i.selected).map(|e| e.id);
    i.selected = keep
        .and_then(|id| entries.iter().position(|e| e.id == id))
        .unwrap_or(i.selected)
        .min(entries.len().saturating_sub(1));
    i.entries = entries;
    i.loaded = true;
    true
}

/// Space: marks the selected entry read, or unread when it is read.
pub fn toggle_read(state: &mut AppState) -> Option<Effect> {
    let Some(entry) = state.inbox.entries.get(state.inbox.selected) else {
        state.fail("your inbox is empty");
        return None;
    };
    Some(Effect::MarkInbox {
        id: entry.id,
        read: entry.read_at.is_none(),
    })
}

/// An entry was marked: updates it at once (the reload re-sorts).
pub fn marked(state: &mut AppState, id: Uuid, read: bool) {
    let now = state.now;
    if let Some(e) = state.inbox.entries.iter_mut().find(|e| e.id == id) {
        e.read_at = read.then_some(now);
    }
    state.say(if read { "marked read" } else { "marked unread" });
}

/// Draws the Inbox tab.
pub fn draw(frame: &mut Frame, area: Rect, state: &AppState, theme: Theme) {
    let i = &state.inbox;
    let title = format!(
        "Inbox of {} ({} unread)",
        state.session.user.username,
        i.unread()
    );
    if let Some(note) = placeholder(i.loaded, i.entries.is_empty(), "your inbox is empty") {
        draw_note(frame, area, &title, note, theme);
        return;
    }
    if i.detail
        && let Some(e) = i.entries.get(i.selected)
    {
        let mut lines = vec![
            Line::from(vec![
                Span::styled("event     ", theme.column_title()),
                Span::raw(e.event.clone()),
            ]),
            Line::from(vec![
                Span::styled("received  ", theme.column_title()),
                Span::raw(format!("{} ago", age(state.now, e.created_at))),
            ]),
            Line::default(),
        ];
        lines.extend(e.content.lines().map(|l| Line::raw(l.to_string())));
        if !e.actions.is_empty() {
            lines.push(Line::default());
        }
        for a in &e.actions {
            lines.push(Line::raw(format!("[{}] {}", a.label, a.url)));
        }
        frame.render_widget(
            Paragraph::new(Text::from(lines))
                .wrap(Wrap { trim: false })
                .block(Block::bordered().title(Span::styled(e.title.clone(), theme.title()))),
            area,
        );
        return;
    }
    let rows = i.entries.iter().map(|e| {
        let unread = e.read_at.is_none();
        let style = if unread { theme.title() } else { theme.dim() };
        Row::new(vec![
            Line::styled(if unread { "new" } else { "" }, theme.warn()),
            Line::raw(age(state.now, e.created_at)),
            Line::styled(e.title.clone(), style),
            Line::styled(e.event.clone(), theme.dim()),
        ])
    });
    let widths = [
        Constraint::Length(3),
        Constraint::Length(4),
        Constraint::Fill(3),
        Constraint::Fill(1),
    ];
    let table = list_table(rows, widths, &["", "AGE", "TITLE", "EVENT"], &title, theme);
    let mut ts = table_state(i.selected, i.entries.len());
    frame.render_stateful_widget(table, area, &mut ts);
}
