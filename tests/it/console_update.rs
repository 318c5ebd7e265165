//! `update(state, action) -> effects` without a terminal: every action, the permission cases
//! (a member edits no delivery method, pauses nothing, retries nothing; on-call may pause;
//! `--read-only` has no action that changes anything), and the key table behind them.

use crate::common::console as console_fixtures;
pub mod cockpit;
mod keys;
mod queue;

use console_fixtures::{feed, id, loaded, member, message, now, on_tab, oncall, owner, page};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use herald::console::action::{Action, Effect, Load};
use herald::console::keymap::{self, ACTIONS};
use herald::console::queue::PAGE_SIZE;
use herald::console::state::{AppState, Overlay, Tab};
use herald::console::update::{init, update};
use herald::model::{MessageState, Method};
use herald::service::read_models::QueueQuery;
use herald::telemetry::LogLine;
use tui_input::InputRequest;

fn key(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
}

fn type_text(state: &mut AppState, text: &str) {
    for c in text.chars() {
        feed(state, Action::Edit(InputRequest::InsertChar(c)));
    }
}

/// Types `:COMMAND` and Enter.
fn run_command(state: &mut AppState, command: &str) {
    feed(state, Action::Command);
    type_text(state, command);
    feed(state, Action::SubmitInput);
}

/// A member on `tab` (in a read-only session if `read_only`) is refused `action`.
#[track_caller]
fn member_refused(tab: Tab, read_only: bool, action: Action) {
    let mut state = on_tab(member(), false, tab);
    state.session.read_only = read_only;
    refused(&mut state, action);
}

#[track_caller]
fn refused(state: &mut AppState, action: Action) {
    let before = state.overlay.clone();
    let effects = update(state, action.clone());
    assert!(effects.is_empty(), "{action:?} ran: {effects:?}");
    assert!(
        matches!(
            (&before, &state.overlay),
            (Overlay::None, Overlay::None) | (Overlay::Prompt(_), Overlay::Prompt(_))
        ),
        "{action:?} opened {:?}",
        state.overlay
    );
    assert!(
        state.notice.as_ref().is_some_and(|n| n.error),
        "{action:?} said nothing"
    );
}

/// `action` asks for exactly one effect: `effect`.
#[track_caller]
fn asks(state: &mut AppState, action: Action, effect: Effect) {
    assert_eq!(update(state, action), vec![effect]);
}

fn confirm_effect(state: &AppState) -> Effect {
    match &state.overlay {
        Overlay::Confirm(c) => c.effect.clone(),
        other => panic!("expected a confirmation, got {other:?}"),
    }
}

fn confirm_question(state: &AppState) -> String {
    match &state.overlay {
        Overlay::Confirm(c) => c.question.clone(),
        other => panic!("expected a confirmation, got {other:?}"),
    }
}

#[test]
fn a_fresh_console_reads_the_pause_flag_and_the_catalog() {
    let mut s = AppState::new(console_fixtures::session(owner(), false), now());
    let effects = init(&mut s);
    assert!(effects.contains(&Effect::LoadSettings));
    assert!(effects.contains(&Effect::LoadEvents));
    assert!(effects.contains(&Effect::LoadVolumes));
    let mut m = AppState::new(console_fixtures::session(member(), false), now());
    assert!(
        !init(&mut m).contains(&Effect::LoadVolumes),
        "volumes are for watchers"
    );
}

#[test]
fn switching_tabs_reads_what_the_tab_shows_and_members_get_no_counts() {
    let mut s = loaded(owner(), false, false);
    let effects = update(&mut s, Action::GoTab(Tab::Queue));
    assert_eq!(s.tab, Tab::Queue);
    assert!(effects.iter().any(|e| matches!(e, Effect::LoadPage { .. })));
    assert!(effects.contains(&Effect::LoadCounts));
    assert!(effects.contains(&Effect::LoadThroughput));

    let mut m = loaded(member(), false, false);
    let effects = update(&mut m, Action::GoTab(Tab::Queue));
    assert!(effects.iter().any(|e| matches!(e, Effect::LoadPage { .. })));
    assert!(!effects.contains(&Effect::LoadCounts));
    let effects = update(&mut m, Action::GoTab(Tab::Troubleshoot));
    assert!(!effects.contains(&Effect::LoadReasons));

    feed(&mut s, Action::NextTab);
    assert_eq!(s.tab, Tab::Troubleshoot);
    feed(&mut s, Action::GoTab(Tab::Events));
    feed(&mut s, Action::PrevTab);
    assert_eq!(s.tab, Tab::Inbox, "tabs wrap");
}

