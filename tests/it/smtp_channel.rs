//! The smtp channel against a real SMTP server this project did not write (Python's aiosmtpd,
//! `common::smtp_server`): TLS modes, AUTH, how replies are classified, the MIME structure
//! of what arrives, target routing and connection reuse (DESIGN §7, issue 4).

use crate::common;

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::task::JoinSet;
use uuid::Uuid;

use common::channel_fixtures::{self, builtin_event, config, target, user};
use common::silent_server::SilentServer;
use common::smtp_server::{
    ReceivedMail, SELF_SIGNED_NAME, ServerTls, SmtpServer, SmtpServerOptions, test_certs,
};
use herald::channels::smtp::SmtpChannel;
use herald::channels::{Channel, Delivery};
use herald::config::Config;
use herald::model::{Action, DeliveryOutcome, Method};
use herald::render::{Overrides, Rendered, render_for};

const PASSWORD: &str = "hunter2-Zq9!";
const SENDER: &str = "herald@example.com";

/// `[email]` pointing at `server`, followed by `extra` (more `[email.*]` tables).
fn email_config(server: &SmtpServer, extra: &str) -> Config {
    config(&format!(
        "[email]\nfrom = \"Herald <{SENDER}>\"\nsmarthost = \"{}\"\n{extra}",
        server.address()
    ))
}

/// `[email.tls]` trusting the test CA and verifying the name `localhost`, plus `extra` keys.
fn tls_table(extra: &str) -> String {
    format!(
        "[email.tls]\nca_file = \"{}\"\nserver_name = \"localhost\"\n{extra}",
        test_certs().ca.display()
    )
}

fn smtp_channel(config: &Config) -> SmtpChannel {
    SmtpChannel::new(&config.channel_settings().smtp)
        .unwrap_or_else(|e| panic!("smtp channel: {e}"))
}

fn rendered() -> Rendered {
    Rendered::new(
        "Workspace “dev” deleted — ✓".to_string(),
        "Hi Alice, your workspace **dev** was deleted.".to_string(),
        vec![Action {
            label: "View workspaces".to_string(),
            url: "https://coder.example.com/workspaces".to_string(),
        }],
    )
}

fn alice() -> Value {
    json!({
        "user_email": "alice@example.com",
        "user_name": "Alice Liddell",
        "user_username": "alice",
    })
}

/// Delivers `rendered` with `payload` (to `target`, if any); returns the message id.
async fn deliver(
    channel: &SmtpChannel,
    payload: &Value,
    target: Option<&str>,
) -> (Uuid, DeliveryOutcome) {
    let message_id = Uuid::now_v7();
    let rendered = rendered();
    let delivery = Delivery {
        message_id,
        event: "workspace_deleted",
        method: Method::Smtp,
        user_id: Some(Uuid::now_v7()),
        target,
        payload,
        rendered: &rendered,
    };
    (message_id, channel.deliver(&delivery).await)
}

async fn deliver_to_alice(channel: &SmtpChannel) -> DeliveryOutcome {
    deliver(channel, &alice(), None).await.1
}

#[track_caller]
fn assert_sent(outcome: &DeliveryOutcome, server: &SmtpServer) {
    assert_eq!(
        outcome,
        &DeliveryOutcome::Sent,
        "server log:\n{}",
        server.stderr()
    );
}

#[track_caller]
fn retryable_reason(outcome: DeliveryOutcome) -> String {
    match outcome {
        DeliveryOutcome::Retryable {
            reason,
            retry_after: None,
        } => reason,
        other => panic!("expected a retryable failure, got {other:?}"),
    }
}

#[track_caller]
fn permanent_reason(outcome: DeliveryOutcome) -> String {
    match outcome {
        DeliveryOutcome::Permanent { reason } => reason,
        other => panic!("expected a permanent failure, got {other:?}"),
    }
}

#[track_caller]
fn only_mail(server: &SmtpServer) -> ReceivedMail {
    let mut mail = server.received();
    assert_eq!(mail.len(), 1, "messages received: {mail:#?}");
    mail.remove(0)
}

