//! Seeding the console benchmark's store: N messages of mixed states, events, users and
//! methods, drawn by a deterministic generator and enqueued in batches.

use super::*;

/// A small deterministic generator (SplitMix64), so every run seeds the same store.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// An item of `items` with probability proportional to its weight.
    fn weighted<'a, T>(&mut self, items: &'a [(T, u32)]) -> &'a T {
        let total: u32 = items.iter().map(|(_, w)| w).sum();
        let mut pick = (self.next() % u64::from(total)) as u32;
        for (item, weight) in items {
            if pick < *weight {
                return item;
            }
            pick -= weight;
        }
        &items[items.len() - 1].0
    }
}

/// Relative frequencies: mostly delivered, a tail of failures, a little backlog.
const STATES: &[(MessageState, u32)] = &[
    (MessageState::Sent, 780),
    (MessageState::Pending, 60),
    (MessageState::Leased, 10),
    (MessageState::TemporaryFailure, 40),
    (MessageState::PermanentFailure, 50),
    (MessageState::Inhibited, 60),
];

const METHODS: &[(Method, u32)] = &[
    (Method::Smtp, 35),
    (Method::Inbox, 30),
    (Method::Webhook, 15),
    (Method::SlackWebhook, 10),
    (Method::SlackApi, 10),
];

/// Events by how often they fire; run_*, apply_* and workspace builds dominate.
const EVENTS: &[(&str, u32)] = &[
    ("run_start", 120),
    ("run_end", 120),
    ("run_failure", 40),
    ("apply_start", 60),
    ("apply_end", 60),
    ("apply_failure", 20),
    ("audit_failure", 10),
    ("migration_start", 10),
    ("migration_end", 10),
    ("migration_failure", 5),
    ("workspace_created", 60),
    ("workspace_deleted", 30),
    ("workspace_autobuild_failed", 30),
    ("workspace_manual_build_failed", 20),
    ("workspace_manually_updated", 30),
    ("workspace_autoupdated", 60),
    ("workspace_marked_dormant", 40),
    ("workspace_marked_for_deletion", 20),
    ("workspace_out_of_memory", 10),
    ("workspace_out_of_disk", 10),
    ("task_idle", 50),
    ("task_working", 50),
    ("template_deleted", 5),
    ("template_deprecated", 5),
    ("template_workspace_builds_failed_report", 10),
    ("user_account_created", 20),
    ("user_account_deleted", 10),
    ("user_account_suspended", 10),
    ("user_account_activated", 10),
    ("your_account_suspended", 5),
    ("your_account_activated", 5),
    ("user_password_reset", 10),
    ("test_notification", 10),
    ("custom_notification", 20),
];

const FAILURE_REASONS: &[(&str, u32)] = &[
    ("webhook 503 after 1.2s", 30),
    ("smtp 550 5.1.1 mailbox unavailable", 20),
    ("slack rate_limited (retry after 30s)", 15),
    ("webhook 404 Not Found", 10),
    ("connection refused (os error 111)", 10),
    ("smtp 421 4.7.0 try again later", 10),
    ("slack channel_not_found", 5),
];

/// What the seeder draws from: the catalog and the users.
struct Seeder {
    rng: Rng,
    templates: Vec<(EventTemplate, u32)>,
    users: Vec<User>,
    notifier: Uuid,
}

impl Seeder {
    /// `count` messages created at evenly spaced instants from `first` on, `gap` apart, with
    /// UUIDv7 ids of those instants (so id order is creation order, as in production).
    fn batch(
        &mut self,
        first: DateTime<Utc>,
        gap: chrono::Duration,
        count: usize,
    ) -> Vec<NewMessage> {
        (0..count)
            .map(|i| {
                let created = first + gap * i32::try_from(i).unwrap_or(i32::MAX);
                self.message(created)
            })
            .collect()
    }

