//! The console drawn into ratatui's `TestBackend`: every tab at 80×24 and 120×40, for an
//! owner and a member, paused and running (insta snapshots in `tests/it/snapshots/`); colours
//! that carry meaning checked cell by cell; tiny terminals; and a panic inside a view leaves
//! the terminal restored.

use crate::common::console as console_fixtures;

use std::io::Write;
use std::sync::{Arc, Mutex};

use console_fixtures::{detail, member, on_tab, owner};
use herald::console::action::Action;
use herald::console::state::{AppState, Tab};
use herald::console::terminal::{install_panic_hook, write_restore};
use herald::console::theme::Theme;
use herald::console::update::update;
use herald::console::view::draw;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::{Color, Modifier};

fn render(state: &AppState, width: u16, height: u16, theme: Theme) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("a test terminal");
    terminal
        .draw(|f| draw(f, state, theme))
        .expect("drawing never fails on a test backend");
    terminal.backend().buffer().clone()
}

fn text(buffer: &Buffer) -> String {
    let width = usize::from(buffer.area.width);
    buffer
        .content
        .chunks(width)
        .map(|row| {
            let line: String = row.iter().map(|c| c.symbol()).collect();
            line.trim_end().to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn tab_slug(tab: Tab) -> String {
    tab.title().to_lowercase().replace('-', "")
}

#[test]
fn every_tab_for_owner_and_member_paused_and_running_at_both_sizes() {
    for tab in Tab::ALL {
        for (who, user) in [("owner", owner()), ("member", member())] {
            for paused in [false, true] {
                let state = on_tab(user.clone(), paused, tab);
                for (w, h) in [(80, 24), (120, 40)] {
                    let name = format!(
                        "{}_{who}_{}_{w}x{h}",
                        tab_slug(tab),
                        if paused { "paused" } else { "running" }
                    );
                    insta::assert_snapshot!(name, text(&render(&state, w, h, Theme::plain())));
                }
            }
        }
    }
}

#[test]
fn details_overlays_and_prompts() {
    type Setup = fn() -> AppState;
    let cases: [(&str, Setup); 5] = [
        ("queue_detail_80x24", || {
            let mut s = on_tab(owner(), false, Tab::Queue);
            let _ = update(&mut s, Action::MessageLoaded(Ok(Box::new(detail()))));
            s
        }),
        ("events_detail_80x24", || {
            let mut s = on_tab(owner(), false, Tab::Events);
            let _ = update(&mut s, Action::Open);
            s
        }),
        ("queue_confirm_retry_80x24", || {
            let mut s = on_tab(owner(), false, Tab::Queue);
            let _ = update(&mut s, Action::RetryOne);
            s
        }),
        ("queue_filter_prompt_80x24", || {
            let mut s = on_tab(owner(), false, Tab::Queue);
            let _ = update(&mut s, Action::Filter);
            for c in "status=permanent_failure".chars() {
                let _ = update(&mut s, Action::Edit(tui_input::InputRequest::InsertChar(c)));
            }
            s
        }),
        ("confirm_resume_80x24", || {
            let mut s = on_tab(owner(), true, Tab::Events);
            let _ = update(&mut s, Action::TogglePause);
            s
        }),
    ];
    for (name, state) in cases {
        insta::assert_snapshot!(name, text(&render(&state(), 80, 24, Theme::plain())));
    }

    let mut s = on_tab(owner(), false, Tab::Queue);
    let _ = update(&mut s, Action::MessageLoaded(Ok(Box::new(detail()))));
    insta::assert_snapshot!(
        "queue_detail_120x40",
        text(&render(&s, 120, 40, Theme::plain()))
    );

    for (who, user) in [("owner", owner()), ("member", member())] {
        let mut s = on_tab(user, false, Tab::Events);
        let _ = update(&mut s, Action::Help);
        insta::assert_snapshot!(
            format!("help_{who}_120x40"),
            text(&render(&s, 120, 40, Theme::plain()))
        );
    }
}

/// The cells of `buffer` whose text is in the row that contains `needle`, from its start.
fn cells_of(buffer: &Buffer, needle: &str) -> Vec<ratatui::buffer::Cell> {
    let width = usize::from(buffer.area.width);
    for row in buffer.content.chunks(width) {
        let line: String = row.iter().map(|c| c.symbol()).collect();
        if let Some(byte) = line.find(needle) {
            let start = line[..byte].chars().count();
            return row[start..start + needle.chars().count()].to_vec();
        }
    }
    panic!("`{needle}` is not on screen:\n{}", text(buffer));
}

#[test]
fn the_paused_banner_is_white_on_red_and_bold() {
    let state = on_tab(member(), true, Tab::Events);
    let buffer = render(&state, 80, 24, Theme::colored());
    for cell in cells_of(&buffer, "■ PAUSED ■") {
        assert_eq!(cell.bg, Color::Red);
        assert_eq!(cell.fg, Color::White);
        assert!(cell.modifier.contains(Modifier::BOLD));
    }
    let running = render(
        &on_tab(member(), false, Tab::Events),
        80,
        24,
        Theme::colored(),
    );
    assert!(!text(&running).contains("■ PAUSED ■"));
}

#[test]
fn failure_states_are_red_and_yellow_in_the_queue() {
    let state = on_tab(owner(), false, Tab::Queue);
    let buffer = render(&state, 120, 40, Theme::colored());
    let perm = cells_of(&buffer, "permanent_failure");
    assert!(
        perm.iter().all(|c| c.fg == Color::Red),
        "permanent failures are red"
    );
    let temp = cells_of(&buffer, "temporary_failure");
    assert!(
        temp.iter().all(|c| c.fg == Color::Yellow),
        "temporary failures are yellow"
    );
    let stuck = cells_of(&buffer, "pending STUCK");
    assert!(
        stuck.iter().all(|c| c.fg == Color::Red),
        "stuck messages are red"
    );
}

#[test]
fn no_color_draws_without_any_colour() {
    for tab in Tab::ALL {
        let state = on_tab(owner(), true, tab);
        let buffer = render(&state, 120, 40, Theme::plain());
        for cell in &buffer.content {
            assert_eq!(
                cell.fg,
                Color::Reset,
                "{tab:?}: `{}` has a colour",
                cell.symbol()
            );
            assert_eq!(
                cell.bg,
                Color::Reset,
                "{tab:?}: `{}` has a colour",
                cell.symbol()
            );
        }
        let banner = cells_of(&buffer, "■ PAUSED ■");
        assert!(
            banner
                .iter()
                .all(|c| c.modifier.contains(Modifier::REVERSED))
        );
    }
}

#[test]
fn tiny_terminals_get_one_line_and_never_a_panic() {
    let state = on_tab(owner(), true, Tab::Queue);
    for (w, h) in [
        (1, 1),
        (10, 3),
        (39, 24),
        (80, 9),
        (40, 10),
        (41, 11),
        (200, 12),
    ] {
        let buffer = render(&state, w, h, Theme::colored());
        if w < 40 || h < 10 {
            let shown = text(&buffer);
            let first = shown.lines().next().unwrap_or_default();
            assert!(
                first.starts_with("terminal too small") || "terminal too small".starts_with(first),
                "{w}x{h}: {shown}"
            );
        }
    }
    let mut s = on_tab(owner(), false, Tab::Queue);
    let _ = update(&mut s, Action::RetryOne);
    for tab in Tab::ALL {
        s.tab = tab;
        for (w, h) in [(40, 10), (45, 12), (60, 15)] {
            render(&s, w, h, Theme::colored());
        }
    }
}

/// Collects what the restore hook writes.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<u8>>>);

impl Write for Recorder {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("not poisoned").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A panic hook, as `std::panic::take_hook` hands it out.
type PanicHook = dyn Fn(&std::panic::PanicHookInfo<'_>) + Send + Sync;

/// Puts back, when dropped, the panic hook that was in place when it was made:
/// [`install_panic_hook`] sets the hook of the whole process, and every integration test runs
/// in this one.
struct SavedPanicHook(Arc<PanicHook>);

impl SavedPanicHook {
    fn save() -> SavedPanicHook {
        let hook: Arc<PanicHook> = Arc::from(std::panic::take_hook());
        let current = Arc::clone(&hook);
        std::panic::set_hook(Box::new(move |info| current(info)));
        SavedPanicHook(hook)
    }
}

impl Drop for SavedPanicHook {
    fn drop(&mut self) {
        // Setting a hook while panicking aborts: a test that failed leaves its hook in place.
        if std::thread::panicking() {
            return;
        }
        let hook = Arc::clone(&self.0);
        std::panic::set_hook(Box::new(move |info| hook(info)));
    }
}

#[test]
fn a_panic_inside_a_view_restores_the_terminal_before_the_message() {
    let saved = SavedPanicHook::save();
    let recorder = Recorder::default();
    let restored = recorder.clone();
    install_panic_hook(move || {
        let mut out = restored.clone();
        let _ = write_restore(&mut out);
    });
    let state = on_tab(owner(), false, Tab::Queue);
    let outcome = std::panic::catch_unwind(|| {
        let mut terminal = Terminal::new(TestBackend::new(80, 24)).expect("a test terminal");
        let _ = terminal.draw(|f| {
            draw(f, &state, Theme::plain());
            panic!("a view panicked");
        });
    });
    assert!(outcome.is_err(), "the view panicked");
    let written = String::from_utf8_lossy(&recorder.0.lock().expect("not poisoned")).into_owned();
    assert!(
        written.contains("\u{1b}[?1049l"),
        "left the alternate screen: {written:?}"
    );
    assert!(
        written.contains("\u{1b}[?25h"),
        "showed the cursor: {written:?}"
    );
    assert!(
        written.contains("\u{1b}[?2004l"),
        "stopped bracketed paste: {written:?}"
    );

    drop(saved);
    let recorded = recorder.0.lock().expect("not poisoned").len();
    let _ = std::panic::catch_unwind(|| panic!("a panic after the test"));
    let after = recorder.0.lock().expect("not poisoned").len();
    assert_eq!(
        after, recorded,
        "the restoring hook is gone once the test ends"
    );
}

/// With `webhook` the default and `run_failure` sent by `slack_webhook`, the Events and
/// Delivery tables show every METHOD cell whole at 80 and 120 columns.
#[test]
fn events_and_delivery_fit_the_longest_method() {
    use herald::model::Method;
    for tab in [Tab::Events, Tab::Delivery] {
        let mut s = on_tab(owner(), false, tab);
        s.session.default_method = Method::Webhook;
        for e in &mut s.events.catalog {
            if e.method.is_some() {
                e.method = Some(Method::SlackWebhook);
            }
        }
        for (w, h) in [(80, 24), (120, 40)] {
            let shown = text(&render(&s, w, h, Theme::plain()));
            assert!(shown.contains("webhook (default)"), "{shown}");
            assert!(shown.contains("slack_webhook "), "{shown}");
            assert!(shown.contains("custom_notification "), "{shown}");
            insta::assert_snapshot!(format!("{}_long_methods_{w}x{h}", tab_slug(tab)), shown);
        }
    }
}

/// Issue 13's panels at both sizes: the header listing scoped pauses (alone, and beside the
/// global PAUSED banner), the explain view, and the Troubleshoot tab with a paused target
/// selected and the confirmation its `p` asks.
#[test]
fn cockpit_panels_at_both_sizes() {
    use crate::console_update::cockpit::explained_state;
    use herald::model::{ChannelPause, PauseScope};
    let pauses = || {
        let pause = |scope, name: &str| ChannelPause {
            scope,
            name: name.into(),
            paused_by: "olive".into(),
            paused_at: console_fixtures::now(),
        };
        vec![
            pause(PauseScope::Method, "smtp"),
            pause(PauseScope::Target, "alice/dm"),
            pause(PauseScope::Target, "ops-alerts"),
        ]
    };
    let scoped = |globally: bool| {
        let mut s = on_tab(owner(), globally, Tab::Troubleshoot);
        let _ = update(&mut s, Action::PausesLoaded(Ok(pauses())));
        let mut rows = console_fixtures::channel_rows();
        for row in &mut rows {
            row.paused = row.method == herald::model::Method::Smtp
                || matches!(row.target.as_deref(), Some("ops-alerts" | "alice/dm"));
        }
        let _ = update(&mut s, Action::ChannelsLoaded(Ok(rows)));
        for _ in 0..3 {
            let _ = update(&mut s, Action::Down);
        }
        s
    };
    let confirm = {
        let mut s = scoped(false);
        let _ = update(&mut s, Action::ToggleChannelPause);
        s
    };
    let cases = [
        ("troubleshoot_scoped_pauses", scoped(false)),
        ("troubleshoot_scoped_and_global_pause", scoped(true)),
        ("troubleshoot_confirm_channel_resume", confirm),
        ("events_explain", explained_state()),
    ];
    for (name, state) in cases {
        for (w, h) in [(80, 24), (120, 40)] {
            insta::assert_snapshot!(
                format!("{name}_{w}x{h}"),
                text(&render(&state, w, h, Theme::plain()))
            );
        }
    }
}
