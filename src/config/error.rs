//! How a refused configuration is explained: [`ConfigError`], one line an operator can act on,
//! and [`Origin`], where the offending value came from.

use std::fmt;
use std::path::PathBuf;

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The built-in default.
    Default,
    /// The config file, with the line when known.
    File {
        /// The file as named in messages.
        file: String,
        /// 1-based line.
        line: Option<usize>,
    },
    /// A `HERALD_…` environment variable.
    Env(&'static str),
    /// A command-line flag such as `--database-url`.
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File {
                file,
                line: Some(line),
            } => write!(f, "{file} line {line}"),
            Origin::File { file, line: None } => f.write_str(file),
            Origin::Env(name) | Origin::Flag(name) => f.write_str(name),
        }
    }
}

/// Why the configuration was refused; `Display` is one line an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file named by `--config` or `HERALD_CONFIG` does not exist.
    #[error("config file {} (from {via}) does not exist", path.display())]
    FileNotFound {
        /// The missing file.
        path: PathBuf,
        /// `--config` or `HERALD_CONFIG`.
        via: &'static str,
    },
    /// The config file exists but cannot be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{origin}: invalid TOML: {message}")]
    Syntax {
        /// File and line.
        origin: Origin,
        /// What the parser said.
        message: String,
    },
    /// A key Herald does not know.
    #[error("{origin}: unknown key `{key}`; expected one of: {}", expected.join(", "))]
    UnknownKey {
        /// File and line.
        origin: Origin,
        /// Dotted path of the unknown key.
        key: String,
        /// The keys allowed where it was found.
        expected: Vec<&'static str>,
    },
    /// `${VAR}` names a variable that is not set.
    #[error("{origin}: `{key}` uses ${{{variable}}}, which is not set in the environment")]
    UnsetVariable {
        /// File and line.
        origin: Origin,
        /// Dotted path of the key whose value uses it.
        key: String,
        /// The variable.
        variable: String,
    },
    /// A value of the wrong type or out of range.
    #[error("{}", invalid_value_line(origin, key, problem))]
    InvalidValue {
        /// Where the value came from.
        origin: Origin,
        /// Dotted path of the key.
        key: String,
        /// What is wrong and what is expected.
        problem: String,
    },
    /// Settings that are fine alone but not together.
    #[error("{0}")]
    Inconsistent(String),
}

impl ConfigError {
    /// The dotted key the error is about, when it is about one key.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::UnknownKey { key, .. }
            | ConfigError::UnsetVariable { key, .. }
            | ConfigError::InvalidValue { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// An environment variable or flag names the key by itself; elsewhere the key is spelled out.
fn invalid_value_line(origin: &Origin, key: &str, problem: &str) -> String {
    match origin {
        Origin::Env(_) | Origin::Flag(_) => format!("{origin}: {problem}"),
        Origin::Default => format!("{key}: {problem}"),
        Origin::File { .. } => format!("{origin}: {key}: {problem}"),
    }
}
