//! What runs outside a node, as a client of the HTTP API through
//! [`dynakv_client`]:
//!
//! * [`cli`] — the command line of every subcommand (`node` included);
//! * [`commands`] — `get`, `put`, `delete`, `status`, `repair`, `leave`,
//!   `remove`, `plan`;
//! * [`dev`] — a local cluster of real node processes;
//! * [`load`] — bulk load and export;
//! * [`bench`](mod@bench) — the load generator.

pub mod bench;
pub mod cli;
pub mod commands;
pub mod dev;
pub mod load;