    fn message(&mut self, created: DateTime<Utc>) -> NewMessage {
        let template = self.rng.weighted(&self.templates).clone();
        let status = *self.rng.weighted(STATES);
        let method = *self.rng.weighted(METHODS);
        // One in twenty goes to a global target (webhook or Slack), not a user.
        let to_target =
            method != Method::Smtp && method != Method::Inbox && self.rng.below(20) == 0;
        let user = (!to_target).then(|| self.users[self.rng.below(self.users.len())].clone());
        let target = to_target.then(|| format!("ops-{}", self.rng.below(4)));
        let status_reason = match status {
            MessageState::TemporaryFailure | MessageState::PermanentFailure => {
                Some(self.rng.weighted(FAILURE_REASONS).to_string())
            }
            MessageState::Inhibited => Some("disabled by user".to_string()),
            MessageState::Leased => Some(herald::queue::leased_reason(self.notifier)),
            MessageState::Pending | MessageState::Sent => None,
        };
        let workspace = self.rng.below(20_000);
        let owner = &self.users[self.rng.below(self.users.len())];
        let labels: BTreeMap<String, String> = [
            ("workspace_name", format!("ws-{workspace}")),
            ("workspace_owner_username", owner.username.clone()),
            ("template_name", format!("tpl-{}", workspace % 40)),
            ("template_version_name", format!("v{}", workspace % 7)),
            ("initiator", "system".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let data = serde_json::json!({
            "build_id": self.rng.next() % 10_000_000,
            "run_url": format!("https://ci.example.com/runs/{}", self.rng.next() % 1_000_000),
            "duration_seconds": self.rng.below(3_600),
        });
        let targets: Vec<String> = target.iter().cloned().collect();
        let payload =
            herald::routing::build_payload(&template, user.as_ref(), &labels, &data, &targets);
        let millis = u64::try_from(created.timestamp_millis()).unwrap_or(0);
        let id = Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            millis / 1000,
            u32::try_from(millis % 1000).unwrap_or(0) * 1_000_000,
        ));
        NewMessage {
            id,
            template_id: template.id,
            created_by: "seed".into(),
            created_at: created,
            planned: PlannedMessage {
                user_id: user.as_ref().map(|u| u.id),
                target,
                method,
                status,
                status_reason,
                payload,
                dedupe_hash: Some(format!(
                    "{:016x}{:016x}{:016x}{:016x}",
                    self.rng.next(),
                    self.rng.next(),
                    self.rng.next(),
                    self.rng.next()
                )),
            },
        }
    }
}

/// What seeding took: the time, the seeder's peak memory and the payloads' size.
pub(super) struct Seeded {
    pub(super) elapsed: Duration,
    pub(super) peak_kb: u64,
    /// Mean size of a payload's JSON text, from every 1,000th message.
    pub(super) payload_bytes: usize,
}

/// Migrates the store, syncs the catalog, adds the users and enqueues `n` messages.
pub(super) async fn seed(url: &str, options: &Options) -> anyhow::Result<Seeded> {
    let started = Instant::now();
    let store = store::open(url, OpenMode::Migrate).await?;
    store.upsert_catalog(herald::catalog::builtin()).await?;
    let mut users = Vec::with_capacity(USERS);
    for i in 0..USERS {
        let (username, roles) = if i == 0 {
            ("alice".to_string(), vec![Role::Owner])
        } else {
            (format!("user{i:03}"), vec![Role::Member])
        };
        users.push(
            store
                .insert_user(
                    &NewUser {
                        email: format!("{username}@example.com"),
                        name: username.to_uppercase(),
                        username,
                        roles,
                    },
                    None,
                )
                .await?,
        );
    }
    let mut templates = Vec::with_capacity(EVENTS.len());
    for (name, weight) in EVENTS {
        let template = store
            .template_by_name(name)
            .await?
            .with_context(|| format!("the builtin catalog has no `{name}` event"))?;
        templates.push((template, *weight));
    }
    let mut seeder = Seeder {
        rng: Rng(0x6865_7261_6c64),
        templates,
        users,
        notifier: Uuid::now_v7(),
    };
    let span = chrono::Duration::days(SPREAD_DAYS);
    let gap = span / i32::try_from(options.n).unwrap_or(i32::MAX);
    let first = Utc::now() - span;
    let mut done = 0;
    let mut payload_sizes = Vec::new();
    let mut last_report = Instant::now();
    while done < options.n {
        let count = options.batch.min(options.n - done);
        let start = first + gap * i32::try_from(done).unwrap_or(i32::MAX);
        let batch = seeder.batch(start, gap, count);
        for m in batch.iter().step_by(1_000) {
            payload_sizes.push(serde_json::to_string(&m.planned.payload)?.len());
        }
        let outcome = store.enqueue(&batch).await?;
        if outcome.enqueued.len() != count {
            bail!(
                "enqueued {} of {count} seeded messages",
                outcome.enqueued.len()
            );
        }
        done += count;
        if last_report.elapsed() > Duration::from_secs(15) {
            last_report = Instant::now();
            eprintln!(
                "  … seeded {} of {} in {:.0} s",
                thousands(done as f64),
                thousands(options.n as f64),
                started.elapsed().as_secs_f64()
            );
        }
    }
    drop(store);
    Ok(Seeded {
        elapsed: started.elapsed(),
        peak_kb: memory().peak_kb,
        payload_bytes: payload_sizes.iter().sum::<usize>() / payload_sizes.len().max(1),
    })
}
