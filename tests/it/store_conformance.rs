//! The store conformance suite: every test runs against SQLite and PostgreSQL.

use crate::common;
use crate::for_both_backends;

use chrono::{Duration, Utc};
use common::TestDb;
use common::store::{
    count, every_method, lease, lease_with, list, message, migrated, new_user, outcome,
    template_id, webhook_in,
};
use herald::catalog;
use herald::model::{Capabilities, Message, MessageState, Method, Preference, Role, UserStatus};
use herald::store::{
    self, AttemptRecord, MessageFilter, NewApiToken, NewMessage, OpenMode, PageRequest,
    StateCounts, Store, StoreError, TokenInfo,
};
use uuid::Uuid;

type R = anyhow::Result<()>;

/// Queues `n` pending `run_failure` webhook messages; returns them.
async fn run_failures(store: &dyn Store, n: usize) -> anyhow::Result<Vec<NewMessage>> {
    let t = template_id(store, "run_failure").await;
    let batch: Vec<NewMessage> = (0..n)
        .map(|_| message(t, None, Method::Webhook, None))
        .collect();
    store.enqueue(&batch).await?;
    Ok(batch)
}

/// One webhook message of `t` in each final state (sent, permanent_failure, inhibited),
/// created `days` ago.
fn finished_days_ago(t: Uuid, days: i64) -> Vec<NewMessage> {
    [
        MessageState::Sent,
        MessageState::PermanentFailure,
        MessageState::Inhibited,
    ]
    .into_iter()
    .map(|status| NewMessage {
        created_at: Utc::now() - Duration::days(days),
        ..webhook_in(t, status, None)
    })
    .collect()
}

/// Leases one message as `notifier` and records `status` (with `reason`) as its outcome.
async fn deliver_one(
    store: &dyn Store,
    notifier: Uuid,
    status: MessageState,
    reason: Option<&str>,
) -> R {
    let leased = lease(store, notifier, 1).await?;
    assert_eq!(leased.len(), 1, "a message to lease");
    store
        .record_attempts(&[outcome(&leased[0], notifier, status, reason)])
        .await?;
    Ok(())
}

async fn existing_mode_requires_a_migrated_store(db: TestDb) -> R {
    let err = match store::open(&db.url, OpenMode::Existing).await {
        Err(e) => e.to_string(),
        Ok(_) => anyhow::bail!("an unmigrated store opened"),
    };
    assert!(err.contains("herald migrate"), "{err}");
    store::open(&db.url, OpenMode::Migrate).await?;
    store::open(&db.url, OpenMode::Migrate).await?; // idempotent
    let store = store::open(&db.url, OpenMode::Existing).await?;
    assert_eq!(store.backend(), db.backend);
    Ok(())
}

async fn users_are_unique_and_keep_their_roles(db: TestDb) -> R {
    let store = migrated(&db).await;
    assert!(!store.owner_exists().await?);
    let alice = store
        .insert_user(&new_user("alice", &[Role::Owner]), None)
        .await?;
    assert!(store.owner_exists().await?);
    assert_eq!(alice.roles, vec![Role::Owner]);
    assert_eq!(alice.status, UserStatus::Active);
    match store.insert_user(&new_user("alice", &[]), None).await {
        Err(StoreError::Conflict(msg)) => assert!(msg.contains("already exists"), "{msg}"),
        other => anyhow::bail!("expected a conflict, got {other:?}"),
    }
    let bob = store
        .insert_user(&new_user("bob", &[Role::UserAdmin, Role::Member]), None)
        .await?;
    assert_eq!(store.user_by_username("bob").await?.unwrap(), bob);
    assert_eq!(store.user_by_id(bob.id).await?.unwrap().username, "bob");
    assert!(store.user_by_username("carol").await?.is_none());

    let admins = store
        .active_users_with_roles(&[Role::Owner, Role::UserAdmin])
        .await?;
    assert_eq!(admins.len(), 2);
    store
        .set_user_status(bob.id, UserStatus::Suspended, None)
        .await?;
    let admins = store.active_users_with_roles(&[Role::UserAdmin]).await?;
    assert!(admins.is_empty(), "suspended users are not an audience");
    assert_eq!(store.list_users().await?.len(), 2);

    let changed = store
        .upsert_user(&new_user("alice", &[Role::Oncall]))
        .await?;
    assert_eq!(changed.id, alice.id);
    assert_eq!(changed.roles, vec![Role::Oncall]);
    let same = store
        .upsert_user(&new_user("alice", &[Role::Oncall]))
        .await?;
    assert_eq!(
        same, changed,
        "an unchanged upsert returns the row as it is"
    );
    Ok(())
}

async fn catalog_upsert_never_clobbers_the_admin_method(db: TestDb) -> R {
    let store = migrated(&db).await;
    let events = store.list_templates().await?;
    assert_eq!(events.len(), catalog::builtin().len());
    let id = template_id(&*store, "workspace_deleted").await;
    store
        .set_template_method(id, Some(Method::Webhook), None)
        .await?;

    let mut changed = catalog::builtin().to_vec();
    for e in &mut changed {
        if e.name == "workspace_deleted" {
            e.title_template = "Gone: {{ labels.name }}".into();
        }
    }
    store.upsert_catalog(&changed).await?;
    let after = store.template_by_name("workspace_deleted").await?.unwrap();
    assert_eq!(after.id, id);
    assert_eq!(after.method, Some(Method::Webhook));
    assert_eq!(after.spec.title_template, "Gone: {{ labels.name }}");

    store.set_template_method(id, None, None).await?;
    assert_eq!(
        store
            .template_by_name("workspace_deleted")
            .await?
            .unwrap()
            .method,
        None
    );
    Ok(())
}

