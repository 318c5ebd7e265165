//! Enqueueing in two halves, so that a server taking many reports at once reads and writes
//! them together: [`Service::prepare_enqueue_many`] checks, routes and admits events (reads
//! only, shared by all), [`Service::queue_prepared`] inserts any number of prepared events in
//! one transaction, and says for each which messages it made and which were duplicates. One bad event in a batch costs the
//! others nothing: when the shared transaction fails, each is written on its own.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use super::enqueue::Routed;
use super::lookups::Parsed;
use super::*;
use crate::store::StoreResult;
use chrono::SubsecRound;

/// An event checked, routed and admitted, whose messages are not written yet.
#[derive(Debug)]
pub struct Prepared {
    messages: Vec<NewMessage>,
    warnings: Vec<String>,
    /// The event's name, for the messages answered from memory.
    event: String,
    /// Recipients' usernames by id ([`Routed::usernames`] and the caller).
    usernames: HashMap<Uuid, String>,
}

impl Service {
    /// Everything [`Service::enqueue`] does before writing, for many reports at once: each
    /// caller's right to report, routing over what one set of reads found for all of them
    /// (`Service::lookups`), the labels at the door. Nothing is written; the results come in
    /// `reports`' order, each report's refusal its own.
    pub async fn prepare_enqueue_many(
        &self,
        reports: &[(&User, &EnqueueInput)],
    ) -> Vec<ServiceResult<Prepared>> {
        let mut results: Vec<Option<ServiceResult<Prepared>>> =
            (0..reports.len()).map(|_| None).collect();
        let mut parsed = Vec::with_capacity(reports.len());
        for (i, (caller, input)) in reports.iter().enumerate() {
            match require(caller, OWNERS, "enqueueing events").and_then(|()| Parsed::of(input)) {
                Ok(p) => parsed.push((i, p)),
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        let asked: Vec<(&EnqueueInput, &Parsed)> =
            parsed.iter().map(|(i, p)| (reports[*i].1, p)).collect();
        match self.lookups(&asked).await {
            Ok(lookups) => {
                for (i, p) in parsed {
                    let (caller, input) = reports[i];
                    let routed = self.route_with(input, p, &lookups, true, &[]).await;
                    results[i] = Some(routed.and_then(|r| self.prepare_routed(caller, r)));
                }
            }
            // The reads failed for all: each report reads on its own, so each gets its own error.
            Err(_) => {
                for (i, _) in parsed {
                    let (caller, input) = reports[i];
                    let routed = self.route(input, true, false).await;
                    results[i] = Some(routed.and_then(|r| self.prepare_routed(caller, r)));
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.expect("every report has a result"))
            .collect()
    }

    /// [`Service::prepare`] for what [`Service::route_with`] made.
    fn prepare_routed(&self, caller: &User, routed: Routed) -> ServiceResult<Prepared> {
        let Routed {
            event,
            labels,
            plan,
            usernames,
        } = routed;
        self.prepare(
            caller,
            &event,
            &labels,
            plan.messages,
            plan.warnings,
            usernames,
        )
    }

    /// Admits routed messages of `event` sent with `labels` ([`Service::admit`]) and gives
    /// each its id, creator and time; logs routing's warnings.
    pub(super) fn prepare(
        &self,
        caller: &User,
        event: &EventTemplate,
        labels: &BTreeMap<String, String>,
        planned: Vec<routing::PlannedMessage>,
        warnings: Vec<String>,
        mut usernames: HashMap<Uuid, String>,
    ) -> ServiceResult<Prepared> {
        self.admit(event, labels, &planned)?;
        for warning in &warnings {
            tracing::warn!(event = %event.spec.name, "{warning}");
        }
        usernames
            .entry(caller.id)
            .or_insert_with(|| caller.username.clone());
        // Both stores keep microseconds: the time answered is the time stored.
        let now = Utc::now().trunc_subsecs(6);
        let messages = planned
            .into_iter()
            .map(|planned| NewMessage {
                id: Uuid::now_v7(),
                template_id: event.id,
                created_by: caller.username.clone(),
                created_at: now,
                planned,
            })
            .collect();
        Ok(Prepared {
            messages,
            warnings,
            event: event.spec.name.clone(),
            usernames,
        })
    }

    /// Writes the prepared events' messages in one transaction and answers with the ones
    /// created; the reports come in `batch`'s order. Should that transaction fail, each event
    /// is written in a transaction of its own, so each gets its own outcome.
    pub async fn queue_prepared(&self, batch: Vec<Prepared>) -> Vec<ServiceResult<EnqueueReport>> {
        if batch.is_empty() {
            return Vec::new();
        }
        let mut ranges: Vec<Range<usize>> = Vec::with_capacity(batch.len());
        let mut messages = Vec::with_capacity(batch.iter().map(|p| p.messages.len()).sum());
        let mut warnings = Vec::with_capacity(batch.len());
        let mut known = Vec::with_capacity(batch.len());
        for prepared in batch {
            let start = messages.len();
            messages.extend(prepared.messages);
            ranges.push(start..messages.len());
            warnings.push(prepared.warnings);
            known.push((prepared.event, prepared.usernames));
        }
        let outcomes: Vec<StoreResult<EnqueueOutcome>> = match self.store.enqueue(&messages).await {
            Ok(outcome) => split(&messages, &ranges, outcome)
                .into_iter()
                .map(Ok)
                .collect(),
            Err(e) if ranges.len() == 1 => vec![Err(e)],
            Err(e) => {
                tracing::warn!(
                    events = ranges.len(),
                    "writing a batch of events failed ({e}); writing each on its own"
                );
                let mut outcomes = Vec::with_capacity(ranges.len());
                for range in &ranges {
                    outcomes.push(self.store.enqueue(&messages[range.clone()]).await);
                }
                outcomes
            }
        };
        // The rows just inserted are what was sent: they are answered from memory, not read
        // back (a message whose recipient's name is not known here is read).
        let mut found: HashMap<Uuid, Message> = HashMap::new();
        let mut messages = messages.into_iter();
        for ((range, outcome), (event, usernames)) in ranges.iter().zip(&outcomes).zip(&known) {
            let inserted: HashSet<Uuid> = match outcome {
                Ok(outcome) => outcome.enqueued.iter().copied().collect(),
                Err(_) => HashSet::new(),
            };
            for m in messages.by_ref().take(range.len()) {
                if inserted.contains(&m.id)
                    && let Some(message) = as_stored(m, event, usernames)
                {
                    found.insert(message.id, message);
                }
            }
        }
        let mut reports = Vec::with_capacity(outcomes.len());
        for (outcome, warnings) in outcomes.into_iter().zip(warnings) {
            reports.push(self.report(outcome, warnings, &mut found).await);
        }
        reports
    }

    /// One event's report: its messages from `found`, else read again (the shared read
    /// failed), so a failure is this event's own.
    async fn report(
        &self,
        outcome: StoreResult<EnqueueOutcome>,
        warnings: Vec<String>,
        found: &mut HashMap<Uuid, Message>,
    ) -> ServiceResult<EnqueueReport> {
        let EnqueueOutcome {
            enqueued,
            duplicates,
        } = outcome?;
        let mut made: Vec<Message> = enqueued.iter().filter_map(|id| found.remove(id)).collect();
        if made.len() < enqueued.len() {
            made = self.store.messages_by_ids(&enqueued).await?;
        }
        Ok(EnqueueReport {
            enqueued: made,
            duplicates,
            warnings,
        })
    }
}

/// The row [`Store::enqueue`] inserted for `m`, as a read of it would return it; `None` when
/// its recipient's username is not among `usernames`.
fn as_stored(m: NewMessage, event: &str, usernames: &HashMap<Uuid, String>) -> Option<Message> {
    let username = match m.planned.user_id {
        Some(id) => Some(usernames.get(&id)?.clone()),
        None => None,
    };
    Some(Message {
        id: m.id,
        notification_template_id: m.template_id,
        event: event.to_string(),
        user_id: m.planned.user_id,
        username,
        target: m.planned.target,
        method: m.planned.method,
        status: m.planned.status,
        status_reason: m.planned.status_reason,
        created_by: m.created_by,
        payload: m.planned.payload,
        attempt_count: 0,
        created_at: m.created_at,
        updated_at: m.created_at,
        leased_until: None,
        next_retry_after: None,
        queued_seconds: None,
        dedupe_hash: m.planned.dedupe_hash,
    })
}

/// One outcome for all of `messages` cut into one per range: a message inserted is its event's;
/// each one not inserted takes the next of `outcome.duplicates`, which name the originals in
/// the order of the messages refused.
fn split(
    messages: &[NewMessage],
    ranges: &[Range<usize>],
    outcome: EnqueueOutcome,
) -> Vec<EnqueueOutcome> {
    let inserted: HashSet<Uuid> = outcome.enqueued.into_iter().collect();
    let mut originals = outcome.duplicates.into_iter();
    ranges
        .iter()
        .map(|range| {
            let mut part = EnqueueOutcome::default();
            for m in &messages[range.clone()] {
                if inserted.contains(&m.id) {
                    part.enqueued.push(m.id);
                } else if let Some(original) = originals.next() {
                    part.duplicates.push(original);
                }
            }
            part
        })
        .collect()
}
