//! API tokens through the service, on a real SQLite store: who may make, list and revoke
//! whose, and which tokens authenticate.

use std::sync::Arc;

use super::*;
use crate::config::Config;
use crate::store::{self, OpenMode};

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

fn names(tokens: &[TokenInfo]) -> Vec<(String, String)> {
    tokens
        .iter()
        .map(|t| (t.username.clone(), t.name.clone()))
        .collect()
}

fn pair(user: &str, name: &str) -> (String, String) {
    (user.to_string(), name.to_string())
}

#[tokio::test]
async fn a_member_makes_uses_lists_and_revokes_their_own_token() {
    let f = fixture().await;
    let (info, secret) = f.service.create_token(&f.bob, "ci", None).await.unwrap();
    assert_eq!((info.username.as_str(), info.name.as_str()), ("bob", "ci"));
    assert_eq!(info.user_id, f.bob.id);
    assert!(info.revoked_at.is_none() && info.last_used_at.is_none());
    assert!(well_formed(secret.expose()), "{}", secret.expose().len());

    let caller = f.service.authenticate_token(secret.expose()).await.unwrap();
    assert_eq!(caller, f.bob);
    let listed = f.service.list_tokens(&f.bob).await.unwrap();
    assert_eq!(names(&listed), [pair("bob", "ci")]);
    assert!(listed[0].last_used_at.is_some(), "a use is recorded");

    let whose = f.service.revoke_token(&f.bob, "ci", None).await.unwrap();
    assert_eq!(whose.username, "bob");
    assert_unauthenticated(
        f.service.authenticate_token(secret.expose()).await,
        "unknown or revoked",
    );
    let listed = f.service.list_tokens(&f.bob).await.unwrap();
    assert!(
        listed[0].revoked_at.is_some(),
        "a revoked token stays listed"
    );
    let again = f.service.revoke_token(&f.bob, "ci", None).await;
    match again {
        Err(ServiceError::Invalid(text)) => {
            assert!(text.contains("no live API token named `ci`"), "{text}")
        }
        other => panic!("a second revoke should say there is none: {other:?}"),
    }
}

#[tokio::test]
async fn a_member_cannot_make_list_or_revoke_another_users_tokens() {
    let f = fixture().await;
    f.service.create_token(&f.mia, "ci", None).await.unwrap();
    f.service.create_token(&f.bob, "mine", None).await.unwrap();
    assert_forbidden(f.service.create_token(&f.bob, "x", Some("mia")).await);
    assert_forbidden(f.service.revoke_token(&f.bob, "ci", Some("mia")).await);
    let seen = f.service.list_tokens(&f.bob).await.unwrap();
    assert_eq!(names(&seen), [pair("bob", "mine")], "only their own");
    // Naming oneself is the same as naming nobody.
    let (mine, _) = f
        .service
        .create_token(&f.bob, "other", Some("bob"))
        .await
        .unwrap();
    assert_eq!(mine.username, "bob");
}

#[tokio::test]
async fn a_user_admin_manages_members_tokens_but_not_an_owners() {
    let f = fixture().await;
    let (info, secret) = f
        .service
        .create_token(&f.dana, "deploy", Some("bob"))
        .await
        .unwrap();
    assert_eq!(info.username, "bob");
    let caller = f.service.authenticate_token(secret.expose()).await.unwrap();
    assert_eq!(caller.username, "bob", "the token acts as bob, not dana");
    f.service
        .create_token(&f.alice, "root", None)
        .await
        .unwrap();

    let seen = f.service.list_tokens(&f.dana).await.unwrap();
    assert_eq!(
        names(&seen),
        [pair("alice", "root"), pair("bob", "deploy")],
        "user-admins see everyone's"
    );
    // A token acts with every role of its user: a user-admin must not mint an owner's.
    assert_forbidden(f.service.create_token(&f.dana, "x", Some("alice")).await);
    assert_forbidden(f.service.revoke_token(&f.dana, "root", Some("alice")).await);

    f.service
        .revoke_token(&f.dana, "deploy", Some("bob"))
        .await
        .unwrap();
    assert_unauthenticated(
        f.service.authenticate_token(secret.expose()).await,
        "unknown or revoked",
    );
}

#[tokio::test]
async fn an_owner_manages_everyones_tokens() {
    let f = fixture().await;
    f.service
        .create_token(&f.alice, "ops", Some("dana"))
        .await
        .unwrap();
    f.service.create_token(&f.mia, "ci", None).await.unwrap();
    let seen = f.service.list_tokens(&f.alice).await.unwrap();
    assert_eq!(names(&seen), [pair("dana", "ops"), pair("mia", "ci")]);
    f.service
        .revoke_token(&f.alice, "ci", Some("mia"))
        .await
        .unwrap();
    match f.service.create_token(&f.alice, "x", Some("nobody")).await {
        Err(ServiceError::UnknownUser { name, .. }) => assert_eq!(name, "nobody"),
        other => panic!("expected an unknown user, got {other:?}"),
    }
}

