//! `herald tokens …`: make (printing the token once), list and revoke API tokens.

use super::*;
use crate::service::TokenInfo;

pub(super) async fn tokens(service: &Service, caller: &User, cmd: TokensCommand) -> Result<()> {
    match cmd {
        TokensCommand::Create { name, user, json } => {
            let (info, secret) = service.create_token(caller, &name, user.as_deref()).await?;
            if json {
                let mut row = serde_json::to_value(&info)?;
                row["token"] = json!(secret.expose());
                return print_json(&row);
            }
            let user_flag = if info.user_id == caller.id {
                String::new()
            } else {
                format!(" --user {}", info.username)
            };
            println!(
                "created API token `{}` for {}:\n\n    {}\n\n\
                 It is shown only this once (Herald keeps only its SHA-256): copy it now.\n\
                 Send it as the header `Authorization: Bearer <token>`, e.g.\n    \
                 curl -H \"Authorization: Bearer $HERALD_TOKEN\" http://HOST:PORT/api/v1/events\n\
                 Revoke it with `herald tokens revoke {}{user_flag}`.",
                info.name,
                info.username,
                secret.expose(),
                info.name,
            );
            Ok(())
        }
        TokensCommand::List(flag) => {
            let tokens = service.list_tokens(caller).await?;
            if flag.json {
                return print_json(&tokens);
            }
            token_table(&tokens).print();
            Ok(())
        }
        TokensCommand::Revoke { name, user } => {
            let owner = service.revoke_token(caller, &name, user.as_deref()).await?;
            println!(
                "revoked {}'s API token `{name}`: requests that send it are refused from now on",
                owner.username
            );
            Ok(())
        }
    }
}

/// NAME, USER, CREATED, LAST USED, REVOKED; never the token or its hash.
fn token_table(tokens: &[TokenInfo]) -> Table {
    let mut table = Table::new(["NAME", "USER", "CREATED", "LAST USED", "REVOKED"]);
    for t in tokens {
        table.row([
            t.name.clone(),
            t.username.clone(),
            short_time(t.created_at),
            t.last_used_at.map_or("never".to_string(), short_time),
            t.revoked_at.map_or("-".to_string(), short_time),
        ]);
    }
    table
}
