//! What routing reads from the store, fetched for many events at once: their catalog entries,
//! every user they name (recipients, actors, audit owners), each event's audience and the
//! recipients' preferences. One event costs the same statements as before; a batch of reports
//! costs about the same statements as one ([`Service::prepare_enqueue_many`]).

use std::collections::{HashMap, HashSet};

use super::*;

/// An event's labels and data, parsed: what routing takes from the report itself.
pub(super) struct Parsed {
    pub labels: BTreeMap<String, String>,
    pub data: serde_json::Value,
}

impl Parsed {
    /// Parses `input`'s labels and data, or says what is wrong with them.
    pub(super) fn of(input: &EnqueueInput) -> ServiceResult<Parsed> {
        let labels = routing::parse_labels(&input.labels)
            .map_err(|e| ServiceError::Invalid(e.to_string()))?;
        let data = parse_data(input.data.as_deref())?;
        Ok(Parsed { labels, data })
    }
}

/// The store's answers for a set of events; a name missing here does not exist (its error,
/// with a did-you-mean, is made when an event asks for it).
#[derive(Default)]
pub(super) struct Lookups {
    events: HashMap<String, EventTemplate>,
    users: HashMap<String, User>,
    audiences: HashMap<Uuid, Vec<User>>,
    preferences: HashMap<Uuid, Vec<Preference>>,
}

impl Lookups {
    /// The catalog entry named `name`, if there is one.
    pub(super) fn event(&self, name: &str) -> Option<&EventTemplate> {
        self.events.get(name)
    }

    /// The user named `username`, if there is one.
    pub(super) fn user(&self, username: &str) -> Option<&User> {
        self.users.get(username)
    }

    /// The active users holding one of `event`'s audience roles.
    pub(super) fn audience(&self, event: &EventTemplate) -> &[User] {
        self.audiences.get(&event.id).map_or(&[], Vec::as_slice)
    }

    /// Preferences for `event` of every recipient looked up with it.
    pub(super) fn preferences(&self, event: &EventTemplate) -> &[Preference] {
        self.preferences.get(&event.id).map_or(&[], Vec::as_slice)
    }
}

impl Service {
    /// The actor an event is reported with: its own, else the config's `username`.
    pub(super) fn actor_name<'a>(&'a self, input: &'a EnqueueInput) -> Option<&'a str> {
        input.actor.as_deref().or(self.config.username.as_deref())
    }

    /// Reads what routing needs for `events` (each report with its parsed labels): one
    /// statement for all users named, one per distinct event for its entry, its audience and
    /// its recipients' preferences.
    pub(super) async fn lookups(
        &self,
        events: &[(&EnqueueInput, &Parsed)],
    ) -> ServiceResult<Lookups> {
        let mut lookups = Lookups::default();
        let mut names: HashSet<&str> = HashSet::new();
        for (input, parsed) in events {
            if !lookups.events.contains_key(&input.event)
                && let Some(event) = self.store.template_by_name(&input.event).await?
            {
                lookups.events.insert(input.event.clone(), event);
            }
            names.extend(input.users.iter().map(String::as_str));
            names.extend(self.actor_name(input));
            if input.event == "audit_failure"
                && let Some(owner) = parsed.labels.get("owner")
            {
                names.insert(owner);
            }
        }
        let names: Vec<&str> = names.into_iter().collect();
        lookups.users = self
            .store
            .users_by_usernames(&names)
            .await?
            .into_iter()
            .map(|u| (u.username.clone(), u))
            .collect();
        for event in lookups.events.values() {
            let audience = self
                .store
                .active_users_with_roles(&event.spec.audience_roles)
                .await?;
            let mut recipients: HashSet<Uuid> = audience.iter().map(|u| u.id).collect();
            for (input, _) in events.iter().filter(|(i, _)| i.event == event.spec.name) {
                recipients.extend(
                    input
                        .users
                        .iter()
                        .filter_map(|name| lookups.users.get(name))
                        .map(|u| u.id),
                );
            }
            let recipients: Vec<Uuid> = recipients.into_iter().collect();
            let preferences = self
                .store
                .preferences_for_template(event.id, &recipients)
                .await?;
            lookups.audiences.insert(event.id, audience);
            lookups.preferences.insert(event.id, preferences);
        }
        Ok(lookups)
    }
}
