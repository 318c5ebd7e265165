//! `serve-smtp`: the `serve` drain by email (issue 10). N messages for one user are queued by
//! `smtp`, then one real `herald serve` (the release binary, default settings, only
//! `email.smarthost` and `email.from` set) delivers them through its connection pool to
//! Postfix's `smtp-sink` on loopback, which takes every message, throws it away and counts
//! sessions and messages: few sessions for N messages is the pool reusing its connections.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use super::*;
use herald::store::NewUser;

/// Connections smtp-sink serves at once (its `-m`, above Herald's pool) and its listen backlog.
const SINK_CONNECTIONS: &str = "256";

/// The user every message is for.
fn recipient() -> NewUser {
    NewUser {
        username: "bench".into(),
        email: "bench@example.com".into(),
        name: "Bench Recipient".into(),
        roles: Vec::new(),
    }
}

/// Queues `n` messages by `smtp` for one user, then times one `herald serve` delivering them
/// to smtp-sink; returns its figures and what smtp-sink counted.
pub(super) async fn serve_smtp(
    backend: Backend,
    n: usize,
) -> anyhow::Result<(ServeRun, SinkCounts)> {
    let sink = SmtpSink::start()?;
    let (rig, mut producer) = Rig::new(backend).await?;
    let user = producer.store.insert_user(&recipient(), None).await?;
    let template = producer
        .store
        .template_by_name(EVENT)
        .await?
        .with_context(|| format!("the builtin catalog has no `{EVENT}` event"))?;
    producer.payload = payload_for(&template, Some(&user));
    producer
        .enqueue_all_for(n, Some(user.id), Method::Smtp)
        .await?;
    let observer = producer.store;
    let settings = [
        ("HERALD_DATABASE_URL", rig.db.url.clone()),
        ("HERALD_EMAIL_SMARTHOST", sink.address.to_string()),
        (
            "HERALD_EMAIL_FROM",
            "Herald <herald@example.com>".to_string(),
        ),
    ];
    let run = run_serve(n, &settings, &[], |started, _| {
        wait_until_sent(&sink, observer.as_ref(), n, started)
    })
    .await?;
    drop(observer);
    rig.close(n).await?;
    let counts = sink.stop().await;
    Ok((run, counts))
}

/// Waits until smtp-sink has taken `n` messages and the store shows them all sent (saying how
/// far the sink got every 10 s); returns the time since `started`.
async fn wait_until_sent(
    sink: &SmtpSink,
    observer: &dyn Store,
    n: usize,
    started: Instant,
) -> anyhow::Result<Duration> {
    let mut last_report = started;
    loop {
        tokio::time::sleep(POLL).await;
        // As in the webhook drains: the sink's counter gates the COUNT(*) over the queue.
        if sink.counts().messages >= n as u64 {
            let counts = observer.count_by_state().await?;
            if count_of(&counts, MessageState::Sent) >= n as i64 {
                return Ok(started.elapsed());
            }
        }
        if started.elapsed() > RUN_TIMEOUT {
            let counts = observer.count_by_state().await?;
            bail!(
                "not all {n} messages sent after {RUN_TIMEOUT:?}: smtp-sink has {}, counts {counts:?}",
                sink.counts()
            );
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            last_report = Instant::now();
            eprintln!(
                "  … {:.0} s: smtp-sink has {} of {n}",
                started.elapsed().as_secs_f64(),
                sink.counts()
            );
        }
    }
}

/// What smtp-sink counted: messages taken, and SMTP sessions ended (a session is one
/// connection; Herald's pooled connections end when `herald serve` exits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SinkCounts {
    pub(super) sessions: u64,
    pub(super) messages: u64,
}

impl std::fmt::Display for SinkCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} messages in {} SMTP sessions",
            self.messages, self.sessions
        )
    }
}

