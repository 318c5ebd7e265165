//! Herald: a notification dispatcher with a terminal admin console.
//!
//! The modules by layer, top to bottom; imports only point down this list (STYLE.md,
//! LAYOUT.md).

// Front ends: parse, present, call the service; never SQL.
pub mod api;
pub mod cli;
pub mod console;
pub mod demo;
pub mod ssh;

// Runtime: one replica (channels + dispatcher + templates) for `serve` and the console.
pub mod runtime;
pub mod serve;

// Orchestration: every operation a person can do (permission check once), the notifier loop.
pub mod dispatch;
pub mod service;

// I/O adapters: the shared store, the delivery channels.
pub mod channels;
pub mod store;

// Pure domain logic.
pub mod catalog;
pub mod labels;
pub mod queue;
pub mod render;
pub mod routing;

// Leaves anyone may use: plain types, settings, logs and metrics.
pub mod config;
pub mod model;
pub mod secret;
pub mod telemetry;
