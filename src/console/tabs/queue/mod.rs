//! The Queue tab's data and behaviour: live counts and throughput, the keyset-paged message
//! table with its filter, marks, the stuck flag, the detail, and the three retries (each
//! confirmed with how many). Drawing is in [`crate::console::queue_view`].

pub mod filter;
pub mod view;

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::model::{Message, MessageState};
use crate::queue::can_retry;
use crate::service::StateCounts;
use crate::service::read_models::{MessageDetail, QueueQuery, TitledMessage};

use crate::console::action::{Action, Effect};
use crate::console::state::{AppState, Confirm, Overlay};

/// Messages per page.
pub const PAGE_SIZE: u32 = 50;

/// How many throughput samples the sparkline keeps.
pub const HISTORY: usize = 60;

/// A pending message is stuck when it waited this many fetch intervals (and at least
/// [`STUCK_MIN`]) while delivery was not paused.
pub const STUCK_FACTOR: u32 = 4;

/// The shortest wait that counts as stuck.
pub const STUCK_MIN: Duration = Duration::from_secs(60);

/// The Queue tab's data.
#[derive(Debug, Clone, Default)]
pub struct QueueState {
    /// Messages per state, once read.
    pub counts: Option<StateCounts>,
    /// Attempts per outcome in the last minute, once read.
    pub throughput: Option<StateCounts>,
    /// Sent-in-the-last-minute samples, oldest first, for the sparkline.
    pub sent_history: Vec<u64>,
    /// The filter applied.
    pub query: QueueQuery,
    /// The filter as typed.
    pub filter_text: String,
    /// The page shown, newest first.
    pub page: Vec<Message>,
    /// The page's rendered titles, one per message (rendered once per page read, by the
    /// background task, not per redraw).
    pub titles: Vec<String>,
    /// Whether a page was read.
    pub loaded: bool,
    /// The page's cursor: it holds messages older than this id.
    pub before: Option<Uuid>,
    /// Cursors of the pages before this one (for PgUp).
    pub history: Vec<Option<Uuid>>,
    /// The selected row of the page.
    pub selected: usize,
    /// Select the last row when the page arrives (after paging back with `k`).
    pub select_last: bool,
    /// The page request number; answers to older requests are dropped.
    pub seq: u64,
    /// Messages marked for `R`.
    pub marked: BTreeSet<Uuid>,
    /// The message whose detail is shown, with its attempts and rendering.
    pub detail: Option<MessageDetail>,
    /// How far the detail is scrolled.
    pub detail_scroll: u16,
}

impl QueueState {
    /// The selected message.
    pub fn selected_message(&self) -> Option<&Message> {
        self.page.get(self.selected)
    }

    /// The page number, from 1.
    pub fn page_number(&self) -> usize {
        self.history.len() + 1
    }
}

/// Whether `m` looks stuck at `now`: leased past its lease, or pending far longer than the
/// fetch interval while delivery is not paused.
pub fn is_stuck(m: &Message, now: DateTime<Utc>, paused: bool, fetch_interval: Duration) -> bool {
    match m.status {
        MessageState::Leased => m.leased_until.is_some_and(|until| until < now),
        MessageState::Pending if !paused => {
            let limit = (fetch_interval * STUCK_FACTOR).max(STUCK_MIN);
            (now - m.updated_at)
                .to_std()
                .is_ok_and(|waited| waited > limit)
        }
        _ => false,
    }
}

/// The effect reading the current page.
pub fn page_effect(state: &AppState) -> Effect {
    Effect::LoadPage {
        seq: state.queue.seq,
        query: state.queue.query.clone(),
        before: state.queue.before,
        limit: PAGE_SIZE,
    }
}

/// Starts reading the page at `before` as a new request (older answers are dropped).
fn go_to_page(state: &mut AppState, before: Option<Uuid>) -> Effect {
    let q = &mut state.queue;
    q.before = before;
    q.seq += 1;
    q.selected = 0;
    page_effect(state)
}

