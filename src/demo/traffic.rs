//! The demo's events: a realistic mix of workspace, task, template, user and SQLMesh events,
//! enqueued through the service as the demo owner — a burst of history up front, then a
//! steady trickle.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;

use crate::model::User;
use crate::service::{EnqueueInput, Service};

/// A small, lock-free pseudo-random source (SplitMix64); plenty for picking demo events.
#[derive(Debug)]
pub struct Dice(AtomicU64);

impl Dice {
    /// Seeded from the clock, so each demo run differs.
    pub fn seeded() -> Dice {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x5eed, |d| d.as_nanos() as u64);
        Dice(AtomicU64::new(nanos))
    }

    fn next(&self) -> u64 {
        const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut z = self
            .0
            .fetch_add(GAMMA, Ordering::Relaxed)
            .wrapping_add(GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`0` when `n` is `0`).
    pub fn below(&self, n: u64) -> u64 {
        self.next().checked_rem(n).unwrap_or(0)
    }

    /// True `percent` times in a hundred.
    pub fn chance(&self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One of `items`, which the demo only ever passes non-empty.
    fn pick<'a>(&self, items: &[&'a str]) -> &'a str {
        let i = usize::try_from(self.below(items.len() as u64)).unwrap_or(0);
        items.get(i).copied().unwrap_or_default()
    }
}

const WORKSPACE_OWNERS: &[&str] = &["mia", "max", "mia", "max", "demo-owner"];
const WORKSPACE_WORDS: &[&str] = &["dev", "notebook", "etl", "sandbox", "api", "gpu"];
const TEMPLATES: &[&str] = &["python-dev", "rust-nightly", "gpu-notebook", "data-science"];
const ENVIRONMENTS: &[&str] = &["prod", "prod", "staging", "dev"];
const INITIATORS: &[&str] = &["scheduler", "scheduler", "mia", "max", "olive"];
const MODELS: &[&str] = &[
    "analytics.orders",
    "analytics.customers",
    "finance.revenue_daily",
    "marketing.attribution",
];
const ERRORS: &[&str] = &[
    "duckdb.ConversionException: Could not convert string 'N/A' to INT32 in column amount",
    "psycopg2.OperationalError: connection to server at \"warehouse\" timed out",
    "SQLMeshError: Model 'analytics.orders' depends on missing table 'raw.orders_v2'",
    "MemoryError: Unable to allocate 12.0 GiB for an array with shape (1610612736,)",
];

