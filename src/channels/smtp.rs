//! The `smtp` channel: email through an SMTP server with lettre (DESIGN §7, §9).
//!
//! A user message goes to the user's address (`user_email` in the payload) through the
//! `[email]` smarthost. A message for an `smtp` target goes to the target's `recipients`,
//! through the target's own `host`/`port`/`user`/`password` and `sender` where it sets them
//! (SQLMesh's `BasicSMTPNotificationTarget`: port 465 by default), else `[email]`'s. A
//! target's own server is secured by the `[email.tls]` settings, except `server_name`, which
//! names the smarthost's certificate: so on port 465 it gets implicit TLS, as in SQLMesh.
//!
//! Each distinct server gets one relay at start: its TLS settings, credentials and a small
//! pool of open, authenticated connections that bulk mail reuses. The pool is Herald's, over
//! lettre's [`AsyncSmtpConnection`], rather than lettre's pooled transport, because the
//! transport can neither send a PLAIN authorization identity (`email.auth.identity`) nor tell
//! an AUTH rejection or a server without AUTH apart from a refused message — and the
//! classification below depends on exactly that:
//!
//! * a 4xx reply, a connection, TLS or authentication failure, a greeting or `EHLO` reply the
//!   client cannot read: `Retryable`;
//! * a 5xx reply to the message (`smtp 550 5.1.1 mailbox unavailable`): `Permanent`;
//! * AUTH configured but not offered, STARTTLS required but not offered: `Permanent`, with
//!   what to change.
//!
//! A delivery that finds every connection to its server busy waits for one. The wait counts
//! against the dispatcher's `dispatch_timeout` like the rest of the delivery, so such a delivery
//! ends itself just before that timeout would, with a reason that says how long it queued:
//! `dispatch timeout after 5s (waited 4.9 s for a connection to mail:25: all 10 of its
//! connections were busy)` rather than a bare timeout that blames the server.
//!
//! Passwords are read at start (`password` or `password_file`) and never appear in a reason or
//! a log line: lettre's own tracing is off, and every reason is scrubbed of the password.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use lettre::address::{Address, Envelope};
use lettre::message::{Mailbox, Message, MultiPart};
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, Certificate, CertificateStore, Identity, TlsParameters,
};
use lettre::transport::smtp::commands::Ehlo;
use lettre::transport::smtp::extension::{ClientId, Extension};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio::sync::{Semaphore, TryAcquireError};

use super::email_layout::render_email;
use super::{Channel, ChannelError, CheckResult, Delivery};
use crate::config::{Config, EmailTlsConfig, Secret, TargetConfig};
use crate::model::{DeliveryOutcome, Method, TargetType};

/// The port of SMTP over implicit TLS (RFC 8314): TLS from the first byte, whatever
/// `email.tls.force_tls` says.
pub const IMPLICIT_TLS_PORT: u16 = 465;

/// The port of an smtp target's own server when it sets `host` but no `port`, as SQLMesh has it.
pub const TARGET_DEFAULT_PORT: u16 = 465;

/// How long opening a TCP connection may take; the whole delivery is bounded by the
/// dispatcher's `dispatch_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long greeting, TLS and AUTH on a new connection may take together. lettre bounds only
/// the TCP connect; without this a client speaking the wrong TLS mode would wait for a
/// greeting until the dispatcher's timeout, with a reason that does not say why.
const OPEN_TIMEOUT: Duration = Duration::from_secs(20);

/// Open connections per server at most: enough for bulk mail, few enough for providers that
/// limit concurrent sessions. Deliveries beyond it wait for a connection.
const MAX_CONNECTIONS_PER_SERVER: usize = 10;

/// How long before the dispatcher's `dispatch_timeout` a delivery that had to wait for a
/// connection ends itself, so that its own reason, which names the wait, is the one recorded.
/// At most a tenth of the timeout.
const DEADLINE_MARGIN: Duration = Duration::from_millis(100);

/// An idle connection older than this is closed rather than reused: servers drop idle
/// sessions after a while (RFC 5321 asks for at least 5 minutes; many use less).
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Delivers messages by email, to users through `[email]` and to `smtp` targets.
pub struct SmtpChannel {
    /// User messages: the `[email]` smarthost and `email.from`; `None` without a smarthost.
    user_route: Option<Route>,
    /// `smtp` targets by qualified name (`name`, or `username/name` for a user's own).
    targets: HashMap<String, TargetRoute>,
    /// Every distinct server, for `Debug` and [`SmtpChannel::servers`].
    relays: Vec<Arc<Relay>>,
    /// The right-hand side of `Message-Id`.
    message_id_domain: String,
    /// `notifications.dispatch_timeout`: the dispatcher's bound on one delivery.
    dispatch_timeout: Duration,
}

/// Where a message goes through, and as whom.
struct Route {
    relay: Arc<Relay>,
    from: Mailbox,
}

/// An `smtp` target: its route and its recipients.
struct TargetRoute {
    route: Route,
    recipients: Vec<Mailbox>,
}

