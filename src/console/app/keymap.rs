//! The action tables: [`ACTIONS`] binds keys to actions and describes them, [`COMMANDS`] does
//! the same for the `:` command line. Key handling, the footer hints, the `?` help overlay,
//! the `:` parser and the permission gate in `update` all read them, so a key or command that
//! is not here does nothing, and an action hidden from a role is hidden everywhere at once.

use crossterm::event::{Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::console::action::Action;
use crate::console::state::{AppState, Need, Overlay, Tab};

/// A key: a code and the modifiers that must be held (Shift is ignored for characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// The key.
    pub code: KeyCode,
    /// Ctrl / Alt as needed.
    pub mods: KeyModifiers,
}

const fn key(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        mods: KeyModifiers::NONE,
    }
}

const fn ctrl(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        mods: KeyModifiers::CONTROL,
    }
}

const fn code(code: KeyCode) -> Key {
    Key {
        code,
        mods: KeyModifiers::NONE,
    }
}

/// Where a binding applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everywhere, even in prompts and dialogs (Ctrl-C).
    Always,
    /// Every tab, when no overlay is open.
    Global,
    /// One tab, when no overlay is open.
    Tab(Tab),
    /// The confirmation dialog.
    Confirm,
    /// The help overlay.
    Help,
    /// A text prompt (other keys edit the text).
    Prompt,
}

/// One row of the action table.
#[derive(Debug, Clone)]
pub struct ActionSpec {
    /// The keys that trigger it.
    pub keys: &'static [Key],
    /// How the keys are written in the footer and help.
    pub label: &'static str,
    /// What it does.
    pub action: Action,
    /// Words for the footer and help.
    pub description: &'static str,
    /// Where it applies.
    pub scope: Scope,
    /// Who may run it.
    pub needs: Need,
    /// Whether it changes anything (absent in `--read-only`).
    pub mutates: bool,
    /// Whether it asks for confirmation first.
    pub destructive: bool,
    /// Whether the footer shows it.
    pub footer: bool,
}

const fn spec(
    scope: Scope,
    keys: &'static [Key],
    label: &'static str,
    action: Action,
    description: &'static str,
) -> ActionSpec {
    ActionSpec {
        keys,
        label,
        action,
        description,
        scope,
        needs: Need::Anyone,
        mutates: false,
        destructive: false,
        footer: false,
    }
}

impl ActionSpec {
    const fn needs(mut self, needs: Need) -> Self {
        self.needs = needs;
        self
    }
    const fn mutates(mut self) -> Self {
        self.mutates = true;
        self
    }
    const fn destructive(mut self) -> Self {
        self.mutates = true;
        self.destructive = true;
        self
    }
    const fn footer(mut self) -> Self {
        self.footer = true;
        self
    }
}

use Scope::{Global, Tab as In};

