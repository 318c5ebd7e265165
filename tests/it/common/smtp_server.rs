//! A real SMTP server for tests of the `smtp` channel: Python's aiosmtpd, which this project
//! did not write, started per test on a free loopback port.
//!
//! ```ignore
//! let starttls = ServerTls::StartTls { required: false };
//! let server = SmtpServer::start(SmtpServerOptions::new().tls(starttls).auth("alice", "pw"));
//! // point [email] smarthost at server.address() …
//! let mail = server.received();
//! assert_eq!(mail[0].mime.content_type, "multipart/alternative");
//! ```
//!
//! Each server runs `python3` with a small aiosmtpd script (below) in its own temp dir: plain,
//! STARTTLS (optionally required) or implicit TLS with a certificate from a test CA made with
//! the `openssl` CLI (or a self-signed one for another host name); AUTH PLAIN and LOGIN against one username and password, optionally only
//! one mechanism, or no AUTH offered at all; a forced reply to every `RCPT` or `DATA`. Each
//! accepted message is written to the temp dir — the envelope, the raw data, the session it
//! came on, and how Python's own `email` package parses it — and read back by
//! [`SmtpServer::received`]. Every connection is logged, for [`SmtpServer::connections`].
//!
//! aiosmtpd is used from the system `python3` when it imports there; otherwise it is installed
//! once into `<target>/tmp/pydeps` with pip. When neither works the test panics with the
//! command to run: a test that needs this server never skips. The server exits when dropped,
//! and on its own when the test process dies (it watches its stdin).
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// How long the server may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(30);

const INSTALL_HINT: &str = "install it with `python3 -m pip install aiosmtpd` (or `apt-get \
    install python3-aiosmtpd` on Debian), or make `python3 -m pip` work so the tests can install \
    it themselves into target/tmp/pydeps";

/// How the server secures connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerTls {
    /// No TLS at all.
    Plain,
    /// Offers STARTTLS; with `required`, refuses mail until the client has used it.
    StartTls { required: bool },
    /// TLS from the first byte.
    Implicit,
}

/// What a test server does; build with [`SmtpServerOptions::new`] and the methods, or struct
/// update syntax for the other fields, then [`SmtpServer::start`].
#[derive(Debug, Clone)]
pub struct SmtpServerOptions {
    pub tls: ServerTls,
    /// The one username and password AUTH accepts; `None` rejects every AUTH.
    pub credentials: Option<(String, String)>,
    /// The AUTH mechanisms offered (aiosmtpd has PLAIN and LOGIN).
    pub mechanisms: Vec<&'static str>,
    /// Offer AUTH only over TLS (aiosmtpd's `auth_require_tls`): on a plain server, never.
    pub auth_only_over_tls: bool,
    /// Refuse mail from clients that have not authenticated.
    pub auth_required: bool,
    /// Ask for a client certificate signed by the test CA (not required).
    pub request_client_cert: bool,
    /// Present the self-signed certificate for [`SELF_SIGNED_NAME`] instead of the test CA's
    /// for `localhost` and `127.0.0.1`.
    pub self_signed_cert: bool,
    /// Answer every `RCPT` with this, e.g. `550 5.1.1 mailbox unavailable`.
    pub rcpt_reply: Option<String>,
    /// Answer every `DATA` (after the message) with this, e.g. `451 4.3.0 try again later`.
    pub data_reply: Option<String>,
    /// Close a connection idle this long (aiosmtpd's `timeout`; 300 s by default).
    pub idle_timeout: Duration,
}

impl Default for SmtpServerOptions {
    fn default() -> Self {
        SmtpServerOptions {
            tls: ServerTls::Plain,
            credentials: None,
            mechanisms: vec!["PLAIN", "LOGIN"],
            auth_only_over_tls: false,
            auth_required: false,
            request_client_cert: false,
            self_signed_cert: false,
            rcpt_reply: None,
            data_reply: None,
            idle_timeout: Duration::from_secs(300),
        }
    }
}