async fn preferences_are_set_updated_and_cleared(db: TestDb) -> R {
    let store = migrated(&db).await;
    let bob = store
        .insert_user(&new_user("bob", &[Role::Member]), None)
        .await?;
    let t = template_id(&*store, "workspace_deleted").await;
    let pref = Preference {
        user_id: bob.id,
        template_id: t,
        disabled: true,
    };
    store.set_preference(pref, None).await?;
    assert_eq!(store.preferences_of_user(bob.id).await?, vec![pref]);
    store
        .set_preference(
            Preference {
                disabled: false,
                ..pref
            },
            None,
        )
        .await?;
    let found = store
        .preferences_for_template(t, &[bob.id, Uuid::now_v7()])
        .await?;
    assert_eq!(
        found,
        vec![Preference {
            disabled: false,
            ..pref
        }]
    );
    assert!(store.clear_preference(bob.id, t, None).await?);
    assert!(!store.clear_preference(bob.id, t, None).await?);
    assert!(store.preferences_of_user(bob.id).await?.is_empty());
    Ok(())
}

async fn the_pause_flag_round_trips(db: TestDb) -> R {
    let store = migrated(&db).await;
    assert!(!store.settings().await?.notifier_paused);
    store.set_paused(true, None).await?;
    assert!(store.settings().await?.notifier_paused);
    store.set_paused(false, None).await?;
    assert!(!store.settings().await?.notifier_paused);
    Ok(())
}

async fn enqueue_skips_duplicates_and_names_the_original(db: TestDb) -> R {
    let store = migrated(&db).await;
    let bob = store.insert_user(&new_user("bob", &[]), None).await?;
    let t = template_id(&*store, "workspace_deleted").await;
    let first = vec![
        message(t, Some(bob.id), Method::Smtp, Some("h1")),
        message(t, Some(bob.id), Method::Inbox, Some("h2")),
        message(t, Some(bob.id), Method::Inbox, None),
    ];
    let out = store.enqueue(&first).await?;
    assert_eq!(out.enqueued, first.iter().map(|m| m.id).collect::<Vec<_>>());
    assert!(out.duplicates.is_empty());

    let again = vec![
        message(t, Some(bob.id), Method::Smtp, Some("h1")),
        message(t, Some(bob.id), Method::Inbox, None),
    ];
    let out = store.enqueue(&again).await?;
    assert_eq!(out.enqueued, vec![again[1].id], "no hash, no dedupe");
    assert_eq!(out.duplicates, vec![first[0].id]);
    let counts = store.count_by_state().await?;
    assert_eq!(count(&counts, MessageState::Pending), 4);
    Ok(())
}

async fn enqueue_is_all_or_nothing(db: TestDb) -> R {
    let store = migrated(&db).await;
    let t = template_id(&*store, "workspace_deleted").await;
    let batch = vec![
        message(t, None, Method::Webhook, Some("ok")),
        message(Uuid::now_v7(), None, Method::Webhook, Some("bad template")),
    ];
    assert!(store.enqueue(&batch).await.is_err());
    let all = list(&*store, &MessageFilter::default(), 10).await;
    assert!(
        all.is_empty(),
        "the first message must have been rolled back"
    );
    Ok(())
}

async fn listing_filters_and_pages_by_keyset(db: TestDb) -> R {
    let store = migrated(&db).await;
    let bob = store.insert_user(&new_user("bob", &[]), None).await?;
    let ann = store.insert_user(&new_user("ann", &[]), None).await?;
    let deleted = template_id(&*store, "workspace_deleted").await;
    let run_failure = template_id(&*store, "run_failure").await;
    let run_start = template_id(&*store, "run_start").await;
    let mut batch = Vec::new();
    for i in 0..25 {
        let (t, user) = match i % 3 {
            0 => (deleted, Some(bob.id)),
            1 => (run_failure, Some(ann.id)),
            _ => (run_start, None),
        };
        let mut m = message(
            t,
            user,
            if i % 2 == 0 {
                Method::Smtp
            } else {
                Method::Inbox
            },
            None,
        );
        if i % 5 == 0 {
            m.planned.status = MessageState::PermanentFailure;
            m.planned.status_reason = Some("smtp 550 5.1.1 mailbox unavailable".into());
        }
        batch.push(m);
    }
    store.enqueue(&batch).await?;

    let all = MessageFilter::default();
    let page = |before| {
        let store = store.clone();
        let all = all.clone();
        async move {
            store
                .list_messages(&all, PageRequest { before, limit: 10 })
                .await
        }
    };
    let page1 = page(None).await?;
    assert_eq!(page1.len(), 10);
    assert_eq!(page1[0].id, batch[24].id, "newest first");
    let page2 = page(Some(page1[9].id)).await?;
    let page3 = page(Some(page2[9].id)).await?;
    assert_eq!((page2.len(), page3.len()), (10, 5));
    let mut seen: Vec<Uuid> = page1
        .iter()
        .chain(&page2)
        .chain(&page3)
        .map(|m| m.id)
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 25, "pages neither overlap nor skip");

    // (what is filtered, the filter, how many it lists, what each listed message holds)
    type Holds = fn(&Message) -> bool;
    let cases: [(&str, MessageFilter, usize, Holds); 4] = [
        (
            "failed",
            MessageFilter {
                statuses: vec![MessageState::PermanentFailure],
                ..all.clone()
            },
            5,
            |m| m.status_reason.as_deref() == Some("smtp 550 5.1.1 mailbox unavailable"),
        ),
        (
            "run_*",
            MessageFilter {
                event: Some("run_*".into()),
                ..all.clone()
            },
            16,
            |m| m.event.starts_with("run_"),
        ),
        (
            "bob's",
            MessageFilter {
                user_id: Some(bob.id),
                ..all.clone()
            },
            9,
            |m| m.username.as_deref() == Some("bob") && m.event == "workspace_deleted",
        ),
        (
            "run_failure by inbox",
            MessageFilter {
                method: Some(Method::Inbox),
                event: Some("run_failure".into()),
                ..all
            },
            4,
            |_| true,
        ),
    ];
    for (what, filter, expected, holds) in cases {
        let listed = list(&*store, &filter, 100).await;
        assert_eq!(listed.len(), expected, "{what}");
        assert!(listed.iter().all(holds), "{what}: {listed:?}");
    }

    let counts = store.count_by_state().await?;
    assert_eq!(counts.len(), MessageState::ALL.len());
    assert_eq!(
        (
            count(&counts, MessageState::Pending),
            count(&counts, MessageState::PermanentFailure)
        ),
        (20, 5)
    );
    assert_eq!(count(&counts, MessageState::Sent), 0);
    Ok(())
}