/// Every binding of the console, one per line: scope, keys, label, action, words, then who
/// may run it (`needs`), whether it changes anything (`mutates`) or asks first
/// (`destructive`), and whether the footer shows it. Tab bindings come first so the footer
/// reads a tab's verbs before the global ones.
#[rustfmt::skip]
pub static ACTIONS: &[ActionSpec] = &[
    spec(Scope::Always, &[ctrl('c')], "Ctrl-C", Action::Quit, "quit"),
    spec(In(Tab::Events), &[code(KeyCode::Enter)], "Enter", Action::Open, "detail").footer(),
    spec(In(Tab::Events), &[key('t')], "t", Action::SendTest, "send yourself a test").mutates().footer(),
    spec(In(Tab::Events), &[key('x')], "x", Action::Explain, "explain")
        .needs(Need::QueueWatcher).footer(),
    spec(In(Tab::Delivery), &[key('m'), key(' ')], "m/space", Action::CycleMethod, "cycle method")
        .needs(Need::Owner).mutates().footer(),
    spec(In(Tab::Delivery), &[key('x')], "x", Action::ResetMethod, "reset to default")
        .needs(Need::Owner).mutates().footer(),
    spec(In(Tab::OptOuts), &[key(' ')], "space", Action::ToggleOptOut, "toggle on/off").mutates().footer(),
    spec(In(Tab::OptOuts), &[key('u')], "u", Action::SwitchUser, "switch user").needs(Need::Owner).footer(),
    spec(In(Tab::Queue), &[key('/')], "/", Action::Filter, "filter").footer(),
    spec(In(Tab::Queue), &[code(KeyCode::Enter)], "Enter", Action::Open, "detail").footer(),
    spec(In(Tab::Queue), &[key(' ')], "space", Action::ToggleMark, "mark")
        .needs(Need::Owner).mutates().footer(),
    spec(In(Tab::Queue), &[key('r')], "r", Action::RetryOne, "retry").needs(Need::Owner).destructive().footer(),
    spec(In(Tab::Queue), &[key('R')], "R", Action::RetryMarked, "retry marked")
        .needs(Need::Owner).destructive().footer(),
    spec(In(Tab::Queue), &[key('A')], "A", Action::RetryAll, "retry all filtered")
        .needs(Need::Owner).destructive().footer(),
    spec(In(Tab::Troubleshoot), &[code(KeyCode::Enter)], "Enter", Action::Open, "show messages")
        .needs(Need::QueueWatcher).footer(),
    spec(In(Tab::Troubleshoot), &[key('p')], "p", Action::ToggleChannelPause, "pause/resume channel")
        .needs(Need::QueueWatcher).destructive().footer(),
    spec(In(Tab::Troubleshoot), &[key('a')], "a", Action::ToggleAudit, "audit trail").needs(Need::Owner).footer(),
    spec(In(Tab::Troubleshoot), &[code(KeyCode::Left), code(KeyCode::Right), key('h'), key('l')], "←/→",
        Action::SwitchPane, "channels/reasons").needs(Need::QueueWatcher).footer(),
    spec(In(Tab::Troubleshoot), &[key('/')], "/", Action::Filter, "filter logs").needs(Need::QueueWatcher).footer(),
    spec(In(Tab::Troubleshoot), &[key('d')], "d", Action::RunDoctor, "run doctor").needs(Need::QueueWatcher).footer(),
    spec(In(Tab::Inbox), &[code(KeyCode::Enter)], "Enter", Action::Open, "read").footer(),
    spec(In(Tab::Inbox), &[key(' '), key('m')], "space/m", Action::ToggleRead, "mark read/unread")
        .mutates().footer(),
    spec(Global, &[key('P')], "P", Action::TogglePause, "pause/resume")
        .needs(Need::QueueWatcher).destructive().footer(),
    spec(Global, &[key('?')], "?", Action::Help, "help").footer(),
    spec(Global, &[key('q')], "q", Action::Quit, "quit").footer(),
    spec(Global, &[key('1')], "1", Action::GoTab(Tab::Events), "Events tab"),
    spec(Global, &[key('2')], "2", Action::GoTab(Tab::Delivery), "Delivery tab"),
    spec(Global, &[key('3')], "3", Action::GoTab(Tab::OptOuts), "Opt-outs tab"),
    spec(Global, &[key('4')], "4", Action::GoTab(Tab::Queue), "Queue tab"),
    spec(Global, &[key('5')], "5", Action::GoTab(Tab::Troubleshoot), "Troubleshoot tab"),
    spec(Global, &[key('6')], "6", Action::GoTab(Tab::Inbox), "Inbox tab"),
    spec(Global, &[code(KeyCode::Tab)], "Tab", Action::NextTab, "next tab"),
    spec(Global, &[code(KeyCode::BackTab)], "S-Tab", Action::PrevTab, "previous tab"),
    spec(Global, &[key(':')], ":", Action::Command, "command (:queue :logs :q)"),
    spec(Global, &[key('k'), code(KeyCode::Up)], "k/↑", Action::Up, "up"),
    spec(Global, &[key('j'), code(KeyCode::Down)], "j/↓", Action::Down, "down"),
    spec(Global, &[code(KeyCode::PageUp), ctrl('b')], "PgUp", Action::PageUp, "page up"),
    spec(Global, &[code(KeyCode::PageDown), ctrl('f')], "PgDn", Action::PageDown, "page down"),
    spec(Global, &[key('g'), code(KeyCode::Home)], "g/Home", Action::Top, "first row"),
    spec(Global, &[key('G'), code(KeyCode::End)], "G/End", Action::Bottom, "last row"),
    spec(Global, &[code(KeyCode::Esc)], "Esc", Action::Back, "back"),
    spec(Global, &[ctrl('r')], "Ctrl-R", Action::Refresh, "reload now"),
    spec(Scope::Confirm, &[key('y'), key('Y')], "y", Action::ConfirmYes, "yes, do it").footer(),
    spec(Scope::Confirm, &[key('n'), key('N'), code(KeyCode::Esc)], "n/Esc", Action::ConfirmNo, "no").footer(),
    spec(Scope::Prompt, &[code(KeyCode::Enter)], "Enter", Action::SubmitInput, "apply").footer(),
    spec(Scope::Prompt, &[code(KeyCode::Esc)], "Esc", Action::Back, "cancel").footer(),
    spec(Scope::Help, &[key('k'), code(KeyCode::Up)], "k/↑", Action::Up, "scroll up").footer(),
    spec(Scope::Help, &[key('j'), code(KeyCode::Down)], "j/↓", Action::Down, "scroll down").footer(),
    spec(Scope::Help, &[code(KeyCode::Esc), key('?'), key('q')], "Esc/?", Action::Back, "close").footer(),
];

