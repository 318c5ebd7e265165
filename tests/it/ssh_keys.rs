//! SSH keys for the console over SSH: the store's `user_ssh_keys` methods on both backends,
//! and `herald users keys add|list|remove` as a user runs them, with keys and fingerprints
//! from the real `ssh-keygen`.

use crate::common;
use crate::for_both_backends;

use chrono::{Duration, Utc};
use common::TestDb;
use common::cli::{ADD_ALICE_AS_OWNER, Run, herald};
use common::ssh::keygen;
use common::store::{migrated, new_user};
use herald::model::Role;
use herald::store::{NewSshKey, SshKeyInfo, StoreError};
use serde_json::Value;
use uuid::Uuid;

type R = anyhow::Result<()>;

/// A key row for `user_id`; `seed` makes the fingerprint (the store does not parse keys).
fn key_row(user_id: Uuid, seed: char, comment: &str) -> NewSshKey {
    NewSshKey {
        id: Uuid::now_v7(),
        user_id,
        public_key: format!("ssh-ed25519 AAAA{}", seed.to_string().repeat(40)),
        fingerprint: format!("SHA256:{}", seed.to_string().repeat(43)),
        comment: comment.to_string(),
    }
}

/// (username, comment) of each key, in the order listed.
fn owners(keys: &[SshKeyInfo]) -> Vec<(&str, &str)> {
    keys.iter()
        .map(|k| (k.username.as_str(), k.comment.as_str()))
        .collect()
}

async fn ssh_keys_are_stored_found_by_fingerprint_touched_and_deleted(db: TestDb) -> R {
    let store = migrated(&db).await;
    let alice = store
        .insert_user(&new_user("alice", &[Role::Owner]), None)
        .await?;
    let bob = store
        .insert_user(&new_user("bob", &[Role::Member]), None)
        .await?;
    let laptop = key_row(bob.id, 'a', "bob@laptop");
    let made = store.insert_ssh_key(&laptop, None).await?;
    assert_eq!((made.id, made.user_id), (laptop.id, bob.id));
    assert_eq!(
        (made.username.as_str(), made.public_key.as_str()),
        ("bob", laptop.public_key.as_str())
    );
    assert_eq!(made.fingerprint, laptop.fingerprint);
    assert!(made.created_at > Utc::now() - Duration::minutes(1));
    assert!(made.last_used_at.is_none());
    store
        .insert_ssh_key(&key_row(bob.id, 'b', "bob@phone"), None)
        .await?;
    store
        .insert_ssh_key(&key_row(alice.id, 'c', "alice@desk"), None)
        .await?;

    let all = store.list_ssh_keys(None).await?;
    assert_eq!(
        owners(&all),
        [
            ("alice", "alice@desk"),
            ("bob", "bob@laptop"),
            ("bob", "bob@phone")
        ]
    );
    let bobs = store.list_ssh_keys(Some(bob.id)).await?;
    assert_eq!(owners(&bobs), [("bob", "bob@laptop"), ("bob", "bob@phone")]);
    let found = store.ssh_key_by_fingerprint(&laptop.fingerprint).await?;
    assert_eq!(found.as_ref(), Some(&made));
    assert!(store.ssh_key_by_fingerprint("SHA256:nope").await?.is_none());

    let (key_id, user) = store
        .ssh_key_owner(&laptop.fingerprint)
        .await?
        .expect("the key's owner");
    assert_eq!((key_id, user), (laptop.id, bob.clone()));
    assert!(store.ssh_key_owner("SHA256:nope").await?.is_none());
    store.touch_ssh_key(laptop.id).await?;
    let used = store.ssh_key_by_fingerprint(&laptop.fingerprint).await?;
    let used = used
        .and_then(|k| k.last_used_at)
        .expect("a login is recorded");
    assert!(used > Utc::now() - Duration::minutes(1), "{used}");

    assert!(store.delete_ssh_key(laptop.id, None).await?);
    assert!(
        !store.delete_ssh_key(laptop.id, None).await?,
        "already gone"
    );
    assert!(store.ssh_key_owner(&laptop.fingerprint).await?.is_none());
    let after = store.list_ssh_keys(None).await?;
    assert_eq!(
        owners(&after),
        [("alice", "alice@desk"), ("bob", "bob@phone")]
    );
    Ok(())
}

async fn an_ssh_key_belongs_to_one_user(db: TestDb) -> R {
    let store = migrated(&db).await;
    let bob = store.insert_user(&new_user("bob", &[]), None).await?;
    let mia = store.insert_user(&new_user("mia", &[]), None).await?;
    let key = key_row(bob.id, 'a', "shared");
    store.insert_ssh_key(&key, None).await?;
    let mut same = key_row(mia.id, 'a', "shared too");
    same.public_key = key.public_key.clone();
    match store.insert_ssh_key(&same, None).await {
        Err(StoreError::Conflict(msg)) => assert!(msg.contains(&key.fingerprint), "{msg}"),
        other => anyhow::bail!("expected a conflict, got {other:?}"),
    }
    assert!(store.list_ssh_keys(Some(mia.id)).await?.is_empty());
    Ok(())
}

/// A migrated store with owner alice, member bob and user-admin dana, and a scratch
/// directory for the commands and the keys.
struct Herald {
    db: TestDb,
    dir: tempfile::TempDir,
}