#[tokio::test]
async fn a_user_message_arrives_as_multipart_alternative_with_subject_from_to_id_and_date() {
    let server = SmtpServer::start(SmtpServerOptions::new());
    let channel = smtp_channel(&email_config(&server, ""));
    let before = Utc::now();
    let (message_id, outcome) = deliver(&channel, &alice(), None).await;
    assert_sent(&outcome, &server);

    let mail = only_mail(&server);
    assert_eq!(mail.from, SENDER);
    assert_eq!(mail.to, vec!["alice@example.com".to_string()]);
    assert!(!mail.tls);
    assert_eq!(mail.auth, None);

    let mime = &mail.mime;
    assert!(mime.defects.is_empty(), "MIME defects: {:?}", mime.defects);
    assert_eq!(mime.content_type, "multipart/alternative");
    assert_eq!(mime.subject.as_deref(), Some("Workspace “dev” deleted — ✓"));
    assert_eq!(mime.from.as_deref(), Some("Herald <herald@example.com>"));
    assert_eq!(
        mime.to.as_deref(),
        Some("Alice Liddell <alice@example.com>")
    );
    // `email.hello` is the default `localhost`, so the id takes the sender's domain.
    assert_eq!(
        mime.message_id.as_deref(),
        Some(format!("<{message_id}@example.com>").as_str())
    );
    let date = mime.date.as_deref().expect("a Date header that parses");
    let date = DateTime::parse_from_rfc3339(date)
        .unwrap_or_else(|e| panic!("Date {date}: {e}"))
        .with_timezone(&Utc);
    assert!(
        (date - before).num_seconds().abs() <= 5,
        "Date {date} is not now ({before})"
    );

    let types: Vec<&str> = mime.parts.iter().map(|p| p.content_type.as_str()).collect();
    assert_eq!(types, vec!["text/plain", "text/html"]);
    let text = mime.parts[0].content.as_deref().expect("text part");
    assert!(
        text.contains("Hi Alice, your workspace dev was deleted."),
        "{text}"
    );
    assert!(
        text.contains("View workspaces: https://coder.example.com/workspaces"),
        "{text}"
    );
    assert!(
        text.contains("Manage your notification settings: herald optout list"),
        "{text}"
    );
    let html = mime.parts[1].content.as_deref().expect("html part");
    assert!(
        html.contains("your workspace <strong>dev</strong> was deleted."),
        "{html}"
    );
    assert!(html.contains(">View workspaces</a>"), "{html}");
    assert!(html.contains("Manage your notification settings"), "{html}");

    // The raw message, before any parser: the headers are there as sent.
    let raw = mail.text();
    let head = &raw[..raw.find("\r\n\r\n").expect("a header block")];
    for header in ["Message-ID: ", "Date: ", "Subject: ", "MIME-Version: 1.0"] {
        assert!(head.contains(header), "no {header} in:\n{head}");
    }
    assert!(
        head.contains("Content-Type: multipart/alternative;"),
        "{head}"
    );
}

#[tokio::test]
async fn with_base_url_the_catalogs_relative_actions_are_absolute_links_in_the_email() {
    let server = SmtpServer::start(SmtpServerOptions::new());
    let config = config(&format!(
        "base_url = \"https://coder.example.com/\"\n\
         [email]\nfrom = \"Herald <{SENDER}>\"\nsmarthost = \"{}\"\n",
        server.address()
    ));
    let event = builtin_event("workspace_deleted");
    let user = channel_fixtures::alice();
    let labels = [("name".to_string(), "dev".to_string())].into();
    let payload = herald::routing::build_payload(&event, Some(&user), &labels, &json!({}), &[]);
    let overrides = Overrides::from_config(&config).expect("overrides");
    let rendered = render_for(&event, &overrides, None, &payload).expect("rendered");
    let delivery = Delivery {
        message_id: Uuid::now_v7(),
        event: "workspace_deleted",
        method: Method::Smtp,
        user_id: Some(user.id),
        target: None,
        payload: &payload,
        rendered: &rendered,
    };
    assert_sent(&smtp_channel(&config).deliver(&delivery).await, &server);

    let mail = only_mail(&server);
    let text = mail.mime.parts[0].content.as_deref().expect("text part");
    // The layout escapes `/` in attributes as `&#x2f;`.
    let html = mail.mime.parts[1]
        .content
        .as_deref()
        .expect("html part")
        .replace("&#x2f;", "/");
    for (label, url) in [
        ("View workspaces", "https://coder.example.com/workspaces"),
        ("View templates", "https://coder.example.com/templates"),
    ] {
        assert!(text.contains(&format!("{label}: {url}")), "{text}");
        assert!(html.contains(&format!("href=\"{url}\"")), "{html}");
    }
    assert!(
        !html.contains("href=\"/"),
        "a relative link is left: {html}"
    );
}

#[tokio::test]
async fn starttls_upgrades_the_connection_before_mail_is_sent() {
    let server =
        SmtpServer::start(SmtpServerOptions::new().tls(ServerTls::StartTls { required: true }));
    let channel = smtp_channel(&email_config(&server, &tls_table("starttls = true\n")));
    assert_sent(&deliver_to_alice(&channel).await, &server);
    assert!(only_mail(&server).tls, "the message came over plain text");
}

#[tokio::test]
async fn without_starttls_a_server_that_requires_it_refuses_the_message() {
    let server =
        SmtpServer::start(SmtpServerOptions::new().tls(ServerTls::StartTls { required: true }));
    let channel = smtp_channel(&email_config(&server, ""));
    let reason = permanent_reason(deliver_to_alice(&channel).await);
    assert!(reason.starts_with("smtp 530 "), "{reason}");
    assert!(reason.contains("STARTTLS"), "{reason}");
}