/// One `:` command: the names it answers to (the first is the one the help lists) and the
/// action it runs.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    /// The names typed after `:`; the first is the one the help and hints show.
    pub names: &'static [&'static str],
    /// What it does.
    pub action: Action,
    /// Whether the hint after an unknown command suggests it.
    pub hinted: bool,
}

const fn command(names: &'static [&'static str], action: Action) -> CommandSpec {
    CommandSpec {
        names,
        action,
        hinted: true,
    }
}

impl CommandSpec {
    const fn unhinted(mut self) -> Self {
        self.hinted = false;
        self
    }

    /// How the help writes it: `:events`.
    pub fn label(&self) -> String {
        format!(":{}", self.names[0])
    }
}

/// Every `:` command, in the order the help lists them. `:troubleshoot` and `:logs` open the
/// same tab; the hint after an unknown command names only `:logs`.
#[rustfmt::skip]
pub static COMMANDS: &[CommandSpec] = &[
    command(&["events", "event", "catalog", "1"], Action::GoTab(Tab::Events)),
    command(&["delivery", "methods", "prefs", "2"], Action::GoTab(Tab::Delivery)),
    command(&["optouts", "opt-outs", "optout", "3"], Action::GoTab(Tab::OptOuts)),
    command(&["queue", "messages", "msgs", "4"], Action::GoTab(Tab::Queue)),
    command(&["troubleshoot", "reasons", "replicas", "doctor", "5"], Action::GoTab(Tab::Troubleshoot))
        .unhinted(),
    command(&["logs", "log"], Action::GoTab(Tab::Troubleshoot)),
    command(&["inbox", "6"], Action::GoTab(Tab::Inbox)),
    command(&["help", "h"], Action::Help),
    command(&["q", "q!", "quit", "exit"], Action::Quit),
];

/// The action a `:` command line names, if any.
pub fn command_action(text: &str) -> Option<Action> {
    COMMANDS
        .iter()
        .find(|c| c.names.contains(&text))
        .map(|c| c.action.clone())
}

