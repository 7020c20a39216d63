//! Riak KV's Protocol Buffers wire protocol, so that a dynakv node can serve
//! Basho's client libraries (Java, Python, Go, Erlang, Ruby, .NET, Node.js)
//! unchanged on Riak's PB port, 8087.
//!
//! This crate is only the protocol: message structs, codes and framing. What a
//! node does with a request is up to its server.
//!
//! # The protocol
//!
//! A client opens a TCP connection and sends requests one at a time; the
//! server answers each one before the client sends the next (the list
//! requests are answered with a stream of responses, the last one marked
//! `done`). Every message travels in a **frame**: a 4-byte big-endian length,
//! a 1-byte **message code** saying which message follows, then the message,
//! encoded as Protocol Buffers (proto2). The length counts the code and the
//! message. Messages without fields — `RpbPingReq`, `RpbDelResp`, … — are just
//! the code: a ping is `00 00 00 01 01`. Any request may be answered with
//! `RpbErrorResp` instead of its usual response; a server that gets a request
//! it does not support answers that and keeps the connection open. Quorum
//! fields (`r`, `w`, `pr`, `pw`, `dw`, `rw`) are numbers of replicas or one of
//! four symbolic values, see [`PbQuorum`].
//!
//! The messages and codes are those of basho/riak_pb (`riak.proto`,
//! `riak_kv.proto`, `riak_pb_messages.csv`), written by hand as prost
//! messages rather than generated.
//!
//! # Modules
//!
//! * [`messages`]: the message bodies, `RpbGetReq` and the rest, one struct
//!   per protobuf message;
//! * [`codes`]: the message codes, the whole of Riak's table;
//! * [`Request`] and [`Response`]: a message together with its code — decode a
//!   frame's body into one, encode one into a frame;
//! * [`RiakCodec`]: the framing, a `tokio_util::codec` `Decoder` yielding
//!   `(code, body)` frames and an `Encoder` of requests and responses;
//! * [`PbQuorum`]: symbolic quorum values;
//! * [`WireError`]: what can go wrong, and whether it ends the connection.
//!
//! # A server's loop
//!
//! Read a frame with [`RiakCodec`]; on error, close if
//! [`WireError::closes_connection`]. Decode it with [`Request::decode`]; on
//! error (unknown code, malformed body) send [`Response::error`] and read on.
//! Answer [`Request::Other`] with an error too ("not supported"). Otherwise
//! handle the request and send its [`Response`].

pub mod codes;
pub mod messages;

mod codec;
mod error;
mod frame;
mod quorum;
mod request;
mod response;

pub use codec::RiakCodec;
pub use error::WireError;
pub use quorum::{PbQuorum, RW_ALL, RW_DEFAULT, RW_ONE, RW_QUORUM};
pub use request::Request;
pub use response::Response;