impl SmtpServerOptions {
    /// A plain server that accepts every message, offers AUTH and accepts no credentials.
    pub fn new() -> Self {
        Self::default()
    }

    /// Secure connections as `tls` says.
    pub fn tls(mut self, tls: ServerTls) -> Self {
        self.tls = tls;
        self
    }

    /// Accept AUTH with this username and password, and require it for mail.
    pub fn auth(mut self, username: &str, password: &str) -> Self {
        self.credentials = Some((username.to_string(), password.to_string()));
        self.auth_required = true;
        self
    }

    /// Offer only this AUTH mechanism (`PLAIN` or `LOGIN`).
    pub fn only_mechanism(mut self, mechanism: &'static str) -> Self {
        self.mechanisms = vec![mechanism];
        self
    }
}

/// One message the server accepted: the server's record of it (a `.json` file), and the
/// message itself (the `.eml` beside it).
#[derive(Debug, Clone, Deserialize)]
pub struct ReceivedMail {
    /// The envelope sender (`MAIL FROM`).
    #[serde(rename = "mail_from")]
    pub from: String,
    /// The envelope recipients (`RCPT TO`), in order.
    #[serde(rename = "rcpt_tos")]
    pub to: Vec<String>,
    /// The message as received, headers and body.
    #[serde(skip)]
    pub data: Vec<u8>,
    /// The connection it came on (1 for the server's first).
    pub session: u64,
    /// Whether that connection was encrypted.
    pub tls: bool,
    /// How the client authenticated on it, if it did.
    pub auth: Option<AuthRecord>,
    /// The common name of the client certificate, if one was presented.
    pub client_cert_cn: Option<String>,
    /// The message as Python's `email` package parses it.
    pub mime: ParsedMime,
}

impl ReceivedMail {
    /// The raw message as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

/// A successful AUTH.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AuthRecord {
    /// `PLAIN` or `LOGIN`.
    pub mechanism: String,
    pub login: String,
    /// PLAIN's authorization identity, when one was sent.
    pub authzid: Option<String>,
}

/// A message parsed by Python's `email` package (`policy.default`): headers decoded.
#[derive(Debug, Clone, Deserialize)]
pub struct ParsedMime {
    /// `multipart/alternative`, `text/plain`, …
    pub content_type: String,
    pub subject: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub message_id: Option<String>,
    /// The `Date` header as ISO 8601, when it parses.
    pub date: Option<String>,
    /// The parts of a multipart message, decoded.
    pub parts: Vec<MimePart>,
    /// Defects the parser found, by class name; empty for a well-formed message.
    pub defects: Vec<String>,
}

/// One part of a multipart message.
#[derive(Debug, Clone, Deserialize)]
pub struct MimePart {
    pub content_type: String,
    pub charset: Option<String>,
    /// The decoded text of a `text/*` part.
    pub content: Option<String>,
}

/// A running aiosmtpd; dropping it stops it.
pub struct SmtpServer {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
    /// Held open: the server exits at end-of-file, i.e. when this process is gone.
    _stdin: ChildStdin,
}

