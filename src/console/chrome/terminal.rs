//! Taking the terminal and giving it back: raw mode, the alternate screen, bracketed paste and
//! the hidden cursor — restored on quit, on error (the session's `Drop`) and on panic (a hook
//! that restores before the panic message is printed, so it is readable). That is the local
//! terminal's state, once per process; a console over SSH draws on a [`RemoteScreen`] instead,
//! whose state is its own (its size, its bytes) and which touches nothing process-wide.

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
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;
use ratatui::{Terminal, TerminalOptions, Viewport};

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
}

/// Where the console draws: the local terminal ([`TerminalSession`]) or an SSH session's
/// channel ([`RemoteScreen`]).
pub trait Screen {
    /// Draws one frame inside a synchronized update, so terminals show it whole (smooth over
    /// SSH).
    fn draw(&mut self, render: impl FnOnce(&mut ratatui::Frame)) -> io::Result<()>;
    /// Whether the console still holds this screen (a panic gives the local terminal back).
    fn held(&self) -> bool;
    /// The screen is now `cols` × `rows` (the local terminal's size is read when drawing).
    fn resize(&mut self, cols: u16, rows: u16) -> io::Result<()>;
}

impl Screen for TerminalSession {
    fn draw(&mut self, render: impl FnOnce(&mut ratatui::Frame)) -> io::Result<()> {
        execute!(io::stdout(), BeginSynchronizedUpdate)?;
        let drawn = self.terminal.draw(render).map(|_| ());
        execute!(io::stdout(), EndSynchronizedUpdate)?;
        drawn
    }

    fn held(&self) -> bool {
        held()
    }

    fn resize(&mut self, _cols: u16, _rows: u16) -> io::Result<()> {
        Ok(())
    }
}

/// A screen that is not this process's terminal: the bytes go to `W` (an SSH session's
/// channel), the size is what the client said (its pty request, then its window changes).
/// Raw mode is the client's business; the alternate screen, bracketed paste and the hidden
/// cursor are entered in `W` and left with [`RemoteScreen::leave`].
pub struct RemoteScreen<W: Write> {
    terminal: Terminal<CrosstermBackend<W>>,
}

impl<W: Write> RemoteScreen<W> {
    /// Takes the remote terminal, `cols` × `rows`.
    pub fn enter(mut out: W, cols: u16, rows: u16) -> io::Result<RemoteScreen<W>> {
        execute!(
            out,
            EnterAlternateScreen,
            EnableBracketedPaste,
            cursor::Hide
        )?;
        let viewport = Viewport::Fixed(Rect::new(0, 0, cols.max(1), rows.max(1)));
        let terminal =
            Terminal::with_options(CrosstermBackend::new(out), TerminalOptions { viewport })?;
        Ok(RemoteScreen { terminal })
    }

    /// Gives the remote terminal back ([`write_restore`]).
    pub fn leave(&mut self) -> io::Result<()> {
        let out = self.terminal.backend_mut();
        write_restore(out)?;
        out.flush()
    }
}

impl<W: Write> Screen for RemoteScreen<W> {
    fn draw(&mut self, render: impl FnOnce(&mut ratatui::Frame)) -> io::Result<()> {
        execute!(self.terminal.backend_mut(), BeginSynchronizedUpdate)?;
        let drawn = self.terminal.draw(render).map(|_| ());
        execute!(self.terminal.backend_mut(), EndSynchronizedUpdate)?;
        drawn
    }

    fn held(&self) -> bool {
        true
    }

    fn resize(&mut self, cols: u16, rows: u16) -> io::Result<()> {
        self.terminal
            .resize(Rect::new(0, 0, cols.max(1), rows.max(1)))
    }
}

impl Drop for TerminalSession {
    fn drop(&mut self) {
        let _ = restore();
    }
}