impl SmtpChannel {
    /// Builds the channel from `[email]` and the `smtp` targets of `[[targets]]` and
    /// `[[users]]`: reads the password file and the TLS files, and sets up one connection pool
    /// per distinct server. Nothing is connected yet.
    pub fn from_config(config: &Config) -> Result<SmtpChannel, ChannelError> {
        let email = &config.email;
        let hello = email.hello.trim().to_string();
        let mut relays = Relays::default();

        let email_login = email_login(config)?;
        let smarthost = email
            .smarthost
            .as_deref()
            .map(|s| {
                split_host_port(s).ok_or_else(|| {
                    setup(format!(
                        "invalid email.smarthost `{s}` (expected host:port)"
                    ))
                })
            })
            .transpose()?;
        let from = email
            .from
            .as_deref()
            .map(|from| parse_mailbox(from, "email.from"))
            .transpose()?;

        let user_route = match &smarthost {
            Some((host, port)) => {
                let from = from.clone().ok_or_else(|| {
                    setup(
                        "email.from is not set: set it to the sender, e.g. \
                         \"Herald <herald@example.com>\" (HERALD_EMAIL_FROM)"
                            .to_string(),
                    )
                })?;
                let spec = RelaySpec::new(
                    host,
                    *port,
                    &email.tls,
                    email.tls.server_name.as_deref(),
                    &hello,
                    email_login.clone(),
                );
                Some(Route {
                    relay: relays.get_or_build(spec, "email.auth.*")?,
                    from,
                })
            }
            None => None,
        };

        let global = config.targets.iter().map(|t| (t.name.clone(), t));
        let owned = config.users.iter().flat_map(|u| {
            u.targets
                .iter()
                .map(move |t| (format!("{}/{}", u.username, t.name), t))
        });
        let mut targets = HashMap::new();
        for (name, target) in global.chain(owned) {
            if target.target_type != TargetType::Smtp {
                continue;
            }
            let route = target_route(
                &name,
                target,
                smarthost.as_ref(),
                from.as_ref(),
                &email_login,
                &email.tls,
                &hello,
                &mut relays,
            )?;
            targets.insert(name, route);
        }

        let message_id_domain = message_id_domain(&hello, from.as_ref());
        Ok(SmtpChannel {
            user_route,
            targets,
            relays: relays.into_relays(),
            message_id_domain,
            dispatch_timeout: config.notifications.dispatch_timeout,
        })
    }

    /// The distinct servers this channel sends through, as `host:port` (no credentials).
    pub fn servers(&self) -> Vec<String> {
        self.relays.iter().map(|r| r.address.clone()).collect()
    }

    /// The route and recipients of `delivery`, or why it cannot be sent (a permanent failure).
    fn addressing(&self, delivery: &Delivery<'_>) -> Result<(&Route, Vec<Mailbox>), String> {
        if let Some(target) = delivery.target {
            return match self.targets.get(target) {
                Some(t) => Ok((&t.route, t.recipients.clone())),
                None => Err(format!(
                    "no smtp target `{target}` in the configuration: declare it in [[targets]] \
                     (or [[users]].targets for `user/name`) with type = \"smtp\" and recipients"
                )),
            };
        }
        let route = self.user_route.as_ref().ok_or_else(|| {
            "no SMTP server configured for user notifications: set email.smarthost \
             (HERALD_EMAIL_SMARTHOST)"
                .to_string()
        })?;
        let text = |field: &str| {
            delivery
                .payload
                .get(field)
                .and_then(serde_json::Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
        };
        let username = text("user_username").unwrap_or("the recipient");
        let email = text("user_email").ok_or_else(|| {
            format!("user {username} has no email address: give them one to receive email")
        })?;
        let address: Address = email
            .parse()
            .map_err(|e| format!("user {username}'s email `{email}` is not an address: {e}"))?;
        let name = text("user_name").map(str::to_string);
        Ok((route, vec![Mailbox::new(name, address)]))
    }

    fn build_message(
        &self,
        route: &Route,
        to: Vec<Mailbox>,
        delivery: &Delivery<'_>,
    ) -> Result<Message, String> {
        let (text, html) = render_email(delivery.rendered, None).map_err(|e| e.to_string())?;
        let mut builder = Message::builder()
            .from(route.from.clone())
            .subject(delivery.rendered.title.as_str())
            .message_id(Some(format!(
                "<{}@{}>",
                delivery.message_id, self.message_id_domain
            )))
            .date(SystemTime::now());
        for mailbox in to {
            builder = builder.to(mailbox);
        }
        builder
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|e| format!("cannot build the email: {e}"))
    }
}

#[async_trait]
impl Channel for SmtpChannel {
    fn method(&self) -> Method {
        Method::Smtp
    }

    async fn deliver(&self, delivery: &Delivery<'_>) -> DeliveryOutcome {
        let budget = Budget::starting_now(self.dispatch_timeout);
        let (route, to) = match self.addressing(delivery) {
            Ok(addressing) => addressing,
            Err(reason) => return DeliveryOutcome::Permanent { reason },
        };
        let message = match self.build_message(route, to, delivery) {
            Ok(message) => message,
            Err(reason) => return DeliveryOutcome::Permanent { reason },
        };
        route
            .relay
            .send(message.envelope(), &message.formatted(), &budget)
            .await
    }