async fn one_message_reads_back_exactly(db: TestDb) -> R {
    let store = migrated(&db).await;
    let bob = store.insert_user(&new_user("bob", &[]), None).await?;
    let t = template_id(&*store, "workspace_deleted").await;
    let m = message(t, Some(bob.id), Method::Smtp, Some("abc"));
    store.enqueue(std::slice::from_ref(&m)).await?;
    let (got, attempts) = store.message(m.id).await?.unwrap();
    assert!(attempts.is_empty());
    assert_eq!(got.id, m.id);
    assert_eq!(got.event, "workspace_deleted");
    assert_eq!(got.username.as_deref(), Some("bob"));
    assert_eq!(got.payload, m.planned.payload);
    assert_eq!(got.dedupe_hash.as_deref(), Some("abc"));
    assert_eq!(got.attempt_count, 0);
    assert_eq!(got.status, MessageState::Pending);
    assert!((got.created_at - m.created_at).num_milliseconds().abs() < 1);
    assert!(store.message(Uuid::now_v7()).await?.is_none());
    Ok(())
}

async fn messages_read_back_by_ids_in_the_order_given(db: TestDb) -> R {
    let store = migrated(&db).await;
    let bob = store.insert_user(&new_user("bob", &[]), None).await?;
    let t = template_id(&*store, "workspace_deleted").await;
    let queued: Vec<NewMessage> = (0..3)
        .map(|i| message(t, Some(bob.id), Method::Smtp, Some(&format!("h{i}"))))
        .collect();
    store.enqueue(&queued).await?;
    let unknown = Uuid::now_v7();
    let ids = [queued[2].id, unknown, queued[0].id];
    let got = store.messages_by_ids(&ids).await?;
    let got_ids: Vec<Uuid> = got.iter().map(|m| m.id).collect();
    assert_eq!(got_ids, [queued[2].id, queued[0].id]);
    let (one, _) = store.message(queued[0].id).await?.unwrap();
    assert_eq!(got[1], one, "the same message as `message` reads");
    assert!(store.messages_by_ids(&[]).await?.is_empty());
    Ok(())
}

async fn users_are_found_by_usernames_in_one_call(db: TestDb) -> R {
    let store = migrated(&db).await;
    let bob = store.insert_user(&new_user("bob", &[]), None).await?;
    let carol = store
        .insert_user(&new_user("carol", &[Role::Owner]), None)
        .await?;
    store.insert_user(&new_user("dave", &[]), None).await?;
    let mut got = store
        .users_by_usernames(&["carol", "nobody", "bob"])
        .await?;
    got.sort_by(|a, b| a.username.cmp(&b.username));
    assert_eq!(got, [bob, carol]);
    assert!(store.users_by_usernames(&[]).await?.is_empty());
    Ok(())
}

async fn retry_moves_only_failed_messages_back_to_pending(db: TestDb) -> R {
    let store = migrated(&db).await;
    let t = template_id(&*store, "run_failure").await;
    let mk = |status| webhook_in(t, status, None);
    let batch = vec![
        mk(MessageState::PermanentFailure),
        mk(MessageState::TemporaryFailure),
        mk(MessageState::Sent),
        mk(MessageState::Inhibited),
        mk(MessageState::Pending),
    ];
    store.enqueue(&batch).await?;
    let ids: Vec<Uuid> = batch.iter().map(|m| m.id).collect();
    let mut changed = store
        .retry_messages(&ids, false, "retried by alice", None)
        .await?;
    changed.sort();
    assert_eq!(changed, vec![ids[0], ids[1]]);
    let (m, _) = store.message(ids[0]).await?.unwrap();
    assert_eq!(m.status, MessageState::Pending);
    assert_eq!(m.status_reason.as_deref(), Some("retried by alice"));
    assert_eq!(m.attempt_count, 0);
    assert_eq!(
        store.message(ids[2]).await?.unwrap().0.status,
        MessageState::Sent
    );
    assert_eq!(
        store.retry_messages(&ids, true, "forced", None).await?,
        vec![ids[3]]
    );
    Ok(())
}

