//! The channels as operators steer them (DESIGN §14): scoped pauses — one method or one
//! target held on every replica while the rest keeps flowing.

use super::*;
use crate::model::{ChannelPause, PauseScope};

impl Service {
    /// Holds every message of one method, or of one target, on every replica. Owners and
    /// on-call. A target is named as the config declares it (`owner/name` for a user's own);
    /// an unknown one is refused. Returns false when it was paused already.
    pub async fn pause_channel(
        &self,
        caller: &User,
        scope: PauseScope,
        name: &str,
    ) -> ServiceResult<bool> {
        require(caller, QUEUE_WATCHERS, "pausing a channel")?;
        let name = self.channel_name(scope, name)?;
        let audit = self.channel_audit(caller, actions::PAUSE, scope, &name);
        let paused = self
            .store
            .pause_channel(scope, &name, &caller.username, Some(&audit))
            .await?;
        tracing::info!(user = %caller.username, scope = %scope, name = %name, "channel paused");
        Ok(paused)
    }

    /// Lifts a scoped pause; every replica delivers what it held. Owners and on-call. Returns
    /// false when it was not paused.
    pub async fn resume_channel(
        &self,
        caller: &User,
        scope: PauseScope,
        name: &str,
    ) -> ServiceResult<bool> {
        require(caller, QUEUE_WATCHERS, "resuming a channel")?;
        let name = self.channel_name(scope, name)?;
        let audit = self.channel_audit(caller, actions::RESUME, scope, &name);
        let resumed = self
            .store
            .resume_channel(scope, &name, Some(&audit))
            .await?;
        tracing::info!(user = %caller.username, scope = %scope, name = %name, "channel resumed");
        Ok(resumed)
    }

    /// Every scoped pause; anyone may see what is held, as anyone may see the global pause.
    pub async fn channel_pauses(&self, _caller: &User) -> ServiceResult<Vec<ChannelPause>> {
        Ok(self.store.channel_pauses().await?)
    }

    /// The audit entry of a scoped pause or resume: the subject is `method:M` or `target:T`.
    fn channel_audit(
        &self,
        caller: &User,
        action: &str,
        scope: PauseScope,
        name: &str,
    ) -> crate::store::AuditEntry {
        let subject = format!("{scope}:{name}");
        self.audit_entry(&caller.username, action, subject, serde_json::Value::Null)
    }

    /// `name` checked for `scope`: a method's name as given (the CLI parsed it), a target's
    /// against the declared targets, with a did-you-mean.
    fn channel_name(&self, scope: PauseScope, name: &str) -> ServiceResult<String> {
        if scope == PauseScope::Method {
            let method: Method = name
                .parse()
                .map_err(|e: crate::model::UnknownValue| ServiceError::Invalid(e.to_string()))?;
            return Ok(method.as_str().to_string());
        }
        let targets = self.config.capabilities().targets;
        if targets.iter().any(|t| t == name) {
            return Ok(name.to_string());
        }
        let known = if targets.is_empty() {
            "none is declared".to_string()
        } else {
            format!("declared: {}", targets.join(", "))
        };
        Err(ServiceError::Invalid(format!(
            "unknown target `{name}`{} ({known}); a user's own target is `owner/name`",
            did_you_mean(name, targets.iter().map(String::as_str))
        )))
    }
}