#[tokio::test]
async fn starttls_configured_but_not_offered_is_permanent_and_says_so() {
    let server = SmtpServer::start(SmtpServerOptions::new());
    let channel = smtp_channel(&email_config(&server, &tls_table("starttls = true\n")));
    let reason = permanent_reason(deliver_to_alice(&channel).await);
    assert_eq!(
        reason,
        format!(
            "the SMTP server {} does not offer STARTTLS; unset email.tls.starttls or enable \
             STARTTLS on the server",
            server.address()
        )
    );
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn force_tls_speaks_tls_from_the_first_byte() {
    let server = SmtpServer::start(SmtpServerOptions::new().tls(ServerTls::Implicit));
    // STARTTLS is ignored when implicit TLS is on (a warning is logged).
    let channel = smtp_channel(&email_config(
        &server,
        &tls_table("force_tls = true\nstarttls = true\n"),
    ));
    assert_sent(&deliver_to_alice(&channel).await, &server);
    assert!(only_mail(&server).tls);
}

#[tokio::test]
async fn an_untrusted_certificate_is_retryable_unless_verification_is_skipped() {
    let server = SmtpServer::start(SmtpServerOptions::new().tls(ServerTls::Implicit));
    let verified = smtp_channel(&email_config(&server, "[email.tls]\nforce_tls = true\n"));
    let reason = retryable_reason(deliver_to_alice(&verified).await);
    assert!(
        reason.starts_with(&format!(
            "smtp cannot connect to {} with implicit TLS: ",
            server.address()
        )),
        "{reason}"
    );
    assert!(reason.contains("certificate"), "{reason}");

    // The server name is what the certificate is checked against.
    let wrong_name = smtp_channel(&email_config(
        &server,
        &tls_table("force_tls = true\nserver_name = \"mail.example.com\"\n")
            .replace("server_name = \"localhost\"\n", ""),
    ));
    let reason = retryable_reason(deliver_to_alice(&wrong_name).await);
    assert!(reason.contains("certificate"), "{reason}");
    assert!(server.received().is_empty());

    let skipping = smtp_channel(&email_config(
        &server,
        "[email.tls]\nforce_tls = true\nskip_verify = true\n",
    ));
    assert_sent(&deliver_to_alice(&skipping).await, &server);
}

/// Coder's `CODER_EMAIL_TLS_SKIPVERIFY`: skipping verification accepts a certificate nobody
/// signed that names another host, over implicit TLS and STARTTLS alike.
#[tokio::test]
async fn skip_verify_accepts_a_self_signed_certificate_for_another_host_name() {
    let server = SmtpServer::start(SmtpServerOptions {
        self_signed_cert: true,
        ..SmtpServerOptions::new().tls(ServerTls::Implicit)
    });
    let prefix = format!(
        "smtp cannot connect to {} with implicit TLS: ",
        server.address()
    );

    let verified = smtp_channel(&email_config(&server, "[email.tls]\nforce_tls = true\n"));
    let reason = retryable_reason(deliver_to_alice(&verified).await);
    assert!(reason.starts_with(&prefix), "{reason}");
    assert!(reason.contains("certificate"), "{reason}");

    // Trusted, but for the wrong name: the name is what is refused, and the reason says so.
    let trusted = smtp_channel(&email_config(
        &server,
        &format!(
            "[email.tls]\nforce_tls = true\nca_file = \"{}\"\n",
            test_certs().self_signed_cert.display()
        ),
    ));
    let reason = retryable_reason(deliver_to_alice(&trusted).await);
    assert!(reason.starts_with(&prefix), "{reason}");
    assert!(
        reason.contains("not valid for name \"127.0.0.1\"") && reason.contains(SELF_SIGNED_NAME),
        "{reason}"
    );
    assert!(
        reason.ends_with(
            "(trust its CA with email.tls.ca_file, or name it with email.tls.server_name; \
             email.tls.skip_verify skips every check, for test servers only)"
        ),
        "{reason}"
    );
    assert!(server.received().is_empty());

    let skipping = smtp_channel(&email_config(
        &server,
        "[email.tls]\nforce_tls = true\nskip_verify = true\n",
    ));
    assert_sent(&deliver_to_alice(&skipping).await, &server);
    assert!(only_mail(&server).tls);

    let starttls = SmtpServer::start(SmtpServerOptions {
        self_signed_cert: true,
        ..SmtpServerOptions::new().tls(ServerTls::StartTls { required: true })
    });
    let skipping = smtp_channel(&email_config(
        &starttls,
        "[email.tls]\nstarttls = true\nskip_verify = true\n",
    ));
    assert_sent(&deliver_to_alice(&skipping).await, &starttls);
    assert!(only_mail(&starttls).tls);
}

#[tokio::test]
async fn a_client_certificate_is_presented_when_configured() {
    let server = SmtpServer::start(SmtpServerOptions {
        request_client_cert: true,
        ..SmtpServerOptions::new().tls(ServerTls::Implicit)
    });
    let certs = test_certs();
    let channel = smtp_channel(&email_config(
        &server,
        &tls_table(&format!(
            "force_tls = true\ncert_file = \"{}\"\ncert_key_file = \"{}\"\n",
            certs.client_cert.display(),
            certs.client_key.display()
        )),
    ));
    assert_sent(&deliver_to_alice(&channel).await, &server);
    assert_eq!(
        only_mail(&server).client_cert_cn.as_deref(),
        Some("herald-test-client")
    );
}

/// `[email.auth]` with the test password and `extra` keys.
fn auth_table(extra: &str) -> String {
    format!("[email.auth]\nusername = \"alice\"\npassword = \"{PASSWORD}\"\n{extra}")
}

#[tokio::test]
async fn auth_plain_sends_the_identity() {
    let server = SmtpServer::start(
        SmtpServerOptions::new()
            .auth("alice", PASSWORD)
            .only_mechanism("PLAIN"),
    );
    let channel = smtp_channel(&email_config(
        &server,
        &auth_table("identity = \"ops-team\"\n"),
    ));
    assert_sent(&deliver_to_alice(&channel).await, &server);
    let auth = only_mail(&server).auth.expect("an authenticated session");
    assert_eq!(auth.mechanism, "PLAIN");
    assert_eq!(auth.login, "alice");
    assert_eq!(auth.authzid.as_deref(), Some("ops-team"));
}

#[tokio::test]
async fn auth_plain_is_preferred_when_both_are_offered() {
    let server = SmtpServer::start(SmtpServerOptions::new().auth("alice", PASSWORD));
    let channel = smtp_channel(&email_config(&server, &auth_table("")));
    assert_sent(&deliver_to_alice(&channel).await, &server);
    let auth = only_mail(&server).auth.expect("an authenticated session");
    assert_eq!(auth.mechanism, "PLAIN");
    assert_eq!(auth.authzid, None);
}

#[tokio::test]
async fn auth_login_is_used_when_plain_is_not_offered_with_a_password_file() {
    let server = SmtpServer::start(
        SmtpServerOptions::new()
            .auth("alice", PASSWORD)
            .only_mechanism("LOGIN"),
    );
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("smtp-password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let channel = smtp_channel(&email_config(
        &server,
        &format!(
            "[email.auth]\nusername = \"alice\"\npassword_file = \"{}\"\n",
            password_file.display()
        ),
    ));
    assert_sent(&deliver_to_alice(&channel).await, &server);
    let auth = only_mail(&server).auth.expect("an authenticated session");
    assert_eq!(auth.mechanism, "LOGIN");
    assert_eq!(auth.login, "alice");
}