#[tokio::test]
async fn a_suspended_users_token_is_refused_until_they_are_reactivated() {
    let f = fixture().await;
    let (_, secret) = f.service.create_token(&f.bob, "ci", None).await.unwrap();
    f.service
        .set_user_status(&f.alice, "bob", UserStatus::Suspended)
        .await
        .unwrap();
    assert_unauthenticated(
        f.service.authenticate_token(secret.expose()).await,
        "`bob` is suspended",
    );
    match f.service.create_token(&f.alice, "new", Some("bob")).await {
        Err(ServiceError::Invalid(text)) => assert!(text.contains("herald users activate bob")),
        other => panic!("no token for a suspended user: {other:?}"),
    }
    f.service
        .set_user_status(&f.alice, "bob", UserStatus::Active)
        .await
        .unwrap();
    let caller = f.service.authenticate_token(secret.expose()).await.unwrap();
    assert_eq!(caller.username, "bob");
}

#[tokio::test]
async fn malformed_and_unknown_tokens_are_refused_with_what_to_do() {
    let f = fixture().await;
    let (_, secret) = f.service.create_token(&f.bob, "ci", None).await.unwrap();
    let real = secret.expose();
    let digits = &real[TOKEN_PREFIX.len()..];
    let malformed = [
        String::new(),
        "Bearer".to_string(),
        digits.to_string(),
        format!("herald-{digits}"),
        format!("{TOKEN_PREFIX}{}", digits.to_uppercase()),
        real[..real.len() - 1].to_string(),
        format!("{real}0"),
        format!("{TOKEN_PREFIX}{}", "g".repeat(64)),
    ];
    for token in &malformed {
        assert_unauthenticated(f.service.authenticate_token(token).await, "malformed");
    }
    let unknown = format!("{TOKEN_PREFIX}{}", "0".repeat(64));
    assert_unauthenticated(
        f.service.authenticate_token(&unknown).await,
        "herald tokens create NAME",
    );
    // What a header parser may leave around it is not part of the token.
    let padded = format!(" {real}\n");
    assert_eq!(
        f.service
            .authenticate_token(&padded)
            .await
            .unwrap()
            .username,
        "bob"
    );
}

#[tokio::test]
async fn token_names_are_checked_and_unique_among_a_users_live_tokens() {
    let f = fixture().await;
    for bad in ["", "a b", "ci/prod", "tökén", &"x".repeat(65)] {
        match f.service.create_token(&f.bob, bad, None).await {
            Err(ServiceError::Invalid(text)) => {
                assert!(text.contains("not a valid token name"), "{text}")
            }
            other => panic!("{bad:?} should be refused: {other:?}"),
        }
    }
    f.service
        .create_token(&f.bob, &"x".repeat(64), None)
        .await
        .unwrap();
    f.service
        .create_token(&f.bob, "ci.v2-a_b", None)
        .await
        .unwrap();
    f.service
        .create_token(&f.mia, "ci.v2-a_b", None)
        .await
        .unwrap();
    match f
        .service
        .create_token(&f.dana, "ci.v2-a_b", Some("bob"))
        .await
    {
        Err(ServiceError::Conflict(text)) => {
            assert!(text.contains("bob already has a live API token"), "{text}");
            assert!(
                text.contains("herald tokens revoke ci.v2-a_b --user bob"),
                "{text}"
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    f.service
        .revoke_token(&f.bob, "ci.v2-a_b", None)
        .await
        .unwrap();
    f.service
        .create_token(&f.bob, "ci.v2-a_b", None)
        .await
        .unwrap();
    let bobs = f.service.list_tokens(&f.bob).await.unwrap();
    let revoked = bobs.iter().filter(|t| t.revoked_at.is_some()).count();
    assert_eq!((bobs.len(), revoked), (3, 1));
}

#[tokio::test]
async fn secrets_are_random_and_never_listed_or_printed() {
    let f = fixture().await;
    let (one, first) = f.service.create_token(&f.bob, "one", None).await.unwrap();
    let (_, second) = f.service.create_token(&f.bob, "two", None).await.unwrap();
    assert_ne!(first.expose(), second.expose());
    assert_eq!(format!("{first:?} {first}"), "<redacted> <redacted>");
    let listed = serde_json::to_string(&f.service.list_tokens(&f.bob).await.unwrap()).unwrap();
    let shown = format!("{listed} {one:?}");
    for secret in [&first, &second] {
        let digits = &secret.expose()[TOKEN_PREFIX.len()..];
        assert!(!shown.contains(digits), "the secret leaked: {shown}");
        assert!(!shown.contains(&token_hash(secret.expose())), "{shown}");
    }
}

#[test]
fn the_stored_hash_is_the_sha256_of_the_whole_token() {
    assert_eq!(
        token_hash("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let secret = new_secret().unwrap();
    assert!(well_formed(secret.expose()));
    assert_eq!(token_hash(secret.expose()).len(), 64);
}