    /// Opens one connection to every server — TCP, TLS and AUTH as configured — and quits
    /// without sending anything.
    async fn check(&self) -> Vec<CheckResult> {
        let mut results = Vec::with_capacity(self.relays.len());
        for relay in &self.relays {
            let check = format!("smtp server {}", relay.describe());
            results.push(match relay.open().await {
                Ok(mut conn) => {
                    let _ = conn.quit().await;
                    let mut detail = "connected".to_string();
                    if relay.mode != TlsMode::None {
                        detail.push_str(", TLS ok");
                    }
                    if let Some(login) = &relay.login {
                        detail.push_str(&format!(", authenticated as {}", login.username));
                    }
                    detail.push_str("; nothing sent");
                    CheckResult::pass(check, detail)
                }
                Err(failure) => CheckResult::fail(check, relay.scrub(&failure.reason)),
            });
        }
        results
    }
}

impl fmt::Debug for SmtpChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut targets: Vec<&str> = self.targets.keys().map(String::as_str).collect();
        targets.sort_unstable();
        f.debug_struct("SmtpChannel")
            .field("user_messages", &self.user_route.is_some())
            .field("targets", &targets)
            .field("relays", &self.relays)
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

fn setup(reason: String) -> ChannelError {
    ChannelError::Setup {
        method: Method::Smtp,
        reason,
    }
}

/// `[email.auth]` as credentials: the password from `password` or, read now, `password_file`.
fn email_login(config: &Config) -> Result<Option<Login>, ChannelError> {
    let auth = &config.email.auth;
    let password = match (&auth.password, &auth.password_file) {
        (Some(password), _) => Some(password.clone()),
        (None, Some(path)) => Some(read_password_file(path)?),
        (None, None) => None,
    };
    match (&auth.username, password) {
        (Some(username), Some(password)) => Ok(Some(Login {
            username: username.clone(),
            password,
            identity: auth.identity.clone().filter(|i| !i.is_empty()),
        })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(setup(
            "email.auth.username is set but neither email.auth.password nor \
             email.auth.password_file is: set one, or remove the username"
                .to_string(),
        )),
        (None, Some(_)) => Err(setup(
            "an email.auth password is set but email.auth.username is not: set the username"
                .to_string(),
        )),
    }
}

/// The password in `path`, without the line break a file usually ends with.
fn read_password_file(path: &Path) -> Result<Secret, ChannelError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        setup(format!(
            "cannot read email.auth.password_file {}: {e}",
            path.display()
        ))
    })?;
    let password = text.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        return Err(setup(format!(
            "email.auth.password_file {} is empty",
            path.display()
        )));
    }
    Ok(Secret::new(password))
}

/// The route of one `smtp` target, sharing a relay with any route to the same server.
#[allow(clippy::too_many_arguments)]
fn target_route(
    name: &str,
    target: &TargetConfig,
    smarthost: Option<&(String, u16)>,
    email_from: Option<&Mailbox>,
    email_login: &Option<Login>,
    email_tls: &EmailTlsConfig,
    hello: &str,
    relays: &mut Relays,
) -> Result<TargetRoute, ChannelError> {
    let own_host = target
        .host
        .as_deref()
        .map(str::trim)
        .filter(|h| !h.is_empty());
    let (host, port, server_name) = match (own_host, smarthost) {
        (Some(host), _) => {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            (
                host.to_string(),
                target.port.unwrap_or(TARGET_DEFAULT_PORT),
                None,
            )
        }
        (None, Some((host, port))) => (
            host.clone(),
            target.port.unwrap_or(*port),
            email_tls.server_name.as_deref(),
        ),
        (None, None) => {
            return Err(setup(format!(
                "smtp target `{name}` has no host and email.smarthost is not set: give the \
                 target a host or set email.smarthost"
            )));
        }
    };
    let user = target.user.as_deref().filter(|u| !u.is_empty());
    let (login, auth_settings) = match (user, &target.password) {
        (Some(user), Some(password)) => (
            Some(Login {
                username: user.to_string(),
                password: password.clone(),
                identity: None,
            }),
            format!("the user and password of smtp target `{name}`"),
        ),
        (None, None) if own_host.is_none() => (email_login.clone(), "email.auth.*".to_string()),
        (None, None) => (None, String::new()),
        (Some(_), None) => {
            return Err(setup(format!(
                "smtp target `{name}` has a user but no password: set its password"
            )));
        }
        (None, Some(_)) => {
            return Err(setup(format!(
                "smtp target `{name}` has a password but no user: set its user"
            )));
        }
    };
    let spec = RelaySpec::new(&host, port, email_tls, server_name, hello, login);
    let relay = relays.get_or_build(spec, &auth_settings)?;
    let from = match (&target.sender, email_from) {
        (Some(sender), _) => parse_mailbox(sender, &format!("the sender of smtp target `{name}`"))?,
        (None, Some(from)) => from.clone(),
        (None, None) => {
            return Err(setup(format!(
                "smtp target `{name}` has no sender and email.from is not set: set one of them"
            )));
        }
    };
    let recipients = target
        .recipients
        .iter()
        .map(|r| parse_mailbox(r, &format!("a recipient of smtp target `{name}`")))
        .collect::<Result<Vec<_>, _>>()?;
    if recipients.is_empty() {
        return Err(setup(format!("smtp target `{name}` has no recipients")));
    }
    Ok(TargetRoute {
        route: Route { relay, from },
        recipients,
    })
}

fn parse_mailbox(text: &str, what: &str) -> Result<Mailbox, ChannelError> {
    text.trim()
        .parse()
        .map_err(|e| setup(format!("{what} `{text}` is not an email address: {e}")))
}