/// j/k/PgUp/PgDn/g/G in the table; moving past either end of a page turns it.
pub fn navigate(state: &mut AppState, action: &Action) -> Option<Effect> {
    let q = &mut state.queue;
    if q.detail.is_some() {
        q.detail_scroll = match action {
            Action::Up => q.detail_scroll.saturating_sub(1),
            Action::Down => q.detail_scroll.saturating_add(1),
            Action::PageUp => q.detail_scroll.saturating_sub(10),
            Action::PageDown => q.detail_scroll.saturating_add(10),
            _ => 0,
        };
        return None;
    }
    let len = q.page.len();
    let full = len >= PAGE_SIZE as usize;
    let last = len.saturating_sub(1);
    match action {
        Action::Up if q.selected == 0 && !q.history.is_empty() => page_back(state, true),
        Action::Up => {
            q.selected = q.selected.saturating_sub(1);
            None
        }
        Action::Down if q.selected >= last && full => page_forward(state),
        Action::Down => {
            q.selected = (q.selected + 1).min(last);
            None
        }
        Action::PageDown if full => page_forward(state),
        Action::PageDown => {
            q.selected = last;
            None
        }
        Action::PageUp if !q.history.is_empty() => page_back(state, false),
        Action::PageUp | Action::Top => {
            q.selected = 0;
            None
        }
        Action::Bottom => {
            q.selected = last;
            None
        }
        _ => None,
    }
}

fn page_forward(state: &mut AppState) -> Option<Effect> {
    let last_id = state.queue.page.last()?.id;
    let before = state.queue.before;
    state.queue.history.push(before);
    Some(go_to_page(state, Some(last_id)))
}

fn page_back(state: &mut AppState, select_last: bool) -> Option<Effect> {
    let before = state.queue.history.pop()?;
    state.queue.select_last = select_last;
    Some(go_to_page(state, before))
}

/// Applies a new filter: back to the first page, marks kept.
pub fn apply_query(state: &mut AppState, query: QueueQuery, text: String) -> Effect {
    let q = &mut state.queue;
    q.query = query;
    q.filter_text = text;
    q.history.clear();
    q.detail = None;
    go_to_page(state, None)
}

/// A page arrived; keeps the selection on the same message when it is still there.
pub fn page_loaded(state: &mut AppState, seq: u64, titled: Vec<TitledMessage>) -> bool {
    let q = &mut state.queue;
    if seq != q.seq {
        return false;
    }
    let (page, titles): (Vec<Message>, Vec<String>) =
        titled.into_iter().map(|t| (t.message, t.title)).unzip();
    if q.loaded && q.page == page && q.titles == titles && !q.select_last {
        return false;
    }
    let keep = q.page.get(q.selected).map(|m| m.id);
    q.selected = if q.select_last {
        page.len().saturating_sub(1)
    } else {
        keep.and_then(|id| page.iter().position(|m| m.id == id))
            .unwrap_or(q.selected)
            .min(page.len().saturating_sub(1))
    };
    q.select_last = false;
    q.page = page;
    q.titles = titles;
    q.loaded = true;
    true
}

/// A throughput sample arrived.
pub fn throughput_loaded(state: &mut AppState, counts: StateCounts) -> bool {
    let sent = counts
        .iter()
        .find(|(s, _)| *s == MessageState::Sent)
        .map_or(0, |(_, n)| u64::try_from(*n).unwrap_or(0));
    let q = &mut state.queue;
    q.sent_history.push(sent);
    if q.sent_history.len() > HISTORY {
        q.sent_history.remove(0);
    }
    let changed = q.throughput.as_ref() != Some(&counts);
    q.throughput = Some(counts);
    changed
}

/// Enter: reads the selected message's detail.
pub fn open(state: &mut AppState) -> Option<Effect> {
    let id = state.queue.selected_message()?.id;
    Some(Effect::LoadMessage(id))
}

