//! Taking the terminal and giving it back: raw mode, the alternate screen, bracketed paste and
//! the hidden cursor — restored on quit, on error (the session's `Drop`) and on panic (a hook
//! that restores before the panic message is printed, so it is readable).

use std::io::{self, Stdout, Write};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use crossterm::cursor;
use crossterm::event::{DisableBracketedPaste, EnableBracketedPaste};
use crossterm::execute;
use crossterm::terminal::{
    BeginSynchronizedUpdate, EndSynchronizedUpdate, EnterAlternateScreen, LeaveAlternateScreen,
    disable_raw_mode, enable_raw_mode,
};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

/// Whether the console holds the terminal now (so restoring twice is harmless, and a later
/// panic elsewhere writes nothing).
static HELD: AtomicBool = AtomicBool::new(false);

static HOOK: Once = Once::new();

/// Writes the sequences that give the screen back: bracketed paste off, leave the alternate
/// screen, show the cursor.
pub fn write_restore(out: &mut impl Write) -> io::Result<()> {
    execute!(
        out,
        DisableBracketedPaste,
        LeaveAlternateScreen,
        cursor::Show
    )
}

/// Whether the console still holds the terminal (a panic on any thread gives it back).
pub fn held() -> bool {
    HELD.load(Ordering::SeqCst)
}

/// Gives the terminal back if the console holds it: raw mode off, then [`write_restore`].
pub fn restore() -> io::Result<()> {
    if !HELD.swap(false, Ordering::SeqCst) {
        return Ok(());
    }
    let raw = disable_raw_mode();
    write_restore(&mut io::stdout())?;
    raw
}

/// Installs a panic hook that runs `restore` first, then the hook that was there (which
/// prints the panic). A panic a channel catches and turns into a delivery outcome
/// ([`crate::channels::panic_is_caught`]) keeps the terminal and goes to the log instead.
pub fn install_panic_hook(restore: impl Fn() + Send + Sync + 'static) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if crate::channels::panic_is_caught() {
            tracing::warn!("caught, the delivery fails: {info}");
            return;
        }
        restore();
        previous(info);
    }));
}

/// The terminal while the console holds it; dropping it gives the terminal back.
pub struct TerminalSession {
    /// The ratatui terminal over stdout.
    pub terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl TerminalSession {
    /// Takes the terminal: raw mode, alternate screen, bracketed paste, cursor hidden; and,
    /// once per process, the restoring panic hook.
    pub fn enter() -> io::Result<TerminalSession> {
        HOOK.call_once(|| {
            install_panic_hook(|| {
                let _ = restore();
            })
        });
        enable_raw_mode()?;
        HELD.store(true, Ordering::SeqCst);
        let entered = execute!(
            io::stdout(),
            EnterAlternateScreen,
            EnableBracketedPaste,
            cursor::Hide
        )
        .and_then(|()| Terminal::new(CrosstermBackend::new(io::stdout())));
        match entered {
            Ok(terminal) => Ok(TerminalSession { terminal }),
            Err(e) => {
                let _ = restore();
                Err(e)
            }
        }
    }

    /// Draws one frame inside a synchronized update, so terminals show it whole (smooth over
    /// SSH).
    pub fn draw(&mut self, render: impl FnOnce(&mut ratatui::Frame)) -> io::Result<()> {
        execute!(io::stdout(), BeginSynchronizedUpdate)?;
        let drawn = self.terminal.draw(render).map(|_| ());
        execute!(io::stdout(), EndSynchronizedUpdate)?;
        drawn
    }
}

impl Drop for TerminalSession {
    fn drop(&mut self) {
        let _ = restore();
    }
}