impl SmtpServer {
    /// Starts a server as `options` say and waits until it listens. Panics, with the server's
    /// stderr or how to install aiosmtpd, when it cannot.
    pub fn start(options: SmtpServerOptions) -> SmtpServer {
        let python_path = python_path();
        let dir = tempfile::Builder::new()
            .prefix("herald-smtp-")
            .tempdir()
            .unwrap_or_else(|e| panic!("creating a temp dir for the SMTP server: {e}"));
        let mail_dir = dir.path().join("mail");
        fs::create_dir(&mail_dir).unwrap_or_else(|e| panic!("creating {mail_dir:?}: {e}"));
        let tls = match options.tls {
            ServerTls::Plain => None,
            ServerTls::StartTls { .. } | ServerTls::Implicit => Some(test_certs()),
        };
        let config = serde_json::json!({
            "mail_dir": mail_dir,
            "connections_log": dir.path().join("connections.log"),
            "starttls": matches!(options.tls, ServerTls::StartTls { .. }),
            "require_starttls": options.tls == ServerTls::StartTls { required: true },
            "implicit_tls": options.tls == ServerTls::Implicit,
            "cert": tls.map(|c| if options.self_signed_cert { &c.self_signed_cert } else { &c.server_cert }),
            "key": tls.map(|c| if options.self_signed_cert { &c.self_signed_key } else { &c.server_key }),
            "client_ca": (options.request_client_cert).then(|| &test_certs().ca),
            "credentials": options.credentials,
            "mechanisms": options.mechanisms,
            "auth_only_over_tls": options.auth_only_over_tls,
            "auth_required": options.auth_required,
            "rcpt_reply": options.rcpt_reply,
            "data_reply": options.data_reply,
            "idle_timeout": options.idle_timeout.as_secs_f64(),
        });
        let config_path = dir.path().join("config.json");
        let script_path = dir.path().join("server.py");
        fs::write(&config_path, config.to_string())
            .and_then(|()| fs::write(&script_path, SERVER_SCRIPT))
            .unwrap_or_else(|e| panic!("writing the SMTP server's files: {e}"));
        let stdout_path = dir.path().join("stdout");
        let stderr_path = dir.path().join("stderr");
        let stdout = fs::File::create(&stdout_path)
            .unwrap_or_else(|e| panic!("creating {stdout_path:?}: {e}"));
        let stderr = fs::File::create(&stderr_path)
            .unwrap_or_else(|e| panic!("creating {stderr_path:?}: {e}"));

        let mut command = Command::new("python3");
        command
            .arg("-u")
            .arg(&script_path)
            .arg(&config_path)
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .stdout(stdout)
            .stderr(stderr);
        if let Some(path) = python_path {
            command.env("PYTHONPATH", path);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting python3 for the SMTP server: {e}"));
        let stdin = child.stdin.take().expect("piped stdin");

        let started = Instant::now();
        let port = loop {
            let out = fs::read_to_string(&stdout_path).unwrap_or_default();
            if let Some(port) = out
                .lines()
                .find_map(|line| line.strip_prefix("READY "))
                .and_then(|port| port.trim().parse::<u16>().ok())
            {
                break port;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "the aiosmtpd test server exited ({status}) before listening:\n{}",
                    fs::read_to_string(&stderr_path).unwrap_or_default()
                );
            }
            if started.elapsed() > START_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the aiosmtpd test server did not listen within {START_TIMEOUT:?}:\n{}",
                    fs::read_to_string(&stderr_path).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        SmtpServer {
            port,
            dir,
            child,
            _stdin: stdin,
        }
    }

    /// `127.0.0.1:PORT`, for `email.smarthost`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The messages accepted so far, in arrival order. Each is on disk before the server
    /// answers `250` to its `DATA`.
    pub fn received(&self) -> Vec<ReceivedMail> {
        let mail_dir = self.dir.path().join("mail");
        let mut metas: Vec<PathBuf> = fs::read_dir(&mail_dir)
            .unwrap_or_else(|e| panic!("reading {mail_dir:?}: {e}"))
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .collect();
        metas.sort();
        metas
            .into_iter()
            .map(|path| {
                let mut mail: ReceivedMail = serde_json::from_slice(
                    &fs::read(&path).unwrap_or_else(|e| panic!("reading {path:?}: {e}")),
                )
                .unwrap_or_else(|e| panic!("parsing {path:?}: {e}"));
                let eml = path.with_extension("eml");
                mail.data = fs::read(&eml).unwrap_or_else(|e| panic!("reading {eml:?}: {e}"));
                mail
            })
            .collect()
    }

    /// Connections accepted so far (TCP, and for implicit TLS, completed handshakes).
    pub fn connections(&self) -> usize {
        fs::read_to_string(self.dir.path().join("connections.log"))
            .map(|log| log.lines().count())
            .unwrap_or(0)
    }

    /// What the server printed on stderr so far (aiosmtpd's log), for failure messages.
    pub fn stderr(&self) -> String {
        fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Certificates for TLS tests, made by the `openssl` CLI into `<target>/tmp/smtp-test-certs`
/// and reused while younger than [`CERTS_MAX_AGE`]: a CA, a server certificate for
/// `localhost` and `127.0.0.1`, and a client certificate (`CN=herald-test-client`), all signed
/// by the CA; and a self-signed server certificate for [`SELF_SIGNED_NAME`] alone.
pub struct TestCerts {
    /// The CA certificate (PEM), for `email.tls.ca_file`.
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// For `email.tls.cert_file` / `cert_key_file`.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// Self-signed, for [`SELF_SIGNED_NAME`] only (not `localhost`, not `127.0.0.1`).
    pub self_signed_cert: PathBuf,
    pub self_signed_key: PathBuf,
}

/// The only name in the self-signed test certificate.
pub const SELF_SIGNED_NAME: &str = "mail.example.com";

/// Test certificates older than this are made again (they are valid for 30 days).
const CERTS_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 60 * 60);

impl TestCerts {
    fn in_dir(dir: &Path) -> TestCerts {
        TestCerts {
            ca: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
            self_signed_cert: dir.join("self-signed.pem"),
            self_signed_key: dir.join("self-signed.key"),
        }
    }

    /// Whether every file is there and the set is fresh enough.
    fn usable(&self) -> bool {
        let files = [
            &self.ca,
            &self.server_cert,
            &self.server_key,
            &self.client_cert,
            &self.client_key,
            &self.self_signed_cert,
            &self.self_signed_key,
        ];
        files.iter().all(|f| f.is_file())
            && fs::metadata(&self.ca)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|modified| modified.elapsed().ok())
                .is_some_and(|age| age < CERTS_MAX_AGE)
    }
}

/// The test certificates; panics when `openssl` is missing or fails.
pub fn test_certs() -> &'static TestCerts {
    static CERTS: OnceLock<TestCerts> = OnceLock::new();
    CERTS.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("smtp-test-certs");
        let certs = TestCerts::in_dir(&dir);
        if certs.usable() {
            return certs;
        }
        // Made aside, then moved in whole: parallel test processes never see half a set.
        let staging = dir.with_file_name(format!("smtp-test-certs.{}", std::process::id()));
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir_all(&staging)
            .unwrap_or_else(|e| panic!("creating {}: {e}", staging.display()));
        make_certs(&staging);
        let _ = fs::remove_dir_all(&dir);
        if fs::rename(&staging, &dir).is_err() || !certs.usable() {
            let _ = fs::remove_dir_all(&staging);
            assert!(
                certs.usable(),
                "test certificates in {} are incomplete",
                dir.display()
            );
        }
        certs
    })
}

