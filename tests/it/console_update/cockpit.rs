//! `update` for the operators' cockpit (issue 13): the channel health panel (read every few
//! seconds only while shown, Enter opens the Queue filtered to the channel, `p` pauses or
//! resumes it after a confirmation, absent for members and in `--read-only`), the scoped
//! pauses read for the header, and `x` explaining an event.

use super::*;
use herald::console::channels::HEALTH_REFRESH_SECS;
use herald::model::{ChannelPause, PauseScope};
use herald::service::{ExplainedDecision, Explanation, RoutingOutcome};

fn pause(scope: PauseScope, name: &str) -> ChannelPause {
    ChannelPause {
        scope,
        name: name.into(),
        paused_by: "olive".into(),
        paused_at: now(),
    }
}

/// The Troubleshoot tab with the `ops-alerts` target (the fixtures' 4th channel) selected.
fn on_ops_alerts() -> AppState {
    let mut s = on_tab(owner(), false, Tab::Troubleshoot);
    for _ in 0..3 {
        feed(&mut s, Action::Down);
    }
    assert_eq!(
        s.channels.selected_row().and_then(|r| r.target.as_deref()),
        Some("ops-alerts")
    );
    s
}

#[test]
fn the_channel_panel_is_read_every_few_seconds_only_while_troubleshoot_is_shown() {
    let mut s = on_tab(owner(), false, Tab::Troubleshoot);
    let start = s.now;
    let reads = |s: &mut AppState, secs: i64| {
        let effects = update(s, Action::Tick(start + chrono::Duration::seconds(secs)));
        let read = effects.contains(&Effect::LoadChannels);
        if read {
            feed(
                s,
                Action::ChannelsLoaded(Ok(console_fixtures::channel_rows())),
            );
        }
        read
    };
    for secs in 0..HEALTH_REFRESH_SECS {
        assert!(!reads(&mut s, secs), "read again after {secs} s");
    }
    assert!(reads(&mut s, HEALTH_REFRESH_SECS));
    feed(&mut s, Action::GoTab(Tab::Queue));
    assert!(
        !reads(&mut s, 3 * HEALTH_REFRESH_SECS),
        "not on another tab"
    );
    let mut m = on_tab(member(), false, Tab::Troubleshoot);
    let effects = update(&mut m, Action::Tick(start + chrono::Duration::seconds(60)));
    assert!(
        !effects.contains(&Effect::LoadChannels),
        "members see no health"
    );
    assert!(
        effects.contains(&Effect::LoadPauses),
        "everyone reads the pauses for the header"
    );
}

#[test]
fn enter_on_a_channel_opens_the_queue_filtered_to_it() {
    let mut s = on_ops_alerts();
    let effects = update(&mut s, Action::Open);
    assert_eq!(s.tab, Tab::Queue);
    assert_eq!(s.queue.filter_text, "target=ops-alerts");
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::LoadPage { query, .. } if query.filter.target.as_deref() == Some("ops-alerts")
    )));

    let mut s = on_tab(owner(), false, Tab::Troubleshoot);
    feed(&mut s, Action::Down);
    let effects = update(&mut s, Action::Open);
    assert_eq!(s.queue.filter_text, "method=smtp");
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::LoadPage { query, .. } if query.filter.method == Some(Method::Smtp)
    )));
}

#[test]
fn p_pauses_the_selected_target_after_a_confirmation_then_resumes_it() {
    let mut s = on_ops_alerts();
    assert!(
        update(&mut s, Action::ToggleChannelPause).is_empty(),
        "nothing runs before the confirmation"
    );
    let pausing = Effect::SetChannelPaused {
        scope: PauseScope::Target,
        name: "ops-alerts".into(),
        paused: true,
    };
    assert_eq!(confirm_effect(&s), pausing);
    assert!(confirm_question(&s).contains("Pause target ops-alerts on every replica?"));
    asks(&mut s, Action::ConfirmYes, pausing);
    let effects = update(
        &mut s,
        Action::ChannelPauseSet {
            scope: PauseScope::Target,
            name: "ops-alerts".into(),
            paused: true,
            result: Ok(true),
        },
    );
    assert!(effects.contains(&Effect::LoadPauses));
    assert!(effects.contains(&Effect::LoadChannels));
    assert_eq!(
        s.notice.as_ref().map(|n| n.text.as_str()),
        Some("target ops-alerts paused on every replica")
    );

    // Once the pause is read back, the same key offers to resume it.
    feed(
        &mut s,
        Action::PausesLoaded(Ok(vec![pause(PauseScope::Target, "ops-alerts")])),
    );
    feed(&mut s, Action::ToggleChannelPause);
    assert_eq!(
        confirm_effect(&s),
        Effect::SetChannelPaused {
            scope: PauseScope::Target,
            name: "ops-alerts".into(),
            paused: false,
        }
    );
    feed(&mut s, Action::ConfirmNo);

    // A method row pauses the method, which also holds its targets.
    feed(&mut s, Action::Top);
    feed(&mut s, Action::ToggleChannelPause);
    assert!(
        confirm_question(&s)
            .contains("method webhook (its user messages and every webhook target)")
    );
}

