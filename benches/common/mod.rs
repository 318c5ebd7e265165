//! What the two benchmarks share: the integration tests' harness (`tests/it/common`, the one
//! fixture root: fresh SQLite and PostgreSQL databases, the local HTTP sink), the backend a
//! run is on, the command-line counts and how figures are printed.
#![allow(dead_code)]

pub mod figures;

#[path = "../../tests/it/common/mod.rs"]
pub mod harness;

pub use harness::TestDb;

use anyhow::bail;

/// The store a benchmark runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// An empty database; the harness shells out to `psql`, so it runs off the async workers.
    pub fn fresh_db(self) -> TestDb {
        tokio::task::block_in_place(|| match self {
            Backend::Sqlite => harness::sqlite_db(),
            Backend::Postgres => harness::postgres_db(),
        })
    }
}

/// Drops a test database (a blocking `DROP DATABASE` on PostgreSQL) off the async workers.
pub fn discard(db: TestDb) {
    tokio::task::block_in_place(move || drop(db));
}

/// A command-line count such as `--n 100_000`: a positive whole number, `_` allowed.
pub fn parse_count(name: &str, text: &str) -> anyhow::Result<usize> {
    match text.trim().replace('_', "").parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => bail!("{name} wants a positive whole number, not `{text}`"),
    }
}

/// The multi-threaded tokio runtime a benchmark runs on.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")
}
