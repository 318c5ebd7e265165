//! The command line: clap definitions (`args`), one runner per noun (`commands`), and the
//! tables and JSON they print (`present`). A front end: it calls the service, never SQL.

mod args;
mod commands;
mod present;

pub use args::*;
pub use commands::run;
