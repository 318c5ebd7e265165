//! SSH keys through the service, on a real SQLite store: parsing and fingerprints (checked
//! against what `ssh-keygen -l` printed for the same keys), who may add, list and remove
//! whose, and which keys authenticate.

use std::sync::Arc;

use super::*;
use crate::config::Config;
use crate::store::{self, OpenMode};

const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGzVw/Wu5ySqJlVEUCYaibJu4CFU+v/EdhRD/AANg0WU ed25519@laptop";
const ED25519_FP: &str = "SHA256:rciiMwqxtNtJEJKcLUDWEmAgQanxzi1xDZ4BzFrlUqw";
const ECDSA_256: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBPN4BOao3gxpFHzswnSz+TKag66ez0dGKitxJXLni0juPw0H/4utNyNthOvIvdqBiXlS1woncwn9JOSs4vxG87k= ecdsab256@laptop";
const ECDSA_256_FP: &str = "SHA256:+7O5UnXTRetJ3C9cxREa/uegYhUSurOQoL4Xa9ynVho";
const ECDSA_384: &str = "ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBEmsazyN8bqZeoNn6VO+1YCS5TNRvzO0xKgza7qSLZunPN3NIt6VE8RiZvjSnUo+JVEslb8Xyt6Weu5eJ+xzfAOaaTvpKy/OxXRKZyb/cNfqq4sOMw95xnFNk8mZncJKjQ== ecdsab384@laptop";
const ECDSA_384_FP: &str = "SHA256:ni0uZM3cf3Z78C2KpzCnRXbZiW3sefs08JLd0p00GZ0";
const NO_COMMENT: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIF1JJ40fcMlCtL0CTKy3uZvVayUOrmT7Czq5cG7KQ5Q6 ";
const NO_COMMENT_FP: &str = "SHA256:Q2nAz8Uz1pCQoBQ0TeR8TibIKwnmCBSLCAriWIPjD4c";
const RSA: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDEFHj5C/VKgUT7aPgkjBd98bwXCh9gnqYtXR6Z0qtLGAXaYpQpoKUeMb1i0XLCVATgYdmMdavCj2248i0e41Uygy0h2ne7EId8frylzDSrK8f5QoGoiEPNjdemws9Hk/XJycxIp7+t71Uc3WtIxm7LLDfc8avQdDyUm8uhe4tDEQ== rsab1024@laptop";

struct Fixture {
    service: Service,
    /// Owner.
    alice: User,
    /// Member.
    bob: User,
    /// User-admin.
    dana: User,
    /// Member.
    mia: User,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("a temp dir");
    let url = format!("sqlite://{}", dir.path().join("herald.db").display());
    let store = store::open(&url, OpenMode::Migrate).await.expect("a store");
    let service = Service::start(store, Arc::new(Config::default()))
        .await
        .expect("a service");
    let add = |name: &str, role: Role| NewUser {
        username: name.to_string(),
        email: format!("{name}@example.com"),
        name: String::new(),
        roles: vec![role],
    };
    let alice = service
        .add_user(None, add("alice", Role::Owner))
        .await
        .expect("alice");
    let mut users = Vec::new();
    for (name, role) in [
        ("bob", Role::Member),
        ("dana", Role::UserAdmin),
        ("mia", Role::Member),
    ] {
        let user = service.add_user(Some(&alice), add(name, role)).await;
        users.push(user.expect("a user"));
    }
    let [bob, dana, mia] = users.try_into().expect("three users");
    Fixture {
        service,
        alice,
        bob,
        dana,
        mia,
        _dir: dir,
    }
}

#[track_caller]
fn assert_invalid<T: std::fmt::Debug>(result: ServiceResult<T>, needle: &str) {
    match result {
        Err(ServiceError::Invalid(text)) => {
            assert!(text.contains(needle), "`{needle}` not in: {text}")
        }
        other => panic!("expected an invalid-input error, got {other:?}"),
    }
}

#[track_caller]
fn assert_forbidden<T: std::fmt::Debug>(result: ServiceResult<T>) {
    match result {
        Err(ServiceError::Forbidden { .. }) => {}
        other => panic!("expected permission denied, got {other:?}"),
    }
}

