//! The service layer's unit tests.

use super::*;

#[test]
fn typos_get_a_suggestion() {
    let known = ["workspace_deleted", "workspace_created", "run_failure"];
    assert_eq!(
        did_you_mean("workspace_deleteed", known.iter().copied()),
        " (did you mean `workspace_deleted`?)"
    );
    assert_eq!(did_you_mean("zzz", known.iter().copied()), "");
}

#[test]
fn data_must_be_a_json_object() {
    assert!(parse_data(Some("{\"a\": 1}")).is_ok());
    assert!(
        parse_data(Some("[1]"))
            .unwrap_err()
            .to_string()
            .contains("JSON object")
    );
    assert!(
        parse_data(Some("{oops"))
            .unwrap_err()
            .to_string()
            .contains("not valid JSON")
    );
}

#[test]
fn usernames_are_checked() {
    assert!(validate_username("bob.smith-2").is_ok());
    assert!(validate_username("bob smith").is_err());
    assert!(validate_username("").is_err());
}
