//! The `?` help overlay: every binding the session may use, grouped by where it works, read
//! from the action table.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};

use crate::console::keymap::{self, ActionSpec, Scope};
use crate::console::state::{AppState, Tab};
use crate::console::theme::Theme;
use crate::console::view::centered;

/// The help text's lines (also what the overlay scrolls through).
pub fn lines(state: &AppState, theme: Theme) -> Vec<Line<'static>> {
    let available: Vec<&ActionSpec> = keymap::available(state).collect();
    let mut groups: Vec<(String, Vec<&ActionSpec>)> = vec![(
        "Everywhere".to_string(),
        available
            .iter()
            .copied()
            .filter(|s| matches!(s.scope, Scope::Global | Scope::Always))
            .collect(),
    )];
    for tab in Tab::ALL {
        groups.push((
            format!("{} tab", tab.title()),
            available
                .iter()
                .copied()
                .filter(|s| s.scope == Scope::Tab(tab))
                .collect(),
        ));
    }
    groups.push((
        "Dialogs and prompts".to_string(),
        available
            .iter()
            .copied()
            .filter(|s| matches!(s.scope, Scope::Confirm | Scope::Prompt))
            .collect(),
    ));
    let mut out = Vec::new();
    for (title, specs) in groups {
        if specs.is_empty() {
            continue;
        }
        out.push(Line::styled(title, theme.title()));
        for s in specs {
            let mark = if s.destructive { " (asks first)" } else { "" };
            out.push(Line::from(vec![
                Span::styled(format!("  {:<10}", s.label), theme.key()),
                Span::raw(format!("{}{mark}", s.description)),
            ]));
        }
        out.push(Line::default());
    }
    out.push(Line::styled("Queue filter", theme.title()));
    out.push(Line::raw(
        "  status=permanent_failure event=run_* user=bob method=webhook reason=\"…\"",
    ));
    out.push(Line::raw(
        "  status takes a comma list, or `failed` for both failure states",
    ));
    out.push(Line::raw(
        "  title~TEXT: rendered titles containing TEXT, any case (5,000 messages read per page)",
    ));
    out.push(Line::default());
    out.push(Line::styled("Commands", theme.title()));
    out.push(Line::raw(format!("  {}", keymap::command_list(false))));
    if state.session.read_only {
        out.push(Line::default());
        out.push(Line::styled(
            "Read-only console: actions that change anything are not available.",
            theme.warn(),
        ));
    }
    out
}

/// Draws the overlay over `area`, scrolled down `scroll` lines.
pub fn draw(frame: &mut Frame, area: Rect, state: &AppState, scroll: u16, theme: Theme) {
    let popup = centered(area, 76, area.height);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines(state, theme))
            .scroll((scroll, 0))
            .block(Block::bordered().title(Span::styled(" Help — Esc closes ", theme.title()))),
        popup,
    );
}
