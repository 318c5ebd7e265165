//! SSH public keys (DESIGN §13): added, listed and removed by their users (owners and
//! user-admins for others), and how the SSH server learns who is connecting from the key the
//! client proved it holds.

use russh::keys::{Algorithm, HashAlg, PublicKey};

use super::*;
use crate::store::NewSshKey;

pub use crate::store::SshKeyInfo;

/// The longest key line accepted: an ECDSA P-521 key is under 300 characters, so anything
/// this long is something else pasted by mistake.
const MAX_KEY_LINE: usize = 8 * 1024;

const UNKNOWN_KEY: &str = "this SSH key is not added to any Herald user: an owner or user-admin \
     can add it with `herald users keys add USER --key 'ssh-ed25519 AAAA… comment'`";

/// A public key as `herald users keys add` was given it, parsed and fingerprinted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedSshKey {
    /// OpenSSH one-line form without the comment.
    pub public_key: String,
    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    pub comment: String,
}

/// OpenSSH's `SHA256:…` fingerprint of `key`.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Parses one OpenSSH public key line (`ssh-ed25519 AAAA… comment`, as in `~/.ssh/id_*.pub`).
/// Ed25519 and ECDSA keys are accepted, which is what the SSH server verifies; anything else
/// is refused with what to do instead.
pub fn parse_public_key(line: &str) -> ServiceResult<ParsedSshKey> {
    let line = line.trim();
    if line.is_empty() {
        return Err(ServiceError::Invalid(
            "the SSH key is empty: pass the public key's line, e.g. --key \"$(cat ~/.ssh/id_ed25519.pub)\"".into(),
        ));
    }
    if line.len() > MAX_KEY_LINE || line.contains('\n') {
        return Err(ServiceError::Invalid(
            "the SSH key must be one public key line (`ssh-ed25519 AAAA… comment`), e.g. --key \"$(cat ~/.ssh/id_ed25519.pub)\"".into(),
        ));
    }
    if line.starts_with("-----BEGIN") {
        return Err(ServiceError::Invalid(
            "that is a private key: never share it; pass the public key instead, the `.pub` file beside it (e.g. ~/.ssh/id_ed25519.pub)".into(),
        ));
    }
    let key = PublicKey::from_openssh(line).map_err(|e| {
        ServiceError::Invalid(format!(
            "`{}` is not an OpenSSH public key ({e}): pass the one line of a `.pub` file, `TYPE BASE64 [COMMENT]`, e.g. --key \"$(cat ~/.ssh/id_ed25519.pub)\"",
            excerpt(line)
        ))
    })?;
    match key.algorithm() {
        Algorithm::Ed25519 | Algorithm::Ecdsa { .. } => {}
        other => {
            return Err(ServiceError::Invalid(format!(
                "{} keys are not accepted by Herald's SSH server, only ssh-ed25519 and ecdsa-sha2-nistp256/384/521: make one with `ssh-keygen -t ed25519`",
                other.as_str()
            )));
        }
    }
    let comment = key.comment().as_str_lossy().to_string();
    let bare = PublicKey::new(key.key_data().clone(), "");
    let public_key = bare.to_openssh().map_err(|e| {
        ServiceError::Invalid(format!(
            "cannot write the SSH key back in OpenSSH form ({e}); check the key line"
        ))
    })?;
    Ok(ParsedSshKey {
        public_key: public_key.trim().to_string(),
        fingerprint: fingerprint(&key),
        comment,
    })
}

/// The start of a long pasted line, enough to recognise it in an error.
fn excerpt(line: &str) -> String {
    const SHOWN: usize = 40;
    match line.char_indices().nth(SHOWN) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line.to_string(),
    }
}

/// `SHA256:…` as given, or with the prefix added when only the base64 part was pasted.
fn normalize_fingerprint(fingerprint: &str) -> String {
    let fingerprint = fingerprint.trim();
    if fingerprint.starts_with("SHA256:") {
        fingerprint.to_string()
    } else {
        format!("SHA256:{fingerprint}")
    }
}