fn make_certs(dir: &Path) {
    let path = |name: &str| dir.join(name);
    let openssl = |args: &[&str]| {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| {
                panic!("running openssl (needed for the TLS test certificates): {e}")
            });
        assert!(
            output.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let key = |name: &str| {
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            name,
        ])
    };
    key("ca.key");
    openssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        "ca.key",
        "-sha256",
        "-days",
        "30",
        "-subj",
        "/CN=Herald Test CA",
        "-out",
        "ca.pem",
    ]);
    let leaf = |name: &str, subject: &str, extensions: &str| {
        key(&format!("{name}.key"));
        fs::write(path(&format!("{name}.ext")), extensions)
            .unwrap_or_else(|e| panic!("writing {name}.ext: {e}"));
        openssl(&[
            "req",
            "-new",
            "-key",
            &format!("{name}.key"),
            "-subj",
            subject,
            "-out",
            &format!("{name}.csr"),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-sha256",
            "-days",
            "30",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.pem"),
        ]);
    };
    leaf(
        "server",
        "/CN=localhost",
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    );
    leaf(
        "client",
        "/CN=herald-test-client",
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
    );
    key("self-signed.key");
    let subject = format!("/CN={SELF_SIGNED_NAME}");
    let san = format!("subjectAltName=DNS:{SELF_SIGNED_NAME}");
    openssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        "self-signed.key",
        "-sha256",
        "-days",
        "30",
        "-subj",
        &subject,
        "-addext",
        &san,
        "-addext",
        "basicConstraints=critical,CA:FALSE",
        "-addext",
        "extendedKeyUsage=serverAuth",
        "-out",
        "self-signed.pem",
    ]);
}

