//! `update` on the Queue tab: keyset paging, the filter, periodic reads, and the three
//! retries with their confirmations and permissions.

use super::*;

/// The store answers the page read `seq` with `page`.
fn page_loaded(s: &mut AppState, seq: u64, page: Vec<herald::model::Message>) {
    feed(
        s,
        Action::PageLoaded {
            seq,
            result: Ok(console_fixtures::titled(page)),
        },
    );
}

fn full_page(offset: u128) -> Vec<herald::model::Message> {
    (0..u128::from(PAGE_SIZE))
        .map(|i| {
            message(
                offset - i,
                "run_failure",
                None,
                Method::Webhook,
                MessageState::PermanentFailure,
                Some("webhook 503"),
                10,
            )
        })
        .collect()
}

#[test]
fn the_queue_pages_by_keyset_and_drops_stale_pages() {
    let mut s = on_tab(owner(), false, Tab::Queue);
    let seq = s.queue.seq;
    page_loaded(&mut s, seq, full_page(1000));
    let last = s.queue.page[PAGE_SIZE as usize - 1].id;
    let effects = update(&mut s, Action::PageDown);
    let Some(Effect::LoadPage {
        seq: next, before, ..
    }) = effects.first().cloned()
    else {
        panic!("no page asked for: {effects:?}");
    };
    assert_eq!(before, Some(last));
    assert!(next > seq);
    page_loaded(&mut s, seq, page());
    assert_eq!(
        s.queue.page.len(),
        PAGE_SIZE as usize,
        "a stale page is dropped"
    );
    page_loaded(&mut s, next, full_page(900));
    assert_eq!(s.queue.page_number(), 2);
    assert_eq!(s.queue.selected, 0);
    let effects = update(&mut s, Action::Up);
    assert!(
        matches!(effects.first(), Some(Effect::LoadPage { before: None, .. })),
        "k on the first row goes back a page: {effects:?}"
    );
    assert_eq!(s.queue.page_number(), 1);
    let seq = s.queue.seq;
    page_loaded(&mut s, seq, full_page(1000));
    assert_eq!(
        s.queue.selected,
        PAGE_SIZE as usize - 1,
        "back on its last row"
    );
    let effects = update(&mut s, Action::Down);
    assert!(matches!(
        effects.first(),
        Some(Effect::LoadPage {
            before: Some(_),
            ..
        })
    ));
}

#[test]
fn the_queue_filter_applies_or_says_what_is_wrong() {
    let mut s = on_tab(member(), false, Tab::Queue);
    feed(&mut s, Action::Filter);
    assert!(matches!(s.overlay, Overlay::Prompt(_)));
    type_text(&mut s, "status=nope");
    let effects = update(&mut s, Action::SubmitInput);
    assert!(effects.is_empty());
    assert!(
        matches!(s.overlay, Overlay::Prompt(_)),
        "the prompt stays open"
    );
    assert!(s.notice.as_ref().is_some_and(|n| n.error));
    feed(&mut s, Action::Edit(InputRequest::DeleteLine));
    type_text(&mut s, "status=permanent_failure event=run_*");
    let effects = update(&mut s, Action::SubmitInput);
    assert!(matches!(s.overlay, Overlay::None));
    match effects.as_slice() {
        [
            Effect::LoadPage {
                query,
                before: None,
                ..
            },
        ] => {
            assert_eq!(query.filter.statuses, vec![MessageState::PermanentFailure]);
            assert_eq!(query.filter.event.as_deref(), Some("run_*"));
        }
        other => panic!("expected one page read, got {other:?}"),
    }
    assert_eq!(s.queue.filter_text, "status=permanent_failure event=run_*");
}

#[test]
fn retry_one_asks_with_what_and_only_owners_may() {
    let mut s = on_tab(owner(), false, Tab::Queue);
    assert!(update(&mut s, Action::RetryOne).is_empty());
    assert_eq!(confirm_effect(&s), Effect::Retry(vec![page()[0].id]));
    assert!(confirm_question(&s).contains("Retry 1 message (run_failure"));
    assert_eq!(
        update(&mut s, Action::ConfirmYes),
        vec![Effect::Retry(vec![page()[0].id])]
    );
    let effects = update(&mut s, Action::Retried(Ok("retried 1".into())));
    assert!(
        effects.iter().any(|e| matches!(e, Effect::LoadPage { .. })),
        "the page reloads"
    );
    assert!(effects.contains(&Effect::LoadCounts));

    feed(&mut s, Action::Down);
    feed(&mut s, Action::Down);
    assert_eq!(
        s.queue.selected_message().map(|m| m.status),
        Some(MessageState::Sent)
    );
    assert!(update(&mut s, Action::RetryOne).is_empty());
    assert!(
        matches!(s.overlay, Overlay::None),
        "a sent message is not retried"
    );
    assert!(s.notice.as_ref().is_some_and(|n| n.error));

    for user in [member(), oncall()] {
        let mut s = on_tab(user, false, Tab::Queue);
        refused(&mut s, Action::RetryOne);
        refused(&mut s, Action::RetryMarked);
        refused(&mut s, Action::RetryAll);
        refused(&mut s, Action::ToggleMark);
    }
}

