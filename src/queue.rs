//! The message state machine and retry policy (DESIGN §5), as pure functions.
//!
//! The store applies these decisions in bulk; nothing here does I/O.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::model::{DeliveryOutcome, MessageState};

/// How often and how far apart deliveries are tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_send_attempts: u32,
    pub retry_interval: Duration,
    /// No computed wait (a peer's `Retry-After` included) is longer than this.
    pub max_retry_delay: Duration,
}

/// The longest `status_reason` written: longer peer text is cut (with `…`).
pub const MAX_REASON_CHARS: usize = 500;

/// Text from a peer (a response body, an SMTP reply, a Slack error) made safe to store, log
/// and print: control characters (NUL, terminal escape sequences, C1 controls, bidi overrides)
/// are removed, whitespace runs become one space, and the result is cut to `max_chars`.
pub fn clean_text(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars + 8));
    let mut chars = text.chars().peekable();
    let mut count = 0;
    let mut space = false;
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // An escape sequence: CSI (ESC [ … final), OSC (ESC ] … BEL or ESC \\), or ESC
            // plus one character.
            if chars.next_if_eq(&'[').is_some() {
                for p in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&p) {
                        break;
                    }
                }
            } else if chars.next_if_eq(&']').is_some() {
                while let Some(p) = chars.next() {
                    if p == '\u{7}' || (p == '\u{1b}' && chars.next_if_eq(&'\\').is_some()) {
                        break;
                    }
                }
            } else {
                chars.next();
            }
            continue;
        }
        if c.is_whitespace() {
            space = !out.is_empty();
            continue;
        }
        if c.is_control()
            || ('\u{202a}'..='\u{202e}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c)
        {
            continue;
        }
        if space {
            if count + 1 >= max_chars {
                out.push('…');
                return out;
            }
            out.push(' ');
            count += 1;
            space = false;
        }
        if count + 1 > max_chars {
            out.push('…');
            return out;
        }
        out.push(c);
        count += 1;
    }
    out
}

/// Where a message goes after one delivery attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptResult {
    pub status: MessageState,
    pub status_reason: Option<String>,
    /// `attempt_count` after this attempt.
    pub attempt_count: i32,
    pub next_retry_after: Option<DateTime<Utc>>,
}

/// The transition out of `leased` for a message that had `attempts_before` attempts and just
/// had one more with `outcome`.
///
/// A retryable failure with attempts left waits `retry_interval` (or the peer's longer
/// `Retry-After`); the last allowed failure is permanent, and the reason says so.
pub fn after_attempt(
    attempts_before: i32,
    outcome: &DeliveryOutcome,
    policy: &RetryPolicy,
    now: DateTime<Utc>,
) -> AttemptResult {
    let attempt_count = attempts_before.saturating_add(1);
    match outcome {
        DeliveryOutcome::Sent => AttemptResult {
            status: MessageState::Sent,
            status_reason: None,
            attempt_count,
            next_retry_after: None,
        },
        DeliveryOutcome::Permanent { reason } => AttemptResult {
            status: MessageState::PermanentFailure,
            status_reason: Some(clean_text(reason, MAX_REASON_CHARS)),
            attempt_count,
            next_retry_after: None,
        },
        DeliveryOutcome::Retryable {
            reason,
            retry_after,
        } => {
            let reason = clean_text(reason, MAX_REASON_CHARS);
            if attempt_count >= max_attempts(policy) {
                return AttemptResult {
                    status: MessageState::PermanentFailure,
                    status_reason: Some(format!(
                        "{reason} (gave up after {attempt_count} attempts; max_send_attempts is {})",
                        policy.max_send_attempts
                    )),
                    attempt_count,
                    next_retry_after: None,
                };
            }
            let wait = retry_after
                .map_or(policy.retry_interval, |hint| {
                    hint.max(policy.retry_interval)
                })
                .min(policy.max_retry_delay);
            let wait = chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
            AttemptResult {
                status: MessageState::TemporaryFailure,
                status_reason: Some(reason),
                attempt_count,
                next_retry_after: Some(
                    now.checked_add_signed(wait)
                        .unwrap_or(DateTime::<Utc>::MAX_UTC),
                ),
            }
        }
    }
}

