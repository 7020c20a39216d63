//! The node-to-node protocol.
//!
//! Every pair of nodes talks over **one long-lived TCP connection per direction**,
//! multiplexed: each request carries an id and responses may come back in any
//! order, so a slow request never blocks the ones behind it.
//!
//! * [`frame`] — length-delimited frames, each with a CRC-32 of its body, and a
//!   versioned encoding. A frame that is oversized, corrupted or undecodable
//!   closes the connection, is counted, and is never applied.
//! * [`auth`] — the handshake: before any message is accepted both sides prove
//!   they hold the `cluster_secret` with an HMAC over the other's random nonce.
//!   With TLS on (`crate::server::tls`), the handshake runs inside mutual TLS
//!   against the cluster CA, and the name each side proves must be one its
//!   certificate carries.
//! * [`client`] — connections per peer, opened from this node's `--listen` IP,
//!   with request ids, per-request timeouts, a bound on requests in flight, and
//!   reconnection with backoff.
//! * [`server`] — the accept loop and per-connection dispatch to a [`Handler`].
//! * [`faults`] — fault injection (`POST /admin/faults`): drop traffic to and from
//!   named members to simulate a partition on one machine.

pub mod auth;
pub mod client;
pub mod faults;
pub mod frame;
pub mod message;
pub mod server;

pub use client::{RpcClient, RpcError};

/// A node-to-node byte stream: TCP, or TLS over it.
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}
/// A boxed [`Io`].
pub type BoxIo = Box<dyn Io>;
pub use faults::Faults;
pub use message::{ForwardedWrite, Request, Response};
pub use server::{Handler, RpcShared, serve};
