//! SSH key pairs made by the real OpenSSH `ssh-keygen`, with the fingerprint it prints, for
//! the tests of `herald users keys` and of the console over SSH.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A key pair in a test's directory: the private key file (what `ssh -i` takes), its public
/// key line and OpenSSH's `SHA256:…` fingerprint of it.
pub struct KeyPair {
    pub private_key: PathBuf,
    pub public_line: String,
    pub fingerprint: String,
}

/// `ssh-keygen -t KIND -N '' -C COMMENT -f DIR/NAME` (`kind`: ed25519, ecdsa, rsa), then
/// `ssh-keygen -l -E sha256` for its fingerprint. A missing `ssh-keygen` fails the test:
/// `.ci/run` installs openssh-client.
pub fn keygen(dir: &Path, name: &str, kind: &str, comment: &str) -> KeyPair {
    let private_key = dir.join(name);
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", "", "-C", comment, "-f"])
        .arg(&private_key)
        .output()
        .expect("ssh-keygen runs (install openssh-client)");
    assert!(made.status.success(), "ssh-keygen: {made:?}");
    let public = private_key.with_extension("pub");
    let public_line = std::fs::read_to_string(&public)
        .expect("the .pub file")
        .trim()
        .to_string();
    let listed = Command::new("ssh-keygen")
        .args(["-l", "-E", "sha256", "-f"])
        .arg(&public)
        .output()
        .expect("ssh-keygen -l");
    assert!(listed.status.success(), "ssh-keygen -l: {listed:?}");
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    let fingerprint = listed
        .split_whitespace()
        .find(|word| word.starts_with("SHA256:"))
        .unwrap_or_else(|| panic!("no fingerprint in {listed}"))
        .to_string();
    KeyPair {
        private_key,
        public_line,
        fingerprint,
    }
}