fn max_attempts(policy: &RetryPolicy) -> i32 {
    i32::try_from(policy.max_send_attempts.max(1)).unwrap_or(i32::MAX)
}

/// Whether a dispatcher may lease the message now (the store's lease query says the same in SQL).
pub fn is_leasable(
    status: MessageState,
    attempt_count: i32,
    leased_until: Option<DateTime<Utc>>,
    next_retry_after: Option<DateTime<Utc>>,
    policy: &RetryPolicy,
    now: DateTime<Utc>,
) -> bool {
    if attempt_count >= max_attempts(policy) {
        return false;
    }
    match status {
        MessageState::Pending => true,
        MessageState::TemporaryFailure => next_retry_after.is_none_or(|t| t <= now),
        MessageState::Leased => leased_until.is_some_and(|t| t < now),
        MessageState::Sent | MessageState::PermanentFailure | MessageState::Inhibited => false,
    }
}

/// Whether an operator's retry may move a message in `status` back to `pending`.
pub fn can_retry(status: MessageState, force: bool) -> Result<(), String> {
    match status {
        MessageState::TemporaryFailure | MessageState::PermanentFailure => Ok(()),
        MessageState::Inhibited if force => Ok(()),
        MessageState::Inhibited => {
            Err("inhibited (the recipient opted out); add --force to deliver it anyway".into())
        }
        other => Err(format!("{other}: only failed messages can be retried")),
    }
}

