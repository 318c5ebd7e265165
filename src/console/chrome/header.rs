//! The header: store, identity and roles, dispatcher and delivery state; the loud PAUSED
//! banner, which also lists every scoped pause (one method or target held); the tab bar.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::dispatch::DispatcherState;

use crate::console::channels::scope_text;
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

/// The PAUSED banner, across the whole width: everything held, or the scoped pauses.
pub fn draw_paused(frame: &mut Frame, area: Rect, state: &AppState, theme: Theme) {
    let can_resume = state.session.can(Need::QueueWatcher) && !state.session.read_only;
    let width = usize::from(area.width);
    let held: Vec<String> = state
        .pauses
        .iter()
        .flatten()
        .map(|p| scope_text(p.scope, &p.name))
        .collect();
    let text = if state.paused == Some(true) {
        let lead = format!(
            " ■ PAUSED ■  nothing is delivered on any replica{}",
            if can_resume { " — P resumes" } else { "" }
        );
        if held.is_empty() {
            lead
        } else {
            let room = width.saturating_sub(lead.chars().count() + " │ also ".len());
            format!("{lead} │ also {}", fit_list(&held, room))
        }
    } else {
        let tail = if can_resume {
            " — p in Troubleshoot resumes"
        } else {
            ""
        };
        let lead = " ■ PAUSED ■  ";
        let room = width.saturating_sub(lead.chars().count() + tail.chars().count());
        format!("{lead}{}{tail}", fit_list(&held, room))
    };
    frame.render_widget(
        Paragraph::new(Line::styled(format!("{text:<width$}"), theme.paused())),
        area,
    );
}

/// `items` joined by `, ` within `room` characters: as many as fit, then `+N more`; only how
/// many when not even the first fits.
fn fit_list(items: &[String], room: usize) -> String {
    let first = items.first().map_or(0, |i| i.chars().count());
    let more = if items.len() > 1 {
        format!(", +{} more", items.len() - 1).len()
    } else {
        0
    };
    if first + more > room {
        return match items.len() {
            1 => "1 channel".to_string(),
            n => format!("{n} channels"),
        };
    }
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let left = items.len() - i - 1;
        let more = if left == 0 {
            String::new()
        } else {
            format!(", +{left} more")
        };
        let needed = out.chars().count() + sep.len() + item.chars().count() + more.chars().count();
        if needed > room {
            out.push_str(&format!(", +{} more", items.len() - i));
            return out;
        }
        out.push_str(sep);
        out.push_str(item);
    }
    out
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
    fn scoped_pauses_are_listed_until_the_room_runs_out() {
        let items: Vec<String> = ["method smtp", "target ops", "target alice/dm"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            fit_list(&items, 80),
            "method smtp, target ops, target alice/dm"
        );
        assert_eq!(fit_list(&items, 32), "method smtp, target ops, +1 more");
        assert_eq!(fit_list(&items, 20), "method smtp, +2 more");
        assert_eq!(fit_list(&items, 12), "3 channels");
        assert_eq!(fit_list(&[], 12), "");
    }

    #[test]
    fn long_store_urls_keep_their_end() {
        assert_eq!(keep_end("sqlite://x.db", 20), "sqlite://x.db");
        assert_eq!(keep_end("sqlite:///srv/herald.db", 10), "…herald.db");
        assert_eq!(keep_end("abc", 0), "");
    }
}
