//! Labels at the door (DESIGN §3): enqueue admits a message only when its event's required
//! labels were given and every template of every planned message renders with what was given,
//! so a message that was accepted never fails later for a missing label.
//!
//! Pure: the service passes the event (with its declared [`LabelSpec`]s), the config's
//! [`Overrides`] and the planned payloads, and writes nothing when this refuses. Labels the
//! event does not declare are not refused: producers may send more, and they pass through.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value;

use crate::model::{EventSpec, EventTemplate, LabelSpec};
use crate::render::{self, Overrides, RenderError};

/// Why a message was refused at enqueue. Every message names the event and what to add.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    /// Required labels that were not given, in the order the event declares them.
    #[error(
        "event {event} needs the {} {}; add {}",
        plural("label", missing.len()),
        Listed(missing.iter().map(|l| format!("{} ({})", l.name, l.description)).collect()),
        label_flags(missing.iter().map(|l| l.name.as_str()))
    )]
    Missing {
        event: String,
        missing: Vec<LabelSpec>,
    },
    /// A template of a planned message that does not render without labels that were not
    /// given (e.g. one a config override reads unguarded).
    #[error(
        "event {event} needs the {} {}: without {} its {} template fails with \"{}\"; add {}",
        plural("label", labels.len()),
        Listed(labels.clone()),
        if labels.len() == 1 { "it" } else { "them" },
        error.template,
        error.detail,
        label_flags(labels.iter().map(String::as_str))
    )]
    NeededByTemplate {
        event: String,
        /// The fewest labels with which the template renders.
        labels: Vec<String>,
        error: RenderError,
    },
    /// A template of a planned message that does not render with what was given, whichever
    /// labels are added: a value it cannot use, or data it needs.
    #[error(
        "event {event} does not render with the labels and data given: its {} template \
         fails with \"{}\"; check --label and --data (`herald events show {event}` lists \
         what the event reads)",
        error.template,
        error.detail
    )]
    Unrenderable { event: String, error: RenderError },
}

/// Refuses `labels` when one of the labels `spec` requires is missing. An empty value counts
/// as given: the templates print it as it is.
pub fn check_required(
    spec: &EventSpec,
    labels: &BTreeMap<String, String>,
) -> Result<(), LabelError> {
    let missing: Vec<LabelSpec> = spec
        .required_labels()
        .filter(|label| !labels.contains_key(&label.name))
        .cloned()
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(LabelError::Missing {
            event: spec.name.clone(),
            missing,
        })
    }
}

/// Renders every planned message of `event` — `(target, payload)`, the target's qualified name
/// for a target message — as the dispatcher will, with `overrides`, and refuses on the first
/// that fails, naming the labels that would make it render when there are some.
pub fn check_renders<'a>(
    event: &EventTemplate,
    overrides: &Overrides,
    messages: impl IntoIterator<Item = (Option<&'a str>, &'a Value)>,
) -> Result<(), LabelError> {
    let mut last: Option<(Option<&str>, &Value)> = None;
    for (target, payload) in messages {
        // A recipient's methods share one payload: render it once.
        if last == Some((target, payload)) {
            continue;
        }
        last = Some((target, payload));
        let Err(error) = render::render_for(event, overrides, target, payload) else {
            continue;
        };
        let labels = needed_labels(event, overrides, target, payload, &error);
        return Err(if labels.is_empty() {
            LabelError::Unrenderable {
                event: event.spec.name.clone(),
                error,
            }
        } else {
            LabelError::NeededByTemplate {
                event: event.spec.name.clone(),
                labels,
                error,
            }
        });
    }
    Ok(())
}

