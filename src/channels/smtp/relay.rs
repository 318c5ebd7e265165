//! One SMTP server and its pool of open, authenticated connections: opening under a budget,
//! reuse, reaping idle ones, and a delivery's classification by the server's reply.

use super::*;

/// One SMTP server: how to connect and authenticate, and the idle connections to reuse.
pub(super) struct Relay {
    /// What it was built from: host, port, TLS mode, login (relays with equal specs are one).
    pub(super) spec: RelaySpec,
    /// `host:port`, for reasons and logs.
    pub(super) address: String,
    pub(super) hello: ClientId,
    /// Set unless the spec's mode is [`TlsMode::None`].
    pub(super) tls: Option<TlsParameters>,
    /// What to change when the server offers no usable AUTH (`email.auth.*`, a target's keys).
    pub(super) auth_settings: String,
    /// Bounds the open connections.
    pub(super) slots: Semaphore,
    pub(super) idle: Mutex<Vec<IdleConnection>>,
    pub(super) reaper_started: AtomicBool,
    /// Connections opened so far.
    pub(super) opened: AtomicU64,
}

pub(super) struct IdleConnection {
    pub(super) conn: Connection,
    pub(super) since: Instant,
}

/// The dispatcher's time limit on one delivery, as seen from the delivery's start.
pub(super) struct Budget {
    /// `notifications.dispatch_timeout`, for reasons.
    pub(super) dispatch_timeout: Duration,
    /// When a delivery that had to wait for a connection gives up: [`DEADLINE_MARGIN`] (at
    /// most a tenth of the timeout) before the dispatcher would cut it off.
    pub(super) deadline: tokio::time::Instant,
}

impl Budget {
    pub(super) fn starting_now(dispatch_timeout: Duration) -> Budget {
        let margin = DEADLINE_MARGIN.min(dispatch_timeout / 10);
        let now = tokio::time::Instant::now();
        Budget {
            dispatch_timeout,
            deadline: now
                .checked_add(dispatch_timeout - margin)
                .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365)),
        }
    }

    /// `dispatch timeout after 5s (waited 4.9 s for a connection to host:port…)`: the
    /// dispatcher's own words, plus the wait.
    pub(super) fn exceeded(
        &self,
        waited: Duration,
        address: &str,
        all_busy: bool,
    ) -> DeliveryOutcome {
        let busy = if all_busy {
            format!(": all {MAX_CONNECTIONS_PER_SERVER} of its connections were busy")
        } else {
            String::new()
        };
        DeliveryOutcome::Retryable {
            reason: format!(
                "dispatch timeout after {} (waited {:.1} s for a connection to {address}{busy})",
                humantime::format_duration(self.dispatch_timeout),
                waited.as_secs_f64()
            ),
            retry_after: None,
        }
    }
}

/// A failure while opening a connection, already classified.
pub(super) struct OpenFailure {
    pub(super) permanent: bool,
    pub(super) reason: String,
}

impl OpenFailure {
    pub(super) fn retryable(reason: String) -> Self {
        OpenFailure {
            permanent: false,
            reason,
        }
    }

    pub(super) fn permanent(reason: String) -> Self {
        OpenFailure {
            permanent: true,
            reason,
        }
    }
}

impl Relay {
    pub(super) fn new(spec: RelaySpec, auth_settings: &str) -> Result<Relay, ChannelError> {
        let address = spec.address();
        if spec.starttls_ignored {
            tracing::warn!(
                server = %address,
                "email.tls.starttls is ignored: {address} uses implicit TLS \
                 (email.tls.force_tls or port {IMPLICIT_TLS_PORT})"
            );
        }
        if spec.skip_verify && spec.mode != TlsMode::None {
            tracing::warn!(
                server = %address,
                "email.tls.skip_verify is set: neither the certificate of {address} nor the \
                 name in it is verified"
            );
        }
        let tls = match spec.mode {
            TlsMode::None => None,
            TlsMode::StartTls | TlsMode::Implicit => Some(spec.tls_parameters()?),
        };
        Ok(Relay {
            address,
            hello: client_id(&spec.hello),
            tls,
            auth_settings: if auth_settings.is_empty() {
                "the credentials".to_string()
            } else {
                auth_settings.to_string()
            },
            slots: Semaphore::new(MAX_CONNECTIONS_PER_SERVER),
            idle: Mutex::new(Vec::new()),
            reaper_started: AtomicBool::new(false),
            spec,
            opened: AtomicU64::new(0),
        })
    }