#[track_caller]
fn assert_unauthenticated(result: ServiceResult<User>, needle: &str) {
    match result {
        Err(ServiceError::Unauthenticated(text)) => {
            assert!(text.contains(needle), "`{needle}` not in: {text}")
        }
        other => panic!("expected unauthenticated, got {other:?}"),
    }
}

fn owners(keys: &[SshKeyInfo]) -> Vec<(&str, &str)> {
    keys.iter()
        .map(|k| (k.username.as_str(), k.fingerprint.as_str()))
        .collect()
}

#[test]
fn fingerprints_match_what_ssh_keygen_prints() {
    for (line, fingerprint, comment) in [
        (ED25519, ED25519_FP, "ed25519@laptop"),
        (ECDSA_256, ECDSA_256_FP, "ecdsab256@laptop"),
        (ECDSA_384, ECDSA_384_FP, "ecdsab384@laptop"),
        (NO_COMMENT, NO_COMMENT_FP, ""),
    ] {
        let parsed = parse_public_key(line).expect(line);
        assert_eq!(parsed.fingerprint, fingerprint, "{line}");
        assert_eq!(parsed.comment, comment, "{line}");
        let bare = line.rsplit_once(' ').map(|(key, _)| key).unwrap_or(line);
        assert_eq!(
            parsed.public_key, bare,
            "the key is kept without its comment"
        );
    }
}

#[test]
fn bad_keys_are_refused_with_what_to_pass_instead() {
    assert_invalid(parse_public_key("  "), "empty");
    assert_invalid(parse_public_key(RSA), "ssh-rsa keys are not accepted");
    assert_invalid(
        parse_public_key("-----BEGIN OPENSSH PRIVATE KEY-----"),
        "that is a private key",
    );
    assert_invalid(
        parse_public_key("ssh-ed25519 AAAAnot-base64!! me@host"),
        "is not an OpenSSH public key",
    );
    assert_invalid(
        parse_public_key(&format!("{ED25519}\n{ECDSA_256}")),
        "one public key line",
    );
    let truncated = &ED25519[..60];
    assert_invalid(parse_public_key(truncated), "is not an OpenSSH public key");
}

