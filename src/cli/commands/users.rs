//! `herald users …` (with `users keys`), `herald prefs …` and `herald optout …`.

use super::*;
use crate::cli::KeysCommand;
use crate::service::SshKeyInfo;

pub(super) async fn users(service: &Service, caller: &User, cmd: UsersCommand) -> Result<()> {
    match cmd {
        UsersCommand::Add { .. } => Ok(()),
        UsersCommand::List(flag) => {
            let users = service.list_users(caller).await?;
            if flag.json {
                return print_json(&users);
            }
            let mut table = Table::new(["USERNAME", "EMAIL", "NAME", "ROLES", "STATUS"]);
            for u in &users {
                table.row([
                    u.username.clone(),
                    u.email.clone(),
                    u.name.clone(),
                    roles_text(u),
                    u.status.to_string(),
                ]);
            }
            table.print();
            Ok(())
        }
        UsersCommand::Suspend { username } => {
            set_status(service, caller, &username, UserStatus::Suspended).await
        }
        UsersCommand::Activate { username } => {
            set_status(service, caller, &username, UserStatus::Active).await
        }
        UsersCommand::Keys(cmd) => keys(service, caller, cmd).await,
    }
}

/// `herald users keys add|list|remove`.
async fn keys(service: &Service, caller: &User, cmd: KeysCommand) -> Result<()> {
    match cmd {
        KeysCommand::Add { username, key } => {
            let info = service.add_ssh_key(caller, &username, &key).await?;
            println!(
                "added the SSH key {} to {}: `ssh -p PORT HOST` with it opens the console as {}",
                info.fingerprint, info.username, info.username
            );
            Ok(())
        }
        KeysCommand::List { username, json } => {
            let keys = service.list_ssh_keys(caller, username.as_deref()).await?;
            if json {
                return print_json(&keys);
            }
            key_table(&keys).print();
            Ok(())
        }
        KeysCommand::Remove { fingerprint } => {
            let info = service.remove_ssh_key(caller, &fingerprint).await?;
            println!(
                "removed {}'s SSH key {}: logins with it are refused from now on",
                info.username, info.fingerprint
            );
            Ok(())
        }
    }
}

/// USER, FINGERPRINT, TYPE, COMMENT, ADDED, LAST USED.
fn key_table(keys: &[SshKeyInfo]) -> Table {
    let mut table = Table::new([
        "USER",
        "FINGERPRINT",
        "TYPE",
        "COMMENT",
        "ADDED",
        "LAST USED",
    ]);
    for k in keys {
        let kind = k.public_key.split(' ').next().unwrap_or_default();
        table.row([
            k.username.clone(),
            k.fingerprint.clone(),
            kind.to_string(),
            k.comment.clone(),
            short_time(k.created_at),
            k.last_used_at.map_or("never".to_string(), short_time),
        ]);
    }
    table
}

/// `herald users suspend|activate`.
async fn set_status(
    service: &Service,
    caller: &User,
    username: &str,
    status: UserStatus,
) -> Result<()> {
    service.set_user_status(caller, username, status).await?;
    match status {
        UserStatus::Suspended => {
            println!("suspended {username}: they no longer act or receive notifications")
        }
        UserStatus::Active => println!("activated {username}"),
    }
    Ok(())
}

pub(super) async fn prefs(service: &Service, caller: &User, cmd: PrefsCommand) -> Result<()> {
    match cmd {
        PrefsCommand::List(flag) => {
            let events = service.events(caller).await?;
            let default = service.default_method();
            if flag.json {
                let rows: Vec<_> = events
                    .iter()
                    .map(|e| {
                        json!({
                            "name": e.spec.name,
                            "group": e.spec.group,
                            "method": e.method,
                            "effective_method": e.method.unwrap_or(default),
                        })
                    })
                    .collect();
                return print_json(&rows);
            }
            let mut table = Table::new(["EVENT", "GROUP", "METHOD"]);
            for e in &events {
                table.row([
                    e.spec.name.clone(),
                    e.spec.group.clone(),
                    method_text(e.method, default),
                ]);
            }
            table.print();
            Ok(())
        }
        PrefsCommand::Set { event, method } => {
            let method = if method == "default" {
                None
            } else {
                Some(method.parse::<Method>()?)
            };
            let updated = service.set_event_method(caller, &event, method).await?;
            println!(
                "{} now goes by {}",
                updated.spec.name,
                method_text(updated.method, service.default_method())
            );
            Ok(())
        }
    }
}

pub(super) async fn optout(service: &Service, caller: &User, cmd: OptoutCommand) -> Result<()> {
    match cmd {
        OptoutCommand::List { user, json } => {
            let (subject, entries) = service.opt_outs(caller, user.as_deref()).await?;
            if json {
                let rows: Vec<_> = entries
                    .iter()
                    .map(|e| crate::service::json::opt_out_json(&subject, e))
                    .collect();
                return print_json(&rows);
            }
            let mut table = Table::new(["EVENT", "GROUP", "YOU GET IT", "WHY"]);
            for e in &entries {
                let why = match e.preference {
                    Some(true) => "opted out",
                    Some(false) => "opted in",
                    None if e.event.spec.enabled_by_default => "default",
                    None => "off by default",
                };
                table.row([
                    e.event.spec.name.clone(),
                    e.event.spec.group.clone(),
                    if e.enabled { "yes" } else { "no" }.to_string(),
                    why.to_string(),
                ]);
            }
            println!("opt-outs of {}:", subject.username);
            table.print();
            Ok(())
        }
        OptoutCommand::Set { event, user } => {
            set_opt_out(service, caller, &event, user.as_deref(), true).await
        }
        // Clearing an opt-out of an event that is off by default would leave it off, so
        // clearing means "I want it": an explicit opt-in.
        OptoutCommand::Clear { event, user } => {
            set_opt_out(service, caller, &event, user.as_deref(), false).await
        }
    }
}

/// `herald optout set|clear`: `disabled` opts out, otherwise in.
async fn set_opt_out(
    service: &Service,
    caller: &User,
    event: &str,
    user: Option<&str>,
    disabled: bool,
) -> Result<()> {
    let subject = service.set_opt_out(caller, event, user, disabled).await?;
    if disabled {
        println!("{} opted out of {event}", subject.username);
    } else {
        println!("{} receives {event} again", subject.username);
    }
    Ok(())
}