#[tokio::test]
async fn auth_over_starttls_when_the_server_offers_it_only_there() {
    let server = SmtpServer::start(SmtpServerOptions {
        auth_only_over_tls: true,
        ..SmtpServerOptions::new()
            .tls(ServerTls::StartTls { required: true })
            .auth("alice", PASSWORD)
    });
    let channel = smtp_channel(&email_config(
        &server,
        &format!("{}{}", auth_table(""), tls_table("starttls = true\n")),
    ));
    assert_sent(&deliver_to_alice(&channel).await, &server);
    let mail = only_mail(&server);
    assert!(mail.tls);
    assert_eq!(mail.auth.map(|a| a.mechanism).as_deref(), Some("PLAIN"));
}

#[tokio::test]
async fn a_wrong_password_is_retryable_and_not_quoted() {
    let server = SmtpServer::start(SmtpServerOptions::new().auth("alice", "the-right-one"));
    let channel = smtp_channel(&email_config(&server, &auth_table("")));
    let reason = retryable_reason(deliver_to_alice(&channel).await);
    assert_eq!(
        reason,
        format!(
            "smtp authentication as alice at {} failed: 535 5.7.8 Authentication credentials \
             invalid",
            server.address()
        )
    );
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn auth_configured_but_not_offered_is_permanent_and_says_what_to_change() {
    // aiosmtpd offers AUTH only over TLS here, and this connection is plain.
    let server = SmtpServer::start(SmtpServerOptions {
        auth_only_over_tls: true,
        ..SmtpServerOptions::new()
    });
    let channel = smtp_channel(&email_config(&server, &auth_table("")));
    let reason = permanent_reason(deliver_to_alice(&channel).await);
    assert_eq!(
        reason,
        format!(
            "the SMTP server {} does not offer AUTH; remove email.auth.* or enable \
             authentication on the server",
            server.address()
        )
    );

    // When it offers STARTTLS, the reason says AUTH may come after it.
    let server = SmtpServer::start(SmtpServerOptions {
        auth_only_over_tls: true,
        ..SmtpServerOptions::new().tls(ServerTls::StartTls { required: false })
    });
    let channel = smtp_channel(&email_config(&server, &auth_table("")));
    let reason = permanent_reason(deliver_to_alice(&channel).await);
    assert!(reason.contains("does not offer AUTH"), "{reason}");
    assert!(
        reason.ends_with("(it offers STARTTLS, and many servers offer AUTH only after it: set email.tls.starttls = true)"),
        "{reason}"
    );
}

/// A hostile SMTP server on loopback: greets, answers every `EHLO` with `ehlo_reply`, `QUIT`
/// with 221 and anything else with 502. Returns its `host:port`; it stops with the runtime.
async fn scripted_smtp_server(ehlo_reply: &'static str) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let address = listener.local_addr().expect("its address").to_string();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 hostile ESMTP\r\n").await?;
                while let Some(line) = lines.next_line().await? {
                    let command = line.to_ascii_uppercase();
                    if command.starts_with("EHLO") {
                        write.write_all(ehlo_reply.as_bytes()).await?;
                    } else if command.starts_with("QUIT") {
                        write.write_all(b"221 2.0.0 bye\r\n").await?;
                        break;
                    } else {
                        write.write_all(b"502 5.5.1 not here\r\n").await?;
                    }
                }
                Ok::<_, std::io::Error>(())
            });
        }
    });
    address
}

