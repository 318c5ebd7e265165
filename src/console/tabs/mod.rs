//! One module per tab: Events, Delivery, Opt-outs, Queue (a folder: state, view, filter
//! language), Troubleshoot and Inbox.

pub mod delivery;
pub mod events;
pub mod inbox;
pub mod optouts;
pub mod queue;
pub mod troubleshoot;
