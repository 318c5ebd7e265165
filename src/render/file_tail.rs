//! `{{ file_tail("/var/log/pipeline.log", 50) }}`: the last lines of a file, for override
//! templates that attach a run's log to a notification (SQLMesh's "overriding notification
//! targets").
//!
//! Paths come only from the configuration, never from event data: a template may read a file
//! only when it is a config override template and the path is written in it literally as
//! `file_tail`'s first argument. Catalog templates, whose context carries labels and data that
//! other systems send, can read nothing. What is read is capped ([`MAX_TAIL_LINES`],
//! [`MAX_TAIL_BYTES`]), and a file that cannot be read becomes a short note instead of failing
//! the delivery: the notification matters more than its attachment.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use minijinja::{Environment, Error, ErrorKind, State};

/// The most lines `file_tail` returns, whatever it is asked for.
pub const MAX_TAIL_LINES: usize = 1000;

/// The most bytes `file_tail` reads, from the end of the file.
pub const MAX_TAIL_BYTES: u64 = 64 * 1024;

/// The template function's name.
const NAME: &str = "file_tail";

/// Registers a `file_tail` that refuses every call, quoting the path: for catalog templates.
pub(super) fn add_refusing(env: &mut Environment<'static>) {
    env.add_function(
        NAME,
        |path: String, _lines: Option<i64>| -> Result<String, Error> { Err(refused(&path)) },
    );
}

/// Registers a `file_tail` that reads a file only for the template (by name) that names it
/// literally: `allowed` maps a template's name to the paths it may read.
pub(super) fn add_allowing(
    env: &mut Environment<'static>,
    allowed: HashMap<String, HashSet<String>>,
) {
    env.add_function(
        NAME,
        move |state: &State, path: String, lines: i64| -> Result<String, Error> {
            let permitted = allowed
                .get(state.name())
                .is_some_and(|paths| paths.contains(&path));
            if !permitted {
                return Err(refused(&path));
            }
            let lines = usize::try_from(lines).map_err(|_| {
                Error::new(
                    ErrorKind::InvalidOperation,
                    format!(
                        "file_tail(\"{path}\", {lines}): the number of lines cannot be negative"
                    ),
                )
            })?;
            Ok(tail(Path::new(&path), lines))
        },
    );
}

fn refused(path: &str) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!(
            "file_tail(\"{path}\") is refused: only a config override template ([events.NAME], or \
             a target's title_template / body_template) may read a file, and only at a path \
             written in it literally as file_tail's first argument"
        ),
    )
}

/// The last `lines` lines of the file at `path` (at most [`MAX_TAIL_LINES`], taken from at
/// most its last [`MAX_TAIL_BYTES`]), without the final line break; or, when the file cannot
/// be read, the note `(log PATH unavailable: ERROR)`.
pub fn tail(path: &Path, lines: usize) -> String {
    match read_tail(path, lines.min(MAX_TAIL_LINES)) {
        Ok(text) => text,
        Err(error) => format!("(log {} unavailable: {error})", path.display()),
    }
}

fn read_tail(path: &Path, lines: usize) -> io::Result<String> {
    let mut file = File::open(path)?;
    let metadata = file.metadata()?;
    // A FIFO or a device could block the delivery or never end.
    if !metadata.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    if lines == 0 {
        return Ok(String::new());
    }
    let len = metadata.len();
    let start = len.saturating_sub(MAX_TAIL_BYTES);
    // From one byte earlier, to tell whether the first line read is whole.
    let from = start.saturating_sub(1);
    file.seek(SeekFrom::Start(from))?;
    let mut bytes = Vec::new();
    file.take(len - from).read_to_end(&mut bytes)?;
    let mut text: &[u8] = &bytes;
    if from < start {
        // Whatever precedes the first line break is the end of a line cut by the byte cap (or,
        // when the byte before `start` is a line break, nothing).
        text = match text.iter().position(|b| *b == b'\n') {
            Some(at) => &text[at + 1..],
            None => &[],
        };
    }
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    let first = text
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, b)| **b == b'\n')
        .nth(lines - 1)
        .map_or(0, |(at, _)| at + 1);
    Ok(String::from_utf8_lossy(&text[first..]).into_owned())
}