#[test]
fn unchanged_results_do_not_redraw() {
    let mut s = on_tab(owner(), false, Tab::Queue);
    let revision = s.revision;
    feed(&mut s, Action::CountsLoaded(Ok(console_fixtures::counts())));
    feed(&mut s, Action::SettingsLoaded(Ok(false)));
    feed(
        &mut s,
        Action::DispatcherChanged(herald::dispatch::DispatcherState::Running),
    );
    assert_eq!(s.revision, revision);
    feed(&mut s, Action::SettingsLoaded(Ok(true)));
    assert!(s.revision > revision);
}

#[test]
fn quit_help_and_command_mode() {
    let mut s = loaded(owner(), false, false);
    feed(&mut s, Action::Help);
    assert!(matches!(s.overlay, Overlay::Help(0)));
    feed(&mut s, Action::Down);
    assert!(matches!(s.overlay, Overlay::Help(1)));
    feed(&mut s, Action::Up);
    feed(&mut s, Action::Back);
    assert!(matches!(s.overlay, Overlay::None));

    for (command, tab) in [
        ("queue", Tab::Queue),
        ("logs", Tab::Troubleshoot),
        ("events", Tab::Events),
        ("inbox", Tab::Inbox),
        ("optouts", Tab::OptOuts),
        ("delivery", Tab::Delivery),
    ] {
        run_command(&mut s, command);
        assert_eq!(s.tab, tab, ":{command}");
    }
    run_command(&mut s, "frobnicate");
    assert!(
        s.notice
            .as_ref()
            .is_some_and(|n| n.error && n.text.contains("unknown command"))
    );
    run_command(&mut s, "q");
    assert!(s.quit);

    let mut s = loaded(member(), false, false);
    feed(&mut s, Action::Quit);
    assert!(s.quit);
}

#[test]
fn moving_stays_within_the_list() {
    let mut s = on_tab(owner(), false, Tab::Events);
    let len = s.events.catalog.len();
    feed(&mut s, Action::Up);
    assert_eq!(s.events.selected, 0);
    feed(&mut s, Action::Down);
    assert_eq!(s.events.selected, 1);
    feed(&mut s, Action::PageDown);
    assert_eq!(s.events.selected, 11);
    feed(&mut s, Action::Bottom);
    assert_eq!(s.events.selected, len - 1);
    feed(&mut s, Action::Down);
    assert_eq!(s.events.selected, len - 1);
    feed(&mut s, Action::PageUp);
    feed(&mut s, Action::Top);
    assert_eq!(s.events.selected, 0);
    for tab in [Tab::Delivery, Tab::OptOuts, Tab::Troubleshoot, Tab::Inbox] {
        s.tab = tab;
        feed(&mut s, Action::Bottom);
        feed(&mut s, Action::Down);
    }
    assert_eq!(s.inbox.selected, 1);
    assert_eq!(
        s.channels.selected,
        console_fixtures::channel_rows().len() - 1,
        "the channels pane has the keys first"
    );
    s.tab = Tab::Troubleshoot;
    feed(&mut s, Action::SwitchPane);
    feed(&mut s, Action::Bottom);
    feed(&mut s, Action::Down);
    assert_eq!(s.troubleshoot.selected, 2);
}

#[test]
fn details_open_and_close() {
    let mut s = on_tab(owner(), false, Tab::Events);
    feed(&mut s, Action::Open);
    assert!(s.events.detail);
    feed(&mut s, Action::Back);
    assert!(!s.events.detail);

    let mut s = on_tab(owner(), false, Tab::Queue);
    let effects = update(&mut s, Action::Open);
    assert_eq!(effects, vec![Effect::LoadMessage(page()[0].id)]);
    feed(
        &mut s,
        Action::MessageLoaded(Ok(Box::new(console_fixtures::detail()))),
    );
    assert!(s.queue.detail.is_some());
    feed(&mut s, Action::Down);
    assert_eq!(s.queue.detail_scroll, 1);
    feed(&mut s, Action::Back);
    assert!(s.queue.detail.is_none());

    let mut s = on_tab(member(), false, Tab::Inbox);
    let effects = update(&mut s, Action::Open);
    assert!(s.inbox.detail);
    assert_eq!(
        effects,
        vec![Effect::MarkInbox {
            id: id(500),
            read: true
        }],
        "reading marks read"
    );
    feed(&mut s, Action::Back);
    assert!(!s.inbox.detail);
}