#[test]
fn retry_marked_counts_the_marks() {
    let mut s = on_tab(owner(), false, Tab::Queue);
    feed(&mut s, Action::RetryMarked);
    assert!(matches!(s.overlay, Overlay::None));
    assert!(
        s.notice
            .as_ref()
            .is_some_and(|n| n.text.contains("mark messages"))
    );
    feed(&mut s, Action::ToggleMark);
    feed(&mut s, Action::ToggleMark);
    assert_eq!(s.queue.marked.len(), 2);
    feed(&mut s, Action::RetryMarked);
    assert!(confirm_question(&s).contains("Retry 2 marked messages"));
    feed(&mut s, Action::ConfirmYes);
    feed(&mut s, Action::Retried(Ok("retried 2".into())));
    assert!(s.queue.marked.is_empty());
    feed(&mut s, Action::ToggleMark);
    feed(&mut s, Action::Back);
    assert!(s.queue.marked.is_empty(), "Esc clears the marks");
}

#[test]
fn retry_all_counts_first_then_asks_with_the_number() {
    let mut s = on_tab(owner(), false, Tab::Queue);
    let effects = update(&mut s, Action::RetryAll);
    let [Effect::CountRetryable(query)] = effects.as_slice() else {
        panic!("expected a count first: {effects:?}");
    };
    assert_eq!(
        query.filter.statuses,
        vec![
            MessageState::TemporaryFailure,
            MessageState::PermanentFailure
        ]
    );
    feed(
        &mut s,
        Action::RetryableCounted {
            query: query.clone(),
            result: Ok(0),
        },
    );
    assert!(matches!(s.overlay, Overlay::None));
    feed(
        &mut s,
        Action::RetryableCounted {
            query: query.clone(),
            result: Ok(3),
        },
    );
    assert!(confirm_question(&s).contains("Retry all 3 messages"));
    assert_eq!(
        update(&mut s, Action::ConfirmYes),
        vec![Effect::RetryQuery(query.clone())]
    );

    feed(&mut s, Action::Filter);
    type_text(&mut s, "status=sent");
    feed(&mut s, Action::SubmitInput);
    assert!(update(&mut s, Action::RetryAll).is_empty());
    assert!(
        s.notice
            .as_ref()
            .is_some_and(|n| n.error && n.text.contains("sent"))
    );
}

#[test]
fn troubleshoot_jumps_to_the_messages_behind_a_reason() {
    let mut s = on_tab(owner(), false, Tab::Troubleshoot);
    feed(&mut s, Action::SwitchPane);
    feed(&mut s, Action::Down);
    let effects = update(&mut s, Action::Open);
    assert_eq!(s.tab, Tab::Queue);
    let expected = QueueQuery {
        filter: herald::store::MessageFilter {
            statuses: vec![MessageState::TemporaryFailure],
            ..Default::default()
        },
        user: None,
        reason: Some("smtp 421 4.7.0 try again later".into()),
        title: None,
    };
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::LoadPage { query, .. } if *query == expected))
    );
    assert_eq!(
        s.queue.filter_text,
        "status=temporary_failure reason=\"smtp 421 4.7.0 try again later\""
    );
    member_refused(Tab::Troubleshoot, false, Action::Open);
}

#[test]
fn periodic_reads_never_pile_up_and_resume_once_answered() {
    let mut s = on_tab(owner(), false, Tab::Queue);
    s.loading.clear();
    let first = update(&mut s, Action::Tick(now()));
    assert!(first.contains(&Effect::LoadCounts));
    let second = update(&mut s, Action::Tick(now()));
    assert!(
        !second.contains(&Effect::LoadCounts),
        "a count is in flight"
    );
    feed(&mut s, Action::CountsLoaded(Ok(console_fixtures::counts())));
    assert!(!s.loading.contains(&Load::Counts));
    assert!(update(&mut s, Action::Tick(now())).contains(&Effect::LoadCounts));
}

#[test]
fn stuck_means_an_expired_lease_or_a_long_wait_while_running() {
    use herald::console::queue::is_stuck;
    let fetch = std::time::Duration::from_secs(15);
    let pending = |age| {
        message(
            1,
            "run_end",
            None,
            Method::Smtp,
            MessageState::Pending,
            None,
            age,
        )
    };
    assert!(
        !is_stuck(&pending(30), now(), false, fetch),
        "a fresh pending message"
    );
    assert!(
        is_stuck(&pending(900), now(), false, fetch),
        "15 minutes at 15s fetches"
    );
    assert!(
        !is_stuck(&pending(900), now(), true, fetch),
        "paused: waiting is expected"
    );
    let mut leased = message(
        2,
        "run_end",
        None,
        Method::Smtp,
        MessageState::Leased,
        None,
        10,
    );
    leased.leased_until = Some(now() + chrono::Duration::seconds(60));
    assert!(!is_stuck(&leased, now(), false, fetch), "a live lease");
    leased.leased_until = Some(now() - chrono::Duration::seconds(1));
    assert!(
        is_stuck(&leased, now(), true, fetch),
        "an expired lease, paused or not"
    );
    let failed = message(
        3,
        "run_end",
        None,
        Method::Smtp,
        MessageState::TemporaryFailure,
        None,
        9000,
    );
    assert!(!is_stuck(&failed, now(), false, fetch));
}
