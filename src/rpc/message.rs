//! The messages nodes exchange: one enum per direction, each request with its
//! response, plus the handshake. Encoded by `dynakv_storage::codec` behind a
//! format byte, so the wire format can evolve.

use dynakv_membership::GossipMessage;
use serde::{Deserialize, Serialize};

/// Everything that travels in a frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Frame {
    /// Connection set-up, before any request.
    Hello(Hello),
    /// A request; the response carries the same id.
    Request {
        /// Chosen by the caller, unique per connection.
        id: u64,
        /// The request.
        body: Request,
    },
    /// The answer to request `id`.
    Response {
        /// The request's id.
        id: u64,
        /// The answer.
        body: Response,
    },
}

/// The mutual-authentication handshake (see [`crate::rpc::auth`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Hello {
    /// Server → client: prove you know the secret, using this nonce.
    Challenge {
        /// Random, fresh per connection.
        nonce: [u8; 32],
    },
    /// Client → server: the proof, the client's name, and its own nonce.
    Proof {
        /// The connecting node's name.
        name: String,
        /// HMAC of the server's nonce.
        proof: [u8; 32],
        /// Random nonce for the server to prove itself with.
        nonce: [u8; 32],
    },
    /// Server → client: accepted, with the server's name and proof.
    Accept {
        /// The accepting node's name.
        name: String,
        /// HMAC of the client's nonce.
        proof: [u8; 32],
    },
    /// Server → client: refused.
    Reject {
        /// Why.
        reason: String,
    },
}

/// A request from one node to another.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// Liveness probe; answered with [`Response::Pong`].
    Ping,
    /// A gossip round: the sender's member table; answered with the receiver's.
    Gossip(GossipMessage),
}

/// A response to a [`Request`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// Answer to `Ping`.
    Pong,
    /// Answer to `Gossip`: the receiver's member table.
    Gossip(GossipMessage),
    /// The request failed on the receiver.
    Error(String),
}