async fn purge_removes_old_messages_and_keeps_fresh_ones(db: TestDb) -> R {
    let store = migrated(&db).await;
    let t = template_id(&*store, "run_start").await;
    let old = finished_days_ago(t, 10);
    let fresh = message(t, None, Method::Webhook, None);
    store.enqueue(&old).await?;
    store.enqueue(std::slice::from_ref(&fresh)).await?;
    assert_eq!(
        store
            .purge_messages(Utc::now() - Duration::days(7), None)
            .await?,
        3
    );
    assert!(store.message(old[0].id).await?.is_none());
    assert!(store.message(fresh.id).await?.is_some());
    assert_eq!(
        store
            .purge_messages(Utc::now() - Duration::days(7), None)
            .await?,
        0
    );
    Ok(())
}

async fn searches_filter_by_reason_and_count_what_they_would_list(db: TestDb) -> R {
    let store = migrated(&db).await;
    let run = template_id(&*store, "run_failure").await;
    let apply = template_id(&*store, "apply_failure").await;
    let failed = |t, reason: &str| webhook_in(t, MessageState::PermanentFailure, Some(reason));
    let batch = vec![
        failed(run, "webhook 503 after 1.2s"),
        failed(run, "webhook 503 after 1.2s"),
        failed(apply, "webhook 503 after 1.2s"),
        failed(run, "smtp 550 5.1.1 mailbox unavailable"),
        message(run, None, Method::Webhook, None),
    ];
    store.enqueue(&batch).await?;
    let all = MessageFilter::default();
    assert_eq!(store.count_messages(&all, None).await?, 5);
    let reason = Some("webhook 503 after 1.2s");
    assert_eq!(store.count_messages(&all, reason).await?, 3);
    let runs = MessageFilter {
        event: Some("run_*".into()),
        statuses: vec![MessageState::PermanentFailure],
        ..MessageFilter::default()
    };
    assert_eq!(store.count_messages(&runs, None).await?, 3);
    assert_eq!(store.count_messages(&runs, reason).await?, 2);
    let page = |before| PageRequest { before, limit: 1 };
    let first = store.search_messages(&runs, reason, page(None)).await?;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].id, batch[1].id, "newest first");
    let second = store
        .search_messages(&runs, reason, page(Some(first[0].id)))
        .await?;
    assert_eq!(second[0].id, batch[0].id);
    assert_eq!(
        store
            .search_messages(
                &all,
                None,
                PageRequest {
                    before: None,
                    limit: 10
                }
            )
            .await?,
        list(&*store, &all, 10).await,
        "without a reason a search is a listing"
    );
    Ok(())
}

async fn top_status_reasons_count_failures_most_frequent_first(db: TestDb) -> R {
    let store = migrated(&db).await;
    let t = template_id(&*store, "run_failure").await;
    let mk = |status, reason: &str| webhook_in(t, status, Some(reason));
    let mut batch = Vec::new();
    for _ in 0..3 {
        batch.push(mk(MessageState::PermanentFailure, "webhook 404"));
    }
    for _ in 0..2 {
        batch.push(mk(MessageState::TemporaryFailure, "webhook 503 after 1.2s"));
    }
    batch.push(mk(MessageState::PermanentFailure, "webhook 503 after 1.2s"));
    batch.push(mk(MessageState::Inhibited, "disabled by user"));
    batch.push(mk(MessageState::Pending, "retried by alice"));
    store.enqueue(&batch).await?;
    let top = store.top_status_reasons(10).await?;
    let seen: Vec<(MessageState, &str, i64)> = top
        .iter()
        .map(|r| (r.status, r.reason.as_str(), r.count))
        .collect();
    assert_eq!(
        seen,
        vec![
            (MessageState::PermanentFailure, "webhook 404", 3),
            (MessageState::TemporaryFailure, "webhook 503 after 1.2s", 2),
            (MessageState::PermanentFailure, "webhook 503 after 1.2s", 1),
        ]
    );
    assert_eq!(store.top_status_reasons(1).await?.len(), 1);
    Ok(())
}

async fn volume_by_event_counts_messages_created_since(db: TestDb) -> R {
    let store = migrated(&db).await;
    let run = template_id(&*store, "run_failure").await;
    let apply = template_id(&*store, "apply_end").await;
    let two_days_ago = Utc::now() - Duration::days(2);
    let old_id = Uuid::new_v7(uuid::Timestamp::from_unix(
        uuid::NoContext,
        u64::try_from(two_days_ago.timestamp())?,
        0,
    ));
    let old = NewMessage {
        id: old_id,
        created_at: two_days_ago,
        ..message(run, None, Method::Webhook, None)
    };
    let batch = vec![
        old,
        message(run, None, Method::Webhook, None),
        message(run, None, Method::Inbox, None),
        message(apply, None, Method::Webhook, None),
    ];
    store.enqueue(&batch).await?;
    let volumes = store
        .volume_by_event(Utc::now() - Duration::hours(24))
        .await?;
    assert_eq!(
        volumes,
        vec![("apply_end".to_string(), 1), ("run_failure".to_string(), 2)]
    );
    assert!(
        store
            .volume_by_event(Utc::now() + Duration::hours(1))
            .await?
            .is_empty()
    );
    Ok(())
}

async fn attempts_since_count_recent_outcomes(db: TestDb) -> R {
    let store = migrated(&db).await;
    run_failures(&*store, 3).await?;
    let notifier = Uuid::now_v7();
    let leased = lease(&*store, notifier, 10).await?;
    assert_eq!(leased.len(), 3);
    let record = |m, started_at, status| AttemptRecord {
        started_at,
        ..outcome(m, notifier, status, None)
    };
    let now = Utc::now();
    store
        .record_attempts(&[
            record(&leased[0], now, MessageState::Sent),
            record(&leased[1], now, MessageState::PermanentFailure),
            record(&leased[2], now - Duration::minutes(10), MessageState::Sent),
        ])
        .await?;
    let counts = store.attempts_since(now - Duration::minutes(1)).await?;
    assert_eq!(counts.len(), MessageState::ALL.len());
    assert_eq!(count(&counts, MessageState::Sent), 1);
    assert_eq!(count(&counts, MessageState::PermanentFailure), 1);
    assert_eq!(count(&counts, MessageState::Pending), 0);
    Ok(())
}

