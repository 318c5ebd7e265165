//! `herald notifications …`, `herald doctor` and `herald inbox …`.

use super::*;
use crate::cli::ChannelArgs;
use crate::model::PauseScope;

pub(super) async fn notifications(
    service: &Service,
    caller: &User,
    cmd: NotificationsCommand,
) -> Result<()> {
    match cmd {
        NotificationsCommand::Pause(channel) => match scoped(&channel) {
            None => {
                service.set_paused(caller, true).await?;
                println!(
                    "notifications paused: no replica delivers until `herald notifications resume`"
                );
            }
            Some((scope, name)) => {
                let fresh = service.pause_channel(caller, scope, &name).await?;
                let already = if fresh { "" } else { " (it was already)" };
                println!(
                    "{scope} {name} paused{already}: its messages stay pending on every replica until `herald notifications resume --{scope} {name}`; the rest keeps delivering"
                );
            }
        },
        NotificationsCommand::Resume(channel) => match scoped(&channel) {
            None => {
                service.set_paused(caller, false).await?;
                println!("notifications resumed");
            }
            Some((scope, name)) => {
                if service.resume_channel(caller, scope, &name).await? {
                    println!("{scope} {name} resumed: its held messages are delivered now");
                } else {
                    println!("{scope} {name} was not paused; nothing changed");
                }
            }
        },
        NotificationsCommand::Status(flag) => {
            let settings = service.notifier_status(caller).await?;
            let pauses = service.channel_pauses(caller).await?;
            if flag.json {
                return print_json(&json!({
                    "notifier_paused": settings.notifier_paused,
                    "updated_at": settings.updated_at,
                    "channel_pauses": pauses,
                }));
            }
            let state = if settings.notifier_paused {
                "paused"
            } else {
                "running"
            };
            println!(
                "notifications {state} (since {})",
                short_time(settings.updated_at)
            );
            for p in &pauses {
                println!(
                    "{} {} paused by {} since {}",
                    p.scope,
                    p.name,
                    p.paused_by,
                    short_time(p.paused_at)
                );
            }
        }
        NotificationsCommand::Test { method, json } => {
            let report = service.send_test(caller, method).await?;
            print_enqueued(&report, json)?;
        }
        NotificationsCommand::Custom {
            title,
            message,
            json,
        } => {
            let report = service.send_custom(caller, &title, &message).await?;
            print_enqueued(&report, json)?;
        }
    }
    Ok(())
}

/// The scope and name a pause or resume names; None for everything.
fn scoped(channel: &ChannelArgs) -> Option<(PauseScope, String)> {
    match (&channel.method, &channel.target) {
        (Some(method), _) => Some((PauseScope::Method, method.to_string())),
        (None, Some(target)) => Some((PauseScope::Target, target.clone())),
        (None, None) => None,
    }
}

pub(super) async fn doctor(service: &Service, caller: &User, json: bool) -> Result<()> {
    let results = service.doctor(caller).await?;
    let failed = results.iter().filter(|r| !r.ok).count();
    if json {
        print_json(&results)?;
    } else {
        for r in &results {
            let verdict = if r.ok { " ok " } else { "FAIL" };
            println!("[{verdict}] {}: {}", r.check, r.detail);
        }
    }
    if failed > 0 {
        bail!("{failed} of {} checks failed", results.len());
    }
    if !json {
        println!("all {} checks passed", results.len());
    }
    Ok(())
}

pub(super) async fn inbox(service: &Service, caller: &User, cmd: InboxCommand) -> Result<()> {
    match cmd {
        InboxCommand::List {
            unread,
            read,
            limit,
            json,
        } => {
            let filter = match (unread, read) {
                (true, _) => InboxFilter::Unread,
                (_, true) => InboxFilter::Read,
                _ => InboxFilter::All,
            };
            let entries = service.inbox(caller, filter, limit).await?;
            if json {
                return print_json(&entries);
            }
            if entries.is_empty() {
                println!("your inbox is empty");
                return Ok(());
            }
            let mut table = Table::new(["ID", "RECEIVED", "READ", "EVENT", "TITLE"]);
            for e in &entries {
                table.row([
                    e.id.to_string(),
                    short_time(e.created_at),
                    if e.read_at.is_some() { "yes" } else { "new" }.to_string(),
                    e.event.clone(),
                    e.title.clone(),
                ]);
            }
            table.print();
            Ok(())
        }
        InboxCommand::Read { id } => {
            service.mark_inbox(caller, &id, true).await?;
            println!("marked {id} read");
            Ok(())
        }
        InboxCommand::Unread { id } => {
            service.mark_inbox(caller, &id, false).await?;
            println!("marked {id} unread");
            Ok(())
        }
    }
}
