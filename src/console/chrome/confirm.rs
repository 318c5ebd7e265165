//! The confirmation dialog: what will happen and how many, then `y` or `n`.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};

use crate::console::keymap;
use crate::console::state::{AppState, Confirm};
use crate::console::theme::Theme;
use crate::console::view::{centered, hint_line};

/// Draws the dialog in the middle of `area`.
pub fn draw_confirm(
    frame: &mut Frame,
    area: Rect,
    state: &AppState,
    confirm: &Confirm,
    theme: Theme,
) {
    let width = 64.min(area.width);
    let inner = usize::from(width.saturating_sub(2)).max(1);
    let wrapped: usize = confirm
        .question
        .lines()
        .map(|l| l.chars().count().div_ceil(inner).max(1))
        .sum();
    let height = u16::try_from(wrapped + 4).unwrap_or(u16::MAX);
    let popup = centered(area, width, height);
    let mut lines: Vec<Line> = confirm
        .question
        .lines()
        .map(|l| Line::raw(l.to_string()))
        .collect();
    lines.push(Line::default());
    let hints = keymap::footer_hints(state);
    lines.push(hint_line(
        hints.iter().map(|s| (s.label, s.description)),
        theme,
    ));
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }).block(
            Block::bordered()
                .border_style(theme.warn())
                .title(Span::styled(format!(" {} ", confirm.title), theme.title())),
        ),
        popup,
    );
}
