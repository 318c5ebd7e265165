//! One module per tab: Events, Delivery, Opt-outs, Queue (a folder: state, view, filter
//! language), Troubleshoot (with its audit trail view) and Inbox.

pub mod audit;
pub mod delivery;
pub mod events;
pub mod inbox;
pub mod optouts;
pub mod queue;
pub mod troubleshoot;