/// The fewest labels, among those the event's templates read and `payload` lacks, with which
/// the template `failed` renders; none when adding them all does not help.
fn needed_labels(
    event: &EventTemplate,
    overrides: &Overrides,
    target: Option<&str>,
    payload: &Value,
    failed: &RenderError,
) -> Vec<String> {
    let given = payload.get("labels").and_then(Value::as_object);
    let absent: Vec<String> = render::labels_read(&event.spec, overrides)
        .into_iter()
        .filter(|name| given.is_none_or(|labels| !labels.contains_key(name)))
        .collect();
    // Past the failed template: it rendered (a later one may still fail, for its own reasons).
    let renders_with = |added: &BTreeSet<&str>| {
        let mut payload = payload.clone();
        if !payload.get("labels").is_some_and(Value::is_object) {
            payload["labels"] = Value::Object(Default::default());
        }
        for name in added {
            payload["labels"][*name] = Value::String(format!("sample-{name}"));
        }
        match render::render_for(event, overrides, target, &payload) {
            Ok(_) => true,
            Err(error) => error.template != failed.template,
        }
    };
    let mut needed: BTreeSet<&str> = absent.iter().map(String::as_str).collect();
    if !renders_with(&needed) {
        return Vec::new();
    }
    for name in &absent {
        needed.remove(name.as_str());
        if !renders_with(&needed) {
            needed.insert(name);
        }
    }
    needed.into_iter().map(str::to_string).collect()
}

/// `label` or `labels`.
fn plural(noun: &str, count: usize) -> String {
    if count == 1 {
        noun.to_string()
    } else {
        format!("{noun}s")
    }
}

