//! `herald events list|show`: the catalog, each event's labels, templates and actions.

use super::*;
use crate::service::json::event_json;

pub(super) async fn events_list(service: &Service, caller: &User, json: bool) -> Result<()> {
    crate::runtime::checked_templates(service).await?;
    let events = service.events(caller).await?;
    let default = service.default_method();
    if json {
        let rows: Vec<_> = events.iter().map(|e| event_json(e, default)).collect();
        return print_json(&rows);
    }
    let mut table = Table::new(["EVENT", "GROUP", "METHOD", "AUDIENCE", "ENABLED"]);
    for e in &events {
        table.row([
            e.spec.name.clone(),
            e.spec.group.clone(),
            method_text(e.method, default),
            e.spec
                .audience_roles
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(","),
            if e.spec.enabled_by_default {
                "yes"
            } else {
                "no (opt-in)"
            }
            .to_string(),
        ]);
    }
    table.print();
    Ok(())
}

pub(super) async fn events_show(
    service: &Service,
    caller: &User,
    name: &str,
    json: bool,
) -> Result<()> {
    let event = service.event(caller, name).await?;
    let default = service.default_method();
    if json {
        return print_json(&event_json(&event, default));
    }
    let spec = &event.spec;
    let yes_no = |yes: bool| if yes { "yes" } else { "no" };
    println!("event:               {}", spec.name);
    println!("group:               {}", spec.group);
    println!("kind:                {}", spec.kind);
    println!(
        "audience:            {}",
        if spec.audience_roles.is_empty() {
            "only the users named with --user (and subscribed targets)".to_string()
        } else {
            let roles: Vec<&str> = spec.audience_roles.iter().map(|r| r.as_str()).collect();
            format!("{} (besides the users named)", roles.join(", "))
        }
    );
    println!(
        "method:              {}",
        method_text(event.method, default)
    );
    println!(
        "enabled by default:  {}",
        if spec.enabled_by_default {
            "yes"
        } else {
            "no (users opt in)"
        }
    );
    println!("inbox copy:          {}", yes_no(spec.inbox));
    println!("reaches suspended:   {}", yes_no(spec.reaches_suspended));
    if spec.labels.is_empty() {
        println!("labels:              none");
    } else {
        println!("labels:");
        let mut table = Table::new(["LABEL", "", "DESCRIPTION"]);
        for label in &spec.labels {
            table.row([
                label.name.clone(),
                if label.required {
                    "required"
                } else {
                    "optional"
                }
                .to_string(),
                label.description.clone(),
            ]);
        }
        print!("{}", indented(&table.render(), 2));
    }
    println!("title template:");
    print!("{}", indented(&spec.title_template, 2));
    println!("body template:");
    print!("{}", indented(&spec.body_template, 2));
    if spec.actions.is_empty() {
        println!("actions:             none");
    } else {
        println!("actions:");
        let mut table = Table::new(["LABEL", "URL"]);
        for action in &spec.actions {
            table.row([action.label.clone(), action.url.clone()]);
        }
        print!("{}", indented(&table.render(), 2));
    }
    let mut example = format!("herald enqueue {}", spec.name);
    for label in spec.required_labels() {
        example.push_str(&format!(" --label {}=VALUE", label.name));
    }
    if spec.audience_roles.is_empty() {
        example.push_str(" --user USER");
    }
    println!("enqueue it:");
    print!("{}", indented(&example, 2));
    Ok(())
}
