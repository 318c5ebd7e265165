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
//! Connections are opened with Nagle's algorithm off (except implicit TLS ones, which lettre
//! opens itself), and to a server that offers PIPELINING a message's `MAIL`, `RCPT`s and
//! `DATA` go out together: on a pooled connection a message then costs two round trips, not
//! four plus a delayed ACK.
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
use std::io;
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
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension};
use lettre::transport::smtp::response::Response;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, TryAcquireError};

use super::email_layout::render_email;
use super::settings::{SmtpAuthSettings, SmtpSettings, SmtpTarget, SmtpTlsSettings};
use super::{Channel, ChannelError, CheckResult, Delivery};
use crate::model::{DeliveryOutcome, Method};
use crate::secret::Secret;

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
    /// Builds the channel from `[email]` and the `smtp` targets: reads the password file and
    /// the TLS files, and sets up one connection pool per distinct server. Nothing is
    /// connected yet.
    pub fn new(settings: &SmtpSettings) -> Result<SmtpChannel, ChannelError> {
        let hello = settings.email.hello.trim().to_string();
        let mut relays = Relays::default();

        let email_login = email_login(&settings.email.auth)?;
        let smarthost = settings
            .email
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
        let from = settings
            .email
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
                    &settings.email.tls,
                    settings.email.tls.server_name.as_deref(),
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

        let mut targets = HashMap::new();
        for (name, target) in &settings.targets {
            let route = target_route(
                name,
                target,
                smarthost.as_ref(),
                from.as_ref(),
                &email_login,
                &settings.email.tls,
                &hello,
                &mut relays,
            )?;
            targets.insert(name.clone(), route);
        }

        let message_id_domain = message_id_domain(&hello, from.as_ref());
        Ok(SmtpChannel {
            user_route,
            targets,
            relays: relays.into_relays(),
            message_id_domain,
            dispatch_timeout: settings.dispatch_timeout,
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
                    let _ = conn.smtp.quit().await;
                    let mut detail = "connected".to_string();
                    if relay.spec.mode != TlsMode::None {
                        detail.push_str(", TLS ok");
                    }
                    if let Some(login) = &relay.spec.login {
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

mod protocol;
mod relay;
mod routes;
#[cfg(test)]
mod tests;

use protocol::*;
use relay::*;
use routes::*;
