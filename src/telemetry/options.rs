//! How to log: the base level, the debug filter regex (Coder's `CODER_LOG_FILTER`) and the
//! output format.

use super::*;

/// How to log: base level, debug filter, output format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogOptions {
    /// `--log-filter` / `HERALD_LOG_FILTER`: a regular expression. Debug events whose line
    /// (`LEVEL target: message fields`, see [`LogLine::matches`]) matches it are shown as well
    /// as the base level; `.*` shows every debug event. Empty or blank means no filter.
    pub filter: Option<String>,
    /// The level always shown: INFO for `serve` and the console, WARN for one-shot commands.
    pub level: Level,
    /// Write JSON lines instead of text.
    pub json: bool,
    /// Colour the text output (the caller decides, e.g. stderr is a terminal and no `NO_COLOR`).
    pub ansi: bool,
    /// How many lines the in-memory ring keeps for the console.
    pub ring_capacity: usize,
}

impl LogOptions {
    /// Lines the ring keeps unless told otherwise.
    pub const DEFAULT_RING_CAPACITY: usize = 5000;

    /// Defaults for long-running processes (`serve`, the console): INFO and above.
    pub fn serve() -> Self {
        Self {
            filter: None,
            level: Level::INFO,
            json: false,
            ansi: false,
            ring_capacity: Self::DEFAULT_RING_CAPACITY,
        }
    }

    /// Defaults for one-shot commands: WARN and above on stderr.
    pub fn one_shot() -> Self {
        Self {
            level: Level::WARN,
            ..Self::serve()
        }
    }
}

impl Default for LogOptions {
    fn default() -> Self {
        Self::serve()
    }
}
