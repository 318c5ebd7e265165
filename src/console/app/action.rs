//! What can happen to the console ([`Action`]) and what it asks the world to do ([`Effect`]).
//!
//! Keys become actions through the action table ([`crate::console::keymap`]); effects run in tasks
//! ([`crate::console::driver`]) and their results come back as actions. Both are plain data, so
//! [`crate::console::update::update`] is a pure function that tests drive directly.

use chrono::{DateTime, Utc};
use tui_input::InputRequest;
use uuid::Uuid;

use crate::channels::CheckResult;
use crate::dispatch::DispatcherState;
use crate::model::{ChannelPause, EventTemplate, Method, PauseScope};
use crate::service::channel_health::ChannelHealth;
use crate::service::read_models::{MessageDetail, QueueQuery, TitledMessage};
use crate::service::{
    AuditRecord, Explanation, InboxEntry, ReasonCount, Replica, StateCounts, Undeliverable,
};
use crate::telemetry::LogLine;

use crate::console::state::Tab;

/// The text of an error an effect ran into, as the person reads it.
pub type Failure = String;

/// One opt-out row: an event and whether the subject receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptOutRow {
    /// The event's name.
    pub event: String,
    /// Its display group.
    pub group: String,
    /// Whether the subject receives it now.
    pub enabled: bool,
    /// The subject's explicit choice, if any (`Some(true)` = opted out).
    pub preference: Option<bool>,
    /// The event's default.
    pub enabled_by_default: bool,
}

