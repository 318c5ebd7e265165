//! The real `herald` binary in an 80×24 pseudo-terminal (portable-pty), its screen read with
//! vt100: start it, wait for text, press keys, quit and check the terminal was restored.
//!
//! ```ignore
//! let mut c = Console::spawn(dir, &env, &["--as", "alice", "console"]);
//! c.wait_for("alice (owner)");
//! c.press("4");
//! assert_eq!(c.quit(), 0);
//! c.assert_terminal_restored();
//! ```
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{Child, CommandBuilder, MasterPty, PtySize, native_pty_system};

/// Generous: the machine is shared and debug builds are slow.
pub const WAIT: Duration = Duration::from_secs(90);

/// The binary under test.
pub fn herald_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_herald"))
}

/// A running `herald` in a pseudo-terminal.
pub struct Console {
    parser: Arc<Mutex<vt100::Parser>>,
    raw: Arc<Mutex<Vec<u8>>>,
    writer: Box<dyn Write + Send>,
    child: Box<dyn Child + Send + Sync>,
    _master: Box<dyn MasterPty + Send>,
}

impl Console {
    /// Starts `herald args…` in `dir` with `TERM=xterm-256color`, no inherited `HERALD_*`
    /// variables, and `env` on top.
    pub fn spawn(dir: &Path, env: &[(String, String)], args: &[&str]) -> Console {
        Console::spawn_program(&herald_bin(), dir, env, args)
    }

    /// As [`Console::spawn`], for another program (`ssh`, for the console over SSH).
    pub fn spawn_program(
        program: &Path,
        dir: &Path,
        env: &[(String, String)],
        args: &[&str],
    ) -> Console {
        let pty = native_pty_system()
            .openpty(PtySize {
                rows: 24,
                cols: 80,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("a pseudo-terminal");
        let mut cmd = CommandBuilder::new(program);
        cmd.cwd(dir);
        for (key, _) in std::env::vars() {
            if key.starts_with("HERALD_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("TERM", "xterm-256color");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.args(args);
        let child = pty.slave.spawn_command(cmd).expect("herald starts");
        drop(pty.slave);
        let parser = Arc::new(Mutex::new(vt100::Parser::new(24, 80, 0)));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let mut reader = pty.master.try_clone_reader().expect("a pty reader");
        {
            let parser = parser.clone();
            let raw = raw.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = reader.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    parser.lock().expect("not poisoned").process(&buf[..n]);
                    raw.lock()
                        .expect("not poisoned")
                        .extend_from_slice(&buf[..n]);
                }
            });
        }
        let writer = pty.master.take_writer().expect("a pty writer");
        Console {
            parser,
            raw,
            writer,
            child,
            _master: pty.master,
        }
    }

    /// Makes the terminal `cols` × `rows` (the program gets SIGWINCH).
    pub fn resize(&mut self, cols: u16, rows: u16) {
        self.parser
            .lock()
            .expect("not poisoned")
            .set_size(rows, cols);
        self._master
            .resize(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("the pty resizes");
    }

    /// The screen's text now.
    pub fn screen(&self) -> String {
        self.parser
            .lock()
            .expect("not poisoned")
            .screen()
            .contents()
    }

    /// Everything the program wrote, escape sequences included, as text.
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.raw.lock().expect("not poisoned")).into_owned()
    }

    /// Waits until the screen shows `needle`; panics with the screen after [`WAIT`].
    #[track_caller]
    pub fn wait_for(&mut self, needle: &str) {
        let start = Instant::now();
        while start.elapsed() < WAIT {
            if self.screen().contains(needle) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the reader thread take in the last bytes (an error message, say).
                std::thread::sleep(Duration::from_millis(300));
                panic!(
                    "herald exited ({status:?}) before showing `{needle}`:\n{}",
                    self.screen()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("`{needle}` never appeared; the screen:\n{}", self.screen());
    }

    /// Sends `keys` as typed, then gives the console a moment to take them in.
    pub fn press(&mut self, keys: &str) {
        self.writer
            .write_all(keys.as_bytes())
            .expect("keys reach the console");
        self.writer.flush().expect("keys reach the console");
        // Let the console read them one event at a time (and ESC not merge with what follows).
        std::thread::sleep(Duration::from_millis(150));
    }

    /// Types `text` one key at a time.
    pub fn type_text(&mut self, text: &str) {
        for c in text.chars() {
            self.press(&c.to_string());
        }
    }

    /// Waits for the program to end on its own and returns the exit code.
    #[track_caller]
    pub fn wait_exit(&mut self) -> u32 {
        self.exit_code("the program did not exit")
    }

    /// Quits with `q` and returns the exit code.
    #[track_caller]
    pub fn quit(&mut self) -> u32 {
        self.press("q");
        self.exit_code("the console did not exit after q")
    }

    /// The exit code once the program ends; after [`WAIT`] it is killed and the test fails
    /// with `what` and the screen.
    #[track_caller]
    fn exit_code(&mut self, what: &str) -> u32 {
        let start = Instant::now();
        while start.elapsed() < WAIT {
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the reader thread take in the last bytes.
                std::thread::sleep(Duration::from_millis(300));
                return status.exit_code();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        panic!("{what}:\n{}", self.screen());
    }

    /// The alternate screen was entered and left, and the cursor is visible again.
    #[track_caller]
    pub fn assert_terminal_restored(&self) {
        let parser = self.parser.lock().expect("not poisoned");
        assert!(
            !parser.screen().alternate_screen(),
            "still on the alternate screen"
        );
        assert!(!parser.screen().hide_cursor(), "the cursor is still hidden");
        let text = self.output();
        for (sequence, what) in [("\u{1b}[?1049h", "entered"), ("\u{1b}[?1049l", "left")] {
            assert!(text.contains(sequence), "never {what} the alternate screen");
        }
    }
}

impl Drop for Console {
    /// A failed test must not leave the program running.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits until `check` holds; panics naming `what` after [`WAIT`].
#[track_caller]
pub fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < WAIT {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("timed out waiting for {what}");
}
