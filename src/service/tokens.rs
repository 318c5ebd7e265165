//! API tokens (DESIGN §12): made, listed and revoked by their users (owners and user-admins
//! for others), and how the HTTP API learns who is calling from the token it was sent.

use sha2::{Digest, Sha256};

use super::*;
use crate::secret::Secret;
use crate::store::NewApiToken;

/// What every token starts with, so a leaked one is recognisable in a log or a repository.
pub const TOKEN_PREFIX: &str = "herald_";

/// The random part of a token: 32 bytes from the operating system, printed as 64 hex digits.
const TOKEN_BYTES: usize = 32;

const UNKNOWN_TOKEN: &str = "the API token is unknown or revoked: create one with \
     `herald tokens create NAME` and send it as `Authorization: Bearer TOKEN`";

const MALFORMED_TOKEN: &str = "the API token is malformed: a Herald token is `herald_` and 64 \
     hex digits, sent as `Authorization: Bearer TOKEN`; create one with `herald tokens create NAME`";

impl Service {
    /// Makes a token named `name` for the caller, or (owners and user-admins; an owner's only
    /// by owners) for `for_user`. Returns it with its secret, which is never stored or shown
    /// again: only its SHA-256 is kept.
    pub async fn create_token(
        &self,
        caller: &User,
        name: &str,
        for_user: Option<&str>,
    ) -> ServiceResult<(TokenInfo, Secret)> {
        validate_token_name(name)?;
        let subject = self
            .credential_subject(
                "API tokens",
                caller,
                for_user,
                "creating API tokens for another user",
            )
            .await?;
        if !subject.is_active() {
            let who = &subject.username;
            return Err(ServiceError::Invalid(format!(
                "`{who}` is suspended, so a token of theirs would be refused; an owner or user-admin can run `herald users activate {who}` first"
            )));
        }
        let secret = new_secret()?;
        let token = NewApiToken {
            id: Uuid::now_v7(),
            user_id: subject.id,
            name: name.to_string(),
            token_hash: token_hash(secret.expose()),
        };
        // The name and whose it is; never the secret or its hash.
        let audit = self.audit_entry(
            &caller.username,
            actions::TOKEN_CREATE,
            name,
            serde_json::json!({"user": subject.username}),
        );
        let info = self
            .store
            .insert_api_token(&token, Some(&audit))
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => ServiceError::Conflict(format!(
                    "{} already has a live API token named `{name}`: pick another name, or revoke that one first with `herald tokens revoke {name}{}`",
                    subject.username,
                    user_flag(caller, &subject)
                )),
                other => other.into(),
            })?;
        tracing::info!(
            user = %caller.username,
            owner = %subject.username,
            token = %name,
            "API token created"
        );
        Ok((info, secret))
    }

    /// Tokens, revoked ones included, never with their secret or hash: every user's for owners
    /// and user-admins, the caller's own for everyone else.
    pub async fn list_tokens(&self, caller: &User) -> ServiceResult<Vec<TokenInfo>> {
        let everyone = require(caller, USER_MANAGERS, "listing every API token").is_ok();
        let whose = (!everyone).then_some(caller.id);
        Ok(self.store.list_api_tokens(whose).await?)
    }

    /// Revokes the caller's live token `name`, or (as for [`Service::create_token`]) `user`'s.
    /// The API refuses it from the next request on, on every replica. Returns whose it was.
    pub async fn revoke_token(
        &self,
        caller: &User,
        name: &str,
        user: Option<&str>,
    ) -> ServiceResult<User> {
        let subject = self
            .credential_subject(
                "API tokens",
                caller,
                user,
                "revoking another user's API tokens",
            )
            .await?;
        let audit = self.audit_entry(
            &caller.username,
            actions::TOKEN_REVOKE,
            name,
            serde_json::json!({"user": subject.username}),
        );
        let revoked = self
            .store
            .revoke_api_token(subject.id, name, Some(&audit))
            .await?;
        if !revoked {
            return Err(ServiceError::Invalid(format!(
                "{} has no live API token named `{name}`; `herald tokens list` shows the tokens and which are revoked",
                subject.username
            )));
        }
        tracing::info!(
            user = %caller.username,
            owner = %subject.username,
            token = %name,
            "API token revoked"
        );
        Ok(subject)
    }

    /// The user a request's bearer token acts as. There is no caller yet: this is how the API
    /// finds one. A malformed, unknown or revoked token, or one whose user is suspended, is
    /// [`ServiceError::Unauthenticated`]. The store is read every time, so a revoke or a
    /// suspension made on any replica holds from the next request on.
    pub async fn authenticate_token(&self, secret: &str) -> ServiceResult<User> {
        let mut users = self.authenticate_tokens(&[secret]).await;
        users.pop().expect("one answer per token")
    }

    /// [`Service::authenticate_token`] for many requests' tokens with one store read, one
    /// answer per token in order; each refusal is its token's own, and a failed read is every
    /// token's error.
    pub async fn authenticate_tokens(&self, secrets: &[&str]) -> Vec<ServiceResult<User>> {
        let hashes: Vec<Option<String>> = secrets
            .iter()
            .map(|secret| {
                let secret = secret.trim();
                well_formed(secret).then(|| token_hash(secret))
            })
            .collect();
        let asked: Vec<String> = hashes.iter().flatten().cloned().collect();
        let mut found = match self.store.find_live_api_tokens(&asked).await {
            Ok(found) => found.into_iter().map(Ok).collect(),
            Err(e) if asked.len() == 1 => vec![Err(e)],
            // The shared read failed: each token is read on its own, so each gets its own error.
            Err(_) => {
                let mut found = Vec::with_capacity(asked.len());
                for hash in asked {
                    let one = self.store.find_live_api_tokens(&[hash]).await;
                    found.push(one.map(|mut one| one.pop().flatten()));
                }
                found
            }
        }
        .into_iter();
        hashes
            .iter()
            .map(|hash| match hash {
                None => Err(ServiceError::Unauthenticated(MALFORMED_TOKEN.into())),
                Some(_) => match found.next().expect("one answer per hash")? {
                    None => Err(ServiceError::Unauthenticated(UNKNOWN_TOKEN.into())),
                    Some((_, user)) if !user.is_active() => {
                        Err(ServiceError::Unauthenticated(format!(
                            "the API token's user `{0}` is suspended: an owner or user-admin can run `herald users activate {0}`",
                            user.username
                        )))
                    }
                    Some((_, user)) => Ok(user),
                },
            })
            .collect()
    }
}