/// Something that happens to the console: a key's intent, a tick, or an effect's result.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    // ---- intents (the action table binds keys to these) --------------------------------
    /// Leave the console.
    Quit,
    /// Open or close the help overlay.
    Help,
    /// Next tab.
    NextTab,
    /// Previous tab.
    PrevTab,
    /// Go to a tab.
    GoTab(Tab),
    /// Open the `:` command prompt.
    Command,
    /// Move the selection (or scroll) up one row.
    Up,
    /// Move the selection (or scroll) down one row.
    Down,
    /// Previous page.
    PageUp,
    /// Next page.
    PageDown,
    /// First row.
    Top,
    /// Last row.
    Bottom,
    /// Open the selected row's detail (or jump, in Troubleshoot).
    Open,
    /// Close the detail, overlay or prompt.
    Back,
    /// Open the tab's filter prompt.
    Filter,
    /// Ask to pause or resume delivery.
    TogglePause,
    /// Send the selected event to yourself.
    SendTest,
    /// Next delivery method for the selected event.
    CycleMethod,
    /// Reset the selected event to the deployment default.
    ResetMethod,
    /// Opt the subject out of (or back into) the selected event.
    ToggleOptOut,
    /// Show another user's opt-outs.
    SwitchUser,
    /// Mark or unmark the selected message.
    ToggleMark,
    /// Ask to retry the selected message.
    RetryOne,
    /// Ask to retry the marked messages.
    RetryMarked,
    /// Ask to retry every failed message matching the filter.
    RetryAll,
    /// Run `doctor`'s checks.
    RunDoctor,
    /// Show or hide the audit trail (Troubleshoot).
    ToggleAudit,
    /// Mark the selected inbox entry read or unread.
    ToggleRead,
    /// Move the keys to the other pane (Troubleshoot: channels or reasons).
    SwitchPane,
    /// Ask to pause or resume the selected channel.
    ToggleChannelPause,
    /// Ask for users and labels, then explain the selected event's routing.
    Explain,
    /// Reload the tab's data now.
    Refresh,
    /// Yes to the confirmation.
    ConfirmYes,
    /// No to the confirmation.
    ConfirmNo,
    /// Submit the prompt.
    SubmitInput,
    /// Edit the prompt's text.
    Edit(InputRequest),

    // ---- time and the process --------------------------------------------------------
    /// A second passed: refresh what is live.
    Tick(DateTime<Utc>),
    /// The terminal changed size.
    Resized,
    /// New lines in this process's log ring.
    LogsAppended(Vec<LogLine>),
    /// The embedded dispatcher changed state.
    DispatcherChanged(DispatcherState),

    // ---- results of effects --------------------------------------------------------------
    /// Whether delivery is paused.
    SettingsLoaded(Result<bool, Failure>),
    /// The event catalog.
    EventsLoaded(Result<Vec<EventTemplate>, Failure>),
    /// Messages per event in the last 24 hours.
    VolumesLoaded(Result<Vec<(String, i64)>, Failure>),
    /// Messages per state.
    CountsLoaded(Result<StateCounts, Failure>),
    /// Attempts per outcome in the last minute.
    ThroughputLoaded(Result<StateCounts, Failure>),
    /// A page of the queue, for the request numbered `seq`.
    PageLoaded {
        /// Which request this answers; stale answers are dropped.
        seq: u64,
        /// The page's messages with their rendered titles, newest first.
        result: Result<Vec<TitledMessage>, Failure>,
    },
    /// One message with its attempts and its rendering.
    MessageLoaded(Result<Box<MessageDetail>, Failure>),
    /// How many failed messages a retry of `query` would touch.
    RetryableCounted {
        /// The query to retry.
        query: QueueQuery,
        /// How many.
        result: Result<i64, Failure>,
    },
    /// A retry finished: what it did, in words.
    Retried(Result<String, Failure>),
    /// Pause (`true`) or resume took effect.
    PauseSet(Result<bool, Failure>),
    /// An event's method was saved.
    MethodSet(Result<(String, Option<Method>), Failure>),
    /// A test was sent: what, in words.
    TestSent(Result<String, Failure>),
    /// The opt-outs of a user.
    OptOutsLoaded(Result<(String, Vec<OptOutRow>), Failure>),
    /// An opt-out was saved (`disabled = true` is an opt-out).
    OptOutSet {
        /// The event.
        event: String,
        /// The new choice.
        disabled: bool,
        /// Whether it was saved.
        result: Result<(), Failure>,
    },
    /// The caller's inbox.
    InboxLoaded(Result<Vec<InboxEntry>, Failure>),
    /// An inbox entry was marked read (`true`) or unread.
    InboxMarked(Result<(Uuid, bool), Failure>),
    /// The commonest failure reasons.
    ReasonsLoaded(Result<Vec<ReasonCount>, Failure>),
    /// The dispatchers' heartbeats.
    ReplicasLoaded(Result<Vec<Replica>, Failure>),
    /// Messages no running replica can deliver, per method and target.
    UndeliverableLoaded(Result<Vec<Undeliverable>, Failure>),
    /// `doctor`'s results.
    DoctorFinished(Result<Vec<CheckResult>, Failure>),
    /// The newest audit rows.
    AuditLoaded(Result<Vec<AuditRecord>, Failure>),
    /// Every channel's health.
    ChannelsLoaded(Result<Vec<ChannelHealth>, Failure>),
    /// The scoped pauses.
    PausesLoaded(Result<Vec<ChannelPause>, Failure>),
    /// A scoped pause or resume took effect.
    ChannelPauseSet {
        /// What was paused or resumed.
        scope: PauseScope,
        /// The method or target.
        name: String,
        /// `true` = paused.
        paused: bool,
        /// Whether it changed anything (false: it was so already).
        result: Result<bool, Failure>,
    },
    /// What enqueueing an event would do, recipient by recipient.
    Explained(Result<Box<Explanation>, Failure>),
}

