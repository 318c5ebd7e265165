//! The placeholder dialect expands to each backend's SQL.

use super::{Dialect, Statement};

#[test]
fn parameters_become_each_backends_placeholders() {
    let template = "SELECT a FROM t WHERE b = $1 AND c = $12";
    assert_eq!(
        Statement::expand(Dialect::Postgres, template).text,
        template
    );
    let sqlite = Statement::expand(Dialect::Sqlite, template);
    assert_eq!(sqlite.text, "SELECT a FROM t WHERE b = ?1 AND c = ?12");
    assert!(!sqlite.binds_now);
}

#[test]
fn now_is_the_servers_clock_on_postgres_and_a_parameter_after_the_last_on_sqlite() {
    let template = "UPDATE t SET a = $1, at = {now} WHERE id = $2 AND until < {now}";
    let postgres = Statement::expand(Dialect::Postgres, template);
    assert_eq!(
        postgres.text,
        "UPDATE t SET a = $1, at = now() WHERE id = $2 AND until < now()"
    );
    assert!(!postgres.binds_now);
    let sqlite = Statement::expand(Dialect::Sqlite, template);
    assert_eq!(
        sqlite.text,
        "UPDATE t SET a = ?1, at = ?3 WHERE id = ?2 AND until < ?3"
    );
    assert!(sqlite.binds_now);
}

#[test]
fn later_and_any_expand_to_each_backends_form() {
    let template = "SET until = {later $1} WHERE m {any $2}";
    assert_eq!(
        Statement::expand(Dialect::Postgres, template).text,
        "SET until = now() + $1 * interval '1 millisecond' WHERE m = ANY ($2)"
    );
    let sqlite = Statement::expand(Dialect::Sqlite, template);
    assert_eq!(
        sqlite.text,
        "SET until = ?1 WHERE m IN (SELECT value FROM json_each(?2))"
    );
    assert!(
        sqlite.binds_now,
        "the lease's end is bound from the same now"
    );
}

#[test]
fn every_query_expands_without_leftover_tokens() {
    use super::{lease, queries as q};
    let all = [
        &q::INSERT_USER,
        &q::UPSERT_USER,
        &q::ACTIVE_USERS_WITH_ROLES,
        &q::UPSERT_TEMPLATE,
        &q::PREFERENCES_FOR_TEMPLATE,
        &q::SET_PAUSED,
        &q::MESSAGE_BY_ID,
        &q::MESSAGES_BY_IDS,
        &q::USERS_BY_USERNAMES,
        &q::RETRY_MESSAGES,
        &q::UNDELIVERABLE,
        &q::NEXT_DUE,
        &q::LEAD_RETENTION,
        &q::SET_INBOX_READ,
        &q::LIST_INBOX[1],
        &lease::EXHAUSTED,
        &lease::PENDING,
        &lease::DUE,
        &lease::ISOLATE_UNREADABLE,
    ];
    for sql in all {
        for dialect in [Dialect::Postgres, Dialect::Sqlite] {
            let text = &sql.get(dialect).text;
            assert!(!text.contains('{'), "{dialect:?}: {text}");
            if dialect == Dialect::Sqlite {
                assert!(!text.contains('$'), "{text}");
            }
        }
    }
}

#[test]
fn writes_are_told_from_reads_by_their_keywords_outside_quotes() {
    use super::{lease, queries as q};
    let write = |sql: &super::Sql| sql.get(Dialect::Sqlite).writes;
    for sql in [
        &q::INSERT_USER,
        &q::RETRY_MESSAGES,
        &q::SET_PAUSED,
        &lease::PENDING,
    ] {
        assert!(write(sql), "{}", sql.get(Dialect::Sqlite).text);
    }
    for sql in [&q::MESSAGE_BY_ID, &q::NEXT_DUE, &q::ACTIVE_USERS_WITH_ROLES] {
        assert!(!write(sql), "{}", sql.get(Dialect::Sqlite).text);
    }
    let quoted = "SELECT 'update' AS a, \"delete\", updated_at FROM t WHERE x = 'insert'";
    assert!(!Statement::expand(Dialect::Sqlite, quoted).writes);
    assert!(Statement::expand(Dialect::Sqlite, "WITH a AS (SELECT 1) delete FROM t").writes);
}