/// ` --user NAME` when the token is someone else's, for a command line to copy.
fn user_flag(caller: &User, subject: &User) -> String {
    if caller.id == subject.id {
        String::new()
    } else {
        format!(" --user {}", subject.username)
    }
}

fn validate_token_name(name: &str) -> ServiceResult<()> {
    if is_plain_name(name) {
        Ok(())
    } else {
        Err(ServiceError::Invalid(format!(
            "`{name}` is not a valid token name: use 1–64 letters, digits, `_`, `-` or `.`, e.g. `ci` or `sqlmesh-prod`"
        )))
    }
}

/// A fresh token: the prefix and 32 random bytes in hex.
fn new_secret() -> ServiceResult<Secret> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| {
        ServiceError::Invalid(format!(
            "cannot draw random bytes for the token from the operating system ({e}); try again"
        ))
    })?;
    Ok(Secret::new(format!("{TOKEN_PREFIX}{}", hex::encode(bytes))))
}

/// What the store keeps of a token: the lowercase hex SHA-256 of all of it.
fn token_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether `secret` is shaped like a token this herald makes (then it is worth a lookup).
fn well_formed(secret: &str) -> bool {
    secret.strip_prefix(TOKEN_PREFIX).is_some_and(|random| {
        random.len() == 2 * TOKEN_BYTES
            && random
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[cfg(test)]
mod tests;
