//! `update(state, action) -> effects`: the console's only way to change. Pure: no I/O, no
//! awaiting; what needs the store comes back as [`Effect`]s for the driver.

use tui_input::Input;

use crate::console::action::{Action, Effect, Load};
use crate::console::keymap;
use crate::console::state::{AppState, Overlay, Prompt, PromptKind, Tab};
use crate::console::{
    audit, channels, delivery, events, explain, filter, inbox, optouts, queue, troubleshoot,
};

/// The effects a fresh console starts with: the pause flag, the inbox, the first tab.
pub fn init(state: &mut AppState) -> Vec<Effect> {
    let mut fx = Vec::new();
    request(state, &mut fx, Effect::LoadSettings);
    // The inbox once, for the unread count in the tab bar.
    request(state, &mut fx, Effect::LoadInbox);
    enter_tab(state, &mut fx);
    fx
}

/// Applies `action` and returns the work it asks for. Actions the session may not run (by
/// role or `--read-only`) change nothing but the notice.
pub fn update(state: &mut AppState, action: Action) -> Vec<Effect> {
    let mut fx = Vec::new();
    if !keymap::allowed(state, &action) {
        state.fail(if state.session.read_only {
            "read-only console: that would change something".to_string()
        } else {
            format!(
                "not available to {} (the owner or oncall role decides)",
                state.session.user.username
            )
        });
        state.revision += 1;
        return fx;
    }
    if let Some(load) = action.answers() {
        state.loading.remove(&load);
    }
    if apply(state, action, &mut fx) {
        state.revision += 1;
    }
    fx
}

/// Queues a periodic read unless one of its kind is in flight.
fn request(state: &mut AppState, fx: &mut Vec<Effect>, effect: Effect) {
    if let Some(load) = effect.load()
        && !state.loading.insert(load)
    {
        return;
    }
    fx.push(effect);
}

/// Queues a read the person asked for: it runs even if a periodic one is in flight.
fn demand(state: &mut AppState, fx: &mut Vec<Effect>, effect: Effect) {
    if let Some(load) = effect.load() {
        state.loading.insert(load);
    }
    fx.push(effect);
}

/// Reads what the current tab shows and has not read yet (or reads live).
fn enter_tab(state: &mut AppState, fx: &mut Vec<Effect>) {
    match state.tab {
        Tab::Events | Tab::Delivery if !state.events.loaded => fx.push(Effect::LoadEvents),
        Tab::OptOuts if !state.optouts.loaded => fx.push(optouts::load(state)),
        _ => {}
    }
    refresh(state, fx);
}

/// How often the header's count of undeliverable messages is refreshed (a scan of the
/// waiting messages, so not every tick).
const UNDELIVERABLE_REFRESH_SECS: i64 = 15;

/// The periodic reads for what is on screen.
fn refresh(state: &mut AppState, fx: &mut Vec<Effect>) {
    request(state, fx, Effect::LoadSettings);
    request(state, fx, Effect::LoadPauses);
    let watcher = state.watches_queue();
    if watcher
        && state
            .undeliverable_at
            .is_none_or(|at| (state.now - at).num_seconds() >= UNDELIVERABLE_REFRESH_SECS)
    {
        request(state, fx, Effect::LoadUndeliverable);
    }
    match state.tab {
        Tab::Events if watcher && state.events.volumes_stale(state.now) => {
            request(state, fx, Effect::LoadVolumes);
        }
        Tab::Queue => {
            let page = queue::page_effect(state);
            request(state, fx, page);
            if watcher {
                request(state, fx, Effect::LoadCounts);
                request(state, fx, Effect::LoadThroughput);
            }
        }
        Tab::Troubleshoot if watcher => {
            if troubleshoot::reasons_stale(&state.troubleshoot, state.now) {
                request(state, fx, Effect::LoadReasons);
            }
            request(state, fx, Effect::LoadReplicas);
            if state.audit.stale(state.now) {
                request(state, fx, Effect::LoadAudit);
            }
            if state.channels.stale(state.now) {
                request(state, fx, Effect::LoadChannels);
            }
        }
        Tab::Inbox => request(state, fx, Effect::LoadInbox),
        _ => {}
    }
}

fn go_to(state: &mut AppState, tab: Tab, fx: &mut Vec<Effect>) {
    state.tab = tab;
    state.overlay = Overlay::None;
    enter_tab(state, fx);
}

fn open_prompt(state: &mut AppState, kind: PromptKind, text: &str) {
    state.overlay = Overlay::Prompt(Prompt {
        kind,
        input: Input::new(text.to_string()),
    });
}

/// A list selection moved by `action` over `len` rows (a page is 10).
pub fn moved(selected: usize, len: usize, action: &Action) -> usize {
    let last = len.saturating_sub(1);
    match action {
        Action::Up => selected.saturating_sub(1),
        Action::Down => (selected + 1).min(last),
        Action::PageUp => selected.saturating_sub(10),
        Action::PageDown => (selected + 10).min(last),
        Action::Top => 0,
        Action::Bottom => last,
        _ => selected,
    }
    .min(last)
}

