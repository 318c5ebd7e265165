//! The Delivery tab: each event's delivery method. Owners cycle it (`m`) or reset it to the
//! deployment default (`x`); the change is saved at once. Everyone else sees it read-only.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row};

use crate::model::Method;

use crate::console::action::Effect;
use crate::console::events::method_text;
use crate::console::state::{AppState, Need};
use crate::console::theme::Theme;
use crate::console::view::{GroupColumn, draw_note, list_table, table_state};

/// The methods an event can be set to, in cycling order; `None` is the deployment default.
/// (The inbox copy is not a method of its own: every event goes there when enabled.)
const CYCLE: [Option<Method>; 5] = [
    None,
    Some(Method::Smtp),
    Some(Method::Webhook),
    Some(Method::SlackWebhook),
    Some(Method::SlackApi),
];

/// The method after `current` in the cycle.
pub fn next_method(current: Option<Method>) -> Option<Method> {
    let at = CYCLE.iter().position(|m| *m == current).unwrap_or(0);
    CYCLE[(at + 1) % CYCLE.len()]
}

/// `m`: saves the next method for the selected event.
pub fn cycle(state: &mut AppState) -> Option<Effect> {
    let event = state.events.catalog.get(state.events.delivery_selected)?;
    let method = next_method(event.method);
    let name = event.spec.name.clone();
    state.say(format!(
        "setting {name} to {}…",
        method_text(method, state.session.default_method)
    ));
    Some(Effect::SetEventMethod {
        event: name,
        method,
    })
}

/// `x`: resets the selected event to the deployment default.
pub fn reset(state: &mut AppState) -> Option<Effect> {
    let event = state.events.catalog.get(state.events.delivery_selected)?;
    if event.method.is_none() {
        let name = event.spec.name.clone();
        state.say(format!("{name} already uses the default method"));
        return None;
    }
    let name = event.spec.name.clone();
    state.say(format!("resetting {name} to the default…"));
    Some(Effect::SetEventMethod {
        event: name,
        method: None,
    })
}

/// Applies a saved method to the catalog; true when something changed.
pub fn method_saved(state: &mut AppState, event: &str, method: Option<Method>) -> bool {
    let default = state.session.default_method;
    let Some(e) = state
        .events
        .catalog
        .iter_mut()
        .find(|e| e.spec.name == event)
    else {
        return false;
    };
    e.method = method;
    state.say(format!(
        "{event} now goes by {}",
        method_text(method, default)
    ));
    true
}

/// Draws the Delivery tab.
pub fn draw(frame: &mut Frame, area: Rect, state: &AppState, theme: Theme) {
    let events = &state.events;
    let editable = state.session.can(Need::Owner) && !state.session.read_only;
    let [note, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    let default = state.session.default_method;
    let text = if editable {
        Line::from(vec![
            Span::raw(" Saved at once. Default method: "),
            Span::styled(default.as_str(), theme.title()),
        ])
    } else {
        Line::from(vec![
            Span::raw(" Read-only: owners change delivery methods. Default method: "),
            Span::styled(default.as_str(), theme.title()),
        ])
    };
    frame.render_widget(Paragraph::new(text), note);
    let title = "Delivery methods";
    if !events.loaded {
        draw_note(frame, body, title, "loading the catalog…", theme);
        return;
    }
    let mut groups = GroupColumn::default();
    let rows = events.catalog.iter().map(|e| {
        let group = groups.cell(&e.spec.group);
        let method = match e.method {
            Some(m) => Span::styled(m.to_string(), theme.title()),
            None => Span::raw(format!("{default} (default)")),
        };
        Row::new(vec![
            Line::raw(group),
            Line::raw(e.spec.name.clone()),
            Line::from(method),
            Line::raw(if e.method.is_some() { "overridden" } else { "" }),
        ])
    });
    let widths = [
        Constraint::Length(12),
        Constraint::Fill(1),
        Constraint::Length(super::events::method_width(&events.catalog, default)),
        Constraint::Length(10),
    ];
    let table = list_table(
        rows,
        widths,
        &["GROUP", "EVENT", "METHOD", ""],
        title,
        theme,
    );
    let mut ts = table_state(events.delivery_selected, events.catalog.len());
    frame.render_stateful_widget(table, body, &mut ts);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cycle_visits_every_method_but_the_inbox_and_comes_back_to_the_default() {
        let mut m = None;
        let mut seen = Vec::new();
        for _ in 0..CYCLE.len() {
            m = next_method(m);
            seen.push(m);
        }
        assert_eq!(m, None);
        assert!(!seen.contains(&Some(Method::Inbox)));
        assert_eq!(seen.len(), 5);
    }
}
