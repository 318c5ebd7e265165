//! The header: store, identity and roles, dispatcher and delivery state; the loud PAUSED
//! banner; the tab bar.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::dispatch::DispatcherState;

use crate::console::state::{AppState, Need, Tab};
use crate::console::theme::Theme;

fn dispatcher_text(state: &AppState) -> &'static str {
    match state.dispatcher {
        None => "no dispatcher here",
        Some(DispatcherState::Starting) => "dispatcher starting",
        Some(DispatcherState::Running) => "dispatcher running",
        Some(DispatcherState::Paused) => "dispatcher paused",
        Some(DispatcherState::Degraded) => "dispatcher DEGRADED (store failing)",
        Some(DispatcherState::Stopping) => "dispatcher stopping",
        Some(DispatcherState::Stopped) => "dispatcher stopped",
    }
}

/// The first line: who, where, and what the dispatcher does.
pub fn draw(frame: &mut Frame, area: Rect, state: &AppState, theme: Theme) {
    let user = &state.session.user;
    let roles: Vec<&str> = user.roles.iter().map(|r| r.as_str()).collect();
    let roles = if roles.is_empty() {
        "no roles".to_string()
    } else {
        roles.join(",")
    };
    let delivery = match state.paused {
        None => "delivery …",
        Some(true) => "delivery PAUSED",
        Some(false) => "delivery on",
    };
    let read_only = if state.session.read_only {
        " │ read-only"
    } else {
        ""
    };
    let waiting: i64 = state.undeliverable.iter().flatten().map(|w| w.count).sum();
    let waiting = if waiting > 0 {
        format!(" │ {waiting} undeliverable")
    } else {
        String::new()
    };
    let fixed = format!(
        " herald │ {} ({roles}) │ {delivery} │ {}{read_only}{waiting} │ ",
        user.username,
        dispatcher_text(state),
    );
    let width = usize::from(area.width);
    let room = width.saturating_sub(fixed.chars().count());
    let text = format!("{fixed}{}", keep_end(&state.session.store_url, room));
    let padded = format!("{text:<width$}");
    frame.render_widget(Paragraph::new(Line::styled(padded, theme.header())), area);
}

/// `text`, or its end after `…` when longer than `room` characters.
fn keep_end(text: &str, room: usize) -> String {
    let len = text.chars().count();
    if len <= room {
        return text.to_string();
    }
    if room == 0 {
        return String::new();
    }
    let tail: String = text.chars().skip(len - (room - 1)).collect();
    format!("…{tail}")
}

/// The PAUSED banner, across the whole width.
pub fn draw_paused(frame: &mut Frame, area: Rect, state: &AppState, theme: Theme) {
    let can_resume = state.session.can(Need::QueueWatcher) && !state.session.read_only;
    let text = format!(
        " ■ PAUSED ■  nothing is delivered on any replica{}",
        if can_resume { " — P resumes" } else { "" }
    );
    let width = usize::from(area.width);
    frame.render_widget(
        Paragraph::new(Line::styled(format!("{text:<width$}"), theme.paused())),
        area,
    );
}

/// The tab bar: number keys and titles, the current tab highlighted.
pub fn draw_tabs(frame: &mut Frame, area: Rect, state: &AppState, theme: Theme) {
    let mut spans = vec![Span::raw(" ")];
    for (i, tab) in Tab::ALL.iter().enumerate() {
        let mut title = format!("{} {}", i + 1, tab.title());
        if *tab == Tab::Inbox {
            let unread = state.inbox.unread();
            if unread > 0 {
                title.push_str(&format!(" ({unread})"));
            }
        }
        let style = if *tab == state.tab {
            theme.tab_selected()
        } else {
            theme.dim()
        };
        spans.push(Span::styled(title, style));
        spans.push(Span::raw("  "));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_store_urls_keep_their_end() {
        assert_eq!(keep_end("sqlite://x.db", 20), "sqlite://x.db");
        assert_eq!(keep_end("sqlite:///srv/herald.db", 10), "…herald.db");
        assert_eq!(keep_end("abc", 0), "");
    }
}