#[tokio::test]
async fn everyone_adds_their_own_keys_and_managers_add_others() {
    let f = fixture().await;
    let own = f.service.add_ssh_key(&f.bob, "bob", ED25519).await.unwrap();
    assert_eq!(
        (own.username.as_str(), own.fingerprint.as_str()),
        ("bob", ED25519_FP)
    );
    assert_eq!(own.comment, "ed25519@laptop");
    assert!(own.last_used_at.is_none());

    assert_forbidden(f.service.add_ssh_key(&f.bob, "mia", ECDSA_256).await);
    let by_admin = f
        .service
        .add_ssh_key(&f.dana, "mia", ECDSA_256)
        .await
        .unwrap();
    assert_eq!(by_admin.username, "mia");
    assert_forbidden(f.service.add_ssh_key(&f.dana, "alice", ECDSA_384).await);
    f.service
        .add_ssh_key(&f.alice, "alice", ECDSA_384)
        .await
        .unwrap();

    match f.service.add_ssh_key(&f.alice, "mia", ED25519).await {
        Err(ServiceError::Conflict(text)) => {
            assert!(text.contains(ED25519_FP), "{text}");
            assert!(
                !text.contains("bob"),
                "whose key it is stays private: {text}"
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(matches!(
        f.service.add_ssh_key(&f.alice, "nobody", NO_COMMENT).await,
        Err(ServiceError::UnknownUser { .. })
    ));
}

#[tokio::test]
async fn a_suspended_user_gets_no_new_key() {
    let f = fixture().await;
    f.service
        .set_user_status(&f.alice, "mia", UserStatus::Suspended)
        .await
        .unwrap();
    assert_invalid(
        f.service.add_ssh_key(&f.alice, "mia", ED25519).await,
        "herald users activate mia",
    );
}

#[tokio::test]
async fn members_list_their_own_keys_and_managers_everyones() {
    let f = fixture().await;
    f.service.add_ssh_key(&f.bob, "bob", ED25519).await.unwrap();
    f.service
        .add_ssh_key(&f.mia, "mia", ECDSA_256)
        .await
        .unwrap();
    f.service
        .add_ssh_key(&f.alice, "alice", ECDSA_384)
        .await
        .unwrap();

    let bobs = f.service.list_ssh_keys(&f.bob, None).await.unwrap();
    assert_eq!(owners(&bobs), [("bob", ED25519_FP)]);
    assert_forbidden(f.service.list_ssh_keys(&f.bob, Some("mia")).await);
    let own = f.service.list_ssh_keys(&f.bob, Some("bob")).await.unwrap();
    assert_eq!(owners(&own), [("bob", ED25519_FP)]);

    let all = f.service.list_ssh_keys(&f.dana, None).await.unwrap();
    assert_eq!(
        owners(&all),
        [
            ("alice", ECDSA_384_FP),
            ("bob", ED25519_FP),
            ("mia", ECDSA_256_FP)
        ]
    );
    let mias = f.service.list_ssh_keys(&f.dana, Some("mia")).await.unwrap();
    assert_eq!(owners(&mias), [("mia", ECDSA_256_FP)]);
}

#[tokio::test]
async fn keys_are_removed_by_fingerprint_by_their_user_or_a_manager() {
    let f = fixture().await;
    f.service.add_ssh_key(&f.bob, "bob", ED25519).await.unwrap();
    f.service
        .add_ssh_key(&f.mia, "mia", ECDSA_256)
        .await
        .unwrap();
    f.service
        .add_ssh_key(&f.alice, "alice", ECDSA_384)
        .await
        .unwrap();

    match f.service.remove_ssh_key(&f.bob, ECDSA_256_FP).await {
        Err(ServiceError::NotFound(text)) => assert!(text.contains(ECDSA_256_FP), "{text}"),
        other => panic!("a member cannot remove mia's key: {other:?}"),
    }
    assert_forbidden(f.service.remove_ssh_key(&f.dana, ECDSA_384_FP).await);

    let removed = f.service.remove_ssh_key(&f.bob, ED25519_FP).await.unwrap();
    assert_eq!(removed.username, "bob");
    let base64_only = ECDSA_256_FP.trim_start_matches("SHA256:");
    let removed = f
        .service
        .remove_ssh_key(&f.dana, base64_only)
        .await
        .unwrap();
    assert_eq!(removed.username, "mia");
    assert!(matches!(
        f.service.remove_ssh_key(&f.bob, ED25519_FP).await,
        Err(ServiceError::NotFound(_))
    ));
    let left = f.service.list_ssh_keys(&f.alice, None).await.unwrap();
    assert_eq!(owners(&left), [("alice", ECDSA_384_FP)]);
}

#[tokio::test]
async fn only_added_keys_of_active_users_authenticate() {
    let f = fixture().await;
    f.service.add_ssh_key(&f.bob, "bob", ED25519).await.unwrap();

    let offered = f.service.ssh_key_user(ED25519_FP).await.unwrap();
    assert_eq!(offered.username, "bob");
    let listed = f.service.list_ssh_keys(&f.bob, None).await.unwrap();
    assert!(listed[0].last_used_at.is_none(), "an offer is not a login");

    let user = f.service.authenticate_ssh_key(ED25519_FP).await.unwrap();
    assert_eq!(user.id, f.bob.id);
    let listed = f.service.list_ssh_keys(&f.bob, None).await.unwrap();
    assert!(listed[0].last_used_at.is_some(), "a login is recorded");

    assert_unauthenticated(
        f.service.authenticate_ssh_key(ECDSA_256_FP).await,
        "herald users keys add",
    );
    f.service
        .set_user_status(&f.alice, "bob", UserStatus::Suspended)
        .await
        .unwrap();
    assert_unauthenticated(
        f.service.authenticate_ssh_key(ED25519_FP).await,
        "herald users activate bob",
    );
    assert_unauthenticated(f.service.ssh_key_user(ED25519_FP).await, "suspended");
    f.service
        .set_user_status(&f.alice, "bob", UserStatus::Active)
        .await
        .unwrap();
    f.service.remove_ssh_key(&f.bob, ED25519_FP).await.unwrap();
    assert_unauthenticated(
        f.service.authenticate_ssh_key(ED25519_FP).await,
        "not added to any Herald user",
    );
}
