//! The admin console (DESIGN §11): a ratatui app over the service layer.
//!
//! Shape (STYLE.md): [`state::AppState`] is plain data; terminal events become
//! [`action::Action`]s through the one action table in [`keymap`]; [`update::update`] is pure
//! and returns [`action::Effect`]s; the [`driver`] runs each effect in a task against the
//! service and sends its result back as an action; [`view::draw`] draws the state, only when it
//! changed and at most ~30 times a second. Nothing here touches the store directly.
//!
//! Where things live: `app/` (actions and effects, state, update, keymap, driver), `tabs/`
//! (one module per tab; the queue tab a folder), `chrome/` (header, footer, help, confirm,
//! theme, shared view helpers, the terminal). The old flat paths (`console::state`,
//! `console::theme`, …) are re-exported.

pub mod app;
pub mod chrome;
pub mod tabs;

pub use app::{action, driver, keymap, state, update};
pub use chrome::{confirm, footer, header, help, terminal, theme, view};
pub use tabs::queue::{filter, view as queue_view};
pub use tabs::{audit, channels, delivery, events, explain, inbox, optouts, queue, troubleshoot};

use app::results;

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chrono::Utc;
use crossterm::event::{Event, KeyEventKind};
use tokio::sync::{mpsc, watch};

use crate::dispatch::DispatcherState;
use crate::model::User;
use crate::service::{FrontEnd, Service};
use crate::telemetry::{LogHandle, LogRing, Metrics};

use action::Action;
use state::{AppState, Overlay, Session};
use terminal::{RemoteScreen, Screen, TerminalSession};
use theme::Theme;

/// `herald console` flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsoleOptions {
    /// Do not run a dispatcher in this process.
    pub no_dispatcher: bool,
    /// Remove every action that changes anything; implies `no_dispatcher`.
    pub read_only: bool,
}

impl ConsoleOptions {
    /// Whether this console runs a dispatcher. A read-only console runs none: a dispatcher
    /// changes the store (leases, outcomes, retention, its heartbeat row), and someone who
    /// only looks must not deliver from their terminal.
    pub fn embeds_dispatcher(&self) -> bool {
        !self.no_dispatcher && !self.read_only
    }
}

/// The shortest time between two frames (~30 fps).
const FRAME: Duration = Duration::from_millis(33);
/// How often live data is refreshed.
const TICK: Duration = Duration::from_secs(1);
/// How long a clean stop of the embedded dispatcher may take beyond `dispatch_timeout`, which
/// bounds each delivery still in flight: writing their outcomes and removing its replica row.
const DISPATCHER_STOP_SLACK: Duration = Duration::from_secs(15);

/// Runs the console for `caller` until `q`, with an embedded dispatcher unless told not to.
/// The terminal is restored on every way out; `logs`' stderr output is muted meanwhile.
pub async fn run(
    service: Arc<Service>,
    caller: User,
    options: ConsoleOptions,
    logs: Option<LogHandle>,
) -> Result<()> {
    ensure_terminal()?;
    let service = Arc::new(service.through(FrontEnd::Console));
    let config = service.config();
    let session = Session {
        user: caller.clone(),
        store_url: service.store().display_url().to_string(),
        read_only: options.read_only,
        embedded_dispatcher: options.embeds_dispatcher(),
        default_method: config.notifications.method,
        fetch_interval: config.notifications.fetch_interval,
    };
    let replica = if options.embeds_dispatcher() {
        Some(crate::runtime::start_replica(&service, Arc::new(Metrics::new())).await?)
    } else {
        None
    };
    let default_missing = replica.as_ref().is_some_and(|r| r.default_method_missing);
    let ring = logs
        .as_ref()
        .map_or_else(|| LogRing::new(0), LogHandle::ring);
    if let Some(logs) = &logs {
        logs.set_stderr(false);
    }
    if default_missing {
        // Into the log ring only: the Troubleshoot tab shows it.
        tracing::warn!(
            "the default delivery method {} is not configured; users get inbox copies only (`d` in Troubleshoot runs doctor)",
            config.notifications.method
        );
    }
    let states = replica.as_ref().map(|r| r.state());
    let (results_tx, results_rx) = mpsc::unbounded_channel();
    let driver = driver::Driver::new(service.clone(), caller, results_tx);
    let state = AppState::new(session, Utc::now());
    let outcome = local_ui_loop(state, driver, results_rx, ring, states).await;
    if let Some(logs) = &logs {
        logs.set_stderr(true);
    }
    if let Some(replica) = replica {
        // Each delivery in flight is bounded by dispatch_timeout; then writing the outcomes.
        let bound = config
            .notifications
            .dispatch_timeout
            .saturating_add(DISPATCHER_STOP_SLACK);
        replica.stop_within(bound).await?;
    }
    outcome
}