#[tokio::test]
async fn an_ehlo_reply_with_multi_byte_keywords_is_read_without_panicking() {
    let server = scripted_smtp_server(
        "250-hostile.example\r\n250-AUTHé PLAIN\r\n250-ÄUTH=LOGIN\r\n250-AUTH€\r\n\
         250 8BITMIME\r\n",
    )
    .await;
    let channel = smtp_channel(&config(&format!(
        "[email]\nfrom = \"{SENDER}\"\nsmarthost = \"{server}\"\n{}",
        auth_table("")
    )));
    // None of those lines is an AUTH line: the server offers no AUTH at all.
    let reason = permanent_reason(deliver_to_alice(&channel).await);
    assert_eq!(
        reason,
        format!(
            "the SMTP server {server} does not offer AUTH; remove email.auth.* or enable \
             authentication on the server"
        )
    );
}

#[tokio::test]
async fn an_ehlo_reply_lettre_cannot_parse_is_a_failure_not_a_panic() {
    // lettre 0.11 panics on an EHLO line that is only whitespace.
    let server = scripted_smtp_server("250-hostile.example\r\n250- \r\n250 8BITMIME\r\n").await;
    let channel = smtp_channel(&config(&format!(
        "[email]\nfrom = \"{SENDER}\"\nsmarthost = \"{server}\"\n"
    )));
    let reason = retryable_reason(deliver_to_alice(&channel).await);
    assert!(
        reason.starts_with(&format!(
            "smtp {server} sent a greeting or EHLO reply the SMTP client cannot read ("
        )),
        "{reason}"
    );
    let results = channel.check().await;
    assert!(!results[0].ok, "{results:?}");
    assert!(results[0].detail.contains("cannot read"), "{results:?}");
}