    /// `host:port (TLS mode[, AUTH as user])`, for `herald doctor`.
    pub(super) fn describe(&self) -> String {
        let tls = match self.spec.mode {
            TlsMode::None => "no TLS",
            TlsMode::StartTls => "STARTTLS",
            TlsMode::Implicit => "implicit TLS",
        };
        match &self.spec.login {
            Some(login) => format!("{} ({tls}, AUTH as {})", self.address, login.username),
            None => format!("{} ({tls})", self.address),
        }
    }

    /// Sends one message on an idle connection, or a new one, and keeps the connection for the
    /// next message. When every connection is busy it waits for one; then the whole delivery
    /// ends at `budget`'s deadline with a reason that names the wait (see the module doc).
    pub(super) async fn send(
        self: &Arc<Self>,
        envelope: &Envelope,
        email: &[u8],
        budget: &Budget,
    ) -> DeliveryOutcome {
        let shutting_down = || DeliveryOutcome::Retryable {
            reason: "smtp channel is shutting down".to_string(),
            retry_after: None,
        };
        let (_slot, waited) = match self.slots.try_acquire() {
            Ok(slot) => (slot, None),
            Err(TryAcquireError::Closed) => return shutting_down(),
            Err(TryAcquireError::NoPermits) => {
                let waiting = tokio::time::Instant::now();
                match tokio::time::timeout_at(budget.deadline, self.slots.acquire()).await {
                    Ok(Ok(slot)) => (slot, Some(waiting.elapsed())),
                    Ok(Err(_)) => return shutting_down(),
                    Err(_) => return budget.exceeded(waiting.elapsed(), &self.address, true),
                }
            }
        };
        let Some(waited) = waited else {
            return self.send_on_slot(envelope, email).await;
        };
        tracing::debug!(
            server = %self.address,
            waited_ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
            "waited for a free SMTP connection"
        );
        let sending = self.send_on_slot(envelope, email);
        match tokio::time::timeout_at(budget.deadline, sending).await {
            Ok(outcome) => outcome,
            Err(_) => budget.exceeded(waited, &self.address, false),
        }
    }

    /// [`Relay::send`] once it holds a connection slot. A reused connection that turns out to
    /// be closed is replaced once.
    pub(super) async fn send_on_slot(
        self: &Arc<Self>,
        envelope: &Envelope,
        email: &[u8],
    ) -> DeliveryOutcome {
        if let Some(mut conn) = self.take_idle() {
            match conn.send(envelope, email).await {
                Ok(_) => {
                    self.park(conn);
                    return DeliveryOutcome::Sent;
                }
                Err(e) if is_stale(&e) => {
                    tracing::debug!(server = %self.address, error = %e, "an idle SMTP connection was closed; opening another");
                }
                Err(e) => return self.send_failed(&e),
            }
        }
        let mut conn = match self.open().await {
            Ok(conn) => conn,
            Err(failure) if failure.permanent => {
                return DeliveryOutcome::Permanent {
                    reason: self.scrub(&failure.reason),
                };
            }
            Err(failure) => {
                return DeliveryOutcome::Retryable {
                    reason: self.scrub(&failure.reason),
                    retry_after: None,
                };
            }
        };
        match conn.send(envelope, email).await {
            Ok(_) => {
                self.park(conn);
                DeliveryOutcome::Sent
            }
            Err(e) => self.send_failed(&e),
        }
    }

    /// A reply or error to `MAIL`/`RCPT`/`DATA` as an outcome.
    pub(super) fn send_failed(&self, error: &SmtpError) -> DeliveryOutcome {
        let reason = match reply(error) {
            Some(reply) => format!("smtp {reply}"),
            None if error.is_client() => {
                format!(
                    "smtp {} cannot take this message: {}",
                    self.address,
                    detail(error)
                )
            }
            None => format!(
                "smtp connection to {} failed: {}",
                self.address,
                detail(error)
            ),
        };
        let reason = self.scrub(&reason);
        if error.is_permanent() || error.is_client() {
            DeliveryOutcome::Permanent { reason }
        } else {
            DeliveryOutcome::Retryable {
                reason,
                retry_after: None,
            }
        }
    }

    /// Connects, secures and authenticates a new connection, within [`OPEN_TIMEOUT`].
    pub(super) async fn open(&self) -> Result<Connection, OpenFailure> {
        let opening = CatchPanic::new(self.open_unbounded());
        match tokio::time::timeout(OPEN_TIMEOUT, opening).await {
            Ok(Ok(opened)) => opened,
            Ok(Err(panic)) => Err(OpenFailure::retryable(format!(
                "smtp {} sent a greeting or EHLO reply the SMTP client cannot read ({panic}); \
                 the server is broken or not an SMTP server",
                self.address
            ))),
            Err(_) => {
                let hint = match self.spec.mode {
                    TlsMode::Implicit => "",
                    TlsMode::None | TlsMode::StartTls => {
                        " (a server that expects implicit TLS never greets a plain client: \
                         see email.tls.force_tls)"
                    }
                };
                Err(OpenFailure::retryable(format!(
                    "smtp {} did not finish greeting, TLS and AUTH within {}s{hint}",
                    self.address,
                    OPEN_TIMEOUT.as_secs()
                )))
            }
        }
    }