/// The next event of the mix: mostly workspace and SQLMesh traffic, with some template and
/// user events, and a few that opt-outs or a suspension inhibit.
pub fn next_event(dice: &Dice) -> EnqueueInput {
    let owner = dice.pick(WORKSPACE_OWNERS);
    let workspace = format!(
        "{owner}-{}-{}",
        dice.pick(WORKSPACE_WORDS),
        dice.below(1000)
    );
    let env = dice.pick(ENVIRONMENTS);
    let initiator = dice.pick(INITIATORS);
    let error = json!({ "error": dice.pick(ERRORS) }).to_string();
    let run_id = format!("run_id={:06x}", dice.below(1 << 24));
    let plan_id = format!("plan_id=plan-{:06x}", dice.below(1 << 24));
    let event =
        |name: &str, users: &[&str], labels: Vec<String>, data: Option<String>| EnqueueInput {
            event: name.to_string(),
            users: users.iter().map(|u| u.to_string()).collect(),
            actor: None,
            labels,
            data,
        };
    let ws = |extra: &[String]| {
        let mut labels = vec![
            format!("name={workspace}"),
            format!("workspace_owner_username={owner}"),
        ];
        labels.extend_from_slice(extra);
        labels
    };
    let sqlmesh = |extra: &str| {
        vec![
            format!("environment={env}"),
            format!("initiator={initiator}"),
            extra.to_string(),
        ]
    };
    match dice.below(100) {
        0..=15 => event(
            "workspace_created",
            &[owner],
            ws(&[
                format!("template_name={}", dice.pick(TEMPLATES)),
                "template_version_name=v1.4.2".into(),
                format!("initiator={owner}"),
            ]),
            None,
        ),
        16..=22 => event(
            "workspace_deleted",
            &[owner],
            ws(&[
                format!(
                    "reason={}",
                    dice.pick(&["initiated by user", "autodeleted due to dormancy"])
                ),
                format!("initiator={owner}"),
            ]),
            None,
        ),
        23..=28 => event(
            "workspace_autobuild_failed",
            &[owner],
            ws(&["reason=autostart".into()]),
            Some(error),
        ),
        29..=31 => event(
            "workspace_out_of_memory",
            &[owner],
            ws(&["threshold=90%".into()]),
            None,
        ),
        // mia opted out of these: inhibited.
        32..=34 => event(
            "workspace_autoupdated",
            &["mia"],
            ws(&[
                "template_version_name=v1.5.0".into(),
                "template_version_message=Faster start-up".into(),
            ]),
            None,
        ),
        // Off by default; mia opted in.
        35..=37 => event(
            "task_working",
            &["mia"],
            vec![
                format!("workspace={workspace}"),
                "task=refactor the billing module".into(),
            ],
            None,
        ),
        // max opted out of these: inhibited.
        38..=40 => event(
            "task_idle",
            &["max"],
            vec![
                format!("workspace={workspace}"),
                "task=write the migration".into(),
            ],
            None,
        ),
        41..=43 => event(
            "template_deprecated",
            &[],
            vec![
                format!("name={}", dice.pick(TEMPLATES)),
                "message=Use data-science instead".into(),
            ],
            None,
        ),
        44..=46 => event(
            "user_account_created",
            &[],
            vec![
                format!("account_name=new-hire-{}", dice.below(1000)),
                "account_display_name=New Hire".into(),
                "initiator=dana".into(),
            ],
            None,
        ),
        // sam is suspended: inhibited.
        47..=48 => event(
            "workspace_marked_dormant",
            &["sam"],
            vec![
                format!("name=sam-{}", dice.below(1000)),
                "reason=inactive for 30 days".into(),
                "initiator=system".into(),
            ],
            None,
        ),
        49..=58 => event("run_start", &[], sqlmesh(&run_id), None),
        59..=68 => event("run_end", &[], sqlmesh(&run_id), None),
        69..=76 => event("run_failure", &[], sqlmesh(&run_id), Some(error)),
        77..=80 => event("apply_start", &[], sqlmesh(&plan_id), None),
        81..=84 => event("apply_end", &[], sqlmesh(&plan_id), None),
        85..=87 => event("apply_failure", &[], sqlmesh(&plan_id), Some(error)),
        88..=95 => {
            let model = dice.pick(MODELS);
            let column = dice.pick(&["customer_id", "order_id", "amount"]);
            event(
                "audit_failure",
                &[],
                vec![
                    "environment=prod".into(),
                    format!("audit=not_null_{column}"),
                    format!("model={model}"),
                    "owner=mia".into(),
                ],
                Some(
                    json!({
                        "count": dice.below(500) + 1,
                        "sql": format!("SELECT * FROM {model} WHERE {column} IS NULL"),
                    })
                    .to_string(),
                ),
            )
        }
        _ => event(
            "migration_failure",
            &[],
            vec![format!("initiator={initiator}"), run_id],
            Some(error),
        ),
    }
}

/// Enqueues `events` events at once, so the console opens on a busy queue.
pub async fn seed_history(
    service: &Service,
    owner: &User,
    dice: &Dice,
    events: usize,
) -> anyhow::Result<usize> {
    let mut messages = 0;
    for _ in 0..events {
        messages += service
            .enqueue(owner, &next_event(dice))
            .await?
            .enqueued
            .len();
    }
    Ok(messages)
}

/// Enqueues `rate` events a second until `stop` changes; an enqueue that fails is logged (the
/// Troubleshoot tab shows it) and the trickle goes on.
pub async fn trickle(
    service: Arc<Service>,
    owner: User,
    rate: f64,
    dice: Arc<Dice>,
    mut stop: watch::Receiver<bool>,
) {
    if rate <= 0.0 || !rate.is_finite() {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {
                let input = next_event(&dice);
                if let Err(e) = service.enqueue(&owner, &input).await {
                    tracing::warn!(event = %input.event, "demo traffic: {e}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_demo_event_is_in_the_catalog_with_valid_labels_and_data() {
        let dice = Dice::seeded();
        let catalog = crate::catalog::builtin();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..2000 {
            let input = next_event(&dice);
            let spec = catalog
                .iter()
                .find(|e| e.name == input.event)
                .unwrap_or_else(|| panic!("{} is not in the catalog", input.event));
            let labels = crate::routing::parse_labels(&input.labels)
                .unwrap_or_else(|e| panic!("{input:?}: {e}"));
            if let Err(e) = crate::labels::check_required(spec, &labels) {
                panic!("{input:?}: {e}");
            }
            if let Some(data) = &input.data {
                let value: serde_json::Value = serde_json::from_str(data).unwrap();
                assert!(value.is_object(), "{data}");
            }
            seen.insert(input.event);
        }
        assert!(seen.len() >= 15, "a varied mix: {seen:?}");
    }

    #[test]
    fn dice_stay_in_range() {
        let dice = Dice::seeded();
        assert!((0..1000).all(|_| dice.below(7) < 7));
        assert_eq!(dice.below(0), 0);
        let hits = (0..1000).filter(|_| dice.chance(30)).count();
        assert!((200..400).contains(&hits), "{hits}");
    }
}
