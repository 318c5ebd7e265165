//! Herald: a notification dispatcher with a terminal admin console.
//!
//! Layers (STYLE.md): `model`, `routing` and `labels` are pure; `store` is the I/O adapter;
//! `service` holds every operation a person can do, with the permission check; `cli` is a
//! front end that only calls the service.

pub mod catalog;
pub mod channels;
pub mod cli;
pub mod commands;
pub mod config;
pub mod console;
pub mod demo;
pub mod dispatch;
pub mod doctor;
pub mod labels;
pub mod model;
pub mod output;
pub mod queue;
pub mod render;
pub mod routing;
pub mod serve;
pub mod service;
pub mod store;
pub mod telemetry;
