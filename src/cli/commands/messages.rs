//! `herald messages list|show|retry|purge`.

use super::*;

pub(super) async fn messages(service: &Service, caller: &User, cmd: MessagesCommand) -> Result<()> {
    match cmd {
        MessagesCommand::List(args) => messages_list(service, caller, args).await,
        MessagesCommand::Show { id, json } => {
            let (message, attempts) = service.message(caller, &id).await?;
            if json {
                return print_json(&crate::service::json::message_json(&message, &attempts));
            }
            println!("id:               {}", message.id);
            println!("event:            {}", message.event);
            println!("recipient:        {}", recipient(&message));
            println!("method:           {}", message.method);
            println!("status:           {}", message.status);
            println!(
                "status_reason:    {}",
                message.status_reason.as_deref().map_or("-".into(), shown)
            );
            println!("attempt_count:    {}", message.attempt_count);
            println!("created_at:       {}", message.created_at.to_rfc3339());
            println!("updated_at:       {}", message.updated_at.to_rfc3339());
            if let Some(t) = message.leased_until {
                println!("leased_until:     {}", t.to_rfc3339());
            }
            if let Some(t) = message.next_retry_after {
                println!("next_retry_after: {}", t.to_rfc3339());
            }
            println!("created_by:       {}", message.created_by);
            println!(
                "payload:\n{}",
                serde_json::to_string_pretty(&message.payload)?
            );
            if attempts.is_empty() {
                println!("attempts:         none yet");
            } else {
                let mut table = Table::new(["#", "STARTED", "DURATION", "OUTCOME", "REASON"]);
                for a in &attempts {
                    table.row([
                        a.attempt_number.to_string(),
                        short_time(a.started_at),
                        format!("{}ms", a.duration_ms),
                        a.outcome.to_string(),
                        a.reason.as_deref().map(shown).unwrap_or_default(),
                    ]);
                }
                table.print();
            }
            Ok(())
        }
        MessagesCommand::Retry(args) => retry(service, caller, args).await,
        MessagesCommand::Purge { older_than } => {
            let age = match older_than {
                Some(text) => crate::config::parse_duration(&text)
                    .map_err(|why| anyhow::anyhow!("--older-than: {why}"))?,
                None => service.config().notifications.retention,
            };
            let cutoff = chrono::Duration::from_std(age)
                .ok()
                .and_then(|age| Utc::now().checked_sub_signed(age))
                .with_context(|| {
                    format!(
                        "a cut-off {} ago is before any date the store can hold",
                        humantime::format_duration(age)
                    )
                })?;
            let purged = service.purge_messages(caller, cutoff).await?;
            println!(
                "purged {} messages last changed before {} and {} audit rows written before it",
                purged.messages,
                short_time(cutoff),
                purged.audit_rows
            );
            Ok(())
        }
    }
}

pub(super) async fn messages_list(service: &Service, caller: &User, args: ListArgs) -> Result<()> {
    let before = match &args.before {
        Some(id) => Some(
            uuid::Uuid::parse_str(id)
                .with_context(|| format!("--before `{id}` is not a message id"))?,
        ),
        None => None,
    };
    let filter = MessageFilter {
        statuses: args.statuses,
        event: args.event,
        user_id: None,
        method: args.method,
        target: None,
    };
    let page = PageRequest {
        before,
        limit: args.limit,
    };
    let list = service
        .list_messages(caller, filter, args.user.as_deref(), page)
        .await?;
    let list = service.titled(list).await?;
    if args.json {
        return print_json(&list);
    }
    if list.is_empty() {
        println!("no messages");
        return Ok(());
    }
    let mut table = Table::new([
        "ID",
        "CREATED",
        "EVENT",
        "TITLE",
        "RECIPIENT",
        "METHOD",
        "STATUS",
        "ATTEMPTS",
        "REASON",
    ]);
    for t in &list {
        let m = &t.message;
        table.row([
            m.id.to_string(),
            short_time(m.created_at),
            m.event.clone(),
            t.title.clone(),
            recipient(m),
            m.method.to_string(),
            m.status.to_string(),
            m.attempt_count.to_string(),
            m.status_reason.as_deref().map(shown).unwrap_or_default(),
        ]);
    }
    table.print();
    if list.len() == args.limit as usize
        && let Some(last) = list.last()
    {
        eprintln!("more: --before {}", last.message.id);
    }
    Ok(())
}

pub(super) async fn retry(service: &Service, caller: &User, args: RetryArgs) -> Result<()> {
    if let Some(status) = args.status {
        let filter = MessageFilter {
            statuses: vec![status],
            event: args.event,
            ..MessageFilter::default()
        };
        let n = service.retry_matching(caller, &filter, args.force).await?;
        println!("retried {n} messages");
        return Ok(());
    }
    let report = service
        .retry_messages(caller, &args.ids, args.force)
        .await?;
    for id in &report.retried {
        println!("retried {id}");
    }
    for (id, why) in &report.skipped {
        eprintln!("not retried {id}: {why}");
    }
    if report.retried.is_empty() {
        bail!("no message was retried");
    }
    Ok(())
}
