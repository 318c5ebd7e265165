//! The console's state: plain data, changed only by [`crate::console::update::update`], drawn by the
//! views. Nothing here does I/O.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tui_input::Input;

use crate::dispatch::DispatcherState;
use crate::model::{ChannelPause, Method, Role, User};
use crate::service::Undeliverable;

use crate::console::action::{Effect, Load};
use crate::console::audit::AuditView;
use crate::console::channels::ChannelsState;
use crate::console::events::EventsState;
use crate::console::explain::ExplainState;
use crate::console::inbox::InboxState;
use crate::console::optouts::OptOutsState;
use crate::console::queue::QueueState;
use crate::console::troubleshoot::TroubleshootState;

/// The console's tabs, in the order of their number keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tab {
    /// The event catalog.
    Events,
    /// Per-event delivery methods.
    Delivery,
    /// Opt-outs.
    OptOuts,
    /// The message queue.
    Queue,
    /// Failure reasons, replicas, logs, doctor.
    Troubleshoot,
    /// The caller's inbox.
    Inbox,
}

impl Tab {
    /// Every tab, in order.
    pub const ALL: [Tab; 6] = [
        Tab::Events,
        Tab::Delivery,
        Tab::OptOuts,
        Tab::Queue,
        Tab::Troubleshoot,
        Tab::Inbox,
    ];

    /// The tab's title.
    pub fn title(self) -> &'static str {
        match self {
            Tab::Events => "Events",
            Tab::Delivery => "Delivery",
            Tab::OptOuts => "Opt-outs",
            Tab::Queue => "Queue",
            Tab::Troubleshoot => "Troubleshoot",
            Tab::Inbox => "Inbox",
        }
    }

    /// Its position, 0-based.
    pub fn index(self) -> usize {
        Tab::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }

    /// The tab after this one, wrapping.
    pub fn next(self) -> Tab {
        Tab::ALL[(self.index() + 1) % Tab::ALL.len()]
    }

    /// The tab before this one, wrapping.
    pub fn prev(self) -> Tab {
        Tab::ALL[(self.index() + Tab::ALL.len() - 1) % Tab::ALL.len()]
    }
}

/// Who may run an action, mirroring the service's role checks (which still apply).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Every user.
    Anyone,
    /// Owners and on-call: the whole queue and the pause switch.
    QueueWatcher,
    /// Owners only.
    Owner,
}

/// Who is at the console, against which store, with what rights.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// The caller.
    pub user: User,
    /// The store's URL, password removed.
    pub store_url: String,
    /// `--read-only`: every action that changes anything is gone.
    pub read_only: bool,
    /// Whether this process runs a dispatcher (`--no-dispatcher` turns it off).
    pub embedded_dispatcher: bool,
    /// `notifications.method`.
    pub default_method: Method,
    /// `notifications.fetch_interval`, for the stuck flag.
    pub fetch_interval: Duration,
}

impl Session {
    /// Whether the caller holds what `need` asks (owners hold everything).
    pub fn can(&self, need: Need) -> bool {
        let owner = self.user.has_role(Role::Owner);
        match need {
            Need::Anyone => true,
            Need::QueueWatcher => owner || self.user.has_role(Role::Oncall),
            Need::Owner => owner,
        }
    }
}

/// A question before a destructive action: what will happen, and the effect run on `y`.
#[derive(Debug, Clone, PartialEq)]
pub struct Confirm {
    /// The dialog's title, e.g. `Retry messages`.
    pub title: String,
    /// What exactly will happen, with how many.
    pub question: String,
    /// Run on `y`.
    pub effect: Effect,
}

/// What a text prompt is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptKind {
    /// The queue's filter (`status=… event=…`).
    QueueFilter,
    /// The log stream's regex.
    LogFilter,
    /// `:` commands.
    Command,
    /// Whose opt-outs to show.
    OptOutUser,
    /// The users and labels to explain an event with.
    Explain,
}