/// `count_by_state` must agree with a count of the rows themselves.
async fn assert_counts_exact(store: &dyn Store, when: &str) -> anyhow::Result<StateCounts> {
    let kept = store.count_by_state().await?;
    assert_eq!(
        kept.len(),
        MessageState::ALL.len(),
        "{when}: every state is present"
    );
    for (state, n) in &kept {
        let filter = MessageFilter {
            statuses: vec![*state],
            ..MessageFilter::default()
        };
        let rows = store.count_messages(&filter, None).await?;
        assert_eq!(
            *n, rows,
            "{when}: {state} is kept as {n} but {rows} rows have it"
        );
    }
    Ok(kept)
}

async fn counts_stay_exact_through_enqueue_lease_ack_retry_and_purge(db: TestDb) -> R {
    let store = migrated(&db).await;
    let t = template_id(&*store, "run_failure").await;
    let with = |status, hash: Option<&str>| {
        let mut m = message(t, None, Method::Webhook, hash);
        m.planned.status = status;
        m
    };
    assert_counts_exact(&*store, "empty").await?;

    let mut batch: Vec<NewMessage> = (0..6)
        .map(|i| with(MessageState::Pending, Some(&format!("p{i}"))))
        .collect();
    batch.push(with(MessageState::Inhibited, None));
    batch.push(with(MessageState::Sent, None));
    store.enqueue(&batch).await?;
    let duplicate = with(MessageState::Pending, Some("p0"));
    assert_eq!(store.enqueue(&[duplicate]).await?.enqueued.len(), 0);
    let refused = vec![
        with(MessageState::Pending, None),
        NewMessage {
            template_id: Uuid::now_v7(),
            ..with(MessageState::Pending, None)
        },
    ];
    assert!(store.enqueue(&refused).await.is_err());
    let counts = assert_counts_exact(&*store, "after enqueue").await?;
    assert_eq!(
        count(&counts, MessageState::Pending),
        6,
        "a duplicate and a failed batch add nothing"
    );

    let notifier = Uuid::now_v7();
    let leased = lease(&*store, notifier, 4).await?;
    assert_eq!(leased.len(), 4);
    let counts = assert_counts_exact(&*store, "after lease").await?;
    assert_eq!(count(&counts, MessageState::Leased), 4);

    // A temporary failure waits an hour, so it stays where the counts read it.
    let record = |m, status| {
        let mut record = outcome(m, notifier, status, Some("webhook 503"));
        if status == MessageState::TemporaryFailure {
            record.result.next_retry_after = Some(Utc::now() + Duration::hours(1));
        }
        record
    };
    store
        .record_attempts(&[
            record(&leased[0], MessageState::Sent),
            record(&leased[1], MessageState::Sent),
            record(&leased[2], MessageState::TemporaryFailure),
            record(&leased[3], MessageState::PermanentFailure),
            // Not leased: the outcome is ignored, and so must the counts ignore it.
            AttemptRecord {
                message_id: batch[7].id,
                lease_token: Uuid::now_v7(),
                ..record(&leased[0], MessageState::PermanentFailure)
            },
        ])
        .await?;
    let counts = assert_counts_exact(&*store, "after ack").await?;
    assert_eq!(
        (
            count(&counts, MessageState::Leased),
            count(&counts, MessageState::Sent)
        ),
        (0, 3)
    );

    let retried = store
        .retry_messages(
            &[leased[2].id, leased[3].id, leased[0].id, batch[6].id],
            false,
            "retried by alice",
            None,
        )
        .await?;
    assert_eq!(retried.len(), 2);
    let counts = assert_counts_exact(&*store, "after retry").await?;
    assert_eq!(count(&counts, MessageState::Pending), 4);

    let old = finished_days_ago(t, 10);
    store.enqueue(&old).await?;
    assert_counts_exact(&*store, "before purge").await?;
    assert_eq!(
        store
            .purge_messages(Utc::now() - Duration::days(7), None)
            .await?,
        3
    );
    let counts = assert_counts_exact(&*store, "after purge").await?;
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    assert_eq!(total, 8);
    Ok(())
}

async fn leases_take_only_what_the_replica_can_deliver(db: TestDb) -> R {
    let store = migrated(&db).await;
    let t = template_id(&*store, "run_failure").await;
    let smtp = message(t, None, Method::Smtp, None);
    let webhook = message(t, None, Method::Webhook, None);
    let ops = {
        let mut m = message(t, None, Method::SlackWebhook, None);
        m.planned.target = Some("ops".into());
        m
    };
    let other = {
        let mut m = message(t, None, Method::SlackWebhook, None);
        m.planned.target = Some("elsewhere".into());
        m
    };
    store
        .enqueue(&[smtp.clone(), webhook.clone(), ops.clone(), other.clone()])
        .await?;
    let partial = Capabilities {
        methods: vec![Method::Webhook, Method::Inbox],
        targets: vec!["ops".into()],
    };
    let waiting = store.undeliverable(&partial).await?;
    assert_eq!(
        waiting
            .iter()
            .map(|w| (w.method, w.target.clone(), w.count))
            .collect::<Vec<_>>(),
        vec![
            (Method::SlackWebhook, Some("elsewhere".to_string()), 1),
            (Method::Smtp, None, 1)
        ]
    );
    assert_eq!(
        waiting[1].describe(),
        "1 smtp message wait: no replica has an smtp channel"
    );
    let notifier = Uuid::now_v7();
    let leased = lease_with(
        &*store,
        notifier,
        10,
        std::time::Duration::from_secs(60),
        5,
        &partial,
    )
    .await?;
    let mut ids: Vec<Uuid> = leased.iter().map(|m| m.id).collect();
    ids.sort();
    let mut expected = vec![webhook.id, ops.id];
    expected.sort();
    assert_eq!(
        ids, expected,
        "only the webhook message and the `ops` target"
    );
    let (untouched, _) = store.message(smtp.id).await?.expect("smtp message");
    assert_eq!(untouched.status, MessageState::Pending);
    assert!(
        store
            .undeliverable(&every_method())
            .await?
            .iter()
            .all(|w| w.target.is_some())
    );
    Ok(())
}