/// The paths `source` names literally as `file_tail`'s first argument. A call whose first
/// argument is anything but a quoted string (`file_tail(labels.path, 5)`) is refused here, so
/// a config template that could only fail at delivery refuses start-up instead.
pub fn literal_paths(source: &str) -> Result<HashSet<String>, String> {
    let mut paths = HashSet::new();
    for (at, _) in source.match_indices(NAME) {
        let preceded_by_word = source[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.');
        let after = &source[at + NAME.len()..];
        let followed_by_word = after
            .chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        let Some(arguments) = after.trim_start().strip_prefix('(') else {
            continue;
        };
        if preceded_by_word || followed_by_word {
            continue;
        }
        match string_literal(arguments.trim_start()) {
            Some((path, rest)) if rest.trim_start().starts_with([',', ')']) => {
                paths.insert(path);
            }
            _ => {
                let call: String = after.chars().take(40).collect();
                return Err(format!(
                    "{NAME}{call}…: the path must be a quoted string written in the template, \
                     e.g. file_tail(\"/var/log/pipeline.log\", 50); it never comes from event \
                     data"
                ));
            }
        }
    }
    Ok(paths)
}

/// A quoted string at the start of `text` (minijinja's syntax: `"…"` or `'…'` with backslash
/// escapes): its value and the text after it.
fn string_literal(text: &str) -> Option<(String, &str)> {
    let quote = text.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let mut value = String::new();
    let mut chars = text.char_indices().skip(1);
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => {
                let (_, escaped) = chars.next()?;
                value.push(match escaped {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    other => other,
                });
            }
            c if c == quote => return Some((value, &text[at + 1..])),
            c => value.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn log_file(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
        let path = dir.path().join("pipeline.log");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn tail_returns_the_last_lines_without_the_final_line_break() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_file(&dir, "one\ntwo\nthree\nfour\n");
        assert_eq!(tail(&path, 2), "three\nfour");
        assert_eq!(tail(&path, 4), "one\ntwo\nthree\nfour");
        assert_eq!(tail(&path, 10), "one\ntwo\nthree\nfour");
        assert_eq!(tail(&path, 0), "");
        let path = log_file(&dir, "no final break\nlast");
        assert_eq!(tail(&path, 1), "last");
        let path = log_file(&dir, "");
        assert_eq!(tail(&path, 5), "");
    }

    #[test]
    fn tail_returns_at_most_max_tail_lines() {
        let dir = tempfile::tempdir().unwrap();
        let text: String = (1..=1500).map(|n| format!("line {n}\n")).collect();
        let path = log_file(&dir, &text);
        let lines: Vec<String> = tail(&path, 5000).lines().map(str::to_string).collect();
        assert_eq!(lines.len(), MAX_TAIL_LINES);
        assert_eq!(lines[0], "line 501");
        assert_eq!(lines[MAX_TAIL_LINES - 1], "line 1500");
    }

    #[test]
    fn tail_reads_at_most_max_tail_bytes_and_drops_the_cut_line() {
        let dir = tempfile::tempdir().unwrap();
        // 300 lines of 1,000 bytes (with the line break): far over the byte cap.
        let text: String = (0..300)
            .map(|n| format!("{n:04}{}\n", "x".repeat(995)))
            .collect();
        let path = log_file(&dir, &text);
        let out = tail(&path, 1000);
        assert!(out.len() as u64 <= MAX_TAIL_BYTES, "{}", out.len());
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 65, "only whole lines within the last 64 KiB");
        assert!(lines.iter().all(|l| l.len() == 999), "no partial line");
        assert!(lines[0].starts_with("0235"), "{}", &lines[0][..4]);
        assert!(lines[64].starts_with("0299"));
    }

    #[test]
    fn a_line_ending_exactly_at_the_byte_cap_is_kept_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exact.log");
        let mut file = File::create(&path).unwrap();
        // "head\n" then exactly MAX_TAIL_BYTES of 1 KiB lines: every one of those is whole.
        file.write_all(b"head\n").unwrap();
        for n in 0..64 {
            file.write_all(format!("{n:02}{}\n", "y".repeat(1021)).as_bytes())
                .unwrap();
        }
        drop(file);
        let out = tail(&path, 1000);
        assert_eq!(out.lines().count(), 64);
        assert!(out.starts_with("00y"), "{}", &out[..4]);
    }

    #[test]
    fn a_missing_file_becomes_a_short_note() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.log");
        let note = tail(&path, 50);
        assert_eq!(
            note,
            format!(
                "(log {} unavailable: No such file or directory (os error 2))",
                path.display()
            )
        );
        assert_eq!(
            tail(dir.path(), 50),
            format!(
                "(log {} unavailable: not a regular file)",
                dir.path().display()
            )
        );
    }

    #[test]
    fn literal_paths_are_collected_from_every_call() {
        let source = r#"{{ body }}
{{ file_tail("/var/log/a.log", 50) }}
{{ file_tail( '/var/log/b \'quoted\'.log' ) }}
{{ file_tail("/var/log/a.log", 5) }}"#;
        let paths = literal_paths(source).unwrap();
        assert_eq!(
            paths,
            HashSet::from([
                "/var/log/a.log".to_string(),
                "/var/log/b 'quoted'.log".to_string()
            ])
        );
        assert!(
            literal_paths("no calls; my_file_tail(x) and file_tails(y)")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_path_that_is_not_a_literal_is_refused() {
        for source in [
            "{{ file_tail(labels.path, 5) }}",
            "{{ file_tail(\"/var/log/\" ~ labels.name, 5) }}",
            "{{ file_tail(data.log) }}",
            "{{ file_tail(\"unterminated) }}",
        ] {
            let error = literal_paths(source).unwrap_err();
            assert!(
                error.starts_with("file_tail(") && error.contains("must be a quoted string"),
                "{source}: {error}"
            );
        }
    }
}
