//! SMTP details lettre leaves to us: `AUTH PLAIN` with an identity, the mechanisms a server
//! offers, and reading a server's reply out of an error.

use super::*;

/// `AUTH PLAIN` with an initial response `identity NUL username NUL password` (RFC 4616).
pub(super) async fn auth_plain(
    conn: &mut AsyncSmtpConnection,
    login: &Login,
) -> Result<(), SmtpError> {
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
pub(super) fn auth_mechanisms(line: &str) -> Option<String> {
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
pub(super) fn reply(error: &SmtpError) -> Option<String> {
    let code = error.status()?;
    let text = std::error::Error::source(error)
        .map(ToString::to_string)
        .unwrap_or_default();
    Some(format!("{code} {text}").trim_end().to_string())
}

/// An error's cause without lettre's kind prefix (`network error: …`).
pub(super) fn detail(error: &SmtpError) -> String {
    std::error::Error::source(error)
        .map(ToString::to_string)
        .unwrap_or_else(|| error.to_string())
}

/// What to change when `error` is the server's certificate being refused, else nothing.
pub(super) fn certificate_hint(error: &SmtpError) -> &'static str {
    if detail(error).contains("invalid peer certificate") {
        " (trust its CA with email.tls.ca_file, or name it with email.tls.server_name; \
         email.tls.skip_verify skips every check, for test servers only)"
    } else {
        ""
    }
}

/// Whether a failure on a reused connection means it had been closed meanwhile: an I/O or
/// protocol error rather than a reply, or `421` (the server is closing the session).
pub(super) fn is_stale(error: &SmtpError) -> bool {
    match error.status() {
        Some(code) => code.to_string() == "421",
        None => !error.is_client(),
    }
}

/// Standard base64 with padding (RFC 4648 §4), for the PLAIN response.
pub(super) fn base64(bytes: &[u8]) -> String {
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

/// An open, authenticated connection and what its server allows.
pub(super) struct Connection {
    pub(super) smtp: AsyncSmtpConnection,
    /// The server offers PIPELINING (RFC 2920).
    pub(super) pipelining: bool,
}

impl Connection {
    /// Sends one message. To a server that offers PIPELINING, an ASCII message goes in two
    /// writes and two waits, `MAIL`, `RCPT`s and `DATA` together, then the message with its
    /// `.`, instead of lettre's one wait per command; the replies and errors are the ones lettre
    /// gives, and a connection that saw an error is not used again.
    pub(super) async fn send(
        &mut self,
        envelope: &Envelope,
        email: &[u8],
    ) -> Result<Response, SmtpError> {
        let ascii = |address: &Address| AsRef::<str>::as_ref(address).is_ascii();
        let ascii_addresses = envelope.from().is_none_or(ascii) && envelope.to().iter().all(ascii);
        match std::str::from_utf8(email) {
            Ok(text) if self.pipelining && ascii_addresses && text.is_ascii() => {
                self.send_pipelined(envelope, text).await
            }
            _ => self.smtp.send(envelope, email).await,
        }
    }

    async fn send_pipelined(
        &mut self,
        envelope: &Envelope,
        email: &str,
    ) -> Result<Response, SmtpError> {
        let mut commands = Mail::new(envelope.from().cloned(), Vec::new()).to_string();
        for to in envelope.to() {
            commands.push_str(&Rcpt::new(to.clone(), Vec::new()).to_string());
        }
        commands.push_str(&Data.to_string());
        // `command` returns the first reply (MAIL's); the others are read in order, all of
        // them even after a refusal, so that a `DATA` the server took is known.
        let mut refused = self.smtp.command(commands).await.err();
        let mut data_accepted = false;
        for rcpt_or_data in 0..=envelope.to().len() {
            match self.smtp.read_response().await {
                Ok(_) => data_accepted = rcpt_or_data == envelope.to().len(),
                Err(e) if e.status().is_none() => return Err(refused.unwrap_or(e)),
                Err(e) => {
                    refused.get_or_insert(e);
                }
            }
        }
        if let Some(error) = refused {
            // As lettre does after a refusal: QUIT and close. A server that took `DATA` would
            // read `QUIT` as part of the message, so that connection is only dropped.
            if !data_accepted {
                self.smtp.abort().await;
            }
            return Err(error);
        }
        let sent = self.smtp.command(dot_stuffed(email)).await;
        if sent.is_err() {
            self.smtp.abort().await;
        }
        sent
    }
}

/// The message with a `.` doubled at the start of each line (RFC 5321 §4.5.2) and the `.`
/// line that ends it, as lettre writes them.
pub(super) fn dot_stuffed(email: &str) -> String {
    let mut out = String::with_capacity(email.len() + 16);
    if email.starts_with('.') {
        out.push('.');
    }
    let mut rest = email;
    while let Some(at) = rest.find("\r\n.") {
        let (line, next) = rest.split_at(at + 2);
        out.push_str(line);
        out.push('.');
        rest = next;
    }
    out.push_str(rest);
    out.push_str("\r\n.\r\n");
    out
}

/// Whether the server offers PIPELINING, from its reply to another `EHLO` (lettre keeps only
/// the extensions it uses).
pub(super) async fn offers_pipelining(conn: &mut AsyncSmtpConnection, hello: &ClientId) -> bool {
    match conn.command(Ehlo::new(hello.clone())).await {
        Ok(response) => response.message().any(|line| {
            line.split_whitespace()
                .next()
                .is_some_and(|keyword| keyword.eq_ignore_ascii_case("PIPELINING"))
        }),
        Err(_) => false,
    }
}