/// `host:port` (the host may be a bracketed IPv6 literal) as `(host, port)`.
fn split_host_port(text: &str) -> Option<(String, u16)> {
    let (host, port) = text.trim().rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = port.parse().ok().filter(|p| *p > 0)?;
    (!host.is_empty()).then(|| (host.to_string(), port))
}

/// `email.hello` when it is a dotted domain name, else the sender's domain, else `localhost`.
fn message_id_domain(hello: &str, from: Option<&Mailbox>) -> String {
    let is_domain = |s: &str| {
        s.contains('.')
            && !s.starts_with('.')
            && !s.ends_with('.')
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    };
    if is_domain(hello) && hello.parse::<Ipv4Addr>().is_err() {
        return hello.to_ascii_lowercase();
    }
    from.map(|f| f.email.domain().to_ascii_lowercase())
        .filter(|d| is_domain(d))
        .unwrap_or_else(|| "localhost".to_string())
}

/// The name sent in `EHLO`: an address literal for an IP, else the name.
fn client_id(hello: &str) -> ClientId {
    if let Ok(ip) = hello.parse::<Ipv4Addr>() {
        ClientId::Ipv4(ip)
    } else if let Ok(ip) = hello.trim_matches(['[', ']']).parse::<Ipv6Addr>() {
        ClientId::Ipv6(ip)
    } else {
        ClientId::Domain(hello.to_string())
    }
}

/// How a connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsMode {
    /// Plain text throughout.
    None,
    /// Plain, then `STARTTLS`, which the server must offer.
    StartTls,
    /// TLS from the first byte.
    Implicit,
}

/// The TLS mode for `port` and the settings, and whether `starttls` is being ignored (implicit
/// TLS wins, as in Coder).
fn tls_mode(force_tls: bool, starttls: bool, port: u16) -> (TlsMode, bool) {
    if force_tls || port == IMPLICIT_TLS_PORT {
        (TlsMode::Implicit, starttls)
    } else if starttls {
        (TlsMode::StartTls, false)
    } else {
        (TlsMode::None, false)
    }
}

/// PLAIN/LOGIN credentials.
#[derive(Clone, PartialEq)]
struct Login {
    username: String,
    password: Secret,
    /// PLAIN's authorization identity.
    identity: Option<String>,
}

/// Everything that makes two routes need different connections; routes with equal specs
/// share one [`Relay`].
#[derive(Clone, PartialEq)]
struct RelaySpec {
    host: String,
    port: u16,
    mode: TlsMode,
    starttls_ignored: bool,
    /// The name the certificate is verified against.
    server_name: String,
    skip_verify: bool,
    ca_file: Option<PathBuf>,
    client_cert: Option<(PathBuf, PathBuf)>,
    hello: String,
    login: Option<Login>,
}

impl RelaySpec {
    fn new(
        host: &str,
        port: u16,
        tls: &EmailTlsConfig,
        server_name: Option<&str>,
        hello: &str,
        login: Option<Login>,
    ) -> RelaySpec {
        let (mode, starttls_ignored) = tls_mode(tls.force_tls, tls.starttls, port);
        RelaySpec {
            host: host.to_string(),
            port,
            mode,
            starttls_ignored,
            server_name: server_name
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .unwrap_or(host)
                .to_string(),
            skip_verify: tls.skip_verify,
            ca_file: tls.ca_file.clone(),
            client_cert: tls.cert_file.clone().zip(tls.cert_key_file.clone()),
            hello: hello.to_string(),
            login,
        }
    }

    fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// lettre's TLS parameters: the CA file replaces the built-in roots, the client
    /// certificate and key are presented when the server asks. `skip_verify` skips both the
    /// chain and the host-name checks (Coder's `CODER_EMAIL_TLS_SKIPVERIFY`): lettre's rustls
    /// backend checks the name even for a certificate it was told to accept.
    fn tls_parameters(&self) -> Result<TlsParameters, ChannelError> {
        let address = self.address();
        let tls_error = |what: &str, e: SmtpError| {
            setup(format!(
                "TLS settings for {address}: {what}: {}",
                detail(&e)
            ))
        };
        let mut builder = TlsParameters::builder(self.server_name.clone())
            .dangerous_accept_invalid_certs(self.skip_verify)
            .dangerous_accept_invalid_hostnames(self.skip_verify);
        if let Some(ca_file) = &self.ca_file {
            let pem = read_pem(ca_file, "email.tls.ca_file", "CERTIFICATE")?;
            let ca = Certificate::from_pem(&pem)
                .map_err(|e| tls_error(&format!("email.tls.ca_file {}", ca_file.display()), e))?;
            builder = builder
                .certificate_store(CertificateStore::None)
                .add_root_certificate(ca);
        }
        if let Some((cert_file, key_file)) = &self.client_cert {
            let cert = read_pem(cert_file, "email.tls.cert_file", "CERTIFICATE")?;
            let key = read_pem(key_file, "email.tls.cert_key_file", "PRIVATE KEY")?;
            // lettre 0.11's rustls backend takes the certificate of `Identity::from_pem` as
            // DER despite the name (the key is PEM): hand it the leaf certificate decoded.
            let leaf = CertificateDer::from_pem_slice(&cert).map_err(|e| {
                setup(format!(
                    "email.tls.cert_file {} holds no readable certificate: {e}",
                    cert_file.display()
                ))
            })?;
            let identity = Identity::from_pem(leaf.as_ref(), &key).map_err(|e| {
                tls_error(
                    &format!(
                        "client certificate {} with key {}",
                        cert_file.display(),
                        key_file.display()
                    ),
                    e,
                )
            })?;
            builder = builder.identify_with(identity);
        }
        builder
            .build_rustls()
            .map_err(|e| tls_error("building the TLS client", e))
    }
}

