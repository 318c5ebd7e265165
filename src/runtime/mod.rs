//! Builds what runs: one replica (channels, checked templates and a dispatcher) for
//! `herald serve` and the console alike.

mod replica;

pub use replica::{ReplicaHandle, checked_templates, start_replica};
