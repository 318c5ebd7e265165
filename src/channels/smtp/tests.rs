//! The SMTP channel's tests: settings, TLS modes, EHLO and reply parsing, scrubbing.

use super::*;
use crate::channels::settings::EmailSettings;
use crate::channels::test_support::{delivery, named, permanent, rendered};

/// `[email]` with `from` and `smarthost` (either may be empty, meaning unset), as the
/// configuration's defaults have it otherwise.
fn email(from: &str, smarthost: &str) -> SmtpSettings {
    let set = |value: &str| (!value.is_empty()).then(|| value.to_string());
    SmtpSettings {
        dispatch_timeout: Duration::from_secs(60),
        email: EmailSettings {
            from: set(from),
            smarthost: set(smarthost),
            ..EmailSettings::default()
        },
        ..SmtpSettings::default()
    }
}

/// An `smtp` target sending to `recipient` through its own `host` as `sender`.
fn own_server(recipient: &str, host: &str, sender: &str) -> SmtpTarget {
    let set = |value: &str| (!value.is_empty()).then(|| value.to_string());
    SmtpTarget {
        recipients: vec![recipient.to_string()],
        host: set(host),
        sender: set(sender),
        ..SmtpTarget::default()
    }
}

fn with_auth(mut settings: SmtpSettings, auth: SmtpAuthSettings) -> SmtpSettings {
    settings.email.auth = auth;
    settings
}

fn setup_error(settings: SmtpSettings) -> String {
    match SmtpChannel::new(&settings) {
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
    let mut settings = email("Herald <herald@example.com>", "127.0.0.1:2525");
    settings.targets = vec![
        named("team", own_server("team@example.com", "", "")),
        named(
            "own",
            own_server("own@example.com", "mail.example.com", "ops@example.com"),
        ),
        named(
            "alice/mine",
            own_server("alice@example.com", "mail.example.com", "alice@example.com"),
        ),
    ];
    let channel = SmtpChannel::new(&settings).unwrap();
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
    let error = setup_error(with_auth(
        email("h@example.com", "127.0.0.1:25"),
        SmtpAuthSettings {
            username: Some("u".to_string()),
            password_file: Some("/nonexistent/herald-pw".into()),
            ..SmtpAuthSettings::default()
        },
    ));
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
    let settings = with_auth(
        email("h@example.com", "127.0.0.1:25"),
        SmtpAuthSettings {
            username: Some("u".to_string()),
            password_file: Some(path),
            identity: Some("id".to_string()),
            ..SmtpAuthSettings::default()
        },
    );
    let login = email_login(&settings.email.auth).unwrap().unwrap();
    assert_eq!(login.password.expose(), "s3cret");
    assert_eq!(login.identity.as_deref(), Some("id"));
    let channel = SmtpChannel::new(&settings).unwrap();
    assert!(!format!("{channel:?}").contains("s3cret"));
}

#[test]
fn setup_errors_say_what_to_set() {
    let mut ca_file = email("h@example.com", "127.0.0.1:25");
    ca_file.email.tls.starttls = true;
    ca_file.email.tls.ca_file = Some("/nonexistent/ca.pem".into());
    let target = |target: SmtpTarget| SmtpSettings {
        targets: vec![named("t", target)],
        ..email("", "")
    };
    let cases = [
        (email("", "127.0.0.1:25"), "email.from is not set"),
        (
            email("not an address", "127.0.0.1:25"),
            "email.from `not an address` is not an email address",
        ),
        (
            with_auth(
                email("h@example.com", "127.0.0.1:25"),
                SmtpAuthSettings {
                    username: Some("u".to_string()),
                    ..SmtpAuthSettings::default()
                },
            ),
            "email.auth.username is set but neither email.auth.password",
        ),
        (ca_file, "cannot read email.tls.ca_file /nonexistent/ca.pem"),
        (
            target(own_server("a@example.com", "mail", "")),
            "smtp target `t` has no sender and email.from is not set",
        ),
        (
            target(SmtpTarget {
                user: Some("u".to_string()),
                ..own_server("a@example.com", "mail", "s@example.com")
            }),
            "smtp target `t` has a user but no password",
        ),
    ];
    for (settings, expected) in cases {
        let error = setup_error(settings.clone());
        assert!(error.contains(expected), "{settings:?}\n=> {error}");
    }
}

#[test]
fn a_ca_file_without_a_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, "not a certificate\n").unwrap();
    let mut settings = email("h@example.com", "127.0.0.1:465");
    settings.email.tls.ca_file = Some(path);
    let error = setup_error(settings);
    assert!(error.contains("holds no PEM certificate"), "{error}");
}

