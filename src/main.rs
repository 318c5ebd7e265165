use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

use herald::cli::{Cli, Command};
use herald::telemetry::{LogOptions, init_logging};

// mimalloc: glibc malloc and free were ~12 % of the dispatcher's CPU (BENCHMARKS.md, issue 10).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Usage errors exit 2 from here, with clap's message.
    let cli = Cli::parse();
    let mut log = match &cli.command {
        Some(Command::Serve(args)) => LogOptions {
            filter: args.log_filter.clone(),
            json: args.log_json,
            ..LogOptions::serve()
        },
        // The console (and the demo) show INFO lines in their log view; stderr is muted
        // while they own the terminal.
        None | Some(Command::Console(_)) | Some(Command::Demo(_)) => LogOptions {
            filter: std::env::var("HERALD_LOG_FILTER").ok(),
            ..LogOptions::serve()
        },
        _ => LogOptions {
            filter: std::env::var("HERALD_LOG_FILTER").ok(),
            ..LogOptions::one_shot()
        },
    };
    log.ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let logs = match init_logging(&log) {
        Ok(logs) => logs,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(herald::cli::run(cli, Some(logs))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