/// Work for the driver: each runs in its own task and answers with one [`Action`].
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Read the pause flag.
    LoadSettings,
    /// Read the event catalog.
    LoadEvents,
    /// Read messages per event in the last 24 hours.
    LoadVolumes,
    /// Read messages per state.
    LoadCounts,
    /// Read attempts per outcome in the last minute.
    LoadThroughput,
    /// Read one keyset page of the queue.
    LoadPage {
        /// Request number, echoed in [`Action::PageLoaded`].
        seq: u64,
        /// Which messages.
        query: QueueQuery,
        /// Only messages older than this id.
        before: Option<Uuid>,
        /// At most this many.
        limit: u32,
    },
    /// Read one message and its attempts.
    LoadMessage(Uuid),
    /// Count the failed messages matching a query, before confirming a retry of them all.
    CountRetryable(QueueQuery),
    /// Retry these messages.
    Retry(Vec<Uuid>),
    /// Retry every failed message matching a query.
    RetryQuery(QueueQuery),
    /// Pause (`true`) or resume delivery.
    SetPaused(bool),
    /// Set an event's method (`None` = the default).
    SetEventMethod {
        /// The event.
        event: String,
        /// The method.
        method: Option<Method>,
    },
    /// Send an event to yourself.
    SendEventTest(String),
    /// Read a user's opt-outs (`None` = yours).
    LoadOptOuts(Option<String>),
    /// Save an opt-out.
    SetOptOut {
        /// The event.
        event: String,
        /// Whose (`None` = yours).
        user: Option<String>,
        /// `true` opts out.
        disabled: bool,
    },
    /// Read your inbox.
    LoadInbox,
    /// Mark an inbox entry read or unread.
    MarkInbox {
        /// The entry.
        id: Uuid,
        /// `true` = read.
        read: bool,
    },
    /// Read the commonest failure reasons.
    LoadReasons,
    /// Read the replicas.
    LoadReplicas,
    /// Count what waits for a channel no replica has.
    LoadUndeliverable,
    /// Run `doctor`.
    RunDoctor,
    /// Read the newest audit rows.
    LoadAudit,
    /// Read every channel's health.
    LoadChannels,
    /// Read the scoped pauses.
    LoadPauses,
    /// Pause (`true`) or resume one method or target on every replica.
    SetChannelPaused {
        /// Method or target.
        scope: PauseScope,
        /// Its name.
        name: String,
        /// `true` pauses.
        paused: bool,
    },
    /// Explain an event's routing for these users and labels, writing nothing.
    Explain {
        /// The event.
        event: String,
        /// Usernames named as recipients.
        users: Vec<String>,
        /// `K=V` labels.
        labels: Vec<String>,
    },
}

/// The kinds of reads that refresh periodically; one of each runs at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Load {
    /// [`Effect::LoadSettings`].
    Settings,
    /// [`Effect::LoadVolumes`].
    Volumes,
    /// [`Effect::LoadCounts`].
    Counts,
    /// [`Effect::LoadThroughput`].
    Throughput,
    /// [`Effect::LoadPage`].
    Page,
    /// [`Effect::LoadReasons`].
    Reasons,
    /// [`Effect::LoadReplicas`].
    Replicas,
    /// [`Effect::LoadUndeliverable`].
    Undeliverable,
    /// [`Effect::LoadInbox`].
    Inbox,
    /// [`Effect::LoadAudit`].
    Audit,
    /// [`Effect::LoadChannels`].
    Channels,
    /// [`Effect::LoadPauses`].
    Pauses,
}

impl Effect {
    /// The periodic read this is, if any.
    pub fn load(&self) -> Option<Load> {
        Some(match self {
            Effect::LoadSettings => Load::Settings,
            Effect::LoadVolumes => Load::Volumes,
            Effect::LoadCounts => Load::Counts,
            Effect::LoadThroughput => Load::Throughput,
            Effect::LoadPage { .. } => Load::Page,
            Effect::LoadReasons => Load::Reasons,
            Effect::LoadReplicas => Load::Replicas,
            Effect::LoadUndeliverable => Load::Undeliverable,
            Effect::LoadInbox => Load::Inbox,
            Effect::LoadAudit => Load::Audit,
            Effect::LoadChannels => Load::Channels,
            Effect::LoadPauses => Load::Pauses,
            _ => return None,
        })
    }
}

impl Action {
    /// The periodic read this action answers, if any.
    pub fn answers(&self) -> Option<Load> {
        Some(match self {
            Action::SettingsLoaded(_) => Load::Settings,
            Action::VolumesLoaded(_) => Load::Volumes,
            Action::CountsLoaded(_) => Load::Counts,
            Action::ThroughputLoaded(_) => Load::Throughput,
            Action::PageLoaded { .. } => Load::Page,
            Action::ReasonsLoaded(_) => Load::Reasons,
            Action::ReplicasLoaded(_) => Load::Replicas,
            Action::UndeliverableLoaded(_) => Load::Undeliverable,
            Action::InboxLoaded(_) => Load::Inbox,
            Action::AuditLoaded(_) => Load::Audit,
            Action::ChannelsLoaded(_) => Load::Channels,
            Action::PausesLoaded(_) => Load::Pauses,
            _ => return None,
        })
    }
}
