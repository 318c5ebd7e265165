//! `herald audit list`: the audit trail, newest first, as a table or JSON.

use super::*;
use crate::cli::AuditListArgs;
use crate::service::{AuditFilter, AuditRecord, audit_detail_words, audit_via};

pub(super) async fn audit_list(
    service: &Service,
    caller: &User,
    args: AuditListArgs,
) -> Result<()> {
    let before = match &args.before {
        Some(id) => Some(uuid::Uuid::parse_str(id).with_context(|| {
            format!(
                "--before `{id}` is not an audit row id; the hint under the last page gives one"
            )
        })?),
        None => None,
    };
    let since = match &args.since {
        Some(text) => {
            let age = crate::config::parse_duration(text)
                .map_err(|why| anyhow::anyhow!("--since: {why}"))?;
            let age = chrono::Duration::from_std(age).ok();
            Some(
                age.and_then(|age| Utc::now().checked_sub_signed(age))
                    .with_context(|| {
                        format!("--since {text} reaches before any date the store can hold")
                    })?,
            )
        }
        None => None,
    };
    let filter = AuditFilter {
        actor: args.actor,
        action: args.action,
        since,
    };
    // One row more than asked tells whether another page exists.
    let page = PageRequest {
        before,
        limit: args.limit.saturating_add(1),
    };
    let mut rows = service.audit_log(caller, &filter, page).await?;
    let more = rows.len() > args.limit as usize;
    rows.truncate(args.limit as usize);
    if args.json {
        print_json(&rows)?;
    } else if rows.is_empty() {
        println!("no audit rows");
    } else {
        audit_table(&rows).print();
    }
    if more && let Some(last) = rows.last() {
        eprintln!("more: --before {}", last.id);
    }
    Ok(())
}

/// AT, ACTOR, ACTION, SUBJECT, VIA, DETAIL (the rest of the detail as `key=value`).
fn audit_table(rows: &[AuditRecord]) -> Table {
    let mut table = Table::new(["AT", "ACTOR", "ACTION", "SUBJECT", "VIA", "DETAIL"]);
    for r in rows {
        table.row([
            short_time(r.at),
            r.actor.clone(),
            r.action.clone(),
            r.subject.clone(),
            audit_via(r).to_string(),
            shown(&audit_detail_words(r)),
        ]);
    }
    table
}
