//! The footer: key hints from the action table, and the notice line (or the open prompt).

use ratatui::Frame;
use ratatui::layout::{Position, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::console::action::Action;
use crate::console::keymap::{self, ActionSpec};
use crate::console::state::{AppState, Overlay};
use crate::console::theme::Theme;
use crate::console::view::hint_line;

/// The hints for the keys that work now.
pub fn draw_hints(frame: &mut Frame, area: Rect, state: &AppState, theme: Theme) {
    let hints = fit(&keymap::footer_hints(state), usize::from(area.width));
    let line = hint_line(hints.iter().map(|s| (s.label, s.description)), theme);
    frame.render_widget(Paragraph::new(line), area);
}

/// The hints that fit in `width`, in table order: `?` and `q` always, then the others while
/// there is room.
pub fn fit(hints: &[&'static ActionSpec], width: usize) -> Vec<&'static ActionSpec> {
    let cost = |s: &ActionSpec| s.label.chars().count() + s.description.chars().count() + 3;
    let essential = |s: &ActionSpec| matches!(s.action, Action::Help | Action::Quit);
    let mut room =
        width.saturating_sub(hints.iter().filter(|s| essential(s)).map(|s| cost(s)).sum());
    hints
        .iter()
        .copied()
        .filter(|s| {
            if essential(s) {
                return true;
            }
            let fits = cost(s) <= room;
            if fits {
                room -= cost(s);
            }
            fits
        })
        .collect()
}

/// The last result or error, or the prompt being typed (with the cursor in it).
pub fn draw_notice(frame: &mut Frame, area: Rect, state: &AppState, theme: Theme) {
    if let Overlay::Prompt(prompt) = &state.overlay {
        let label = prompt.kind.label();
        let prefix = if label == ":" {
            ":".to_string()
        } else {
            format!("{label}: ")
        };
        let prefix_width = u16::try_from(prefix.chars().count()).unwrap_or(u16::MAX);
        let room = usize::from(area.width.saturating_sub(prefix_width + 1));
        let scroll = prompt.input.visual_scroll(room);
        let visible: String = prompt.input.value().chars().skip(scroll).collect();
        frame.render_widget(
            Paragraph::new(Line::from(vec![
                Span::styled(prefix, theme.key()),
                Span::raw(visible),
            ])),
            area,
        );
        let cursor = prompt.input.visual_cursor().saturating_sub(scroll);
        let x = area
            .x
            .saturating_add(prefix_width)
            .saturating_add(u16::try_from(cursor).unwrap_or(u16::MAX));
        frame.set_cursor_position(Position::new(x.min(area.right().saturating_sub(1)), area.y));
        return;
    }
    let Some(notice) = &state.notice else {
        return;
    };
    let style = if notice.error {
        theme.error()
    } else {
        theme.dim()
    };
    frame.render_widget(
        Paragraph::new(Line::styled(format!(" {}", notice.text), style)),
        area,
    );
}