#[test]
fn without_smtp_settings_the_channel_has_no_routes() {
    let channel = SmtpChannel::new(&SmtpSettings::default()).unwrap();
    assert!(channel.servers().is_empty());
    let rendered = rendered("t", "b", &[]);
    let payload = serde_json::json!({"user_email": "a@example.com"});
    let delivery = Delivery {
        event: "test_notification",
        ..delivery(None, Method::Smtp, &payload, &rendered)
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

/// A server on loopback that answers as Postfix's `smtp-sink` does, each reply once its whole
/// command is in and the message's only once its closing `.` is: a client whose `.` waits for
/// the ACK of the message (Nagle's algorithm) waits for the server's delayed ACK. It offers
/// PIPELINING when `pipelining`, refuses every `RCPT` when `refuse_rcpt`, and records every
/// command and message line it reads.
async fn sink_server(pipelining: bool, refuse_rcpt: bool) -> (String, Arc<Mutex<Vec<String>>>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let received = Arc::new(Mutex::new(Vec::new()));
    let log = received.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let log = log.clone();
            // As a server that batches its replies to pipelined commands: none waits for the
            // ACK of the one before.
            stream.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 sink ESMTP\r\n").await.unwrap();
                let mut in_message = false;
                while let Ok(Some(line)) = lines.next_line().await {
                    log.lock().unwrap().push(line.clone());
                    let reply: &[u8] = match (in_message, line.as_str()) {
                        (true, ".") => {
                            in_message = false;
                            b"250 2.0.0 Ok\r\n"
                        }
                        (true, _) => continue,
                        (false, "DATA") if refuse_rcpt => {
                            b"554 5.5.1 Error: no valid recipients\r\n"
                        }
                        (false, "DATA") => {
                            in_message = true;
                            b"354 End data with <CR><LF>.<CR><LF>\r\n"
                        }
                        (false, command) if command.starts_with("EHLO") && pipelining => {
                            b"250-sink\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
                        }
                        (false, command) if command.starts_with("EHLO") => {
                            b"250-sink\r\n250 8BITMIME\r\n"
                        }
                        (false, command) if command.starts_with("RCPT") && refuse_rcpt => {
                            b"550 5.1.1 <a@example.com>: Recipient address rejected\r\n"
                        }
                        (false, "QUIT") => b"221 Bye\r\n",
                        (false, _) => b"250 Ok\r\n",
                    };
                    if write.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (address, received)
}

/// Delivers one message to `a@example.com` through `channel`.
async fn deliver_one(channel: &SmtpChannel) -> DeliveryOutcome {
    let rendered = rendered("t", "b", &[]);
    let payload = serde_json::json!({"user_email": "a@example.com"});
    channel
        .deliver(&delivery(None, Method::Smtp, &payload, &rendered))
        .await
}

#[tokio::test]
async fn messages_on_a_reused_connection_do_not_wait_for_delayed_acks() {
    const MESSAGES: u32 = 25;
    for pipelining in [false, true] {
        let (address, received) = sink_server(pipelining, false).await;
        let channel = SmtpChannel::new(&email("h@example.com", &address)).unwrap();
        let started = Instant::now();
        for _ in 0..MESSAGES {
            assert_eq!(deliver_one(&channel).await, DeliveryOutcome::Sent);
        }
        // With Nagle's algorithm on, each message's `.` waited 40 ms (Linux's delayed ACK).
        let elapsed = started.elapsed();
        assert!(
            elapsed < Duration::from_millis(10) * MESSAGES,
            "pipelining {pipelining}: {MESSAGES} messages took {elapsed:?}"
        );
        assert_eq!(channel.relays[0].opened.load(Ordering::Relaxed), 1);
        let dots = received
            .lock()
            .unwrap()
            .iter()
            .filter(|l| *l == ".")
            .count();
        assert_eq!(dots, MESSAGES as usize, "pipelining {pipelining}");
    }
}

#[tokio::test]
async fn a_refused_recipient_is_permanent_with_or_without_pipelining() {
    for pipelining in [false, true] {
        let (address, received) = sink_server(pipelining, true).await;
        let channel = SmtpChannel::new(&email("h@example.com", &address)).unwrap();
        for _ in 0..2 {
            assert_eq!(
                deliver_one(&channel).await,
                permanent("smtp 550 5.1.1 <a@example.com>: Recipient address rejected"),
                "pipelining {pipelining}"
            );
        }
        // The refusal ends the connection (QUIT) as lettre does; the next message opens one.
        assert_eq!(channel.relays[0].opened.load(Ordering::Relaxed), 2);
        let log = received.lock().unwrap();
        assert_eq!(log.iter().filter(|l| *l == "QUIT").count(), 2, "{log:?}");
        assert!(!log.iter().any(|l| l == "."), "{log:?}");
    }
}

#[test]
fn dot_stuffing_doubles_a_dot_only_at_the_start_of_a_line() {
    let cases = [
        ("", "\r\n.\r\n"),
        (".", "..\r\n.\r\n"),
        ("a\r\n.b\r\nc.d", "a\r\n..b\r\nc.d\r\n.\r\n"),
        ("a\n.b\r.c", "a\n.b\r.c\r\n.\r\n"),
        ("\r\n\r\n..", "\r\n\r\n...\r\n.\r\n"),
        ("\r\r\n.\r\n.", "\r\r\n..\r\n..\r\n.\r\n"),
    ];
    for (message, expected) in cases {
        assert_eq!(dot_stuffed(message), expected, "{message:?}");
    }
}