    pub(super) async fn open_unbounded(&self) -> Result<Connection, OpenFailure> {
        let implicit = match self.spec.mode {
            TlsMode::Implicit => self.tls.clone(),
            TlsMode::None | TlsMode::StartTls => None,
        };
        let connected = match implicit {
            Some(tls) => {
                AsyncSmtpConnection::connect_tokio1(
                    (self.spec.host.as_str(), self.spec.port),
                    Some(CONNECT_TIMEOUT),
                    &self.hello,
                    Some(tls),
                    None,
                )
                .await
            }
            None => {
                let stream = self.connect_tcp().await?;
                AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello).await
            }
        };
        let mut conn = connected.map_err(|e| self.connect_failed(&e))?;
        if let (TlsMode::StartTls, Some(tls)) = (self.spec.mode, &self.tls) {
            if !conn.server_info().supports_feature(Extension::StartTls) {
                conn.abort().await;
                return Err(OpenFailure::permanent(format!(
                    "the SMTP server {} does not offer STARTTLS; unset email.tls.starttls or \
                     enable STARTTLS on the server",
                    self.address
                )));
            }
            conn.starttls(tls.clone(), &self.hello)
                .await
                .map_err(|e| match reply(&e) {
                    Some(reply) if e.is_permanent() => {
                        OpenFailure::permanent(format!("smtp STARTTLS refused: {reply}"))
                    }
                    _ => OpenFailure::retryable(format!(
                        "smtp STARTTLS with {} failed: {}{}",
                        self.address,
                        detail(&e),
                        certificate_hint(&e)
                    )),
                })?;
        }
        let pipelining = offers_pipelining(&mut conn, &self.hello).await;
        if let Some(login) = &self.spec.login
            && let Err(failure) = self.authenticate(&mut conn, login).await
        {
            conn.abort().await;
            return Err(failure);
        }
        let opened = self.opened.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::debug!(server = %self.address, opened, pipelining, "opened an SMTP connection");
        Ok(Connection {
            smtp: conn,
            pipelining,
        })
    }

    /// A TCP connection to the server with Nagle's algorithm off, trying each of its addresses
    /// within [`CONNECT_TIMEOUT`], as lettre does. lettre writes a message and the `.` that
    /// ends it separately: with Nagle on, the `.` waits for the server's delayed ACK of the
    /// message (40 ms on Linux), which held each connection to about 25 messages a second.
    pub(super) async fn connect_tcp(&self) -> Result<TcpStream, OpenFailure> {
        let cannot = |detail: &dyn fmt::Display| {
            OpenFailure::retryable(format!("smtp cannot connect to {}: {detail}", self.address))
        };
        let addresses = tokio::net::lookup_host((self.spec.host.as_str(), self.spec.port))
            .await
            .map_err(|e| cannot(&e))?;
        let mut last_error = None;
        for address in addresses {
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address)).await {
                Ok(Ok(stream)) => {
                    stream.set_nodelay(true).map_err(|e| cannot(&e))?;
                    return Ok(stream);
                }
                Ok(Err(e)) => last_error = Some(e),
                Err(_) => {
                    last_error = Some(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "connection timed out",
                    ))
                }
            }
        }
        Err(match last_error {
            Some(e) => cannot(&e),
            None => cannot(&"could not resolve to any supported address"),
        })
    }

    pub(super) fn connect_failed(&self, error: &SmtpError) -> OpenFailure {
        match reply(error) {
            Some(reply) if error.is_permanent() => {
                OpenFailure::permanent(format!("smtp {reply} (greeting of {})", self.address))
            }
            Some(reply) => OpenFailure::retryable(format!("smtp {reply}")),
            None => {
                let how = match self.spec.mode {
                    TlsMode::Implicit => " with implicit TLS",
                    TlsMode::None | TlsMode::StartTls => "",
                };
                OpenFailure::retryable(format!(
                    "smtp cannot connect to {}{how}: {}{}",
                    self.address,
                    detail(error),
                    certificate_hint(error)
                ))
            }
        }
    }

    /// AUTH PLAIN (with the authorization identity) when offered, else AUTH LOGIN.
    pub(super) async fn authenticate(
        &self,
        conn: &mut AsyncSmtpConnection,
        login: &Login,
    ) -> Result<(), OpenFailure> {
        let info = conn.server_info();
        let result = if info.supports_auth_mechanism(Mechanism::Plain) {
            auth_plain(conn, login).await
        } else if info.supports_auth_mechanism(Mechanism::Login) {
            let credentials =
                Credentials::new(login.username.clone(), login.password.expose().to_string());
            conn.auth(&[Mechanism::Login], &credentials).await.map(drop)
        } else {
            return Err(OpenFailure::permanent(self.auth_not_offered(conn).await));
        };
        result.map_err(|e| {
            let why = reply(&e).unwrap_or_else(|| detail(&e));
            OpenFailure::retryable(format!(
                "smtp authentication as {} at {} failed: {why}",
                login.username, self.address
            ))
        })
    }

    /// Why AUTH cannot be used: the server offers none, or only mechanisms Herald lacks. Asks
    /// the server again (`EHLO`) for its raw AUTH line, which lettre does not keep.
    pub(super) async fn auth_not_offered(&self, conn: &mut AsyncSmtpConnection) -> String {
        let offers_starttls =
            !conn.is_encrypted() && conn.server_info().supports_feature(Extension::StartTls);
        let mechanisms = match conn.command(Ehlo::new(self.hello.clone())).await {
            Ok(response) => response.message().find_map(auth_mechanisms),
            Err(_) => None,
        }
        .filter(|m| !m.is_empty());
        match mechanisms {
            Some(mechanisms) => format!(
                "the SMTP server {} offers AUTH {mechanisms} but neither PLAIN nor LOGIN, the \
                 mechanisms Herald supports; remove {} or enable PLAIN or LOGIN on the server",
                self.address, self.auth_settings
            ),
            None => {
                let hint = if offers_starttls {
                    " (it offers STARTTLS, and many servers offer AUTH only after it: set \
                     email.tls.starttls = true)"
                } else {
                    ""
                };
                format!(
                    "the SMTP server {} does not offer AUTH; remove {} or enable \
                     authentication on the server{hint}",
                    self.address, self.auth_settings
                )
            }
        }
    }

    /// An idle connection young enough to reuse; older ones are closed.
    pub(super) fn take_idle(&self) -> Option<Connection> {
        let mut idle = self.idle_connections();
        while let Some(parked) = idle.pop() {
            if parked.since.elapsed() < IDLE_TIMEOUT {
                return Some(parked.conn);
            }
        }
        None
    }

    /// Keeps `conn` for reuse, unless a failure broke it. Starts, once, a task that closes
    /// connections left idle too long.
    pub(super) fn park(self: &Arc<Self>, conn: Connection) {
        if conn.smtp.has_broken() {
            return;
        }
        self.idle_connections().push(IdleConnection {
            conn,
            since: Instant::now(),
        });
        if !self.reaper_started.swap(true, Ordering::AcqRel)
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(reap_idle(Arc::downgrade(self)));
        }
    }

    pub(super) fn idle_connections(&self) -> MutexGuard<'_, Vec<IdleConnection>> {
        // A panic while holding the lock cannot leave the list half-changed.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `reason` without the password, plain or as it would appear in base64.
    pub(super) fn scrub(&self, reason: &str) -> String {
        match &self.spec.login {
            Some(login) if !login.password.expose().is_empty() => {
                reason.replace(login.password.expose(), "<redacted>")
            }
            _ => reason.to_string(),
        }
    }
}