#[test]
fn the_log_filter_is_a_regex() {
    let mut s = on_tab(owner(), false, Tab::Troubleshoot);
    feed(&mut s, Action::Filter);
    type_text(&mut s, "deliver(");
    feed(&mut s, Action::SubmitInput);
    assert!(
        s.notice
            .as_ref()
            .is_some_and(|n| n.error && n.text.contains("regular expression"))
    );
    feed(&mut s, Action::Back);
    feed(&mut s, Action::Filter);
    feed(&mut s, Action::Edit(InputRequest::DeleteLine));
    type_text(&mut s, "WARN.*webhook");
    feed(&mut s, Action::SubmitInput);
    assert_eq!(s.troubleshoot.log_filter_text, "WARN.*webhook");
    let lines = vec![
        LogLine {
            time: now(),
            level: tracing::Level::INFO,
            target: "herald".into(),
            text: "quiet".into(),
        };
        herald::console::troubleshoot::LOG_KEEP + 10
    ];
    feed(&mut s, Action::LogsAppended(lines));
    assert_eq!(
        s.troubleshoot.logs.len(),
        herald::console::troubleshoot::LOG_KEEP
    );
}

#[test]
fn pausing_asks_first_and_only_owners_and_oncall_may() {
    for user in [owner(), oncall()] {
        let mut s = loaded(user, false, false);
        assert!(
            update(&mut s, Action::TogglePause).is_empty(),
            "nothing before yes"
        );
        assert_eq!(confirm_effect(&s), Effect::SetPaused(true));
        assert!(confirm_question(&s).contains("Pause delivery on every replica"));
        asks(&mut s, Action::ConfirmYes, Effect::SetPaused(true));
        assert!(matches!(s.overlay, Overlay::None));
        feed(&mut s, Action::PauseSet(Ok(true)));
        assert_eq!(s.paused, Some(true));
        feed(&mut s, Action::TogglePause);
        assert_eq!(confirm_effect(&s), Effect::SetPaused(false));
        assert!(update(&mut s, Action::ConfirmNo).is_empty());
        assert!(matches!(s.overlay, Overlay::None));
    }
    refused(&mut loaded(member(), false, false), Action::TogglePause);
    refused(&mut loaded(owner(), true, false), Action::TogglePause);
}

#[test]
fn send_test_sends_the_selected_event_to_yourself() {
    let mut s = on_tab(member(), false, Tab::Events);
    let name = s.events.catalog[0].spec.name.clone();
    asks(&mut s, Action::SendTest, Effect::SendEventTest(name));
    feed(
        &mut s,
        Action::TestSent(Ok("test queued by smtp, inbox".into())),
    );
    assert!(s.notice.as_ref().is_some_and(|n| !n.error));
    feed(&mut s, Action::TestSent(Err("boom".into())));
    assert!(
        s.notice
            .as_ref()
            .is_some_and(|n| n.error && n.text == "boom")
    );
    member_refused(Tab::Events, true, Action::SendTest);
}

#[test]
fn owners_cycle_and_reset_methods_and_members_cannot() {
    let mut s = on_tab(owner(), false, Tab::Delivery);
    let first = s.events.catalog[0].spec.name.clone();
    let set = |method| Effect::SetEventMethod {
        event: first.clone(),
        method,
    };
    asks(&mut s, Action::CycleMethod, set(Some(Method::Smtp)));
    feed(
        &mut s,
        Action::MethodSet(Ok((first.clone(), Some(Method::Smtp)))),
    );
    assert_eq!(s.events.catalog[0].method, Some(Method::Smtp));
    asks(&mut s, Action::ResetMethod, set(None));
    feed(&mut s, Action::MethodSet(Ok((first, None))));
    assert!(
        update(&mut s, Action::ResetMethod).is_empty(),
        "already the default"
    );
    for user in [member(), oncall()] {
        let mut s = on_tab(user, false, Tab::Delivery);
        refused(&mut s, Action::CycleMethod);
        refused(&mut s, Action::ResetMethod);
    }
}

