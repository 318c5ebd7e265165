//! One SSH connection: public-key authentication against `user_ssh_keys`, then one console
//! on its session channel — its screen written to the channel, its keystrokes parsed from the
//! channel's bytes, its size from the pty request and the window changes.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crossterm::event::Event;
use russh::keys::PublicKey;
use russh::server::{Auth, Handle, Msg, Response, Session};
use russh::{Channel, ChannelId, ChannelOpenFailure};
use tokio::sync::{mpsc, oneshot, watch};

use super::Shared;
use crate::console::{self, RemoteTerminal, theme::Theme};
use crate::model::User;
use crate::service::{ServiceError, ssh_fingerprint};

/// The longest input kept while waiting for the rest of an escape sequence or a paste.
const MAX_PENDING_INPUT: usize = 64 * 1024;

/// What a client asked for with its pty request.
struct Pty {
    term: String,
    cols: u16,
    rows: u16,
}

/// A console running on the connection's session channel.
struct Running {
    channel: ChannelId,
    events: mpsc::UnboundedSender<Event>,
    input: InputParser,
    /// When the last keystroke came.
    last_input: watch::Sender<Instant>,
    /// Dropped or sent when the channel closes: the console stops.
    _stop: oneshot::Sender<()>,
}

/// The handler of one SSH connection (russh calls it in order, one message at a time).
pub(super) struct Connection {
    shared: Arc<Shared>,
    peer: SocketAddr,
    /// The Herald user, once their key is proven.
    user: Option<User>,
    fingerprint: String,
    /// The session channel (one per connection).
    channel: Option<ChannelId>,
    pty: Option<Pty>,
    no_color: Option<String>,
    console: Option<Running>,
}

impl Connection {
    pub(super) fn new(shared: Arc<Shared>, peer: SocketAddr) -> Connection {
        Connection {
            shared,
            peer,
            user: None,
            fingerprint: String::new(),
            channel: None,
            pty: None,
            no_color: None,
            console: None,
        }
    }

    /// Counts a refused attempt from this address, saying so once it used up its refusals.
    fn refused(&self) {
        let now = Instant::now();
        let blocked = self
            .shared
            .limiter
            .lock()
            .is_ok_and(|mut limiter| limiter.refuse(self.peer.ip(), now));
        if blocked {
            tracing::warn!(
                peer = %self.peer,
                "too many refused SSH logins from this address: every attempt from it is refused for a minute (ssh.auth_attempts_per_minute)"
            );
        }
    }

    fn blocked(&self) -> bool {
        let now = Instant::now();
        self.shared
            .limiter
            .lock()
            .is_ok_and(|mut limiter| limiter.blocked(self.peer.ip(), now))
    }

    /// Whether the user who owns `key` may log in (`prove`: the client proved it holds the
    /// key, so the login is recorded); a refusal is logged with the key's fingerprint.
    async fn check_key(&mut self, ssh_user: &str, key: &PublicKey, prove: bool) -> Auth {
        let fingerprint = ssh_fingerprint(key);
        if self.blocked() {
            tracing::warn!(peer = %self.peer, %fingerprint, "SSH login refused: too many refused attempts from this address");
            return Auth::reject();
        }
        let service = &self.shared.service;
        let found = if prove {
            service.authenticate_ssh_key(&fingerprint).await
        } else {
            service.ssh_key_user(&fingerprint).await
        };
        match found {
            Ok(user) => {
                if prove {
                    tracing::info!(
                        user = %user.username,
                        peer = %self.peer,
                        %fingerprint,
                        "SSH login"
                    );
                    self.user = Some(user);
                    self.fingerprint = fingerprint;
                }
                Auth::Accept
            }
            Err(ServiceError::Unauthenticated(why)) => {
                self.refused();
                tracing::warn!(peer = %self.peer, ?ssh_user, %fingerprint, "SSH login refused: {why}");
                Auth::reject()
            }
            Err(e) => {
                tracing::error!(peer = %self.peer, %fingerprint, "SSH login refused: cannot check the key: {e}");
                Auth::reject()
            }
        }
    }