fn navigate(state: &mut AppState, action: &Action, fx: &mut Vec<Effect>) {
    if let Overlay::Help(scroll) = &mut state.overlay {
        *scroll = match action {
            Action::Up => scroll.saturating_sub(1),
            Action::Down => scroll.saturating_add(1),
            _ => *scroll,
        };
        return;
    }
    match state.tab {
        Tab::Events if !state.events.detail => {
            state.events.selected = moved(state.events.selected, state.events.catalog.len(), action)
        }
        Tab::Events => {}
        Tab::Delivery => {
            state.events.delivery_selected = moved(
                state.events.delivery_selected,
                state.events.catalog.len(),
                action,
            )
        }
        Tab::OptOuts => {
            state.optouts.selected = moved(state.optouts.selected, state.optouts.rows.len(), action)
        }
        Tab::Queue => {
            if let Some(effect) = queue::navigate(state, action) {
                demand(state, fx, effect);
            }
        }
        Tab::Troubleshoot if !state.channels.reasons_focused => {
            let len = state.channels.rows.as_ref().map_or(0, Vec::len);
            state.channels.selected = moved(state.channels.selected, len, action);
        }
        Tab::Troubleshoot => {
            let len = state.troubleshoot.reasons.as_ref().map_or(0, Vec::len);
            state.troubleshoot.selected = moved(state.troubleshoot.selected, len, action);
        }
        Tab::Inbox => {
            state.inbox.selected = moved(state.inbox.selected, state.inbox.entries.len(), action)
        }
    }
}

fn open(state: &mut AppState, fx: &mut Vec<Effect>) {
    match state.tab {
        Tab::Events => state.events.detail = state.events.selected_event().is_some(),
        Tab::Queue => {
            if let Some(effect) = queue::open(state) {
                fx.push(effect);
            }
        }
        Tab::Troubleshoot => {
            let jump = if state.channels.reasons_focused {
                troubleshoot::jump(state)
            } else {
                channels::jump(state)
            };
            if let Some(effect) = jump {
                demand(state, fx, effect);
                refresh(state, fx);
            }
        }
        Tab::Inbox => {
            state.inbox.detail = !state.inbox.entries.is_empty();
            if let Some(e) = state.inbox.entries.get(state.inbox.selected)
                && e.read_at.is_none()
                && !state.session.read_only
            {
                fx.push(Effect::MarkInbox {
                    id: e.id,
                    read: true,
                });
            }
        }
        Tab::Delivery | Tab::OptOuts => {}
    }
}

/// Esc: closes the innermost thing open.
fn back(state: &mut AppState) {
    match state.overlay {
        Overlay::Confirm(_) => {
            state.overlay = Overlay::None;
            state.say("cancelled");
            return;
        }
        Overlay::Help(_) | Overlay::Prompt(_) => {
            state.overlay = Overlay::None;
            return;
        }
        Overlay::None => {}
    }
    match state.tab {
        Tab::Events if state.explain.open() => {
            explain::close(state);
        }
        Tab::Events if state.events.detail => state.events.detail = false,
        Tab::Queue if state.queue.detail.is_some() => {
            state.queue.detail = None;
            state.queue.detail_scroll = 0;
        }
        Tab::Queue if !state.queue.marked.is_empty() => {
            state.queue.marked.clear();
            state.say("marks cleared");
        }
        Tab::Inbox if state.inbox.detail => state.inbox.detail = false,
        _ => state.notice = None,
    }
}

fn submit(state: &mut AppState, fx: &mut Vec<Effect>) {
    let Overlay::Prompt(prompt) = &state.overlay else {
        return;
    };
    let kind = prompt.kind;
    let text = prompt.input.value().to_string();
    match kind {
        PromptKind::QueueFilter => match filter::parse(&text) {
            Ok(query) => {
                state.overlay = Overlay::None;
                let effect = queue::apply_query(state, query, text.trim().to_string());
                demand(state, fx, effect);
                state.notice = None;
            }
            Err(why) => state.fail(why),
        },
        PromptKind::LogFilter => match troubleshoot::set_log_filter(state, &text) {
            Ok(()) => state.overlay = Overlay::None,
            Err(why) => state.fail(why),
        },
        PromptKind::OptOutUser => {
            state.overlay = Overlay::None;
            state.optouts.subject = optouts::subject_from(state, &text);
            state.optouts.loaded = false;
            state.optouts.selected = 0;
            fx.push(optouts::load(state));
        }
        PromptKind::Command => {
            state.overlay = Overlay::None;
            run_command(state, text.trim(), fx);
        }
        PromptKind::Explain => fx.extend(explain::submit(state, &text)),
    }
}