impl Herald {
    fn new(db: TestDb) -> Herald {
        let h = Herald {
            db,
            dir: tempfile::tempdir().expect("temp dir"),
        };
        h.run(&["migrate"]).ok();
        h.run(&ADD_ALICE_AS_OWNER).ok();
        for (name, role) in [("bob", "member"), ("dana", "user-admin")] {
            let email = format!("{name}@example.com");
            let args = ["users", "add", name, "--email", &email, "--role", role];
            h.run(&[&["--as", "alice"][..], &args].concat()).ok();
        }
        h
    }

    fn run(&self, args: &[&str]) -> Run {
        let mut cmd = herald(self.dir.path(), &["--database-url", &self.db.url]);
        Run::of(cmd.args(args))
    }

    /// `herald --as USER users keys ARGS…`
    fn keys(&self, user: &str, args: &[&str]) -> Run {
        let mut all = vec!["--as", user, "users", "keys"];
        all.extend_from_slice(args);
        self.run(&all)
    }

    /// The fingerprints `herald users keys list [USER] --json` shows `user`.
    fn listed(&self, user: &str, whose: Option<&str>) -> Vec<(String, String)> {
        let mut args = vec!["list", "--json"];
        args.extend(whose);
        let rows = self.keys(user, &args).ok().json();
        let rows = rows.as_array().cloned().unwrap_or_default();
        rows.iter()
            .map(|r| (text(r, "username"), text(r, "fingerprint")))
            .collect()
    }
}

#[track_caller]
fn text(row: &Value, key: &str) -> String {
    row[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {row}"))
        .to_string()
}

async fn users_keys_add_list_and_remove_with_openssh_fingerprints(db: TestDb) {
    let h = Herald::new(db);
    let keys = h.dir.path();
    let bob_key = keygen(keys, "bob_key", "ed25519", "bob@laptop");
    let dana_key = keygen(keys, "dana_key", "ecdsa", "dana@desk");
    let alice_key = keygen(keys, "alice_key", "ed25519", "alice@desk");
    let rsa = keygen(keys, "rsa_key", "rsa", "old@box");

    let added = h
        .keys("bob", &["add", "bob", "--key", &bob_key.public_line])
        .ok();
    assert!(
        added.stdout.contains(&bob_key.fingerprint),
        "the fingerprint ssh-keygen prints:\n{}",
        added.stdout
    );
    h.keys("dana", &["add", "dana", "--key", &dana_key.public_line])
        .ok();
    h.keys("alice", &["add", "alice", "--key", &alice_key.public_line])
        .ok();

    h.keys("bob", &["add", "dana", "--key", &rsa.public_line])
        .fails_with("ssh-rsa keys are not accepted");
    h.keys(
        "bob",
        &["add", "bob", "--key", "ssh-ed25519 AAAAbroken bob"],
    )
    .fails_with("is not an OpenSSH public key");
    h.keys("bob", &["add", "dana", "--key", &bob_key.public_line])
        .fails_with("permission denied");
    h.keys("dana", &["add", "alice", "--key", &bob_key.public_line])
        .fails_with("permission denied");
    h.keys("alice", &["add", "dana", "--key", &bob_key.public_line])
        .fails_with(&format!(
            "the SSH key {} is already added",
            bob_key.fingerprint
        ));
    assert_eq!(h.keys("bob", &["add", "bob"]).code, 2, "--key is required");

    let table = h.keys("bob", &["list"]).ok().stdout;
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or("")
        .split("  ")
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect();
    assert_eq!(
        header,
        [
            "USER",
            "FINGERPRINT",
            "TYPE",
            "COMMENT",
            "ADDED",
            "LAST USED"
        ],
        "{table}"
    );
    assert!(
        table.contains("ssh-ed25519") && table.contains("bob@laptop"),
        "{table}"
    );
    assert!(table.contains("never"), "{table}");
    assert!(
        !table.contains(&bob_key.public_line["ssh-ed25519 ".len()..]),
        "the table shows the fingerprint, not the key:\n{table}"
    );

    let own = vec![("bob".to_string(), bob_key.fingerprint.clone())];
    assert_eq!(h.listed("bob", None), own, "a member sees only their own");
    assert_eq!(h.listed("bob", Some("bob")), own);
    h.keys("bob", &["list", "dana"])
        .fails_with("permission denied");
    let everyone: Vec<String> = h.listed("dana", None).into_iter().map(|r| r.0).collect();
    assert_eq!(everyone, ["alice", "bob", "dana"]);
    assert_eq!(h.listed("dana", Some("bob")), own);

    h.keys("bob", &["remove", &dana_key.fingerprint])
        .fails_with(&format!(
            "no SSH key has the fingerprint {}",
            dana_key.fingerprint
        ));
    h.keys("dana", &["remove", &alice_key.fingerprint])
        .fails_with("permission denied");
    let removed = h.keys("dana", &["remove", &bob_key.fingerprint]).ok();
    assert!(
        removed.stdout.contains("removed bob's SSH key"),
        "{}",
        removed.stdout
    );
    assert!(h.listed("bob", None).is_empty());
    h.keys("bob", &["remove", &bob_key.fingerprint])
        .fails_with("no SSH key has the fingerprint");
    let left: Vec<String> = h.listed("alice", None).into_iter().map(|r| r.0).collect();
    assert_eq!(left, ["alice", "dana"]);
}

for_both_backends!(
    ssh_keys_are_stored_found_by_fingerprint_touched_and_deleted,
    an_ssh_key_belongs_to_one_user,
    users_keys_add_list_and_remove_with_openssh_fingerprints,
);