/// The commands written out for a hint or the help: `:events :delivery …`, all of them or
/// only the hinted ones.
pub fn command_list(hinted_only: bool) -> String {
    COMMANDS
        .iter()
        .filter(|c| c.hinted || !hinted_only)
        .map(CommandSpec::label)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether the session may run `spec` at all (role and `--read-only`).
pub fn permitted(state: &AppState, spec: &ActionSpec) -> bool {
    state.session.can(spec.needs) && !(state.session.read_only && spec.mutates)
}

/// The scope keys go to now: the overlay's, else the tab's and the global ones.
fn in_scope(state: &AppState, scope: Scope) -> bool {
    match (&state.overlay, scope) {
        (_, Scope::Always) => true,
        (Overlay::None, Scope::Global) => true,
        (Overlay::None, Scope::Tab(tab)) => tab == state.tab,
        (Overlay::Confirm(_), Scope::Confirm) => true,
        (Overlay::Help(_), Scope::Help) => true,
        (Overlay::Prompt(_), Scope::Prompt) => true,
        _ => false,
    }
}

/// The bindings active now, in table order: permitted and in scope.
pub fn active(state: &AppState) -> impl Iterator<Item = &'static ActionSpec> + '_ {
    ACTIONS
        .iter()
        .filter(move |s| in_scope(state, s.scope) && permitted(state, s))
}

/// The bindings the help overlay lists: every permitted one, whatever the scope.
pub fn available(state: &AppState) -> impl Iterator<Item = &'static ActionSpec> + '_ {
    ACTIONS.iter().filter(move |s| permitted(state, s))
}

/// The footer's hints for now.
pub fn footer_hints(state: &AppState) -> Vec<&'static ActionSpec> {
    active(state).filter(|s| s.footer).collect()
}

/// Whether `action` may run now. An action bound in the table needs a permitted binding —
/// among those for the current tab when it has any there, else among all; results and ticks,
/// which no key produces, always may.
pub fn allowed(state: &AppState, action: &Action) -> bool {
    let bound: Vec<&ActionSpec> = ACTIONS.iter().filter(|s| s.action == *action).collect();
    let here: Vec<&ActionSpec> = bound
        .iter()
        .copied()
        .filter(|s| !matches!(s.scope, Scope::Tab(tab) if tab != state.tab))
        .collect();
    let relevant = if here.is_empty() { bound } else { here };
    relevant.is_empty() || relevant.iter().any(|s| permitted(state, s))
}

fn matches(binding: &Key, event: &KeyEvent) -> bool {
    if binding.code != event.code {
        return false;
    }
    let mods = if matches!(event.code, KeyCode::Char(_)) {
        event.modifiers - KeyModifiers::SHIFT
    } else {
        event.modifiers
    };
    mods == binding.mods
}

/// The action a key means now, if any. In a prompt, keys the table does not bind edit the
/// text.
pub fn action_for_key(state: &AppState, event: KeyEvent) -> Option<Action> {
    if event.kind == KeyEventKind::Release {
        return None;
    }
    if let Some(spec) = active(state).find(|s| s.keys.iter().any(|k| matches(k, &event))) {
        return Some(spec.action.clone());
    }
    if let Overlay::Prompt(_) = state.overlay {
        return tui_input::backend::crossterm::to_input_request(&Event::Key(event))
            .map(Action::Edit);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_command_name_means_one_command() {
        let mut names: Vec<&str> = COMMANDS
            .iter()
            .flat_map(|c| c.names.iter().copied())
            .collect();
        let all = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all);
    }

    #[test]
    fn the_help_lists_every_command_and_the_hint_leaves_out_troubleshoot() {
        assert_eq!(
            command_list(false),
            ":events :delivery :optouts :queue :troubleshoot :logs :inbox :help :q"
        );
        assert_eq!(
            command_list(true),
            ":events :delivery :optouts :queue :logs :inbox :help :q"
        );
        assert_eq!(
            command_action("doctor"),
            Some(Action::GoTab(Tab::Troubleshoot))
        );
        assert_eq!(command_action("frobnicate"), None);
    }
}