/// `--label a=VALUE --label b=VALUE`.
fn label_flags<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names
        .map(|name| format!("--label {name}=VALUE"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `a`, `a and b`, `a, b and c`.
struct Listed(Vec<String>);

impl fmt::Display for Listed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.split_last() {
            None => Ok(()),
            Some((last, [])) => f.write_str(last),
            Some((last, rest)) => write!(f, "{} and {last}", rest.join(", ")),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use uuid::Uuid;

    use super::*;
    use crate::model::{Action, EventKind};

    fn label(name: &str, required: bool, description: &str) -> LabelSpec {
        LabelSpec {
            name: name.to_string(),
            required,
            description: description.to_string(),
        }
    }

    fn account_created() -> EventTemplate {
        EventTemplate {
            id: Uuid::from_u128(7),
            method: None,
            spec: EventSpec {
                name: "user_account_created".to_string(),
                group: "User Events".to_string(),
                title_template: "User account \"{{ labels.account_name }}\" created".to_string(),
                body_template:
                    "A new account{% if labels.initiator %}, by {{ labels.initiator }}{% endif %}."
                        .to_string(),
                actions: vec![Action::new("View accounts", "{{ base_url }}/users")],
                audience_roles: vec![],
                enabled_by_default: true,
                kind: EventKind::System,
                inbox: true,
                reaches_suspended: false,
                labels: vec![
                    label("account_name", true, "the new account's username"),
                    label("initiator", false, "who created it"),
                ],
            },
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn payload(labels: &BTreeMap<String, String>) -> Value {
        json!({"user_username": "bob", "labels": labels, "data": {}})
    }

    fn overrides(toml: &str) -> Overrides {
        let config = crate::config::Config::from_toml_str(toml, "herald.toml", &|_| None)
            .unwrap_or_else(|e| panic!("{e}"));
        Overrides::from_config(&config).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_missing_required_label_is_refused_naming_it_and_what_to_add() {
        let event = account_created();
        let err = check_required(&event.spec, &labels(&[("initiator", "dana")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "event user_account_created needs the label account_name (the new account's \
             username); add --label account_name=VALUE"
        );
    }

    #[test]
    fn every_missing_required_label_is_named_at_once() {
        let mut spec = account_created().spec;
        spec.labels.push(label("team", true, "the account's team"));
        let err = check_required(&spec, &BTreeMap::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "event user_account_created needs the labels account_name (the new account's \
             username) and team (the account's team); add --label account_name=VALUE \
             --label team=VALUE"
        );
    }

    #[test]
    fn required_labels_given_pass_even_empty_and_with_extra_labels() {
        let spec = account_created().spec;
        for given in [
            labels(&[("account_name", "carol")]),
            labels(&[("account_name", "")]),
            labels(&[("account_name", "carol"), ("ticket", "OPS-12")]),
        ] {
            assert_eq!(check_required(&spec, &given), Ok(()), "{given:?}");
        }
    }

    #[test]
    fn optional_labels_may_be_left_out() {
        let mut spec = account_created().spec;
        spec.labels.retain(|l| !l.required);
        assert_eq!(check_required(&spec, &BTreeMap::new()), Ok(()));
    }

    #[test]
    fn messages_that_render_are_admitted() {
        let event = account_created();
        let given = payload(&labels(&[("account_name", "carol"), ("extra", "x")]));
        let messages = [(None, &given), (None, &given), (Some("ops"), &given)];
        assert_eq!(
            check_renders(&event, &Overrides::default(), messages),
            Ok(())
        );
    }

    #[test]
    fn a_template_that_needs_an_absent_label_is_refused_naming_it() {
        let event = account_created();
        let given = payload(&labels(&[("initiator", "dana")]));
        let err = check_renders(&event, &Overrides::default(), [(None, &given)]).unwrap_err();
        let LabelError::NeededByTemplate { labels, error, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(labels, &["account_name"]);
        assert_eq!(error.template, "title");
        let message = err.to_string();
        assert!(
            message.starts_with(
                "event user_account_created needs the label account_name: without it its title \
                 template fails with \"undefined value"
            ),
            "{message}"
        );
        assert!(
            message.ends_with("\"; add --label account_name=VALUE"),
            "{message}"
        );
    }

    #[test]
    fn an_override_that_reads_an_optional_label_unguarded_makes_it_needed() {
        let event = account_created();
        let overrides = overrides(
            "[events.user_account_created]\nbody_template = \"{{ body }} By {{ labels.initiator }}.\"\n",
        );
        let given = payload(&labels(&[("account_name", "carol")]));
        let err = check_renders(&event, &overrides, [(None, &given)]).unwrap_err();
        assert!(
            matches!(
                &err,
                LabelError::NeededByTemplate { labels, error, .. }
                    if labels == &["initiator"]
                        && error.template == "events.user_account_created.body_template"
            ),
            "{err:?}"
        );
        let with_initiator = payload(&labels(&[("account_name", "carol"), ("initiator", "dana")]));
        assert_eq!(
            check_renders(&event, &overrides, [(None, &with_initiator)]),
            Ok(())
        );
    }

    #[test]
    fn only_the_labels_a_template_lacks_are_named() {
        let mut event = account_created();
        event.spec.title_template =
            "{{ labels.account_name }} {{ labels.team }}{% if labels.initiator %}!{% endif %}"
                .into();
        let err = check_renders(
            &event,
            &Overrides::default(),
            [(None, &payload(&BTreeMap::new()))],
        )
        .unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("needs the labels account_name and team: without them its title"),
            "{message}"
        );
        assert!(
            message.ends_with("add --label account_name=VALUE --label team=VALUE"),
            "{message}"
        );
    }

    #[test]
    fn a_failure_no_label_fixes_is_reported_as_it_is() {
        let mut event = account_created();
        event.spec.body_template = "{{ data.error }}".into();
        let given = payload(&labels(&[("account_name", "carol")]));
        let err = check_renders(&event, &Overrides::default(), [(None, &given)]).unwrap_err();
        assert!(matches!(err, LabelError::Unrenderable { .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.starts_with(
                "event user_account_created does not render with the labels and data given: \
                 its body template fails with \"undefined value"
            ),
            "{message}"
        );
        assert!(
            message.ends_with(
                "check --label and --data (`herald events show user_account_created` lists \
                 what the event reads)"
            ),
            "{message}"
        );
    }

    #[test]
    fn every_planned_message_is_rendered_not_only_the_first() {
        let event = account_created();
        let fine = payload(&labels(&[("account_name", "carol")]));
        let broken = json!({"labels": {}, "data": {}});
        let err = check_renders(
            &event,
            &Overrides::default(),
            [(None, &fine), (Some("ops"), &broken)],
        )
        .unwrap_err();
        assert!(
            matches!(err, LabelError::NeededByTemplate { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn names_are_listed_in_prose() {
        let listed =
            |names: &[&str]| Listed(names.iter().map(|n| n.to_string()).collect()).to_string();
        assert_eq!(listed(&["a"]), "a");
        assert_eq!(listed(&["a", "b"]), "a and b");
        assert_eq!(listed(&["a", "b", "c"]), "a, b and c");
    }
}