#[test]
fn opt_outs_toggle_for_yourself_and_owners_switch_user() {
    let mut s = on_tab(member(), false, Tab::OptOuts);
    let row = s.optouts.rows[0].clone();
    assert!(row.enabled);
    asks(
        &mut s,
        Action::ToggleOptOut,
        Effect::SetOptOut {
            event: row.event.clone(),
            user: None,
            disabled: true,
        },
    );
    feed(
        &mut s,
        Action::OptOutSet {
            event: row.event.clone(),
            disabled: true,
            result: Ok(()),
        },
    );
    assert!(!s.optouts.rows[0].enabled);
    refused(&mut s, Action::SwitchUser);

    let mut s = on_tab(owner(), false, Tab::OptOuts);
    feed(&mut s, Action::SwitchUser);
    type_text(&mut s, "bob");
    asks(
        &mut s,
        Action::SubmitInput,
        Effect::LoadOptOuts(Some("bob".into())),
    );
    feed(
        &mut s,
        Action::OptOutsLoaded(Ok(("bob".into(), console_fixtures::optout_rows()))),
    );
    assert_eq!(s.optouts.shown_user, "bob");
    let effects = update(&mut s, Action::ToggleOptOut);
    assert!(matches!(&effects[..], [Effect::SetOptOut { user: Some(u), .. }] if u == "bob"));
    feed(
        &mut s,
        Action::OptOutsLoaded(Err("unknown user `bobb`".into())),
    );
    assert_eq!(s.optouts.subject, None, "back to your own list");
    member_refused(Tab::OptOuts, true, Action::ToggleOptOut);
}

#[test]
fn doctor_runs_for_watchers() {
    let mut s = on_tab(oncall(), false, Tab::Troubleshoot);
    asks(&mut s, Action::RunDoctor, Effect::RunDoctor);
    assert!(s.troubleshoot.doctor_running);
    feed(&mut s, Action::DoctorFinished(Ok(Vec::new())));
    assert!(!s.troubleshoot.doctor_running);
    member_refused(Tab::Troubleshoot, false, Action::RunDoctor);
}

#[test]
fn inbox_entries_toggle_read() {
    let mut s = on_tab(member(), false, Tab::Inbox);
    let mark = |read| Effect::MarkInbox { id: id(500), read };
    asks(&mut s, Action::ToggleRead, mark(true));
    let effects = update(&mut s, Action::InboxMarked(Ok((id(500), true))));
    assert_eq!(effects, vec![Effect::LoadInbox]);
    assert_eq!(s.inbox.unread(), 0);
    asks(&mut s, Action::ToggleRead, mark(false));
    member_refused(Tab::Inbox, true, Action::ToggleRead);
}

#[test]
fn refresh_reads_again_even_while_reads_are_in_flight() {
    let mut s = on_tab(owner(), false, Tab::Queue);
    s.loading.insert(Load::Counts);
    let effects = update(&mut s, Action::Refresh);
    assert!(effects.contains(&Effect::LoadCounts));
    assert!(effects.contains(&Effect::LoadSettings));
}

#[test]
fn an_open_troubleshoot_tab_reads_the_reasons_every_ten_seconds_not_every_tick() {
    use herald::console::troubleshoot::REASONS_REFRESH_SECS;
    let mut s = on_tab(owner(), false, Tab::Troubleshoot);
    let start = s.now;
    let reads = |s: &mut AppState, secs: i64| {
        let effects = update(s, Action::Tick(start + chrono::Duration::seconds(secs)));
        let read = effects.contains(&Effect::LoadReasons);
        if read {
            feed(s, Action::ReasonsLoaded(Ok(Vec::new())));
        }
        read
    };
    // on_tab read them at `start`.
    for secs in 0..REASONS_REFRESH_SECS {
        assert!(!reads(&mut s, secs), "read again after {secs} s");
    }
    assert!(reads(&mut s, REASONS_REFRESH_SECS));
    assert!(!reads(&mut s, REASONS_REFRESH_SECS + 1));
    let effects = update(&mut s, Action::Refresh);
    assert!(
        effects.contains(&Effect::LoadReasons),
        "asked for, it reads at once"
    );
}
