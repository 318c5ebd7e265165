//! Explain in the console (DESIGN §14): `x` on an event asks for users and labels
//! (`alice bob name=ws-1`), then shows what enqueueing it would do for every candidate
//! recipient — queued with its method, inhibited or skipped, each with its reason — from
//! `Service::explain`, which writes nothing. Esc goes back to the catalog.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Row, Wrap};

use crate::service::{Explanation, RoutingOutcome};

use crate::console::action::Effect;
use crate::console::state::{AppState, Overlay, Prompt, PromptKind};
use crate::console::theme::Theme;
use crate::console::view::{draw_note, list_table, pane};

/// What the Events tab's explain view holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExplainState {
    /// The event being explained, from `x` until the view is closed.
    pub event: Option<String>,
    /// The users and labels as typed.
    pub input: String,
    /// Whether the answer is awaited.
    pub running: bool,
    /// The answer, once in.
    pub shown: Option<Explanation>,
}

impl ExplainState {
    /// Whether the Events tab shows the explain view instead of the catalog.
    pub fn open(&self) -> bool {
        self.running || self.shown.is_some()
    }
}

/// `x`: asks for the users and labels to explain the selected event with.
pub fn ask(state: &mut AppState) {
    let Some(event) = state.events.selected_event() else {
        state.fail("no event selected");
        return;
    };
    state.explain.event = Some(event.spec.name.clone());
    state.overlay = Overlay::Prompt(Prompt {
        kind: PromptKind::Explain,
        input: tui_input::Input::new(state.explain.input.clone()),
    });
    state.say(format!(
        "explain {}: users and labels, e.g. alice bob name=ws-1 (Enter runs it)",
        event.spec.name
    ));
}

/// Splits typed text into users and `K=V` labels.
pub fn parse(text: &str) -> (Vec<String>, Vec<String>) {
    text.split_whitespace()
        .map(|word| word.trim_start_matches('@').to_string())
        .filter(|word| !word.is_empty())
        .partition(|word| !word.contains('='))
}

/// Enter in the prompt: the effect that explains the event with what was typed.
pub fn submit(state: &mut AppState, text: &str) -> Option<Effect> {
    state.overlay = Overlay::None;
    let event = state.explain.event.clone()?;
    let (users, labels) = parse(text);
    state.explain.input = text.trim().to_string();
    state.explain.running = true;
    state.explain.shown = None;
    state.say(format!("explaining {event}…"));
    Some(Effect::Explain {
        event,
        users,
        labels,
    })
}

/// The answer arrived.
pub fn explained(state: &mut AppState, explanation: Explanation) {
    state.explain.running = false;
    let queued = explanation
        .decisions
        .iter()
        .filter(|d| d.decision == RoutingOutcome::Queued)
        .count();
    state.say(format!(
        "{}: {queued} of {} would be queued; nothing was written",
        explanation.event,
        explanation.decisions.len()
    ));
    state.explain.shown = Some(explanation);
}

/// Esc: closes the view; true when it was open.
pub fn close(state: &mut AppState) -> bool {
    let open = state.explain.open();
    state.explain.running = false;
    state.explain.shown = None;
    open
}

/// Draws the explain view over the Events tab's area.
pub fn draw(frame: &mut Frame, area: Rect, state: &AppState, theme: Theme) {
    let x = &state.explain;
    let event = x.event.as_deref().unwrap_or("?");
    let title = if x.input.is_empty() {
        format!("Explain {event} (writes nothing; Esc back)")
    } else {
        format!("Explain {event} {} (writes nothing; Esc back)", x.input)
    };
    let Some(explanation) = &x.shown else {
        draw_note(frame, area, &title, "asking the router…", theme);
        return;
    };
    let warnings = explanation.warnings.len();
    let [table_area, warnings_area] = Layout::vertical([
        Constraint::Min(3),
        Constraint::Length(if warnings == 0 {
            0
        } else {
            u16::try_from(warnings + 2).unwrap_or(u16::MAX).min(6)
        }),
    ])
    .areas(area);
    if explanation.decisions.is_empty() {
        draw_note(frame, table_area, &title, "no candidate recipient", theme);
    } else {
        let rows = explanation.decisions.iter().map(|d| {
            let style = match d.decision {
                RoutingOutcome::Queued => theme.ok(),
                RoutingOutcome::Inhibited => theme.warn(),
                RoutingOutcome::Skipped => theme.dim(),
            };
            Row::new(vec![
                Line::raw(d.recipient.clone()),
                Line::raw(d.method.map_or("—".to_string(), |m| m.to_string())),
                Line::styled(d.decision.to_string(), style),
                Line::raw(d.reason.clone().unwrap_or_default()),
            ])
        });
        let widths = [
            Constraint::Length(18),
            Constraint::Length(13),
            Constraint::Length(9),
            Constraint::Fill(1),
        ];
        let header = &["RECIPIENT", "METHOD", "DECISION", "WHY"];
        let table = list_table(rows, widths, header, &title, theme);
        frame.render_widget(table, table_area);
    }
    if warnings > 0 {
        let lines: Vec<Line> = explanation
            .warnings
            .iter()
            .map(|w| Line::styled(w.clone(), theme.warn()))
            .collect();
        frame.render_widget(
            Paragraph::new(lines)
                .wrap(Wrap { trim: true })
                .block(pane("Warnings", theme)),
            warnings_area,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_with_an_equals_sign_are_labels_the_rest_users() {
        let (users, labels) = parse("  alice @bob name=ws-1 owner=carol ");
        assert_eq!(users, ["alice", "bob"]);
        assert_eq!(labels, ["name=ws-1", "owner=carol"]);
        assert_eq!(parse(""), (vec![], vec![]));
    }
}
