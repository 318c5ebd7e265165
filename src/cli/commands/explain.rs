//! `herald explain`: who would get what for an event and why, as a table or JSON.

use super::*;
use crate::cli::ExplainArgs;

pub(super) async fn explain(service: &Service, caller: &User, args: ExplainArgs) -> Result<()> {
    let explanation = service.explain(caller, &event_input(args.event)).await?;
    if args.json {
        return print_json(&explanation);
    }
    if explanation.decisions.is_empty() {
        println!(
            "{}: no candidates: no users exist and no target is declared",
            explanation.event
        );
    }
    let mut table = Table::new(["RECIPIENT", "METHOD", "DECISION", "WHY"]);
    for d in &explanation.decisions {
        table.row([
            d.recipient.clone(),
            d.method.map_or("-".to_string(), |m| m.to_string()),
            d.decision.to_string(),
            d.reason.clone().unwrap_or_default(),
        ]);
    }
    table.print();
    for warning in &explanation.warnings {
        println!("warning: {warning}");
    }
    println!("nothing was written (explain only looks)");
    Ok(())
}