#[tokio::test]
async fn a_550_recipient_is_permanent_and_quotes_the_reply() {
    let server = SmtpServer::start(SmtpServerOptions {
        rcpt_reply: Some("550 5.1.1 mailbox unavailable".to_string()),
        ..SmtpServerOptions::new()
    });
    let channel = smtp_channel(&email_config(&server, ""));
    let reason = permanent_reason(deliver_to_alice(&channel).await);
    assert_eq!(reason, "smtp 550 5.1.1 mailbox unavailable");
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn a_451_is_retryable_and_quotes_the_reply() {
    let server = SmtpServer::start(SmtpServerOptions {
        data_reply: Some("451 4.3.0 try again later".to_string()),
        ..SmtpServerOptions::new()
    });
    let channel = smtp_channel(&email_config(&server, ""));
    let reason = retryable_reason(deliver_to_alice(&channel).await);
    assert_eq!(reason, "smtp 451 4.3.0 try again later");
}

#[tokio::test]
async fn a_server_that_is_down_is_retryable() {
    let server = SmtpServer::start(SmtpServerOptions::new());
    let config = email_config(&server, "");
    let address = server.address();
    drop(server);
    let reason = retryable_reason(deliver_to_alice(&smtp_channel(&config)).await);
    assert!(
        reason.starts_with(&format!("smtp cannot connect to {address}: ")),
        "{reason}"
    );
}

#[tokio::test]
async fn a_user_without_an_email_address_is_permanent() {
    let server = SmtpServer::start(SmtpServerOptions::new());
    let channel = smtp_channel(&email_config(&server, ""));
    let payload = json!({"user_username": "bob", "user_email": ""});
    let reason = permanent_reason(deliver(&channel, &payload, None).await.1);
    assert_eq!(
        reason,
        "user bob has no email address: give them one to receive email"
    );
    let reason = permanent_reason(
        deliver(&channel, &json!({"user_email": "not-an-address"}), None)
            .await
            .1,
    );
    assert!(
        reason.contains("`not-an-address` is not an address"),
        "{reason}"
    );
    assert_eq!(server.connections(), 0);
}

#[tokio::test]
async fn target_messages_go_to_the_targets_recipients_through_its_own_server() {
    let server = SmtpServer::start(SmtpServerOptions::new().auth("pipelines", PASSWORD));
    // No [email] at all: the targets carry their own server, credentials and sender.
    let own_server = |name: &str, sender: &str, recipients: &[&str]| {
        let keys: [(&str, &dyn Debug); 6] = [
            ("host", &"127.0.0.1"),
            ("port", &server.port),
            ("user", &"pipelines"),
            ("password", &PASSWORD),
            ("sender", &sender),
            ("recipients", &recipients),
        ];
        target("smtp", name, &["run_failure"], &keys)
    };
    let config = config(
        &[
            own_server(
                "team",
                "SQLMesh <sqlmesh@example.com>",
                &["team@example.com", "oncall@example.com"],
            ),
            user(
                "carol",
                &[own_server(
                    "mine",
                    "carol-bot@example.com",
                    &["carol@example.com"],
                )],
            ),
        ]
        .concat(),
    );
    let channel = smtp_channel(&config);
    let payload = json!({"user_email": "", "data": {}});
    let (_, outcome) = deliver(&channel, &payload, Some("team")).await;
    assert_sent(&outcome, &server);
    let (_, outcome) = deliver(&channel, &payload, Some("carol/mine")).await;
    assert_sent(&outcome, &server);

    let mail = server.received();
    assert_eq!(mail.len(), 2);
    assert_eq!(mail[0].from, "sqlmesh@example.com");
    assert_eq!(
        mail[0].to,
        vec![
            "team@example.com".to_string(),
            "oncall@example.com".to_string()
        ]
    );
    assert_eq!(
        mail[0].mime.to.as_deref(),
        Some("team@example.com, oncall@example.com")
    );
    assert_eq!(
        mail[0].mime.from.as_deref(),
        Some("SQLMesh <sqlmesh@example.com>")
    );
    assert_eq!(
        mail[0].auth.as_ref().map(|a| a.login.as_str()),
        Some("pipelines")
    );
    assert_eq!(mail[1].from, "carol-bot@example.com");
    assert_eq!(mail[1].to, vec!["carol@example.com".to_string()]);
    // Same server and credentials: one pool, one connection.
    assert_eq!(server.connections(), 1);

    // A user message has nowhere to go without [email].
    let reason = permanent_reason(deliver_to_alice(&channel).await);
    assert!(reason.contains("set email.smarthost"), "{reason}");
}

#[tokio::test]
async fn a_target_without_its_own_host_uses_the_smarthost() {
    let server = SmtpServer::start(SmtpServerOptions::new());
    let config = config(&format!(
        "[email]\nfrom = \"Herald <{SENDER}>\"\nsmarthost = \"{}\"\n\n\
         [[targets]]\ntype = \"smtp\"\nname = \"team\"\nnotify_on = [\"run_failure\"]\n\
         recipients = [\"team@example.com\"]\n",
        server.address()
    ));
    let channel = smtp_channel(&config);
    assert_sent(
        &deliver(&channel, &json!({}), Some("team")).await.1,
        &server,
    );
    assert_sent(&deliver_to_alice(&channel).await, &server);
    let mail = server.received();
    assert_eq!(mail[0].from, SENDER);
    assert_eq!(mail[0].to, vec!["team@example.com".to_string()]);
    assert_eq!(mail[1].to, vec!["alice@example.com".to_string()]);
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn many_messages_reuse_a_connection() {
    let server = SmtpServer::start(
        SmtpServerOptions::new()
            .tls(ServerTls::StartTls { required: true })
            .auth("alice", PASSWORD),
    );
    let channel = smtp_channel(&email_config(
        &server,
        &format!("{}{}", auth_table(""), tls_table("starttls = true\n")),
    ));
    for _ in 0..20 {
        assert_sent(&deliver_to_alice(&channel).await, &server);
    }
    let mail = server.received();
    assert_eq!(mail.len(), 20);
    let sessions: BTreeSet<u64> = mail.iter().map(|m| m.session).collect();
    assert!(
        server.connections() <= 2 && sessions.len() <= 2,
        "20 messages took {} connections (sessions {sessions:?})",
        server.connections()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_messages_share_a_bounded_pool() {
    let server = SmtpServer::start(SmtpServerOptions::new());
    let channel = Arc::new(smtp_channel(&email_config(&server, "")));
    let mut deliveries = JoinSet::new();
    for _ in 0..30 {
        let channel = Arc::clone(&channel);
        deliveries.spawn(async move { deliver_to_alice(&channel).await });
    }
    while let Some(outcome) = deliveries.join_next().await {
        assert_sent(&outcome.expect("a delivery task"), &server);
    }
    assert_eq!(server.received().len(), 30);
    assert!(
        (1..=10).contains(&server.connections()),
        "{} connections for 30 concurrent messages",
        server.connections()
    );
}

/// What the pool holds at most per server (`MAX_CONNECTIONS_PER_SERVER`).
const POOL_SIZE: usize = 10;

/// A channel whose smarthost is `server` and whose `dispatch_timeout` is `timeout`, with every
/// connection slot held by a delivery stuck waiting for `server`'s greeting.
async fn saturated_channel(
    server: &SilentServer,
    timeout: &str,
) -> (Arc<SmtpChannel>, JoinSet<DeliveryOutcome>) {
    let channel = Arc::new(smtp_channel(&config(&format!(
        "[notifications]\ndispatch_timeout = \"{timeout}\"\n\
         [email]\nfrom = \"{SENDER}\"\nsmarthost = \"{}\"\n",
        server.address()
    ))));
    let mut stuck = JoinSet::new();
    for _ in 0..POOL_SIZE {
        let channel = Arc::clone(&channel);
        stuck.spawn(async move { deliver_to_alice(&channel).await });
    }
    server.wait_for_connections(POOL_SIZE).await;
    (channel, stuck)
}

/// Delivers as the dispatcher does, under `dispatch_timeout`; a bare dispatcher timeout (no
/// outcome from the channel) fails the test.
async fn deliver_under(channel: &SmtpChannel, dispatch_timeout: Duration) -> DeliveryOutcome {
    tokio::time::timeout(dispatch_timeout, deliver_to_alice(channel))
        .await
        .unwrap_or_else(|_| panic!("the dispatcher's own timeout fired: the reason names no wait"))
}

/// `waited N s` in `reason`, as seconds.
#[track_caller]
fn waited_seconds(reason: &str) -> f64 {
    let rest = reason
        .split_once("(waited ")
        .unwrap_or_else(|| panic!("no wait in {reason}"))
        .1;
    let number = rest.split_once(" s ").map_or("", |(n, _)| n);
    number
        .parse()
        .unwrap_or_else(|e| panic!("`{number}` in {reason}: {e}"))
}

#[tokio::test]
async fn a_delivery_that_finds_every_connection_busy_says_how_long_it_waited() {
    let server = SilentServer::start().await;
    let (channel, _stuck) = saturated_channel(&server, "1s").await;
    let reason = retryable_reason(deliver_under(&channel, Duration::from_secs(1)).await);
    assert!(
        reason.starts_with("dispatch timeout after 1s (waited "),
        "{reason}"
    );
    assert!(
        reason.ends_with(&format!(
            " s for a connection to {}: all {POOL_SIZE} of its connections were busy)",
            server.address()
        )),
        "{reason}"
    );
    let waited = waited_seconds(&reason);
    assert!((0.8..=1.0).contains(&waited), "{reason}");
    assert_eq!(
        server.accepted(),
        POOL_SIZE,
        "no connection beyond the pool"
    );
}

#[tokio::test]
async fn a_delivery_cut_off_after_waiting_for_a_connection_counts_the_wait_in_its_reason() {
    let server = SilentServer::start().await;
    let (channel, mut stuck) = saturated_channel(&server, "2s").await;
    let waiting = tokio::spawn({
        let channel = Arc::clone(&channel);
        async move { deliver_under(&channel, Duration::from_secs(2)).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The stuck deliveries fail (the server hung up) and free their slots; the waiting one gets
    // a connection to a server that never greets it either.
    server.close_connections();
    while let Some(outcome) = stuck.join_next().await {
        retryable_reason(outcome.expect("a stuck delivery"));
    }
    let reason = retryable_reason(waiting.await.expect("the waiting delivery"));
    assert!(
        reason.starts_with("dispatch timeout after 2s (waited "),
        "{reason}"
    );
    assert!(
        reason.ends_with(&format!(" s for a connection to {})", server.address())),
        "{reason}"
    );
    let waited = waited_seconds(&reason);
    assert!((0.4..=1.5).contains(&waited), "{reason}");
    assert_eq!(server.accepted(), POOL_SIZE + 1);
}

#[tokio::test]
async fn a_password_never_appears_in_any_reason() {
    let mut reasons = Vec::new();
    let scenarios: Vec<(SmtpServerOptions, &str)> = vec![
        (SmtpServerOptions::new().auth("alice", "other"), ""),
        (
            SmtpServerOptions {
                auth_only_over_tls: true,
                ..SmtpServerOptions::new()
            },
            "",
        ),
        (
            SmtpServerOptions {
                rcpt_reply: Some(format!("550 5.1.1 no mailbox {PASSWORD}")),
                ..SmtpServerOptions::new().auth("alice", PASSWORD)
            },
            "",
        ),
        (
            SmtpServerOptions {
                data_reply: Some("451 4.3.0 try again later".to_string()),
                ..SmtpServerOptions::new().auth("alice", PASSWORD)
            },
            "",
        ),
        (
            SmtpServerOptions::new().tls(ServerTls::Implicit),
            "[email.tls]\nforce_tls = true\n",
        ),
    ];
    for (options, tls) in scenarios {
        let server = SmtpServer::start(options);
        let channel = smtp_channel(&email_config(&server, &format!("{}{tls}", auth_table(""))));
        match deliver_to_alice(&channel).await {
            DeliveryOutcome::Sent => panic!("expected a failure"),
            DeliveryOutcome::Retryable { reason, .. } | DeliveryOutcome::Permanent { reason } => {
                reasons.push(reason)
            }
        }
    }
    assert!(
        reasons.iter().any(|r| r.contains("no mailbox <redacted>")),
        "{reasons:#?}"
    );
    for reason in &reasons {
        assert!(!reason.contains(PASSWORD), "{reason}");
    }
    let debug = format!(
        "{:?}",
        smtp_channel(&config(&format!(
            "[email]\nfrom = \"{SENDER}\"\nsmarthost = \"127.0.0.1:25\"\n{}",
            auth_table("")
        )))
    );
    assert!(!debug.contains(PASSWORD), "{debug}");
}

#[test]
fn an_unreadable_password_file_fails_at_start_naming_the_file() {
    let missing = Path::new("/nonexistent/herald/smtp-password");
    let config = config(&format!(
        "[email]\nfrom = \"{SENDER}\"\nsmarthost = \"127.0.0.1:25\"\n\
         [email.auth]\nusername = \"alice\"\npassword_file = \"{}\"\n",
        missing.display()
    ));
    let error = SmtpChannel::new(&config.channel_settings().smtp)
        .expect_err("a setup error")
        .to_string();
    assert!(
        error.contains(&format!(
            "cannot read email.auth.password_file {}",
            missing.display()
        )),
        "{error}"
    );
}

#[tokio::test]
async fn check_reaches_each_server_with_tls_and_auth_without_sending() {
    let server = SmtpServer::start(
        SmtpServerOptions::new()
            .tls(ServerTls::StartTls { required: true })
            .auth("alice", PASSWORD),
    );
    let tls = tls_table("starttls = true\n");
    let good = smtp_channel(&email_config(&server, &format!("{}{tls}", auth_table(""))));
    let results = good.check().await;
    assert_eq!(results.len(), 1, "{results:?}");
    assert!(results[0].ok, "{results:?}");
    assert_eq!(
        results[0].check,
        format!("smtp server {} (STARTTLS, AUTH as alice)", server.address())
    );
    assert_eq!(
        results[0].detail,
        "connected, TLS ok, authenticated as alice; nothing sent"
    );

    let wrong = config(&format!(
        "[email]\nfrom = \"{SENDER}\"\nsmarthost = \"{}\"\n\
         [email.auth]\nusername = \"alice\"\npassword = \"not-{PASSWORD}\"\n{tls}",
        server.address()
    ));
    let results = smtp_channel(&wrong).check().await;
    assert!(!results[0].ok, "{results:?}");
    assert!(results[0].detail.contains("535 5.7.8"), "{results:?}");
    assert!(!results[0].detail.contains(PASSWORD), "{results:?}");
    assert!(server.received().is_empty());
    assert_eq!(server.connections(), 2);
}

#[tokio::test]
async fn a_connection_the_server_closed_while_idle_is_replaced() {
    let server = SmtpServer::start(SmtpServerOptions {
        idle_timeout: Duration::from_millis(300),
        ..SmtpServerOptions::new()
    });
    let channel = smtp_channel(&email_config(&server, ""));
    assert_sent(&deliver_to_alice(&channel).await, &server);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_sent(&deliver_to_alice(&channel).await, &server);
    let sessions: Vec<u64> = server.received().iter().map(|m| m.session).collect();
    assert_eq!(sessions, vec![1, 2]);
}

#[tokio::test]
async fn a_plain_client_at_an_implicit_tls_server_gives_up_with_a_hint() {
    // The server waits for a TLS handshake, the client for a greeting: only a timeout ends it.
    let server = SmtpServer::start(SmtpServerOptions::new().tls(ServerTls::Implicit));
    let channel = smtp_channel(&email_config(&server, ""));
    let reason = retryable_reason(deliver_to_alice(&channel).await);
    assert_eq!(
        reason,
        format!(
            "smtp {} did not finish greeting, TLS and AUTH within 20s (a server that expects \
             implicit TLS never greets a plain client: see email.tls.force_tls)",
            server.address()
        )
    );
}