/// Postfix's `smtp-sink` on a free loopback port, its running counters (`-c`) read from its
/// standard output as it prints them.
struct SmtpSink {
    address: SocketAddr,
    process: Running,
    sessions: Arc<AtomicU64>,
    messages: Arc<AtomicU64>,
}

impl SmtpSink {
    fn start() -> anyhow::Result<SmtpSink> {
        let program = smtp_sink_program()?;
        // A port the kernel just handed out and took back: free unless something races us.
        let address = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?;
        let mut command = Command::new(&program);
        command.arg("-c");
        if running_as_root() {
            // smtp-sink refuses to run as root without a user to switch to.
            command.args(["-u", "postfix"]);
        }
        let mut child = command
            .args(["-m", SINK_CONNECTIONS])
            .arg(address.to_string())
            .arg(SINK_CONNECTIONS)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let stdout = child.stdout.take().context("smtp-sink's standard output")?;
        let mut process = Running(child);
        let (sessions, messages) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        std::thread::spawn({
            let (sessions, messages) = (sessions.clone(), messages.clone());
            move || read_counters(stdout, &sessions, &messages)
        });
        let ready = Instant::now();
        while TcpStream::connect(address).is_err() {
            if let Ok(Some(status)) = process.0.try_wait() {
                let mut stderr = String::new();
                if let Some(mut pipe) = process.0.stderr.take() {
                    let _ = pipe.read_to_string(&mut stderr);
                }
                bail!("smtp-sink exited with {status}: {}", stderr.trim());
            }
            if ready.elapsed() > Duration::from_secs(10) {
                bail!("smtp-sink does not accept connections on {address} after 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // The probe just now was a session too: wait until it is counted, then leave it out.
        while sessions.load(Ordering::Acquire) == 0 && ready.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(SmtpSink {
            address,
            process,
            sessions,
            messages,
        })
    }

    /// The counters so far, without the readiness probe's session.
    fn counts(&self) -> SinkCounts {
        SinkCounts {
            sessions: self.sessions.load(Ordering::Acquire).saturating_sub(1),
            messages: self.messages.load(Ordering::Acquire),
        }
    }

    /// Waits for the sessions of an exited client to be counted, then stops smtp-sink.
    async fn stop(mut self) -> SinkCounts {
        let mut last = self.counts();
        let settling = Instant::now();
        while settling.elapsed() < Duration::from_secs(3) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = self.counts();
            if now == last && now.sessions > 0 {
                break;
            }
            last = now;
        }
        let _ = self.process.0.kill();
        let _ = self.process.0.wait();
        last
    }
}

/// Reads smtp-sink's `-c` counters, `sess=S quit=Q mesg=M` ended by a carriage return, until
/// it exits.
fn read_counters(mut stdout: impl Read, sessions: &AtomicU64, messages: &AtomicU64) {
    let mut pending = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(read) = stdout.read(&mut buffer) {
        if read == 0 {
            return;
        }
        pending.extend_from_slice(&buffer[..read]);
        while let Some(end) = pending.iter().position(|b| *b == b'\r' || *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            for field in String::from_utf8_lossy(&line).split_whitespace() {
                let counter = match field.split_once('=') {
                    Some(("sess", value)) => (sessions, value),
                    Some(("mesg", value)) => (messages, value),
                    _ => continue,
                };
                if let Ok(value) = counter.1.parse() {
                    counter.0.store(value, Ordering::Release);
                }
            }
        }
    }
}

/// Where `smtp-sink` is: on `PATH`, or in `/usr/sbin` where Debian's postfix puts it.
fn smtp_sink_program() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("smtp-sink"))
        .find(|candidate| candidate.is_file())
        .context(
            "smtp-sink, the SMTP test server that comes with Postfix, is not installed: \
             apt-get install postfix (it installs /usr/sbin/smtp-sink)",
        )
}

/// Whether this process runs as root (uid 0), from `/proc/self/status`.
fn running_as_root() -> bool {
    read_trimmed("/proc/self/status")
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next())
        == Some("0")
}