fn run_command(state: &mut AppState, command: &str, fx: &mut Vec<Effect>) {
    if command.is_empty() {
        return;
    }
    match keymap::command_action(command) {
        Some(action) => {
            apply(state, action, fx);
        }
        None => state.fail(format!(
            "unknown command `:{command}`; try {}",
            keymap::command_list(true)
        )),
    }
}

/// Applies one action; true when something visible changed.
fn apply(state: &mut AppState, action: Action, fx: &mut Vec<Effect>) -> bool {
    match action {
        Action::Quit => state.quit = true,
        Action::Help => {
            state.overlay = match state.overlay {
                Overlay::Help(_) => Overlay::None,
                _ => Overlay::Help(0),
            }
        }
        Action::NextTab => go_to(state, state.tab.next(), fx),
        Action::PrevTab => go_to(state, state.tab.prev(), fx),
        Action::GoTab(tab) => go_to(state, tab, fx),
        Action::Command => open_prompt(state, PromptKind::Command, ""),
        Action::Up
        | Action::Down
        | Action::PageUp
        | Action::PageDown
        | Action::Top
        | Action::Bottom => navigate(state, &action, fx),
        Action::Open => open(state, fx),
        Action::Back => back(state),
        Action::Filter => match state.tab {
            Tab::Queue => {
                let text = state.queue.filter_text.clone();
                open_prompt(state, PromptKind::QueueFilter, &text);
            }
            Tab::Troubleshoot => {
                let text = state.troubleshoot.log_filter_text.clone();
                open_prompt(state, PromptKind::LogFilter, &text);
            }
            _ => return false,
        },
        Action::TogglePause => match state.paused {
            None => state.fail("the pause flag has not been read yet; try again in a moment"),
            Some(paused) => {
                state.overlay = Overlay::Confirm(crate::console::state::Confirm {
                    title: if paused {
                        "Resume delivery"
                    } else {
                        "Pause delivery"
                    }
                    .into(),
                    question: if paused {
                        "Resume delivery on every replica?\nQueued messages start going out at once.".into()
                    } else {
                        "Pause delivery on every replica?\nMessages keep queueing; nothing is sent until resumed.".into()
                    },
                    effect: Effect::SetPaused(!paused),
                })
            }
        },
        Action::SendTest => fx.extend(events::send_test(state)),
        Action::CycleMethod => fx.extend(delivery::cycle(state)),
        Action::ResetMethod => fx.extend(delivery::reset(state)),
        Action::ToggleOptOut => fx.extend(optouts::toggle(state)),
        Action::SwitchUser => {
            let current = state.optouts.subject.clone().unwrap_or_default();
            open_prompt(state, PromptKind::OptOutUser, &current);
        }
        Action::ToggleMark => queue::toggle_mark(state),
        Action::RetryOne => queue::retry_one(state),
        Action::RetryMarked => queue::retry_marked(state),
        Action::RetryAll => fx.extend(queue::retry_all(state)),
        Action::RunDoctor => {
            state.troubleshoot.doctor_running = true;
            fx.push(Effect::RunDoctor);
        }
        Action::ToggleRead => fx.extend(inbox::toggle_read(state)),
        Action::ToggleAudit => {
            audit::toggle(state);
            refresh(state, fx);
        }
        Action::SwitchPane => {
            state.channels.reasons_focused = !state.channels.reasons_focused;
        }
        Action::ToggleChannelPause => {
            if state.channels.reasons_focused {
                state.fail("select a channel first (←/→ moves to the channels)");
            } else {
                channels::ask_toggle_pause(state);
            }
        }
        Action::Explain => explain::ask(state),
        Action::Refresh => {
            state.loading.clear();
            state.events.volumes_at = None;
            state.troubleshoot.reasons_at = None;
            state.audit.read_at = None;
            state.channels.read_at = None;
            if state.tab == Tab::OptOuts {
                fx.push(optouts::load(state));
            }
            if matches!(state.tab, Tab::Events | Tab::Delivery) {
                fx.push(Effect::LoadEvents);
            }
            refresh(state, fx);
        }
        Action::ConfirmYes => {
            if let Overlay::Confirm(confirm) = std::mem::take(&mut state.overlay) {
                state.say("working…");
                fx.push(confirm.effect);
            }
        }
        Action::ConfirmNo => back(state),
        Action::SubmitInput => submit(state, fx),
        Action::Edit(request) => match &mut state.overlay {
            Overlay::Prompt(prompt) => return prompt.input.handle(request).is_some(),
            _ => return false,
        },
        Action::Tick(now) => {
            state.now = now;
            refresh(state, fx);
        }
        Action::Resized => {}
        Action::LogsAppended(lines) => return troubleshoot::append_logs(state, lines),
        Action::DispatcherChanged(s) => {
            if state.dispatcher == Some(s) {
                return false;
            }
            state.dispatcher = Some(s);
        }
        result => return crate::console::results::apply(state, result, fx),
    }
    true
}

/// Whether the load of `kind` is in flight (for tests and the runner).
pub fn is_loading(state: &AppState, kind: Load) -> bool {
    state.loading.contains(&kind)
}