/// Refuses to go on unless stdin and stdout are a terminal (checked before any work that only
/// the console would use).
pub fn ensure_terminal() -> Result<()> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        bail!(
            "the console needs a terminal; for scripts use the other commands (e.g. `herald messages list`)"
        );
    }
    Ok(())
}

/// Reads terminal events on a thread of its own until `stop` (crossterm's reader blocks).
fn read_terminal(events: mpsc::UnboundedSender<Event>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        match crossterm::event::poll(Duration::from_millis(100)) {
            Ok(true) => match crossterm::event::read() {
                Ok(event) => {
                    if events.send(event).is_err() {
                        return;
                    }
                }
                Err(_) => return,
            },
            Ok(false) => {}
            Err(_) => return,
        }
    }
}

/// What a terminal event means now.
fn translate(state: &AppState, event: Event) -> Vec<Action> {
    match event {
        Event::Key(key) if key.kind != KeyEventKind::Release => {
            keymap::action_for_key(state, key).into_iter().collect()
        }
        Event::Resize(..) => vec![Action::Resized],
        Event::Paste(text) if matches!(state.overlay, Overlay::Prompt(_)) => text
            .chars()
            .filter(|c| !c.is_control())
            .map(|c| Action::Edit(tui_input::InputRequest::InsertChar(c)))
            .collect(),
        _ => Vec::new(),
    }
}

/// Waits for the dispatcher's next state; never returns when there is none.
async fn next_state(
    states: &mut Option<watch::Receiver<DispatcherState>>,
) -> Option<DispatcherState> {
    match states {
        Some(rx) => match rx.changed().await {
            Ok(()) => Some(*rx.borrow_and_update()),
            Err(_) => {
                *states = None;
                None
            }
        },
        None => std::future::pending().await,
    }
}

/// The console on the local terminal: its events read on a thread, SIGHUP and SIGTERM quit.
async fn local_ui_loop(
    state: AppState,
    driver: driver::Driver,
    results: mpsc::UnboundedReceiver<Action>,
    ring: LogRing,
    states: Option<watch::Receiver<DispatcherState>>,
) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let stop = async move {
        tokio::select! {
            _ = hangup.recv() => {}
            _ = terminate.recv() => {}
        }
    };
    let theme = Theme::from_env();
    let mut session = TerminalSession::enter().context("cannot take the terminal")?;
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let stop_reading = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop_reading.clone();
        std::thread::spawn(move || read_terminal(events_tx, stop))
    };
    let parts = Loop {
        driver,
        results,
        ring,
        states,
        theme,
    };
    let outcome = ui_loop(state, parts, &mut session, &mut events, stop).await;
    stop_reading.store(true, Ordering::Relaxed);
    drop(session);
    let _ = reader.join();
    outcome
}

/// A terminal that is not this process's, as an SSH session hands it to the console.
pub struct RemoteTerminal<W: std::io::Write> {
    /// Where the screen's bytes go (the session's channel).
    pub out: W,
    /// The size from the client's pty request.
    pub cols: u16,
    pub rows: u16,
    /// Colours or not, from the session's `NO_COLOR` and `TERM`.
    pub theme: Theme,
    /// The client's keystrokes and window changes, as terminal events.
    pub events: mpsc::UnboundedReceiver<Event>,
}