/// A PEM file's bytes; `label` is what its `-----BEGIN …-----` line must contain.
fn read_pem(path: &Path, key: &str, label: &str) -> Result<Vec<u8>, ChannelError> {
    let bytes = std::fs::read(path)
        .map_err(|e| setup(format!("cannot read {key} {}: {e}", path.display())))?;
    let text = String::from_utf8_lossy(&bytes);
    let has_label = text
        .lines()
        .any(|line| line.starts_with("-----BEGIN ") && line.contains(label));
    if !has_label {
        return Err(setup(format!(
            "{key} {} holds no PEM {} (expected a -----BEGIN …{label}----- block)",
            path.display(),
            label.to_lowercase()
        )));
    }
    Ok(bytes)
}

/// The relays built so far, one per distinct [`RelaySpec`].
#[derive(Default)]
struct Relays {
    built: Vec<(RelaySpec, Arc<Relay>)>,
}

impl Relays {
    fn get_or_build(
        &mut self,
        spec: RelaySpec,
        auth_settings: &str,
    ) -> Result<Arc<Relay>, ChannelError> {
        if let Some((_, relay)) = self.built.iter().find(|(built, _)| *built == spec) {
            return Ok(Arc::clone(relay));
        }
        let relay = Arc::new(Relay::new(&spec, auth_settings)?);
        self.built.push((spec, Arc::clone(&relay)));
        Ok(relay)
    }