impl PromptKind {
    /// The label in front of the text.
    pub fn label(self) -> &'static str {
        match self {
            PromptKind::QueueFilter => "filter",
            PromptKind::LogFilter => "log regex",
            PromptKind::Command => ":",
            PromptKind::OptOutUser => "user",
            PromptKind::Explain => "users labels",
        }
    }
}

/// A text prompt with its editing state.
#[derive(Debug, Clone)]
pub struct Prompt {
    /// What it is for.
    pub kind: PromptKind,
    /// The text and cursor.
    pub input: Input,
}

/// What covers the tab, if anything; keys go to it first.
#[derive(Debug, Clone, Default)]
pub enum Overlay {
    /// Nothing: keys go to the tab.
    #[default]
    None,
    /// The help overlay, scrolled down this many lines.
    Help(u16),
    /// A confirmation.
    Confirm(Confirm),
    /// A text prompt.
    Prompt(Prompt),
}

/// The line under the footer: the last result or error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// What to say.
    pub text: String,
    /// Whether it reports a failure.
    pub error: bool,
}

/// Everything the console shows.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Who and where.
    pub session: Session,
    /// The clock, as of the last tick (views compute ages from it).
    pub now: DateTime<Utc>,
    /// The tab shown.
    pub tab: Tab,
    /// What covers it.
    pub overlay: Overlay,
    /// The last result or error.
    pub notice: Option<Notice>,
    /// The pause flag, once read.
    pub paused: Option<bool>,
    /// The embedded dispatcher's state, when there is one.
    pub dispatcher: Option<DispatcherState>,
    /// The Events and Delivery tabs' catalog.
    pub events: EventsState,
    /// The Opt-outs tab.
    pub optouts: OptOutsState,
    /// The Queue tab.
    pub queue: QueueState,
    /// The Troubleshoot tab.
    pub troubleshoot: TroubleshootState,
    /// The Troubleshoot tab's audit trail view.
    pub audit: AuditView,
    /// The Inbox tab.
    pub inbox: InboxState,
    /// The Troubleshoot tab's channel health panel.
    pub channels: ChannelsState,
    /// The Events tab's explain view.
    pub explain: ExplainState,
    /// The scoped pauses (one method or target held), once read.
    pub pauses: Option<Vec<ChannelPause>>,
    /// Messages no running replica can deliver (watchers only), once read.
    pub undeliverable: Option<Vec<Undeliverable>>,
    /// When they were last read.
    pub undeliverable_at: Option<DateTime<Utc>>,
    /// Periodic reads in flight (one of each at a time).
    pub loading: BTreeSet<Load>,
    /// Bumped on every visible change: the runner redraws when it moves.
    pub revision: u64,
    /// Set by `q`: the runner leaves.
    pub quit: bool,
}

impl AppState {
    /// A fresh console for `session` at `now`; nothing loaded yet.
    pub fn new(session: Session, now: DateTime<Utc>) -> AppState {
        AppState {
            dispatcher: session
                .embedded_dispatcher
                .then_some(DispatcherState::Starting),
            session,
            now,
            tab: Tab::Events,
            overlay: Overlay::None,
            notice: None,
            paused: None,
            events: EventsState::default(),
            optouts: OptOutsState::default(),
            queue: QueueState::default(),
            troubleshoot: TroubleshootState::default(),
            audit: AuditView::default(),
            inbox: InboxState::default(),
            channels: ChannelsState::default(),
            explain: ExplainState::default(),
            pauses: None,
            undeliverable: None,
            undeliverable_at: None,
            loading: BTreeSet::new(),
            revision: 0,
            quit: false,
        }
    }

    /// Says `text` on the notice line.
    pub fn say(&mut self, text: impl Into<String>) {
        self.notice = Some(Notice {
            text: text.into(),
            error: false,
        });
    }

    /// Says `text` as an error on the notice line.
    pub fn fail(&mut self, text: impl Into<String>) {
        self.notice = Some(Notice {
            text: text.into(),
            error: true,
        });
    }

    /// Whether the caller may see the whole queue (owners and on-call).
    pub fn watches_queue(&self) -> bool {
        self.session.can(Need::QueueWatcher)
    }
}
