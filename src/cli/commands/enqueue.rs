//! `herald enqueue`: report an event; prints what was queued and what was a duplicate.

use super::*;
use crate::cli::EventArgs;

pub(super) async fn enqueue(service: &Service, caller: &User, args: EnqueueArgs) -> Result<()> {
    let report = service.enqueue(caller, &event_input(args.event)).await?;
    print_enqueued(&report, args.json)
}

/// The event of `herald enqueue` or `herald explain`, as the service takes it.
pub(super) fn event_input(args: EventArgs) -> EnqueueInput {
    EnqueueInput {
        event: args.event,
        users: args.users,
        actor: args.actor,
        labels: args.labels,
        data: args.data,
    }
}

/// Prints what an enqueue created: JSON `{"enqueued": [...], "duplicates": [...]}` or lines.
pub(super) fn print_enqueued(report: &EnqueueReport, json: bool) -> Result<()> {
    if json {
        return print_json(&json!({
            "enqueued": report.enqueued,
            "duplicates": report.duplicates,
        }));
    }
    if report.enqueued.is_empty() && report.duplicates.is_empty() {
        println!("no recipients: nobody is addressed by this event and no target subscribes to it");
    }
    for m in &report.enqueued {
        println!(
            "enqueued {}  {}  {}  {}",
            m.id,
            recipient(m),
            m.method,
            status_text(m)
        );
    }
    for id in &report.duplicates {
        println!("duplicate of {id} (identical message already queued today)");
    }
    Ok(())
}
