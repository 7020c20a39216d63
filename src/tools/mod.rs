//! What runs outside a node, as a client of the HTTP API through
//! [`dynakv_client`]:
//!
//! * [`cli`] — the command line of every subcommand (`node` included),
//!   gathering the arguments each subcommand's module defines;
//! * [`common`] — what every client subcommand shares: its error and exit
//!   code, the node flags;
//! * [`commands`] — `get`, `put`, `delete`, `status`, `repair`, `leave`,
//!   `remove`, `plan`;
//! * [`certs`] — a cluster CA and node certificates for TLS; [`security`],
//!   users and grants;
//! * [`dev`] — a local cluster of real node processes;
//! * [`load`] — bulk load and export, and [`sst`], the `--sst` path it
//!   shares with the load generator's preload;
//! * [`bench`](mod@bench) — the load generator.

pub mod bench;
pub mod buckets;
pub mod certs;
pub mod cli;
pub mod commands;
pub mod common;
pub mod dev;
pub mod load;
pub mod security;
pub mod sst;