async fn a_late_outcome_never_overwrites_a_newer_lease(db: TestDb) -> R {
    let store = migrated(&db).await;
    let m = run_failures(&*store, 1).await?.remove(0);
    let (slow, fast) = (Uuid::now_v7(), Uuid::now_v7());
    let short = std::time::Duration::from_millis(1);
    let first = lease_with(&*store, slow, 1, short, 5, &every_method()).await?;
    assert_eq!(first.len(), 1);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let second = lease(&*store, fast, 1).await?;
    assert_eq!(second.len(), 1, "the expired lease is taken over");
    assert_ne!(first[0].lease_token, second[0].lease_token);
    assert_eq!(
        second[0].attempt_count, 1,
        "the expired lease counted as an attempt"
    );
    // The slow replica's outcome arrives after the takeover: dropped, counted as late.
    let late = store
        .record_attempts(&[outcome(
            &first[0],
            slow,
            MessageState::PermanentFailure,
            Some("webhook 404"),
        )])
        .await?;
    assert_eq!(late, 1);
    let (now, attempts) = store.message(m.id).await?.expect("message");
    assert_eq!(now.status, MessageState::Leased);
    assert!(attempts.is_empty());
    let late = store
        .record_attempts(&[outcome(&second[0], fast, MessageState::Sent, None)])
        .await?;
    assert_eq!(late, 0);
    let (now, attempts) = store.message(m.id).await?.expect("message");
    assert_eq!(now.status, MessageState::Sent);
    assert_eq!(attempts.len(), 1);
    Ok(())
}

async fn attempt_history_survives_retries(db: TestDb) -> R {
    let store = migrated(&db).await;
    let m = run_failures(&*store, 1).await?.remove(0);
    let notifier = Uuid::now_v7();
    for reason in ["webhook 404 after 0.1s", "webhook 410 after 0.1s"] {
        deliver_one(
            &*store,
            notifier,
            MessageState::PermanentFailure,
            Some(reason),
        )
        .await?;
        store
            .retry_messages(&[m.id], false, "retried by alice", None)
            .await?;
    }
    deliver_one(&*store, notifier, MessageState::Sent, None).await?;
    let (now, attempts) = store.message(m.id).await?.expect("message");
    assert_eq!(now.status, MessageState::Sent);
    assert_eq!(
        attempts
            .iter()
            .map(|a| (a.attempt_number, a.reason.clone()))
            .collect::<Vec<_>>(),
        vec![
            (1, Some("webhook 404 after 0.1s".to_string())),
            (2, Some("webhook 410 after 0.1s".to_string())),
            (3, None)
        ]
    );
    Ok(())
}

async fn purge_never_deletes_what_can_still_be_delivered(db: TestDb) -> R {
    let store = migrated(&db).await;
    let t = template_id(&*store, "run_failure").await;
    let old = |status| NewMessage {
        created_at: Utc::now() - Duration::days(30),
        ..webhook_in(t, status, None)
    };
    let batch: Vec<NewMessage> = MessageState::ALL.iter().map(|s| old(*s)).collect();
    store.enqueue(&batch).await?;
    let notifier = Uuid::now_v7();
    let leased = lease(&*store, notifier, 1).await?;
    assert_eq!(leased.len(), 1);
    // Everything is "older" than a cutoff in the future; only final states may go.
    let purged = store
        .purge_messages(Utc::now() + Duration::days(1), None)
        .await?;
    assert_eq!(purged, 3, "sent, permanent_failure and inhibited");
    for m in &batch {
        let kept = store.message(m.id).await?;
        let is_final = matches!(
            m.planned.status,
            MessageState::Sent | MessageState::PermanentFailure | MessageState::Inhibited
        );
        assert_eq!(kept.is_none(), is_final, "{} message", m.planned.status);
    }
    // The in-flight delivery's outcome still lands.
    let late = store
        .record_attempts(&[outcome(&leased[0], notifier, MessageState::Sent, None)])
        .await?;
    assert_eq!(late, 0);
    Ok(())
}

async fn used_up_attempts_are_finalised_not_stuck(db: TestDb) -> R {
    let store = migrated(&db).await;
    let m = run_failures(&*store, 1).await?.remove(0);
    let notifier = Uuid::now_v7();
    for _ in 0..2 {
        deliver_one(
            &*store,
            notifier,
            MessageState::TemporaryFailure,
            Some("webhook 503 after 0.1s"),
        )
        .await?;
    }
    // max_send_attempts lowered to 2 (a restart with a new config): not leased, finalised.
    let leased = lease_with(
        &*store,
        notifier,
        10,
        std::time::Duration::from_secs(60),
        2,
        &every_method(),
    )
    .await?;
    assert!(leased.is_empty());
    let (now, _) = store.message(m.id).await?.expect("message");
    assert_eq!(now.status, MessageState::PermanentFailure);
    let reason = now.status_reason.unwrap_or_default();
    assert!(reason.contains("gave up after 2 attempts"), "{reason}");
    assert_eq!(
        store.next_due(&every_method()).await?,
        None,
        "nothing left to wake up for"
    );
    Ok(())
}

