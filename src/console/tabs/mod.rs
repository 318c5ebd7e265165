//! One module per tab: Events (with its explain view), Delivery, Opt-outs, Queue (a folder:
//! state, view, filter language), Troubleshoot (with its channel health panel and audit trail
//! view) and Inbox.

pub mod audit;
pub mod channels;
pub mod delivery;
pub mod events;
pub mod explain;
pub mod inbox;
pub mod optouts;
pub mod queue;
pub mod troubleshoot;
