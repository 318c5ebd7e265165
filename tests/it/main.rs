//! Herald's integration tests, one binary: the crate is linked once, and every test shares one
//! process, so one throwaway PostgreSQL cluster per run (`common`, the one fixture root).
//!
//! A module per subject; a test's name starts with its module
//! (`cargo test --test it store_conformance::postgres::`). Since they share the process, a test
//! leaves process-wide state as it found it: environment and working directory are set on the
//! child processes it starts (`Command::env`, `Command::current_dir`), logs are captured with
//! `tracing::subscriber::with_default`, and a panic hook is put back when its test ends.

mod common;

mod api_endpoints;
mod api_events;
mod api_hostile;
mod api_openapi;
mod api_server;
mod audit;
mod channel_health;
mod cli;
mod coder_bridge;
mod config_example;
mod console_pty;
mod console_snapshots;
mod console_update;
mod demo;
mod dispatch;
mod explain;
mod faults;
mod goldens;
mod harness_smoke;
mod metrics_endpoint;
mod scoped_pause;
mod serve;
mod slack_channel;
mod smtp_channel;
mod sqlmesh_target;
mod ssh_console;
mod ssh_keys;
mod store_conformance;
mod webhook_channel;