impl Service {
    /// Adds the public key `key_line` to `username` (the caller's own, or as owners and
    /// user-admins someone else's; an owner's only by owners). A key names one user: a key
    /// already added to anyone is a [`ServiceError::Conflict`].
    pub async fn add_ssh_key(
        &self,
        caller: &User,
        username: &str,
        key_line: &str,
    ) -> ServiceResult<SshKeyInfo> {
        let parsed = parse_public_key(key_line)?;
        let subject = self
            .credential_subject(
                "SSH keys",
                caller,
                Some(username),
                "adding SSH keys for another user",
            )
            .await?;
        if !subject.is_active() {
            let who = &subject.username;
            return Err(ServiceError::Invalid(format!(
                "`{who}` is suspended, so a login with their key would be refused; an owner or user-admin can run `herald users activate {who}` first"
            )));
        }
        let key = NewSshKey {
            id: Uuid::now_v7(),
            user_id: subject.id,
            public_key: parsed.public_key,
            fingerprint: parsed.fingerprint,
            comment: parsed.comment,
        };
        let audit = self.audit_entry(
            &caller.username,
            actions::KEY_ADD,
            &key.fingerprint,
            serde_json::json!({"user": subject.username, "comment": key.comment}),
        );
        let stored = self.store.insert_ssh_key(&key, Some(&audit)).await;
        let info = stored.map_err(|e| match e {
            StoreError::Conflict(_) => ServiceError::Conflict(format!(
                "the SSH key {} is already added to a Herald user (a key names one user): `herald users keys list` shows whose, and `herald users keys remove {}` frees it",
                key.fingerprint, key.fingerprint
            )),
            other => other.into(),
        })?;
        tracing::info!(
            user = %caller.username,
            owner = %subject.username,
            fingerprint = %info.fingerprint,
            "SSH key added"
        );
        Ok(info)
    }

    /// Keys: every user's for owners and user-admins (or `user`'s), the caller's own for
    /// everyone else (naming someone else is refused).
    pub async fn list_ssh_keys(
        &self,
        caller: &User,
        user: Option<&str>,
    ) -> ServiceResult<Vec<SshKeyInfo>> {
        let whose = match user {
            Some(_) => Some(
                self.credential_subject(
                    "SSH keys",
                    caller,
                    user,
                    "listing another user's SSH keys",
                )
                .await?
                .id,
            ),
            None if require(caller, USER_MANAGERS, "listing every SSH key").is_ok() => None,
            None => Some(caller.id),
        };
        Ok(self.store.list_ssh_keys(whose).await?)
    }

    /// Removes the key with `fingerprint` (`SHA256:…`): the caller's own, or as for
    /// [`Service::add_ssh_key`] someone else's. Logins with it are refused from then on.
    pub async fn remove_ssh_key(
        &self,
        caller: &User,
        fingerprint: &str,
    ) -> ServiceResult<SshKeyInfo> {
        let fingerprint = normalize_fingerprint(fingerprint);
        let not_found = || {
            ServiceError::NotFound(format!(
                "no SSH key has the fingerprint {fingerprint}; `herald users keys list` shows the keys you may remove"
            ))
        };
        let key = self
            .store
            .ssh_key_by_fingerprint(&fingerprint)
            .await?
            .ok_or_else(not_found)?;
        if key.user_id != caller.id {
            // Someone else's key is "not found" to those who may not manage it, so the
            // command does not tell members whose keys exist.
            if require(caller, USER_MANAGERS, "removing another user's SSH keys").is_err() {
                return Err(not_found());
            }
            self.credential_subject(
                "SSH keys",
                caller,
                Some(&key.username),
                "removing another user's SSH keys",
            )
            .await?;
        }
        let audit = self.audit_entry(
            &caller.username,
            actions::KEY_REMOVE,
            &key.fingerprint,
            serde_json::json!({"user": key.username, "comment": key.comment}),
        );
        if !self.store.delete_ssh_key(key.id, Some(&audit)).await? {
            return Err(not_found());
        }
        tracing::info!(
            user = %caller.username,
            owner = %key.username,
            fingerprint = %key.fingerprint,
            "SSH key removed"
        );
        Ok(key)
    }

    /// The active user who owns the key with `fingerprint`, without recording a login: what
    /// the SSH server asks when a client offers a key, before it proves it holds it. An
    /// unknown key or a suspended user is [`ServiceError::Unauthenticated`].
    pub async fn ssh_key_user(&self, fingerprint: &str) -> ServiceResult<User> {
        Ok(self.ssh_key_owner(fingerprint).await?.1)
    }

    /// The active user who owns the key with `fingerprint`, once the client proved it holds
    /// it: the login is recorded in the key's `last_used_at`. Refusals as for
    /// [`Service::ssh_key_user`]; the store is read every time, so a removal or suspension
    /// holds from the next login.
    pub async fn authenticate_ssh_key(&self, fingerprint: &str) -> ServiceResult<User> {
        let (key_id, user) = self.ssh_key_owner(fingerprint).await?;
        self.store.touch_ssh_key(key_id).await?;
        Ok(user)
    }

    async fn ssh_key_owner(&self, fingerprint: &str) -> ServiceResult<(Uuid, User)> {
        match self.store.ssh_key_owner(fingerprint).await? {
            None => Err(ServiceError::Unauthenticated(UNKNOWN_KEY.into())),
            Some((_, user)) if !user.is_active() => Err(ServiceError::Unauthenticated(format!(
                "the SSH key's user `{0}` is suspended: an owner or user-admin can run `herald users activate {0}`",
                user.username
            ))),
            Some(found) => Ok(found),
        }
    }
}

#[cfg(test)]
mod tests;
