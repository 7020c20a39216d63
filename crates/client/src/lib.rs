//! A typed client for dynakv's HTTP API.
//!
//! Values come back as an [`Object`]: the key's live [`Sibling`]s (one, or
//! several written concurrently) and an opaque [`Context`]. Writing with the
//! context a read returned supersedes exactly what that read saw; anything
//! written concurrently stays as a sibling, so no write is lost. Errors are
//! typed ([`Error`]) and say whether a retry can help
//! ([`Error::is_retryable`]).
//!
//! The client fails over across the nodes it is given, and with
//! [`ClientBuilder::route_to_replicas`] sends each request straight to one of
//! its key's replicas (Dynamo's client-driven coordination). Reads are retried
//! on another node after any failure; writes only when nothing was sent (see
//! [`Client`] for why). [`blocking::Client`] is the same client for code
//! without an async runtime.
//!
//! ```no_run
//! use dynakv_client::{ClientBuilder, Error, Options, Sibling};
//!
//! # fn main() -> Result<(), Error> {
//! let client = ClientBuilder::new(["http://127.0.0.1:8001", "http://127.0.0.1:8002"])
//!     .route_to_replicas(true)
//!     .build_blocking()?;
//!
//! // A blind write, then a read: one value and its context.
//! client.put(b"greeting", Sibling::new("hello", "text/plain"), None)?;
//! let object = client.get(b"greeting")?;
//! assert_eq!(object.value().map(|s| &s.value[..]), Some(&b"hello"[..]));
//!
//! // Writing with that context replaces what the read saw.
//! client.put(b"greeting", Sibling::new("hello, world", "text/plain"), Some(&object.context))?;
//!
//! // A set kept as lines: concurrent additions become siblings, and the
//! // merge function unions them (it may run more than once).
//! client.modify(b"members", &Options::default(), |siblings| {
//!     let mut lines: Vec<&[u8]> = siblings
//!         .iter()
//!         .flat_map(|s| s.value.split(|&b| b == b'\n'))
//!         .filter(|l| !l.is_empty())
//!         .collect();
//!     lines.push(b"alice");
//!     lines.sort();
//!     lines.dedup();
//!     Sibling::new(lines.join(&b'\n'), "text/plain")
//! })?;
//!
//! match client.get(b"nobody") {
//!     Err(Error::NotFound { .. }) => {}
//!     other => panic!("{other:?}"),
//! }
//! # Ok(())
//! # }
//! ```

pub mod blocking;
mod client;
mod error;
mod object;
pub mod records;
mod routing;

pub use client::{
    CONTEXT_HEADER, Client, ClientBuilder, MODIFY_ATTEMPTS, NOT_APPLIED_HEADER, Options, Quorum,
    key_url,
};
pub use error::{Error, Result};
pub use object::{Context, Object, Sibling};
pub use records::Record;
pub use routing::Router;