async fn replicas_are_not_woken_for_what_they_cannot_deliver(db: TestDb) -> R {
    let store = migrated(&db).await;
    let t = template_id(&*store, "run_failure").await;
    store
        .enqueue(&[message(t, None, Method::Smtp, None)])
        .await?;
    let notifier = Uuid::now_v7();
    deliver_one(
        &*store,
        notifier,
        MessageState::TemporaryFailure,
        Some("smtp 451 try later"),
    )
    .await?;
    let webhook_only = Capabilities {
        methods: vec![Method::Webhook],
        targets: vec![],
    };
    assert!(store.next_due(&every_method()).await?.is_some());
    assert_eq!(
        store.next_due(&webhook_only).await?,
        None,
        "a due smtp retry must not wake (and spin) a replica without smtp"
    );
    Ok(())
}

async fn due_retries_get_a_share_of_every_lease(db: TestDb) -> R {
    let store = migrated(&db).await;
    let early = run_failures(&*store, 2).await?;
    let notifier = Uuid::now_v7();
    let leased = lease(&*store, notifier, 2).await?;
    let failed: Vec<AttemptRecord> = leased
        .iter()
        .map(|l| {
            outcome(
                l,
                notifier,
                MessageState::TemporaryFailure,
                Some("webhook 503"),
            )
        })
        .collect();
    store.record_attempts(&failed).await?;
    // A backlog of newer messages arrives after the retries came due.
    run_failures(&*store, 20).await?;
    let leased = lease(&*store, notifier, 8).await?;
    assert_eq!(leased.len(), 8);
    let retried = leased
        .iter()
        .filter(|l| early.iter().any(|e| e.id == l.id))
        .count();
    assert_eq!(retried, 2, "due retries are not starved by the backlog");
    Ok(())
}

/// A token row for `user_id` named `name`, with a hash made of `seed`.
fn api_token(user_id: Uuid, name: &str, seed: char) -> NewApiToken {
    NewApiToken {
        id: Uuid::now_v7(),
        user_id,
        name: name.to_string(),
        token_hash: seed.to_string().repeat(64),
    }
}

/// (username, name, revoked) of each token, in the order listed.
fn token_rows(tokens: &[TokenInfo]) -> Vec<(&str, &str, bool)> {
    tokens
        .iter()
        .map(|t| (t.username.as_str(), t.name.as_str(), t.revoked_at.is_some()))
        .collect()
}

/// Moves every token's `last_used_at` back to 2020, as if unused for years.
async fn age_every_token_use(db: &TestDb) -> R {
    use sqlx::Connection;
    let sql = "UPDATE api_tokens SET last_used_at = '2020-01-01T00:00:00.000000Z'";
    if db.backend == "sqlite" {
        let mut conn = sqlx::SqliteConnection::connect(&db.url).await?;
        sqlx::query(sql).execute(&mut conn).await?;
    } else {
        let mut conn = sqlx::PgConnection::connect(&db.url).await?;
        sqlx::query(sql).execute(&mut conn).await?;
    }
    Ok(())
}

async fn api_tokens_are_found_by_hash_listed_without_it_and_revoked(db: TestDb) -> R {
    let store = migrated(&db).await;
    let alice = store
        .insert_user(&new_user("alice", &[Role::Owner]), None)
        .await?;
    let bob = store
        .insert_user(&new_user("bob", &[Role::Member]), None)
        .await?;
    let ci = api_token(bob.id, "ci", 'a');
    let made = store.insert_api_token(&ci, None).await?;
    assert_eq!((made.id, made.user_id), (ci.id, bob.id));
    assert_eq!((made.username.as_str(), made.name.as_str()), ("bob", "ci"));
    assert!(made.last_used_at.is_none() && made.revoked_at.is_none());
    store
        .insert_api_token(&api_token(bob.id, "deploy", 'b'), None)
        .await?;
    store
        .insert_api_token(&api_token(alice.id, "ci", 'c'), None)
        .await?;

    let all = store.list_api_tokens(None).await?;
    assert_eq!(
        token_rows(&all),
        [
            ("alice", "ci", false),
            ("bob", "ci", false),
            ("bob", "deploy", false)
        ]
    );
    let bobs = store.list_api_tokens(Some(bob.id)).await?;
    assert_eq!(
        token_rows(&bobs),
        [("bob", "ci", false), ("bob", "deploy", false)]
    );

    let (id, user) = store
        .find_live_api_token(&ci.token_hash)
        .await?
        .expect("the live token");
    assert_eq!((id, user), (ci.id, bob.clone()));
    assert!(store.find_live_api_token(&"f".repeat(64)).await?.is_none());
    let used = store.list_api_tokens(Some(bob.id)).await?[0].last_used_at;
    let used = used.expect("a use sets last_used_at");
    assert!(used > Utc::now() - Duration::minutes(1), "{used}");

    // A busy token is written at most once a minute, not once a use.
    store.find_live_api_token(&ci.token_hash).await?;
    let again = store.list_api_tokens(Some(bob.id)).await?[0].last_used_at;
    assert_eq!(
        again,
        Some(used),
        "a second use within the minute writes nothing"
    );
    age_every_token_use(&db).await?;
    store.find_live_api_token(&ci.token_hash).await?;
    let touched = store.list_api_tokens(Some(bob.id)).await?[0].last_used_at;
    assert!(
        touched.is_some_and(|at| at > Utc::now() - Duration::minutes(1)),
        "a stale last_used_at is brought up to date: {touched:?}"
    );

    assert!(store.revoke_api_token(bob.id, "ci", None).await?);
    assert!(
        !store.revoke_api_token(bob.id, "ci", None).await?,
        "already revoked"
    );
    assert!(!store.revoke_api_token(bob.id, "nope", None).await?);
    assert!(
        store.find_live_api_token(&ci.token_hash).await?.is_none(),
        "a revoked token is not found"
    );
    let after = store.list_api_tokens(None).await?;
    assert_eq!(
        token_rows(&after),
        [
            ("alice", "ci", false),
            ("bob", "ci", true),
            ("bob", "deploy", false)
        ],
        "revoking bob's `ci` leaves alice's `ci` alone"
    );
    Ok(())
}