    /// Starts the console on `channel` for the logged-in user.
    fn start_console(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        let handle = session.handle();
        let Some(user) = self.user.clone() else {
            return session.close(channel);
        };
        let Some(pty) = self.pty.as_ref() else {
            session.channel_success(channel)?;
            refuse(
                handle,
                channel,
                "herald: the console needs a terminal: connect with `ssh -t` (and without -T)",
            );
            return Ok(());
        };
        let Ok(permit) = self.shared.sessions.clone().try_acquire_owned() else {
            session.channel_success(channel)?;
            tracing::warn!(user = %user.username, peer = %self.peer, "SSH console refused: {} consoles are open (ssh.max_sessions)", self.shared.max_sessions);
            let line = format!(
                "herald: the server has its maximum of {} consoles open; try again later",
                self.shared.max_sessions
            );
            refuse(handle, channel, &line);
            return Ok(());
        };
        session.channel_success(channel)?;
        let (events_tx, events) = mpsc::unbounded_channel();
        let (stop_tx, stop_rx) = oneshot::channel();
        let (last_input, idle_rx) = watch::channel(Instant::now());
        let (bytes_tx, bytes_rx) = mpsc::unbounded_channel();
        let terminal = RemoteTerminal {
            out: ChannelWriter {
                pending: Vec::new(),
                bytes: bytes_tx.clone(),
            },
            cols: pty.cols,
            rows: pty.rows,
            theme: Theme::for_terminal(self.no_color.as_deref(), &pty.term),
            events,
        };
        let shared = self.shared.clone();
        let peer = self.peer;
        tracing::info!(user = %user.username, %peer, term = ?pty.term, cols = pty.cols, rows = pty.rows, "SSH console opened");
        tokio::spawn(async move {
            let forward = tokio::spawn(forward(handle.clone(), channel, bytes_rx));
            let idle = Arc::new(AtomicBool::new(false));
            let stop = stopped(
                stop_rx,
                shared.shutdown.clone(),
                idle_rx,
                shared.idle_timeout,
                idle.clone(),
            );
            let console = tokio::spawn(console::run_remote(
                shared.service.clone(),
                user.clone(),
                shared.dispatcher.clone(),
                shared.ring.clone(),
                terminal,
                stop,
            ));
            let (code, why) = match console.await {
                Ok(Ok(())) if idle.load(Ordering::SeqCst) => {
                    let after = humantime::format_duration(shared.idle_timeout);
                    (
                        0,
                        Some(format!(
                            "herald: closed after {after} without a keystroke (ssh.idle_timeout)"
                        )),
                    )
                }
                Ok(Ok(())) if *shared.shutdown.borrow() => {
                    (0, Some("herald: the server is stopping".to_string()))
                }
                Ok(Ok(())) => (0, None),
                Ok(Err(e)) => (1, Some(format!("herald: {e:#}"))),
                Err(_) => {
                    // A panic in this console: its screen is given back; other sessions go on.
                    let mut restore = Vec::new();
                    let _ = console::terminal::write_restore(&mut restore);
                    let _ = bytes_tx.send(restore);
                    (
                        1,
                        Some("herald: the console stopped after an internal error".to_string()),
                    )
                }
            };
            if let Some(line) = &why {
                let _ = bytes_tx.send(format!("{line}\r\n").into_bytes());
            }
            drop(bytes_tx);
            let _ = forward.await;
            let _ = handle.exit_status_request(channel, code).await;
            let _ = handle.eof(channel).await;
            let _ = handle.close(channel).await;
            drop(permit);
            tracing::info!(user = %user.username, %peer, reason = why.as_deref().unwrap_or("q"), "SSH console closed");
        });
        self.console = Some(Running {
            channel,
            events: events_tx,
            input: InputParser::default(),
            last_input,
            _stop: stop_tx,
        });
        Ok(())
    }

    /// Whether `channel` is this connection's console.
    fn is_console(&self, channel: ChannelId) -> bool {
        self.console.as_ref().is_some_and(|c| c.channel == channel)
    }
}

/// Resolves when the console should stop: its channel closed or the connection gone, the
/// server stopping, or no keystroke for `idle` (then `idled` is set).
async fn stopped(
    closed: oneshot::Receiver<()>,
    shutdown: watch::Receiver<bool>,
    mut last_input: watch::Receiver<Instant>,
    idle: std::time::Duration,
    idled: Arc<AtomicBool>,
) {
    let idle_out = async {
        loop {
            let deadline = *last_input.borrow_and_update() + idle;
            tokio::select! {
                () = tokio::time::sleep_until(deadline.into()) => return,
                changed = last_input.changed() => if changed.is_err() {
                    return std::future::pending().await;
                },
            }
        }
    };
    tokio::select! {
        _ = closed => {}
        () = super::stopping(shutdown) => {}
        () = idle_out => idled.store(true, Ordering::SeqCst),
    }
}

/// Sends the screen's bytes to the channel in order, until the console drops its writer.
async fn forward(handle: Handle, channel: ChannelId, mut bytes: mpsc::UnboundedReceiver<Vec<u8>>) {
    while let Some(chunk) = bytes.recv().await {
        if handle.data(channel, chunk).await.is_err() {
            return;
        }
    }
}

/// One line on the channel's stderr, exit status 1, and the channel closed.
fn refuse(handle: Handle, channel: ChannelId, line: &str) {
    let line = format!("{line}\r\n");
    tokio::spawn(async move {
        let _ = handle.extended_data(channel, 1, line.into_bytes()).await;
        let _ = handle.exit_status_request(channel, 1).await;
        let _ = handle.eof(channel).await;
        let _ = handle.close(channel).await;
    });
}

/// The console's screen output: collected on write, sent to the channel on flush.
struct ChannelWriter {
    pending: Vec<u8>,
    bytes: mpsc::UnboundedSender<Vec<u8>>,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.bytes
            .send(std::mem::take(&mut self.pending))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the SSH channel is closed"))
    }
}

/// Input bytes to terminal events with crossterm's own parser (as the `terminput` crate
/// packages it): bytes are kept until they make a whole event.
#[derive(Default)]
struct InputParser {
    pending: Vec<u8>,
}

