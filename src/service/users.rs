//! Users (add, list, suspend, activate) and opt-outs, one's own or, for admins, someone's.

use super::*;

impl Service {
    /// Whose `credentials` (API tokens, SSH keys) `user` names: the caller's own, or (owners
    /// and user-admins) someone else's; an owner's only for owners, since a credential acts
    /// with all of its user's roles.
    pub(super) async fn credential_subject(
        &self,
        credentials: &str,
        caller: &User,
        user: Option<&str>,
        action: &str,
    ) -> ServiceResult<User> {
        match user {
            Some(name) if name != caller.username => {
                require(caller, USER_MANAGERS, action)?;
                let subject = self.user_named(name).await?;
                if subject.has_role(Role::Owner) {
                    require(
                        caller,
                        OWNERS,
                        &format!("managing an owner's {credentials}"),
                    )?;
                }
                Ok(subject)
            }
            _ => Ok(caller.clone()),
        }
    }

    // ---- users ----------------------------------------------------------------------------

    /// Adds a user. While no owner exists anyone may (to create the first owner); afterwards
    /// owners and user-admins, and only owners may grant `owner`.
    pub async fn add_user(&self, caller: Option<&User>, new: NewUser) -> ServiceResult<User> {
        validate_username(&new.username)?;
        if !new.email.contains('@') {
            return Err(ServiceError::Invalid(format!(
                "`{}` is not an email address (expected e.g. bob@example.com)",
                new.email
            )));
        }
        let actor = caller.map_or("(first owner)", |c| c.username.as_str());
        let roles: Vec<&str> = new.roles.iter().map(|r| r.as_str()).collect();
        let audit = self.audit_entry(
            actor,
            actions::USER_ADD,
            &new.username,
            serde_json::json!({"roles": roles}),
        );
        if self.store.owner_exists().await? {
            let caller = caller.ok_or_else(|| {
                ServiceError::Invalid(
                    "adding users requires an identity: pass --as USER or set HERALD_USER".into(),
                )
            })?;
            require(caller, USER_MANAGERS, "adding users")?;
            if new.roles.contains(&Role::Owner) {
                require(caller, OWNERS, "granting the owner role")?;
            }
        }
        Ok(self.store.insert_user(&new, Some(&audit)).await?)
    }

    /// Whether `users add` may run without an identity (no owner yet).
    pub async fn bootstrapping(&self) -> ServiceResult<bool> {
        Ok(!self.store.owner_exists().await?)
    }

    /// Every user with their email, roles and status; owners and user-admins. On-call is
    /// refused rather than shown a list with emails blanked: on-call sees the queue and pauses,
    /// nothing else (DESIGN §3), and needs no user list for it — messages and the console's
    /// queue filters already carry the recipients' usernames.
    pub async fn list_users(&self, caller: &User) -> ServiceResult<Vec<User>> {
        require(caller, USER_MANAGERS, "listing users")?;
        Ok(self.store.list_users().await?)
    }

    /// Suspends or reactivates a user. Owners and user-admins; only owners touch owners.
    pub async fn set_user_status(
        &self,
        caller: &User,
        username: &str,
        status: UserStatus,
    ) -> ServiceResult<User> {
        let action = match status {
            UserStatus::Active => "activating users",
            UserStatus::Suspended => "suspending users",
        };
        require(caller, USER_MANAGERS, action)?;
        let user = self.user_named(username).await?;
        if user.has_role(Role::Owner) {
            require(caller, OWNERS, "changing an owner's status")?;
        }
        if status == UserStatus::Suspended && user.id == caller.id {
            return Err(ServiceError::Invalid(
                "you cannot suspend yourself; ask another owner or user-admin".into(),
            ));
        }
        let verb = match status {
            UserStatus::Active => actions::USER_ACTIVATE,
            UserStatus::Suspended => actions::USER_SUSPEND,
        };
        let audit = self.audit_entry(&caller.username, verb, username, serde_json::Value::Null);
        self.store
            .set_user_status(user.id, status, Some(&audit))
            .await?;
        Ok(User { status, ..user })
    }

    // ---- opt-outs -------------------------------------------------------------------------

    /// The user whose opt-outs are meant: yourself, or (owners only) someone else.
    async fn opt_out_subject(&self, caller: &User, user: Option<&str>) -> ServiceResult<User> {
        match user {
            Some(name) if name != caller.username => {
                require(
                    caller,
                    OWNERS,
                    "changing or viewing another user's opt-outs",
                )?;
                self.user_named(name).await
            }
            _ => Ok(caller.clone()),
        }
    }

    /// Every event with whether `user` (default: the caller) receives it.
    pub async fn opt_outs(
        &self,
        caller: &User,
        user: Option<&str>,
    ) -> ServiceResult<(User, Vec<OptOutEntry>)> {
        let subject = self.opt_out_subject(caller, user).await?;
        let prefs = self.store.preferences_of_user(subject.id).await?;
        let entries = self
            .store
            .list_templates()
            .await?
            .into_iter()
            .map(|event| {
                let preference = prefs
                    .iter()
                    .find(|p| p.template_id == event.id)
                    .map(|p| p.disabled);
                let enabled = match preference {
                    Some(disabled) => !disabled,
                    None => event.spec.enabled_by_default,
                };
                OptOutEntry {
                    event,
                    enabled,
                    preference,
                }
            })
            .collect();
        Ok((subject, entries))
    }

    /// Opts `user` (default: the caller) out of `event` (`disabled = true`) or back in.
    pub async fn set_opt_out(
        &self,
        caller: &User,
        event: &str,
        user: Option<&str>,
        disabled: bool,
    ) -> ServiceResult<User> {
        let subject = self.opt_out_subject(caller, user).await?;
        let event = self.event_named(event).await?;
        // Only a change made for someone else is an operator action (DESIGN §14).
        let audit = (subject.id != caller.id).then(|| {
            let verb = if disabled {
                actions::OPT_OUT
            } else {
                actions::OPT_IN
            };
            self.audit_entry(
                &caller.username,
                verb,
                &subject.username,
                serde_json::json!({"event": event.spec.name}),
            )
        });
        self.store
            .set_preference(
                Preference {
                    user_id: subject.id,
                    template_id: event.id,
                    disabled,
                },
                audit.as_ref(),
            )
            .await?;
        Ok(subject)
    }
}
