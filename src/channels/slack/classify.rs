//! What Slack's answers mean: sent, retryable or permanent, with a hint an operator can act on;
//! secrets scrubbed from every quote.

use super::*;

/// What an incoming webhook's answer means: 2xx sent; 408, 429 and 5xx retryable (after the
/// peer's `Retry-After`); anything else (404 `no_service`, 403, 410 …) permanent, quoting the
/// answer and, for the codes Slack documents, what to do.
pub(super) fn classify_webhook(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> DeliveryOutcome {
    let quoted = body_excerpt(body);
    let mut reason = format!("slack webhook {status}");
    if !quoted.is_empty() {
        reason.push_str(": ");
        reason.push_str(&quoted);
    }
    match status {
        200..=299 => DeliveryOutcome::Sent,
        408 | 429 | 500..=599 => DeliveryOutcome::Retryable {
            reason,
            retry_after: retry_after.and_then(|v| parse_retry_after(v, now)),
        },
        _ => {
            if let Some(hint) = webhook_error_hint(&quoted) {
                reason.push_str(&format!(" ({hint})"));
            }
            DeliveryOutcome::Permanent { reason }
        }
    }
}

/// What to do about an incoming webhook's error code.
pub(super) fn webhook_error_hint(code: &str) -> Option<&'static str> {
    Some(match code {
        "no_service" | "invalid_token" | "no_team" | "team_disabled" => {
            "the webhook was disabled or removed: create a new incoming webhook and update the \
             target's url"
        }
        "channel_not_found" => {
            "the webhook's channel was deleted: create an incoming webhook for another channel"
        }
        "channel_is_archived" => {
            "the webhook's channel is archived: unarchive it or create a webhook for another \
             channel"
        }
        "action_prohibited" | "posting_to_general_channel_denied" => {
            "the workspace restricts who may post in the webhook's channel"
        }
        _ => return None,
    })
}

/// What a `chat.postMessage` answer means: `{"ok":true}` sent; `ok:false` with a transient
/// error (`ratelimited`, `internal_error` …), HTTP 429 or 5xx retryable (after the peer's
/// `Retry-After`); any other `ok:false` error permanent, saying what to do for the common ones;
/// an answer that is not Slack's JSON retryable, quoting it.
pub(super) fn classify_api(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    channel: &str,
    now: DateTime<Utc>,
) -> DeliveryOutcome {
    const WHAT: &str = "slack chat.postMessage";
    let retry_after = retry_after.and_then(|v| parse_retry_after(v, now));
    let answer: Option<Value> = serde_json::from_slice(body).ok();
    // Slack puts `ok` first; an echo longer than the read limit is still a success.
    let ok = match &answer {
        Some(answer) => answer.get("ok").and_then(Value::as_bool),
        None => body.starts_with(b"{\"ok\":true,").then_some(true),
    };
    let error = answer
        .as_ref()
        .and_then(|a| a.get("error"))
        .and_then(Value::as_str);
    match (ok, error) {
        (Some(true), _) if (200..300).contains(&status) => DeliveryOutcome::Sent,
        (Some(false), Some(error)) => {
            let error = body_excerpt(error.as_bytes());
            if RETRYABLE_API_ERRORS.contains(&error.as_str()) || status == 429 || status >= 500 {
                return DeliveryOutcome::Retryable {
                    reason: format!("{WHAT}: {error}"),
                    retry_after,
                };
            }
            let mut reason = format!("{WHAT}: {error}");
            let detail = answer
                .as_ref()
                .and_then(|a| a.pointer("/response_metadata/messages"))
                .and_then(Value::as_array)
                .map(|messages| {
                    let joined: Vec<&str> = messages.iter().filter_map(Value::as_str).collect();
                    body_excerpt(joined.join("; ").as_bytes())
                })
                .filter(|detail| !detail.is_empty());
            match (api_error_hint(&error, channel), detail) {
                (Some(hint), Some(detail)) => reason.push_str(&format!(" ({hint}: {detail})")),
                (Some(hint), None) => reason.push_str(&format!(" ({hint})")),
                (None, Some(detail)) => reason.push_str(&format!(" ({detail})")),
                (None, None) => {}
            }
            DeliveryOutcome::Permanent { reason }
        }
        _ if status == 429 => DeliveryOutcome::Retryable {
            reason: format!("{WHAT}: ratelimited (HTTP 429)"),
            retry_after,
        },
        _ => {
            let quoted = body_excerpt(body);
            let mut reason = if (500..600).contains(&status) {
                format!("{WHAT}: HTTP {status}")
            } else {
                format!("{WHAT}: unexpected answer (HTTP {status})")
            };
            if !quoted.is_empty() {
                reason.push_str(": ");
                reason.push_str(&quoted);
            }
            DeliveryOutcome::Retryable {
                reason,
                retry_after,
            }
        }
    }
}

/// What to do about a permanent `chat.postMessage` error.
pub(super) fn api_error_hint(error: &str, channel: &str) -> Option<String> {
    Some(match error {
        "channel_not_found" => format!(
            "no channel `{channel}` the app can see: check the target's channel (a channel id \
             like C0123456789, or a member id like U0123456789) and invite the app to private \
             channels"
        ),
        "not_in_channel" => format!(
            "invite the app to `{channel}` (/invite @your-app) or give it the chat:write.public \
             scope"
        ),
        "is_archived" => {
            format!("`{channel}` is archived: unarchive it or point the target at another channel")
        }
        "invalid_auth" | "not_authed" => {
            "the token is not valid: check the target's token".to_string()
        }
        "account_inactive" => {
            "the token belongs to a deactivated user or workspace: issue a new token".to_string()
        }
        "token_revoked" | "token_expired" => {
            "the token is no longer valid: issue a new one and update the target's token"
                .to_string()
        }
        "missing_scope" => {
            "the token lacks the chat:write scope: add it to the app and reinstall it".to_string()
        }
        "not_allowed_token_type" => "use a bot token (xoxb-…) for the target".to_string(),
        "restricted_action" | "ekm_access_denied" => {
            format!("the workspace does not let the app post in `{channel}`")
        }
        "cannot_dm_bot" => format!("`{channel}` is a bot, which cannot get direct messages"),
        "msg_too_long" => "the message is longer than Slack accepts".to_string(),
        "no_text" => "the message had no text".to_string(),
        "invalid_blocks" | "invalid_blocks_format" => {
            "Slack rejected the message's blocks".to_string()
        }
        _ => return None,
    })
}

/// `outcome` with [`scrub`]bed reason: a peer or an error may echo the URL or the token.
pub(super) fn scrub_outcome(outcome: DeliveryOutcome, secrets: &[&str]) -> DeliveryOutcome {
    http::scrub_reason(outcome, |reason| scrub(reason, secrets))
}
