//! The console's state machine: actions and effects, the state, the pure `update`, the key
//! table that drives keys, footer and help, and the driver that runs effects through the
//! service.

pub mod action;
pub mod driver;
pub mod keymap;
pub(crate) mod results;
pub mod state;
pub mod update;