/// Space: marks or unmarks the selected message, then moves down.
pub fn toggle_mark(state: &mut AppState) {
    let q = &mut state.queue;
    let Some(id) = q.selected_message().map(|m| m.id) else {
        return;
    };
    if !q.marked.remove(&id) {
        q.marked.insert(id);
    }
    q.selected = (q.selected + 1).min(q.page.len().saturating_sub(1));
}

fn describe(m: &Message) -> String {
    let to = match (&m.username, &m.target) {
        (_, Some(target)) => format!("target {target}"),
        (Some(user), None) => user.clone(),
        (None, None) => "nobody".to_string(),
    };
    format!("{} to {to} by {}, {}", m.event, m.method, m.status)
}

/// `r`: asks to retry the selected (or detailed) message.
pub fn retry_one(state: &mut AppState) {
    let q = &state.queue;
    let message = q
        .detail
        .as_ref()
        .map(|d| &d.message)
        .or_else(|| q.selected_message());
    let Some(m) = message else {
        state.fail("no message selected");
        return;
    };
    if let Err(why) = can_retry(m.status, false) {
        state.fail(format!("cannot retry this message: {why}"));
        return;
    }
    ask(
        state,
        "Retry message",
        format!(
            "Retry 1 message ({})?\nIt goes back to pending with no attempts.",
            describe(m)
        ),
        Effect::Retry(vec![m.id]),
    );
}

/// Opens the confirmation dialog: `question`, and `effect` if the answer is yes.
fn ask(state: &mut AppState, title: &str, question: String, effect: Effect) {
    state.overlay = Overlay::Confirm(Confirm {
        title: title.into(),
        question,
        effect,
    });
}

/// The `s` of a count of messages other than one.
fn plural<N: PartialEq + From<u8>>(n: N) -> &'static str {
    if n == N::from(1) { "" } else { "s" }
}

/// `R`: asks to retry the marked messages.
pub fn retry_marked(state: &mut AppState) {
    let n = state.queue.marked.len();
    if n == 0 {
        state.fail("no message is marked: mark messages with space first");
        return;
    }
    ask(
        state,
        "Retry marked messages",
        format!(
            "Retry {n} marked message{}?\nFailed ones go back to pending; others are left as they are.",
            plural(n)
        ),
        Effect::Retry(state.queue.marked.iter().copied().collect()),
    );
}

/// The filter restricted to states a retry can touch, or why it cannot.
pub fn retryable_query(query: &QueueQuery) -> Result<QueueQuery, String> {
    let mut query = query.clone();
    if let Some(s) = query
        .filter
        .statuses
        .iter()
        .find(|s| can_retry(**s, false).is_err())
    {
        return Err(format!(
            "the filter includes {s}: only temporary_failure and permanent_failure can be retried"
        ));
    }
    if query.filter.statuses.is_empty() {
        query.filter.statuses = vec![
            MessageState::TemporaryFailure,
            MessageState::PermanentFailure,
        ];
    }
    Ok(query)
}

/// `A`: counts what a retry of the whole filter would touch; the count opens the dialog.
pub fn retry_all(state: &mut AppState) -> Option<Effect> {
    match retryable_query(&state.queue.query) {
        Ok(query) => {
            state.say("counting the failed messages that match…");
            Some(Effect::CountRetryable(query))
        }
        Err(why) => {
            state.fail(why);
            None
        }
    }
}

/// The count for `A` arrived: asks, or says there is nothing to do.
pub fn retryable_counted(state: &mut AppState, query: QueueQuery, n: i64) {
    let what = match filter::format(&query) {
        text if text.is_empty() => "every failed message".to_string(),
        text => format!("`{text}`"),
    };
    if n == 0 {
        state.say(format!("nothing to retry: no message matches {what}"));
        return;
    }
    ask(
        state,
        "Retry all matching",
        format!(
            "Retry all {n} message{} matching {what}?\nThey go back to pending with no attempts.",
            plural(n)
        ),
        Effect::RetryQuery(query),
    );
}