    fn into_relays(self) -> Vec<Arc<Relay>> {
        self.built.into_iter().map(|(_, relay)| relay).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// A server and its connections
// ---------------------------------------------------------------------------------------------

/// One SMTP server: how to connect and authenticate, and the idle connections to reuse.
struct Relay {
    /// `host:port`, for reasons and logs.
    address: String,
    host: String,
    port: u16,
    hello: ClientId,
    mode: TlsMode,
    /// Set unless `mode` is [`TlsMode::None`].
    tls: Option<TlsParameters>,
    login: Option<Login>,
    /// What to change when the server offers no usable AUTH (`email.auth.*`, a target's keys).
    auth_settings: String,
    /// Bounds the open connections.
    slots: Semaphore,
    idle: Mutex<Vec<IdleConnection>>,
    reaper_started: AtomicBool,
    /// Connections opened so far.
    opened: AtomicU64,
}

struct IdleConnection {
    conn: AsyncSmtpConnection,
    since: Instant,
}

/// The dispatcher's time limit on one delivery, as seen from the delivery's start.
struct Budget {
    /// `notifications.dispatch_timeout`, for reasons.
    dispatch_timeout: Duration,
    /// When a delivery that had to wait for a connection gives up: [`DEADLINE_MARGIN`] (at
    /// most a tenth of the timeout) before the dispatcher would cut it off.
    deadline: tokio::time::Instant,
}

impl Budget {
    fn starting_now(dispatch_timeout: Duration) -> Budget {
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
    fn exceeded(&self, waited: Duration, address: &str, all_busy: bool) -> DeliveryOutcome {
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
struct OpenFailure {
    permanent: bool,
    reason: String,
}

impl OpenFailure {
    fn retryable(reason: String) -> Self {
        OpenFailure {
            permanent: false,
            reason,
        }
    }

    fn permanent(reason: String) -> Self {
        OpenFailure {
            permanent: true,
            reason,
        }
    }
}

impl Relay {
    fn new(spec: &RelaySpec, auth_settings: &str) -> Result<Relay, ChannelError> {
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
            host: spec.host.clone(),
            port: spec.port,
            hello: client_id(&spec.hello),
            mode: spec.mode,
            tls,
            login: spec.login.clone(),
            auth_settings: if auth_settings.is_empty() {
                "the credentials".to_string()
            } else {
                auth_settings.to_string()
            },
            slots: Semaphore::new(MAX_CONNECTIONS_PER_SERVER),
            idle: Mutex::new(Vec::new()),
            reaper_started: AtomicBool::new(false),
            opened: AtomicU64::new(0),
        })
    }

    /// `host:port (TLS mode[, AUTH as user])`, for `herald doctor`.
    fn describe(&self) -> String {
        let tls = match self.mode {
            TlsMode::None => "no TLS",
            TlsMode::StartTls => "STARTTLS",
            TlsMode::Implicit => "implicit TLS",
        };
        match &self.login {
            Some(login) => format!("{} ({tls}, AUTH as {})", self.address, login.username),
            None => format!("{} ({tls})", self.address),
        }
    }

    /// Sends one message on an idle connection, or a new one, and keeps the connection for the
    /// next message. When every connection is busy it waits for one; then the whole delivery
    /// ends at `budget`'s deadline with a reason that names the wait (see the module doc).
    async fn send(
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
    async fn send_on_slot(self: &Arc<Self>, envelope: &Envelope, email: &[u8]) -> DeliveryOutcome {
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
    fn send_failed(&self, error: &SmtpError) -> DeliveryOutcome {
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
    async fn open(&self) -> Result<AsyncSmtpConnection, OpenFailure> {
        let opening = CatchPanic::new(self.open_unbounded());
        match tokio::time::timeout(OPEN_TIMEOUT, opening).await {
            Ok(Ok(opened)) => opened,
            Ok(Err(panic)) => Err(OpenFailure::retryable(format!(
                "smtp {} sent a greeting or EHLO reply the SMTP client cannot read ({panic}); \
                 the server is broken or not an SMTP server",
                self.address
            ))),
            Err(_) => {
                let hint = match self.mode {
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

    async fn open_unbounded(&self) -> Result<AsyncSmtpConnection, OpenFailure> {
        let implicit = match self.mode {
            TlsMode::Implicit => self.tls.clone(),
            TlsMode::None | TlsMode::StartTls => None,
        };
        let mut conn = AsyncSmtpConnection::connect_tokio1(
            (self.host.as_str(), self.port),
            Some(CONNECT_TIMEOUT),
            &self.hello,
            implicit,
            None,
        )
        .await
        .map_err(|e| self.connect_failed(&e))?;
        if let (TlsMode::StartTls, Some(tls)) = (self.mode, &self.tls) {
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
        if let Some(login) = &self.login
            && let Err(failure) = self.authenticate(&mut conn, login).await
        {
            conn.abort().await;
            return Err(failure);
        }
        let opened = self.opened.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::debug!(server = %self.address, opened, "opened an SMTP connection");
        Ok(conn)
    }

    fn connect_failed(&self, error: &SmtpError) -> OpenFailure {
        match reply(error) {
            Some(reply) if error.is_permanent() => {
                OpenFailure::permanent(format!("smtp {reply} (greeting of {})", self.address))
            }
            Some(reply) => OpenFailure::retryable(format!("smtp {reply}")),
            None => {
                let how = match self.mode {
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
    async fn authenticate(
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
    async fn auth_not_offered(&self, conn: &mut AsyncSmtpConnection) -> String {
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
    fn take_idle(&self) -> Option<AsyncSmtpConnection> {
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
    fn park(self: &Arc<Self>, conn: AsyncSmtpConnection) {
        if conn.has_broken() {
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

    fn idle_connections(&self) -> MutexGuard<'_, Vec<IdleConnection>> {
        // A panic while holding the lock cannot leave the list half-changed.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `reason` without the password, plain or as it would appear in base64.
    fn scrub(&self, reason: &str) -> String {
        match &self.login {
            Some(login) if !login.password.expose().is_empty() => {
                reason.replace(login.password.expose(), "<redacted>")
            }
            _ => reason.to_string(),
        }
    }
}

/// Closes connections idle for longer than [`IDLE_TIMEOUT`] until the relay is dropped.
async fn reap_idle(relay: Weak<Relay>) {
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
            .field("tls", &self.mode)
            .field(
                "username",
                &self.login.as_ref().map(|l| l.username.as_str()),
            )
            .field("opened", &self.opened.load(Ordering::Relaxed))
            .finish()
    }
}

/// A future that turns a panic while it is polled into `Err(the panic's message)`. lettre
/// 0.11 panics on some malformed replies (an `EHLO` line of only whitespace): a hostile server
/// must cost one failed delivery, not the dispatcher's delivery task.
struct CatchPanic<F> {
    inner: Pin<Box<F>>,
}

impl<F: Future> CatchPanic<F> {
    fn new(inner: F) -> Self {
        CatchPanic {
            inner: Box::pin(inner),
        }
    }
}

impl<F: Future> Future for CatchPanic<F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let inner = self.inner.as_mut();
        match super::catch_panic(move || inner.poll(cx)) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// `AUTH PLAIN` with an initial response `identity NUL username NUL password` (RFC 4616).
async fn auth_plain(conn: &mut AsyncSmtpConnection, login: &Login) -> Result<(), SmtpError> {
    let token = format!(
        "{}\0{}\0{}",
        login.identity.as_deref().unwrap_or(""),
        login.username,
        login.password.expose()
    );
    let encoded = base64(token.as_bytes());
    let response = conn.command(format!("AUTH PLAIN {encoded}\r\n")).await?;
    if response.has_code(334) {
        // A server that ignored the initial response asks for it again.
        conn.command(format!("{encoded}\r\n")).await?;
    }
    Ok(())
}

/// The mechanisms of an `EHLO` line `AUTH …` (or the old `AUTH=…`), if it is one.
fn auth_mechanisms(line: &str) -> Option<String> {
    let mut words = line.split_whitespace();
    let keyword = words.next()?;
    let first = if keyword.eq_ignore_ascii_case("AUTH") {
        None
    } else if let Some((_, rest)) = keyword
        // `None` when byte 5 is inside a character: a server may send any UTF-8.
        .split_at_checked(5)
        .filter(|(head, rest)| head.eq_ignore_ascii_case("AUTH=") && !rest.is_empty())
    {
        Some(rest)
    } else {
        return None;
    };
    Some(first.into_iter().chain(words).collect::<Vec<_>>().join(" "))
}

/// `550 5.1.1 mailbox unavailable` for an error that is a server reply.
fn reply(error: &SmtpError) -> Option<String> {
    let code = error.status()?;
    let text = std::error::Error::source(error)
        .map(ToString::to_string)
        .unwrap_or_default();
    Some(format!("{code} {text}").trim_end().to_string())
}

/// An error's cause without lettre's kind prefix (`network error: …`).
fn detail(error: &SmtpError) -> String {
    std::error::Error::source(error)
        .map(ToString::to_string)
        .unwrap_or_else(|| error.to_string())
}

/// What to change when `error` is the server's certificate being refused, else nothing.
fn certificate_hint(error: &SmtpError) -> &'static str {
    if detail(error).contains("invalid peer certificate") {
        " (trust its CA with email.tls.ca_file, or name it with email.tls.server_name; \
         email.tls.skip_verify skips every check, for test servers only)"
    } else {
        ""
    }
}

/// Whether a failure on a reused connection means it had been closed meanwhile: an I/O or
/// protocol error rather than a reply, or `421` (the server is closing the session).
fn is_stale(error: &SmtpError) -> bool {
    match error.status() {
        Some(code) => code.to_string() == "421",
        None => !error.is_client(),
    }
}

/// Standard base64 with padding (RFC 4648 §4), for the PLAIN response.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str) -> Config {
        Config::from_toml_str(toml, "test.toml", &|_| None).unwrap()
    }

    fn setup_error(toml: &str) -> String {
        match SmtpChannel::from_config(&config(toml)) {
            Ok(channel) => panic!("expected a setup error, got {channel:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn base64_matches_rfc_4648() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("\0user\0pass", "AHVzZXIAcGFzcw=="),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
        assert_eq!(base64(&[0xff, 0xfe, 0xfd]), "//79");
    }

    #[test]
    fn implicit_tls_wins_over_starttls_when_forced_or_on_port_465() {
        let cases = [
            ((false, false, 25), (TlsMode::None, false)),
            ((false, true, 587), (TlsMode::StartTls, false)),
            ((true, false, 2525), (TlsMode::Implicit, false)),
            ((false, false, 465), (TlsMode::Implicit, false)),
            ((false, true, 465), (TlsMode::Implicit, true)),
            ((true, true, 587), (TlsMode::Implicit, true)),
        ];
        for ((force_tls, starttls, port), expected) in cases {
            assert_eq!(
                tls_mode(force_tls, starttls, port),
                expected,
                "force_tls={force_tls} starttls={starttls} port={port}"
            );
        }
    }

    #[test]
    fn auth_lines_are_read_in_both_forms() {
        assert_eq!(
            auth_mechanisms("AUTH CRAM-MD5 PLAIN"),
            Some("CRAM-MD5 PLAIN".into())
        );
        assert_eq!(
            auth_mechanisms("auth=LOGIN PLAIN"),
            Some("LOGIN PLAIN".into())
        );
        assert_eq!(auth_mechanisms("AUTH"), Some(String::new()));
        assert_eq!(auth_mechanisms("STARTTLS"), None);
        assert_eq!(auth_mechanisms("AUTHX"), None);
    }

    #[test]
    fn a_hostile_ehlo_line_with_multi_byte_characters_is_no_auth_line() {
        // Byte 5 inside a multi-byte character (slicing there panics), or a lookalike of AUTH.
        for line in [
            "AUTHé PLAIN",
            "AUTH€",
            "ÄUTH=PLAIN",
            "AUT🙂 LOGIN",
            "🙂🙂 AUTH",
            "ＡＵＴＨ",
        ] {
            assert_eq!(auth_mechanisms(line), None, "{line}");
        }
        assert_eq!(auth_mechanisms("AUTH=é LOGIN"), Some("é LOGIN".into()));
        assert_eq!(auth_mechanisms("AUTH PLAIN ü"), Some("PLAIN ü".into()));
    }

    #[test]
    fn host_and_port_are_split_with_ipv6_literals() {
        assert_eq!(split_host_port("mail:25"), Some(("mail".into(), 25)));
        assert_eq!(split_host_port("[::1]:2525"), Some(("::1".into(), 2525)));
        assert_eq!(split_host_port("mail"), None);
        assert_eq!(split_host_port("mail:0"), None);
        assert_eq!(split_host_port(":25"), None);
    }

    #[test]
    fn message_ids_use_a_domain_hello_else_the_sender_domain() {
        let from: Mailbox = "Herald <herald@example.com>".parse().unwrap();
        assert_eq!(
            message_id_domain("mx.herald.io", Some(&from)),
            "mx.herald.io"
        );
        assert_eq!(message_id_domain("localhost", Some(&from)), "example.com");
        assert_eq!(message_id_domain("10.0.0.1", Some(&from)), "example.com");
        assert_eq!(message_id_domain("localhost", None), "localhost");
    }

    #[test]
    fn hello_becomes_an_address_literal_for_ips() {
        assert_eq!(client_id("127.0.0.1").to_string(), "[127.0.0.1]");
        assert_eq!(client_id("::1").to_string(), "[IPv6:::1]");
        assert_eq!(client_id("mx.example.com").to_string(), "mx.example.com");
    }

    #[test]
    fn routes_to_the_same_server_share_one_relay() {
        let channel = SmtpChannel::from_config(&config(
            r#"
[email]
from = "Herald <herald@example.com>"
smarthost = "127.0.0.1:2525"

[[targets]]
type = "smtp"
name = "team"
notify_on = ["run_failure"]
recipients = ["team@example.com"]

[[targets]]
type = "smtp"
name = "own"
notify_on = ["run_failure"]
recipients = ["own@example.com"]
host = "mail.example.com"
sender = "ops@example.com"

[[users]]
username = "alice"
email = "alice@example.com"
[[users.targets]]
type = "smtp"
name = "mine"
notify_on = ["run_failure"]
recipients = ["alice@example.com"]
host = "mail.example.com"
sender = "alice@example.com"
"#,
        ))
        .unwrap();
        assert_eq!(
            channel.servers(),
            vec![
                "127.0.0.1:2525".to_string(),
                "mail.example.com:465".to_string()
            ]
        );
        let debug = format!("{channel:?}");
        assert!(
            debug.contains("targets: [\"alice/mine\", \"own\", \"team\"]"),
            "{debug}"
        );
        assert!(debug.contains("tls: Implicit"), "{debug}");
    }

    #[test]
    fn an_unreadable_password_file_is_a_setup_error_naming_it() {
        let error = setup_error(
            "[email]\nfrom = \"h@example.com\"\nsmarthost = \"127.0.0.1:25\"\n\
             [email.auth]\nusername = \"u\"\npassword_file = \"/nonexistent/herald-pw\"\n",
        );
        assert!(
            error.starts_with(
                "cannot set up the smtp channel: cannot read email.auth.password_file \
                 /nonexistent/herald-pw: "
            ),
            "{error}"
        );
    }

    #[test]
    fn a_password_file_is_read_without_its_line_break() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").unwrap();
        let config = config(&format!(
            "[email]\nfrom = \"h@example.com\"\nsmarthost = \"127.0.0.1:25\"\n\
             [email.auth]\nusername = \"u\"\npassword_file = \"{}\"\nidentity = \"id\"\n",
            path.display()
        ));
        let login = email_login(&config).unwrap().unwrap();
        assert_eq!(login.password.expose(), "s3cret");
        assert_eq!(login.identity.as_deref(), Some("id"));
        let channel = SmtpChannel::from_config(&config).unwrap();
        assert!(!format!("{channel:?}").contains("s3cret"));
    }

    #[test]
    fn setup_errors_say_what_to_set() {
        let cases = [
            (
                "[email]\nsmarthost = \"127.0.0.1:25\"\n",
                "email.from is not set",
            ),
            (
                "[email]\nfrom = \"not an address\"\nsmarthost = \"127.0.0.1:25\"\n",
                "email.from `not an address` is not an email address",
            ),
            (
                "[email]\nfrom = \"h@example.com\"\nsmarthost = \"127.0.0.1:25\"\n\
                 [email.auth]\nusername = \"u\"\n",
                "email.auth.username is set but neither email.auth.password",
            ),
            (
                "[email]\nfrom = \"h@example.com\"\nsmarthost = \"127.0.0.1:25\"\n\
                 [email.tls]\nstarttls = true\nca_file = \"/nonexistent/ca.pem\"\n",
                "cannot read email.tls.ca_file /nonexistent/ca.pem",
            ),
            (
                "[[targets]]\ntype = \"smtp\"\nname = \"t\"\nnotify_on = [\"run_failure\"]\n\
                 recipients = [\"a@example.com\"]\nhost = \"mail\"\n",
                "smtp target `t` has no sender and email.from is not set",
            ),
            (
                "[[targets]]\ntype = \"smtp\"\nname = \"t\"\nnotify_on = [\"run_failure\"]\n\
                 recipients = [\"a@example.com\"]\nhost = \"mail\"\nsender = \"s@example.com\"\n\
                 user = \"u\"\n",
                "smtp target `t` has a user but no password",
            ),
        ];
        for (toml, expected) in cases {
            let error = setup_error(toml);
            assert!(error.contains(expected), "{toml}\n=> {error}");
        }
    }

    #[test]
    fn a_ca_file_without_a_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let error = setup_error(&format!(
            "[email]\nfrom = \"h@example.com\"\nsmarthost = \"127.0.0.1:465\"\n\
             [email.tls]\nca_file = \"{}\"\n",
            path.display()
        ));
        assert!(error.contains("holds no PEM certificate"), "{error}");
    }

    #[test]
    fn without_smtp_settings_the_channel_has_no_routes() {
        let channel = SmtpChannel::from_config(&Config::default()).unwrap();
        assert!(channel.servers().is_empty());
        let rendered = crate::render::Rendered {
            title: "t".into(),
            body_markdown: "b".into(),
            body_text: "b".into(),
            body_html: String::new(),
            actions: Vec::new(),
        };
        let payload = serde_json::json!({"user_email": "a@example.com"});
        let delivery = Delivery {
            message_id: uuid::Uuid::now_v7(),
            event: "test_notification",
            method: Method::Smtp,
            user_id: None,
            target: None,
            payload: &payload,
            rendered: &rendered,
        };
        let reason = channel.addressing(&delivery).err().unwrap();
        assert!(reason.contains("set email.smarthost"), "{reason}");
        let target = Delivery {
            target: Some("nope"),
            ..delivery
        };
        let reason = channel.addressing(&target).err().unwrap();
        assert!(reason.contains("no smtp target `nope`"), "{reason}");
    }
}
