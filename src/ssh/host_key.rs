//! The SSH server's host key: read from `ssh.host_key_file`, or made (Ed25519, mode 0600) on
//! first start, with its fingerprint logged so clients can check it.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result, bail};
use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{HashAlg, PrivateKey};

/// The host key in `path`, made there first when the file does not exist.
pub fn load_or_create(path: &Path) -> Result<PrivateKey> {
    let shown = path.display();
    if !path.exists() {
        let key = create(path)?;
        tracing::info!(
            path = %shown,
            fingerprint = %key.public_key().fingerprint(HashAlg::Sha256),
            "made the SSH host key (ssh.host_key_file)"
        );
        return Ok(key);
    }
    let mode = std::fs::metadata(path)
        .with_context(|| format!("cannot read the SSH host key {shown}"))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        bail!(
            "the SSH host key {shown} is readable by others (mode {:o}): run `chmod 600 {shown}`",
            mode & 0o777
        );
    }
    let key = russh::keys::load_secret_key(path, None).with_context(|| {
        format!(
            "cannot read the SSH host key {shown}: it must be an unencrypted OpenSSH private key; move it away to have a new one made"
        )
    })?;
    tracing::info!(
        path = %shown,
        fingerprint = %key.public_key().fingerprint(HashAlg::Sha256),
        "SSH host key"
    );
    Ok(key)
}

fn create(path: &Path) -> Result<PrivateKey> {
    let shown = path.display();
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)
        .map_err(|e| anyhow::anyhow!("cannot make an SSH host key: no randomness ({e})"))?;
    let key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    let text = key
        .to_openssh(LineEnding::LF)
        .context("cannot write the SSH host key in OpenSSH form")?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| {
            format!("cannot create the SSH host key {shown}: check that its directory exists and is writable, or set ssh.host_key_file")
        })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write the SSH host key {shown}"))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_key_is_made_once_with_mode_0600_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host_key");
        let made = load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = load_or_create(&path).unwrap();
        assert_eq!(
            made.public_key(),
            again.public_key(),
            "the same key on the next start"
        );

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let open = load_or_create(&path).unwrap_err().to_string();
        assert!(open.contains("chmod 600"), "{open}");
        let missing_dir = dir.path().join("nope/host_key");
        let err = format!("{:#}", load_or_create(&missing_dir).unwrap_err());
        assert!(err.contains("ssh.host_key_file"), "{err}");
    }
}