/// Runs the console for `caller` on a remote terminal until `q` or `stop` (the connection
/// gone, idle, the server stopping), then gives the terminal back. No dispatcher of its own:
/// `dispatcher` is the serving process's, shown in the header. Nothing process-wide is touched
/// (no raw mode, no panic hook, no environment), so sessions do not disturb each other.
pub async fn run_remote<W: std::io::Write>(
    service: Arc<Service>,
    caller: User,
    dispatcher: Option<watch::Receiver<DispatcherState>>,
    ring: LogRing,
    terminal: RemoteTerminal<W>,
    stop: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let config = service.config();
    let session = Session {
        user: caller.clone(),
        store_url: service.store().display_url().to_string(),
        read_only: false,
        embedded_dispatcher: dispatcher.is_some(),
        default_method: config.notifications.method,
        fetch_interval: config.notifications.fetch_interval,
    };
    let (results_tx, results) = mpsc::unbounded_channel();
    let driver = driver::Driver::new(service.clone(), caller, results_tx);
    let state = AppState::new(session, Utc::now());
    let RemoteTerminal {
        out,
        cols,
        rows,
        theme,
        mut events,
    } = terminal;
    let mut screen = RemoteScreen::enter(out, cols, rows).context("cannot take the terminal")?;
    let parts = Loop {
        driver,
        results,
        ring,
        states: dispatcher,
        theme,
    };
    let outcome = ui_loop(state, parts, &mut screen, &mut events, stop).await;
    let left = screen.leave().context("cannot give the terminal back");
    outcome.and(left)
}

/// What the UI loop works with besides its state, screen and input.
struct Loop {
    driver: driver::Driver,
    results: mpsc::UnboundedReceiver<Action>,
    ring: LogRing,
    states: Option<watch::Receiver<DispatcherState>>,
    theme: Theme,
}

async fn ui_loop(
    mut state: AppState,
    parts: Loop,
    screen: &mut impl Screen,
    events: &mut mpsc::UnboundedReceiver<Event>,
    stop: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let Loop {
        driver,
        mut results,
        ring,
        mut states,
        theme,
    } = parts;
    tokio::pin!(stop);
    let dispatch = |state: &mut AppState, action: Action| {
        for effect in update::update(state, action) {
            driver.spawn(effect);
        }
    };
    for effect in update::init(&mut state) {
        driver.spawn(effect);
    }
    let mut log_generation = ring.generation();
    dispatch(&mut state, Action::LogsAppended(ring.snapshot()));
    let mut frame = tokio::time::interval(FRAME);
    frame.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut drawn = None;
    loop {
        tokio::select! {
            Some(event) = events.recv() => {
                if let Event::Resize(cols, rows) = event {
                    screen.resize(cols, rows).context("cannot resize the console")?;
                }
                for action in translate(&state, event) {
                    dispatch(&mut state, action);
                }
            }
            Some(action) = results.recv() => dispatch(&mut state, action),
            _ = tick.tick() => dispatch(&mut state, Action::Tick(Utc::now())),
            Some(s) = next_state(&mut states) => dispatch(&mut state, Action::DispatcherChanged(s)),
            () = &mut stop => state.quit = true,
            _ = frame.tick() => {
                if !screen.held() {
                    // A task panicked and the hook gave the terminal back: stop drawing.
                    return Err(anyhow::anyhow!("the console stopped after an internal error (reported above)"));
                }
                let generation = ring.generation();
                if generation != log_generation {
                    let lines = ring.since(log_generation);
                    log_generation = generation;
                    dispatch(&mut state, Action::LogsAppended(lines));
                }
                if drawn != Some(state.revision) {
                    screen.draw(|f| view::draw(f, &state, theme)).context("cannot draw the console")?;
                    drawn = Some(state.revision);
                }
            }
        }
        if state.quit {
            return Ok(());
        }
    }
}