/// `None` when the system `python3` imports aiosmtpd, else the directory pip installed it
/// into (for `PYTHONPATH`). Installs at most once per test process; panics with how to install
/// it when that fails.
fn python_path() -> Option<&'static Path> {
    static PATH: OnceLock<Result<Option<PathBuf>, String>> = OnceLock::new();
    match PATH.get_or_init(find_or_install_aiosmtpd) {
        Ok(path) => path.as_deref(),
        Err(e) => panic!("the SMTP tests need Python's aiosmtpd: {e}; {INSTALL_HINT}"),
    }
}

fn find_or_install_aiosmtpd() -> Result<Option<PathBuf>, String> {
    if imports_aiosmtpd(None)? {
        return Ok(None);
    }
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("pydeps");
    if imports_aiosmtpd(Some(&target))? {
        return Ok(Some(target));
    }
    // Into a fresh directory first, so a concurrent or interrupted install never leaves a
    // half-filled `pydeps` behind.
    let staging = target.with_file_name(format!("pydeps.{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    let output = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .arg("--target")
        .arg(&staging)
        .arg("aiosmtpd")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running `python3 -m pip`: {e}"))?;
    if !output.status.success() {
        let _ = fs::remove_dir_all(&staging);
        return Err(format!(
            "`python3 -c 'import aiosmtpd'` fails and `python3 -m pip install --target {} \
             aiosmtpd` failed ({}): {}",
            target.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    if fs::rename(&staging, &target).is_err() {
        // Another process installed it meanwhile.
        let _ = fs::remove_dir_all(&staging);
    }
    if imports_aiosmtpd(Some(&target))? {
        Ok(Some(target))
    } else {
        Err(format!(
            "pip installed aiosmtpd into {} but python3 still cannot import it",
            target.display()
        ))
    }
}

fn imports_aiosmtpd(python_path: Option<&Path>) -> Result<bool, String> {
    let mut command = Command::new("python3");
    command
        .args(["-c", "import aiosmtpd"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(path) = python_path {
        command.env("PYTHONPATH", path);
    }
    command
        .status()
        .map(|status| status.success())
        .map_err(|e| format!("running python3 (is Python 3 installed?): {e}"))
}

/// The server: aiosmtpd with a handler that stores each message, and a subclass that logs
/// connections and PLAIN's authorization identity. Configured by the JSON file in argv[1].
const SERVER_SCRIPT: &str = r#"
import asyncio, base64, binascii, email, email.policy, itertools, json, os, ssl, sys, threading

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

with open(sys.argv[1]) as f:
    cfg = json.load(f)

sessions = itertools.count(1)
messages = itertools.count(1)


def exit_when_parent_exits():
    sys.stdin.buffer.read()
    os._exit(0)


threading.Thread(target=exit_when_parent_exits, daemon=True).start()


def tls_context():
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cfg["cert"], cfg["key"])
    if cfg["client_ca"]:
        ctx.load_verify_locations(cfg["client_ca"])
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def write_atomically(path, data):
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)


def client_cert_cn(transport):
    cert = transport.get_extra_info("peercert") if transport else None
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return None


def parse_mime(data):
    msg = email.message_from_bytes(data, policy=email.policy.default)
    defects = [type(d).__name__ for d in msg.defects]

    def header(name):
        value = msg[name]
        return None if value is None else str(value)

    try:
        date = msg["Date"].datetime.isoformat() if msg["Date"] is not None else None
    except Exception:
        date = None
    parts = []
    if msg.is_multipart():
        for part in msg.iter_parts():
            defects += [type(d).__name__ for d in part.defects]
            text = part.get_content_maintype() == "text"
            parts.append({
                "content_type": part.get_content_type(),
                "charset": part.get_content_charset(),
                "content": part.get_content() if text else None,
            })
    return {
        "content_type": msg.get_content_type(),
        "subject": header("Subject"),
        "from": header("From"),
        "to": header("To"),
        "message_id": header("Message-ID"),
        "date": date,
        "parts": parts,
        "defects": defects,
    }


class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if cfg["rcpt_reply"]:
            return cfg["rcpt_reply"]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        if cfg["data_reply"]:
            return cfg["data_reply"]
        n = next(messages)
        data = envelope.original_content or envelope.content
        base = os.path.join(cfg["mail_dir"], "%06d" % n)
        write_atomically(base + ".eml", data)
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "session": server.herald_session,
            "tls": server.transport.get_extra_info("sslcontext") is not None,
            "auth": server.herald_auth,
            "client_cert_cn": client_cert_cn(server.transport),
            "mime": parse_mime(data),
        }
        write_atomically(base + ".json", json.dumps(meta).encode())
        return "250 2.0.0 OK: queued as %d" % n


def authenticator(server, session, envelope, mechanism, auth_data):
    expected = cfg["credentials"]
    ok = (
        expected is not None
        and isinstance(auth_data, LoginPassword)
        and auth_data.login == expected[0].encode()
        and auth_data.password == expected[1].encode()
    )
    if ok:
        server.herald_auth = {
            "mechanism": mechanism,
            "login": auth_data.login.decode(),
            "authzid": server.herald_authzid,
        }
    # Not handled: on failure aiosmtpd answers 535 itself (handled=True would answer nothing).
    return AuthResult(success=ok, handled=False)


class Server(SMTP):
    herald_session = None
    herald_auth = None
    herald_authzid = None

    def connection_made(self, transport):
        # Called again on the same object after STARTTLS: count connections, not handshakes.
        if self.herald_session is None:
            self.herald_session = next(sessions)
            with open(cfg["connections_log"], "a") as log:
                log.write("%d\n" % self.herald_session)
        super().connection_made(transport)

    async def auth_PLAIN(self, _, args):
        if len(args) > 1:
            try:
                authzid = base64.b64decode(args[1], validate=True).split(b"\0")[0]
                self.herald_authzid = authzid.decode() or None
            except (binascii.Error, UnicodeDecodeError):
                pass
        return await super().auth_PLAIN(_, args)


async def main():
    loop = asyncio.get_running_loop()
    excluded = [m for m in ("PLAIN", "LOGIN") if m not in cfg["mechanisms"]]

    def factory():
        return Server(
            Handler(),
            hostname="herald-test-smtp",
            tls_context=tls_context() if cfg["starttls"] else None,
            require_starttls=cfg["require_starttls"],
            authenticator=authenticator,
            auth_required=cfg["auth_required"],
            auth_require_tls=cfg["auth_only_over_tls"],
            auth_exclude_mechanism=excluded,
            timeout=cfg["idle_timeout"],
            loop=loop,
        )

    server = await loop.create_server(
        factory,
        host="127.0.0.1",
        port=0,
        ssl=tls_context() if cfg["implicit_tls"] else None,
    )
    print("READY %d" % server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
"#;
