//! Styles, with colour or (for `NO_COLOR`) without any: then only bold, reverse and
//! underline carry meaning.

use ratatui::style::{Color, Modifier, Style};

use crate::model::MessageState;

/// The console's styles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    /// Whether colours are used at all.
    pub color: bool,
}

impl Theme {
    /// Colours unless `NO_COLOR` is set to anything but the empty string (no-color.org).
    pub fn from_env() -> Theme {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Theme { color: !no_color }
    }

    /// For a terminal that is not this process's (an SSH session's): colours unless its
    /// `NO_COLOR` is set to anything but the empty string, or its `TERM` is `dumb`.
    pub fn for_terminal(no_color: Option<&str>, term: &str) -> Theme {
        let no_color = no_color.is_some_and(|v| !v.is_empty()) || term == "dumb";
        Theme { color: !no_color }
    }

    /// With colours.
    pub fn colored() -> Theme {
        Theme { color: true }
    }

    /// Without any colour.
    pub fn plain() -> Theme {
        Theme { color: false }
    }

    fn fg(self, color: Color) -> Style {
        if self.color {
            Style::new().fg(color)
        } else {
            Style::new()
        }
    }

    /// The PAUSED banner: white on red, bold; reversed without colour.
    pub fn paused(self) -> Style {
        let style = Style::new().add_modifier(Modifier::BOLD);
        if self.color {
            style.fg(Color::White).bg(Color::Red)
        } else {
            style.add_modifier(Modifier::REVERSED)
        }
    }

    /// The header line.
    pub fn header(self) -> Style {
        if self.color {
            Style::new().fg(Color::Black).bg(Color::Cyan)
        } else {
            Style::new().add_modifier(Modifier::REVERSED)
        }
    }

    /// The selected tab's title.
    pub fn tab_selected(self) -> Style {
        self.fg(Color::Yellow)
            .add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
    }

    /// A selected row.
    pub fn selected(self) -> Style {
        if self.color {
            Style::new()
                .bg(Color::DarkGray)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::REVERSED)
        }
    }

    /// Column titles.
    pub fn column_title(self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    /// A key in hints.
    pub fn key(self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    /// Secondary text.
    pub fn dim(self) -> Style {
        if self.color {
            Style::new().fg(Color::DarkGray)
        } else {
            Style::new()
        }
    }

    /// A block's title.
    pub fn title(self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }

    /// An error line.
    pub fn error(self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }

    /// Something fine.
    pub fn ok(self) -> Style {
        self.fg(Color::Green)
    }

    /// Something to look at.
    pub fn warn(self) -> Style {
        self.fg(Color::Yellow)
    }

    /// A message state: failures red (permanent) and yellow (temporary), sent green.
    pub fn state(self, state: MessageState) -> Style {
        match state {
            MessageState::PermanentFailure => self.error(),
            MessageState::TemporaryFailure => self.warn(),
            MessageState::Sent => self.ok(),
            MessageState::Leased => self.fg(Color::Blue),
            MessageState::Pending => Style::new(),
            MessageState::Inhibited => self.dim(),
        }
    }
}