/// The `status_reason` of a leased message.
pub fn leased_reason(notifier_id: uuid::Uuid) -> String {
    format!("leased by notifier {notifier_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_send_attempts: 3,
            retry_interval: Duration::from_secs(300),
            max_retry_delay: Duration::from_secs(3600),
        }
    }

    /// (attempts before, outcome, status, attempts after, next retry, reason contains)
    type Case = (
        i32,
        DeliveryOutcome,
        MessageState,
        i32,
        Option<DateTime<Utc>>,
        &'static str,
    );

    fn retryable(hint: Option<u64>) -> DeliveryOutcome {
        DeliveryOutcome::Retryable {
            reason: "webhook 503 after 0.2s".into(),
            retry_after: hint.map(Duration::from_secs),
        }
    }

    #[test]
    fn every_outcome_moves_a_leased_message_as_the_state_diagram_says() {
        let now = Utc::now();
        let five_min = now + chrono::Duration::seconds(300);
        let permanent = DeliveryOutcome::Permanent {
            reason: "webhook 404 after 0.1s".into(),
        };
        // (attempts before, outcome, status, attempts after, next retry, reason contains)
        let table: Vec<Case> = vec![
            (0, DeliveryOutcome::Sent, MessageState::Sent, 1, None, ""),
            (2, DeliveryOutcome::Sent, MessageState::Sent, 3, None, ""),
            (
                0,
                retryable(None),
                MessageState::TemporaryFailure,
                1,
                Some(five_min),
                "webhook 503",
            ),
            (
                1,
                retryable(None),
                MessageState::TemporaryFailure,
                2,
                Some(five_min),
                "webhook 503",
            ),
            (
                2,
                retryable(None),
                MessageState::PermanentFailure,
                3,
                None,
                "gave up after 3 attempts",
            ),
            (
                0,
                permanent.clone(),
                MessageState::PermanentFailure,
                1,
                None,
                "webhook 404",
            ),
            (
                0,
                retryable(Some(900)),
                MessageState::TemporaryFailure,
                1,
                Some(now + chrono::Duration::seconds(900)),
                "503",
            ),
            // An absurd Retry-After waits no longer than max_retry_delay.
            (
                0,
                retryable(Some(99_999_999_999)),
                MessageState::TemporaryFailure,
                1,
                Some(now + chrono::Duration::seconds(3600)),
                "503",
            ),
            // A Retry-After shorter than retry_interval does not hurry the retry.
            (
                0,
                retryable(Some(1)),
                MessageState::TemporaryFailure,
                1,
                Some(five_min),
                "503",
            ),
        ];
        for (before, outcome, status, after, next, reason) in table {
            let got = after_attempt(before, &outcome, &policy(), now);
            assert_eq!(got.status, status, "{before} {outcome:?}");
            assert_eq!(got.attempt_count, after, "{before} {outcome:?}");
            assert_eq!(got.next_retry_after, next, "{before} {outcome:?}");
            match status {
                MessageState::Sent => assert_eq!(got.status_reason, None),
                _ => assert!(
                    got.status_reason.as_deref().unwrap().contains(reason),
                    "{got:?}"
                ),
            }
        }
    }

    #[test]
    fn temporary_failure_becomes_permanent_after_max_attempts() {
        let now = Utc::now();
        let mut attempts = 0;
        let mut states = Vec::new();
        for _ in 0..3 {
            let r = after_attempt(attempts, &retryable(None), &policy(), now);
            attempts = r.attempt_count;
            states.push(r.status);
        }
        assert_eq!(
            states,
            [
                MessageState::TemporaryFailure,
                MessageState::TemporaryFailure,
                MessageState::PermanentFailure
            ]
        );
    }

    #[test]
    fn leasable_states_match_the_design() {
        let now = Utc::now();
        let past = Some(now - chrono::Duration::seconds(1));
        let future = Some(now + chrono::Duration::seconds(60));
        let p = policy();
        let table = [
            (MessageState::Pending, 0, None, None, true),
            (MessageState::Pending, 3, None, None, false),
            (MessageState::TemporaryFailure, 1, None, past, true),
            (MessageState::TemporaryFailure, 1, None, future, false),
            (MessageState::Leased, 0, past, None, true),
            (MessageState::Leased, 0, future, None, false),
            (MessageState::Sent, 1, None, None, false),
            (MessageState::PermanentFailure, 1, None, None, false),
            (MessageState::Inhibited, 0, None, None, false),
        ];
        for (status, attempts, leased_until, retry_after, expected) in table {
            assert_eq!(
                is_leasable(status, attempts, leased_until, retry_after, &p, now),
                expected,
                "{status} attempts={attempts}"
            );
        }
    }

    #[test]
    fn only_failed_messages_are_retried_and_inhibited_ones_need_force() {
        assert!(can_retry(MessageState::PermanentFailure, false).is_ok());
        assert!(can_retry(MessageState::TemporaryFailure, false).is_ok());
        assert!(
            can_retry(MessageState::Inhibited, false)
                .unwrap_err()
                .contains("--force")
        );
        assert!(can_retry(MessageState::Inhibited, true).is_ok());
        assert!(can_retry(MessageState::Sent, true).is_err());
        assert!(can_retry(MessageState::Pending, false).is_err());
    }

    #[test]
    fn peer_text_loses_controls_and_escapes_and_is_bounded() {
        let hostile = "bad\0request \u{1b}[31mred\u{1b}[0m\r\n\tnext\u{7}\u{9b}\u{202e}end";
        assert_eq!(clean_text(hostile, 100), "badrequest red nextend");
        let long = "x".repeat(2_000);
        let cut = clean_text(&long, MAX_REASON_CHARS);
        assert_eq!(cut.chars().count(), MAX_REASON_CHARS + 1);
        assert!(cut.ends_with('…'));
        assert_eq!(clean_text("  a   b  ", 10), "a b");
        assert_eq!(clean_text("ünïcødé ok", 100), "ünïcødé ok");
    }

    #[test]
    fn reasons_written_to_the_store_are_clean() {
        let outcome = DeliveryOutcome::Permanent {
            reason: "webhook 400: \0\u{1b}]0;title\u{7}body".into(),
        };
        let got = after_attempt(0, &outcome, &policy(), Utc::now());
        let reason = got.status_reason.unwrap();
        assert!(
            !reason.contains('\0') && !reason.contains('\u{1b}'),
            "{reason:?}"
        );
        assert_eq!(reason, "webhook 400: body");
    }
}