async fn an_api_token_name_is_unique_among_its_users_live_tokens(db: TestDb) -> R {
    let store = migrated(&db).await;
    let bob = store.insert_user(&new_user("bob", &[]), None).await?;
    store
        .insert_api_token(&api_token(bob.id, "ci", 'a'), None)
        .await?;
    match store
        .insert_api_token(&api_token(bob.id, "ci", 'b'), None)
        .await
    {
        Err(StoreError::Conflict(msg)) => assert!(msg.contains("`ci`"), "{msg}"),
        other => anyhow::bail!("expected a conflict, got {other:?}"),
    }
    let mut same_hash = api_token(bob.id, "other", 'a');
    assert!(
        store.insert_api_token(&same_hash, None).await.is_err(),
        "a hash is stored once"
    );
    same_hash.token_hash = "c".repeat(64);
    store.insert_api_token(&same_hash, None).await?;
    assert!(store.revoke_api_token(bob.id, "ci", None).await?);
    let reused = store
        .insert_api_token(&api_token(bob.id, "ci", 'd'), None)
        .await?;
    assert!(
        reused.revoked_at.is_none(),
        "a revoked token's name is free again"
    );
    assert_eq!(store.list_api_tokens(Some(bob.id)).await?.len(), 3);
    Ok(())
}

for_both_backends!(
    api_tokens_are_found_by_hash_listed_without_it_and_revoked,
    an_api_token_name_is_unique_among_its_users_live_tokens,
    leases_take_only_what_the_replica_can_deliver,
    a_late_outcome_never_overwrites_a_newer_lease,
    attempt_history_survives_retries,
    purge_never_deletes_what_can_still_be_delivered,
    used_up_attempts_are_finalised_not_stuck,
    due_retries_get_a_share_of_every_lease,
    replicas_are_not_woken_for_what_they_cannot_deliver,
    existing_mode_requires_a_migrated_store,
    users_are_unique_and_keep_their_roles,
    catalog_upsert_never_clobbers_the_admin_method,
    preferences_are_set_updated_and_cleared,
    the_pause_flag_round_trips,
    enqueue_skips_duplicates_and_names_the_original,
    enqueue_is_all_or_nothing,
    listing_filters_and_pages_by_keyset,
    one_message_reads_back_exactly,
    messages_read_back_by_ids_in_the_order_given,
    users_are_found_by_usernames_in_one_call,
    retry_moves_only_failed_messages_back_to_pending,
    purge_removes_old_messages_and_keeps_fresh_ones,
    searches_filter_by_reason_and_count_what_they_would_list,
    top_status_reasons_count_failures_most_frequent_first,
    volume_by_event_counts_messages_created_since,
    attempts_since_count_recent_outcomes,
    counts_stay_exact_through_enqueue_lease_ack_retry_and_purge,
);

/// The index entries PostgreSQL has read from `notification_messages`' indexes so far. The
/// store's connections are ended first: a backend hands its statistics to the shared counters
/// when it exits (while it idles, up to ten seconds later). The store reconnects when next used.
fn index_entries_read(db: &TestDb) -> i64 {
    let sql = |text: &str| common::psql(&db.url, text).expect("psql");
    sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()");
    for _ in 0..100 {
        let others = sql("SELECT COUNT(*) FROM pg_stat_activity
                          WHERE datname = current_database() AND pid <> pg_backend_pid()");
        if others.trim() == "0" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    sql(
        "SELECT COALESCE(SUM(idx_tup_read), 0) FROM pg_stat_user_indexes
         WHERE relname = 'notification_messages'",
    )
    .trim()
    .parse()
    .expect("a count")
}

/// A burst of messages meets statistics from before it (autovacuum analyzes a minute later at
/// best): they say few messages are pending. The lease must still read its batch from the
/// pending messages' index in order. With a bitmap scan and a sort, PostgreSQL read every
/// pending message for each lease of 100, and the drain slowed as the backlog grew.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_a_lease_reads_its_batch_not_the_backlog_whatever_the_statistics() -> R {
    let db = common::postgres_db();
    let store = migrated(&db).await;
    common::psql(
        &db.url,
        "ALTER TABLE notification_messages SET (autovacuum_enabled = false)",
    )
    .map_err(anyhow::Error::msg)?;
    run_failures(&*store, 3000).await?;
    let before = index_entries_read(&db);
    let leased = lease(&*store, Uuid::now_v7(), 10).await?;
    assert_eq!(leased.len(), 10);
    let read = index_entries_read(&db) - before;
    assert!(
        read < 300,
        "a lease of 10 read {read} index entries of 3,000 pending messages"
    );
    Ok(())
}