impl InputParser {
    fn feed(&mut self, data: &[u8]) -> Vec<Event> {
        let mut events = Vec::new();
        for (i, &byte) in data.iter().enumerate() {
            self.pending.push(byte);
            // A lone ESC is the Esc key only when nothing follows it in the same read (as
            // crossterm decides on a local terminal); else it starts a sequence.
            if self.pending == [0x1b] && i + 1 < data.len() {
                continue;
            }
            match terminput::Event::parse_from(&self.pending) {
                Ok(Some(event)) => {
                    self.pending.clear();
                    events.extend(terminput_crossterm::to_crossterm(event).ok());
                }
                Ok(None) if self.pending.len() < MAX_PENDING_INPUT => {}
                Ok(None) | Err(_) => self.pending.clear(),
            }
        }
        events
    }
}

impl russh::server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        key: &PublicKey,
    ) -> Result<Auth, Self::Error> {
        Ok(self.check_key(user, key, false).await)
    }

    async fn auth_publickey(&mut self, user: &str, key: &PublicKey) -> Result<Auth, Self::Error> {
        Ok(self.check_key(user, key, true).await)
    }

    async fn auth_password(&mut self, user: &str, _password: &str) -> Result<Auth, Self::Error> {
        self.refused();
        tracing::warn!(peer = %self.peer, ssh_user = ?user, "SSH password login refused: Herald accepts public keys only (`herald users keys add`)");
        Ok(Auth::reject())
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        _response: Option<Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        self.refused();
        tracing::warn!(peer = %self.peer, ssh_user = ?user, "SSH keyboard-interactive login refused: Herald accepts public keys only (`herald users keys add`)");
        Ok(Auth::reject())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.channel.is_some() {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
        } else {
            self.channel = Some(channel.id());
            reply.accept().await;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        cols: u32,
        rows: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.pty = Some(Pty {
            term: term.to_string(),
            cols: clamp(cols),
            rows: clamp(rows),
        });
        session.channel_success(channel)
    }

    async fn env_request(
        &mut self,
        _channel: ChannelId,
        name: &str,
        value: &str,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        match name {
            "NO_COLOR" => self.no_color = Some(value.to_string()),
            "TERM" => {
                if let Some(pty) = &mut self.pty {
                    pty.term = value.to_string();
                }
            }
            _ => {}
        }
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.console.is_some() {
            return session.channel_failure(channel);
        }
        self.start_console(channel, session)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        let user = self.user.as_ref().map_or("", |u| u.username.as_str());
        tracing::info!(%user, peer = %self.peer, "SSH command refused: the server opens the console only");
        refuse(
            session.handle(),
            channel,
            "herald: this server opens the console only, not commands: connect without one (`ssh -p PORT HOST`); scripts use the `herald` CLI or the HTTP API",
        );
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        tracing::info!(peer = %self.peer, subsystem = ?name, "SSH subsystem refused: the server opens the console only");
        session.channel_failure(channel)
    }

    #[allow(clippy::too_many_arguments)]
    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        cols: u32,
        rows: u32,
        _pix_width: u32,
        _pix_height: u32,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(pty) = &mut self.pty {
            pty.cols = clamp(cols);
            pty.rows = clamp(rows);
        }
        if let Some(console) = self.console.as_ref().filter(|c| c.channel == channel) {
            let _ = console.events.send(Event::Resize(clamp(cols), clamp(rows)));
        }
        Ok(())
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(console) = self.console.as_mut().filter(|c| c.channel == channel) {
            console.last_input.send_replace(Instant::now());
            for event in console.input.feed(data) {
                let _ = console.events.send(event);
            }
        }
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.is_console(channel) {
            self.console = None;
        }
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.is_console(channel) {
            self.console = None;
        }
        Ok(())
    }
}

/// A terminal dimension from the client, within what a screen can be.
fn clamp(n: u32) -> u16 {
    n.clamp(1, u32::from(u16::MAX)) as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    fn keys(events: Vec<Event>) -> Vec<KeyCode> {
        events
            .into_iter()
            .filter_map(|e| match e {
                Event::Key(KeyEvent { code, .. }) => Some(code),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn input_bytes_become_key_events_across_reads() {
        let mut input = InputParser::default();
        assert_eq!(
            keys(input.feed(b"jq\r\x1b[A\x1b")),
            [
                KeyCode::Char('j'),
                KeyCode::Char('q'),
                KeyCode::Enter,
                KeyCode::Up,
                KeyCode::Esc
            ]
        );
        assert!(input.feed(b"\x1b[").is_empty(), "half a sequence waits");
        assert_eq!(keys(input.feed(b"B")), [KeyCode::Down]);
        let ctrl_c = input.feed(b"\x03");
        assert!(
            matches!(&ctrl_c[..], [Event::Key(k)] if k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL)),
            "{ctrl_c:?}"
        );
        let pasted = input.feed(b"\x1b[200~hello\x1b[201~");
        assert!(
            matches!(&pasted[..], [Event::Paste(text)] if text == "hello"),
            "{pasted:?}"
        );
    }
}
