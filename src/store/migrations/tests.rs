//! The migration template expander: tokens, backend-only sections, and every shipped migration.

use super::{MIGRATIONS, expand};
use crate::store::sql::Dialect;

const BOTH: [Dialect; 2] = [Dialect::Postgres, Dialect::Sqlite];

#[test]
fn inline_tokens_are_spelled_per_backend() {
    let template = "id {id} PRIMARY KEY, at {time}, body {json}, on {bool} DEFAULT {true}, \
                    off {bool} DEFAULT {false}, secs {real}, ms {bigint}, since {now}";
    assert_eq!(
        expand(Dialect::Postgres, template),
        "id UUID PRIMARY KEY, at TIMESTAMPTZ, body JSONB, on BOOLEAN DEFAULT TRUE, \
         off BOOLEAN DEFAULT FALSE, secs DOUBLE PRECISION, ms BIGINT, since now()"
    );
    assert_eq!(
        expand(Dialect::Sqlite, template),
        "id TEXT PRIMARY KEY, at TEXT, body TEXT, on INTEGER DEFAULT 1, \
         off INTEGER DEFAULT 0, secs REAL, ms INTEGER, since strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
    );
}

#[test]
fn other_braces_are_kept_as_written() {
    let template = "DEFAULT '{\"methods\":[]}', -- {label, url} {unknown} {\n{";
    for dialect in BOTH {
        assert_eq!(expand(dialect, template), template, "{}", dialect.name());
    }
}

#[test]
fn backend_sections_run_only_on_their_backend() {
    let template = "CREATE TABLE t (id {id});\n\
                    {postgres}\n\
                    ALTER TABLE t SET (fillfactor = 90);\n\
                    {end}\n  \
                    {sqlite}  \n\
                    CREATE INDEX t_id ON t (id);\n\
                    {end}\n\
                    DROP TABLE t;\n";
    assert_eq!(
        expand(Dialect::Postgres, template),
        "CREATE TABLE t (id UUID);\nALTER TABLE t SET (fillfactor = 90);\nDROP TABLE t;\n"
    );
    assert_eq!(
        expand(Dialect::Sqlite, template),
        "CREATE TABLE t (id TEXT);\nCREATE INDEX t_id ON t (id);\nDROP TABLE t;\n"
    );
}

#[test]
fn a_marker_must_stand_on_its_own_line() {
    let template = "SELECT 1; {postgres}\n";
    assert_eq!(expand(Dialect::Sqlite, template), template);
}

/// `script` without its `--` comments.
fn without_comments(script: &str) -> String {
    script
        .lines()
        .map(|line| line.split_once("--").map_or(line, |(code, _)| code))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Where `text` has `{word}` (lowercase letters only): a token or marker the expander missed.
fn leftover_token(text: &str) -> Option<&str> {
    text.match_indices('{').find_map(|(at, _)| {
        let rest = &text[at + 1..];
        let end = rest.find('}')?;
        let word = &rest[..end];
        (!word.is_empty() && word.bytes().all(|b| b.is_ascii_lowercase())).then(|| &text[at..])
    })
}

#[test]
fn every_migration_expands_fully_for_both_backends() {
    let mut versions = Vec::new();
    for m in MIGRATIONS {
        versions.push(m.version);
        let mut section_open = false;
        for line in m.template.lines() {
            match line.trim() {
                "{postgres}" | "{sqlite}" => {
                    assert!(!section_open, "{}: sections do not nest", m.name);
                    section_open = true;
                }
                "{end}" => {
                    assert!(section_open, "{}: `{{end}}` closes no section", m.name);
                    section_open = false;
                }
                _ => {}
            }
        }
        assert!(!section_open, "{}: a section is left open", m.name);
        for dialect in BOTH {
            let script = m.script(dialect);
            assert!(!script.trim().is_empty(), "{} {}", m.name, dialect.name());
            assert_eq!(
                leftover_token(&script),
                None,
                "{} {}",
                m.name,
                dialect.name()
            );
        }
        let sqlite = without_comments(&m.script(Dialect::Sqlite));
        for postgres_only in [
            "UUID",
            "TIMESTAMPTZ",
            "JSONB",
            "BOOLEAN",
            "plpgsql",
            "now()",
        ] {
            assert!(
                !sqlite.contains(postgres_only),
                "{}: {postgres_only}",
                m.name
            );
        }
        assert!(
            !m.script(Dialect::Postgres).contains("strftime"),
            "{}",
            m.name
        );
    }
    // Increasing from 1. Version 10 (the audit log) is made on another branch and 11 on this
    // one; once both are merged the versions are consecutive again: then assert that.
    assert_eq!(versions.first(), Some(&1));
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
}
