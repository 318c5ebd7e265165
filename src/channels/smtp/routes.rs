//! From `[email]` and `smtp` targets to relay specs: addresses, credentials (password files
//! read at start), TLS mode and certificates, one relay per distinct server.

use super::*;

pub(super) fn setup(reason: String) -> ChannelError {
    ChannelError::Setup {
        method: Method::Smtp,
        reason,
    }
}

/// `[email.auth]` as credentials: the password from `password` or, read now, `password_file`.
pub(super) fn email_login(auth: &SmtpAuthSettings) -> Result<Option<Login>, ChannelError> {
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
pub(super) fn read_password_file(path: &Path) -> Result<Secret, ChannelError> {
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
pub(super) fn target_route(
    name: &str,
    target: &SmtpTarget,
    smarthost: Option<&(String, u16)>,
    email_from: Option<&Mailbox>,
    email_login: &Option<Login>,
    email_tls: &SmtpTlsSettings,
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

pub(super) fn parse_mailbox(text: &str, what: &str) -> Result<Mailbox, ChannelError> {
    text.trim()
        .parse()
        .map_err(|e| setup(format!("{what} `{text}` is not an email address: {e}")))
}

/// `host:port` (the host may be a bracketed IPv6 literal) as `(host, port)`.
pub(super) fn split_host_port(text: &str) -> Option<(String, u16)> {
    let (host, port) = text.trim().rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = port.parse().ok().filter(|p| *p > 0)?;
    (!host.is_empty()).then(|| (host.to_string(), port))
}

/// `email.hello` when it is a dotted domain name, else the sender's domain, else `localhost`.
pub(super) fn message_id_domain(hello: &str, from: Option<&Mailbox>) -> String {
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
pub(super) fn client_id(hello: &str) -> ClientId {
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
pub(super) enum TlsMode {
    /// Plain text throughout.
    None,
    /// Plain, then `STARTTLS`, which the server must offer.
    StartTls,
    /// TLS from the first byte.
    Implicit,
}

/// The TLS mode for `port` and the settings, and whether `starttls` is being ignored (implicit
/// TLS wins, as in Coder).
pub(super) fn tls_mode(force_tls: bool, starttls: bool, port: u16) -> (TlsMode, bool) {
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
pub(super) struct Login {
    pub(super) username: String,
    pub(super) password: Secret,
    /// PLAIN's authorization identity.
    pub(super) identity: Option<String>,
}

/// Everything that makes two routes need different connections; routes with equal specs
/// share one [`Relay`].
#[derive(Clone, PartialEq)]
pub(super) struct RelaySpec {
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) mode: TlsMode,
    pub(super) starttls_ignored: bool,
    /// The name the certificate is verified against.
    pub(super) server_name: String,
    pub(super) skip_verify: bool,
    pub(super) ca_file: Option<PathBuf>,
    pub(super) client_cert: Option<(PathBuf, PathBuf)>,
    pub(super) hello: String,
    pub(super) login: Option<Login>,
}

impl RelaySpec {
    pub(super) fn new(
        host: &str,
        port: u16,
        tls: &SmtpTlsSettings,
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
            client_cert: tls.client_cert(),
            hello: hello.to_string(),
            login,
        }
    }

    pub(super) fn address(&self) -> String {
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
    pub(super) fn tls_parameters(&self) -> Result<TlsParameters, ChannelError> {
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
pub(super) fn read_pem(path: &Path, key: &str, label: &str) -> Result<Vec<u8>, ChannelError> {
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
pub(super) struct Relays {
    pub(super) built: Vec<Arc<Relay>>,
}

impl Relays {
    pub(super) fn get_or_build(
        &mut self,
        spec: RelaySpec,
        auth_settings: &str,
    ) -> Result<Arc<Relay>, ChannelError> {
        if let Some(relay) = self.built.iter().find(|relay| relay.spec == spec) {
            return Ok(Arc::clone(relay));
        }
        let relay = Arc::new(Relay::new(spec, auth_settings)?);
        self.built.push(Arc::clone(&relay));
        Ok(relay)
    }

    pub(super) fn into_relays(self) -> Vec<Arc<Relay>> {
        self.built
    }
}