/// Closes connections idle for longer than [`IDLE_TIMEOUT`] until the relay is dropped.
pub(super) async fn reap_idle(relay: Weak<Relay>) {
    loop {
        tokio::time::sleep(IDLE_TIMEOUT).await;
        let Some(relay) = relay.upgrade() else {
            return;
        };
        relay
            .idle_connections()
            .retain(|parked| parked.since.elapsed() < IDLE_TIMEOUT);
    }
}

impl fmt::Debug for Relay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Relay")
            .field("address", &self.address)
            .field("tls", &self.spec.mode)
            .field(
                "username",
                &self.spec.login.as_ref().map(|l| l.username.as_str()),
            )
            .field("opened", &self.opened.load(Ordering::Relaxed))
            .finish()
    }
}

/// A future that turns a panic while it is polled into `Err(the panic's message)`. lettre
/// 0.11 panics on some malformed replies (an `EHLO` line of only whitespace): a hostile server
/// must cost one failed delivery, not the dispatcher's delivery task.
pub(super) struct CatchPanic<F> {
    pub(super) inner: Pin<Box<F>>,
}

impl<F: Future> CatchPanic<F> {
    pub(super) fn new(inner: F) -> Self {
        CatchPanic {
            inner: Box::pin(inner),
        }
    }
}

impl<F: Future> Future for CatchPanic<F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let inner = self.inner.as_mut();
        match crate::channels::catch_panic(move || inner.poll(cx)) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}