#[test]
fn channel_pauses_are_absent_for_members_and_in_read_only() {
    member_refused(Tab::Troubleshoot, false, Action::ToggleChannelPause);
    let mut s = on_ops_alerts();
    s.session.read_only = true;
    refused(&mut s, Action::ToggleChannelPause);
    assert!(
        !keymap::footer_hints(&s)
            .iter()
            .any(|h| h.action == Action::ToggleChannelPause)
    );
    let mut s = on_tab(oncall(), false, Tab::Troubleshoot);
    assert!(
        keymap::footer_hints(&s)
            .iter()
            .any(|h| h.action == Action::ToggleChannelPause)
    );
    feed(&mut s, Action::ToggleChannelPause);
    assert!(
        matches!(s.overlay, Overlay::Confirm(_)),
        "on-call may pause"
    );
}

#[test]
fn a_refused_pause_is_said_and_changes_nothing() {
    let mut s = on_ops_alerts();
    let effects = update(
        &mut s,
        Action::ChannelPauseSet {
            scope: PauseScope::Target,
            name: "ops-alerts".into(),
            paused: true,
            result: Err(
                "permission denied: pausing a channel requires the owner or oncall role".into(),
            ),
        },
    );
    assert!(effects.is_empty());
    assert!(
        s.notice
            .as_ref()
            .is_some_and(|n| n.error && n.text.contains("permission denied"))
    );
}

fn explanation() -> Explanation {
    let decision = |recipient: &str, method, decision, reason: Option<&str>| ExplainedDecision {
        recipient: recipient.into(),
        user: Some(recipient.into()),
        target: None,
        method,
        decision,
        reason: reason.map(str::to_string),
        duplicate_of: None,
    };
    Explanation {
        event: "workspace_deleted".into(),
        decisions: vec![
            decision("alice", Some(Method::Webhook), RoutingOutcome::Queued, None),
            decision("alice", Some(Method::Inbox), RoutingOutcome::Queued, None),
            decision(
                "bob",
                Some(Method::Webhook),
                RoutingOutcome::Inhibited,
                Some("disabled by user"),
            ),
            decision(
                "carol",
                None,
                RoutingOutcome::Skipped,
                Some("not in the audience (owner)"),
            ),
            ExplainedDecision {
                recipient: "target:ops-alerts".into(),
                user: None,
                target: Some("ops-alerts".into()),
                method: Some(Method::SlackWebhook),
                decision: RoutingOutcome::Queued,
                reason: Some(
                    "held: target ops-alerts is paused (`herald notifications resume --target ops-alerts`)"
                        .into(),
                ),
                duplicate_of: None,
            },
        ],
        warnings: vec!["method smtp is not configured: email.smarthost is not set".into()],
    }
}

/// The Events tab with `workspace_deleted` selected and explained for alice, bob and carol.
pub fn explained_state() -> AppState {
    let mut s = on_tab(owner(), false, Tab::Events);
    let at = s
        .events
        .catalog
        .iter()
        .position(|e| e.spec.name == "workspace_deleted")
        .expect("workspace_deleted is in the fixtures' catalog");
    s.events.selected = at;
    feed(&mut s, Action::Explain);
    type_text(&mut s, "alice bob carol name=ws-1");
    feed(&mut s, Action::SubmitInput);
    feed(&mut s, Action::Explained(Ok(Box::new(explanation()))));
    s
}

#[test]
fn x_asks_for_users_and_labels_then_shows_every_decision_until_esc() {
    let mut s = on_tab(owner(), false, Tab::Events);
    let event = s.events.selected_event().unwrap().spec.name.clone();
    assert!(update(&mut s, Action::Explain).is_empty());
    assert!(
        matches!(&s.overlay, Overlay::Prompt(p) if p.kind == herald::console::state::PromptKind::Explain)
    );
    type_text(&mut s, "alice @bob name=ws-1");
    asks(
        &mut s,
        Action::SubmitInput,
        Effect::Explain {
            event: event.clone(),
            users: vec!["alice".into(), "bob".into()],
            labels: vec!["name=ws-1".into()],
        },
    );
    assert!(s.explain.open(), "the view waits for the answer");
    feed(&mut s, Action::Explained(Ok(Box::new(explanation()))));
    assert_eq!(s.explain.shown.as_ref().map(|e| e.decisions.len()), Some(5));
    assert!(
        s.notice
            .as_ref()
            .is_some_and(|n| n.text.contains("3 of 5 would be queued"))
    );
    feed(&mut s, Action::Back);
    assert!(!s.explain.open());
    assert_eq!(s.tab, Tab::Events);

    // A refusal (a missing label, say) is said; the catalog comes back.
    feed(&mut s, Action::Explain);
    feed(&mut s, Action::SubmitInput);
    feed(
        &mut s,
        Action::Explained(Err("missing label `name`".into())),
    );
    assert!(!s.explain.open());
    assert!(s.notice.as_ref().is_some_and(|n| n.error));
}

#[test]
fn explain_is_for_owners_and_on_call_and_works_read_only() {
    member_refused(Tab::Events, false, Action::Explain);
    let mut s = on_tab(owner(), false, Tab::Events);
    s.session.read_only = true;
    feed(&mut s, Action::Explain);
    assert!(
        matches!(s.overlay, Overlay::Prompt(_)),
        "explain writes nothing"
    );
}
