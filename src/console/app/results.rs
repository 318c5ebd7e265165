//! How the results of effects change the state (the second half of `update`).

use crate::console::action::{Action, Effect};
use crate::console::state::{AppState, Tab};
use crate::console::{audit, channels, delivery, explain, inbox, optouts, queue};

/// Sets `slot` to `value`; true when it changed.
fn set<T: PartialEq>(slot: &mut T, value: T) -> bool {
    if *slot == value {
        return false;
    }
    *slot = value;
    true
}

/// After a change to messages: the page and counts again.
fn reload_queue(state: &mut AppState, fx: &mut Vec<Effect>) {
    state.loading.remove(&crate::console::action::Load::Page);
    fx.push(queue::page_effect(state));
    if state.watches_queue() {
        fx.push(Effect::LoadCounts);
    }
}

/// Applies an effect's result; true when something visible changed.
pub fn apply(state: &mut AppState, action: Action, fx: &mut Vec<Effect>) -> bool {
    match action {
        Action::SettingsLoaded(Ok(paused)) => set(&mut state.paused, Some(paused)),
        Action::EventsLoaded(Ok(events)) => state.events.set_catalog(events),
        Action::VolumesLoaded(Ok(volumes)) => {
            state.events.volumes_at = Some(state.now);
            set(
                &mut state.events.volumes,
                Some(volumes.into_iter().collect()),
            )
        }
        Action::CountsLoaded(Ok(counts)) => set(&mut state.queue.counts, Some(counts)),
        Action::ThroughputLoaded(Ok(counts)) => queue::throughput_loaded(state, counts),
        Action::PageLoaded {
            seq,
            result: Ok(page),
        } => queue::page_loaded(state, seq, page),
        Action::PageLoaded { seq, .. } if seq != state.queue.seq => false,
        Action::MessageLoaded(Ok(found)) => {
            state.queue.detail = Some(*found);
            state.queue.detail_scroll = 0;
            true
        }
        Action::RetryableCounted {
            query,
            result: Ok(n),
        } => {
            queue::retryable_counted(state, query, n);
            true
        }
        Action::Retried(Ok(summary)) => {
            state.say(summary);
            state.queue.marked.clear();
            state.troubleshoot.reasons_at = None;
            if let Some(d) = &state.queue.detail {
                fx.push(Effect::LoadMessage(d.message.id));
            }
            reload_queue(state, fx);
            true
        }
        Action::PauseSet(Ok(paused)) => {
            state.paused = Some(paused);
            state.say(if paused {
                "delivery paused on every replica"
            } else {
                "delivery resumed"
            });
            true
        }
        Action::MethodSet(Ok((event, method))) => delivery::method_saved(state, &event, method),
        Action::TestSent(Ok(summary)) => {
            state.say(summary);
            if state.tab == Tab::Queue {
                reload_queue(state, fx);
            }
            true
        }
        Action::OptOutsLoaded(Ok((user, rows))) => optouts::loaded(state, user, rows),
        Action::OptOutSet {
            event,
            disabled,
            result: Ok(()),
        } => {
            optouts::saved(state, &event, disabled);
            true
        }
        Action::InboxLoaded(Ok(entries)) => inbox::loaded(state, entries),
        Action::InboxMarked(Ok((id, read))) => {
            inbox::marked(state, id, read);
            fx.push(Effect::LoadInbox);
            true
        }
        Action::ReasonsLoaded(Ok(reasons)) => {
            state.troubleshoot.reasons_at = Some(state.now);
            let len = reasons.len();
            let changed = set(&mut state.troubleshoot.reasons, Some(reasons));
            state.troubleshoot.selected = state.troubleshoot.selected.min(len.saturating_sub(1));
            changed
        }
        Action::ReplicasLoaded(Ok(replicas)) => {
            set(&mut state.troubleshoot.replicas, Some(replicas))
        }
        Action::UndeliverableLoaded(Ok(waiting)) => {
            state.undeliverable_at = Some(state.now);
            set(&mut state.undeliverable, Some(waiting))
        }
        Action::ChannelsLoaded(Ok(rows)) => channels::loaded(state, rows),
        Action::PausesLoaded(Ok(pauses)) => set(&mut state.pauses, Some(pauses)),
        Action::ChannelPauseSet {
            scope,
            name,
            paused,
            result: Ok(changed),
        } => {
            channels::pause_set(state, scope, &name, paused, changed, fx);
            true
        }
        Action::Explained(Ok(explanation)) => {
            explain::explained(state, *explanation);
            true
        }
        Action::Explained(Err(why)) => {
            state.explain.running = false;
            state.fail(why);
            true
        }
        Action::DoctorFinished(result) => {
            state.troubleshoot.doctor_running = false;
            match result {
                Ok(checks) => {
                    let failed = checks.iter().filter(|c| !c.ok).count();
                    state.say(format!(
                        "doctor: {failed} of {} checks failed",
                        checks.len()
                    ));
                    state.troubleshoot.doctor = Some(checks);
                }
                Err(why) => state.fail(format!("doctor: {why}")),
            }
            true
        }
        Action::AuditLoaded(Ok(rows)) => audit::loaded(state, rows),
        Action::OptOutsLoaded(Err(why)) => {
            // Back to your own list, so the tab never shows someone else's stale rows.
            state.optouts.subject = None;
            state.fail(why);
            true
        }
        Action::SettingsLoaded(Err(why))
        | Action::EventsLoaded(Err(why))
        | Action::VolumesLoaded(Err(why))
        | Action::CountsLoaded(Err(why))
        | Action::ThroughputLoaded(Err(why))
        | Action::PageLoaded {
            result: Err(why), ..
        }
        | Action::MessageLoaded(Err(why))
        | Action::RetryableCounted {
            result: Err(why), ..
        }
        | Action::Retried(Err(why))
        | Action::PauseSet(Err(why))
        | Action::MethodSet(Err(why))
        | Action::TestSent(Err(why))
        | Action::OptOutSet {
            result: Err(why), ..
        }
        | Action::InboxLoaded(Err(why))
        | Action::InboxMarked(Err(why))
        | Action::ReasonsLoaded(Err(why))
        | Action::ReplicasLoaded(Err(why))
        | Action::UndeliverableLoaded(Err(why))
        | Action::AuditLoaded(Err(why))
        | Action::ChannelsLoaded(Err(why))
        | Action::PausesLoaded(Err(why))
        | Action::ChannelPauseSet {
            result: Err(why), ..
        } => {
            let changed = state.notice.as_ref().is_none_or(|n| n.text != why);
            state.fail(why);
            changed
        }
        // Intents are handled by `update` itself.
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_reports_whether_anything_changed() {
        let mut slot = 1;
        assert!(!set(&mut slot, 1));
        assert!(set(&mut slot, 2));
        assert_eq!(slot, 2);
    }
}
