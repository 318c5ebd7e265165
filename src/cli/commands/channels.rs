//! `herald channels status`: every channel's health, as a table or JSON.

use super::*;
use crate::cli::ChannelsCommand;

pub(super) async fn channels(service: &Service, caller: &User, cmd: ChannelsCommand) -> Result<()> {
    let ChannelsCommand::Status(flag) = cmd;
    let report = service.channel_health(caller).await?;
    if flag.json {
        return print_json(&report);
    }
    let mut table = Table::new([
        "CHANNEL",
        "BACKLOG",
        "SENT",
        "TEMP",
        "PERM",
        "P50",
        "P95",
        "PAUSED",
        "LAST ERROR",
    ]);
    let millis = |ms: Option<i64>| ms.map_or("-".to_string(), |ms| format!("{ms}ms"));
    for c in &report.channels {
        let channel = match &c.target {
            Some(target) => format!("target:{target} ({})", c.method),
            None => c.method.to_string(),
        };
        let last_error = match (&c.last_error, c.last_error_at) {
            (Some(reason), Some(at)) => format!("{} {}", short_time(at), shown(reason)),
            (Some(reason), None) => shown(reason),
            (None, _) => "-".to_string(),
        };
        table.row([
            channel,
            c.backlog.to_string(),
            c.sent.to_string(),
            c.temporary_failure.to_string(),
            c.permanent_failure.to_string(),
            millis(c.p50_ms),
            millis(c.p95_ms),
            if c.paused { "PAUSED" } else { "-" }.to_string(),
            last_error,
        ]);
    }
    table.print();
    println!(
        "attempts since {} (the last 15 minutes)",
        short_time(report.since)
    );
    Ok(())
}
